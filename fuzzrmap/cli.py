"""The ``fuzzrmap`` command line: list, fuzz, explore, shrink, replay, show.

Exit codes: 0 - nothing found (fuzz), a complete search found nothing
(explore) or nothing to reproduce (replay); 1 - a failure was found or
reproduced; 3 - explore stopped by its budget before it was complete; 2 - bad
input (unknown scenario or variant, bad flag, unusable ``--out``,
unreadable, malformed or stale seed file, a seed file that diverges from the
model), always as one line on stderr, never a traceback; 130 - interrupted by
Ctrl-C or SIGTERM (what was found before is on disk, and the summary says
what was done).  ``show`` is a viewer: it exits 0 whether or not the seed
file's schedule fails.

Output never changes the verdict: a closed, broken or full stdout loses the
text, not the exit code.  Files the tool names itself never overwrite a
different result (see :func:`fuzzrmap.files.write_text`); a file named with
``-o`` is written as asked.  Progress goes to stderr, on a terminal only.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

from fuzzrmap import __version__, engine, files, hunt, necessity, parallel, preemption, report, show, shrink
from fuzzrmap import scenario as registry
from fuzzrmap import hunks
from fuzzrmap.files import shown
from fuzzrmap.kernel.generations import GENERATIONS
from fuzzrmap.progress import Meter
from fuzzrmap.sched import seedfile
from fuzzrmap.sched.api import FootprintError
from fuzzrmap.sched.scheduler import DEFAULT_MAX_STEPS
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
#: a PCT change point beyond the longest possible schedule changes nothing
_depth = _whole(1, DEFAULT_MAX_STEPS + 1, f"must be between 1 and {DEFAULT_MAX_STEPS}")
#: when stdout is not a terminal, the text report is at most this wide
PIPE_WIDTH = 100


def _invariant(text: str) -> str:
    if not re.fullmatch(r"I\d{1,2}[a-z]?", text):
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not an invariant id (I1a, I7, ...)")
    return text


PREEMPTION_HELP = ("where a thread may be switched away from: anywhere (default: every yield point), full "
                   "(CONFIG_PREEMPT with PREEMPT_RCU: not under a spinlock), voluntary or none (only at "
                   "sleeping points); see README 'Preemption models'")


def _add_preemption_model(parser, help_text: str = PREEMPTION_HELP) -> None:
    parser.add_argument("--preemption-model", choices=preemption.MODELS, default=preemption.DEFAULT,
                        metavar="{" + ",".join(reversed(preemption.MODELS)) + "}", help=help_text)


SCENARIO_HELP = "a registered scenario (fuzzrmap list) or a scenario file: path/to/file.py[:NAME]"
SCENARIO_FILE_HELP = ("the scenario file of a seed file recorded from one (a seed file never loads code "
                      "by itself)")


HUNT_HELP = """\
Enumerate every multiset of 1..N actors of a catalogue (with at least one rmap
reader or walker; the RCU thread always runs), prune those whose actors share
no written resource in sequential runs of each actor, alone and after each
other (a heuristic),
explore each kept one up to E executions (PCT sampling past the budget),
deduplicate violations by signature, shrink one witness each and write its
seed file.  DIR gets manifest.json, compositions/, findings/, hunt.md, hunt.json.

Which variant: --variant V runs V; --generation G alone runs the catalogue's
variant that is exactly G (no hunk added or removed); both: V, which must be
of generation G; neither: the catalogue's first variant (fixed).

