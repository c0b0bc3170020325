"""Driver benchmark: cost per scheduling decision on the flagship scenario.

Runs the same schedules of ``uffd-move-vs-referenced`` (fixed variant,
random walk, seed 1) through the direct driver and the trio driver, and, for
reference, a bare coroutine loop that makes the same number of task switches
with no model behind it.  All in one run, so the ratios are comparable even on
a noisy machine; absolute numbers are not.

    python bench/bench_drivers.py [--schedules N] [--json]
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


def flagship(driver: str, schedules: int):
    sc = registry.get("uffd-move-vs-referenced")
    v = sc.variant("fixed")
    start = time.perf_counter()
    decisions = sum(len(e.steps) for e in engine.run_many(sc, v, RandomWalk(1), list(range(schedules)), driver))
    return time.perf_counter() - start, decisions


@types.coroutine
def _switch():
    yield


async def _bare_task(n):
    for _ in range(n):
        await _switch()


def bare(decisions: int, tasks: int = 5):
    """The same number of switches between ``tasks`` coroutines, chosen at random."""
    rng = random.Random(1)
    per = decisions // tasks + 1
    start = time.perf_counter()
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
    return time.perf_counter() - start, done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--schedules", type=int, default=3000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    rows = []
    for name, (elapsed, decisions) in (
        ("direct driver", flagship("direct", args.schedules)),
        ("trio driver", flagship("trio", args.schedules)),
    ):
        rows.append({"what": name, "schedules": args.schedules, "decisions": decisions, "seconds": round(elapsed, 3),
                     "us_per_decision": round(elapsed / decisions * 1e6, 2),
                     "schedules_per_s": round(args.schedules / elapsed, 1)})
    elapsed, switches = bare(rows[0]["decisions"])
    rows.append({"what": "bare coroutine loop", "schedules": None, "decisions": switches, "seconds": round(elapsed, 3),
                 "us_per_decision": round(elapsed / switches * 1e6, 2), "schedules_per_s": None})
    base = rows[0]["us_per_decision"]
    for r in rows:
        r["cost_vs_direct"] = round(r["us_per_decision"] / base, 2)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'':22}{'decisions':>10}{'seconds':>9}{'us/decision':>13}{'schedules/s':>13}{'x direct':>10}")
    for r in rows:
        sps = f"{r['schedules_per_s']:,.0f}" if r["schedules_per_s"] else "-"
        print(f"{r['what']:22}{r['decisions']:>10}{r['seconds']:>9.2f}{r['us_per_decision']:>13.2f}{sps:>13}{r['cost_vs_direct']:>10.2f}")


if __name__ == "__main__":
    main()
