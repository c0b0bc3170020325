"""The checker: invariants I1-I11 of the model specification, I12-I14 between operations.

Checks run *inside* the model, at the step where a property must hold (the
return of ``folio_lock_anon_vma_read``, an unlock, a free, a walk step), plus
a final sweep when every thread has returned.  A broken invariant raises
:class:`~fuzzrmap.sched.scheduler.Violation`, which ends the schedule with a
:class:`~fuzzrmap.sched.trace.Failure` naming the invariant id, its class
(SAFETY or ACCURACY, as the spec's section 3 assigns them), the task, the step
and the values involved.

Where the kernel itself would carry on (an ``up_read()`` of a lock the task
does not hold changes the count and returns), the check calls :func:`report`
instead: the first broken invariant is the schedule's failure and the run goes
on, so what follows from it is reported too, as consequences.

Accuracy misses of unlocked rmap walkers (I10c) exist in the fixed kernel too
(spec section 4.4): they are recorded as events and never fail a schedule.
"""

from __future__ import annotations

from fuzzrmap.sched.api import RUNNING
from fuzzrmap.sched.scheduler import Violation
from fuzzrmap.sched.trace import ACCURACY, SAFETY, Failure

__all__ = ["ACCURACY", "SAFETY", "violation", "report", "event"]


def _failure(invariant: str, kind: str, message: str) -> Failure:
    task, sched = RUNNING.task, RUNNING.sched
    if task is None:  # an end-of-schedule check
        return Failure(invariant, kind, "(end)", len(sched.steps), message)
    return Failure(invariant, kind, task.role, sched.step_index, message)


def violation(invariant: str, kind: str, message: str) -> Violation:
    """Build the exception that fails the schedule; the caller raises it (in a thread,
    or in an end-of-schedule check, where the failure names the task ``(end)``)."""
    return Violation(_failure(invariant, kind, message))


def report(invariant: str, kind: str, message: str) -> None:
    """Report a broken invariant and let the schedule run on, so that its
    consequences (a hang, a lost exclusion) are reported after it."""
    RUNNING.sched.note(_failure(invariant, kind, message))


def event(invariant: str, message: str) -> None:
    """Record an accuracy event that does not fail the schedule."""
    RUNNING.sched.record(_failure(invariant, ACCURACY, message))