Exit codes: 1 a violation was found; 0 every kept composition was verified
complete; 3 none found but some composition was budget-limited; 2 bad input
(or DIR holds another hunt); 130 interrupted (finished compositions are kept:
continue with --resume DIR)."""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fuzzrmap", description="Deterministic interleaving fuzzer for kernel rmap locking.")
    p.add_argument("--version", action="version", version=f"fuzzrmap {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True
    json_help = "print one machine-readable object instead of the report (and no progress)"
    full_help = "print every step, not the compact interleaving"
    variant_help = "the scenario variant (default: fixed, the patched kernel; see 'fuzzrmap list')"
    out_help = "directory for seed files, checked before running (default: fuzzrmap-seeds)"

    ls = sub.add_parser("list", help="scenarios, their variants and expected verdicts")
    ls.add_argument("--json", action="store_true", help=json_help)

    ac = sub.add_parser("actors", help="the actor catalogues: kernel operations to compose into scenarios")
    ac.add_argument("--json", action="store_true", help=json_help)

    fz = sub.add_parser("fuzz", help="run schedules until a failure is found")
    fz.add_argument("scenario", help=SCENARIO_HELP)
    fz.add_argument("--variant", default="fixed", help=variant_help)
    fz.add_argument("--runs", type=_positive, default=10000, help="schedules to run (default: 10000)")
    fz.add_argument("--seed", type=_seed, default=0, help="the campaign's random seed (default: 0)")
    fz.add_argument("--strategy", choices=sorted(STRATEGIES), default="pct",
                    help="pct (default: finds shallow races in few schedules), sticky (random, long runs) "
                         "or random (uniform walk)")
    fz.add_argument("--depth", type=_depth,
                    help=f"PCT bug depth d, 1 to {DEFAULT_MAX_STEPS} (default: 3)")
    fz.add_argument("--stay", type=_probability, help="sticky: chance to keep running the current thread (default: 0.9)")
    fz.add_argument("--driver", choices=engine.DRIVERS, default="trio",
                    help="trio (default: each thread a trio task) or direct (a plain loop, faster); "
                         "same schedules either way")
    fz.add_argument("--jobs", type=_positive, metavar="N",
                    help="worker processes, for the schedules and the shrinker's proof (default: the machine's "
                         "cores); same result for any N")
    fz.add_argument("--cluster", metavar="ADDRESS",
                    help="run on a dask.distributed scheduler at ADDRESS, or 'local:N' for a local cluster "
                         "of N workers (needs fuzzrmap[cluster]; default: none, local processes)")
    fz.add_argument("--out", type=Path, default=Path("fuzzrmap-seeds"), help=out_help)
    fz.add_argument("--no-shrink", action="store_true", help="save the failing schedule as found (default: shrink it)")
    fz.add_argument("--proof-budget", type=_positive, default=shrink.PROOF_BUDGET, metavar="N",
                    help=f"executions for shrinking and proving the schedule minimal (default: {shrink.PROOF_BUDGET})")
    _add_preemption_model(fz)
    fz.add_argument("--full", action="store_true", help=full_help)
    fz.add_argument("--json", action="store_true", help=json_help)

    sk = sub.add_parser("shrink", help="shrink a seed file to the fewest preemptions, then the fewest steps")
    sk.add_argument("seedfile", type=Path)
    sk.add_argument("-o", "--output", type=Path,
                    help="where to write it, replacing any file there (default: SEEDFILE-min.json, "
                         "or SEEDFILE-min-2.json... when that holds another result)")
    sk.add_argument("--scenario", metavar="FILE", help=SCENARIO_FILE_HELP)
    sk.add_argument("--proof-budget", type=_positive, default=shrink.PROOF_BUDGET, metavar="N",
                    help=f"executions for the search of fewer preemptions and for the proof "
                         f"(default: {shrink.PROOF_BUDGET} each)")
    sk.add_argument("--jobs", type=_positive, default=parallel.default_jobs(), metavar="N",
                    help="worker processes for the proof (default: the machine's cores); same result for any N")
    _add_preemption_model(sk, PREEMPTION_HELP + "; the seed file's schedule must be allowed under it (else exit 2)")
    sk.add_argument("--full", action="store_true", help=full_help)
    sk.add_argument("--json", action="store_true", help=json_help)

    ex = sub.add_parser("explore", help="search all interleavings (partial-order reduction) for a violation")
    ex.add_argument("scenario", help=SCENARIO_HELP)
    ex.add_argument("--variant", default="fixed", help=variant_help)
    ex.add_argument("--preemption-bound", type=_natural, metavar="K",
                    help="only schedules with at most K preemptions (naive search, no reduction; default: no bound)")
    ex.add_argument("--no-reduction", action="store_true",
                    help="naive depth-first search over every schedule (default: partial-order reduction)")
    ex.add_argument("--max-executions", type=_positive, metavar="N",
                    help="stop after N executions (exit 3; default: no limit)")
    ex.add_argument("--target", type=_invariant, metavar="INV",
                    help="only violations of invariant INV count; search past the others (default: any)")
    ex.add_argument("--all", action="store_true",
                    help="continue past the first violation and list each distinct one once: distinct by "
                         "invariant and by the steps of its racing pair (thread and step label of both); "
                         "a seed file for each (default: stop at the first)")
    ex.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1, metavar="N",
                    help="worker processes for the subtrees of the search (default: the machine's cores; "
                         "--all searches in one process)")
    _add_preemption_model(ex, PREEMPTION_HELP + "; any model but anywhere searches naively")
    ex.add_argument("--check-footprints", action="store_true",
                    help="stop (exit 2) when a step touches a tracked resource its declared footprint omits "
                         "(default: off)")
    ex.add_argument("--out", type=Path, default=Path("fuzzrmap-seeds"), help=out_help)
    ex.add_argument("--json", action="store_true", help=json_help)

    ne = sub.add_parser("necessity", help="revert each hunk of a variant alone and search: which hunks are needed")
    ne.add_argument("scenario", help=SCENARIO_HELP)
    ne.add_argument("--variant", default="fixed", help=variant_help)
    ne.add_argument("--max-executions", type=_positive, default=necessity.MAX_EXECUTIONS, metavar="N",
                    help="explore budget per hunk, then PCT (default: %(default)s)")
    ne.add_argument("--runs", type=_positive, default=necessity.RUNS, metavar="N",
                    help="PCT schedules when explore was not complete (default: %(default)s)")
    ne.add_argument("--seed", type=_seed, default=0, help="the PCT seed (default: 0)")
    ne.add_argument("--out", type=Path, default=Path("fuzzrmap-seeds"), help=out_help)
    ne.add_argument("--json", action="store_true", help=json_help)

    hn = sub.add_parser("hunt", help="compose actors and search every composition for a violation",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description=HUNT_HELP)
    hn.add_argument("--catalogue", help="the actor catalogue (default: the only one)")
    hn.add_argument("--generation", metavar="G", help="the catalogue's variant that is exactly generation G (default: see below)")
    hn.add_argument("--variant", metavar="V", help="this variant (of generation G, if --generation is given too)")
    hn.add_argument("--max-actors", type=_positive, default=3, metavar="N", help="actors per composition (default: 3)")
    hn.add_argument("--actors", metavar="LIST", help="comma-separated actor kinds to compose (default: all)")
    hn.add_argument("--budget", type=_positive, default=hunt.DEFAULT_BUDGET, metavar="E",
                    help=f"explore executions per composition, then as many PCT schedules (default: {hunt.DEFAULT_BUDGET})")
    hn.add_argument("--proof-budget", type=_positive, default=shrink.PROOF_BUDGET, metavar="N",
                    help=f"executions for proving each finding's shrunk witness minimal (default: {shrink.PROOF_BUDGET})")
    hn.add_argument("--jobs", type=_positive, default=1, metavar="J", help="worker processes (default: 1; results do not depend on J)")
    hn.add_argument("--out", type=Path, metavar="DIR", help="where the hunt is written (default: fuzzrmap-hunt)")
    hn.add_argument("--resume", type=Path, metavar="DIR", help="continue the hunt in DIR, skipping finished compositions (default: a new hunt)")
    hn.add_argument("--json", action="store_true", help=json_help)

    rp = sub.add_parser("replay", help="re-execute a seed file, or every seed file in a directory")
    rp.add_argument("seedfile", type=Path, metavar="SEEDFILE|DIR",
                    help="a seed file, or a directory: replay each *.json in it and print a summary "
                         "(exit 2 if any is bad, else 1 if any reproduced a failure)")
    rp.add_argument("--driver", choices=engine.DRIVERS, default="trio",
                    help="trio (default) or direct (a plain loop, faster); same schedules either way")
    rp.add_argument("--scenario", metavar="FILE", help=SCENARIO_FILE_HELP)
    _add_preemption_model(rp, "check that the schedule is allowed under this preemption model, else exit 2: "
                              "anywhere (default: no check), full, voluntary or none; see README 'Preemption models'")
    rp.add_argument("--full", action="store_true", help=full_help)
    rp.add_argument("--json", action="store_true", help=json_help)

    sh = sub.add_parser("show", help="export a seed file's timeline: text, changelog, an HTML swimlane "
                                     "or a Chrome trace")
    sh.add_argument("seedfile", type=Path)
    sh.add_argument("--format", choices=show.FORMATS, default="text",
                    help="text (default: as replay prints it), changelog (the race as kernel commit messages "
                         "draw it, at most 72 columns), html (one self-contained page) or chrome "
                         "(Trace Event JSON for ui.perfetto.dev or chrome://tracing)")
    sh.add_argument("-o", "--output", type=Path, help="write to this file (default: stdout)")
    sh.add_argument("--scenario", metavar="FILE", help=SCENARIO_FILE_HELP)
    return p


class _Stdout:
    """``sys.stdout`` that never raises: a closed, broken or full stdout loses the text, not the verdict."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.lost: Optional[OSError] = None

    def write(self, text: str) -> int:
        if self.lost is None:
            try:
                if self.stream is None:
                    raise OSError(errno.EBADF, "stdout is closed")
                self.stream.write(text)
            except (OSError, ValueError) as e:
                self._lose(e)
        return len(text)

    def flush(self) -> None:
        if self.lost is None and self.stream is not None:
            try:
                self.stream.flush()
            except (OSError, ValueError) as e:
                self._lose(e)

    def isatty(self) -> bool:
        try:
            return self.stream is not None and self.stream.isatty()
        except (OSError, ValueError):
            return False

    def _lose(self, error: Exception) -> None:
        self.lost = error if isinstance(error, OSError) else OSError(errno.EBADF, "stdout is closed")
        try:  # what is still buffered goes nowhere, so that the exit flush does not fail
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command; returns its exit code (see the module notes)."""
    stdout = sys.stdout = _Stdout(sys.stdout)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        code = _dispatch(argv)
        stdout.flush()
    finally:
        sys.stdout = stdout.stream
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    if stdout.lost is not None and stdout.lost.errno != errno.EPIPE:
        _error(f"cannot write to stdout ({stdout.lost.strerror or stdout.lost}); exit code {code} stands")
    return code


def _dispatch(argv: Optional[List[str]]) -> int:
    commands = {"list": cmd_list, "actors": cmd_actors, "necessity": cmd_necessity, "hunt": hunt.command, "fuzz": cmd_fuzz, "explore": cmd_explore, "shrink": cmd_shrink,
                "replay": cmd_replay, "show": cmd_show}
    try:
        args = build_parser().parse_args(argv)
        return commands[args.command](args)
    except (UsageError, registry.UnknownName, seedfile.SeedFileError, engine.ReplayError, files.FileError, FootprintError,
            parallel.ClusterError, hunt.HuntError) as e:
        _error(e.args[0] if e.args else str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted (seed files already written are complete)", prefix="fuzzrmap: ")
        return EXIT_INTERRUPTED


def _error(message: str, prefix: str = "fuzzrmap: error: ") -> None:
    try:
        print(prefix + message, file=sys.stderr)
    except (OSError, ValueError, AttributeError):
        pass


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


def cmd_actors(args) -> int:
    catalogues = registry.catalogues()
    if args.json:
        print(json.dumps({"catalogues": [
            {"catalogue": c.name, "summary": c.summary,
             "variants": [{"name": v.name, "scope": v.scope(), "summary": v.summary} for v in c.variants],
             "actors": [{"kind": a.kind, "role": a.role, "summary": a.summary, "source": a.source,
                         "reads_rmap": a.reads_rmap,
                         "params": [{"name": p.name, "choices": list(p.choices), "summary": p.summary}
                                    for p in a.params]}
                        for a in c.actors]}
            for c in catalogues]}, indent=1))
        return EXIT_CLEAN
    for c in catalogues:
        print(f"catalogue {c.name}: {c.summary}")
        for a in c.actors:
            params = "".join(f"({p.name}={'|'.join(p.choices)})" for p in a.params)
            print(f"    {a.kind + params:28} {a.role:9}{' reads rmap' if a.reads_rmap else ''}")
            print(f"        {a.summary}")
            print(f"        kernel: {a.source}")
        print(f"  variants: {', '.join(f'{v.name} ({v.scope()})' for v in c.variants)}")
    print("\ncompose them into a scenario by name, e.g. fuzzrmap explore 'page-idle+uffd-move(src=S)+munmap(vma=S)'")
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


def _strategy_tag(strategy) -> str:
    """The strategy and its parameters, as they go into a seed file's name."""
    if isinstance(strategy, PCT):
        return f"pct-d{strategy.depth}-s{strategy.seed}"
    if isinstance(strategy, Sticky):
        return f"sticky-stay{strategy.stay:g}-s{strategy.seed}"
    return f"{strategy.name}-s{strategy.seed}"


