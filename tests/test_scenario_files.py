"""Scenario files outside the package: every command, the printed replay command, the seed-file
rule, per-scenario fingerprints and scenarios registered by installed packages."""

import json
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fuzzrmap import cli, fingerprint
from fuzzrmap import scenario as registry

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def run(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "fuzzrmap", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd)


@pytest.fixture
def project(tmp_path):
    """A user's folder with a scenario file of their own (a copy of the docs' moving-item example)."""
    shutil.copy(EXAMPLES / "moving_item.py", tmp_path / "moving_item.py")
    return tmp_path


def found(project, *extra):
    """fuzz the file's failing variant from inside the project; returns (seed file, printed replay command)."""
    p = run("fuzz", "moving_item.py", "--variant", "unpatched", "--runs", "50", *extra, cwd=project)
    assert p.returncode == 1, p.stderr
    command = next(line.split("replay it: ", 1)[1] for line in p.stdout.splitlines() if "replay it:" in line)
    seed = next(line.split("seed file: ", 1)[1] for line in p.stdout.splitlines() if "seed file:" in line)
    return project / seed, command


def test_a_users_scenario_file_runs_with_fuzz_explore_replay_shrink_and_show(project):
    seed, command = found(project)
    assert json.loads(seed.read_text())["source"] == {"by": "path", "path": "moving_item.py"}
    assert command == f"fuzzrmap replay {shlex.quote(str(seed.relative_to(project)))} --scenario moving_item.py"
    replayed = subprocess.run([sys.executable, "-m", "fuzzrmap", *shlex.split(command)[1:]], capture_output=True,
                              text=True, cwd=project)
    assert replayed.returncode == 1 and "STALE [SAFETY] in reader" in replayed.stdout, replayed.stderr
    explored = run("explore", "moving_item.py", "--variant", "no-lock-destination", "--json", cwd=project)
    assert explored.returncode == 0 and json.loads(explored.stdout)["verdict"] == "verified"
    shrunk = run("shrink", seed, "--scenario", "moving_item.py", "--json", cwd=project)
    assert shrunk.returncode == 0 and json.loads(shrunk.stdout)["invariant"] == "STALE", shrunk.stderr
    shown = run("show", seed, "--scenario", "moving_item.py", "--format", "chrome", cwd=project)
    assert shown.returncode == 0 and '"reader"' in shown.stdout


def test_a_seed_file_never_runs_the_file_it_names(project):
    seed, _ = found(project)
    marker = project / "executed"
    source = project / "moving_item.py"
    source.write_text(source.read_text() + f"\nopen({str(marker)!r}, 'w').close()\n")
    for command in (["replay", seed], ["shrink", seed], ["show", seed]):
        p = run(*command, cwd=project)
        assert p.returncode == 2 and "never runs code by itself: name the file with --scenario moving_item.py" \
            in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_editing_the_scenario_file_makes_its_seed_files_stale_but_a_new_scenario_does_not(project):
    seed, _ = found(project)
    (project / "another.py").write_text((EXAMPLES / "abba.py").read_text())
    source = project / "moving_item.py"
    source.write_text(source.read_text().replace('"""A reader/writer protocol', '"""Edited docs: a reader/writer protocol'))
    assert run("replay", seed, "--scenario", "moving_item.py", cwd=project).returncode == 1
    source.write_text(source.read_text().replace('frozenset({"x"})), Table("B"', 'frozenset({"x", "y"})), Table("B"'))
    p = run("replay", seed, "--scenario", "moving_item.py", cwd=project)
    assert p.returncode == 2 and "stale seed file" in p.stderr and "moving_item.py" in p.stderr, p.stderr
    assert "fuzzrmap fuzz moving_item.py:moving-item --variant unpatched" in p.stderr


def test_a_builtin_fingerprint_covers_the_model_modules_it_uses_and_no_other_scenario():
    files = fingerprint.files(registry.get("uffd-move-vs-referenced"))
    assert "uffd_move_vs_referenced.py" in files and "fuzzrmap.kernel.rmap" in files
    assert "fuzzrmap.scenarios.uffd_common" in files and "fuzzrmap.check.invariants" in files
    assert not any(f.startswith("uffd_move_vs_page_idle") for f in files)  # another scenario's file
    assert not any(f.startswith("fuzzrmap.sched") for f in files)


def test_the_fingerprint_follows_a_users_own_helper_modules(tmp_path):
    (tmp_path / "helper_model.py").write_text("LIMIT = 1\n")
    (tmp_path / "uses.py").write_text(textwrap.dedent("""\
        import sys, pathlib
        sys.path.insert(0, str(pathlib.Path(__file__).parent))
        import helper_model
        from fuzzrmap.scenario import CLEAN, Scenario, Variant, World
        SCENARIO = Scenario("uses", "t", "t", (Variant("v", CLEAN, ""),), lambda: World(threads=[]))
        """))
    before = fingerprint.files(registry.load_file(str(tmp_path / "uses.py")))
    assert "helper_model" in before and "uses.py" in before


@pytest.mark.parametrize("text,ref,expected", [
    ("SCENARIO = 1\n", "bad.py", "is not a fuzzrmap Scenario"),
    ("x = \n", "bad.py", "cannot load scenario file"),
    ("raise RuntimeError('boom')\n", "bad.py", "bad.py (line 1): RuntimeError: boom"),
    ("X = 1\n", "bad.py", "defines no SCENARIO or SCENARIOS"),
    (None, "absent.py", "no scenario file absent.py"),
    (None, "lost_update.py", "defines several scenarios (lost-update, lost-update-3): name one as"),
    (None, "lost_update.py:nope", "has no scenario 'nope'"),
    (None, "abba.py", "has no variant 'nope'"),
    (None, "abba.py", "variant 'abba' has no hunk 'abba.ordered' to revert"),
    (None, "abba.py", "unknown hunk 'no.such'"),
])
def test_bad_scenario_files_get_one_line_and_exit_2(tmp_path, capsys, monkeypatch, text, ref, expected):
    monkeypatch.chdir(tmp_path)
    if text is not None:
        (tmp_path / "bad.py").write_text(text)
    for name in ("lost_update.py", "abba.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    variant = {"has no variant 'nope'": "nope", "unknown hunk 'no.such'": "abba~no.such",
               "variant 'abba' has no hunk 'abba.ordered' to revert": "abba~abba.ordered"}.get(expected, "racy")
    assert cli.main(["fuzz", ref, "--variant", variant, "--runs", "1"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_an_installed_package_registers_scenarios_under_the_entry_point_group(tmp_path, monkeypatch):
    package = tmp_path / "their_protocols"
    package.mkdir()
    shutil.copy(EXAMPLES / "abba.py", package / "__init__.py")
    info = tmp_path / "their_protocols-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: their-protocols\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\nabba = their_protocols\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTRY", {})
    sc = registry.get("abba")
    assert sc.module == "their_protocols" and sc.source is None
    assert "uffd-move-vs-referenced" in registry.scenarios()
    assert fingerprint.files(sc)[0] == "__init__.py"
