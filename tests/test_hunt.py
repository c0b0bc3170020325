"""fuzzrmap hunt: variant choice, pruning, findings that replay, resuming, exit codes."""

import json

import pytest

from fuzzrmap import cli, engine, hunt
from fuzzrmap.kernel.actors import CATALOGUE
from fuzzrmap.sched import seedfile

SMALL_G0 = ["hunt", "--generation", "G0", "--actors", "referenced,uffd-move,munmap", "--max-actors", "2"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def g0_hunt(tmp_path_factory):
    """A small hunt of the pre-patch reader, run once through the CLI: (exit code, JSON, directory)."""
    out = tmp_path_factory.mktemp("hunt") / "g0"
    capture = pytest.MonkeyPatch()
    lines = []
    capture.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
    try:
        code = cli.main(SMALL_G0 + ["--out", str(out), "--json"])
    finally:
        capture.undo()
    return code, json.loads(lines[-1]), out


# -- which variant ---------------------------------------------------------------------

@pytest.mark.parametrize("generation, variant, chosen", [
    ("G1", None, "fixed"),
    ("G0", None, "unpatched"),
    ("G1", "no-slow-recheck", "no-slow-recheck"),
    (None, "no-fast-recheck", "no-fast-recheck"),
    (None, None, "fixed"),
])
def test_generation_and_variant_choose_one_variant(generation, variant, chosen):
    assert hunt.choose_variant(CATALOGUE, generation, variant).name == chosen


@pytest.mark.parametrize("generation, variant, message", [
    ("G9", None, "no variant of generation 'G9'"),
    ("G0", "fixed", "variant fixed is of generation G1, not G0"),
    (None, "nope", "no variant 'nope'"),
])
def test_a_variant_outside_the_generation_is_refused(generation, variant, message):
    with pytest.raises(hunt.HuntError, match=message):
        hunt.choose_variant(CATALOGUE, generation, variant)


# -- pruning ------------------------------------------------------------------------------

def footprints(variant="fixed"):
    v = CATALOGUE.variants[[x.name for x in CATALOGUE.variants].index(variant)]
    return hunt.Footprints(CATALOGUE, v)


def test_footprints_leave_out_the_threads_own_resources():
    fp = footprints().of(CATALOGUE.parse("page-idle").casts[0])
    assert fp["folio.mapping"] is False and fp["anon_vma#1.rwsem"] is True
    assert not any(r.endswith(":reader") for r in fp)


def test_only_a_shared_written_resource_keeps_a_composition():
    fp = footprints()
    assert hunt.communicate({"x": False}, {"x": True}) and not hunt.communicate({"x": False}, {"x": False})
    # a fork touches nothing a reader touches, but shares the slab with munmap
    assert hunt.isolated(CATALOGUE.compose("page-idle", "fork"), fp).name == "page-idle"
    assert hunt.isolated(CATALOGUE.compose("page-idle", "fork", "fork"), fp).name == "page-idle"
    assert hunt.isolated(CATALOGUE.compose("page-idle", "uffd-move(src=S)", "munmap(vma=S)", "fork"), fp) is None


def test_what_an_actor_touches_after_another_keeps_a_composition():
    """MADV_DONTNEED of D zaps F only once a move has put F there: alone it shares nothing with
    the reader, after the move it does, and the composition, where F2 lives, is kept."""
    fp = footprints()
    reader, move, zap = CATALOGUE.compose("page-idle", "uffd-move(src=S)", "madv-dontneed(vma=D)").casts
    assert not hunt.communicate(fp.of(reader), fp.of(zap))
    assert hunt.communicate(fp.of(reader), fp.of(zap, after=move))
    assert hunt.isolated(CATALOGUE.compose("page-idle", "madv-dontneed(vma=D)"), fp).name == "page-idle"
    assert hunt.isolated(CATALOGUE.compose("page-idle", "uffd-move(src=S)", "madv-dontneed(vma=D)"), fp) is None


def test_compositions_are_named_as_their_seed_files_name_them():
    variant = hunt.choose_variant(CATALOGUE, "G1", None)
    enumerated, _ = hunt.plan_compositions(CATALOGUE, variant, 3, ["uffd-move", "page-idle"])
    assert "page-idle+uffd-move(src=D)+uffd-move(src=S)" in [c.name for c in enumerated]
    assert all(CATALOGUE.parse(c.name).name == c.name for c in enumerated)


def test_pruning_is_printed_with_its_reason(tmp_path, capsys):
    code, out, _ = run(capsys, "hunt", "--generation", "G1", "--actors", "page-idle,fork", "--max-actors", "2",
                       "--out", str(tmp_path / "h"))
    assert code == cli.EXIT_CLEAN
    assert "pruned 1 (no shared written resource in a sequential run: page-idle shares nothing written in 1)" in out
    assert "pruning is a heuristic" in out
    assert "| 2 | 2 | 1 | 1 | 1 | 0 | 0 | 0 |" in out  # page-idle+fork: pruned, not verified


# -- findings -------------------------------------------------------------------------------

def test_the_pre_patch_reader_is_found_and_its_witness_replays(g0_hunt, capsys):
    code, report, out = g0_hunt
    assert code == cli.EXIT_FOUND
    assert report["generation"] == "G0" and report["variant"] == "unpatched"
    found = {(f["invariant"], f["composition"]) for f in report["findings"]}
    assert ("I1c", "referenced+uffd-move(src=S)") in found
    assert len({f["signature"] for f in report["findings"]}) == len(report["findings"])
    for f in report["findings"]:
        # one delay of the reader inside its RCU read-side section: CONFIG_PREEMPT_RCU or an interrupt
        assert f["needs_preemption"] == "full" and f["preemptions"] == 1 and f["preemptions_proved_minimal"]
        assert f["racing_pair"][1] == {"actor": "uffd-move", "func": "folio_move_anon_rmap",
                                       "label": "WRITE_ONCE(folio->mapping, anon_vma#2)"}
        seed = seedfile.read(f["seed_file"])
        assert seed.scenario == f["composition"] and seed.variant == "unpatched"
        code, text, _ = run(capsys, "replay", f["seed_file"])
        assert code == cli.EXIT_FOUND and f["invariant"] in text and "WRITE_ONCE(folio->mapping" in text


def test_the_json_report_has_every_field(g0_hunt):
    _, report, out = g0_hunt
    assert set(report["compositions"]) >= {"kept", "pruned", "verified", "violated", "budget_limited"}
    assert report["compositions"]["kept"] + report["compositions"]["pruned"] == report["compositions"]["enumerated"]
    assert set(report["findings"][0]) >= {"signature", "invariant", "message", "actors", "composition",
                                          "racing_pair", "preemptions", "needs_preemption", "seed_file"}
    assert json.loads((out / "hunt.json").read_text())["findings"] == report["findings"]
    assert "| signature |" in (out / "hunt.md").read_text()


def test_a_witness_composition_is_a_scenario_for_every_command(g0_hunt, capsys, tmp_path):
    name = "referenced+uffd-move(src=S)"
    code, out, _ = run(capsys, "explore", name, "--variant", "unpatched", "--out", str(tmp_path), "--json")
    assert code == cli.EXIT_FOUND and json.loads(out)["scenario"] == name
    code, out, _ = run(capsys, "fuzz", name, "--variant", "unpatched", "--runs", "500", "--out", str(tmp_path),
                       "--json")
    assert code == cli.EXIT_FOUND
    seed_path = json.loads(out)["seed_file"]
    code, out, _ = run(capsys, "shrink", seed_path, "-o", str(tmp_path / "min.json"), "--json")
    assert code == cli.EXIT_CLEAN
    finding = g0_hunt[1]["findings"][0]["seed_file"]
    code, out, _ = run(capsys, "show", finding, "--format", "chrome")
    assert code == cli.EXIT_CLEAN and json.loads(out)


def test_results_do_not_depend_on_the_number_of_workers(g0_hunt, tmp_path, capsys):
    code, out, _ = run(capsys, *SMALL_G0, "--jobs", "2", "--out", str(tmp_path / "j2"), "--json")
    two = json.loads(out)
    one = g0_hunt[1]

    def same(report):
        return [{k: v for k, v in f.items() if k not in ("seed_file", "replay")} for f in report["findings"]]
    assert code == g0_hunt[0] and same(two) == same(one) and two["compositions"] == one["compositions"]


# -- resuming --------------------------------------------------------------------------------

def test_an_interrupted_hunt_keeps_its_results_and_resumes(tmp_path, capsys, monkeypatch, g0_hunt):
    real = hunt.search
    calls = []

    def interrupted_at_the_third(*args):
        calls.append(args[2])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)
    monkeypatch.setattr(hunt, "search", interrupted_at_the_third)
    out = tmp_path / "h"
    code, _, err = run(capsys, *SMALL_G0, "--out", str(out))
    assert code == cli.EXIT_INTERRUPTED and "interrupted" in err
    assert len(list((out / "compositions").glob("*.json"))) == 2
    assert json.loads((out / "hunt.json").read_text())["interrupted"] is True

    calls.clear()
    monkeypatch.setattr(hunt, "search", real)
    code, out_text, _ = run(capsys, *SMALL_G0, "--resume", str(out), "--json")
    assert code == cli.EXIT_FOUND
    resumed = json.loads(out_text)
    assert resumed["compositions"] == g0_hunt[1]["compositions"]
    assert [f["signature"] for f in resumed["findings"]] == [f["signature"] for f in g0_hunt[1]["findings"]]

    monkeypatch.setattr(hunt, "search", lambda *a: pytest.fail(f"searched {a[2]} again"))
    assert run(capsys, *SMALL_G0, "--resume", str(out), "--json")[0] == cli.EXIT_FOUND