class _Saver:
    """Writes seed files into ``--out``, never over a different result; remembers what failed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.errors: List[str] = []

    def save(self, seed, name: str) -> Optional[Path]:
        path = self.directory / name
        try:
            return seedfile.write(seed, path, replace=False)
        except OSError as e:
            self.errors.append(f"cannot write seed file {shown(str(path))}: {e.strerror or e}")
            return None

    def report(self) -> None:
        for message in self.errors:
            _error(message + "; what was found is printed above")


def _check_out(directory: Path) -> None:
    try:
        files.check_writable_dir(directory)
    except files.FileError as e:
        raise UsageError(f"--out: {e}") from None


def cmd_fuzz(args) -> int:
    scenario = registry.resolve(args.scenario)
    variant = scenario.variant(args.variant)
    strategy = _strategy(args)
    _check_out(args.out)
    if args.cluster is not None and args.jobs is not None:
        raise UsageError("--jobs and --cluster exclude each other (a cluster has its own workers)")
    jobs = args.jobs or parallel.default_jobs()
    show_progress = Meter.wanted(args.json)
    with Meter(show_progress, "schedules", total=args.runs, phase="fuzz") as meter:
        result = engine.campaign(scenario, variant, strategy, args.runs, driver=args.driver,
                                 progress=lambda done, elapsed: meter.update(done), jobs=jobs, cluster=args.cluster,
                                 preemption_model=args.preemption_model)

    saver = _Saver(args.out)
    path = original_path = shrunk = None
    execution = result.execution
    interrupted = result.interrupted
    if execution is not None:
        strategy.begin(result.failure_index)
        stem = f"{scenario.name}-{variant.name}-{execution.failure.invariant}-{_strategy_tag(strategy)}-" \
               f"{_model_tag(args.preemption_model)}{result.failure_index}"
        found = engine.seed_file_for(scenario, variant, strategy, execution,
                                     preemption_model=args.preemption_model)
        if args.no_shrink:
            path = saver.save(found, stem + ".json")
        else:
            original_path = saver.save(found, stem + "-original.json")
            shrunk = _shrink(scenario, variant, execution, args.proof_budget, show_progress, args.preemption_model,
                             jobs or parallel.default_jobs())
            execution = shrunk.execution
            interrupted = interrupted or shrunk.interrupted
            path = saver.save(shrunk.seed_file(found), stem + ".json")

    failure = execution.failure if execution else None
    preempted = engine.preemptions(scenario, variant, execution, args.preemption_model) if failure else None
    if args.json:
        print(json.dumps({
            "scenario": scenario.name, "variant": variant.name, "strategy": args.strategy,
            "preemption_model": args.preemption_model, **_preemptions_json(preempted),
            "strategy_params": strategy.describe(), "seed": args.seed,
            "driver": args.driver, "jobs": None if args.cluster else jobs, "cluster": args.cluster,
            "schedules": result.schedules, "failures": 1 if failure else 0,
            "first_failure_at": result.failure_index,
            "invariant": failure.invariant if failure else None,
            "message": failure.message if failure else None,
            "accuracy_events": result.accuracy_events,
            "elapsed_s": round(result.elapsed_s, 3), "schedules_per_s": round(result.schedules_per_s, 1),
            "seed_file": str(path) if path else None, "interrupted": interrupted,
            "original_seed_file": str(original_path) if original_path else None,
            "shrink": shrunk.to_json() if shrunk else None, "save_errors": saver.errors,
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
                print(f"  as found:  {original_path or 'not saved'}")
            print(f"  seed file: {path or 'not saved'}")
            if path:
                print(f"  replay it: {scenario.replay_command(path)}")
            print()
            print(_picture(scenario, variant, execution, args.full, preempted))
        elif result.interrupted:
            print("interrupted: no failure found so far")
        else:
            events = f" ({result.accuracy_events} accuracy events, which do not fail a schedule)" if result.accuracy_events else ""
            print(f"no failure found{events}")
            if isinstance(strategy, PCT):
                print(f"PCT bound: n={strategy.max_tasks} threads, k={strategy.k} steps, depth d={strategy.depth}: "
                      f"a depth-{strategy.depth} bug is missed with probability <= "
                      f"{strategy.miss_probability(result.schedules):.3g}")
    saver.report()
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FOUND if failure else EXIT_CLEAN


def _shrink(scenario, variant, execution, budget: int, show_progress: bool,
            preemption_model: str, jobs: int) -> shrink.ShrinkResult:
    with Meter(show_progress, "executions", phase="shrink") as meter:
        return shrink.shrink(scenario, variant, execution, proof_budget=budget,
                             progress=lambda done, phase: meter.update(done, f"shrink: {phase}"),
                             preemption_model=preemption_model, jobs=jobs)


def _model_tag(model: str) -> str:
    """The preemption model in a seed file's name (nothing for the default)."""
    return "" if model == preemption.DEFAULT else f"{model}-"


