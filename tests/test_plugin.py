"""The pytest plugin and fuzzrmap.testing, as a user's test suite uses them."""

import shutil
import textwrap
from pathlib import Path

import pytest

from fuzzrmap import testing

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"

USER_TEST = textwrap.dedent("""\
    from fuzzrmap import testing

    def test_the_fixed_protocol():
        testing.check("moving_item.py", variant="fixed", runs=200)

    def test_the_protocol_without_its_recheck():
        testing.check("moving_item.py", variant="no-recheck", runs=200)
    """)


@pytest.fixture
def user(pytester):
    shutil.copy(EXAMPLES / "moving_item.py", pytester.path / "moving_item.py")
    return pytester


def test_check_fails_a_test_with_the_report_the_seed_file_and_the_replay_command(user):
    user.makepyfile(test_protocol=USER_TEST)
    result = user.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "fuzzrmap found a failing schedule of moving-item / no-recheck: STALE [SAFETY] in reader" in out
    (seed,) = (user.path / ".fuzzrmap" / "corpus").glob("*.json")
    assert f"seed file: {seed.relative_to(user.path)}" in out or f"seed file: {seed}" in out
    assert "replay it: fuzzrmap replay" in out and "--scenario moving_item.py" in out
    assert "| reader" in out and "racing pair" in out  # the column report
    assert "object at 0x" not in out and "Scenario(" not in out  # no object dumps


def test_a_saved_failure_is_replayed_first_and_a_stale_one_is_reported(user):
    user.makepyfile(test_protocol=USER_TEST)
    user.runpytest_subprocess("-p", "no:cacheprovider")
    (seed,) = (user.path / ".fuzzrmap" / "corpus").glob("*.json")
    again = user.runpytest_subprocess("-p", "no:cacheprovider", "-k", "without")
    assert "fuzzrmap replayed a failing schedule of moving-item / no-recheck" in again.stdout.str()
    source = user.path / "moving_item.py"
    source.write_text(source.read_text().replace('frozenset({"x"})), Table("B"', 'frozenset({"x", "y"})), Table("B"'))
    stale = user.runpytest_subprocess("-p", "no:cacheprovider", "-k", "without")
    assert "StaleSeedFile" in stale.stdout.str() and "stale seed file" in stale.stdout.str()
    assert seed.exists()  # reported, not deleted
    assert "fuzzrmap found a failing schedule" in stale.stdout.str()


def test_pytest_fuzzrmap_collects_a_test_per_scenario_and_variant(user):
    shutil.copy(EXAMPLES / "lost_update.py", user.path / "lost_update.py")
    result = user.runpytest_subprocess("--fuzzrmap", "--fuzzrmap-file", "moving_item.py", "--fuzzrmap-file",
                                       "lost_update.py", "-k", "moving or lost", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    for test_id in ("moving-item[fixed]", "moving-item[no-recheck]", "lost-update-3[locked]"):
        assert f"fuzzrmap::{test_id} PASSED" in result.stdout.str()


def test_a_variant_whose_verdict_is_not_the_expected_one_fails_with_its_report(user):
    text = (user.path / "moving_item.py").read_text()
    (user.path / "moving_item.py").write_text(
        text.replace('Variant("no-recheck", FAILS,', 'Variant("no-recheck", CLEAN,')
            .replace('Variant("no-lock-destination", CLEAN,', 'Variant("no-lock-destination", FAILS,'))
    result = user.runpytest_subprocess("--fuzzrmap", "--fuzzrmap-file", "moving_item.py", "-k", "moving",
                                       "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "moving-item / no-lock-destination is expected to fail, but explore found no failure" in out
    assert "fuzzrmap found a failing schedule of moving-item / no-recheck" in out
    assert "runtest" not in out and "Traceback" not in out  # the report only, no plugin internals
    # the failure went to the corpus, and the next run replays it first
    again = user.runpytest_subprocess("--fuzzrmap", "--fuzzrmap-file", "moving_item.py", "-k", "moving", "-v",
                                      "-p", "no:cacheprovider")
    lines = [line for line in again.stdout.lines if "::" in line and ("PASSED" in line or "FAILED" in line)]
    assert "corpus[moving-item-no-recheck-STALE-" in lines[0] and "FAILED" in lines[0]


def test_check_outside_pytest_raises_assertion_error_with_the_report(tmp_path):
    with pytest.raises(AssertionError, match="racing pair") as info:
        testing.check(str(EXAMPLES / "abba.py"), variant="abba", runs=200, corpus=tmp_path)
    assert "I8" in str(info.value) and str(tmp_path) in str(info.value)
    assert testing.explore(str(EXAMPLES / "abba.py"), variant="ordered", corpus=tmp_path).complete
