"""Drivers: what actually steps the model coroutines a scheduler releases.

Both drivers execute the same model bodies and ask the same
:class:`~fuzzrmap.sched.scheduler.Scheduler` for every decision, so they
produce identical traces (a test checks this on many seeds).

* :func:`run_trio` runs each model thread as a **trio task**.  Control moves
  by baton passing over ``trio.lowlevel``: the thread that reaches a yield
  point calls :meth:`Scheduler.decide` itself; if it picks itself it simply
  continues, otherwise it reschedules the chosen task and parks with
  ``wait_task_rescheduled``.  Exactly one model task is runnable at any time,
  so trio's own batch order never matters.  All the schedules of a call
  share one ``trio.run`` and one :class:`_Pool` of trio tasks: a schedule
  hands its threads to parked pool tasks instead of opening a nursery and
  starting tasks, which used to cost more than the schedule's decisions.
  Each thread's prologue (up to its first yield point, where model bodies
  start) runs in spawn order before the first decision, as in the direct
  driver.  The ``trio.run`` lives in an OS thread of its own and hands the
  results over as their schedules end: one run for any number of schedules
  (starting one costs more than a schedule), and no pile of finished results
  for the garbage collector to traverse again and again while the run goes on.
  Results cross in small batches: waking the caller's thread for each one
  cost as much as a fifth of a schedule.
* :func:`run_direct` steps the coroutines from a plain loop, without trio: the
  same decisions at a fraction of the cost per switch.  ``explore`` uses it
  for its prefix replays; ``--driver direct`` offers it to ``fuzz`` and
  ``replay`` as the proven-identical accelerator.

What the drivers leave out: trio time, cancellation and I/O.  Model code never
awaits trio, and a stray await is reported as a :class:`ModelError`.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Callable, Iterable, Iterator, List, Optional, TypeVar

import trio

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

from fuzzrmap.sched.scheduler import Scheduler, Task

#: Builds a ready-to-start scheduler (tasks spawned, nothing run yet).
Prepare = Callable[[], Scheduler]
Result = TypeVar("Result")


def run_direct(sched: Scheduler) -> None:
    """Run one schedule to its end with a plain loop."""
    try:
        for task in sched.tasks:
            sched.start(task)
        while (task := sched.decide()) is not None:
            sched.advance(task)
    finally:
        sched.close()


#: results a trio run may have made before the caller takes them
TRIO_AHEAD = 64
#: results handed to the caller at once; fewer when a schedule ends TRIO_BATCH_WAIT seconds after the oldest
TRIO_BATCH = 16
TRIO_BATCH_WAIT = 0.05


def run_trio(prepared: Iterable[Prepare], done: Callable[[Scheduler], Result]) -> Iterator[Result]:
    """Run several schedules, one after another, inside a single ``trio.run``.

    Yields ``done(sched)`` of each schedule as it ends (closed); ``done`` runs
    in the trio run's thread, before the next schedule begins.  That thread
    runs all model code, so the caller must run none while it iterates
    (:data:`~fuzzrmap.sched.api.RUNNING` is process-wide).  Leaving the loop
    early, by ``break``, an exception or Ctrl-C, stops the run after the
    schedule in progress.  An exception from the run is raised here; Ctrl-C
    inside it raises :class:`KeyboardInterrupt`, as with :func:`run_direct`,
    not the exception group trio's nursery wraps it in.
    """
    handover: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
    room = threading.Semaphore(TRIO_AHEAD)
    stop = threading.Event()

    def run() -> None:
        try:
            trio.run(_run_all, prepared, done, handover, room, stop)
            handover.put((_END, None))
        except BaseExceptionGroup as group:
            rest = group.subgroup(lambda e: not isinstance(e, (KeyboardInterrupt, BaseExceptionGroup)))
            handover.put((_RAISE, KeyboardInterrupt() if rest is None else group))
        except BaseException as e:  # noqa: B902 - raised in the caller's thread
            handover.put((_RAISE, e))

    runner = threading.Thread(target=run, name="fuzzrmap-trio", daemon=True)
    runner.start()
    try:
        while True:
            kind, value = handover.get()
            if kind is _END:
                return
            if kind is _RAISE:
                raise value
            room.release(len(value))
            yield from value
    finally:
        stop.set()
        room.release(TRIO_AHEAD)  # a run waiting for room wakes, sees the stop and ends
        runner.join()


_RESULTS, _END, _RAISE = "results", "end", "raise"


async def _run_all(prepared: Iterable[Prepare], done: Callable[[Scheduler], Result],
                   handover: queue.SimpleQueue, room: threading.Semaphore, stop: threading.Event) -> None:
    error = None
    batch: List[Result] = []  # made since ``since``, not handed over yet
    async with trio.open_nursery() as nursery:
        pool = _Pool(nursery)
        try:
            for prepare in prepared:
                if stop.is_set():
                    break
                sched = prepare()
                try:
                    await pool.run(sched)
                finally:
                    sched.close()
                result = done(sched)
                room.acquire()  # blocks the whole run while the caller is TRIO_AHEAD results behind
                if not batch:
                    since = time.monotonic()
                batch.append(result)
                if len(batch) >= TRIO_BATCH or time.monotonic() - since >= TRIO_BATCH_WAIT:
                    handover.put((_RESULTS, batch))
                    batch = []
        except BaseException as e:  # noqa: B902 - re-raised below, outside the nursery's group
            error = e
        nursery.cancel_scope.cancel()  # the pool's tasks are parked; let them go
    if batch:
        handover.put((_RESULTS, batch))
    if error is not None:
        raise error


class _Seat:
    """One pool task and the thread it plays now: ``job`` is (scheduler, thread)."""

    __slots__ = ("trio_task", "job")

    def __init__(self, trio_task: trio.lowlevel.Task) -> None:
        self.trio_task = trio_task
        self.job = None


class _Pool:
    """Trio tasks that play model threads, reused from one schedule to the next.

    A pool task is parked between turns.  Woken, it runs the thread on its
    :class:`_Seat` until the scheduler picks another thread, wakes that
    thread's pool task and parks again; when the schedule is over it wakes the
    coordinator (the task in :meth:`run`) instead.  Anything a model step
    raises is handed to the coordinator, which raises it from :meth:`run`.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._seats: List[_Seat] = []
        self._coordinator: Optional[trio.lowlevel.Task] = None
        self._error: Optional[BaseException] = None

    async def run(self, sched: Scheduler) -> None:
        """Run ``sched`` to its end on pool tasks."""
        for task in sched.tasks:
            sched.start(task)
        first = sched.decide()
        if first is None:
            return
        seats = len(sched.live)
        while len(self._seats) < seats:
            self._seats.append(await self._nursery.start(self._serve))
        for seat, task in zip(self._seats, sched.live):
            task.handle = seat
            seat.job = (sched, task)
        self._coordinator = trio.lowlevel.current_task()
        trio.lowlevel.reschedule(first.handle.trio_task)
        await _park(_abort)
        for seat in self._seats[:seats]:
            seat.job = None  # no cycle through the seats: the schedule is freed at once
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def _serve(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        seat = _Seat(trio.lowlevel.current_task())
        task_status.started(seat)
        park, abort, reschedule = _park, _abort, trio.lowlevel.reschedule
        while True:
            await park(abort)
            sched, task = seat.job
            try:
                nxt = _turn(sched, task)
            except BaseException as e:  # noqa: B902 - handed to the coordinator, re-raised there
                self._error = e
                nxt = None
            reschedule(self._coordinator if nxt is None else nxt.handle.trio_task)


def _turn(sched: Scheduler, task: Task) -> Optional[Task]:
    """Run ``task`` while the scheduler keeps choosing it; the next thread, or None at the end."""
    while True:
        sched.advance(task)
        nxt = sched.decide()
        if nxt is not task:
            return nxt


def _abort(_) -> trio.lowlevel.Abort:
    """A parked task may be cancelled (the pool is, when the run ends)."""
    return trio.lowlevel.Abort.SUCCEEDED


#: park the calling task until it is rescheduled; takes :func:`_abort`
_park = trio.lowlevel.wait_task_rescheduled
