"""The engine: run schedules of a scenario, campaigns of schedules, replays.

One schedule is a pure function of (scenario, variant, strategy, schedule
index): :func:`prepare` has the scenario's environment
(:mod:`fuzzrmap.environment`) build fresh globals and the world, spawns the
scenario's threads plus the environment's background threads, and hands back
a scheduler that either driver can run.  :func:`finish` adds the end-of-run
checks (the environment's, then the world's) and returns the
:class:`~fuzzrmap.sched.trace.Execution`.  Nothing here knows what the
threads model.

:func:`campaign` runs schedules until the first failure or the budget, and
:func:`replay` re-executes a seed file's decisions, refusing files written
against another model (fingerprint) and reporting the first divergent step.

Every schedule runs under a preemption model (:mod:`fuzzrmap.preemption`,
by default ``anywhere``): under another, :func:`prepare` has the scheduler
ask the environment before it switches away from a thread that could go on,
a seed file records the model (its enabled sets depend on it), and
:func:`preemptions` replays an execution to say where each of its
preemptions happened and what it needs.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, FrozenSet, Hashable, Iterable, Iterator, List, Optional, Set, Tuple, TypeVar

import attrs

from fuzzrmap import fingerprint as fingerprints
from fuzzrmap import preemption
from fuzzrmap.environment import Environment
from fuzzrmap.files import shown
from fuzzrmap.scenario import Scenario, Variant, World, for_seed
from fuzzrmap.sched import drivers
from fuzzrmap.sched.scheduler import DEFAULT_MAX_STEPS, Phase, Scheduler, Violation
from fuzzrmap.sched.seedfile import SeedFile
from fuzzrmap.sched.api import RUNNING, FootprintError, running
from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.strategies.dpor import Explore, Prune
from fuzzrmap.sched.strategies.prefix import Prefix, PrefixEnd
from fuzzrmap.sched.strategies.replay import Divergence, Replay
from fuzzrmap.sched.trace import Execution

DRIVERS = ("direct", "trio")
T = TypeVar("T")


@attrs.frozen
class Built:
    """What one schedule runs on (``sched.world``): the environment, its globals, the world."""

    environment: Environment
    globals: Any
    world: World


def prepare(scenario: Scenario, variant: Variant, strategy: Strategy, index: int,
            max_steps: int = DEFAULT_MAX_STEPS, preemption_model: str = preemption.DEFAULT) -> Scheduler:
    """A scheduler with the scenario's threads spawned and nothing run yet, which switches
    away from a thread only where ``preemption_model`` allows it."""
    strategy.begin(index)
    sched = Scheduler(strategy, max_steps)
    sched.hunks = variant.hunks
    env = scenario.environment
    if preemption_model != preemption.ANYWHERE:
        sched.may_preempt = lambda task: env.may_preempt(task.state, task.op, preemption_model)
    RUNNING.sched = sched  # setup sees the variant's hunks
    globals_, world = env.build(scenario.setup)
    background = env.background(sched, globals_)
    roles = [role for role, _ in list(world.threads) + background]
    assert len(set(roles)) == len(roles), f"thread roles must differ: {roles}"
    for (role, body), daemon in [(t, False) for t in world.threads] + [(t, True) for t in background]:
        task = sched.spawn(role, _thread(body, env), daemon=daemon)
        task.state = env.task_state(role, globals_)
    sched.world = Built(env, globals_, world)
    return sched


async def _thread(body, env: Environment):
    await body()
    env.thread_exit(running().state)


def finish(sched: Scheduler) -> Execution:
    """End-of-schedule checks on a schedule that ran to its end: the environment's, then the world's."""
    if sched.phase is Phase.FINISHED:
        built = sched.world
        RUNNING.sched = sched
        try:
            built.environment.final_check(built.globals, built.world)
            if built.world.final_check is not None:
                built.world.final_check()
        except Violation as v:
            sched.fail(v.failure)
    return sched.execution()


def run_one(scenario: Scenario, variant: Variant, strategy: Strategy, index: int = 0,
            driver: str = "direct", max_steps: int = DEFAULT_MAX_STEPS,
            observer: Optional[Callable] = None, preemption_model: str = preemption.DEFAULT) -> Execution:
    """One schedule; ``observer(step_index, task)`` sees the state after each step."""
    sched = prepare(scenario, variant, strategy, index, max_steps, preemption_model)
    sched.observer = observer
    if driver == "trio":
        (execution,) = drivers.run_trio([lambda: sched], finish)
        return execution
    drivers.run_direct(sched)
    return finish(sched)


def run_many(scenario: Scenario, variant: Variant, strategy: Strategy, indices: Iterable[int],
             driver: str = "direct", done: Callable[[Scheduler], T] = finish,
             preemption_model: str = preemption.DEFAULT) -> Iterator[T]:
    """``done(sched)`` of each schedule of ``indices``, in order (by default its execution).

    ``done`` runs as each schedule ends, before the next one begins, so it
    sees the strategy as that schedule left it.  On trio, the schedules run
    in a thread of their own while the caller iterates
    (:func:`~fuzzrmap.sched.drivers.run_trio`): the caller runs no model code
    of its own until it leaves the loop.
    """
    indices = list(indices)
    if driver == "trio":
        yield from drivers.run_trio((_preparer(scenario, variant, strategy, i, preemption_model)
                                     for i in indices), done)
        return
    for i in indices:
        sched = prepare(scenario, variant, strategy, i, preemption_model=preemption_model)
        drivers.run_direct(sched)
        yield done(sched)


def _preparer(scenario, variant, strategy, index, preemption_model) -> Callable[[], Scheduler]:
    return lambda: prepare(scenario, variant, strategy, index, preemption_model=preemption_model)


# -- campaigns -------------------------------------------------------------------

@attrs.define
class CampaignResult:
    """What a campaign ran, and its first failure by schedule index.

    ``carry`` is the strategy's :meth:`~fuzzrmap.sched.strategies.Strategy.carry`
    before the failing schedule began, or after the last schedule when none
    failed: ``strategy.resume(carry)`` then ``begin(failure_index)`` gives the
    failing schedule's exact description.
    """

    schedules: int
    failure_index: Optional[int]
    execution: Optional[Execution]
    elapsed_s: float
    accuracy_events: int
    interrupted: bool = False
    carry: Hashable = None

    @property
    def schedules_per_s(self) -> float:
        return self.schedules / self.elapsed_s if self.elapsed_s > 0 else 0.0


def campaign(scenario: Scenario, variant: Variant, strategy: Strategy, runs: int,
             driver: str = "direct", progress: Optional[Callable[[int, float], None]] = None,
             jobs: int = 1, cluster: Optional[str] = None,
             preemption_model: str = preemption.DEFAULT) -> CampaignResult:
    """Run up to ``runs`` schedules; stop at the first failure (or on Ctrl-C).

    With ``jobs`` > 1 the schedules run in shards on that many processes, with
    ``cluster`` on a dask.distributed cluster (:mod:`fuzzrmap.parallel`); the
    result is the same either way.  ``strategy`` is left as the campaign left
    it (:attr:`CampaignResult.carry` resumed).
    """
    from fuzzrmap import parallel

    job = parallel.CampaignJob(scenario.ref, variant.name, strategy, driver, preemption_model)
    result = parallel.campaign(job, runs, jobs, cluster, progress)
    strategy.resume(result.carry)
    return result


# -- seed files and replay -----------------------------------------------------------

def fingerprint(scenario: Scenario) -> str:
    """The fingerprint of the scenario's code (:mod:`fuzzrmap.fingerprint`)."""
    return fingerprints.of(scenario)


