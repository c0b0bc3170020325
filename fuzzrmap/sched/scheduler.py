"""The scheduler: which model thread runs next, one step at a time.

The scheduler holds the model threads of one schedule in spawn order.  Each
thread is parked at an :class:`~fuzzrmap.sched.api.Op`; a thread is *enabled*
when its op is a preemption point or a wait whose predicate holds.  At every
decision the scheduler computes the enabled set, asks the strategy to pick one
thread, records the :class:`~fuzzrmap.sched.trace.Step`, and returns the
thread; the driver then runs it up to its next yield point (:meth:`advance`).

A preemption model (:mod:`fuzzrmap.preemption`) narrows the choice: when
:attr:`Scheduler.may_preempt` says the running thread may not be switched
away from where it is parked, it is the only thread enabled (a thread that
blocks or returns is never forced).  The set recorded in the step is the one
the strategy chose from.

Because all blocking goes through wait predicates, the scheduler knows exactly
who can run.  No enabled thread while some are alive is a deadlock (I8),
unless every thread still alive is a *daemon* (a service thread such as the
RCU grace-period kthread, which sleeps until there is work): then the
schedule is simply over.  A
schedule that exceeds ``max_steps`` decisions is reported as a livelock, so a
runaway retry loop ends in a report instead of a hang.

The state machine of one schedule::

    NEW --start--> RUNNING --decide() returns None--> FINISHED
                      |--a Violation or a deadlock/livelock--> FAILED

A failure *noted* (:meth:`note`) leaves the schedule RUNNING: it becomes the
schedule's failure and later ones its consequences.

Nothing here knows about the kernel model or about any particular strategy;
both plug in from outside (model code through :mod:`~fuzzrmap.sched.api`,
strategies through :class:`~fuzzrmap.sched.strategies.Strategy`).
"""

from __future__ import annotations

import enum

from typing import Any, Callable, Coroutine, FrozenSet, List, Optional

from fuzzrmap.sched.api import RUNNING, ModelError, Op, touch
from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.trace import LIVENESS, SAFETY, Event, Execution, Failure, Step

DEFAULT_MAX_STEPS = 5000


class Violation(Exception):
    """Raised by checker code inside a model thread: the schedule has failed."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.headline())
        self.failure = failure


def exit_resource(role: str) -> str:
    """Footprint name of thread ``role``'s having returned: its last step writes it, a join reads it."""
    return f"exit:{role}"


class Task:
    """One model thread: a coroutine parked at ``op`` (``None`` once it returned)."""

    __slots__ = ("tid", "role", "coro", "op", "state", "handle", "daemon", "in_op")

    def __init__(self, tid: int, role: str, coro: Coroutine, daemon: bool = False) -> None:
        self.tid = tid
        self.role = role
        self.coro = coro
        #: a daemon blocked at the end does not make the schedule a deadlock
        self.daemon = daemon
        self.op: Optional[Op] = None
        #: operations the thread is inside (:func:`~fuzzrmap.sched.api.operation_begins`)
        self.in_op = 0
        # Per-thread model state (the kernel's task_struct), owned by the model.
        self.state: Any = None
        # Driver-private handle (the trio task running this thread).
        self.handle: Any = None

    @property
    def alive(self) -> bool:
        return self.op is not None

    @property
    def exit_resource(self) -> str:
        return exit_resource(self.role)