def _preemptions_json(preempted) -> dict:
    """The ``preemptions`` of a failing trace and the model it ``needs``, for ``--json``."""
    if preempted is None:
        return {"preemptions": None, "needs": None}
    return {"preemptions": [p.to_json() for p in preempted],
            "needs": preemption.strictest(p.needs for p in preempted)}


def cmd_explore(args) -> int:
    scenario = registry.resolve(args.scenario)
    variant = scenario.variant(args.variant)
    _check_out(args.out)
    model = args.preemption_model
    reduction = not args.no_reduction and args.preemption_bound is None and model == preemption.ANYWHERE
    if reduction:
        search, tag = "partial-order reduction (source-set DPOR + sleep sets)", "dpor"
    elif args.preemption_bound is not None:
        search, tag = f"naive, at most {args.preemption_bound} preemptions", f"naive-p{args.preemption_bound}"
    else:
        search, tag = "naive (every schedule)", "naive"
    if model != preemption.ANYWHERE:
        search += (f", preemption model {model}" + ("" if args.no_reduction or args.preemption_bound is not None else
                   " (naive: the partial-order reduction does not know that a model's switches depend on "
                   "which thread ran last)"))
        tag += f"-{model}"
    found = _Violations(scenario, variant, args.target, model)
    with Meter(Meter.wanted(args.json), "executions", total=args.max_executions, phase="explore") as meter:
        def progress(executions: int, pruned: int) -> None:
            meter.update(executions, f"explore: {len(found.distinct)} found, {pruned:,} cut short")

        result = engine.explore(scenario, variant, reduction=reduction, preemption_bound=args.preemption_bound,
                                max_executions=args.max_executions, target=args.target,
                                stop_on_failure=not args.all, on_execution=found.add if args.all else None,
                                progress=progress, check_footprints=args.check_footprints,
                                jobs=1 if args.all else args.jobs, preemption_model=model)
    if not args.all and result.failure is not None:
        found.add(result.failure)
    saver = _Saver(args.out)
    strategy = engine.Explore(reduction, args.preemption_bound)
    paths = []
    for n, violation in enumerate(found.distinct, 1):
        seed = engine.seed_file_for(scenario, variant, strategy, violation.execution, preemption_model=model)
        suffix = f"-v{n}" if args.all else ""
        paths.append(saver.save(seed, f"{scenario.name}-{variant.name}-{violation.invariant}-explore-{tag}{suffix}.json"))

    target = f"{args.target} " if args.target else ""
    if found.distinct:
        verdict = "violation"
    elif result.complete:
        verdict = "verified" if not result.bound_cut else f"verified up to {args.preemption_bound} preemptions"
    else:
        verdict = "interrupted" if result.interrupted else "--max-executions reached"
    if args.json:
        first = found.distinct[0] if found.distinct else None
        print(json.dumps({
            "scenario": scenario.name, "variant": variant.name, "search": search, "verdict": verdict,
            "scope": engine.verified_scope(scenario, variant, result) if verdict.startswith("verified") else None,
            "executions": result.executions, "pruned": result.pruned, "quiet_states": result.quiet_states,
            "complete": result.complete, "interrupted": result.interrupted, "target": args.target,
            "preemption_bound": args.preemption_bound, "bound_cut": result.bound_cut, "preemption_model": model,
            **_preemptions_json(first.preemptions if first else None),
            "invariant": first.invariant if first else None,
            "message": first.execution.failure.message if first else None,
            "seed_file": str(paths[0]) if paths and paths[0] else None,
            "violations": [dict(v.to_json(), seed_file=str(p) if p else None, **_preemptions_json(v.preemptions))
                           for v, p in zip(found.distinct, paths)],
            "save_errors": saver.errors, "elapsed_s": round(result.elapsed_s, 3), "jobs": result.jobs,
            "naive_upper_bound": str(result.naive_upper_bound), "steps_per_thread": result.steps_per_thread,
        }))
    else:
        print(f"{scenario.name} / {variant.name}: {search}" + (f", target {args.target}" if args.target else ""))
        replayed = (f", {result.quiet_states} quiet states replayed for the checks between operations"
                    if result.quiet_states else "")
        print(f"  {result.executions} executions (+{result.pruned} cut short as redundant{replayed}) "
              f"in {result.elapsed_s:.1f} s"
              + (f" ({result.jobs} worker processes)" if result.jobs > 1 else ""))
        print(f"  naive interleavings: at most {result.naive_upper_bound:.3g} "
              f"(steps per thread {'+'.join(map(str, result.steps_per_thread))}, ignoring blocking)")
        for n, (violation, path) in enumerate(zip(found.distinct, paths), 1):
            print(f"VIOLATION {violation.execution.failure.headline()}")
            if args.all:
                print(f"  racing pair: {violation.pair_text()}; {plural_times(violation.count)}")
            print(f"  {preemption.verdict(violation.preemptions)}")
            for p in violation.preemptions:
                print(f"    {p.legend()}")
            print(f"  seed file: {path or 'not saved'}")
            if path:
                print(f"  replay it: {scenario.replay_command(path)}")
        if args.all and found.distinct:
            state = ("the search was complete" if result.complete else
                     "the search was interrupted" if result.interrupted else "the search stopped at --max-executions")
            print(f"{report.plural(len(found.distinct), 'distinct violation')}; {state}")
        elif not found.distinct and result.complete:
            print(f"VERIFIED: no {target}violation; {engine.verified_scope(scenario, variant, result)}")
        elif not found.distinct:
            print(f"INCOMPLETE: {verdict}; no {target}violation in what was run")
    saver.report()
    if result.interrupted:
        return EXIT_INTERRUPTED
    if found.distinct:
        return EXIT_FOUND
    return EXIT_CLEAN if result.complete else EXIT_BUDGET