def seed_file_for(scenario: Scenario, variant: Variant, strategy: Strategy, execution: Execution,
                  shrink: Optional[dict] = None, preemption_model: str = preemption.DEFAULT) -> SeedFile:
    return SeedFile(
        scenario=scenario.name,
        variant=variant.name,
        strategy=strategy.describe(),
        fingerprint=fingerprint(scenario),
        roles=execution.roles,
        steps=execution.steps,
        failure=execution.failure,
        shrink=shrink,
        source=scenario.source,
        preemption_model=preemption_model,
    )


class ReplayError(Exception):
    """The seed file cannot be replayed against this model (exit code 2)."""


def scenario_for(seed: SeedFile, scenario_file: Optional[str] = None) -> Scenario:
    """The scenario of ``seed`` (``scenario_file``: the file the user named for it, if any)."""
    return for_seed(seed.scenario, seed.source, scenario_file)


def replay(seed: SeedFile, driver: str = "direct", observer: Optional[Callable] = None,
           scenario_file: Optional[str] = None, scenario: Optional[Scenario] = None) -> Execution:
    """Re-execute ``seed``'s decisions; ``observer`` is passed on to :func:`run_one`.

    ``scenario_file`` is the scenario file the user named for a seed file whose
    scenario was found in a file (see :func:`fuzzrmap.scenario.for_seed`);
    ``scenario``, the seed file's scenario when the caller already holds it.
    """
    if scenario is None:
        scenario = scenario_for(seed, scenario_file)
    elif scenario.name != seed.scenario:
        raise ReplayError(f"seed file is of scenario {seed.scenario!r}, not {scenario.name!r}")
    variant = scenario.variant(seed.variant)
    current = fingerprint(scenario)
    if seed.fingerprint != current:
        files = fingerprints.files(scenario)
        raise ReplayError(
            f"stale seed file: written for model {shown(seed.fingerprint, 60)}, this is model {current} (the code of "
            f"{scenario.name} or of a model module it uses changed: {', '.join(files)}); re-run "
            f"'fuzzrmap fuzz {scenario.ref} --variant {seed.variant}' to get a fresh one")
    try:
        execution = run_one(scenario, variant, Replay(seed.steps), driver=driver, observer=observer,
                            preemption_model=seed.preemption_model)
    except Divergence as d:
        raise ReplayError(f"seed file diverges from the model at {d}") from None
    if execution.roles != tuple(seed.roles):
        raise ReplayError(f"seed file names threads {list(seed.roles)}, the scenario has {list(execution.roles)}")
    if len(execution.steps) != len(seed.steps):
        raise ReplayError(
            f"seed file diverges from the model at step {len(execution.steps)}: the schedule ended "
            f"after {len(execution.steps)} of {len(seed.steps)} recorded steps")
    return execution


