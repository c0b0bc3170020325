"""Shrinking keeps the failure, is deterministic and idempotent, and proves minimality."""

import json

import pytest

from fuzzrmap import cli, engine, report, shrink
from fuzzrmap import scenario as registry
from fuzzrmap.sched import seedfile
from fuzzrmap.sched.strategies.pct import PCT
from fuzzrmap.sched.strategies.random_walk import RandomWalk

CASES = [("uffd-move-vs-referenced", "unpatched"), ("uffd-move-vs-page-idle", "unpatched"),
         ("uffd-move-vs-page-idle", "no-slow-recheck")]


def found(scenario, variant, seed=1, strategy=PCT):
    sc = registry.get(scenario)
    v = sc.variant(variant)
    execution = engine.campaign(sc, v, strategy(seed), runs=20000).execution
    assert execution is not None
    return sc, v, execution


@pytest.mark.parametrize("scenario,variant", CASES)
def test_shrinking_keeps_the_invariant_and_reaches_the_proved_minimum(scenario, variant):
    sc, v, execution = found(scenario, variant)
    result = shrink.shrink(sc, v, execution)
    assert result.execution.failure.invariant == execution.failure.invariant
    assert (result.preemptions, len(result.execution.steps)) <= (shrink.preemptions(execution), len(execution.steps))
    # the flagship races need exactly one preemption, and the search with none proves it
    assert result.preemptions == 1 and result.proved
    assert "minimal: 1 preemption (proved" in result.minimality()
    none = engine.explore(sc, v, reduction=False, preemption_bound=0, target=execution.failure.invariant)
    assert none.complete and none.failure is None


def test_shrinking_is_deterministic_and_idempotent():
    sc, v, execution = found("uffd-move-vs-referenced", "unpatched")
    once = shrink.shrink(sc, v, execution).execution
    again = shrink.shrink(sc, v, execution).execution
    assert once.steps == again.steps
    twice = shrink.shrink(sc, v, once).execution
    assert twice.steps == once.steps


def test_shrinking_starts_from_schedules_with_many_preemptions():
    sc, v, execution = found("uffd-move-vs-page-idle", "unpatched", seed=4, strategy=RandomWalk)
    assert shrink.preemptions(execution) > 1
    assert shrink.shrink(sc, v, execution).preemptions == 1


def test_a_budget_that_runs_out_is_reported_as_not_proved():
    sc = registry.get("uffd-move-vs-page-idle-fork")
    v = sc.variant("fixed")
    execution = engine.explore(sc, v).failure
    result = shrink.shrink(sc, v, execution, proof_budget=50)
    assert result.execution.failure.invariant == "I7"
    assert not result.proved and result.at_least == 0 and result.budget_cut == 0
    assert "(not proved minimal: nothing proved; the search with 0 ran out of its budget)" in result.minimality()


def test_the_fork_window_witness_shrinks_and_states_its_bounds():
    """The explore witness has 5 preemptions and no failing trace with fewer is found; the
    naive searches prove that none with at most 1 exists (the one with 2 is past the budget).

    The proof runs in 2 worker processes; what is asserted is the ``jobs=1`` result (the
    counts of the sequential search with at most 1 below, bench/bench_shrink.py --jobs 1).
    """
    sc = registry.get("uffd-move-vs-page-idle-fork")
    v = sc.variant("fixed")
    execution = engine.explore(sc, v).failure
    assert shrink.preemptions(execution) == 5
    phases = []
    result = shrink.shrink(sc, v, execution, proof_budget=8900, jobs=2,
                           progress=lambda done, phase: phases.append(phase) if phase not in phases else None)
    assert result.execution.failure.invariant == "I7"
    assert result.preemptions == 5 and result.at_least == 2 and result.budget_cut == 2 and not result.proved
    assert result.minimality() == ("5 preemptions (not proved minimal: at least 2: no failure with at most 1 "
                                   f"in {result.proof_executions:,} executions; the search with 2 ran out of its budget)")
    none = engine.explore(sc, v, reduction=False, preemption_bound=1, target="I7")
    assert none.complete and none.failure is None and none.executions == result.proof_executions - 60
    assert phases[0].startswith("local edits: 5 preemptions, ") and phases[1] == "reduced search: every failing trace"


