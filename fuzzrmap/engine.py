"""The engine: run schedules of a scenario, campaigns of schedules, replays.

One schedule is a pure function of (scenario, variant, strategy, schedule
index): :func:`prepare` builds a fresh kernel and world, spawns the
scenario's threads plus the RCU grace-period thread, and hands back a
scheduler that either driver can run.  :func:`finish` adds the end-of-run
checks and returns the :class:`~fuzzrmap.sched.trace.Execution`.

:func:`campaign` runs schedules until the first failure or the budget, and
:func:`replay` re-executes a seed file's decisions, refusing files written
against another model (fingerprint) and reporting the first divergent step.
"""

from __future__ import annotations

import ast
import hashlib
import math
import time
from pathlib import Path
from typing import Callable, FrozenSet, Iterator, List, Optional, Set, Tuple

import attrs

from fuzzrmap.check import invariants
from fuzzrmap.kernel.rcu import RCU, rcu_gp_kthread
from fuzzrmap.kernel.rmap import AnonVma
from fuzzrmap.kernel.slab import Slab
from fuzzrmap.kernel.task import Kernel, TaskStruct, current
from fuzzrmap.scenario import Scenario, Variant
from fuzzrmap.sched import drivers
from fuzzrmap.sched.scheduler import DEFAULT_MAX_STEPS, Phase, Scheduler
from fuzzrmap.sched.seedfile import SeedFile
from fuzzrmap.sched.api import RUNNING
from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.strategies.dpor import Explore, Prune
from fuzzrmap.sched.strategies.replay import Divergence, Replay
from fuzzrmap.sched.trace import Execution, Failure

DRIVERS = ("direct", "trio")


def prepare(scenario: Scenario, variant: Variant, strategy: Strategy, index: int,
            max_steps: int = DEFAULT_MAX_STEPS) -> Scheduler:
    """A scheduler with the scenario's threads spawned and nothing run yet."""
    strategy.begin(index)
    sched = Scheduler(strategy, max_steps)
    sched.hunks = variant.hunks
    kernel = Kernel(anon_vma_cachep=Slab("anon_vma", AnonVma), rcu=RCU())
    RUNNING.sched = sched  # setup sees the variant's hunks
    world = scenario.setup(kernel)
    roles = [role for role, _ in world.threads]
    threads = list(world.threads) + [("rcu", rcu_gp_kthread)]
    for role, body in threads:
        task = sched.spawn(role, _thread(body), daemon=role == "rcu")
        task.state = TaskStruct(role, kernel)
        kernel.rcu.tasks.append(task.state)
    assert "rcu" not in roles, "the rcu thread is the engine's"
    sched.world = (kernel, world)
    return sched


async def _thread(body):
    await body()
    invariants.task_exit(current())


def finish(sched: Scheduler) -> Execution:
    """End-of-schedule checks (I5c, I6, I11) on a schedule that ran to its end."""
    if sched.phase is Phase.FINISHED:
        kernel, world = sched.world
        broken = invariants.final_state(kernel, world.folios)
        if broken is not None:
            inv, kind, msg = broken
            sched.fail(Failure(inv, kind, "(end)", len(sched.steps), msg))
    return sched.execution()


def run_one(scenario: Scenario, variant: Variant, strategy: Strategy, index: int = 0,
            driver: str = "direct", max_steps: int = DEFAULT_MAX_STEPS,
            observer: Optional[Callable] = None) -> Execution:
    """One schedule; ``observer(step_index, task)`` sees the state after each step."""
    sched = prepare(scenario, variant, strategy, index, max_steps)
    sched.observer = observer
    if driver == "trio":
        drivers.run_trio([lambda: sched])
    else:
        drivers.run_direct(sched)
    return finish(sched)


def run_many(scenario: Scenario, variant: Variant, strategy: Strategy, indices: List[int],
             driver: str = "direct") -> Iterator[Execution]:
    """Executions of the given schedule indices, in order."""
    if driver == "trio":
        prepared = [_preparer(scenario, variant, strategy, i) for i in indices]
        for sched in drivers.run_trio(prepared):
            yield finish(sched)
        return
    for i in indices:
        yield run_one(scenario, variant, strategy, i)


