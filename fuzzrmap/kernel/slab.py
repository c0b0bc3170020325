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

The grace period is :func:`~fuzzrmap.kernel.rcu.call_rcu`'s, called by the
free (``free_slab()``'s ``call_rcu(&slab->rcu_head, rcu_free_slab)``, or
``slab_free()``'s ``call_rcu(&delayed_free->head,
slab_free_after_rcu_debug)``): it starts at the free, and the ``rcu`` thread
runs the callback, :meth:`Slab.after_grace_period`, once the read-side
sections open at the free have ended.  Without the debug option the slot may
be re-allocated meanwhile: then the page is in use again and the callback
does nothing (a later free queues its own).

Footprints name the cache's parts apart, so that the exhaustive search
orders only what really depends: the freelist (its order: what an
allocation takes), the set of slots (what a fresh allocation extends) and
each slot's state.  A free also reads how many read-side sections each
task has begun (the snapshot, :mod:`fuzzrmap.kernel.rcu`) and queues a
callback.  The release of a slot's page writes only the slot:
the slot stays on the freelist, marked GONE, and an allocation skips it,
reading the state of every slot it skips.  So a release commutes with a free
or an allocation of another slot, as its removal from the list would; an
allocation that took the released slot had to read it.  An allocation from
an empty freelist reads the freelist and adds a slot: it commutes with the
RCU thread waiting for a grace period.
"""

from __future__ import annotations

import enum
import functools
from typing import Callable, Generic, List, TypeVar

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.hunks import CONFIG, hunk
from fuzzrmap.kernel.rcu import call_rcu, fp_call_rcu
from fuzzrmap.kernel.task import current
from fuzzrmap.sched.api import Footprint, reads, touch, writes

#: footprint names: ``kmem_cache_alloc()`` takes from the freelist or adds a slot, a free
#: and the release after its grace period change the freelist
SLAB_FREELIST = "slab.freelist"
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
        self.frees = 0

    def kmem_cache_alloc(self) -> T:
        for i in range(len(self.freelist) - 1, -1, -1):
            obj = self.freelist[i]
            if obj.slab_state is SlotState.GONE and not SLUB_RCU_DEBUG.on:
                touch(slot_resource(obj.slot), False)  # its slab page is released
                continue
            touch(SLAB_FREELIST, True)
            del self.freelist[i]
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

    def fp_free(self, obj: T) -> Footprint:
        """The footprint of :meth:`kmem_cache_free` of ``obj``, ``call_rcu()`` included."""
        return writes(SLAB_FREELIST, slot_resource(obj.slot)) + fp_call_rcu(current().kernel.rcu)

    def kmem_cache_free(self, obj: T) -> None:
        """Free ``obj`` and queue the release of its memory one grace period from now."""
        touch(slot_resource(obj.slot), True)
        if obj.slab_state is not SlotState.LIVE:
            raise violation("I5d", SAFETY, f"kmem_cache_free of {obj!r}, which is already {obj.slab_state.value}")
        self.frees += 1
        obj.slab_state = SlotState.FREE
        obj.free_seq = self.frees
        if not SLUB_RCU_DEBUG.on:
            touch(SLAB_FREELIST, True)
            self.freelist.append(obj)
        callback = "slab_free_after_rcu_debug" if SLUB_RCU_DEBUG.on else "rcu_free_slab"
        call_rcu(f"{callback}({obj!r})", functools.partial(self.after_grace_period, obj, obj.free_seq),
                 functools.partial(self.fp_after_grace_period, obj, obj.free_seq))

    def fp_after_grace_period(self, obj: T, free_seq: int) -> Footprint:
        """What :meth:`after_grace_period` touches in the current state: a slot re-allocated since
        the free is only read."""
        if obj.slab_state is not SlotState.FREE or obj.free_seq != free_seq:
            return reads(slot_resource(obj.slot))
        if SLUB_RCU_DEBUG.on:
            return writes(slot_resource(obj.slot), SLAB_FREELIST)
        return writes(slot_resource(obj.slot))

    def after_grace_period(self, obj: T, free_seq: int) -> None:
        """The callback of free number ``free_seq``: a grace period has passed since it.

        ``obj`` is GONE if it stayed free since: released with its slab page
        (left on the freelist, where allocations skip it), or, when it waited
        for this grace period (SLUB_RCU_DEBUG), poisoned and put on the
        freelist.  Re-allocated meanwhile, it is left alone."""
        for resource, access in self.fp_after_grace_period(obj, free_seq):
            touch(resource, access)
        if obj.slab_state is not SlotState.FREE or obj.free_seq != free_seq:
            return
        obj.slab_state = SlotState.GONE
        if SLUB_RCU_DEBUG.on:
            self.freelist.append(obj)
