"""RCU (kernel/rcu/, v6.8-v6.18): read-side sections, grace periods, callbacks, the grace-period thread.

Modelled: ``rcu_read_lock()``/``rcu_read_unlock()`` nest per task; a grace
period waits for every read-side section open at its start (and only those)
- the defining guarantee, nothing more.  ``call_rcu()`` queues a callback
that the ``rcu`` model thread (``rcu_gp_kthread()`` with ``rcu_do_batch()``)
runs one grace period later; our scenarios need it for one thing, releasing
the slab memory of freed anon_vmas (``SLAB_TYPESAFE_BY_RCU``, see
:mod:`fuzzrmap.kernel.slab`).  ``synchronize_rcu()`` is the blocking form.

The grace period of a ``call_rcu()`` at time f is taken to start at f.  The
kernel may start it at any s after f, but that allows no callback time t
that a start at f forbids: t needs every section open at s to have ended by
t, and a section open at f either ended before s or is still open at s, so
it has ended by t too.  Nor does a start at f allow a time the kernel
forbids: a grace period may start right after the call, and then waits for
exactly the sections open at f.  So the call snapshots each task's latest
section, and its callback is ready once those have ended (the ones already
ended at f at once); the scheduler may still delay it at will.  This spares the search a start step to place
against every section boundary of every reader.  The thread runs callbacks
in call order, which loses nothing: a section of an earlier call's snapshot
still open at a later call is in the later snapshot, so the earlier
callback is ready whenever the later one is.

Footprints: a snapshot reads how many sections each task has begun, which
only the outermost lock writes: it names each task's latest section, and
waiting for it is waiting for those sections to end, at once if one has
already ended.  So an unlock commutes with a snapshot (in either order the
callback runs after both), while a lock does not (a section begun after the
call is not waited for).  Waiting for a snapshot reads only its sections,
each a resource of its own that only its own lock and unlock write, so
sections begun after the snapshot do not conflict with the wait; the unlock
creates the section's end (:data:`~fuzzrmap.sched.api.CREATE`), so the
search never tries a wait for it earlier.  ``call_rcu()``
writes the queue's tail (two calls are ordered) and creates the callback it
queues (:data:`~fuzzrmap.sched.api.CREATE`), a resource of its own; the
thread waiting for callback k reads only callback k, so a call queueing a
later one commutes with that wait, and the wait is never tried before the
call that it waits for.

Left out: callbacks other than the slab's, expedited grace periods,
quiescent-state detection details (a section is simply open or closed), and
preemption of readers.  ``pte_offset_map()`` enters a read-side section as in
the kernel, so page-table walkers delay grace periods too.

Checked: nesting never goes negative and is zero when a task ends (I9), and
nobody sleeps inside a section (I8, via ``might_sleep``).
"""

from __future__ import annotations

from typing import Callable, List, Tuple

import attrs

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.kernel.task import TaskStruct, current, sleeping
from fuzzrmap.sched.api import CREATE, Footprint, point, reads, touch, wait_until, writes

#: footprint name of the tail of the queue of callbacks (``call_rcu()`` appends)
RCU_CALLBACKS = "rcu.callbacks"


def callback_resource(index: int) -> str:
    """The footprint name of the queue's callback number ``index`` (``call_rcu()`` writes it,
    the ``rcu`` thread waiting for it reads it)."""
    return f"rcu.callback#{index}"


#: each task's latest read-side section at a grace period's start: (task, number of its section)
Snapshot = Tuple[Tuple[TaskStruct, int], ...]


@attrs.frozen
class RcuHead:
    """A queued callback (``struct rcu_head``): ``func`` runs once the sections of ``readers`` have ended.

    ``footprint()`` is what ``func`` would touch if it ran now; it may shrink as the world
    moves on, never grow (the ``rcu_do_batch()`` step declares it when the grace period ends)."""

    label: str
    func: Callable[[], None]
    footprint: Callable[[], Footprint]
    readers: Snapshot


class RCU:
    def __init__(self) -> None:
        self.tasks: List[TaskStruct] = []
        #: every callback queued so far, in call order
        self.callbacks: List[RcuHead] = []


def rcu_read_lock() -> None:
    """Footprint: only the outermost lock counts a section begun (the task's RCU state) and starts it."""
    t = current()
    if t.rcu_read_lock_nesting == 0:
        t.rcu_sections += 1
        touch(t.rcu_resource, True)
        touch(t.rcu_section_resource(t.rcu_sections), True)
    t.rcu_read_lock_nesting += 1