def _preparer(scenario, variant, strategy, index) -> Callable[[], Scheduler]:
    return lambda: prepare(scenario, variant, strategy, index)


# -- campaigns -------------------------------------------------------------------

@attrs.define
class CampaignResult:
    schedules: int
    failure_index: Optional[int]
    execution: Optional[Execution]
    elapsed_s: float
    accuracy_events: int
    interrupted: bool = False

    @property
    def schedules_per_s(self) -> float:
        return self.schedules / self.elapsed_s if self.elapsed_s > 0 else 0.0


def campaign(scenario: Scenario, variant: Variant, strategy: Strategy, runs: int,
             driver: str = "direct", progress: Optional[Callable[[int, float], None]] = None,
             batch: int = 64) -> CampaignResult:
    """Run up to ``runs`` schedules; stop at the first failure (or on Ctrl-C)."""
    start = time.perf_counter()
    done = 0
    events = 0
    try:
        for first in range(0, runs, batch):
            indices = list(range(first, min(runs, first + batch)))
            for index, execution in zip(indices, run_many(scenario, variant, strategy, indices, driver)):
                done += 1
                events += len(execution.events)
                if execution.failure is not None:
                    return CampaignResult(done, index, execution, time.perf_counter() - start, events)
            if progress is not None:
                progress(done, time.perf_counter() - start)
    except KeyboardInterrupt:
        return CampaignResult(done, None, None, time.perf_counter() - start, events, interrupted=True)
    return CampaignResult(done, None, None, time.perf_counter() - start, events)


# -- seed files and replay -----------------------------------------------------------

_MODEL_PACKAGES = ("kernel", "check")


def fingerprint() -> str:
    """A hash of the model's code: kernel model, checker and scenario files.

    It hashes the syntax tree without docstrings, so edits to comments and
    docs keep seed files valid while any change to the code refuses them.
    """
    import fuzzrmap
    import fuzzrmap.scenarios

    root = Path(fuzzrmap.__file__).parent
    files = sorted(p for pkg in _MODEL_PACKAGES for p in (root / pkg).glob("*.py"))
    files += sorted(Path(fuzzrmap.scenarios.__path__[0]).glob("*.py"))
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode())
        h.update(_normalised(path.read_text()).encode())
    return "sha256:" + h.hexdigest()[:32]