def preemptions(scenario: Scenario, variant: Variant, execution: Execution,
                preemption_model: str = preemption.DEFAULT) -> List[preemption.Preemption]:
    """Where each preemption of ``execution`` (run under ``preemption_model``) happened.

    Replays the execution and asks the environment, after each step, where
    the thread that ran it is parked: a preemption at step ``i`` switches
    away from the thread of step ``i - 1``, which is where it was then.
    """
    from fuzzrmap.report import preemption_steps

    env = scenario.environment
    contexts: List[Optional[preemption.Context]] = []

    def observe(step_index: int, task) -> None:
        contexts.append(env.preemption_context(task.state, task.op) if task.alive else None)

    run_one(scenario, variant, Replay(execution.steps), observer=observe, preemption_model=preemption_model)
    roles, steps = execution.roles, execution.steps

    def resumed(i: int) -> str:
        """The label of the step the thread switched away from at step ``i`` ran next."""
        task = steps[i - 1].task
        return next((s.label for s in steps[i:] if s.task == task), "")

    return [preemption.Preemption(i, roles[steps[i - 1].task], contexts[i - 1], resumed(i))
            for i in preemption_steps(execution)]


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
    #: where a thread may be preempted (:mod:`fuzzrmap.preemption`)
    preemption_model: str = preemption.DEFAULT
    #: quiet states replayed for the check between operations
    quiet_states: int = 0

    @property
    def naive_upper_bound(self) -> int:
        """Interleavings of the longest execution's per-thread step counts, ignoring blocking."""
        total, count = 0, 1
        for n in self.steps_per_thread:
            total += n
            count *= math.comb(total, n)
        return count


def verified_scope(scenario: Scenario, variant: Variant, result: ExploreResult) -> str:
    """What a clean, complete explore proved: the model, the switches, the preemption model, the bounds."""
    bound = ("no bound" if result.preemption_bound is None or not result.bound_cut
             else f"at most {result.preemption_bound} preemptions")
    search = ("every interleaving is equivalent to one that was run" if result.reduction
              else "every schedule was run")
    return (f"{search}; scope: scenario {scenario.name}, variant {variant.name} ({variant.scope()}; hunks on: {', '.join(sorted(variant.hunks)) or 'none'}), "
            f"{preemption.SCOPES[result.preemption_model]}, {bound}, at most {DEFAULT_MAX_STEPS} steps per schedule")


@attrs.define
class Tally:
    """What a search (or one subtree of it) ran and found."""

    executions: int = 0
    pruned: int = 0
    #: quiet states replayed for the check between operations (:meth:`Explore.quiet_states`)
    quiet_states: int = 0
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
        self.quiet_states += other.quiet_states
        if other.longest > self.longest:
            self.longest, self.per_thread = other.longest, other.per_thread
        if self.failure is None:
            self.failure = other.failure
        self.violations |= other.violations
        self.outcomes |= other.outcomes


