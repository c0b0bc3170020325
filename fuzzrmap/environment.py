"""Environments: what a schedule runs in, besides the scenario's own threads.

The engine knows how to run threads; it does not know what they run on.  A
scenario names an :class:`Environment`, and the environment supplies the rest
of a schedule:

* :meth:`~Environment.build` calls the scenario's ``setup`` with whatever
  globals the environment gives it (the kernel model passes a fresh
  ``Kernel``; a plain program gets nothing) and returns them with the
  :class:`~fuzzrmap.scenario.World`;
* :meth:`~Environment.background` adds threads the scenario did not write
  (the kernel's RCU grace-period thread);
* :meth:`~Environment.task_state` is the per-thread state hung on each
  scheduler task (the kernel's ``task_struct``; here, the locks a thread holds);
* :meth:`~Environment.preemption_context` says where a thread parked at a
  yield point is, for preemption models (:mod:`fuzzrmap.preemption`): the
  kernel's answer reads the RCU nesting and the spinlocks held; a plain
  program's threads may be switched anywhere;
* :meth:`~Environment.thread_exit` and :meth:`~Environment.final_check` are
  the checks at the end of each thread and of the schedule; they raise a
  :class:`~fuzzrmap.sched.scheduler.Violation` (``fuzzrmap.check.violation``);
* :meth:`~Environment.quiet_check_reads` says which resources the checks
  between operations (:func:`~fuzzrmap.sched.api.operation`) may read, so
  that exhaustive search checks fewer quiet states, and
  :meth:`~Environment.quiet_digest` is what ``--check-footprints`` compares
  to hold the environment to it.

:data:`PLAIN` (the base class as it is) runs a classic program with
exactly its own threads, for the generic primitives of :mod:`fuzzrmap.sync`;
its ``setup()`` takes no argument.  The kernel
model's environment is ``fuzzrmap.kernel.environment.KERNEL``.

What is left out: an environment cannot change how threads are scheduled;
that stays with the scheduler and the strategy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Coroutine, List, Tuple

import attrs

from fuzzrmap import preemption
from fuzzrmap.check import SAFETY, violation

if TYPE_CHECKING:  # pragma: no cover
    from fuzzrmap.scenario import World
    from fuzzrmap.sched.api import Op
    from fuzzrmap.sched.scheduler import Scheduler

Thread = Tuple[str, Callable[[], Coroutine]]


class Environment:
    """The interface; a subclass overrides what it needs.  As it is, the plain environment."""

    #: shown by ``fuzzrmap list``
    name = "plain"

    def build(self, setup: Callable[..., "World"]) -> Tuple[Any, "World"]:
        """Fresh globals for one schedule and ``setup``'s world built on them."""
        return None, setup()

    def background(self, sched: "Scheduler", globals_: Any) -> List[Thread]:
        """Threads spawned after the scenario's own (by role; roles must not clash)."""
        return []

    def task_state(self, role: str, globals_: Any) -> Any:
        """The per-thread state of the thread ``role`` (``task.state``); its ``held`` list of
        (lock, mode) pairs, if it has one, is what ``fuzzrmap show`` draws as lock holds."""
        return ThreadState(role)

    def preemption_context(self, state: Any, op: "Op") -> preemption.Context:
        """Where the thread of ``state``, parked at ``op``, is if it is switched away from there
        (its context after its last step).  A plain program runs in user space, which every
        kernel preempts anywhere."""
        return USER_SPACE

    def may_preempt(self, state: Any, op: "Op", model: str) -> bool:
        """Whether preemption model ``model`` lets the thread of ``state``, parked at ``op``, be
        switched away from (the scheduler asks, see :func:`fuzzrmap.engine.prepare`)."""
        return preemption.allows(model, self.preemption_context(state, op).needs)

    def thread_exit(self, state: Any) -> None:
        """Checks when a thread returns: by default, it holds no lock of :mod:`fuzzrmap.sync`."""
        if state.held:
            lock, mode = state.held[0]
            raise violation("LOCK", SAFETY, f"{state.name} ends holding {lock.name} ({mode})")

    def final_check(self, globals_: Any, world: "World") -> None:
        """Checks once every thread has returned (the world's own ``final_check`` runs after)."""

    def quiet_check_reads(self, resource: str) -> bool:
        """Whether a check between operations may read ``resource``.

        Exhaustive search checks one quiet state for all those that differ
        only in steps writing nothing such a check may read
        (:meth:`~fuzzrmap.sched.strategies.dpor.Explore.quiet_states`).  By
        default every resource: then only steps that write nothing are left out.
        An environment that narrows it gives :meth:`quiet_digest` too, or
        nothing holds it to its claim.
        """
        return True

    def quiet_digest(self, globals_: Any, world: "World") -> Any:
        """Everything a check between operations may read, as a value compared with ``==``.

        With ``--check-footprints``, a step that writes no resource the checks
        may read (:meth:`quiet_check_reads`) must leave it equal.  None (the
        default): no digest, nothing compared.
        """
        return None


@attrs.define(eq=False)
class ThreadState:
    """A plain thread: its name and the locks it holds, in acquisition order."""

    name: str
    #: (lock, mode) pairs, as the kernel's TaskStruct keeps them
    held: List[Tuple[Any, str]] = attrs.Factory(list)


USER_SPACE = preemption.Context("at a yield point", preemption.NONE,
                                "nothing special: user space is preemptible everywhere")

#: a classic program: the scenario's threads and nothing else
PLAIN = Environment()
