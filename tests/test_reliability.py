"""Hostile input and faults: each case as a user met it, and the behaviour it must get.

The numbers in the test names are those of the defects they cover: bad input
gets one line and exit 2; interruption (Ctrl-C, SIGTERM, with either driver,
in the shrinker's proof) gets exit 130 and loses nothing; output problems
(closed, broken or full stdout; a failed save) never change the verdict; no
result is silently overwritten; one permission policy.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import attrs
import pytest

from fuzzrmap import cli, engine, files, shrink
from fuzzrmap.sched import seedfile
from fuzzrmap.sched.strategies.pct import PCT
from tests.helpers import ctrl_c_reaches_it

SCENARIO = "uffd-move-vs-page-idle"


def command(*argv):
    return [sys.executable, "-m", "fuzzrmap", *map(str, argv)]


def run(*argv, **kwargs):
    return subprocess.run(command(*argv), capture_output=True, text=True, timeout=120, **kwargs)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fuzzrmap: error: "), err
    assert "Traceback" not in err and "\033" not in err
    return lines[0]


def edited(seed_path, tmp_path, change, name="edited.json"):
    data = json.loads(seed_path.read_text())
    change(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


# -- 1, 8, 9, 10, 12: what a seed file may hold ------------------------------------------

def _deep(p, t):
    path = t / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def _big_int(p, t):
    path = t / "big.json"
    path.write_text('{"format": "fuzzrmap-seed", "version": 1' + "0" * 5000 + "}")
    return path


def _fifo(p, t):
    path = t / "fifo.json"
    os.mkfifo(path)
    return path


def _dev_zero(p, t):
    path = t / "zero.json"
    path.symlink_to("/dev/zero")
    return path


def _huge(p, t):
    path = t / "huge.json"
    with open(path, "wb") as f:
        f.truncate(files.MAX_READ + 1)
    return path


def _set_strategy(value):
    return lambda p, t: edited(p, t, lambda d: d.__setitem__("strategy", value))


def _raw_strategy(text):
    def make(p, t):
        data = p.read_text()
        path = t / "raw.json"
        path.write_text(data.replace('"strategy": {', '"strategy": {"x": ' + text + ", ", 1))
        return path
    return make


HOSTILE = {
    "1 deep nesting": (_deep, "JSON nested too deeply"),
    "1 integer of 5000 digits": (_big_int, "Exceeds the limit (4300 digits)"),
    "8 fifo": (_fifo, "not a regular file"),
    "8 symlink to /dev/zero": (_dev_zero, "not a regular file"),
    "8 larger than the cap": (_huge, "larger than 16 MiB"),
    "10 NaN in strategy": (_raw_strategy("NaN"), "NaN is not strict JSON"),
    "10 Infinity in strategy": (_raw_strategy("-Infinity"), "-Infinity is not strict JSON"),
    "10 deep strategy": (_raw_strategy('{"a": ' * 50 + "1" + "}" * 50), "nests deeper than 4"),
    "10 list in strategy": (_set_strategy({"name": "pct", "seeds": [1, 2]}), "strategy.seeds should be a string, number or object"),
    "12 version true": (lambda p, t: edited(p, t, lambda d: d.__setitem__("version", True)),
                        "version true is not supported"),
    "12 true in enabled": (lambda p, t: edited(p, t, lambda d: d["steps"][0]["enabled"].__setitem__(0, True)),
                           "steps[0] names a thread that does not exist"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("verb", ["replay", "shrink", "show"])
def test_hostile_seed_files_get_one_line_and_exit_2(case, verb, seed_path, tmp_path, capsys):
    make, expected = HOSTILE[case]
    path = make(seed_path, tmp_path)
    assert cli.main([verb, str(path)]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert expected in one_error_line(captured.err)
    assert captured.out == ""


def test_8_a_fifo_does_not_block_the_reader(tmp_path):
    fifo = _fifo(None, tmp_path)
    p = run("replay", fifo)  # blocked for ever before; the timeout would raise
    assert p.returncode == 2 and "not a regular file" in one_error_line(p.stderr)


def test_9_text_from_a_seed_file_is_quoted_in_messages(seed_path, tmp_path, capsys):
    evil = "sha256:\033[31mred\nsecond line"
    path = edited(seed_path, tmp_path, lambda d: d.__setitem__("fingerprint", evil))
    assert cli.main(["replay", str(path)]) == cli.EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)
    assert "stale seed file" in line and r"\x1b[31mred\nsecond line" in line

    def bad_func(d):
        d["steps"][3]["func"] = "folio\033[2Jwipe"
    path = edited(seed_path, tmp_path, bad_func)
    assert cli.main(["replay", str(path)]) == cli.EXIT_USAGE
    assert r"'folio\x1b[2Jwipe'" in one_error_line(capsys.readouterr().err)

    odd = tmp_path / "line\nbreak\033[0m.json"
    assert cli.main(["replay", str(odd)]) == cli.EXIT_USAGE
    assert r"line\nbreak\x1b[0m.json" in one_error_line(capsys.readouterr().err)


def test_10_shrink_refuses_a_strategy_900_objects_deep(seed_path, tmp_path):
    path = _raw_strategy('{"a": ' * 900 + "1" + "}" * 900)(seed_path, tmp_path)
    p = run("shrink", path)
    assert p.returncode == 2 and "nests deeper than 4" in one_error_line(p.stderr)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["raw.json"]


def test_10_seed_files_are_written_as_strict_json(seed_path, tmp_path):
    bad = attrs.evolve(seedfile.read(seed_path), strategy={"name": "pct", "k": float("nan")})
    with pytest.raises(ValueError):
        seedfile.write(bad, tmp_path / "nan.json")
    assert list(tmp_path.iterdir()) == []


def test_10_a_reshrunk_file_keeps_one_level_of_origin(seed_path, tmp_path, capsys):
    once = tmp_path / "once.json"
    assert cli.main(["shrink", str(seed_path), "-o", str(once), "--json"]) == 0
    twice = tmp_path / "twice.json"
    assert cli.main(["shrink", str(once), "-o", str(twice), "--json"]) == 0
    capsys.readouterr()
    origin = json.loads(seed_path.read_text())["strategy"]["from"]
    assert json.loads(twice.read_text())["strategy"] == {"name": "shrink", "from": origin}


# -- 2, 4, 11: interruption ----------------------------------------------------------------

def test_2_ctrl_c_with_the_trio_driver_exits_130_with_the_summary(monkeypatch, tmp_path, capsys):
    real = PCT.next_task
    calls = []

    def next_task(self, enabled, current, step):
        calls.append(step)
        if len(calls) == 3000:
            raise KeyboardInterrupt  # inside a trio task, as trio's signal handler raises it
        return real(self, enabled, current, step)

    monkeypatch.setattr(PCT, "next_task", next_task)
    argv = ["fuzz", SCENARIO, "--runs", "1000", "--driver", "trio", "--jobs", "1", "--out", str(tmp_path)]
    assert cli.main(argv) == cli.EXIT_INTERRUPTED
    captured = capsys.readouterr()
    assert "interrupted: no failure found so far" in captured.out
    assert "Traceback" not in captured.err


def test_4_ctrl_c_in_the_minimality_proof_is_reported_as_interrupted(seed_path, tmp_path, monkeypatch, capsys):
    real = engine.explore

    def interrupted_explore(*args, progress=None, **kwargs):
        def stop(executions, pruned):
            if executions + pruned >= 5:
                raise KeyboardInterrupt
        return real(*args, progress=stop, **kwargs)

    monkeypatch.setattr(shrink.engine, "explore", interrupted_explore)
    out = tmp_path / "min.json"
    assert cli.main(["shrink", str(seed_path), "-o", str(out)]) == cli.EXIT_INTERRUPTED
    captured = capsys.readouterr()
    assert "interrupted" in captured.out and "budget" not in captured.out
    written = json.loads(out.read_text())["shrink"]
    assert written["interrupted"] is True and written["proved"] is False


def _started(proc, out_dir):
    """Wait until the CLI has its signal handlers and runs schedules: it creates --out just before."""
    for _ in range(600):
        if out_dir.exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    time.sleep(0.3)
    assert proc.poll() is None, proc.communicate()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_11_sigterm_is_treated_like_ctrl_c(signum, tmp_path):
    seeds = tmp_path / "out"
    proc = subprocess.Popen(command("fuzz", SCENARIO, "--runs", "1000000", "--out", seeds),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_reaches_it)
    _started(proc, seeds)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_INTERRUPTED, (out, err)
    assert "interrupted: no failure found so far" in out and "Traceback" not in err
    assert [p.name for p in seeds.iterdir()] == []


# -- 3: --depth --------------------------------------------------------------------------

def test_3_depth_is_range_checked_and_its_bound_computed_in_logs(tmp_path, capsys):
    assert cli.main(["fuzz", SCENARIO, "--depth", "1000000000", "--out", str(tmp_path)]) == cli.EXIT_USAGE
    assert "must be between 1 and 5000" in one_error_line(capsys.readouterr().err)
    assert cli.main(["fuzz", SCENARIO, "--depth", "200", "--runs", "3", "--out", str(tmp_path)]) == cli.EXIT_CLEAN
    assert "a depth-200 bug is missed with probability <= 1" in capsys.readouterr().out
    pct = PCT(0, depth=5000)
    pct.max_tasks, pct.k = 5, 5000
    assert pct.miss_probability(10**9) == pytest.approx(1.0)


# -- 5, 7, 13: output files -------------------------------------------------------------------

def _fuzz_json(capsys, *argv):
    code = cli.main(["fuzz", SCENARIO, "--variant", "unpatched", "--no-shrink", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_5_seed_file_names_carry_the_strategy_and_never_overwrite_another_result(tmp_path, capsys):
    out = ["--out", str(tmp_path), "--seed", "6", "--runs", "3000"]
    code, pct = _fuzz_json(capsys, "--strategy", "pct", "--depth", "4", *out)
    assert code == 1
    code, sticky = _fuzz_json(capsys, "--strategy", "sticky", *out)
    assert code == 1
    assert pct["seed_file"] != sticky["seed_file"]
    assert "-pct-d4-s6-" in pct["seed_file"] and "-sticky-stay0.9-s6-" in sticky["seed_file"]
    # the same run again finds the same file: kept, not duplicated
    assert _fuzz_json(capsys, "--strategy", "pct", "--depth", "4", *out)[1]["seed_file"] == pct["seed_file"]
    assert len(list(tmp_path.iterdir())) == 2
    # a different result under that name goes beside it
    path = tmp_path / os.path.basename(pct["seed_file"])
    path.write_text(path.read_text().replace('"depth": 4', '"depth": 4, "edited": 1'))
    again = _fuzz_json(capsys, "--strategy", "pct", "--depth", "4", *out)[1]["seed_file"]
    assert again == str(path.with_name(path.stem + "-2.json"))
    assert '"edited": 1' in path.read_text()


def test_5_explore_modes_write_different_files(tmp_path, capsys):
    names = set()
    for extra in ([], ["--preemption-bound", "1"], ["--preemption-bound", "2"]):
        assert cli.main(["explore", SCENARIO, "--variant", "unpatched", "--out", str(tmp_path), "--json",
                         *extra]) == 1
        names.add(os.path.basename(json.loads(capsys.readouterr().out)["seed_file"]))
    stem = f"{SCENARIO}-unpatched-I1c-explore-"
    assert names == {stem + "dpor.json", stem + "naive-p1.json", stem + "naive-p2.json"}
    assert len(list(tmp_path.iterdir())) == 3


def test_7_a_failed_save_still_prints_what_was_found(tmp_path, monkeypatch, capsys):
    def full_disk(seed, path, replace=True):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(seedfile, "write", full_disk)
    argv = ["fuzz", SCENARIO, "--variant", "unpatched", "--runs", "2000", "--seed", "1", "--out", str(tmp_path)]
    assert cli.main(argv) == cli.EXIT_FOUND
    captured = capsys.readouterr()
    assert "FAILED at schedule" in captured.out and "seed file: not saved" in captured.out
    assert ">> " in captured.out, "the interleaving is printed"
    assert "cannot write seed file" in captured.err and "No space left on device" in captured.err


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_13_seed_files_and_exports_follow_the_umask(mask, seed_path, tmp_path, capsys):
    old = os.umask(mask)
    try:
        assert cli.main(["shrink", str(seed_path), "-o", str(tmp_path / "seed.json")]) == 0
        assert cli.main(["show", str(seed_path), "--format", "html", "-o", str(tmp_path / "page.html")]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    modes = {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {0o666 & ~mask}


# -- 6: stdout that cannot be written -----------------------------------------------------------

FOUND = ["fuzz", SCENARIO, "--variant", "unpatched", "--runs", "2000", "--seed", "1"]


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_6_a_closed_pipe_keeps_the_verdict(unbuffered, tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED=unbuffered)
    proc = subprocess.Popen(command(*FOUND, "--out", tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == cli.EXIT_FOUND, err
    assert first.startswith(b"uffd-move-vs-page-idle / unpatched") and err == ""


def test_6_a_closed_stdout_keeps_the_verdict(tmp_path):
    args = " ".join(command(*FOUND, "--out", tmp_path))
    p = subprocess.run(["sh", "-c", f"exec {args} >&-"], capture_output=True, text=True, timeout=60)
    assert p.returncode == cli.EXIT_FOUND
    assert "Traceback" not in p.stderr and "cannot write to stdout" in one_error_line(p.stderr)


def test_6_a_full_stdout_keeps_the_verdict(tmp_path):
    with open("/dev/full", "w") as full:
        p = subprocess.run(command(*FOUND, "--out", tmp_path), stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=60)
    assert p.returncode == cli.EXIT_FOUND
    assert "No space left on device" in one_error_line(p.stderr)