def plural_times(n: int) -> str:
    return "seen once" if n == 1 else f"seen {n} times"


class _Violation:
    """One distinct violation of ``explore --all``: the first execution that showed it."""

    def __init__(self, execution, pair, preemptions) -> None:
        self.execution = execution
        self.pair = pair
        self.preemptions = preemptions
        self.count = 1

    @property
    def invariant(self) -> str:
        return self.execution.failure.invariant

    def key(self) -> tuple:
        steps, roles = self.execution.steps, self.execution.roles
        ends = tuple((roles[steps[k].task], steps[k].label) for k in self.pair) if self.pair else ()
        return self.invariant, ends

    def pair_text(self) -> str:
        if self.pair is None:
            return "none found"
        return " before ".join(f"{role}: {label}" for role, label in self.key()[1])

    def to_json(self) -> dict:
        return {"invariant": self.invariant, "message": self.execution.failure.message,
                "racing_pair": [{"thread": r, "label": lab} for r, lab in self.key()[1]], "seen": self.count}


class _Violations:
    """The distinct violations an exploration met, in the order found."""

    def __init__(self, scenario, variant, target: Optional[str], preemption_model: str) -> None:
        self.scenario, self.variant, self.target = scenario, variant, target
        self.preemption_model = preemption_model
        self.distinct: List[_Violation] = []
        self._index = {}

    def add(self, execution, sched=None) -> None:
        broken = execution.failure
        if broken is None or (self.target is not None and broken.invariant != self.target):
            return
        violation = _Violation(execution, shrink.racing_pair(self.scenario, self.variant, execution), None)
        known = self._index.get(violation.key())
        if known is not None:
            known.count += 1
            return
        violation.preemptions = engine.preemptions(self.scenario, self.variant, execution, self.preemption_model)
        self._index[violation.key()] = violation
        self.distinct.append(violation)


