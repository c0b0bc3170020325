"""Exhaustive search: sound against naive enumeration, decisive on the flagship."""

import functools
import json

import pytest

from fuzzrmap import cli, engine
from fuzzrmap import scenario as registry
from fuzzrmap.scenario import FAILS
from fuzzrmap.sched.strategies.dpor import conflicting

import tiny


def outcomes(scenario, variant, reduction, **kw):
    seen, traces = set(), set()

    def record(execution, sched):
        world = sched.world.world
        seen.add((world.final_state(), execution.failure.invariant if execution.failure else None))
        traces.add(mazurkiewicz(execution))

    result = engine.explore(scenario, variant, reduction=reduction, stop_on_failure=False, on_execution=record,
                            check_footprints=True, **kw)
    assert result.complete
    return result, seen, traces


def mazurkiewicz(execution):
    """The trace of an execution: each thread's steps, and the order of every dependent pair."""
    ids, count = [], {}
    for s in execution.steps:
        ids.append((s.task, count.setdefault(s.task, 0), s.label))
        count[s.task] += 1
    order = frozenset((ids[i], ids[j]) for i in range(len(ids)) for j in range(i + 1, len(ids))
                      if execution.steps[i].task != execution.steps[j].task
                      and conflicting(execution.steps[i].footprint, execution.steps[j].footprint))
    return frozenset(ids), order


@pytest.mark.parametrize("scenario", tiny.ALL, ids=lambda s: s.name)
@pytest.mark.parametrize("variant", ["buggy", "locked"])
def test_reduced_search_reaches_the_same_states_and_violations_as_naive(scenario, variant):
    v = scenario.variant(variant)
    naive, naive_seen, naive_traces = outcomes(scenario, v, reduction=False)
    dpor, dpor_seen, dpor_traces = outcomes(scenario, v, reduction=True)
    assert dpor_seen == naive_seen
    assert dpor.executions < naive.executions
    if not any(inv for _, inv in naive_seen):
        # without violations cutting executions short, each trace is run exactly once
        assert dpor.executions == len(naive_traces) == len(dpor_traces)


def test_the_tiny_bugs_are_there():
    found = {s.name: {inv for _, inv in outcomes(s, s.variant("buggy"), reduction=True)[1]} for s in tiny.ALL}
    assert "TINY" in found["tiny-lost-update"]
    assert "I8" in found["tiny-abba"]
    assert "I5a" in found["tiny-rcu-free"]


FLAGSHIP = [(s.name, v.name, v.expect) for s in registry.scenarios().values() for v in s.variants]


@functools.lru_cache(maxsize=None)
def explored(scenario, variant):
    """The default search of a flagship variant, run once for all the tests that read it."""
    sc = registry.get(scenario)
    return engine.explore(sc, sc.variant(variant), check_footprints=True)


@pytest.mark.parametrize("scenario,variant,expect", FLAGSHIP)
def test_explore_decides_every_flagship_variant(scenario, variant, expect):
    result = explored(scenario, variant)
    if expect == FAILS:
        assert result.failure is not None, f"{scenario}/{variant}: a violation exists"
        assert result.failure.failure.task == "reader"
    else:
        assert result.failure is None and result.complete, f"{scenario}/{variant} must be verified"
        assert result.naive_upper_bound > 100 * result.executions


def test_the_residual_slow_path_window_is_an_unbalanced_unlock():
    result = explored("uffd-move-vs-page-idle-fork", "fixed")
    failure = result.failure.failure
    assert failure.invariant == "I7"
    labels = [s.label for s in result.failure.steps]
    assert any(label.startswith("FK5") for label in labels)
    assert labels[failure.step].startswith("S6 anon_vma_unlock_read")
    assert labels[failure.step].endswith("up_read(anon_vma#3->rwsem)"), "the label names the rwsem released"
    # the run goes on: the read hold S5 took on the re-used slot leaks into the retry
    assert result.failure.consequences[0].invariant == "I1a"
    # the legend of the reader's last preemption names the step as it ran, not as it looked then
    sc = registry.get("uffd-move-vs-page-idle-fork")
    last = engine.preemptions(sc, sc.variant("fixed"), result.failure)[-1]
    assert last.thread == "reader" and last.before == labels[failure.step], last
    assert last.legend().startswith(f"step {last.step}*: reader delayed at a preemptible point, before S6")


def test_the_fast_path_retry_returns_a_stale_anon_vma_unlocked_and_the_proposed_reset_closes_it():
    sc = registry.get("uffd-move-vs-referenced-unmap-dst")
    failure = engine.explore(sc, sc.variant("fixed")).failure
    assert failure.failure.invariant == "I1a" and "holding []" in failure.failure.message
    labels = [s.label for s in failure.steps if failure.roles[s.task] == "reader"]
    retry = next(i for i, label in enumerate(labels) if label.startswith("L5 up_read"))
    assert labels[retry + 2].startswith("L1") and labels[retry + 3].startswith("L2"), labels[retry:]
    proposed = engine.explore(sc, sc.variant("proposed"))
    assert proposed.complete and proposed.failure is None


def test_a_preemption_bound_limits_the_naive_search():
    sc = registry.get("uffd-move-vs-referenced")
    v = sc.variant("unpatched")
    none = engine.explore(sc, v, reduction=False, preemption_bound=0)
    assert none.complete and none.failure is None and none.bound_cut
    one = engine.explore(sc, v, reduction=False, preemption_bound=1)
    assert one.failure is not None


def test_cli_explore_exit_codes_and_seed_file(tmp_path, capsys):
    out = str(tmp_path)
    assert cli.main(["explore", "uffd-move-vs-page-idle", "--variant", "unpatched", "--out", out, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "violation"
    assert cli.main(["replay", report["seed_file"]]) == 1
    assert cli.main(["explore", "uffd-move-vs-page-idle", "--max-executions", "5", "--out", out]) == cli.EXIT_BUDGET
    assert "INCOMPLETE" in capsys.readouterr().out
    assert cli.main(["explore", "uffd-move-vs-page-idle", "--preemption-bound", "-1"]) == cli.EXIT_USAGE


def test_the_verified_line_states_its_scope(capsys):
    assert cli.main(["explore", "uffd-move-vs-page-idle", "--variant", "fixed", "--check-footprints"]) == cli.EXIT_CLEAN
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("VERIFIED: no violation; every interleaving is equivalent to one that was run; scope: ")
    for part in ("scenario uffd-move-vs-page-idle", "variant fixed (G1; hunks on: rmap.fast_recheck, rmap.slow_recheck)",
                 "preempt anywhere", "no bound"):
        assert part in line


def test_readers_race_only_where_they_write():
    """Four rmap readers clear the accessed bits under the PTL; the checks' reads of what the PTEs
    map, a resource apart, do not race with those clears, so their orders are few."""
    sc = registry.get("referenced+referenced+page-idle+page-idle")
    result = engine.explore(sc, sc.variant("fixed"), check_footprints=True)
    assert result.complete and result.failure is None
    assert result.executions <= 100
