"""Hunt benchmark: compositions per minute and findings per hour, by size and workers.

For each maximum number of actors N (2, 3, 4 by default) and each number of
worker processes (1 and 2), one fresh ``hunt`` of the catalogue's G0 variant
(the pre-patch reader, so that there is something to find) in a temporary
directory.  It reports the compositions enumerated, pruned and searched, the
distinct findings, the wall time, compositions searched per minute and
findings per hour.

What bounds it: every composition gets ``--budget`` explore executions (100
by default, not the hunt's 5000) and as many PCT schedules, and every finding
``--proof-budget`` executions (2000, not 20000) to prove its witness minimal;
so the multi-reader compositions, which need far more than 100 executions,
come out budget-limited, and the rates are those of a budget-bound hunt.  The
default run takes a few minutes on a 2-core machine.  Rates grow with the
budget's share of compositions that finish early; compare runs with the same
budget only.

    python bench/bench_hunt.py [--sizes 2,3,4] [--jobs 1,2] [--budget E] [--proof-budget N] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from fuzzrmap import hunt

HEADER = "Absolute times are machine-dependent (and shared machines are noisy); compare rows of one run."


def measure(size: int, jobs: int, budget: int, proof_budget: int) -> dict:
    catalogue = hunt.choose_catalogue(None)
    variant = hunt.choose_variant(catalogue, "G0", None)
    plan = hunt.Plan(catalogue.name, variant.name, "G0", size, None, budget, proof_budget)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = hunt.hunt(plan, Path(tmp) / "hunt", jobs=jobs)
        elapsed = time.perf_counter() - start
    report = result.to_json()["compositions"]
    return {"max_actors": size, "jobs": jobs, "budget": budget, "enumerated": report["enumerated"],
            "pruned": report["pruned"], "searched": report["searched"], "violated": report["violated"],
            "budget_limited": report["budget_limited"], "findings": len(result.findings),
            "elapsed_s": round(elapsed, 2),
            "compositions_per_minute": round(report["searched"] / elapsed * 60, 1),
            "findings_per_hour": round(len(result.findings) / elapsed * 3600, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2,3,4", help="maximum actors per composition, comma-separated")
    p.add_argument("--jobs", default="1,2", help="worker processes, comma-separated")
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--proof-budget", type=int, default=2000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = [measure(int(n), int(j), args.budget, args.proof_budget)
            for n in args.sizes.split(",") for j in args.jobs.split(",")]
    if args.json:
        print(json.dumps({"variant": "G0", "budget": args.budget, "proof_budget": args.proof_budget, "rows": rows}))
        return
    print(HEADER)
    print(f"G0 hunts, budget {args.budget} executions per composition, proof budget {args.proof_budget}")
    print(f"{'N':>2} {'jobs':>4} {'enum':>5} {'pruned':>6} {'searched':>8} {'violated':>8} {'limited':>7} "
          f"{'findings':>8} {'time s':>7} {'comp/min':>8} {'find/h':>7}")
    for r in rows:
        print(f"{r['max_actors']:>2} {r['jobs']:>4} {r['enumerated']:>5} {r['pruned']:>6} {r['searched']:>8} "
              f"{r['violated']:>8} {r['budget_limited']:>7} {r['findings']:>8} {r['elapsed_s']:>7} "
              f"{r['compositions_per_minute']:>8} {r['findings_per_hour']:>7}")


if __name__ == "__main__":
    main()
