"""Drivers: what actually steps the model coroutines a scheduler releases.

Both drivers execute the same model bodies and ask the same
:class:`~fuzzrmap.sched.scheduler.Scheduler` for every decision, so they
produce identical traces (a test checks this on many seeds).

* :func:`run_trio` runs each model thread as a **trio task**.  Control moves
  by baton passing over ``trio.lowlevel``: the thread that reaches a yield
  point calls :meth:`Scheduler.decide` itself; if it picks itself it simply
  continues, otherwise it reschedules the chosen task and parks with
  ``wait_task_rescheduled``.  Exactly one model task is runnable at any time,
  so trio's own batch order never matters.  Many schedules share one
  ``trio.run`` (a nursery per schedule), because starting a trio run costs
  more than a whole schedule.
* :func:`run_direct` steps the coroutines from a plain loop, without trio: the
  same decisions at a fraction of the cost per switch.  Campaigns use it.

What the drivers leave out: trio time, cancellation and I/O.  Model code never
awaits trio, and a stray await is reported as a :class:`ModelError`.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable, List

import trio

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

from fuzzrmap.sched.scheduler import Phase, Scheduler

#: Builds a ready-to-start scheduler (tasks spawned, nothing run yet).
Prepare = Callable[[], Scheduler]


def run_direct(sched: Scheduler) -> None:
    """Run one schedule to its end with a plain loop."""
    try:
        for task in sched.tasks:
            sched.start(task)
        while (task := sched.decide()) is not None:
            sched.advance(task)
    finally:
        sched.close()


def run_trio(prepared: Iterable[Prepare]) -> List[Scheduler]:
    """Run several schedules, one after another, inside a single ``trio.run``.

    Ctrl-C raises :class:`KeyboardInterrupt`, as with :func:`run_direct`, not
    the exception group trio's nursery wraps it in.
    """
    try:
        return trio.run(_run_all, list(prepared))
    except BaseExceptionGroup as group:
        rest = group.subgroup(lambda e: not isinstance(e, (KeyboardInterrupt, BaseExceptionGroup)))
        if rest is None:
            raise KeyboardInterrupt from None
        raise


async def _run_all(prepared: List[Prepare]) -> List[Scheduler]:
    done = []
    for prepare in prepared:
        sched = prepare()
        try:
            await _run_one(sched)
        finally:
            sched.close()
        done.append(sched)
    return done


async def _run_one(sched: Scheduler) -> None:
    async with trio.open_nursery() as nursery:
        for task in sched.tasks:
            await nursery.start(_worker, sched, task)
        first = sched.decide()
        if first is not None:
            trio.lowlevel.reschedule(first.handle)
        else:
            _wake_all(sched)


async def _park() -> None:
    await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED)


def _wake_all(sched: Scheduler, caller=None) -> None:
    """The schedule is over: let every parked worker return."""
    for t in sched.tasks:
        if t.alive and t is not caller:
            trio.lowlevel.reschedule(t.handle)


async def _worker(sched: Scheduler, task, task_status=trio.TASK_STATUS_IGNORED) -> None:
    task.handle = trio.lowlevel.current_task()
    sched.start(task)
    task_status.started()
    if not task.alive:
        return
    await _park()
    while sched.phase is Phase.RUNNING:
        sched.advance(task)
        nxt = sched.decide()
        if nxt is None:
            _wake_all(sched, caller=task)
            return
        if nxt is task:
            continue
        trio.lowlevel.reschedule(nxt.handle)
        if not task.alive:
            return
        await _park()
