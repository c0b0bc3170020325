"""Generic primitives for modelling any protocol: shared cells, locks, condition variables, threads.

The kernel model has its own primitives (``fuzzrmap.kernel``) with the
kernel's rules (lockdep's sleeping rules, RCU).  These are the plain ones a
user's program needs, with no rule beyond their own contract:

* :class:`Cell` - a shared memory word: ``load``, ``store``, ``fetch_add``,
  ``compare_exchange``, each one step;
* :class:`Mutex` - one owner; ``async with m:`` locks and unlocks;
* :class:`RWLock` - many readers or one writer, no preference either way;
* :class:`Condition` - a condition variable over a :class:`Mutex`
  (``wait``, ``notify``, ``notify_all``; no spurious wake-ups);
* :class:`Thread` - a thread another thread creates and joins;
* :func:`operation` - await a call as one operation, with a check of the
  state when it returns and no other operation is in flight.

Every operation is one scheduler step with a yield point before it, and
reports each access it makes with :func:`~fuzzrmap.sched.api.touch`, so the
footprint of user code is recorded, not hand-declared.  Blocking is, as in
the kernel's primitives, an attempt (a step that is always enabled) and,
when it fails, a :func:`~fuzzrmap.sched.api.wait_until` on a predicate: a
thread waiting for a mutex is not enabled, and when nobody can run the
scheduler reports the deadlock.  The step's function name is that of the model function that
called the primitive (what the report's column shows); its label names the
operation and the object.

Checked: unlocking a lock the thread does not hold, waiting on a condition
without its mutex, and a thread that ends holding a lock, all as invariant
``LOCK``; creating a thread twice as ``THREAD``.

Left out: memory orderings weaker than sequential consistency, timeouts,
fairness (which waiter gets a released lock is the scheduler's choice, so
every order is explored), recursion.  A :class:`Thread` must be created by
some thread, else it waits for ever and the end of the schedule reports a
deadlock.
"""

from __future__ import annotations

import sys
from typing import Any, Awaitable, Callable, List

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.sched.scheduler import exit_resource
from fuzzrmap.sched.api import RUNNING, ModelError, operation, point, reads, running, touch, wait_until, writes

__all__ = ["Cell", "Mutex", "RWLock", "Condition", "Thread", "operation"]

MUTEX = "mutex"
SHARED = "shared"
EXCLUSIVE = "exclusive"


def _caller() -> str:
    """The name of the model function that called the primitive."""
    return sys._getframe(2).f_code.co_name


def _holder():
    """The running thread's state (it keeps the locks it holds)."""
    return running().state


class Cell:
    """One shared memory word.  Threads access it with the awaitable operations;
    ``value`` is for ``setup``, the end-of-schedule checks and the checks between operations only."""

    def __init__(self, name: str, value: Any = 0) -> None:
        self.name = name
        self._value = value

    def __repr__(self) -> str:
        return f"Cell({self.name}={self._value!r})"

    @property
    def value(self) -> Any:
        if RUNNING.task is not None and not RUNNING.checking:
            raise ModelError(f"{self.name}.value read inside a thread: use 'await {self.name}.load()'")
        return self._value

    async def load(self) -> Any:
        await point(_caller(), f"load {self.name}", reads(self.name))
        touch(self.name, False)
        return self._value

    async def store(self, value: Any) -> None:
        await point(_caller(), f"store {self.name} = {value!r}", writes(self.name))
        touch(self.name, True)
        self._value = value

    async def fetch_add(self, delta: Any) -> Any:
        """Atomically add ``delta``; returns the old value."""
        await point(_caller(), f"fetch_add {self.name} += {delta!r}", writes(self.name))
        touch(self.name, True)
        old = self._value
        self._value = old + delta
        return old

    async def compare_exchange(self, expected: Any, new: Any) -> bool:
        """Atomically: if the value is ``expected``, make it ``new`` and return True."""
        await point(_caller(), f"compare_exchange {self.name}: {expected!r} -> {new!r}", writes(self.name))
        touch(self.name, True)
        if self._value != expected:
            return False
        self._value = new
        return True


