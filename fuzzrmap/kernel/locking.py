"""Exclusive locks: ``spinlock_t`` (page table locks) and ``PG_locked`` (the folio lock).

Both are one owner or none.  They differ in what the waiter does: a spinlock
waiter spins (allowed inside RCU, forbidden to sleep while held), a folio lock
waiter sleeps (``folio_lock()`` -> ``__folio_lock()``; the checker's
``might_sleep()`` applies).  Which waiter gets the lock on release is left to
the scheduler, so every order is explored; the kernel's queueing (qspinlock
MCS queue, folio wait-queue hand-off) only narrows that set.

A contended acquire is one step: the thread waits until the lock is free and
takes it when it is released.  The failed attempt before the kernel starts
spinning or sleeps changes nothing, so it is not a step of its own; only when
waiting would itself be a bug (a self-deadlock, or sleeping where that is
forbidden) does the thread first try once and report the bug if the lock is
taken.  Footprints: a successful trylock writes the lock, a failed one only
reads it.
"""

from __future__ import annotations

from typing import Optional

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.kernel.rwsem import ANON_VMA_CLASS, might_sleep
from fuzzrmap.kernel.task import TaskStruct, current, spinning
from fuzzrmap.sched.api import point, touch, wait_until, writes

SPIN = "spin"
SLEEP = "lock"


class ExclusiveLock:
    __slots__ = ("name", "kind", "owner", "_fp")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.owner: Optional[TaskStruct] = None
        self._fp = writes(name)

    def __repr__(self) -> str:
        return f"lock({self.name})"

    def trylock(self) -> bool:
        if self.owner is None:
            touch(self.name, True)
            t = current()
            self.owner = t
            t.held.append((self, self.kind))
            return True
        touch(self.name, False)
        return False

    async def lock(self, func: str, label: str) -> None:
        t = current()
        if not self._may_wait(t):
            await point(func, label, self._fp)
            if self.trylock():
                return
            self._wait_check(t)
        wait = wait_until(func, label, self._free, self._fp)
        await (spinning(wait) if self.kind == SPIN else wait)
        self.trylock()

    def _may_wait(self, t: TaskStruct) -> bool:
        """Whether ``t`` may block on this lock (what :meth:`_wait_check` checks; thread-local state only)."""
        if self.owner is t:
            return False
        if self.kind == SLEEP:
            return not t.rcu_read_lock_nesting and not any(
                mode == SPIN or (mode in ("read", "write") and lock.lock_class == ANON_VMA_CLASS)
                for lock, mode in t.held)
        return True

    def _wait_check(self, t: TaskStruct) -> None:
        if self.owner is t:
            raise violation("I8", SAFETY, f"{t.comm} takes {self.name} again while holding it: self-deadlock")
        might_sleep(f"lock({self.name})")  # only SLEEP locks get here
        for lock, mode in t.held:
            if mode in ("read", "write") and lock.lock_class == ANON_VMA_CLASS:
                raise violation("I8", SAFETY, f"{t.comm} sleeps on {self.name} while holding {lock.name} ({mode}): lock order is folio lock before anon_vma rwsem")

    def unlock(self) -> None:
        t = current()
        touch(self.name, True)
        if self.owner is not t:
            raise violation("I7", SAFETY, f"unlock of {self.name} by {t.comm}, which does not hold it")
        self.owner = None
        t.held.remove((self, self.kind))

    def _free(self) -> bool:
        touch(self.name, False)
        return self.owner is None


def spinlock(name: str) -> ExclusiveLock:
    return ExclusiveLock(name, SPIN)


def folio_lock_bit(name: str) -> ExclusiveLock:
    return ExclusiveLock(name, SLEEP)
