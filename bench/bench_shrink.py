"""Shrink benchmark: the fork-window witness, shrunk with the default budget, on one core.

``fuzzrmap explore uffd-move-vs-page-idle-fork --variant fixed`` finds the I7
window with a 65-step, 5-preemption schedule.  This times shrinking it as
``fuzzrmap shrink`` does (``shrink.shrink`` with ``--proof-budget``, default
10000), phase by phase, and reports where the preemption count ends and what
is proved about it.  The goal is at most 60 s on one core; the counts repeat
exactly, the times are the machine's (``cpu_s``, the process's CPU time,
is the one-core figure on a busy machine).

    python bench/bench_shrink.py [--proof-budget N] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

from fuzzrmap import engine, shrink
from fuzzrmap import scenario as registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proof-budget", type=int, default=shrink.PROOF_BUDGET)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    scenario = registry.get("uffd-move-vs-page-idle-fork")
    variant = scenario.variant("fixed")
    witness = engine.explore(scenario, variant).failure
    phases = {}
    start, cpu = time.perf_counter(), time.process_time()

    def progress(done: int, phase: str) -> None:
        name = phase.split(":")[0]
        phases.setdefault(name, [time.perf_counter() - start, done])

    result = shrink.shrink(scenario, variant, witness, proof_budget=args.proof_budget, progress=progress)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    report = {"witness_steps": len(witness.steps), "witness_preemptions": shrink.preemptions(witness),
              "elapsed_s": round(elapsed, 2), "cpu_s": round(cpu, 2), "minimality": result.minimality(),
              "phase_start_s": {k: round(v[0], 2) for k, v in phases.items()}, **result.to_json()}
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:22} {value}")


if __name__ == "__main__":
    main()