def search(scenario: Scenario, variant: Variant, strategy: Explore, tally: Tally, advance_first: bool,
           max_executions: Optional[int] = None, max_runs: Optional[int] = None,
           on_execution: Optional[Callable[[Execution, Scheduler], None]] = None,
           stop_on_failure: bool = True, target: Optional[str] = None, final_states: bool = False,
           progress: Optional[Callable[[int, int], None]] = None,
           preemption_model: str = preemption.DEFAULT) -> None:
    """Run ``strategy``'s executions into ``tally`` until it is exhausted, a failure (with
    ``stop_on_failure``) or a budget: ``max_executions`` in ``tally``, ``max_runs`` in this call.

    ``advance_first``: move the strategy to its next execution before the
    first run (else the first run is the search's first execution, or the one
    :meth:`Explore.start_subtree` chose).  ``final_states``: collect each
    execution's ``world.final_state()`` and invariant in ``tally.outcomes``.
    ``progress(executions, pruned)`` after every run.
    """
    runs = 0
    strategy.quiet_check_reads = scenario.environment.quiet_check_reads
    while True:
        if advance_first and not strategy.advance():
            tally.complete = True
            return
        advance_first = True
        if (max_executions is not None and tally.executions >= max_executions) or \
                (max_runs is not None and runs >= max_runs):
            return
        sched = prepare(scenario, variant, strategy, tally.executions + tally.pruned,
                        preemption_model=preemption_model)
        sched.record_footprints = True
        sched.observer = strategy.after_step
        if RUNNING.check_footprints:
            sched.observer = QuietReadsCheck(sched, strategy)
        strategy.sched = sched
        runs += 1
        try:
            drivers.run_direct(sched)
        except Prune:
            tally.pruned += 1
            strategy.analyse(sched.execution(), complete=False)
            if progress is not None:
                progress(tally.executions, tally.pruned)
            continue
        execution = finish(sched)
        strategy.analyse(execution)
        tally.executions += 1
        if len(execution.steps) > tally.longest:
            tally.longest = len(execution.steps)
            tally.per_thread = [sum(1 for s in execution.steps if s.task == t) for t in range(len(execution.roles))]
        if on_execution is not None:
            on_execution(execution, sched)
        if progress is not None:
            progress(tally.executions, tally.pruned)
        broken = execution.failure
        if final_states:
            tally.outcomes.add((sched.world.world.final_state(), broken.invariant if broken else None))
        if _counts(tally, execution, target) and stop_on_failure:
            return
        for decisions in strategy.quiet_states(execution):
            tally.quiet_states += 1
            replayed = quiet_state(scenario, variant, decisions)
            state = replayed.execution()
            if state.failure is not None and on_execution is not None:
                on_execution(state, replayed)
            if _counts(tally, state, target) and stop_on_failure:
                return


class QuietReadsCheck:
    """A scheduler observer for ``--check-footprints``: a step that writes no resource the checks
    between operations may read (:meth:`Environment.quiet_check_reads`) leaves the environment's
    :meth:`~Environment.quiet_digest` as it was, or the run stops with a :class:`FootprintError`.

    It starts at the first step that begins or ends an operation: a schedule without
    operations has no quiet state, and costs no digest.
    """

    def __init__(self, sched: Scheduler, strategy: Explore) -> None:
        self.sched = sched
        self.strategy = strategy
        self.before = None

    def __call__(self, index: int, task) -> None:
        self.strategy.after_step(index, task)
        step = self.sched.steps[index]
        if self.before is None and not step.ops:
            return
        built = self.sched.world
        env = built.environment
        after = env.quiet_digest(built.globals, built.world)
        if self.before is not None and after != self.before and not self.strategy.seen_by_check(step.footprint):
            raise FootprintError(
                f"step {index} ({task.role}: {step.func} {step.label}) changes what a check between "
                f"operations reads, but writes only {[r for r, w in step.footprint if w]}, "
                f"which {env.name}'s quiet_check_reads() says no such check reads")
        self.before = after


def _counts(tally: Tally, execution: Execution, target: Optional[str]) -> bool:
    """Record ``execution``'s failure in ``tally`` if it counts (see ``target``); whether it did."""
    broken = execution.failure
    if broken is None or (target is not None and broken.invariant != target):
        return False
    tally.violations.add((broken.invariant, broken.message))
    if tally.failure is None:
        tally.failure = execution
    return True