class Mutex:
    """A lock with one owner.  ``lock`` blocks until it is free."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.owner = None

    def __repr__(self) -> str:
        return f"Mutex({self.name})"

    async def lock(self) -> None:
        await self._lock(_caller())

    async def trylock(self) -> bool:
        await point(_caller(), f"trylock {self.name}", writes(self.name))
        if not self._free():
            touch(self.name, True)
            return False
        self._take()
        return True

    async def unlock(self) -> None:
        await point(_caller(), f"unlock {self.name}", writes(self.name))
        self._release()

    async def __aenter__(self) -> "Mutex":
        await self._lock(_caller())
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # the thread is failing or being unwound: no more steps
            return
        await point(_caller(), f"unlock {self.name}", writes(self.name))
        self._release()

    async def _lock(self, func: str) -> None:
        await point(func, f"lock {self.name}", writes(self.name))
        if not self._free():
            touch(self.name, True)
            await wait_until(func, f"lock {self.name} [waits until it is free]", self._free, writes(self.name))
        self._take()

    def _free(self) -> bool:
        return self.owner is None

    def _take(self) -> None:
        touch(self.name, True)
        me = _holder()
        self.owner = me
        me.held.append((self, MUTEX))

    def _release(self) -> None:
        touch(self.name, True)
        me = _holder()
        if self.owner is not me:
            raise violation("LOCK", SAFETY, f"unlock of {self.name} by {running().role}, which does not hold it")
        self.owner = None
        me.held.remove((self, MUTEX))


class RWLock:
    """Any number of readers or one writer; a waiter of either kind may be passed over."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.writer = None
        self.readers: List[Any] = []

    def __repr__(self) -> str:
        return f"RWLock({self.name})"

    async def read_lock(self) -> None:
        await self._lock(_caller(), "read_lock", SHARED, lambda: self.writer is None)

    async def write_lock(self) -> None:
        await self._lock(_caller(), "write_lock", EXCLUSIVE, lambda: self.writer is None and not self.readers)

    async def read_unlock(self) -> None:
        await point(_caller(), f"read_unlock {self.name}", writes(self.name))
        self._release(SHARED)

    async def write_unlock(self) -> None:
        await point(_caller(), f"write_unlock {self.name}", writes(self.name))
        self._release(EXCLUSIVE)

    async def _lock(self, func: str, op: str, mode: str, free: Callable[[], bool]) -> None:
        await point(func, f"{op} {self.name}", writes(self.name))
        if not free():
            touch(self.name, True)
            await wait_until(func, f"{op} {self.name} [waits until it is free]", free, writes(self.name))
        self._grant(mode)

    def _grant(self, mode: str) -> None:
        touch(self.name, True)
        me = _holder()
        if mode == EXCLUSIVE:
            self.writer = me
        else:
            self.readers.append(me)
        me.held.append((self, mode))

    def _release(self, mode: str) -> None:
        touch(self.name, True)
        me = _holder()
        holds = self.writer is me if mode == EXCLUSIVE else me in self.readers
        if not holds:
            raise violation("LOCK", SAFETY, f"{'write' if mode == EXCLUSIVE else 'read'}_unlock of {self.name} "
                                            f"by {running().role}, which does not hold it that way")
        if mode == EXCLUSIVE:
            self.writer = None
        else:
            self.readers.remove(me)
        me.held.remove((self, mode))


class Condition:
    """A condition variable used with ``mutex``.

    ``notify`` wakes one of the threads waiting at that moment (which one is
    the scheduler's choice), ``notify_all`` all of them; a notify with no
    waiter is lost.  A woken waiter runs again once it can re-take the mutex.

    Each pending wake-up is the set of waiters it may wake.  A waiter that
    wakes takes the oldest one that names it and leaves the others, which
    then name only the threads still waiting (an empty one was a notify
    another had already answered).
    """

    def __init__(self, name: str, mutex: Mutex) -> None:
        self.name = name
        self.mutex = mutex
        self.waiting: List[Any] = []
        #: one entry per pending wake-up: the waiters it may wake
        self.wakeups: List[frozenset] = []

    def __repr__(self) -> str:
        return f"Condition({self.name})"

    async def wait(self) -> None:
        func = _caller()
        fp = writes(self.name, self.mutex.name)
        await point(func, f"wait {self.name}: unlock {self.mutex.name}", fp)
        touch(self.name, True)
        me = _holder()
        if self.mutex.owner is not me:
            raise violation("LOCK", SAFETY, f"{running().role} waits on {self.name} without holding {self.mutex.name}")
        self.mutex._release()
        self.waiting.append(me)
        await wait_until(func, f"wait {self.name} [woken]", lambda: any(me in w for w in self.wakeups),
                         writes(self.name))
        touch(self.name, True)
        self.wakeups.remove(next(w for w in self.wakeups if me in w))
        # the other pending wake-ups may now wake only the others still waiting
        self.wakeups = [rest for rest in (w - {me} for w in self.wakeups) if rest]
        self.waiting.remove(me)
        await self.mutex._lock(func)

    async def notify(self) -> None:
        await point(_caller(), f"notify {self.name}", writes(self.name))
        touch(self.name, True)
        if self.waiting:
            self.wakeups.append(frozenset(self.waiting))

    async def notify_all(self) -> None:
        await point(_caller(), f"notify_all {self.name}", writes(self.name))
        touch(self.name, True)
        self.wakeups.extend(frozenset([w]) for w in self.waiting)


class Thread:
    """A thread that starts when another thread creates it; list :attr:`entry` in the world's threads."""

    def __init__(self, role: str, body: Callable[[], Awaitable[None]]) -> None:
        self.role = role
        self.body = body
        self.created = False
        self.done = False

    def __repr__(self) -> str:
        return f"Thread({self.role})"

    @property
    def entry(self):
        """``(role, body)`` for :attr:`fuzzrmap.scenario.World.threads`."""
        return self.role, self._run

    async def create(self) -> None:
        await point(_caller(), f"create thread {self.role}", writes(f"create:{self.role}"))
        touch(f"create:{self.role}", True)
        if self.created:
            raise violation("THREAD", SAFETY, f"thread {self.role} created twice")
        self.created = True

    async def join(self) -> None:
        func, exited = _caller(), exit_resource(self.role)
        await point(func, f"join {self.role}", reads(exited))
        touch(exited, False)
        if not self.done:
            await wait_until(func, f"join {self.role} [it has returned]", lambda: self.done, reads(exited))
            touch(exited, False)

    async def _run(self) -> None:
        await wait_until("thread_start", f"{self.role} waits to be created", lambda: self.created,
                         reads(f"create:{self.role}"))
        touch(f"create:{self.role}", False)
        await self.body()
        self.done = True