def _width() -> int:
    """The text report's width: the terminal's, or :data:`PIPE_WIDTH` when stdout is not one."""
    if sys.stdout.isatty():
        return max(60, shutil.get_terminal_size().columns)
    return PIPE_WIDTH


def _picture(scenario, variant, execution, full: bool, preempted) -> str:
    """The interleaving with its marks, the legend with where each preemption happened
    (``preempted``, :func:`fuzzrmap.engine.preemptions`) and the verdict."""
    race = shrink.racing_pair(scenario, variant, execution) if execution.failure else None
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    width = _width()
    return "\n".join([report.interleaving(execution, race, compact=not full, color=color, width=width),
                      report.legend(preempted, width=width), "",
                      report.verdict(execution, race, width=width, preemptions=preempted)])


def cmd_shrink(args) -> int:
    seed = seedfile.read(args.seedfile)
    output = args.output or args.seedfile.with_name(args.seedfile.stem + "-min.json")
    try:
        files.check_writable_dir(output.parent)
    except files.FileError as e:
        raise UsageError(f"--output: {e}") from None
    execution = engine.replay(seed, scenario_file=args.scenario)
    if execution.failure is None:
        raise UsageError(f"{shown(str(args.seedfile))}: its schedule does not fail, there is nothing to shrink")
    scenario = engine.scenario_for(seed, args.scenario)
    variant = scenario.variant(seed.variant)
    _check_allowed(args.seedfile, engine.preemptions(scenario, variant, execution, seed.preemption_model),
                   args.preemption_model)
    shrunk = _shrink(scenario, variant, execution, args.proof_budget, Meter.wanted(args.json), args.preemption_model,
                     args.jobs)
    error = None
    try:
        output = seedfile.write(shrunk.seed_file(seed), output, replace=args.output is not None)
    except OSError as e:
        error = f"cannot write seed file {shown(str(output))}: {e.strerror or e}"
    if args.json:
        preempted = engine.preemptions(scenario, variant, shrunk.execution, args.preemption_model)
        print(json.dumps({"seed_file": None if error else str(output), "invariant": shrunk.execution.failure.invariant,
                          # "preemptions" is the shrunk count here (shrink's own key): the list goes beside it
                          "preemption_model": args.preemption_model, "preemption_contexts": [p.to_json() for p in preempted],
                          "needs": preemption.strictest(p.needs for p in preempted),
                          "minimality": shrunk.minimality(), "save_errors": [error] if error else [],
                          **shrunk.to_json()}))
    else:
        print(f"{seed.scenario} / {seed.variant}: {shrunk.execution.failure.invariant} kept; "
              f"{shrunk.original_steps} steps, {report.plural(shrunk.original_preemptions, 'preemption')} -> "
              f"{len(shrunk.execution.steps)} steps; {shrunk.minimality()}")
        print(f"  seed file: {'not saved' if error else output}")
        print()
        print(_picture(scenario, variant, shrunk.execution, args.full,
                       engine.preemptions(scenario, variant, shrunk.execution, args.preemption_model)))
    if error:
        _error(error + "; the shrunk schedule is printed above")
    if shrunk.interrupted:
        _error("interrupted (the seed file holds the best schedule so far, marked interrupted)", prefix="fuzzrmap: ")
        return EXIT_INTERRUPTED
    return EXIT_CLEAN


