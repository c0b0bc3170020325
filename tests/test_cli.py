"""The command line: exit codes, seed files, replay, and every kind of bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzrmap import cli, engine, fingerprint

SCENARIO = "uffd-move-vs-page-idle"


def run(*argv):
    """The CLI in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "fuzzrmap", *map(str, argv)], capture_output=True, text=True)


def test_fuzz_finds_the_unpatched_race_and_writes_a_seed_file(tmp_path):
    p = run("fuzz", SCENARIO, "--variant", "unpatched", "--runs", "2000", "--seed", "1", "--out", tmp_path, "--json")
    assert p.returncode == 1, p.stderr
    report = json.loads(p.stdout)
    assert report["failures"] == 1 and report["invariant"].startswith("I1")
    assert set(report) >= {"scenario", "variant", "strategy", "seed", "schedules", "failures",
                           "first_failure_at", "elapsed_s", "schedules_per_s", "seed_file"}
    assert Path(report["seed_file"]).exists()
    data = json.loads(Path(report["seed_file"]).read_text())
    assert data["format"] == "fuzzrmap-seed" and data["version"] == 1
    assert data["scenario"] == SCENARIO and data["variant"] == "unpatched"
    assert data["decisions"] == [s["task"] for s in data["steps"]]
    assert data["failure"]["invariant"] == report["invariant"]