def quiet_state(scenario: Scenario, variant: Variant, decisions: Tuple[int, ...]) -> Scheduler:
    """Run ``decisions`` (a quiet state of :meth:`Explore.quiet_states`) and stop after the check
    between operations in their last step; the schedule, failed if a check failed."""
    sched = prepare(scenario, variant, Prefix(decisions), 0)
    try:
        drivers.run_direct(sched)
    except PrefixEnd:
        pass
    return sched


def explore(scenario: Scenario, variant: Variant, reduction: bool = True,
            preemption_bound: Optional[int] = None, max_executions: Optional[int] = None,
            on_execution: Optional[Callable[[Execution, Scheduler], None]] = None,
            stop_on_failure: bool = True, target: Optional[str] = None,
            check_footprints: bool = False, jobs: int = 1, final_states: bool = False,
            progress: Optional[Callable[[int, int], None]] = None,
            preemption_model: str = preemption.DEFAULT, in_order: bool = False) -> ExploreResult:
    """Depth-first search over the schedules of a scenario, by default until the first failure.

    ``complete`` is True when every schedule (every Mazurkiewicz trace, with
    reduction; every schedule within the bound, without) has been run.
    ``on_execution(execution, sched)`` sees each full execution (tests read
    final states from ``sched.world``) and each quiet state replayed whose
    check failed (:meth:`Explore.quiet_states`).  With ``target``, only failures of that
    invariant count; others are searched past.  With ``check_footprints``, an
    access of a :class:`~fuzzrmap.sched.api.Shared` object outside the
    running step's declared footprint raises
    :class:`~fuzzrmap.sched.api.FootprintError`.  With ``final_states``, the
    result's ``outcomes`` holds each execution's final state (the scenario's
    ``final_state()``) and invariant.  With ``jobs`` > 1 the
    subtrees of the search run in that many worker processes
    (:mod:`fuzzrmap.explore_parallel`; no ``on_execution`` there): the same
    verdict and violations, counts of its own; with ``in_order`` too (a naive
    search that stops on failure), the sequential search's failure,
    completeness and executions, whatever ``max_executions``.  ``progress(executions, pruned)``
    is called after every execution, full or cut short (with ``jobs`` > 1: after
    every unit of work merged).

    Under a ``preemption_model`` other than ``anywhere`` the search is naive
    (``reduction`` is ignored, and the result says so) and runs in one
    process: which threads are enabled then depends on which one ran last,
    and the reduction's independence of steps does not know that.
    """
    reduction = reduction and preemption_model == preemption.ANYWHERE
    if preemption_model != preemption.ANYWHERE:
        jobs = 1
    if jobs > 1:
        if on_execution is not None:
            raise ValueError("on_execution needs jobs=1 (executions run in worker processes)")
        from fuzzrmap import explore_parallel

        return explore_parallel.explore(scenario, variant, jobs, reduction=reduction,
                                        preemption_bound=preemption_bound, max_executions=max_executions,
                                        stop_on_failure=stop_on_failure, target=target,
                                        check_footprints=check_footprints, final_states=final_states,
                                        progress=progress, in_order=in_order)
    strategy = Explore(reduction=reduction, preemption_bound=preemption_bound)
    start = time.perf_counter()
    tally = Tally()
    interrupted = False
    RUNNING.check_footprints = check_footprints
    try:
        search(scenario, variant, strategy, tally, advance_first=False, max_executions=max_executions,
               on_execution=on_execution, stop_on_failure=stop_on_failure, target=target,
               final_states=final_states, progress=progress,
               preemption_model=preemption_model)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        RUNNING.check_footprints = False
    return explore_result(tally, time.perf_counter() - start, reduction, preemption_bound, strategy.hit_bound,
                          interrupted, preemption_model=preemption_model)


def explore_result(tally: Tally, elapsed_s: float, reduction: bool, preemption_bound: Optional[int],
                   bound_cut: bool, interrupted: bool, jobs: int = 1,
                   preemption_model: str = preemption.DEFAULT) -> ExploreResult:
    return ExploreResult(tally.executions, tally.pruned, tally.complete, tally.failure, elapsed_s,
                         reduction, preemption_bound, bound_cut, tally.longest, tally.per_thread, interrupted,
                         frozenset(tally.violations), jobs, frozenset(tally.outcomes), preemption_model,
                         tally.quiet_states)
