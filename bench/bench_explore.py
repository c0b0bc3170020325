"""Exhaustive-search benchmark: how many runs a verdict costs, and how that grows.

Runs ``explore`` (partial-order reduction) on the ``fixed`` variants of the
two clean flagship scenarios, and on three scaling families of the test
suite (``tests/tiny.py``) at N = 2..6 threads:

* ``disjoint``: N threads each writing their own variable (1 execution is the floor);
* ``one-lock``: N threads each doing lock; write; unlock on one spinlock (N! is the floor);
* ``two-locks``: N threads on two spinlocks taken in opposite orders (deadlocks).

``"composition"``: the composition in which a hunt meets F1 (four actors),
to its first violation, with the checks between operations (I12-I14) and
without them (``fixed~debug.between_ops``): with them the search also
replays quiet states (``"quiet_states"``), which is what those checks cost.

Families are searched to the end, past their violations.  For each it reports executions, executions cut short as redundant (sleep-set
blocked) and seconds of CPU time.  A family run stops at ``--budget``
executions (reported as ``"complete": false``); families are skipped above
``--max-n``.  What is skipped is listed under ``"skipped"``.  Absolute times
depend on the machine; the counts do not.

``"parallel"``: the first flagship variant searched with ``--jobs 1`` and
with ``--jobs 2``, wall-clock seconds (the best of ``--repeat`` rounds) and
the parallel efficiency ``t1 / (2 * t2)``.  On a shared machine the second
core may not be free: each round also times two ``--jobs 1`` searches run
at once in two processes (``"two_at_once"``, what the machine gives two
processes just then), and ``efficiency_vs_two_at_once`` is
``t_two_at_once / (2 * t2)``, the efficiency against that.  ``cpu_s`` is
the CPU time of a setting, worker processes included: what splitting the
search costs, whatever the load.  ``"loadavg"`` is the machine's load.

    python bench/bench_explore.py [--max-n 6] [--budget 20000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

from fuzzrmap import engine
from fuzzrmap import scenario as registry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import tiny  # noqa: E402  (the scaling families live with the soundness tests)

FLAGSHIP = [("uffd-move-vs-referenced", "fixed"), ("uffd-move-vs-page-idle", "fixed")]
COMPOSITION = "page-idle+uffd-move(src=S)+munmap(vma=S)+fork"


def measure(scenario, variant, budget=None, whole=False) -> dict:
    """One explore; ``whole`` searches past violations (the families' deadlocks) to the end."""
    start = time.process_time()
    result = engine.explore(scenario, variant, max_executions=budget, stop_on_failure=not whole)
    verdict = ("violation " + result.failure.failure.invariant if result.failure is not None
               else "verified" if result.complete else "budget")
    return {"executions": result.executions, "cut_short": result.pruned, "quiet_states": result.quiet_states,
            "complete": result.complete, "verdict": verdict, "cpu_s": round(time.process_time() - start, 3)}


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def parallel(scenario, variant, repeat: int) -> dict:
    """Wall-clock and CPU seconds of one and two processes on the same search, and the efficiencies."""
    out = {"scenario": f"{scenario.name}/{variant.name}"}
    best = {}
    for _ in range(repeat):
        for setting in ("jobs_1", "two_at_once", "jobs_2"):
            cpu, start = _cpu(), time.perf_counter()
            if setting == "two_at_once":
                _two_at_once(scenario, variant)
            else:
                result = engine.explore(scenario, variant, jobs=int(setting[-1]))
                out[setting] = {"executions": result.executions, "cut_short": result.pruned,
                                "verdict": "verified" if result.complete and result.failure is None else "other"}
            run = (round(time.perf_counter() - start, 3), round(_cpu() - cpu, 3))
            best[setting] = min(best.get(setting, run), run)
    for setting, (wall, cpu) in best.items():
        out.setdefault(setting, {}).update(wall_s=wall, cpu_s=cpu)
    out["efficiency"] = round(best["jobs_1"][0] / (2 * best["jobs_2"][0]), 3)
    out["efficiency_vs_two_at_once"] = round(best["two_at_once"][0] / (2 * best["jobs_2"][0]), 3)
    out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _two_at_once(scenario, variant) -> None:
    """Two independent ``--jobs 1`` searches in two forked processes at the same time."""
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=engine.explore, args=(scenario, variant)) for _ in range(2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-n", type=int, default=6)
    p.add_argument("--budget", type=int, default=20000, help="executions per family run")
    p.add_argument("--repeat", type=int, default=3, help="runs of each --jobs setting; the best counts")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    out = {"flagship": {}, "composition": {}, "families": {}, "skipped": []}
    for name, variant in FLAGSHIP:
        sc = registry.get(name)
        out["flagship"][f"{name}/{variant}"] = row = measure(sc, sc.variant(variant))
        if not args.json:
            print(f"{name}/{variant}: {row}", flush=True)
    sc = registry.resolve(COMPOSITION)
    for variant in ("fixed", "fixed~debug.between_ops"):
        out["composition"][f"{COMPOSITION}/{variant}"] = row = measure(sc, sc.variant(variant))
        if not args.json:
            print(f"{COMPOSITION}/{variant}: {row}", flush=True)
    for family, build in sorted(tiny.FAMILIES.items()):
        out["families"][family] = {}
        for n in range(2, 7):
            if n > args.max_n:
                out["skipped"].append(f"{family} N={n} (over --max-n)")
                continue
            scenario = build(n)
            row = measure(scenario, scenario.variants[0], args.budget, whole=True)
            out["families"][family][n] = row
            if not row["complete"]:
                out["skipped"].append(f"{family} N={n} stopped at {args.budget} executions")
            if not args.json:
                print(f"{family} N={n}: {row}", flush=True)
    name, variant = FLAGSHIP[0]
    sc = registry.get(name)
    out["parallel"] = parallel(sc, sc.variant(variant), args.repeat)
    if not args.json:
        print(f"parallel: {out['parallel']}", flush=True)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
