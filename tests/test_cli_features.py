"""Progress on a terminal only, --version and defaults in --help, explore --target/--all, replay DIR."""

import json
import os
import pty
import select
import shutil
import subprocess
import sys

import pytest

from fuzzrmap import cli

IDLE = "uffd-move-vs-page-idle"


def on_a_terminal(argv, cwd):
    """Run the CLI with stderr on a pseudo-terminal and stdout on a pipe; (code, stdout, terminal bytes)."""
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120")
    proc = subprocess.Popen([sys.executable, "-m", "fuzzrmap", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.stdout.read()
    return proc.wait(timeout=120), out, seen


@pytest.mark.parametrize("verb", ["explore", "shrink", "fuzz"])
def test_progress_shows_on_a_terminal_and_never_with_json_or_in_a_pipe(verb, seed_path, tmp_path):
    argv = {"explore": ["explore", IDLE, "--max-executions", "300", "--out", tmp_path],
            "shrink": ["shrink", seed_path, "-o", tmp_path / "min.json"],
            "fuzz": ["fuzz", IDLE, "--runs", "300", "--out", tmp_path]}[verb]
    unit, phase = {"explore": ("executions", "explore"), "shrink": ("executions", "shrink: proof"),
                   "fuzz": ("schedules", "fuzz")}[verb]
    code, out, terminal = on_a_terminal(argv, tmp_path)
    assert code in (0, 3), terminal
    assert phase.encode() in terminal and unit.encode() in terminal and b"/s" in terminal, terminal[-400:]
    assert b"\033" not in out, "stdout is a pipe: no escape codes there"

    code, out, terminal = on_a_terminal(argv + ["--json"], tmp_path)
    assert terminal == b"" and json.loads(out)

    piped = subprocess.run([sys.executable, "-m", "fuzzrmap", *map(str, argv)], capture_output=True, cwd=tmp_path)
    assert piped.stderr == b"" and b"\033" not in piped.stdout


def test_version_and_every_default_in_help(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == "fuzzrmap 0.1.0"
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.option_strings and action.dest != "help" and action.default not in (None, False):
                assert "default" in (action.help or ""), (name, action.option_strings)
            if action.option_strings and action.dest not in ("help",):
                assert action.help, (name, action.option_strings)
    fuzz = sub.choices["fuzz"].format_help()
    assert "default: fixed" in fuzz.replace("\n", " ").replace("  ", " ")


def test_explore_target_searches_past_other_violations(tmp_path, capsys):
    assert cli.main(["explore", IDLE, "--variant", "unpatched", "--json", "--out", str(tmp_path)]) == 1
    first = json.loads(capsys.readouterr().out)
    assert first["invariant"] == "I1c"
    assert cli.main(["explore", IDLE, "--variant", "unpatched", "--target", "I1b", "--json",
                     "--out", str(tmp_path)]) == 1
    targeted = json.loads(capsys.readouterr().out)
    assert targeted["invariant"] == "I1b" and targeted["executions"] > first["executions"]
    assert json.loads(open(targeted["seed_file"]).read())["failure"]["invariant"] == "I1b"
    # a target that the fixed variant never breaks: a complete search, verified
    assert cli.main(["explore", IDLE, "--target", "I7", "--out", str(tmp_path)]) == 0
    assert "VERIFIED: no I7 violation" in capsys.readouterr().out
    assert cli.main(["explore", IDLE, "--target", "7"]) == cli.EXIT_USAGE
    assert "is not an invariant id" in capsys.readouterr().err


def test_explore_all_lists_each_distinct_violation_once(tmp_path, capsys):
    assert cli.main(["explore", IDLE, "--variant", "unpatched", "--all", "--json", "--out", str(tmp_path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["complete"]
    violations = report["violations"]
    keys = [(v["invariant"], tuple((p["thread"], p["label"]) for p in v["racing_pair"])) for v in violations]
    assert len(keys) == len(set(keys)) >= 2
    assert {v["invariant"] for v in violations} >= {"I1b", "I1c"}
    assert sum(v["seen"] for v in violations) > len(violations), "repeats were folded"
    assert len({v["seed_file"] for v in violations}) == len(violations) == len(list(tmp_path.iterdir()))
    for v in violations:
        assert cli.main(["replay", v["seed_file"]]) == 1
    capsys.readouterr()


def test_replay_dir_summarises_every_seed_file(seed_path, tmp_path, capsys):
    shutil.copy(seed_path, tmp_path / "a.json")
    assert cli.main(["replay", str(tmp_path)]) == cli.EXIT_FOUND
    out = capsys.readouterr().out
    assert "1 of 1 seed files replayed: 1 reproduced a failure, 0 clean as recorded, 0 bad" in out
    data = json.loads(seed_path.read_text())
    data["fingerprint"] = "sha256:0"
    (tmp_path / "b.json").write_text(json.dumps(data))
    (tmp_path / ".b.json.1234.tmp").write_text("half")
    assert cli.main(["replay", str(tmp_path), "--json"]) == cli.EXIT_USAGE
    report = json.loads(capsys.readouterr().out)
    assert (report["reproduced"], report["clean"], report["bad"]) == (1, 0, 1)
    assert [(os.path.basename(f["path"]), f["outcome"]) for f in report["seed_files"]] == \
        [("a.json", "reproduced"), ("b.json", "bad")]
    assert "stale seed file" in report["seed_files"][1]["detail"]


def test_the_text_report_fits_100_columns_when_piped(tmp_path):
    p = subprocess.run([sys.executable, "-m", "fuzzrmap", "fuzz", "uffd-move-vs-referenced", "--variant", "unpatched",
                        "--runs", "20000", "--seed", "1", "--out", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    lines = p.stdout.splitlines()
    header = next(line for line in lines if line.startswith(" step |"))
    report = lines[lines.index(header):]  # the lines above name files, whose paths are the user's
    assert max(map(len, report)) <= cli.PIPE_WIDTH and report[-1].startswith(("racing pair", "    "))
    assert [cell.strip() for cell in header.split("|")[1:]] == ["reader", "mover", "munmap"]
