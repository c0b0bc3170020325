"""Strategy benchmark: how fast each search strategy finds the known failures.

Sampling strategies: for every variant expected to fail (``expect ==
"fails"``) of every registered scenario, and for each of ``random`` (uniform
walk) and PCT at depths 2, 3 and 4, one campaign per seed (seeds 1..N, each
with a budget of schedules, stopping at the first failure).  Per (scenario,
variant, strategy) it reports how many seeds found a failure, the median and
worst number of schedules to the first failure, the median wall time to it and
the median schedules/s.  Medians count a seed that missed as slower than every
seed that found it: when the median falls on a miss, it is shown as
"> budget" (schedules) and "-" (time).

Exhaustive search: ``engine.explore`` (DPOR with sleep sets) on every variant
of every scenario, to the first violation or to the end of the search; for the
variants without a violation this is the time to verify them.  It reports the
executions run and cut short (pruned), the wall time, and the number of naive
interleavings of the longest execution's per-thread step counts against the
executions actually run.

Every run is deterministic given its seeds: the counts repeat exactly, the
times are the machine's.

    python bench/bench_strategies.py [--seeds N] [--budget N] [--strategies random,sticky,pct2,pct3,pct4]
                                     [--scenarios a,b] [--no-explore] [--json]

The defaults are 20 seeds and a budget of 5000 schedules (not 20000): with
20000, the variants that a strategy never finds (uffd-move-vs-page-idle-fork
/ fixed, about 11 s per seed and strategy on a 2-core machine) alone take
about 15 minutes; the default run takes about 7.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from typing import Callable, Dict, List, Optional

from fuzzrmap import engine
from fuzzrmap import scenario as registry
from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.strategies.pct import PCT
from fuzzrmap.sched.strategies.random_walk import RandomWalk
from fuzzrmap.sched.strategies.sticky import Sticky

#: option name -> (label in the tables, a fresh strategy for a seed)
STRATEGIES: Dict[str, tuple] = {
    "random": ("random", lambda seed: RandomWalk(seed)),
    "sticky": ("sticky .9", lambda seed: Sticky(seed, stay=0.9)),
    "pct2": ("pct d=2", lambda seed: PCT(seed, depth=2)),
    "pct3": ("pct d=3", lambda seed: PCT(seed, depth=3)),
    "pct4": ("pct d=4", lambda seed: PCT(seed, depth=4)),
}

HEADER = "Absolute times are machine-dependent; ratios within one run are the comparable part."


# -- sampling strategies -----------------------------------------------------------

def seed_campaigns(scenario, variant, make_strategy: Callable[[int], Strategy], seeds: int, budget: int) -> List[dict]:
    """One campaign per seed: schedules and wall time to the first failure (None when missed)."""
    runs = []
    for seed in range(1, seeds + 1):
        result = engine.campaign(scenario, variant, make_strategy(seed), runs=budget)
        found = result.failure_index is not None
        runs.append({
            "seed": seed,
            "schedules_to_failure": result.failure_index + 1 if found else None,
            "ms_to_failure": result.elapsed_s * 1e3 if found else None,
            "schedules_per_s": result.schedules_per_s,
        })
    return runs


def median_with_misses(values: List[Optional[float]]) -> Optional[float]:
    """Median where None (a miss) is later than any value; None when the median is a miss."""
    median = statistics.median(math.inf if v is None else v for v in values)
    return None if median == math.inf else median


def sampling_row(scenario, variant, strategy_key: str, seeds: int, budget: int) -> dict:
    label, make_strategy = STRATEGIES[strategy_key]
    runs = seed_campaigns(scenario, variant, make_strategy, seeds, budget)
    to_failure = [r["schedules_to_failure"] for r in runs]
    found = [n for n in to_failure if n is not None]
    return {
        "scenario": scenario.name,
        "variant": variant.name,
        "strategy": label,
        "seeds": seeds,
        "budget": budget,
        "found": len(found),
        "median_schedules": median_with_misses(to_failure),
        "worst_schedules": max(found) if len(found) == seeds else None,
        "median_ms": median_with_misses([r["ms_to_failure"] for r in runs]),
        "schedules_per_s": statistics.median(r["schedules_per_s"] for r in runs),
        "runs": runs,
    }


def sampling_rows(scenarios, strategy_keys: List[str], seeds: int, budget: int) -> List[dict]:
    return [sampling_row(sc, v, key, seeds, budget)
            for sc in scenarios for v in sc.variants if v.expect == registry.FAILS
            for key in strategy_keys]


def print_sampling(rows: List[dict]) -> None:
    def sched(n, budget):
        return f"> {budget}" if n is None else f"{n:.10g}"

    print_table(
        ["scenario", "variant", "strategy", "found", "median sched", "worst sched", "median ms", "sched/s"],
        "lllrrrrr",
        [[r["scenario"], r["variant"], r["strategy"], f"{r['found']}/{r['seeds']}",
          sched(r["median_schedules"], r["budget"]), sched(r["worst_schedules"], r["budget"]),
          "-" if r["median_ms"] is None else f"{r['median_ms']:.1f}", f"{r['schedules_per_s']:,.0f}"]
         for r in rows])


# -- exhaustive search -------------------------------------------------------------

def verdict(result: engine.ExploreResult) -> str:
    if result.failure is not None:
        return "violation found"
    return "verified complete" if result.complete else "incomplete"


def explore_row(scenario, variant) -> dict:
    result = engine.explore(scenario, variant)
    return {
        "scenario": scenario.name,
        "variant": variant.name,
        "expect": variant.expect,
        "verdict": verdict(result),
        "executions": result.executions,
        "pruned": result.pruned,
        "seconds": result.elapsed_s,
        "naive_upper_bound": result.naive_upper_bound,
        "naive_per_execution": result.naive_upper_bound / result.executions,
    }


def explore_rows(scenarios) -> List[dict]:
    return [explore_row(sc, v) for sc in scenarios for v in sc.variants]


def print_explore(rows: List[dict]) -> None:
    print_table(
        ["scenario", "variant", "expect", "explore verdict", "executions", "pruned", "seconds",
         "naive bound", "naive/executions"],
        "llllrrrrr",
        [[r["scenario"], r["variant"], r["expect"], r["verdict"], str(r["executions"]), str(r["pruned"]),
          f"{r['seconds']:.2f}", f"{r['naive_upper_bound']:.3g}", f"{r['naive_per_execution']:.3g}"]
         for r in rows])


# -- output ----------------------------------------------------------------------------

def print_table(headings: List[str], align: str, cells: List[List[str]]) -> None:
    """Columns as wide as their widest cell; ``align`` has one "l" or "r" per column."""
    widths = [max(len(c) for c in column) for column in zip(headings, *cells)]
    for row in [headings] + cells:
        print("  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)).rstrip())


def selected_scenarios(names: Optional[str]) -> list:
    if names is None:
        return list(registry.scenarios().values())
    return [registry.get(name) for name in names.split(",")]


def selected_strategies(names: str) -> List[str]:
    keys = names.split(",")
    unknown = [k for k in keys if k not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {', '.join(unknown)} (known: {', '.join(STRATEGIES)})")
    return keys


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=positive_int, default=20, help="seeds 1..N per strategy (default 20)")
    p.add_argument("--budget", type=positive_int, default=5000, help="schedules per campaign (default 5000)")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="subset of " + ",".join(STRATEGIES))
    p.add_argument("--scenarios", help="comma-separated scenario names (default: all)")
    p.add_argument("--no-explore", action="store_true", help="skip the exhaustive search")
    p.add_argument("--json", action="store_true", help="one JSON document with all rows")
    args = p.parse_args()
    try:
        scenarios = selected_scenarios(args.scenarios)
        strategy_keys = selected_strategies(args.strategies)
    except (registry.UnknownName, ValueError) as e:
        p.error(str(e))

    sampling = sampling_rows(scenarios, strategy_keys, args.seeds, args.budget)
    explored = [] if args.no_explore else explore_rows(scenarios)
    if args.json:
        print(json.dumps({"note": HEADER, "seeds": args.seeds, "budget": args.budget,
                          "sampling": sampling, "explore": explored}, indent=1))
        return
    print(f"{HEADER}\nSampling strategies: seeds 1..{args.seeds}, budget {args.budget} schedules per campaign; "
          f"medians count a missed seed as later than any find.\n")
    print_sampling(sampling)
    if not args.no_explore:
        print("\nExhaustive search (explore, DPOR with sleep sets), every variant:\n")
        print_explore(explored)


if __name__ == "__main__":
    main()
