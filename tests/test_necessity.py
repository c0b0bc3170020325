"""fuzzrmap necessity: each hunk of a variant reverted alone and searched."""

import json
from pathlib import Path

from fuzzrmap import cli
from fuzzrmap.sched import seedfile

EXAMPLE = str(Path(__file__).resolve().parent.parent / "docs" / "examples" / "moving_item.py")


def test_necessity_proves_one_hunk_needed_and_the_other_not(tmp_path, capsys):
    assert cli.main(["necessity", EXAMPLE, "--variant", "fixed", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["scenario"], out["variant"], out["baseline"]["fails"]) == ("moving-item", "fixed", False)
    hunks = {h["hunk"]: h for h in out["hunks"]}
    assert hunks["table.recheck"]["needed"] is True and hunks["table.recheck"]["invariant"] == "STALE"
    assert hunks["table.lock_destination"] == {**hunks["table.lock_destination"], "needed": False,
                                               "complete": True, "seed_file": None}
    seed = seedfile.read(Path(hunks["table.recheck"]["seed_file"]))
    assert seed.variant == "fixed~table.recheck" and seed.shrink["preemptions"] == 1
    assert cli.main(["replay", hunks["table.recheck"]["seed_file"], "--scenario", EXAMPLE]) == cli.EXIT_FOUND


def test_necessity_says_unknown_when_the_budget_is_too_small(tmp_path, capsys):
    argv = ["necessity", EXAMPLE, "--variant", "fixed", "--out", str(tmp_path), "--json", "--max-executions", "1",
            "--runs", "1"]
    assert cli.main(argv) == 0
    hunks = {h["hunk"]: h for h in json.loads(capsys.readouterr().out)["hunks"]}
    assert hunks["table.lock_destination"]["needed"] is None and not hunks["table.lock_destination"]["complete"]


def test_necessity_needs_a_variant_with_hunks(capsys):
    assert cli.main(["necessity", EXAMPLE, "--variant", "unpatched"]) == cli.EXIT_USAGE
    assert "has no code hunk to revert" in capsys.readouterr().err


ALWAYS = '''
from fuzzrmap.check import SAFETY, violation
from fuzzrmap.hunks import hunk
from fuzzrmap.scenario import FAILS, Scenario, Variant, World
from fuzzrmap.sync import Cell

NOOP = hunk("always.noop", "changes nothing")


def setup():
    c = Cell("c", 0)

    async def t():
        await c.store(1)

    def check():
        raise violation("ALWAYS", SAFETY, "fails whatever the hunks")

    return World(threads=[("t", t)], final_check=check)


SCENARIO = Scenario("always", "t", "t", (Variant("v", FAILS, "", add=[NOOP]),), setup)
'''


def test_a_failure_without_a_hunk_decides_nothing_when_the_variant_fails_anyway(tmp_path, capsys):
    (tmp_path / "always.py").write_text(ALWAYS)
    argv = ["necessity", str(tmp_path / "always.py"), "--variant", "v", "--out", str(tmp_path), "--json"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["baseline"]["fails"] is True
    assert out["hunks"][0]["needed"] is None and out["hunks"][0]["invariant"] == "ALWAYS"