def rcu_read_unlock() -> None:
    """Footprint: only the outermost unlock ends the task's section (the count of sections begun
    stays).  The end happens once and every wait for the section is disabled before it: a
    :data:`~fuzzrmap.sched.api.CREATE`."""
    t = current()
    if t.rcu_read_lock_nesting <= 0:
        raise violation("I9", SAFETY, f"rcu_read_unlock() by {t.comm} outside a read-side section")
    t.rcu_read_lock_nesting -= 1
    if t.rcu_read_lock_nesting == 0:
        touch(t.rcu_section_resource(t.rcu_sections), CREATE)


def fp_snapshot(rcu: RCU) -> Footprint:
    """What taking a snapshot reads: every task's count of sections begun."""
    return reads(*(t.rcu_resource for t in rcu.tasks))


def _snapshot(rcu: RCU) -> Snapshot:
    """Each task's latest section, open or already ended (recorded: the reads of :func:`fp_snapshot`):
    a grace period starting now waits for those that are open."""
    for t in rcu.tasks:
        touch(t.rcu_resource, False)
    return tuple((t, t.rcu_sections) for t in rcu.tasks if t.rcu_sections)


def _fp_wait(readers: Snapshot) -> Footprint:
    """What waiting for the sections of ``readers`` reads: those sections only."""
    return reads(*(t.rcu_section_resource(s) for t, s in readers))


def _ended(readers: Snapshot) -> bool:
    """Whether every section of ``readers`` has ended (recorded: the reads of :func:`_fp_wait`)."""
    for t, s in readers:
        touch(t.rcu_section_resource(s), False)
    return all(t.rcu_read_lock_nesting == 0 or t.rcu_sections != s for t, s in readers)


def fp_call_rcu(rcu: RCU) -> Footprint:
    """The footprint of :func:`call_rcu`: the snapshot, and the queue it appends to (the
    callback it creates is recorded as it runs: another call may queue one first)."""
    return fp_snapshot(rcu) + writes(RCU_CALLBACKS)


def call_rcu(label: str, func: Callable[[], None], footprint: Callable[[], Footprint]) -> None:
    """``call_rcu()``: queue ``func`` (touching ``footprint()``) to run after a grace period
    that starts now (module essay).  Part of the caller's step (:func:`fp_call_rcu`)."""
    rcu = current().kernel.rcu
    readers = _snapshot(rcu)
    touch(RCU_CALLBACKS, True)
    touch(callback_resource(len(rcu.callbacks)), CREATE)
    rcu.callbacks.append(RcuHead(label, func, footprint, readers))


async def synchronize_rcu(func: str) -> None:
    """Start a grace period and wait until every pre-existing reader has left."""
    rcu = current().kernel.rcu
    await sleeping(point(func, "synchronize_rcu(): start grace period", fp_snapshot(rcu)))  # might_sleep()
    readers = _snapshot(rcu)
    await wait_until(func, "synchronize_rcu(): grace period ends", lambda: _ended(readers), _fp_wait(readers))


async def rcu_gp_kthread() -> None:
    """Run each queued callback once its grace period has ended, in call order.

    A daemon: it sleeps until a callback is queued and its grace period has
    ended, so the schedule ends when the other threads have returned and it
    has nothing left to do.  That wait declares the callback it waits for,
    which the call writes; once the callback is queued its snapshot is
    fixed, and the predicate records the sections it reads.  The callback is a step of its
    own (``rcu_do_batch()``), whose footprint is what it would touch when the
    wait ends: what the callback does to the world is then ordered after the
    wait, and so after the call, and does not race with the steps before it.
    """
    callbacks = current().kernel.rcu.callbacks
    done = 0

    def ready() -> bool:
        return len(callbacks) > done and _ended(callbacks[done].readers)

    def label() -> str:
        if len(callbacks) == done:
            return "wait for a callback (call_rcu())"
        return f"grace period ends for {callbacks[done].label}"

    while True:
        await wait_until("rcu_gp_kthread", label, ready, reads(callback_resource(done)))
        head = callbacks[done]
        done += 1
        await point("rcu_do_batch", head.label, head.footprint())
        head.func()