class Phase(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


#: decide() runs at every step, and a module global is cheaper to look up than an enum member
_RUNNING = Phase.RUNNING


class Scheduler:
    def __init__(self, strategy, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        self.strategy = strategy
        self.max_steps = max_steps
        # bound once: these two run at every decision
        self._next_task = strategy.next_task
        self._observe = None if type(strategy).observe is Strategy.observe else strategy.observe
        self.tasks: List[Task] = []
        #: the threads that have not returned, in spawn order (kept as they end)
        self.live: List[Task] = []
        self.steps: List[Step] = []
        self.events: List[Event] = []
        self.failure: Optional[Failure] = None
        #: failures after the first one, in order (the run went on after a noted failure)
        self.consequences: List[Failure] = []
        self.phase = Phase.NEW
        self._current: Optional[int] = None
        #: operations in flight, over all threads
        self.in_operation = 0
        #: what the owner of this schedule built it from (the engine: kernel and world)
        self.world: Any = None
        #: names of the hunks this schedule runs with (read by fuzzrmap.hunks.Hunk.on)
        self.hunks: FrozenSet[str] = frozenset()
        #: record each step's accesses into Step.footprint (declared + touched)
        self.record_footprints = False
        #: called as observer(step_index, task) after each step has run (reports, exports)
        self.observer: Optional[Callable[[int, Task], None]] = None
        #: may_preempt(task): whether the running thread, parked at its op, may be switched away
        #: from; when not, it is the only thread enabled (None: a switch at every yield point)
        self.may_preempt: Optional[Callable[[Task], bool]] = None

    # -- setting up -------------------------------------------------------
    def spawn(self, role: str, coro: Coroutine, daemon: bool = False) -> Task:
        assert self.phase is Phase.NEW, "spawn after the schedule started"
        task = Task(len(self.tasks), role, coro, daemon)
        self.tasks.append(task)
        self.live.append(task)
        return task

    def start(self, task: Task) -> None:
        """Run ``task`` to its first yield point (model bodies start with one)."""
        self.phase = Phase.RUNNING
        self.advance(task)

    # -- the two operations a driver alternates ----------------------------
    def decide(self) -> Optional[Task]:
        """Pick the next thread, or return None when the schedule is over.

        Only threads parked at a wait cost a predicate call; a thread at a
        plain point is enabled without one.
        """
        if self.phase is not _RUNNING:
            return None
        enabled = []  # a plain loop: a comprehension costs a call in the hottest line of the tool
        for t in self.live:
            ready = t.op.ready
            if ready is None or ready():
                enabled.append(t.tid)
        enabled = tuple(enabled)
        steps = self.steps
        if not enabled:
            blocked = [t for t in self.live if not t.daemon]
            if blocked:
                waits = "; ".join(f"{t.role} waits at {t.op.func} {t.op.label}" for t in blocked)
                self._fail(Failure("I8", SAFETY, blocked[0].role, len(steps),
                                   f"deadlock: no task can run ({waits})"))
            else:
                self.phase = Phase.FINISHED
            return None
        current = self._current
        if (self.may_preempt is not None and len(enabled) > 1 and current in enabled
                and not self.may_preempt(self.tasks[current])):
            enabled = (current,)
        if len(steps) >= self.max_steps:
            self._fail(Failure("LIVELOCK", LIVENESS, self.tasks[enabled[0]].role, len(steps),
                               f"no end after {self.max_steps} steps"))
            return None
        tid = self._next_task(enabled, current, len(steps))
        if tid not in enabled:
            raise ModelError(f"strategy chose task {tid}, not in enabled set {enabled}")
        task = self.tasks[tid]
        op = task.op
        step = Step(tid, op.func, op.label, enabled, op.footprint)
        steps.append(step)
        if self._observe is not None:
            self._observe(step)
        self._current = tid
        return task

    def advance(self, task: Task) -> None:
        """Run ``task`` from its yield point to the next one (or to its end)."""
        RUNNING.task = task
        RUNNING.sched = self
        recording = self.record_footprints and self.steps
        if recording:
            RUNNING.touched = touched = []
            if task.op.ready is not None:
                task.op.ready()  # record what the wait's predicate reads
        try:
            op = task.coro.send(None)
        except StopIteration:
            op = None
            touch(task.exit_resource, True)
        except Violation as v:
            op = None
            self._fail(v.failure)
        finally:
            RUNNING.task = None
            RUNNING.touched = None
        if recording:
            last = self.steps[-1]
            last.footprint = tuple(dict.fromkeys(last.footprint + tuple(touched)))
        if op is None:
            self.live.remove(task)
        elif not isinstance(op, Op):
            raise ModelError(f"{task.role} awaited {op!r}, which is not a fuzzrmap yield point")
        task.op = op
        if self.observer is not None and self.steps:
            self.observer(len(self.steps) - 1, task)

    # -- results ------------------------------------------------------------
    @property
    def step_index(self) -> int:
        """Index of the step being executed (the last decision)."""
        return len(self.steps) - 1

    def record(self, event: Event) -> None:
        self.events.append(event)

    def fail(self, failure: Failure) -> None:
        """Fail the schedule from outside a thread (end-of-run checks)."""
        self._fail(failure)

    def note(self, failure: Failure) -> None:
        """Record a failure and let the schedule run on (what follows is reported too)."""
        if self.failure is None:
            self.failure = failure
        else:
            self.consequences.append(failure)

    def _fail(self, failure: Failure) -> None:
        self.note(failure)
        self.phase = Phase.FAILED

    def close(self) -> None:
        """Unwind the coroutines of threads still parked (after a failure)."""
        for t in self.tasks:
            t.coro.close()
            t.op = None
        self.live.clear()

    def execution(self) -> Execution:
        return Execution(
            roles=tuple(t.role for t in self.tasks),
            steps=tuple(self.steps),
            failure=self.failure,
            events=tuple(self.events),
            consequences=tuple(self.consequences),
        )