def _normalised(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def seed_file_for(scenario: Scenario, variant: Variant, strategy: Strategy, execution: Execution,
                  shrink: Optional[dict] = None) -> SeedFile:
    return SeedFile(
        scenario=scenario.name,
        variant=variant.name,
        strategy=strategy.describe(),
        fingerprint=fingerprint(),
        roles=execution.roles,
        steps=execution.steps,
        failure=execution.failure,
        shrink=shrink,
    )


class ReplayError(Exception):
    """The seed file cannot be replayed against this model (exit code 2)."""


def replay(seed: SeedFile, driver: str = "direct", observer: Optional[Callable] = None) -> Execution:
    """Re-execute ``seed``'s decisions; ``observer`` is passed on to :func:`run_one`."""
    from fuzzrmap import scenario as registry

    scenario = registry.get(seed.scenario)
    variant = scenario.variant(seed.variant)
    current = fingerprint()
    if seed.fingerprint != current:
        raise ReplayError(
            f"stale seed file: written for model {seed.fingerprint}, this is model {current}; "
            f"re-run 'fuzzrmap fuzz {seed.scenario} --variant {seed.variant}' to get a fresh one")
    try:
        execution = run_one(scenario, variant, Replay(seed.steps), driver=driver, observer=observer)
    except Divergence as d:
        raise ReplayError(f"seed file diverges from the model at {d}") from None
    if execution.roles != tuple(seed.roles):
        raise ReplayError(f"seed file names threads {list(seed.roles)}, the scenario has {list(execution.roles)}")
    if len(execution.steps) != len(seed.steps):
        raise ReplayError(
            f"seed file diverges from the model at step {len(execution.steps)}: the schedule ended "
            f"after {len(execution.steps)} of {len(seed.steps)} recorded steps")
    return execution



# -- exhaustive search -----------------------------------------------------------------

@attrs.define
class ExploreResult:
    executions: int
    pruned: int
    complete: bool
    failure: Optional[Execution]
    elapsed_s: float
    reduction: bool
    preemption_bound: Optional[int]
    bound_cut: bool
    longest: int
    steps_per_thread: List[int]
    interrupted: bool = False
    #: (invariant, message) of every failure seen (all of them with ``stop_on_failure=False``)
    violations: FrozenSet[Tuple[str, str]] = frozenset()
    #: worker processes the search ran in
    jobs: int = 1
    #: (final state, invariant or None) of every execution, with ``final_states=True``
    outcomes: FrozenSet[Tuple[object, Optional[str]]] = frozenset()

    @property
    def naive_upper_bound(self) -> int:
        """Interleavings of the longest execution's per-thread step counts, ignoring blocking."""
        total, count = 0, 1
        for n in self.steps_per_thread:
            total += n
            count *= math.comb(total, n)
        return count


PREEMPTION_MODEL = "preempt anywhere (a switch at every yield point)"


def verified_scope(scenario: Scenario, variant: Variant, result: ExploreResult) -> str:
    """What a clean, complete explore proved: the model, the switches, the preemption model, the bounds."""
    bound = ("no bound" if result.preemption_bound is None or not result.bound_cut
             else f"at most {result.preemption_bound} preemptions")
    search = ("every interleaving is equivalent to one that was run" if result.reduction
              else "every schedule was run")
    return (f"{search}; scope: scenario {scenario.name}, variant {variant.name} ({variant.scope()}; hunks on: {', '.join(sorted(variant.hunks)) or 'none'}), "
            f"{PREEMPTION_MODEL}, {bound}, at most {DEFAULT_MAX_STEPS} steps per schedule")


@attrs.define
class Tally:
    """What a search (or one subtree of it) ran and found."""

    executions: int = 0
    pruned: int = 0
    longest: int = 0
    per_thread: List[int] = attrs.Factory(list)
    #: the first failure that counts (see ``target``)
    failure: Optional[Execution] = None
    violations: Set[Tuple[str, str]] = attrs.Factory(set)
    outcomes: Set[Tuple[object, Optional[str]]] = attrs.Factory(set)
    #: the strategy had nothing left to run
    complete: bool = False

    def add(self, other: "Tally") -> None:
        """Fold in the tally of a later part of the same search."""
        self.executions += other.executions
        self.pruned += other.pruned
        if other.longest > self.longest:
            self.longest, self.per_thread = other.longest, other.per_thread
        if self.failure is None:
            self.failure = other.failure
        self.violations |= other.violations
        self.outcomes |= other.outcomes


def search(scenario: Scenario, variant: Variant, strategy: Explore, tally: Tally, advance_first: bool,
           max_executions: Optional[int] = None, max_runs: Optional[int] = None,
           on_execution: Optional[Callable[[Execution, Scheduler], None]] = None,
           stop_on_failure: bool = True, target: Optional[str] = None, final_states: bool = False) -> None:
    """Run ``strategy``'s executions into ``tally`` until it is exhausted, a failure (with
    ``stop_on_failure``) or a budget: ``max_executions`` in ``tally``, ``max_runs`` in this call.

    ``advance_first``: move the strategy to its next execution before the
    first run (else the first run is the search's first execution, or the one
    :meth:`Explore.start_subtree` chose).  ``final_states``: collect each
    execution's ``world.final_state()`` and invariant in ``tally.outcomes``.
    """
    runs = 0
    while True:
        if advance_first and not strategy.advance():
            tally.complete = True
            return
        advance_first = True
        if (max_executions is not None and tally.executions >= max_executions) or \
                (max_runs is not None and runs >= max_runs):
            return
        sched = prepare(scenario, variant, strategy, tally.executions + tally.pruned)
        sched.record_footprints = True
        sched.observer = strategy.after_step
        strategy.sched = sched
        runs += 1
        try:
            drivers.run_direct(sched)
        except Prune:
            tally.pruned += 1
            strategy.analyse(sched.execution(), complete=False)
            continue
        execution = finish(sched)
        strategy.analyse(execution)
        tally.executions += 1
        if len(execution.steps) > tally.longest:
            tally.longest = len(execution.steps)
            tally.per_thread = [sum(1 for s in execution.steps if s.task == t) for t in range(len(execution.roles))]
        if on_execution is not None:
            on_execution(execution, sched)
        broken = execution.failure
        if final_states:
            tally.outcomes.add((sched.world[1].final_state(), broken.invariant if broken else None))
        if broken is not None and (target is None or broken.invariant == target):
            tally.violations.add((broken.invariant, broken.message))
            if tally.failure is None:
                tally.failure = execution
            if stop_on_failure:
                return


def explore(scenario: Scenario, variant: Variant, reduction: bool = True,
            preemption_bound: Optional[int] = None, max_executions: Optional[int] = None,
            on_execution: Optional[Callable[[Execution, Scheduler], None]] = None,
            stop_on_failure: bool = True, target: Optional[str] = None,
            check_footprints: bool = False, jobs: int = 1, final_states: bool = False) -> ExploreResult:
    """Depth-first search over the schedules of a scenario, by default until the first failure.

    ``complete`` is True when every schedule (every Mazurkiewicz trace, with
    reduction; every schedule within the bound, without) has been run.
    ``on_execution(execution, sched)`` sees each full execution (tests read
    final states from ``sched.world``).  With ``target``, only failures of that
    invariant count; others are searched past.  With ``check_footprints``, an
    access of a :class:`~fuzzrmap.sched.api.Shared` object outside the
    running step's declared footprint raises
    :class:`~fuzzrmap.sched.api.FootprintError`.  With ``final_states``, the
    result's ``outcomes`` holds each execution's final state (the scenario's
    ``final_state()``) and invariant.  With ``jobs`` > 1 the
    subtrees of the search run in that many worker processes
    (:mod:`fuzzrmap.explore_parallel`; no ``on_execution`` there): the same
    verdict and violations, counts of its own.
    """
    if jobs > 1:
        if on_execution is not None:
            raise ValueError("on_execution needs jobs=1 (executions run in worker processes)")
        from fuzzrmap import explore_parallel

        return explore_parallel.explore(scenario, variant, jobs, reduction=reduction,
                                        preemption_bound=preemption_bound, max_executions=max_executions,
                                        stop_on_failure=stop_on_failure, target=target,
                                        check_footprints=check_footprints, final_states=final_states)
    strategy = Explore(reduction=reduction, preemption_bound=preemption_bound)
    start = time.perf_counter()
    tally = Tally()
    interrupted = False
    RUNNING.check_footprints = check_footprints
    try:
        search(scenario, variant, strategy, tally, advance_first=False, max_executions=max_executions,
               on_execution=on_execution, stop_on_failure=stop_on_failure, target=target,
               final_states=final_states)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        RUNNING.check_footprints = False
    return explore_result(tally, time.perf_counter() - start, reduction, preemption_bound, strategy.hit_bound,
                          interrupted)


def explore_result(tally: Tally, elapsed_s: float, reduction: bool, preemption_bound: Optional[int],
                   bound_cut: bool, interrupted: bool, jobs: int = 1) -> ExploreResult:
    return ExploreResult(tally.executions, tally.pruned, tally.complete, tally.failure, elapsed_s,
                         reduction, preemption_bound, bound_cut, tally.longest, tally.per_thread, interrupted,
                         frozenset(tally.violations), jobs, frozenset(tally.outcomes))