def test_fuzz_on_the_fixed_variant_exits_0(tmp_path):
    p = run("fuzz", SCENARIO, "--variant", "fixed", "--runs", "300", "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    assert "no failure found" in p.stdout and "300 schedules" in p.stdout
    assert list(tmp_path.iterdir()) == []


def test_replay_reproduces_byte_identically_in_other_processes(seed_path):
    outs = []
    for hashseed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        p = subprocess.run([sys.executable, "-m", "fuzzrmap", "replay", str(seed_path)],
                           capture_output=True, text=True, env=env)
        assert p.returncode == 1, p.stderr
        outs.append(p.stdout)
    assert outs[0] == outs[1]
    recorded = json.loads(seed_path.read_text())["failure"]
    assert f"FAILED {recorded['invariant']}" in outs[0]
    assert "reader" in outs[0].splitlines()[2] and "mover" in outs[0].splitlines()[2]


def test_replay_json_has_the_recorded_steps(seed_path, capsys):
    assert cli.main(["replay", str(seed_path), "--json", "--driver", "trio"]) == cli.EXIT_FOUND
    out = json.loads(capsys.readouterr().out)
    recorded = json.loads(seed_path.read_text())
    assert out["reproduced"] is True
    assert [(s["func"], s["label"]) for s in out["steps"]] == [(s["func"], s["label"]) for s in recorded["steps"]]


def edited(seed_path, tmp_path, change):
    data = json.loads(seed_path.read_text())
    change(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


def _divert(d):
    # swap in a task that is enabled at that step but was not chosen
    for i, s in enumerate(d["steps"]):
        other = [t for t in s["enabled"] if t != s["task"]]
        if other:
            s["task"] = d["decisions"][i] = other[0]
            return


def _relabel(d):
    d["steps"][3]["label"] = "L9 something else"


def _unknown_thread(d):
    d["steps"][0]["task"] = d["decisions"][0] = 17


BAD_SEED_FILES = {
    "malformed json": (lambda p, t: _write(t / "x.json", "{not json"), "invalid JSON"),
    "truncated": (lambda p, t: _write(t / "x.json", p.read_text()[: len(p.read_text()) // 2]), "invalid JSON"),
    "not a seed file": (lambda p, t: _write(t / "x.json", "[1, 2]"), "not a fuzzrmap seed file"),
    "unknown version": (lambda p, t: edited(p, t, _set("version", 99)), "version 99 is not supported"),
    "unknown scenario": (lambda p, t: edited(p, t, _set("scenario", "nope")), "unknown scenario 'nope'"),
    "unknown variant": (lambda p, t: edited(p, t, _set("variant", "nope")), "has no variant 'nope'"),
    "stale fingerprint": (lambda p, t: edited(p, t, _set("fingerprint", "sha256:0")), "stale seed file"),
    "missing field": (lambda p, t: edited(p, t, lambda d: d.pop("steps")), "missing 'steps'"),
    "wrong type": (lambda p, t: edited(p, t, _set("threads", "reader")), "'threads' should be a list"),
    "decisions disagree": (lambda p, t: edited(p, t, lambda d: d["decisions"].insert(0, d["decisions"].pop())), "'decisions' disagrees"),
    "unknown thread": (lambda p, t: edited(p, t, _unknown_thread), "names a thread that does not exist"),
    "diverging decision": (lambda p, t: edited(p, t, _divert), "diverges from the model at step"),
    "diverging label": (lambda p, t: edited(p, t, _relabel), "diverges from the model at step 3"),
    "missing file": (lambda p, t: t / "absent.json", "no such seed file"),
    "empty directory": (lambda p, t: t, "no seed files"),
}


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(BAD_SEED_FILES))
def test_bad_seed_files_get_one_line_and_exit_2(case, seed_path, tmp_path):
    make, expected = BAD_SEED_FILES[case]
    p = run("replay", make(seed_path, tmp_path))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fuzzrmap: error: "), p.stderr
    assert expected in lines[0]


@pytest.mark.parametrize("argv,expected", [
    (["fuzz", "no-such-scenario"], "unknown scenario"),
    (["fuzz", SCENARIO, "--variant", "nope"], "has no variant 'nope'"),
    (["fuzz", SCENARIO, "--runs", "0"], "must be at least 1"),
    (["fuzz", SCENARIO, "--runs", "many"], "not a whole number"),
    (["fuzz", SCENARIO, "--seed", "-1"], "between 0 and"),
    (["fuzz", SCENARIO, "--strategy", "dfs"], "invalid choice"),
    (["fuzz", SCENARIO, "--strategy", "random", "--depth", "2"], "--depth applies to --strategy pct only"),
    (["fuzz", SCENARIO, "--stay", "0.5"], "--stay applies to --strategy sticky only"),
    (["fuzz", SCENARIO, "--strategy", "sticky", "--stay", "1.5"], "must be at least 0 and below 1"),
    (["fuzz", SCENARIO, "--bogus"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_flags_get_one_line_and_exit_2(argv, expected, capsys):
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


@pytest.mark.parametrize("command", [["fuzz", SCENARIO, "--variant", "unpatched", "--runs", "2000"],
                                     ["explore", SCENARIO, "--variant", "unpatched"]])
def test_an_unusable_out_dir_is_refused_before_running(command, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    ran = []
    monkeypatch.setattr(engine, "prepare", lambda *a, **k: ran.append(a) or pytest.fail("ran a schedule"))
    assert cli.main(command + ["--out", str(blocker / "sub")]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and not ran
    assert captured.err.startswith("fuzzrmap: error: --out: cannot write to ") and "Not a directory" in captured.err


def test_list_shows_every_variant_with_its_expectation(capsys):
    assert cli.main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    names = {(s["scenario"], v["name"], v["expect"], v["scope"]) for s in listed["scenarios"] for v in s["variants"]}
    assert ("uffd-move-vs-referenced", "no-slow-recheck", "clean", "G1 - rmap.slow_recheck") in names
    assert ("uffd-move-vs-page-idle", "no-slow-recheck", "fails", "G1 - rmap.slow_recheck") in names
    generations = {g["name"]: g["hunks"] for g in listed["generations"]}
    assert generations["G1"] == ["rmap.fast_recheck", "rmap.slow_recheck"] and generations["G0"] == []


def test_fingerprint_ignores_docstrings_but_not_code():
    src = 'def f():\n    """doc"""\n    return 1\n'
    assert fingerprint._normalised(src) == fingerprint._normalised(src.replace("doc", "other words"))
    assert fingerprint._normalised(src) != fingerprint._normalised(src.replace("return 1", "return 2"))