@pytest.mark.parametrize("scenario,variant,bound,budget,verdict", [
    ("uffd-move-vs-page-idle", "unpatched", 1, None, "failure"),
    ("uffd-move-vs-page-idle", "unpatched", 1, 7, "cut"),
    ("uffd-move-vs-page-idle", "unpatched", 1, 159, "cut"),  # the sequential search meets it at 160
    ("uffd-move-vs-page-idle", "unpatched", 1, 160, "failure"),
    ("uffd-move-vs-page-idle", "unpatched", 0, 12, "complete"),  # 12 schedules: the budget is just enough
    ("uffd-move-vs-page-idle", "unpatched", 0, 11, "cut"),
    ("uffd-move-vs-referenced", "unpatched", 1, None, "failure"),
])
def test_a_parallel_proof_search_answers_as_the_sequential_one(scenario, variant, bound, budget, verdict):
    """In order, 2 workers give the sequential naive search's first failure, cut and count."""
    sc = registry.get(scenario)
    v = sc.variant(variant)
    one, two = (engine.explore(sc, v, reduction=False, preemption_bound=bound, max_executions=budget,
                               jobs=jobs, in_order=True) for jobs in (1, 2))
    assert two.jobs == 2
    assert {"failure": one.failure is not None, "cut": not one.complete and one.failure is None,
            "complete": one.complete}[verdict]
    assert (two.complete, two.executions, two.violations) == (one.complete, one.executions, one.violations)
    assert (two.failure and two.failure.steps) == (one.failure and one.failure.steps)


def test_shrinking_with_workers_gives_the_same_result():
    sc, v, execution = found("uffd-move-vs-page-idle", "unpatched", seed=4, strategy=RandomWalk)
    one, two = (shrink.shrink(sc, v, execution, jobs=jobs) for jobs in (1, 2))
    assert two.execution.steps == one.execution.steps and two.to_json() == one.to_json()
    assert two.minimality() == one.minimality()


def test_the_report_of_a_shrunk_race_fits_a_screen_and_marks_the_race():
    sc, v, execution = found("uffd-move-vs-referenced", "unpatched")
    shrunk = shrink.shrink(sc, v, execution).execution
    race = shrink.racing_pair(sc, v, shrunk)
    a, b = (shrunk.steps[k].label for k in race)
    assert a.startswith("L1 anon_mapping = READ_ONCE(folio->mapping)")
    assert b.startswith("WRITE_ONCE(folio->mapping")
    text = report.interleaving(shrunk, race, compact=True)
    assert len(text.splitlines()) <= 36  # at 100 columns a few labels take two lines
    assert text.count(">> ") == 2 and text.count("!! ") == 1
    assert len([line for line in text.splitlines() if "* |" in line]) == 1, "one preemption, marked"
    assert "\033[" not in text
    assert "\033[" in report.interleaving(shrunk, race, compact=True, color=True)
    assert shrunk.failure.invariant in report.verdict(shrunk, race)


def test_cli_shrink_writes_a_minimal_seed_file_that_replays(tmp_path, capsys):
    out = str(tmp_path)
    assert cli.main(["fuzz", "uffd-move-vs-page-idle", "--variant", "unpatched", "--seed", "2",
                     "--no-shrink", "--out", out, "--json"]) == 1
    found_path = json.loads(capsys.readouterr().out)["seed_file"]
    assert len(list(tmp_path.iterdir())) == 1
    assert cli.main(["shrink", found_path, "--json"]) == 0
    shrunk = json.loads(capsys.readouterr().out)
    assert shrunk["proved"] and shrunk["preemptions"] == 1
    data = json.loads(open(shrunk["seed_file"]).read())
    assert data["shrink"]["preemptions"] == 1
    assert data["strategy"] == {"name": "shrink", "from": json.loads(open(found_path).read())["strategy"]}
    assert cli.main(["replay", shrunk["seed_file"]]) == 1
    assert "minimal" not in capsys.readouterr().err


def test_cli_shrink_refuses_a_schedule_that_does_not_fail(tmp_path, capsys):
    sc = registry.get("uffd-move-vs-referenced")
    v = sc.variant("fixed")
    execution = engine.run_one(sc, v, RandomWalk(1), 0)
    path = tmp_path / "clean.json"
    seedfile.write(engine.seed_file_for(sc, v, RandomWalk(1), execution), path)
    assert cli.main(["shrink", str(path)]) == cli.EXIT_USAGE
    assert "nothing to shrink" in capsys.readouterr().err
