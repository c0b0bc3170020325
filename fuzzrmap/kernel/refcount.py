"""``atomic_t`` used as a reference count (include/linux/atomic.h).

Each operation is a single atomic step of its caller; the caller places the
yield point before it.  ``atomic_inc_not_zero()`` is what makes the
``SLAB_TYPESAFE_BY_RCU`` idiom work: a freed anon_vma has count 0 and cannot
be resurrected, but a *re-allocated* one (count 1 again) can be pinned by a
stale reader, which therefore has to validate what it pinned.

Sequential consistency is assumed (the model has no weak memory), so the full
barrier of ``atomic_dec_and_test()`` is implicit.  A decrement from zero is
I6 (a double put).

Footprints.  Two threads that each take a reference and drop it again
(``folio_try_get()`` ... ``folio_put()``) commute while some reference that
none of them holds keeps the count above zero: neither order lets a put
reach zero or an ``atomic_inc_not_zero()`` fail.  The counter keeps, as
checker bookkeeping, the references each model thread took (``_pins``); the
*base* is the count minus all of them.  An increment, or a decrement by a
thread that holds a reference, records an :data:`~fuzzrmap.sched.api.ADD`
when the base is at least one, else a write.  Adds leave the base as it is
(count and pins move together), so whether a step adds is the same in both
orders of two adds, and so is what each does; a read or a write of the
counter conflicts with them.  A failed ``atomic_inc_not_zero()`` only reads.
"""

from __future__ import annotations

from typing import Dict

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.sched.api import ADD, RUNNING, touch


class Atomic:
    __slots__ = ("name", "counter", "_pins")

    def __init__(self, name: str, value: int = 0) -> None:
        self.name = name
        self.counter = value
        #: checker: references taken by each model thread (by scheduler task), not yet dropped by it
        self._pins: Dict[object, int] = {}

    def _adds(self, dropping: bool) -> bool:
        """Record the running thread's increment (or, ``dropping``, decrement): an add when it
        commutes with every other add (see the module notes), else a write."""
        task = RUNNING.task
        held = self._pins.get(task, 0)
        quiet = task is not None and self.counter - sum(self._pins.values()) >= 1 and (held or not dropping)
        touch(self.name, ADD if quiet else True)
        if task is not None:
            if not dropping:
                self._pins[task] = held + 1
            elif held:
                self._pins[task] = held - 1
        return quiet

    def __repr__(self) -> str:
        return f"{self.name}={self.counter}"

    def atomic_read(self) -> int:
        touch(self.name, False)
        return self.counter

    def atomic_set(self, value: int) -> None:
        touch(self.name, True)
        self.counter = value

    def atomic_inc(self) -> None:
        self._adds(dropping=False)
        self.counter += 1

    def atomic_inc_not_zero(self) -> bool:
        if self.counter == 0:
            touch(self.name, False)
            return False
        self._adds(dropping=False)
        self.counter += 1
        return True

    def atomic_dec_and_test(self) -> bool:
        self._adds(dropping=True)
        if self.counter <= 0:
            raise violation("I6", SAFETY, f"atomic_dec_and_test({self.name}) on a count of {self.counter}: double put")
        self.counter -= 1
        return self.counter == 0
