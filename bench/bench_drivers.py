"""Driver benchmark: cost per scheduling decision on the flagship scenario.

Runs the same schedules of ``uffd-move-vs-referenced`` (fixed variant,
random walk, seed 1) through the direct driver and the trio driver, and, for
reference, a bare coroutine loop that makes the same number of task switches,
picked at random, with no model behind it.  All three in one run, in
alternating rounds; each keeps its best round, and times are this process's
CPU time, so load from elsewhere on the machine spoils neither side of a
ratio.  The ratios are what to compare across machines, not the absolute
numbers.

The targets (issue 9): direct at most 9x the bare loop, trio at most 2x direct.

    python bench/bench_drivers.py [--schedules N] [--rounds R] [--json]

``--json`` prints one object.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import types

from fuzzrmap import engine
from fuzzrmap import scenario as registry
from fuzzrmap.sched.strategies.random_walk import RandomWalk

DIRECT_VS_BARE_TARGET = 9.0
TRIO_VS_DIRECT_TARGET = 2.0


def flagship(driver: str, schedules: int):
    """Seconds and decisions for ``schedules`` schedules of the flagship on ``driver``."""
    sc = registry.get("uffd-move-vs-referenced")
    v = sc.variant("fixed")
    start = time.process_time()
    decisions = sum(len(e.steps) for e in engine.run_many(sc, v, RandomWalk(1), list(range(schedules)), driver))
    return time.process_time() - start, decisions


@types.coroutine
def _switch():
    yield


async def _bare_task(n):
    for _ in range(n):
        await _switch()


def bare(decisions: int, tasks: int = 5):
    """Seconds for ``decisions`` switches between ``tasks`` coroutines, chosen at random."""
    rng = random.Random(1)
    per = decisions // tasks + 1
    start = time.process_time()
    coros = [_bare_task(per) for _ in range(tasks)]
    alive = list(range(tasks))
    done = 0
    while done < decisions and alive:
        i = alive[rng.randrange(len(alive))]
        try:
            coros[i].send(None)
        except StopIteration:
            alive.remove(i)
        done += 1
    return time.process_time() - start, done


def measure(schedules: int, rounds: int) -> dict:
    best = {"direct": float("inf"), "trio": float("inf"), "bare": float("inf")}
    decisions = 0
    for _ in range(rounds):
        for driver in ("direct", "trio"):
            elapsed, decisions = flagship(driver, schedules)
            best[driver] = min(best[driver], elapsed)
        elapsed, _ = bare(decisions)
        best["bare"] = min(best["bare"], elapsed)
    us = {k: round(v / decisions * 1e6, 3) for k, v in best.items()}
    direct_vs_bare = best["direct"] / best["bare"]
    trio_vs_direct = best["trio"] / best["direct"]
    return {
        "bench": "drivers", "scenario": "uffd-move-vs-referenced", "variant": "fixed", "strategy": "random",
        "seed": 1, "schedules": schedules, "rounds": rounds, "decisions": decisions,
        "us_per_decision": us,
        "schedules_per_s": {k: round(schedules / best[k], 1) for k in ("direct", "trio")},
        "direct_vs_bare": round(direct_vs_bare, 2), "trio_vs_direct": round(trio_vs_direct, 2),
        "targets": {"direct_vs_bare": DIRECT_VS_BARE_TARGET, "trio_vs_direct": TRIO_VS_DIRECT_TARGET},
        "met": direct_vs_bare <= DIRECT_VS_BARE_TARGET and trio_vs_direct <= TRIO_VS_DIRECT_TARGET,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--schedules", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = measure(args.schedules, args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    us = result["us_per_decision"]
    print(f"{result['decisions']} decisions per round, best of {result['rounds']} rounds")
    print(f"  direct driver        {us['direct']:7.2f} us/decision  "
          f"{result['schedules_per_s']['direct']:8,.0f} schedules/s")
    print(f"  trio driver          {us['trio']:7.2f} us/decision  "
          f"{result['schedules_per_s']['trio']:8,.0f} schedules/s")
    print(f"  bare coroutine loop  {us['bare']:7.2f} us/decision")
    print(f"direct/bare {result['direct_vs_bare']:.2f} (target <= {DIRECT_VS_BARE_TARGET:g}), "
          f"trio/direct {result['trio_vs_direct']:.2f} (target <= {TRIO_VS_DIRECT_TARGET:g}): "
          f"{'met' if result['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
