"""A ``SLAB_TYPESAFE_BY_RCU`` kmem_cache (mm/slub.c), the home of every anon_vma.

What the flag gives, and so what this models (spec section 1.3):

1. ``kmem_cache_free()`` returns the object at once; the very next
   ``kmem_cache_alloc()`` may hand the same memory out again (here: the most
   recently freed slot first, like SLUB's per-cpu freelist).
2. The memory stays *an object of this type* until an RCU grace period has
   passed after the free: a reader that loaded the pointer inside
   ``rcu_read_lock()`` may keep dereferencing it, and finds a free or a
   re-allocated anon_vma, never foreign memory.
3. The constructor runs once per slot, not per allocation, so the rwsem and
   the refcount (0) of a freed object are real and initialised.

A slot's life is an explicit state machine, kept for the checker only (the
kernel cannot see it)::

    LIVE --kmem_cache_free--> FREE --alloc--> LIVE (gen + 1)
                               |--grace period--> GONE (slab page released)

A GONE slot is never reused; touching it is a use-after-free (I5a).
Simplification: each slot sits on its own slab page, so a page is released
as soon as its one object has been free for a full grace period.
"""

from __future__ import annotations

import enum
from typing import Callable, Generic, List, TypeVar

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.sched.api import touch

SLAB = "slab"


class SlotState(enum.Enum):
    LIVE = "live"
    FREE = "free"
    GONE = "gone"


class SlabObject:
    """Slab bookkeeping carried by every cached object (checker-only fields)."""

    slot: int
    slab_state: SlotState
    gen: int
    #: value of Slab.frees when this slot was last freed
    free_seq: int

    def init_slab(self, slot: int) -> None:
        self.slot = slot
        self.slab_state = SlotState.LIVE
        self.gen = 1
        self.free_seq = 0


T = TypeVar("T", bound=SlabObject)


def slot_resource(slot: int) -> str:
    """The footprint name of a slot's allocation state (what I5 checks read)."""
    return f"slot#{slot}"


class Slab(Generic[T]):
    def __init__(self, name: str, ctor: Callable[[int], T]) -> None:
        self.name = name
        self.ctor = ctor
        self.slots: List[T] = []
        self.freelist: List[T] = []
        self.frees = 0
        #: free_seq of the newest object on the freelist (0: empty)
        self._newest_free = 0

    def kmem_cache_alloc(self) -> T:
        touch(SLAB, True)
        if self.freelist:
            obj = self.freelist.pop()
            self._newest_free = self.freelist[-1].free_seq if self.freelist else 0
            obj.slab_state = SlotState.LIVE
            obj.gen += 1
            touch(slot_resource(obj.slot), True)
            return obj
        obj = self.ctor(len(self.slots) + 1)
        obj.init_slab(len(self.slots) + 1)
        self.slots.append(obj)
        return obj

    def kmem_cache_free(self, obj: T) -> None:
        touch(SLAB, True)
        touch(slot_resource(obj.slot), True)
        if obj.slab_state is not SlotState.LIVE:
            raise violation("I5d", SAFETY, f"kmem_cache_free of {obj!r}, which is already {obj.slab_state.value}")
        self.frees += 1
        obj.slab_state = SlotState.FREE
        obj.free_seq = self.frees
        self.freelist.append(obj)
        self._newest_free = self.frees

    # -- what the RCU grace-period thread does for this cache ---------------
    def unreclaimed(self) -> int:
        """Sequence number of the newest free not yet covered by a grace period (0: none)."""
        touch(SLAB, False)
        return self._newest_free

    def release_pages(self, freed_up_to: int) -> None:
        """A grace period that began after free number ``freed_up_to`` has ended."""
        touch(SLAB, True)
        keep = []
        for obj in self.freelist:
            if obj.free_seq <= freed_up_to:
                touch(slot_resource(obj.slot), True)
                obj.slab_state = SlotState.GONE
            else:
                keep.append(obj)
        self.freelist = keep
        self._newest_free = keep[-1].free_seq if keep else 0
