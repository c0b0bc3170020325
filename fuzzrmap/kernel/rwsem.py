"""``struct rw_semaphore`` (kernel/locking/rwsem.c, v6.8..v6.18), as the rmap code sees it.

The kernel keeps one ``count`` word and a wait list; this model keeps the same
information as fields: ``writer`` (``RWSEM_WRITER_LOCKED``, plus who set it),
``count_readers`` (the reader field of ``count``, in ``RWSEM_READER_BIAS``
units) and ``waiters`` (non-empty exactly when ``RWSEM_FLAG_WAITERS`` is set).
What the kernel does with them, step for step:

* ``down_read_trylock()`` fails on ``RWSEM_READ_FAILED_MASK``: a writer, any
  waiter, or a negative count; ``down_write_trylock()`` needs ``count == 0``.
  ``rwsem_is_locked()`` is ``count != 0``.
* ``down_read()`` adds its ``READER_BIAS`` first (``rwsem_read_trylock()``);
  if the count then shows a writer or waiters it takes the slow path, where a
  reader *steals* the lock when no writer holds it (reader optimistic lock
  stealing; it queues instead when other readers hold it), else queues in a
  second step; between the two its bias is in the count, so write trylocks and
  ``rwsem_is_locked()`` see it.  Queued readers are *handed* the lock by the
  waker (``rwsem_mark_wake()`` grants every queued reader, phase-fair).
* ``down_write()``: fast path ``cmpxchg(0 -> WRITER_LOCKED)``; then an optimistic
  spin that steals the lock whenever it is free, even with waiters queued;
  then it queues.  Wake-up does not hand a writer the lock: the woken first
  waiter retries (``rwsem_try_write_lock()``) when it runs, and anyone may have
  stolen the lock by then.  How long a writer spins before it queues is a
  scheduling choice (the step after its failed fast path), never randomness.
* ``up_read()`` subtracts its bias whoever calls it.  By a task that does not
  hold the rwsem that is I7, reported, and the run goes on with the count as
  the kernel leaves it: below zero every later lock attempt fails and writers
  wait for ever (I8 at the end); taken from another reader, a writer may enter
  while that reader is inside (I7x).  The schedule reports the first broken
  invariant and what followed from it.
* ``downgrade_write()`` turns the write hold into a read hold and grants the
  queued readers (``rwsem_downgrade_wake()``).

Left out: ``RWSEM_FLAG_HANDOFF``, set only after a waiter has waited
``RWSEM_WAIT_TIMEOUT`` (4 ms): it only forbids steals and implies waiters (so
every trylock it fails already fails), so leaving it out keeps every order it
forbids and hides none; ``MAX_READERS_WAKEUP``; whether the owner runs on a CPU
(a writer may spin whenever the scheduler lets it).

Blocking acquires are scheduler waits; the checker sees every acquire and
release: an up by a task that does not hold the lock is I7, a sleep inside an
RCU read-side section or under a spinlock, or on a lock the thread already
holds, is I8.

Footprints.  A reader's acquire (``down_read()``'s fast path, a successful
``down_read_trylock()``) and a holder's ``up_read()`` record an *add*
(:data:`~fuzzrmap.sched.api.ADD`) of the rwsem when no writer holds it, no
task waits and the count covers the holders; every other operation records a
write, a failed trylock or ``rwsem_is_locked()`` a read.  Two such adds by
different tasks commute, so the exhaustive search need not order two readers:
in a state where the first add's condition holds, neither add changes the
writer or the wait list, an acquire adds one to the count and to the holders,
a release takes one from each (the count stays at or above the number of
holders, so never below zero: an acquire still succeeds after a release);
neither changes whether the other task holds the lock, and with no waiter a
release wakes nobody.  So the second add's condition holds before the first,
each does the same in both orders, and both orders end in the same count,
the same set of holders and ``reader_owned`` set if either acquired.  Only the
order of the checker's ``holders`` list differs, and nothing reads that order
(the I7x report names the holders sorted).  An I7 release by a task that
does not hold the lock leaves the count below the holders: from then on the
rwsem's reader steps are writes again.  Waits and the steps of a slow path
declare a write: their predicates read the count and the wait list.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, List, Optional, Tuple

from fuzzrmap.check import SAFETY, report, violation
from fuzzrmap.kernel.task import TaskStruct, current, sleeping
from fuzzrmap.sched.api import ADD, adds, point, touch, wait_until, writes

READ = "read"
WRITE = "write"

#: rwsem_mark_wake() wake types
WAKE_ANY = "any"
WAKE_READERS = "readers"
WAKE_READ_OWNED = "read_owned"

#: lockdep classes of the rwsems in the model (mm/rmap.c's lock-order comment:
#: mm->mmap_lock, then folio_lock, then anon_vma->rwsem)
ANON_VMA_CLASS = "anon_vma->rwsem"
MMAP_LOCK_CLASS = "mm->mmap_lock"
VMA_LOCK_CLASS = "vma->vm_lock"
MAP_CHANGING_CLASS = "ctx->map_changing_lock"


class RWSem:
    __slots__ = ("name", "lock_class", "writer", "count_readers", "reader_owned", "holders", "waiters", "_fp",
                 "_fp_read")

    def __init__(self, name: str, lock_class: str = ANON_VMA_CLASS) -> None:
        self.name = name
        self.lock_class = lock_class
        #: RWSEM_WRITER_LOCKED, and the task that set it
        self.writer: Optional[TaskStruct] = None
        #: the reader field of ->count: holders plus readers in transit; < 0 once corrupted
        self.count_readers = 0
        #: RWSEM_READER_OWNED in ->owner: set by a reader's acquire, cleared by a writer's
        self.reader_owned = False
        #: checker: the tasks that acquired it for read (the kernel does not know them)
        self.holders: List[TaskStruct] = []
        self.waiters: Deque[Tuple[TaskStruct, str]] = deque()
        #: the declared footprint of a step that may write the rwsem
        self._fp = writes(name)
        #: the declared footprint of a reader's acquire or release (it records a write itself
        #: when it does not commute with other readers)
        self._fp_read = adds(name)

    def __repr__(self) -> str:
        return f"rwsem({self.name})"

    # -- the count, as the kernel tests it ------------------------------------
    def _read_failed(self) -> bool:
        """``count & RWSEM_READ_FAILED_MASK``."""
        return self.writer is not None or bool(self.waiters) or self.count_readers < 0

    def _lock_bits(self) -> bool:
        """``count & RWSEM_LOCK_MASK``."""
        return self.writer is not None or self.count_readers != 0

    def _touch_reader_step(self, releasing: Optional[TaskStruct] = None) -> None:
        """Record a reader's acquire, or ``releasing``'s up_read, before it changes anything:
        an add when it commutes with every other reader step (see the module notes), else a write."""
        quiet = self.writer is None and not self.waiters and self.count_readers >= len(self.holders)
        touch(self.name, ADD if quiet and (releasing is None or releasing in self.holders) else True)

    # -- non-blocking operations (one step of the caller) ---------------------
    def down_read_trylock(self) -> bool:
        """Footprint: adds to or writes the rwsem when it succeeds, only reads it when it fails."""
        if self._read_failed():
            touch(self.name, False)
            return False
        self._touch_reader_step()
        self.count_readers += 1
        self._grant(current(), READ)
        return True

    def down_write_trylock(self) -> bool:
        if self._lock_bits() or self.waiters:
            touch(self.name, False)
            return False
        touch(self.name, True)
        self._grant(current(), WRITE)
        return True

    def up_read(self) -> None:
        """``__up_read()``: drop one reader bias, whoever holds it; wake if that freed the lock."""
        t = current()
        self._touch_reader_step(releasing=t)
        if t in self.holders:
            self.holders.remove(t)
            t.held.remove((self, READ))
        else:
            report("I7", SAFETY, f"up_read({self.name}) by {t.comm}, which does not hold it for read; "
                                 f"the count drops to {self.count_readers - 1} reader(s)")
        self.count_readers -= 1
        if not self._lock_bits() and self.waiters:
            self._mark_wake(WAKE_ANY)

    def up_write(self) -> None:
        t = current()
        touch(self.name, True)
        if self.writer is not t:
            raise violation("I7", SAFETY, f"up_write({self.name}) by {t.comm}, which does not hold it for write")
        self.writer = None
        t.held.remove((self, WRITE))
        if self.waiters:
            self._mark_wake(WAKE_ANY)

    def downgrade_write(self) -> None:
        """``__downgrade_write()``: write hold -> read hold, then grant the queued readers."""
        t = current()
        touch(self.name, True)
        if self.writer is not t:
            raise violation("I7", SAFETY, f"downgrade_write({self.name}) by {t.comm}, which does not hold it for write")
        self.writer = None
        t.held.remove((self, WRITE))
        self.count_readers += 1
        self._grant(t, READ)
        if self.waiters:
            self._mark_wake(WAKE_READ_OWNED)

    def is_locked(self) -> bool:
        """``rwsem_is_locked()``: ``count != 0`` (holders, readers in transit, or waiters)."""
        touch(self.name, False)
        return self._lock_bits() or bool(self.waiters)

    def is_contended(self) -> bool:
        """``rwsem_is_contended()``: ``!list_empty(&sem->wait_list)``."""
        touch(self.name, False)
        return bool(self.waiters)

    # -- blocking operations ----------------------------------------------------
    async def down_read(self, func: str, label: str) -> None:
        might_sleep(f"down_read({self.name})")
        await sleeping(point(func, label, self._fp_read))
        # rwsem_read_trylock(): the bias goes in first, whatever the count says.
        t = current()
        self._touch_reader_step()
        self.count_readers += 1
        rcnt = self.count_readers
        if not self._read_failed():
            self._grant(t, READ)
            return
        # rwsem_down_read_slowpath(), on the count the fast path returned.
        readers_own_it = self.reader_owned and rcnt > 1 and self.writer is None
        if not readers_own_it and self.writer is None:
            # Reader optimistic lock stealing: the bias already counts.
            self._grant(t, READ)
            if rcnt == 1 and self.waiters:
                self._mark_wake(WAKE_READ_OWNED)
            return
        if t.holds(self, WRITE):
            raise violation("I8", SAFETY, f"{t.comm} sleeps on {self.name} (read), which it holds for write: self-deadlock")
        await point(func, f"{label} [rwsem_down_read_slowpath: queue]", self._fp)
        if not self.waiters and self.writer is None:
            self._grant(t, READ)
            return
        self.waiters.append((t, READ))
        self.count_readers -= 1
        self._cond_wake_waiter()
        await wait_until(func, label + " [wakes holding it]", lambda: t in self.holders, self._fp)

    async def down_write(self, func: str, label: str) -> None:
        might_sleep(f"down_write({self.name})")
        await sleeping(point(func, label, self._fp))
        if self.down_write_trylock():
            return
        t = current()
        if self.writer is t or t in self.holders:
            raise violation("I8", SAFETY, f"{t.comm} sleeps on {self.name} (write), which it already holds: self-deadlock")
        # rwsem_optimistic_spin(): until the scheduler runs it again, the writer spins
        # unqueued; then it takes the lock if it is free, waiters or not.
        await point(func, f"{label} [rwsem_optimistic_spin]", self._fp)
        if not self._lock_bits():
            self._grant(t, WRITE)
            return
        self.waiters.append((t, WRITE))
        if self.waiters[0][0] is not t:
            self._cond_wake_waiter()
        # Woken, the first waiter retries rwsem_try_write_lock(); until it runs,
        # anyone may steal the lock, and then it sleeps again.
        await wait_until(func, label + " [wakes holding it]", lambda: self._may_take(t), self._fp)
        self.waiters.popleft()
        self._grant(t, WRITE)

    # -- internals -------------------------------------------------------------
    def _may_take(self, t: TaskStruct) -> bool:
        return bool(self.waiters) and self.waiters[0][0] is t and not self._lock_bits()

    def _grant(self, t: TaskStruct, mode: str) -> None:
        """Checker bookkeeping of an acquire; a reader and a writer inside together is I7x."""
        if mode == WRITE:
            if self.holders:
                readers = ", ".join(sorted(h.comm for h in self.holders))
                report("I7x", SAFETY, f"{t.comm} takes {self.name} for write while {readers} "
                                      f"holds it for read (the count says it is free)")
            self.writer = t
            self.reader_owned = False
        else:
            if self.writer is not None:
                report("I7x", SAFETY, f"{t.comm} takes {self.name} for read while {self.writer.comm} holds it for write")
            self.holders.append(t)
            self.reader_owned = True
        t.held.append((self, mode))

    def _cond_wake_waiter(self) -> None:
        """``rwsem_cond_wake_waiter()`` on the current count."""
        if self.writer is not None:
            return
        self._mark_wake(WAKE_READERS if self.count_readers else WAKE_ANY)

    def _mark_wake(self, wake_type: str) -> None:
        """``rwsem_mark_wake()``: a writer at the front is only woken (it retries when it
        runs); readers are granted the lock, every queued one, writers skipped."""
        if not self.waiters or self.waiters[0][1] == WRITE:
            return
        if self.count_readers < 0:
            return  # "no reader wakeup if there are too many of them already"
        if wake_type != WAKE_READ_OWNED and self.writer is not None:
            return  # a writer stole the lock first
        woken = [w for w in self.waiters if w[1] == READ]
        self.waiters = deque(w for w in self.waiters if w[1] == WRITE)
        for t, mode in woken:
            self.count_readers += 1
            self._grant(t, READ)


def might_sleep(what: str) -> None:
    """The checks of ``might_sleep()``: no sleeping inside RCU or under a spinlock (I8)."""
    t = current()
    if t.rcu_read_lock_nesting:
        raise violation("I8", SAFETY, f"{t.comm} sleeps in {what} inside an RCU read-side section")
    for lock, mode in t.held:
        if mode == "spin":
            raise violation("I8", SAFETY, f"{t.comm} sleeps in {what} while holding spinlock {lock.name}")
