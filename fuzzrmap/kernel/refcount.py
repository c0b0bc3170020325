"""``atomic_t`` used as a reference count (include/linux/atomic.h).

Each operation is a single atomic step of its caller; the caller places the
yield point before it.  ``atomic_inc_not_zero()`` is what makes the
``SLAB_TYPESAFE_BY_RCU`` idiom work: a freed anon_vma has count 0 and cannot
be resurrected, but a *re-allocated* one (count 1 again) can be pinned by a
stale reader, which therefore has to validate what it pinned.

Sequential consistency is assumed (the model has no weak memory), so the full
barrier of ``atomic_dec_and_test()`` is implicit.  A decrement from zero is
I6 (a double put).
"""

from __future__ import annotations

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.sched.api import touch


class Atomic:
    __slots__ = ("name", "counter")

    def __init__(self, name: str, value: int = 0) -> None:
        self.name = name
        self.counter = value

    def __repr__(self) -> str:
        return f"{self.name}={self.counter}"

    def atomic_read(self) -> int:
        touch(self.name, False)
        return self.counter

    def atomic_set(self, value: int) -> None:
        touch(self.name, True)
        self.counter = value

    def atomic_inc(self) -> None:
        touch(self.name, True)
        self.counter += 1

    def atomic_inc_not_zero(self) -> bool:
        touch(self.name, True)
        if self.counter == 0:
            return False
        self.counter += 1
        return True

    def atomic_dec_and_test(self) -> bool:
        touch(self.name, True)
        if self.counter <= 0:
            raise violation("I6", SAFETY, f"atomic_dec_and_test({self.name}) on a count of {self.counter}: double put")
        self.counter -= 1
        return self.counter == 0
