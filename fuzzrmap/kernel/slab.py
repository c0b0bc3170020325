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

The reuse policy is a kernel-config switch, the hunk :data:`SLUB_RCU_DEBUG`
(mm/slub.c ``slab_free()`` -> ``slab_free_after_rcu_debug()``, v6.12+; on by
default with KASAN):

* off (the default): ``kmem_cache_free()`` puts the object on the freelist at
  once, and the next allocation takes the most recently freed one (LIFO);
* on: every free from a ``SLAB_TYPESAFE_BY_RCU`` cache waits for a grace
  period (``call_rcu()``) before the object reaches the freelist; KASAN
  poisons it then, so any later touch is reported as a use-after-free.

A slot's life is an explicit state machine, kept for the checker only (the
kernel cannot see it)::

    default:         LIVE --kmem_cache_free--> FREE --alloc--> LIVE (gen + 1)
                                                |--grace period--> GONE (slab page released)
    SLUB_RCU_DEBUG:  LIVE --kmem_cache_free--> FREE --grace period--> GONE (poisoned)
                                                                       |--alloc--> LIVE (gen + 1)

Touching a GONE slot is a use-after-free (I5a).  Simplification: each slot
sits on its own slab page, so without the debug option a page is released as
soon as its one object has been free for a full grace period, and a released
slot is never reused.

Footprints name the cache's parts apart, so that the exhaustive search
orders only what really depends: the freelist (what an allocation takes), the
list of frees waiting for a grace period (what the RCU thread waits on), the
set of slots (what a fresh allocation extends) and each slot's state.  An
allocation from an empty freelist reads the freelist and adds a slot: it
commutes with the RCU thread waiting for, or starting, a grace period.
"""

from __future__ import annotations

import enum
from typing import Callable, Generic, List, TypeVar

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.hunks import CONFIG, hunk
from fuzzrmap.sched.api import touch

#: footprint names: ``kmem_cache_alloc()`` takes from the freelist or adds a slot, a free
#: and a grace period's release change the freelist and the frees waiting for a grace period
SLAB_FREELIST = "slab.freelist"
SLAB_WAITING = "slab.waiting"
SLAB_SLOTS = "slab.slots"

SLUB_RCU_DEBUG = hunk("slab.CONFIG_SLUB_RCU_DEBUG",
                      "every free from a SLAB_TYPESAFE_BY_RCU cache waits a grace period before the "
                      "slot can be reused (mm/slub.c slab_free_after_rcu_debug(), v6.12+, on with KASAN)",
                      kind=CONFIG)


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
        #: what kmem_cache_alloc() may hand out, most recently freed last
        self.freelist: List[T] = []
        #: freed objects no grace period has covered yet, in free order
        self.waiting: List[T] = []
        self.frees = 0

    def kmem_cache_alloc(self) -> T:
        if self.freelist:
            touch(SLAB_FREELIST, True)
            obj = self.freelist.pop()
            reused_before_grace_period = obj in self.waiting
            touch(SLAB_WAITING, reused_before_grace_period)
            if reused_before_grace_period:
                self.waiting.remove(obj)
            obj.slab_state = SlotState.LIVE
            obj.gen += 1
            touch(slot_resource(obj.slot), True)
            return obj
        touch(SLAB_FREELIST, False)
        touch(SLAB_SLOTS, True)
        obj = self.ctor(len(self.slots) + 1)
        obj.init_slab(len(self.slots) + 1)
        self.slots.append(obj)
        return obj

    def kmem_cache_free(self, obj: T) -> None:
        touch(SLAB_WAITING, True)
        touch(slot_resource(obj.slot), True)
        if obj.slab_state is not SlotState.LIVE:
            raise violation("I5d", SAFETY, f"kmem_cache_free of {obj!r}, which is already {obj.slab_state.value}")
        self.frees += 1
        obj.slab_state = SlotState.FREE
        obj.free_seq = self.frees
        self.waiting.append(obj)
        if not SLUB_RCU_DEBUG.on:
            touch(SLAB_FREELIST, True)
            self.freelist.append(obj)

    # -- what the RCU grace-period thread does for this cache ---------------
    def unreclaimed(self) -> int:
        """Sequence number of the newest free not yet covered by a grace period (0: none)."""
        touch(SLAB_WAITING, False)
        return self.waiting[-1].free_seq if self.waiting else 0

    def release_pages(self, freed_up_to: int) -> None:
        """A grace period that began after free number ``freed_up_to`` has ended.

        Objects freed before it are GONE: released with their slab page (taken
        off the freelist), or, when they waited for this grace period
        (SLUB_RCU_DEBUG), poisoned and put on the freelist."""
        touch(SLAB_WAITING, True)
        covered = [obj for obj in self.waiting if obj.free_seq <= freed_up_to]
        if covered:
            touch(SLAB_FREELIST, True)
        self.waiting = [obj for obj in self.waiting if obj.free_seq > freed_up_to]
        for obj in covered:
            touch(slot_resource(obj.slot), True)
            obj.slab_state = SlotState.GONE
            if obj in self.freelist:
                self.freelist.remove(obj)
            else:
                self.freelist.append(obj)
