"""Shrink benchmark: the fork-window witness, shrunk with the default budget.

``fuzzrmap explore uffd-move-vs-page-idle-fork --variant fixed`` finds the I7
window with a 65-step, 5-preemption schedule.  This times shrinking it as
``fuzzrmap shrink`` does (``shrink.shrink`` with ``--proof-budget``, default
10000), phase by phase, and reports where the preemption count ends and what
is proved about it.  The goal is at most 60 s on one core; the counts repeat
exactly, the times are the machine's (``cpu_s``, the process's CPU time,
is the one-core figure on a busy machine).  With ``--jobs N`` the proof's
searches run in N worker processes (the result is the same): ``cpu_s`` then
adds the workers' CPU time, and the parallel efficiency is t1 / (N * tN) of
the ``elapsed_s`` of two runs.

    python bench/bench_shrink.py [--proof-budget N] [--jobs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from fuzzrmap import engine, shrink
from fuzzrmap import scenario as registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proof-budget", type=int, default=shrink.PROOF_BUDGET)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the proof (default: 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    scenario = registry.get("uffd-move-vs-page-idle-fork")
    variant = scenario.variant("fixed")
    witness = engine.explore(scenario, variant).failure
    phases = {}
    start, cpu = time.perf_counter(), _cpu()

    def progress(done: int, phase: str) -> None:
        name = phase.split(":")[0]
        phases.setdefault(name, [time.perf_counter() - start, done])

    result = shrink.shrink(scenario, variant, witness, proof_budget=args.proof_budget, progress=progress,
                           jobs=args.jobs)
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    report = {"jobs": args.jobs, "load_average": os.getloadavg()[0], "witness_steps": len(witness.steps), "witness_preemptions": shrink.preemptions(witness),
              "elapsed_s": round(elapsed, 2), "cpu_s": round(cpu, 2), "minimality": result.minimality(),
              "phase_start_s": {k: round(v[0], 2) for k, v in phases.items()}, **result.to_json()}
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:22} {value}")


def _cpu() -> float:
    """CPU time of this process and of its finished worker processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


if __name__ == "__main__":
    main()
