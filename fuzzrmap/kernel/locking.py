"""Exclusive locks: ``spinlock_t`` (page table locks) and ``PG_locked`` (the folio lock).

Both are one owner or none.  They differ in what the waiter does: a spinlock
waiter spins (allowed inside RCU, forbidden to sleep while held), a folio lock
waiter sleeps (``folio_lock()`` -> ``__folio_lock()``; the checker's
``might_sleep()`` applies).  Which waiter gets the lock on release is left to
the scheduler, so every order is explored; the kernel's queueing (qspinlock
MCS queue, folio wait-queue hand-off) only narrows that set.
"""

from __future__ import annotations

from typing import Optional

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.kernel.rwsem import ANON_VMA_CLASS, might_sleep
from fuzzrmap.kernel.task import TaskStruct, current
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
        touch(self.name, True)
        if self.owner is None:
            t = current()
            self.owner = t
            t.held.append((self, self.kind))
            return True
        return False

    async def lock(self, func: str, label: str) -> None:
        await point(func, label, self._fp)
        if self.trylock():
            return
        t = current()
        if self.owner is t:
            raise violation("I8", SAFETY, f"{t.comm} takes {self.name} again while holding it: self-deadlock")
        if self.kind == SLEEP:
            might_sleep(f"lock({self.name})")
            for lock, mode in t.held:
                if mode in ("read", "write") and lock.lock_class == ANON_VMA_CLASS:
                    raise violation("I8", SAFETY, f"{t.comm} sleeps on {self.name} while holding {lock.name} ({mode}): lock order is folio lock before anon_vma rwsem")
        await wait_until(func, label + " [wakes holding it]", self._free, self._fp)
        self.trylock()

    def unlock(self) -> None:
        t = current()
        touch(self.name, True)
        if self.owner is not t:
            raise violation("I7", SAFETY, f"unlock of {self.name} by {t.comm}, which does not hold it")
        self.owner = None
        t.held.remove((self, self.kind))

    def _free(self) -> bool:
        return self.owner is None


def spinlock(name: str) -> ExclusiveLock:
    return ExclusiveLock(name, SPIN)


def folio_lock_bit(name: str) -> ExclusiveLock:
    return ExclusiveLock(name, SLEEP)
