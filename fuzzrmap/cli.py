"""The ``fuzzrmap`` command line: list, fuzz, replay, show.

Exit codes: 0 - nothing found (fuzz), a complete search found nothing
(explore) or nothing to reproduce (replay); 1 - a failure was found or
reproduced; 3 - explore stopped by its budget before it was complete; 2 - bad input (unknown scenario or
variant, bad flag, unreadable, malformed or stale seed file, a seed file that
diverges from the model), always as one line on stderr, never a traceback;
130 - interrupted (what was found before is already on disk).  ``show`` is a
viewer: it exits 0 whether or not the seed file's schedule fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

from fuzzrmap import engine, report, show, shrink
from fuzzrmap import scenario as registry
from fuzzrmap import hunks
from fuzzrmap.kernel.generations import GENERATIONS
from fuzzrmap.sched import seedfile
from fuzzrmap.sched.strategies import STRATEGIES
from fuzzrmap.sched.strategies.pct import PCT
from fuzzrmap.sched.strategies.sticky import Sticky

EXIT_CLEAN, EXIT_FOUND, EXIT_USAGE, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(message)


def _whole(low: int, high: Optional[int], why: str):
    """An argparse type: a whole number in [low, high)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value >= high):
            raise argparse.ArgumentTypeError(f"{text!r} {why}")
        return value
    return parse


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 0 and below 1")
    return value


