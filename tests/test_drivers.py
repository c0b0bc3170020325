"""The scheduler's contracts: one driver's trace is the other's, runs are pure
functions of their inputs, and runaway or foreign code is reported."""

import os
import subprocess
import sys

import pytest

from fuzzrmap import engine
from fuzzrmap import scenario as registry
from fuzzrmap.sched.api import ModelError, point
from fuzzrmap.sched.strategies.pct import PCT
from fuzzrmap.sched.strategies.random_walk import RandomWalk

from helpers import run_threads

CASES = [(s, v) for s in ("uffd-move-vs-referenced", "uffd-move-vs-page-idle") for v in ("fixed", "unpatched")]


@pytest.mark.parametrize("scenario,variant", CASES)
def test_trio_and_direct_drivers_produce_identical_traces(scenario, variant):
    sc = registry.get(scenario)
    v = sc.variant(variant)
    indices = list(range(250))
    direct = list(engine.run_many(sc, v, PCT(5), indices, driver="direct"))
    trio_ = list(engine.run_many(sc, v, PCT(5), indices, driver="trio"))
    assert [e.steps for e in direct] == [e.steps for e in trio_]
    assert [e.failure for e in direct] == [e.failure for e in trio_]
    assert [e.events for e in direct] == [e.events for e in trio_]
    if variant == "unpatched":
        assert any(e.failure for e in direct), "the comparison must include failing schedules"


DIGEST = """
import hashlib
from fuzzrmap import engine, scenario
from fuzzrmap.sched.strategies.random_walk import RandomWalk
sc = scenario.get("uffd-move-vs-page-idle")
h = hashlib.sha256()
for e in engine.run_many(sc, sc.variant("unpatched"), RandomWalk(3), list(range(200))):
    h.update(repr((e.steps, e.failure, e.events)).encode())
print(h.hexdigest())
"""


def test_a_run_is_the_same_in_other_processes_and_hash_seeds():
    digests = set()
    for hashseed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        out = subprocess.run([sys.executable, "-c", DIGEST], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_same_seed_same_schedules_other_seed_other_schedules():
    sc = registry.get("uffd-move-vs-referenced")
    v = sc.variant("fixed")
    a = [e.steps for e in engine.run_many(sc, v, RandomWalk(1), list(range(20)))]
    b = [e.steps for e in engine.run_many(sc, v, RandomWalk(1), list(range(20)))]
    c = [e.steps for e in engine.run_many(sc, v, RandomWalk(2), list(range(20)))]
    assert a == b and a != c
    # schedule 7 on its own is schedule 7 of the campaign
    assert engine.run_one(sc, v, RandomWalk(1), 7).steps == a[7]


def test_a_random_walk_picks_what_random_choice_picks():
    # seed files written before the draw was inlined still replay the same schedules
    import random

    walk = RandomWalk(4)
    for index in range(30):
        walk.begin(index)
        rng = random.Random((4 << 32) ^ index)
        for n in (2, 3, 4, 5, 7, 8, 9):
            enabled = tuple(range(10, 10 + n))
            assert walk.next_task(enabled, None, 0) == rng.choice(enabled)


def test_a_retry_loop_that_never_ends_is_a_livelock_not_a_hang():
    def spinner(k):
        async def body():
            while True:
                await point("spin", "goto retry")
        return body()

    execution, _ = run_threads([spinner], max_steps=300)
    assert execution.failure.invariant == "LIVELOCK"
    assert len(execution.steps) == 300


def test_model_code_that_awaits_trio_is_refused():
    import trio

    def foreign(k):
        async def body():
            await point("t", "start")
            await trio.sleep(0)
        return body()

    with pytest.raises(ModelError, match="not a fuzzrmap yield point"):
        run_threads([foreign])


def flagship_on_trio(schedules, fail_at=None):
    """The flagship's executions on trio, and the schedulers as they end (the ``fail_at``-th raises)."""
    sc = registry.get("uffd-move-vs-referenced")
    ended = []

    def done(sched):
        ended.append(sched)
        if len(ended) == fail_at:
            raise RuntimeError(f"schedule {fail_at - 1}")
        return engine.finish(sched)

    return engine.run_many(sc, sc.variant("fixed"), RandomWalk(1), range(schedules), "trio", done=done), ended


def test_leaving_a_trio_loop_early_stops_its_run():
    import threading

    executions, ended = flagship_on_trio(100_000)
    for taken, _ in enumerate(executions, 1):
        if taken == 3:
            break
    executions.close()  # what dropping the last reference to it does
    assert not [t for t in threading.enumerate() if t.name == "fuzzrmap-trio"]
    assert len(ended) < 1000  # the run stopped soon after the caller left, not after 100000 schedules


def test_results_made_before_an_error_in_a_trio_run_reach_the_caller_first():
    executions, _ = flagship_on_trio(100, fail_at=21)
    taken = []
    with pytest.raises(RuntimeError, match="schedule 20"):
        for execution in executions:
            taken.append(execution)
    assert len(taken) == 20
