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
from typing import Callable, Hashable, Iterable, Iterator, List, Optional, TypeVar

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
from fuzzrmap.sched.api import touch
from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.strategies.dpor import Explore, Prune
from fuzzrmap.sched.strategies.replay import Divergence, Replay
from fuzzrmap.sched.trace import Execution, Failure

DRIVERS = ("direct", "trio")
T = TypeVar("T")


def prepare(scenario: Scenario, variant: Variant, strategy: Strategy, index: int,
            max_steps: int = DEFAULT_MAX_STEPS) -> Scheduler:
    """A scheduler with the scenario's threads spawned and nothing run yet."""
    strategy.begin(index)
    sched = Scheduler(strategy, max_steps)
    kernel = Kernel(protocol=variant.protocol, anon_vma_cachep=Slab("anon_vma", AnonVma), rcu=RCU())
    world = scenario.setup(kernel)
    roles = [role for role, _ in world.threads]

    def others_done() -> bool:
        # the rcu thread is spawned last, so it is first among the live only when alone
        return sched.live[0] is rcu_task

    threads = list(world.threads) + [("rcu", lambda: rcu_gp_kthread(others_done))]
    for role, body in threads:
        task = sched.spawn(role, _thread(body))
        task.state = TaskStruct(role, kernel)
        kernel.rcu.tasks.append(task.state)
    rcu_task = task
    assert "rcu" not in roles, "the rcu thread is the engine's"
    sched.world = (kernel, world)
    return sched


async def _thread(body):
    await body()
    t = current()
    touch(t.exit_resource, True)
    invariants.task_exit(t)


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
        (execution,) = drivers.run_trio([lambda: sched], finish)
        return execution
    drivers.run_direct(sched)
    return finish(sched)


#: schedules per ``trio.run`` in :func:`run_many` (starting one costs about a schedule)
TRIO_BATCH = 64


def run_many(scenario: Scenario, variant: Variant, strategy: Strategy, indices: Iterable[int],
             driver: str = "direct", done: Callable[[Scheduler], T] = finish) -> Iterator[T]:
    """``done(sched)`` of each schedule of ``indices``, in order (by default its execution).

    ``done`` runs as each schedule ends, before the next one begins, so it
    sees the strategy as that schedule left it.
    """
    indices = list(indices)
    if driver == "trio":
        for first in range(0, len(indices), TRIO_BATCH):
            batch = indices[first:first + TRIO_BATCH]
            yield from drivers.run_trio((_preparer(scenario, variant, strategy, i) for i in batch), done)
        return
    for i in indices:
        sched = prepare(scenario, variant, strategy, i)
        drivers.run_direct(sched)
        yield done(sched)


def _preparer(scenario, variant, strategy, index) -> Callable[[], Scheduler]:
    return lambda: prepare(scenario, variant, strategy, index)


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
             jobs: int = 1, cluster: Optional[str] = None) -> CampaignResult:
    """Run up to ``runs`` schedules; stop at the first failure (or on Ctrl-C).

    With ``jobs`` > 1 the schedules run in shards on that many processes, with
    ``cluster`` on a dask.distributed cluster (:mod:`fuzzrmap.parallel`); the
    result is the same either way.  ``strategy`` is left as the campaign left
    it (:attr:`CampaignResult.carry` resumed).
    """
    from fuzzrmap import parallel

    job = parallel.CampaignJob(scenario.name, variant.name, strategy, driver)
    result = parallel.campaign(job, runs, jobs, cluster, progress)
    strategy.resume(result.carry)
    return result


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

    @property
    def naive_upper_bound(self) -> int:
        """Interleavings of the longest execution's per-thread step counts, ignoring blocking."""
        total, count = 0, 1
        for n in self.steps_per_thread:
            total += n
            count *= math.comb(total, n)
        return count


def explore(scenario: Scenario, variant: Variant, reduction: bool = True,
            preemption_bound: Optional[int] = None, max_executions: Optional[int] = None,
            on_execution: Optional[Callable[[Execution, Scheduler], None]] = None,
            stop_on_failure: bool = True, target: Optional[str] = None) -> ExploreResult:
    """Depth-first search over the schedules of a scenario, by default until the first failure.

    ``complete`` is True when every schedule (every Mazurkiewicz trace, with
    reduction; every schedule within the bound, without) has been run.
    ``on_execution(execution, sched)`` sees each full execution (tests read
    final states from ``sched.world``).  With ``target``, only failures of that
    invariant count; others are searched past.
    """
    strategy = Explore(reduction=reduction, preemption_bound=preemption_bound)
    start = time.perf_counter()
    executions = pruned = longest = 0
    per_thread: List[int] = []
    failure = None
    complete = False
    interrupted = False
    index = 0
    try:
        while True:
            if index and not strategy.advance():
                complete = True
                break
            if max_executions is not None and executions >= max_executions:
                break
            sched = prepare(scenario, variant, strategy, index)
            sched.record_footprints = True
            strategy.sched = sched
            index += 1
            try:
                drivers.run_direct(sched)
            except Prune:
                pruned += 1
                continue
            execution = finish(sched)
            strategy.analyse(execution)
            executions += 1
            if len(execution.steps) > longest:
                longest = len(execution.steps)
                per_thread = [sum(1 for s in execution.steps if s.task == t) for t in range(len(execution.roles))]
            if on_execution is not None:
                on_execution(execution, sched)
            broken = execution.failure
            if broken is not None and failure is None and (target is None or broken.invariant == target):
                failure = execution
                if stop_on_failure:
                    break
    except KeyboardInterrupt:
        interrupted = True
    return ExploreResult(executions, pruned, complete, failure, time.perf_counter() - start,
                         reduction, preemption_bound, strategy.hit_bound, longest, per_thread, interrupted)