_positive = _whole(1, None, "must be at least 1")
_natural = _whole(0, None, "must not be negative")
_seed = _whole(0, 2**32, "must be between 0 and 2**32-1")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fuzzrmap", description="Deterministic interleaving fuzzer for kernel rmap locking.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True

    ls = sub.add_parser("list", help="scenarios, their variants and expected verdicts")
    ls.add_argument("--json", action="store_true")

    fz = sub.add_parser("fuzz", help="run schedules until a failure is found")
    fz.add_argument("scenario")
    fz.add_argument("--variant", default="fixed")
    fz.add_argument("--runs", type=_positive, default=10000, help="schedules to run (default 10000)")
    fz.add_argument("--seed", type=_seed, default=0)
    fz.add_argument("--strategy", choices=sorted(STRATEGIES), default="pct",
                    help="pct (default: finds shallow races in few schedules), sticky (random, long runs) "
                         "or random (uniform walk)")
    fz.add_argument("--depth", type=_positive, help="PCT bug depth d (default 3)")
    fz.add_argument("--stay", type=_probability, help="sticky: chance to keep running the current thread (default 0.9)")
    fz.add_argument("--driver", choices=engine.DRIVERS, default="direct",
                    help="direct (fast loop) or trio (trio tasks); same schedules either way")
    fz.add_argument("--out", type=Path, default=Path("fuzzrmap-seeds"), help="where seed files go")
    fz.add_argument("--no-shrink", action="store_true", help="save the failing schedule as found")
    fz.add_argument("--proof-budget", type=_positive, default=shrink.PROOF_BUDGET, metavar="N",
                    help="executions for proving the shrunk schedule minimal")
    fz.add_argument("--full", action="store_true", help="print every step, not the compact interleaving")
    fz.add_argument("--json", action="store_true")

    sk = sub.add_parser("shrink", help="shrink a seed file to the fewest preemptions, then the fewest steps")
    sk.add_argument("seedfile", type=Path)
    sk.add_argument("-o", "--output", type=Path, help="where to write it (default: SEEDFILE-min.json)")
    sk.add_argument("--proof-budget", type=_positive, default=shrink.PROOF_BUDGET, metavar="N")
    sk.add_argument("--full", action="store_true", help="print every step, not the compact interleaving")
    sk.add_argument("--json", action="store_true")

    ex = sub.add_parser("explore", help="search all interleavings (partial-order reduction) for a violation")
    ex.add_argument("scenario")
    ex.add_argument("--variant", default="fixed")
    ex.add_argument("--preemption-bound", type=_natural, metavar="K",
                    help="only schedules with at most K preemptions (naive search, no reduction)")
    ex.add_argument("--no-reduction", action="store_true", help="naive depth-first search over every schedule")
    ex.add_argument("--max-executions", type=_positive, metavar="N", help="stop after N executions (exit 3)")
    ex.add_argument("--out", type=Path, default=Path("fuzzrmap-seeds"), help="where seed files go")
    ex.add_argument("--json", action="store_true")

    rp = sub.add_parser("replay", help="re-execute a seed file and print its interleaving")
    rp.add_argument("seedfile", type=Path)
    rp.add_argument("--driver", choices=engine.DRIVERS, default="direct")
    rp.add_argument("--full", action="store_true", help="print every step, not the compact interleaving")
    rp.add_argument("--json", action="store_true")

    sh = sub.add_parser("show", help="export a seed file's timeline: text, an HTML swimlane or a Chrome trace")
    sh.add_argument("seedfile", type=Path)
    sh.add_argument("--format", choices=show.FORMATS, default="text",
                    help="text (as replay prints it), html (one self-contained page) or chrome "
                         "(Trace Event JSON for ui.perfetto.dev or chrome://tracing)")
    sh.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return {"list": cmd_list, "fuzz": cmd_fuzz, "explore": cmd_explore, "shrink": cmd_shrink, "replay": cmd_replay, "show": cmd_show}[args.command](args)
    except (UsageError, registry.UnknownName, seedfile.SeedFileError, engine.ReplayError) as e:
        msg = e.args[0] if e.args else str(e)
        print(f"fuzzrmap: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fuzzrmap: interrupted (seed files already written are complete)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `fuzzrmap replay F | head`
        sys.stderr.close()
        return EXIT_CLEAN


def cmd_list(args) -> int:
    scenarios = registry.scenarios()
    generations = GENERATIONS.values()
    declared = hunks.declared()
    if args.json:
        print(json.dumps({
            "scenarios": [{"scenario": s.name, "spec": s.spec, "summary": s.summary,
                           "variants": [{"name": v.name, "expect": v.expect, "summary": v.summary,
                                         "scope": v.scope(), "hunks": sorted(v.hunks)}
                                        for v in s.variants]}
                          for s in scenarios.values()],
            "generations": [{"name": g.name, "summary": g.summary, "hunks": sorted(g.hunks)} for g in generations],
            "hunks": [{"name": h.name, "kind": h.kind, "module": h.module, "summary": h.summary}
                      for h in declared.values()]}, indent=1))
        return EXIT_CLEAN
    for s in scenarios.values():
        print(f"{s.name}  ({s.spec}) {s.summary}")
        for v in s.variants:
            print(f"    {v.name:18} expect {v.expect:6} {v.scope():28} {v.summary}")
    print("\ngenerations:")
    for g in generations:
        print(f"    {g.name:4} {g.summary}; hunks: {', '.join(sorted(g.hunks)) or 'none'}")
    print("hunks:")
    for h in declared.values():
        print(f"    {h.name:22} {h.kind:6} {h.summary} ({h.module})")
    return EXIT_CLEAN


def _strategy(args):
    if args.depth is not None and args.strategy != "pct":
        raise UsageError("--depth applies to --strategy pct only")
    if args.stay is not None and args.strategy != "sticky":
        raise UsageError("--stay applies to --strategy sticky only")
    if args.strategy == "pct":
        return PCT(args.seed, depth=args.depth or 3)
    if args.strategy == "sticky":
        return Sticky(args.seed, stay=0.9 if args.stay is None else args.stay)
    return STRATEGIES[args.strategy](args.seed)


def cmd_fuzz(args) -> int:
    scenario = registry.get(args.scenario)
    variant = scenario.variant(args.variant)
    strategy = _strategy(args)
    show_progress = not args.json and sys.stderr.isatty()
    last = [0.0]

    def progress(done: int, elapsed: float) -> None:
        if show_progress and elapsed - last[0] >= 0.25:
            last[0] = elapsed
            print(f"\r  {done}/{args.runs} schedules, {done / elapsed:,.0f}/s ", end="", file=sys.stderr, flush=True)

    result = engine.campaign(scenario, variant, strategy, args.runs, driver=args.driver, progress=progress)
    if show_progress:
        print("\r\033[K", end="", file=sys.stderr, flush=True)

    path = original_path = shrunk = None
    execution = result.execution
    if execution is not None:
        strategy.begin(result.failure_index)
        path = args.out / f"{scenario.name}-{variant.name}-{execution.failure.invariant}-s{args.seed}-{result.failure_index}.json"
        found = engine.seed_file_for(scenario, variant, strategy, execution)
        if args.no_shrink:
            _save(found, path)
        else:
            original_path = path.with_name(path.stem + "-original.json")
            _save(found, original_path)
            shrunk = shrink.shrink(scenario, variant, execution, proof_budget=args.proof_budget)
            execution = shrunk.execution
            _save(shrunk.seed_file(found), path)

    failure = execution.failure if execution else None
    if args.json:
        print(json.dumps({
            "scenario": scenario.name, "variant": variant.name, "strategy": args.strategy, "seed": args.seed,
            "driver": args.driver, "schedules": result.schedules, "failures": 1 if failure else 0,
            "first_failure_at": result.failure_index,
            "invariant": failure.invariant if failure else None,
            "message": failure.message if failure else None,
            "accuracy_events": result.accuracy_events,
            "elapsed_s": round(result.elapsed_s, 3), "schedules_per_s": round(result.schedules_per_s, 1),
            "seed_file": str(path) if path else None, "interrupted": result.interrupted,
            "original_seed_file": str(original_path) if original_path else None,
            "shrink": shrunk.to_json() if shrunk else None,
        }))
    else:
        head = (f"{scenario.name} / {variant.name}: strategy {args.strategy}, seed {args.seed}: "
                f"{result.schedules} schedules in {result.elapsed_s:.1f} s ({result.schedules_per_s:,.0f}/s)")
        print(head)
        if failure:
            print(f"FAILED at schedule {result.failure_index}: {failure.headline()}")
            if shrunk:
                print(f"  shrunk from {shrunk.original_steps} steps, "
                      f"{report.plural(shrunk.original_preemptions, 'preemption')} "
                      f"to {len(execution.steps)} steps; {shrunk.minimality()}")
                print(f"  as found:  {original_path}")
            print(f"  seed file: {path}")
            print(f"  replay it: fuzzrmap replay {path}")
            print()
            print(_picture(scenario, variant, execution, args.full))
        elif result.interrupted:
            print("interrupted: no failure found so far")
        else:
            print(f"no failure found ({result.accuracy_events} accuracy events, I10c, which the fixed kernel has too)")
            if isinstance(strategy, PCT):
                print(f"PCT bound: n={strategy.max_tasks} threads, k={strategy.k} steps, depth d={strategy.depth}: "
                      f"a depth-{strategy.depth} bug is missed with probability <= "
                      f"{strategy.miss_probability(result.schedules):.3g}")
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FOUND if failure else EXIT_CLEAN


def _save(seed, path: Path) -> None:
    try:
        seedfile.write(seed, path)
    except OSError as e:
        raise UsageError(f"cannot write seed file {path}: {e.strerror or e}") from None


def cmd_explore(args) -> int:
    scenario = registry.get(args.scenario)
    variant = scenario.variant(args.variant)
    reduction = not args.no_reduction and args.preemption_bound is None
    result = engine.explore(scenario, variant, reduction=reduction, preemption_bound=args.preemption_bound,
                            max_executions=args.max_executions)
    path = None
    failure = result.failure.failure if result.failure else None
    if failure is not None:
        seed = engine.seed_file_for(scenario, variant, engine.Explore(reduction, args.preemption_bound), result.failure)
        path = args.out / f"{scenario.name}-{variant.name}-{failure.invariant}-explore.json"
        _save(seed, path)
    if reduction:
        search = "partial-order reduction (DPOR + sleep sets)"
    elif args.preemption_bound is not None:
        search = f"naive, at most {args.preemption_bound} preemptions"
    else:
        search = "naive (every schedule)"
    if failure is not None:
        verdict = "violation"
    elif result.complete:
        verdict = "verified" if not result.bound_cut else f"verified up to {args.preemption_bound} preemptions"
    else:
        verdict = "interrupted" if result.interrupted else "--max-executions reached"
    if args.json:
        print(json.dumps({
            "scenario": scenario.name, "variant": variant.name, "search": search, "verdict": verdict,
            "executions": result.executions, "pruned": result.pruned, "complete": result.complete,
            "preemption_bound": args.preemption_bound, "bound_cut": result.bound_cut,
            "invariant": failure.invariant if failure else None, "message": failure.message if failure else None,
            "seed_file": str(path) if path else None, "elapsed_s": round(result.elapsed_s, 3),
            "naive_upper_bound": str(result.naive_upper_bound), "steps_per_thread": result.steps_per_thread,
        }))
    else:
        print(f"{scenario.name} / {variant.name}: {search}")
        print(f"  {result.executions} executions (+{result.pruned} cut short as redundant) in {result.elapsed_s:.1f} s")
        print(f"  naive interleavings: at most {result.naive_upper_bound:.3g} "
              f"(steps per thread {'+'.join(map(str, result.steps_per_thread))}, ignoring blocking)")
        if failure is not None:
            print(f"VIOLATION {failure.headline()}")
            print(f"  seed file: {path}")
            print(f"  replay it: fuzzrmap replay {path}")
        elif result.complete:
            scope = ("every interleaving is equivalent to one that was run" if reduction else
                     "every schedule was run" if args.preemption_bound is None or not result.bound_cut else
                     f"every schedule with at most {args.preemption_bound} preemptions was run")
            print(f"VERIFIED: no violation; {scope}")
        else:
            print(f"INCOMPLETE: {verdict}; no violation in what was run")
    if failure is not None:
        return EXIT_FOUND
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_CLEAN if result.complete else EXIT_BUDGET


def _picture(scenario, variant, execution, full: bool) -> str:
    """The interleaving with its marks, the legend and the verdict."""
    race = shrink.racing_pair(scenario, variant, execution) if execution.failure else None
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    return "\n".join([report.interleaving(execution, race, compact=not full, color=color), report.legend(), "",
                      report.verdict(execution, race)])


def cmd_shrink(args) -> int:
    seed = seedfile.read(args.seedfile)
    execution = engine.replay(seed)
    if execution.failure is None:
        raise UsageError(f"{args.seedfile}: its schedule does not fail, there is nothing to shrink")
    scenario = registry.get(seed.scenario)
    variant = scenario.variant(seed.variant)
    shrunk = shrink.shrink(scenario, variant, execution, proof_budget=args.proof_budget)
    output = args.output or args.seedfile.with_name(args.seedfile.stem + "-min.json")
    _save(shrunk.seed_file(seed), output)
    if args.json:
        print(json.dumps({"seed_file": str(output), "invariant": shrunk.execution.failure.invariant,
                          "minimality": shrunk.minimality(), **shrunk.to_json()}))
    else:
        print(f"{seed.scenario} / {seed.variant}: {shrunk.execution.failure.invariant} kept; "
              f"{shrunk.original_steps} steps, {report.plural(shrunk.original_preemptions, 'preemption')} -> "
              f"{len(shrunk.execution.steps)} steps; {shrunk.minimality()}")
        print(f"  seed file: {output}")
        print()
        print(_picture(scenario, variant, shrunk.execution, args.full))
    return EXIT_CLEAN


def cmd_replay(args) -> int:
    seed = seedfile.read(args.seedfile)
    execution = engine.replay(seed, driver=args.driver)
    reproduced = _same_failure(seed.failure, execution.failure)
    if args.json:
        print(json.dumps({
            "scenario": seed.scenario, "variant": seed.variant, "threads": list(execution.roles),
            "steps": [{"step": i, "thread": execution.roles[s.task], "func": s.func, "label": s.label}
                      for i, s in enumerate(execution.steps)],
            "failure": execution.failure.to_json() if execution.failure else None,
            "consequences": [c.to_json() for c in execution.consequences],
            "events": [e.to_json() for e in execution.events],
            "reproduced": reproduced,
        }, indent=1))
    else:
        scenario = registry.get(seed.scenario)
        print(f"{seed.scenario} / {seed.variant}: {len(execution.steps)} steps, "
              f"{report.plural(len(report.preemption_steps(execution)), 'preemption')}")
        print()
        print(_picture(scenario, scenario.variant(seed.variant), execution, args.full))
    if not reproduced:
        raise engine.ReplayError("replay did not reproduce the recorded failure "
                                 f"(recorded {_describe(seed.failure)}, got {_describe(execution.failure)})")
    return EXIT_FOUND if execution.failure else EXIT_CLEAN


def cmd_show(args) -> int:
    seed = seedfile.read(args.seedfile)
    document = show.render(show.record(seed), args.format)
    if args.output is None:
        sys.stdout.write(document)
        return EXIT_CLEAN
    try:
        show.write(document, args.output)
    except OSError as e:
        raise UsageError(f"cannot write {args.output}: {e.strerror or e}") from None
    return EXIT_CLEAN


def _same_failure(a, b) -> bool:
    return (a is None) == (b is None) and (a is None or (a.invariant, a.step, a.task) == (b.invariant, b.step, b.task))


def _describe(f) -> str:
    return "no failure" if f is None else f"{f.invariant} at step {f.step}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
