"""``struct rw_semaphore`` (kernel/locking/rwsem.c), as the rmap code sees it.

Modelled: a writer or any number of readers; a FIFO wait queue; direct
hand-off on release (the front waiter, or the run of readers at the front, is
granted the lock before it wakes); writer preference in the sense that
matters here - once anyone is queued, ``down_read()`` queues too and both
trylocks fail (``RWSEM_FLAG_WAITERS`` is part of ``RWSEM_READ_FAILED_MASK``);
``rwsem_is_locked()`` is true while the lock is held *or* has waiters.

Left out: optimistic spinning, the hand-off bit's timing, reader-owned
heuristics and ``MAX_READERS_WAKEUP``: they change how long a waiter waits,
never which orders are possible between our threads.

Blocking acquires are scheduler waits, so a thread asleep on an rwsem is not
enabled, and the checker sees every acquire and release: an up on a lock the
thread does not hold is I7, a sleep inside an RCU read-side section or under a
spinlock, or on a lock the thread already holds, is I8.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, List, Optional, Tuple

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.kernel.task import TaskStruct, current, sleeping
from fuzzrmap.sched.api import point, touch, wait_until, writes

READ = "read"
WRITE = "write"


#: lockdep classes of the rwsems in the model (mm/rmap.c's lock-order comment:
#: mm->mmap_lock, then folio_lock, then anon_vma->rwsem)
ANON_VMA_CLASS = "anon_vma->rwsem"
MMAP_LOCK_CLASS = "mm->mmap_lock"


class RWSem:
    __slots__ = ("name", "lock_class", "writer", "readers", "waiters", "_fp")

    def __init__(self, name: str, lock_class: str = ANON_VMA_CLASS) -> None:
        self.name = name
        self.lock_class = lock_class
        self.writer: Optional[TaskStruct] = None
        self.readers: List[TaskStruct] = []
        self.waiters: Deque[Tuple[TaskStruct, str]] = deque()
        self._fp = writes(name)

    def __repr__(self) -> str:
        return f"rwsem({self.name})"

    # -- non-blocking operations (one step of the caller) ---------------------
    def down_read_trylock(self) -> bool:
        """Footprint: writes the rwsem when it succeeds, only reads it when it fails."""
        if self.writer is None and not self.waiters:
            touch(self.name, True)
            self._grant(current(), READ)
            return True
        touch(self.name, False)
        return False

    def down_write_trylock(self) -> bool:
        if self.writer is None and not self.readers and not self.waiters:
            touch(self.name, True)
            self._grant(current(), WRITE)
            return True
        touch(self.name, False)
        return False

    def up_read(self) -> None:
        t = current()
        touch(self.name, True)
        if t not in self.readers:
            raise violation("I7", SAFETY, f"up_read({self.name}) by {t.comm}, which does not hold it for read")
        self.readers.remove(t)
        t.held.remove((self, READ))
        self._wake()

    def up_write(self) -> None:
        t = current()
        touch(self.name, True)
        if self.writer is not t:
            raise violation("I7", SAFETY, f"up_write({self.name}) by {t.comm}, which does not hold it for write")
        self.writer = None
        t.held.remove((self, WRITE))
        self._wake()

    def is_locked(self) -> bool:
        """``rwsem_is_locked()``: held, or anyone queued."""
        touch(self.name, False)
        return self.writer is not None or bool(self.readers) or bool(self.waiters)

    # -- blocking operations (a yield point, then maybe a wait) --------------
    async def down_read(self, func: str, label: str) -> None:
        await sleeping(point(func, label, self._fp))  # might_sleep()
        if self.down_read_trylock():
            return
        await self._sleep(func, label, READ)

    async def down_write(self, func: str, label: str) -> None:
        await sleeping(point(func, label, self._fp))  # might_sleep()
        if self.down_write_trylock():
            return
        await self._sleep(func, label, WRITE)

    async def _sleep(self, func: str, label: str, mode: str) -> None:
        t = current()
        might_sleep(f"{'down_read' if mode == READ else 'down_write'}({self.name})")
        if self.writer is t or (mode == WRITE and t in self.readers):
            raise violation("I8", SAFETY, f"{t.comm} sleeps on {self.name} ({mode}), which it already holds: self-deadlock")
        touch(self.name, True)
        self.waiters.append((t, mode))
        await wait_until(func, label + " [wakes holding it]", lambda: self._holds(t, mode), self._fp)

    # -- internals -------------------------------------------------------------
    def _holds(self, t: TaskStruct, mode: str) -> bool:
        touch(self.name, False)
        return self.writer is t if mode == WRITE else t in self.readers

    def _grant(self, t: TaskStruct, mode: str) -> None:
        if mode == WRITE:
            self.writer = t
        else:
            self.readers.append(t)
        t.held.append((self, mode))

    def _wake(self) -> None:
        if self.writer is not None or not self.waiters:
            return
        if self.waiters[0][1] == WRITE:
            if not self.readers:
                self._grant(*self.waiters.popleft())
            return
        while self.waiters and self.waiters[0][1] == READ:
            self._grant(*self.waiters.popleft())


def might_sleep(what: str) -> None:
    """The checks of ``might_sleep()``: no sleeping inside RCU or under a spinlock (I8)."""
    t = current()
    if t.rcu_read_lock_nesting:
        raise violation("I8", SAFETY, f"{t.comm} sleeps in {what} inside an RCU read-side section")
    for lock, mode in t.held:
        if mode == "spin":
            raise violation("I8", SAFETY, f"{t.comm} sleeps in {what} while holding spinlock {lock.name}")