def cmd_replay(args) -> int:
    if args.seedfile.is_dir():
        return _replay_dir(args)
    seed = seedfile.read(args.seedfile)
    execution = engine.replay(seed, driver=args.driver, scenario_file=args.scenario)
    reproduced = _same_failure(seed.failure, execution.failure)
    scenario = engine.scenario_for(seed, args.scenario)
    variant = scenario.variant(seed.variant)
    preempted = engine.preemptions(scenario, variant, execution, seed.preemption_model)
    _check_allowed(args.seedfile, preempted, args.preemption_model)
    if args.json:
        print(json.dumps({
            "scenario": seed.scenario, "variant": seed.variant, "threads": list(execution.roles),
            "preemption_model": seed.preemption_model, **_preemptions_json(preempted),
            "steps": [{"step": i, "thread": execution.roles[s.task], "func": s.func, "label": s.label}
                      for i, s in enumerate(execution.steps)],
            "failure": execution.failure.to_json() if execution.failure else None,
            "consequences": [c.to_json() for c in execution.consequences],
            "events": [e.to_json() for e in execution.events],
            "reproduced": reproduced,
        }, indent=1))
    else:
        print(f"{seed.scenario} / {seed.variant}: {len(execution.steps)} steps, "
              f"{report.plural(len(report.preemption_steps(execution)), 'preemption')}")
        print()
        print(_picture(scenario, variant, execution, args.full, preempted))
    if not reproduced:
        raise engine.ReplayError("replay did not reproduce the recorded failure "
                                 f"(recorded {_describe(seed.failure)}, got {_describe(execution.failure)})")
    return EXIT_FOUND if execution.failure else EXIT_CLEAN


def _replay_dir(args) -> int:
    """Replay every ``*.json`` of a directory, one line each, then a summary."""
    paths = sorted(p for p in args.seedfile.glob("*.json") if not p.name.startswith("."))
    if not paths:
        raise UsageError(f"{shown(str(args.seedfile))}: no seed files (*.json) in this directory")
    outcomes = []
    interrupted = False
    try:
        for path in paths:
            outcomes.append((path, *_replay_outcome(path, args.driver, args.scenario, args.preemption_model)))
            if not args.json:
                print(f"{outcomes[-1][1]:11} {shown(str(path))}: {outcomes[-1][2]}")
    except KeyboardInterrupt:
        interrupted = True
    counts = {kind: sum(1 for _, k, _ in outcomes if k == kind) for kind in ("reproduced", "clean", "bad")}
    if args.json:
        print(json.dumps({"directory": str(args.seedfile), "interrupted": interrupted, **counts,
                          "seed_files": [{"path": str(p), "outcome": k, "detail": d} for p, k, d in outcomes]},
                         indent=1))
    else:
        print(f"{len(outcomes)} of {len(paths)} seed files replayed: {counts['reproduced']} reproduced a failure, "
              f"{counts['clean']} clean as recorded, {counts['bad']} bad" + ("; interrupted" if interrupted else ""))
    if interrupted:
        return EXIT_INTERRUPTED
    if counts["bad"]:
        return EXIT_USAGE
    return EXIT_FOUND if counts["reproduced"] else EXIT_CLEAN


