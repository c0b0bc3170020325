"""Parallel explore: the same verdict, violations and final states as one process, deterministically."""

import json
import random
import time

import pytest

from fuzzrmap import cli, engine, explore_parallel
from fuzzrmap import scenario as registry
from fuzzrmap.sched.api import FootprintError

import test_soundness
import tiny

PROGRAMS = ([(s, v) for s in tiny.ALL for v in s.variants]
            + [(s, s.variants[0]) for s in test_soundness.NATURAL]
            + [(tiny.FAMILIES[f](n), tiny.ONE[0]) for f in sorted(tiny.FAMILIES) for n in (2, 3)]
            + [(test_soundness.random_program(seed), tiny.ONE[0]) for seed in range(12)])


def searched(scenario, variant, jobs, **kw):
    return engine.explore(scenario, variant, stop_on_failure=False, final_states=True, jobs=jobs, **kw)


@pytest.mark.parametrize("scenario,variant", PROGRAMS, ids=lambda x: getattr(x, "name", ""))
def test_subtrees_in_workers_reach_what_one_process_reaches(scenario, variant):
    one = searched(scenario, variant, 1)
    # a unit per run splits the search as finely as it goes
    split = explore_parallel.explore(scenario, variant, 2, stop_on_failure=False, final_states=True, split_after=1)
    assert split.complete and one.complete
    assert test_soundness.clean(split.outcomes) == test_soundness.clean(one.outcomes)
    assert split.violations == one.violations


def test_a_flagship_variant_gets_the_same_verdict_and_violations():
    sc = registry.get("uffd-move-vs-page-idle")
    for variant in ("fixed", "unpatched"):
        one, two = (engine.explore(sc, sc.variant(variant), stop_on_failure=False, jobs=j) for j in (1, 2))
        assert two.complete and one.complete
        assert two.violations == one.violations
        assert bool(one.violations) == (variant == "unpatched")


def _late_run_unit(unit):
    """A worker that finishes its units in a shuffled order."""
    time.sleep(random.Random(unit.seq).random() * 0.02)
    return _RUN_UNIT(unit)


_RUN_UNIT = explore_parallel.run_unit


def test_the_result_does_not_depend_on_timing(monkeypatch):
    sc = registry.get("uffd-move-vs-page-idle-fork")
    search = lambda: engine.explore(sc, sc.variant("fixed"), jobs=2)  # noqa: E731  (up to the first failure)
    plain = search()
    monkeypatch.setattr(explore_parallel, "run_unit", _late_run_unit)  # the forked workers inherit it
    shuffled = search()
    assert (shuffled.executions, shuffled.pruned, shuffled.failure.steps) == \
        (plain.executions, plain.pruned, plain.failure.steps)


def test_the_first_failure_in_merge_order_stops_the_search():
    sc = registry.get("uffd-move-vs-page-idle")
    result = engine.explore(sc, sc.variant("unpatched"), jobs=2)
    assert result.failure is not None and not result.complete
    every = engine.explore(sc, sc.variant("unpatched"), stop_on_failure=False)
    assert (result.failure.failure.invariant, result.failure.failure.message) in every.violations


def test_cli_explore_jobs(capsys):
    assert cli.main(["explore", "uffd-move-vs-page-idle", "--variant", "fixed", "--jobs", "2", "--json"]) == cli.EXIT_CLEAN
    report = json.loads(capsys.readouterr().out)
    assert (report["verdict"], report["jobs"]) == ("verified", 2)
    assert cli.main(["explore", "uffd-move-vs-page-idle", "--jobs", "0"]) == cli.EXIT_USAGE


def test_a_bounded_naive_search_runs_the_same_schedules():
    sc = registry.get("uffd-move-vs-referenced")
    one, two = (engine.explore(sc, sc.variant("unpatched"), reduction=False, preemption_bound=0, jobs=j)
                for j in (1, 2))
    assert (two.executions, two.complete, two.bound_cut, two.failure) == (one.executions, True, True, None)


def test_a_footprint_error_in_a_worker_stops_the_search():
    scenario = tiny.liar()
    with pytest.raises(FootprintError, match=r"liar says it only reads x\) writes x.value"):
        engine.explore(scenario, scenario.variants[0], check_footprints=True, jobs=2)
