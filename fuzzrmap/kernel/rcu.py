"""RCU (kernel/rcu/): read-side sections, grace periods, the reclaim thread.

Modelled: ``rcu_read_lock()``/``rcu_read_unlock()`` nest per task; a grace
period, once started, waits for every read-side section that was open at its
start (and only those) to end - the defining guarantee, nothing more.  The
``rcu`` model thread plays the grace-period kthread for the one thing our
scenarios need RCU to do: release the slab memory of freed anon_vmas
(``SLAB_TYPESAFE_BY_RCU``, see :mod:`fuzzrmap.kernel.slab`).

Left out: callbacks other than slab page release, expedited grace periods,
quiescent-state detection details (a section is simply open or closed), and
preemption of readers.  ``pte_offset_map()`` enters a read-side section as in
the kernel, so page-table walkers delay grace periods too.

Checked: nesting never goes negative and is zero when a task ends (I9), and
nobody sleeps inside a section (I8, via ``might_sleep``).
"""

from __future__ import annotations

from typing import List, Tuple

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.kernel.task import TaskStruct, current, sleeping
from fuzzrmap.kernel.slab import SLAB_FREELIST, SLAB_WAITING
from fuzzrmap.sched.api import point, reads, touch, wait_until, writes


class RCU:
    def __init__(self) -> None:
        self.tasks: List[TaskStruct] = []
        self.completed = 0


def rcu_read_lock() -> None:
    """Footprint: only the outermost lock writes the task's RCU state (what grace periods read)."""
    t = current()
    if t.rcu_read_lock_nesting == 0:
        touch(t.rcu_resource, True)
        t.rcu_sections += 1
    t.rcu_read_lock_nesting += 1


def rcu_read_unlock() -> None:
    """Footprint: only the outermost unlock writes the task's RCU state."""
    t = current()
    if t.rcu_read_lock_nesting <= 0:
        raise violation("I9", SAFETY, f"rcu_read_unlock() by {t.comm} outside a read-side section")
    t.rcu_read_lock_nesting -= 1
    if t.rcu_read_lock_nesting == 0:
        touch(t.rcu_resource, True)


async def synchronize_rcu(func: str) -> None:
    """Start a grace period and wait until every pre-existing reader has left.

    Footprints: the start reads every task's RCU state; the end reads only
    the readers it waits for, so sections that began after the start do not
    conflict with it.
    """
    rcu = current().kernel.rcu
    readers = reads(*(t.rcu_resource for t in rcu.tasks))
    await sleeping(point(func, "synchronize_rcu(): start grace period", readers))  # might_sleep()
    snapshot: List[Tuple[TaskStruct, int]] = [
        (t, t.rcu_sections) for t in rcu.tasks if t.rcu_read_lock_nesting
    ]

    def readers_gone() -> bool:
        return all(t.rcu_read_lock_nesting == 0 or t.rcu_sections != s for t, s in snapshot)

    await wait_until(func, "synchronize_rcu(): grace period ends", readers_gone,
                     reads(*(t.rcu_resource for t, _ in snapshot)))
    rcu.completed += 1


async def rcu_gp_kthread() -> None:
    """Release freed anon_vma slab memory one grace period after the free.

    A daemon: it sleeps until an object is freed, so its wait reads only the
    slab's frees waiting for a grace period, and the schedule ends when the
    other threads have returned and it has nothing left to do.
    """
    fn = "rcu_gp_kthread"
    cachep = current().kernel.anon_vma_cachep
    reclaimed = 0
    while True:
        await wait_until(fn, "wait for freed objects", lambda: cachep.unreclaimed() > reclaimed,
                         reads(SLAB_WAITING))
        batch = cachep.unreclaimed()
        await synchronize_rcu(fn)
        await point(fn, "free slab pages of anon_vmas freed before the grace period",
                    writes(SLAB_WAITING, SLAB_FREELIST))
        cachep.release_pages(batch)
        reclaimed = batch