def interrupt_after_a_violation(monkeypatch):
    """Make the hunt's searches raise KeyboardInterrupt once one has found a violation;
    the verdicts searched so far."""
    real, calls = hunt.search, []

    def search(*args):
        if hunt.VIOLATED in calls:
            raise KeyboardInterrupt
        record = real(*args)
        calls.append(record["verdict"])
        return record
    monkeypatch.setattr(hunt, "search", search)
    return calls


def test_an_interrupted_hunt_does_not_call_its_unshrunk_violations_none(tmp_path, capsys, monkeypatch):
    calls = interrupt_after_a_violation(monkeypatch)
    out = tmp_path / "h"
    assert run(capsys, *SMALL_G0, "--out", str(out))[0] == cli.EXIT_INTERRUPTED
    assert hunt.VIOLATED in calls
    report = (out / "hunt.md").read_text()
    assert "No violation found." not in report and f"fuzzrmap hunt --resume {out}" in report


def test_an_interrupted_hunt_keeps_the_findings_met_before_it(tmp_path, capsys, monkeypatch, g0_hunt):
    """A signature is shrunk as soon as the compositions before its first witness are searched,
    ahead of the searches still waiting: an interrupt later keeps its seed file."""
    interrupt_after_a_violation(monkeypatch)
    out = tmp_path / "h"
    assert run(capsys, *SMALL_G0, "--out", str(out))[0] == cli.EXIT_INTERRUPTED
    report = json.loads((out / "hunt.json").read_text())
    first = g0_hunt[1]["findings"][0]
    assert report["findings"] and report["findings"][0]["signature"] == first["signature"]
    assert list((out / "findings").glob("*.json"))


