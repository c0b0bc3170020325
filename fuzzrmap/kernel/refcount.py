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
*base* is the count minus all of them, the references that objects hold (a
page table's, an anon_vma's tree).  A thread taking a reference, or dropping
one it holds, leaves the base as it is and records an
:data:`~fuzzrmap.sched.api.ADD` when the base is at least one.  A reference
taken for an object (``pin=False``) or an object's dropped by a thread that
holds none moves the base by one; it records an add when the base stays at
least one (at least one before an increment, two before a decrement), and
then also writes the base: whether another such step adds depends on their
order, so they are ordered.  Else a step writes the counter.  So while steps
add, the base stays at least one: whether a step that keeps the base adds is
the same in either order, no decrement that adds reaches zero, no
``atomic_inc_not_zero()`` that adds fails, and adds commute.  A read or a
write of the counter conflicts with them.  A failed ``atomic_inc_not_zero()``
only reads.
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

    def _adds(self, dropping: bool, pin: bool = True) -> bool:
        """Record the running thread's increment (or, ``dropping``, decrement): an add when it
        commutes with every other add (see the module notes), else a write.  ``pin``: an
        increment's reference is the thread's (else an object's)."""
        task = RUNNING.task
        held = self._pins.get(task, 0)
        moves_base = not held if dropping else not pin
        quiet = task is not None and self.counter - sum(self._pins.values()) >= (2 if moves_base and dropping else 1)
        touch(self.name, ADD if quiet else True)
        if quiet and moves_base:
            touch(self.base_resource, True)
        if task is not None:
            if not dropping and pin:
                self._pins[task] = held + 1
            elif dropping and held:
                self._pins[task] = held - 1
        return quiet

    @property
    def base_resource(self) -> str:
        """Footprint name of the base (the references objects hold), which a step that adds while
        moving it writes: another such step may add or write depending on their order."""
        return f"{self.name}.base"

    def __repr__(self) -> str:
        return f"{self.name}={self.counter}"

    def atomic_read(self) -> int:
        touch(self.name, False)
        return self.counter

    def atomic_set(self, value: int) -> None:
        touch(self.name, True)
        self.counter = value

    def atomic_inc(self, pin: bool = True) -> None:
        """Take a reference: the running thread's, or (``pin=False``) one an object will hold."""
        self._adds(dropping=False, pin=pin)
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