def _replay_outcome(path: Path, driver: str, scenario_file: Optional[str], preemption_model: str):
    """(``reproduced`` | ``clean`` | ``bad``, one line of detail) for one seed file."""
    try:
        seed = seedfile.read(path)
        execution = engine.replay(seed, driver=driver, scenario_file=scenario_file)
        if preemption_model != preemption.ANYWHERE:
            scenario = engine.scenario_for(seed, scenario_file)
            _check_allowed(path, engine.preemptions(scenario, scenario.variant(seed.variant), execution,
                                                    seed.preemption_model), preemption_model)
    except (registry.UnknownName, seedfile.SeedFileError, engine.ReplayError) as e:
        return "bad", str(e.args[0] if e.args else e)
    if not _same_failure(seed.failure, execution.failure):
        return "bad", (f"replay did not reproduce the recorded failure (recorded {_describe(seed.failure)}, "
                       f"got {_describe(execution.failure)})")
    if execution.failure is None:
        return "clean", f"{seed.scenario} / {seed.variant}: no failure, as recorded"
    return "reproduced", f"{seed.scenario} / {seed.variant}: {execution.failure.invariant} at step " \
                         f"{execution.failure.step} in {execution.failure.task}"


def cmd_necessity(args) -> int:
    scenario = registry.resolve(args.scenario)
    variant = scenario.variant(args.variant)
    if not variant.code_hunks():
        raise UsageError(f"variant {variant.name!r} of {scenario.name} has no code hunk to revert ({variant.scope()})")
    budget = dict(max_executions=args.max_executions, runs=args.runs, seed=args.seed)
    try:
        baseline, verdicts = necessity.analyse(scenario, variant, args.out, **budget)
    except OSError as e:
        raise UsageError(f"cannot write seed file in {args.out}: {e.strerror or e}") from None
    if args.json:
        print(json.dumps({"scenario": scenario.name, "variant": variant.name, "scope": variant.scope(),
                          "baseline": {"fails": baseline.failure is not None, "complete": baseline.complete,
                                       "invariant": baseline.failure.failure.invariant if baseline.failure else None},
                          "hunks": [v.to_json() for v in verdicts]}))
        return EXIT_CLEAN
    print(f"{scenario.name} / {variant.name} ({variant.scope()}): each hunk reverted alone, searched with explore "
          f"(up to {args.max_executions} executions), then PCT ({args.runs} schedules) if that was not complete")
    print(f"  the variant itself: {baseline.describe()}")
    if baseline.failure is not None:
        print("  it fails already, so a failure without a hunk does not show that the hunk is needed")
    width = max(len(v.variant.name.rpartition('~')[2]) for v in verdicts)
    for v in verdicts:
        name = v.variant.name.rpartition("~")[2]
        if v.baseline_fails and v.failure is not None:
            verdict = f"undecided: fails without it too ({v.failure.failure.invariant}, found by {v.found_by})"
        elif v.needed:
            verdict = f"NEEDED: without it, {v.failure.failure.headline()} (found by {v.found_by})"
        elif v.needed is None:
            verdict = f"unknown: no failure found, but the search was not complete ({v.describe()})"
        else:
            verdict = f"not needed under this model: complete search, {v.executions} executions, no failure"
        print(f"  {name:{width}}  {verdict}")
        if v.seed_file is not None:
            print(f"  {'':{width}}  seed file: {v.seed_file}; replay it: {scenario.replay_command(v.seed_file)}")
    return EXIT_CLEAN


def cmd_show(args) -> int:
    seed = seedfile.read(args.seedfile)
    document = show.render(show.record(seed, args.scenario), args.format)
    if args.output is None:
        sys.stdout.write(document)
        return EXIT_CLEAN
    try:
        files.write_text(document, args.output)
    except OSError as e:
        raise UsageError(f"cannot write {shown(str(args.output))}: {e.strerror or e}") from None
    return EXIT_CLEAN


def _check_allowed(path: Path, preempted, model: str) -> None:
    """Raise :class:`engine.ReplayError` (exit 2) unless every preemption of the trace is allowed under ``model``."""
    forbidden = [p for p in preempted if not preemption.allows(model, p.needs)]
    if forbidden:
        p = forbidden[0]
        raise engine.ReplayError(
            f"{shown(str(path))}: its schedule is not allowed under preemption model {model}: "
            f"step {p.step} switches away from {p.thread} {p.where}, which needs {p.needs}"
            + (f" (and {report.plural(len(forbidden) - 1, 'more preemption')})" if len(forbidden) > 1 else ""))


def _same_failure(a, b) -> bool:
    return (a is None) == (b is None) and (a is None or (a.invariant, a.step, a.task) == (b.invariant, b.step, b.task))


def _describe(f) -> str:
    return "no failure" if f is None else f"{shown(f.invariant, 20)} at step {f.step}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
