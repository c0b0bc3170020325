"""PCT keeps its promise: on small programs the measured hit rate is at least the printed bound."""

import math

import pytest

from fuzzrmap import engine
from fuzzrmap.check import SAFETY, violation
from fuzzrmap.sched.api import TRACKED, point
from fuzzrmap.sched.strategies.pct import PCT

import tiny


def window_bug(depth):
    """A bug of ``depth`` ordering constraints (2 or 3) between padded threads.

    ``t1`` counts only if it acts after ``t0`` opened the window and before
    ``t0`` closes it (two constraints); at depth 3 it also needs ``t2`` to
    have acted first.  ``t0`` fails at its end when ``t1`` counted.
    """

    def threads(k):
        window, armed, seen = tiny.Cell("window", 0), tiny.Cell("armed", depth == 2), tiny.Cell("seen", 0)

        async def t0():
            await point("t0", "pad", ())
            await point("t0", "open window", TRACKED)
            window.value = 1
            await point("t0", "close window", TRACKED)
            window.value = 2
            await point("t0", "check", TRACKED)
            if seen.value:
                raise violation("TINY", SAFETY, "t1 acted inside the window")

        async def t1():
            for pad in range(3):
                await point("t1", f"pad {pad}", ())
            await point("t1", "if armed and window == 1: seen = 1", TRACKED)
            if armed.value and window.value == 1:
                seen.value = 1

        async def t2():
            for pad in range(2):
                await point("t2", f"pad {pad}", ())
            await point("t2", "armed = 1", TRACKED)
            armed.value = 1

        bodies = [("t0", t0), ("t1", t1)] + ([("t2", t2)] if depth == 3 else [])
        return bodies, lambda: seen.value

    return tiny._program(f"window-bug-{depth}", threads)


@pytest.mark.parametrize("depth", [2, 3])
def test_measured_hit_rate_is_at_least_the_bound(depth):
    scenario = window_bug(depth)
    runs = 1000
    strategy = PCT(7, depth=depth)
    hits = sum(e.failure is not None for e in engine.run_many(scenario, scenario.variants[0], strategy, list(range(runs))))
    bound = 1 - strategy.miss_probability(1)  # the per-schedule hit probability PCT promises
    assert strategy.k >= 7 and strategy.max_tasks == depth
    # at least the bound, up to three standard deviations of sampling noise
    slack = 3 * math.sqrt(runs * bound * (1 - bound))
    assert hits >= runs * bound - slack, f"{hits}/{runs} hits, bound {bound:.4f} (n={strategy.max_tasks}, k={strategy.k})"


def test_k_is_the_longest_schedule_seen_and_only_grows():
    scenario = window_bug(3)
    strategy = PCT(1, depth=3)
    ks = []
    for e in engine.run_many(scenario, scenario.variants[0], strategy, list(range(30))):
        ks.append(strategy.k)
    assert ks == sorted(ks) and ks[0] == 1
    strategy.begin(30)
    assert strategy.k == max(len(e.steps) for e in engine.run_many(scenario, scenario.variants[0], PCT(1, depth=3), list(range(30))))