@pytest.mark.parametrize("argv, message", [
    (["--max-actors", "1"], "written with other parameters (max_actors 2 there, 1 here)"),
    (["--budget", "7"], "written with other parameters (budget 5000 there, 7 here)"),
])
def test_resuming_with_other_parameters_is_refused(g0_hunt, capsys, argv, message):
    code, _, err = run(capsys, *SMALL_G0, *argv, "--resume", str(g0_hunt[2]))
    assert code == cli.EXIT_USAGE and message in err and len(err.strip().splitlines()) == 1


def test_resuming_against_another_model_is_refused(g0_hunt, capsys, monkeypatch):
    monkeypatch.setattr(engine, "fingerprint", lambda scenario: "sha256:other")
    code, _, err = run(capsys, *SMALL_G0, "--resume", str(g0_hunt[2]))
    assert code == cli.EXIT_USAGE and "this is model sha256:other" in err


def test_a_used_directory_is_not_overwritten(g0_hunt, capsys):
    code, _, err = run(capsys, *SMALL_G0, "--out", str(g0_hunt[2]))
    assert code == cli.EXIT_USAGE and "already holds a hunt" in err


# -- exit codes and bad input --------------------------------------------------------------------

def test_a_budget_limited_hunt_exits_3_with_the_miss_bound(tmp_path, capsys):
    code, out, _ = run(capsys, "hunt", "--generation", "G1", "--actors", "page-idle,munmap", "--max-actors", "2",
                       "--budget", "3", "--out", str(tmp_path / "h"), "--json")
    report = json.loads(out)
    assert code == cli.EXIT_BUDGET and report["compositions"]["budget_limited"] >= 1
    assert 0 < report["compositions"]["worst_miss_probability"] < 1


@pytest.mark.parametrize("argv, message", [
    (["--actors", "nothing"], "unknown actor 'nothing'"),
    (["--actors", "munmap,fork"], "no rmap reader or walker"),
    (["--generation", "G9"], "no variant of generation 'G9'"),
    (["--catalogue", "other"], "unknown catalogue 'other'"),
    (["--jobs", "0"], "must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code, out, err = run(capsys, "hunt", *argv, "--out", str(tmp_path / "h"))
    assert code == cli.EXIT_USAGE and message in err and len(err.strip().splitlines()) == 1 and out == ""


def test_sigterm_stops_the_workers_and_keeps_what_was_finished(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "h"
    # the compositions of up to three readers finish at once; page-idle+page-idle+exit-mmap takes minutes
    proc = subprocess.Popen([sys.executable, "-m", "fuzzrmap", "hunt", "--generation", "G1",
                             "--actors", "page-idle,exit-mmap", "--max-actors", "3", "--budget", "1000000",
                             "--jobs", "2", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while proc.poll() is None and len(list(out.glob("compositions/*.json"))) < 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)  # a worker left running would keep it waiting for minutes
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the hunt's process group
        except ProcessLookupError:
            pass
    assert proc.returncode == cli.EXIT_INTERRUPTED and "interrupted" in err
    report = json.loads((out / "hunt.json").read_text())
    finished = len(list(out.glob("compositions/*.json")))
    assert report["interrupted"] and 2 <= report["compositions"]["searched"] == finished
    assert finished < report["compositions"]["kept"]
