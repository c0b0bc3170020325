"""Reverse mapping of anonymous memory (mm/rmap.c, include/linux/rmap.h).

Follows the v6.8..v6.18 code (generation G1 of the spec: UFFDIO_MOVE moves
folios across anon_vma roots, ``folio_lock_anon_vma_read()`` rechecks
``folio->mapping`` after taking the root rwsem).  The two rechecks are the
hunks :data:`FAST_RECHECK` and :data:`SLOW_RECHECK` of the seed patch; without
them this is the pre-patch reader (G0, :mod:`fuzzrmap.kernel.generations`).

Every function keeps the kernel's name, the kernel's order of steps and its
control flow: ``goto retry`` is a loop that keeps the locals the kernel keeps.
Each access to shared state is preceded by a yield point whose label is the
step id of the spec (``L4``, ``S6``, ``D2``...) and the kernel expression.

Generation G2 (the 2025 rework) is the hunk :data:`LOCKED_WALK`: walkers
hold the folio lock, ``folio_lock_anon_vma_read()`` checks it (I10b) and has
no retry, ``folio_referenced()`` trylocks anon folios too.  A KSM folio's
``mapping`` is a stable node (:mod:`fuzzrmap.kernel.ksm`): readers see a
non-anon mapping and ``rmap_walk()`` dispatches to ``rmap_walk_ksm()``.

Simplifications: the anon_vma interval tree is a list of chains, walked in
the tree's order (first pgoff) one node per step
(:func:`anon_vma_interval_tree_next`); ``anon_vma_chain_alloc`` never fails; large folios
and ``mm_take_all_locks`` are out of scope; ``rmap_walk_control`` carries only
the fields the modelled walkers use; only unlocked walks (``rmap_walk()``) are
modelled, not ``rmap_walk_locked()``.
"""

from __future__ import annotations

from typing import Awaitable, Callable, List, Optional

import attrs

from fuzzrmap.check import invariants as check
from fuzzrmap.hunks import hunk
from fuzzrmap.kernel.memory import (VMA, Folio, folio_mapcount, folio_mapped, mappers, ptep_test_and_clear_young,
                                     vma_address)
from fuzzrmap.kernel.rcu import rcu_read_lock, rcu_read_unlock
from fuzzrmap.kernel.refcount import Atomic
from fuzzrmap.kernel.rwsem import RWSem
from fuzzrmap.kernel.slab import SLAB_FREELIST, SLAB_SLOTS, SlabObject
from fuzzrmap.kernel.task import current, sleeping
from fuzzrmap.sched.api import TRACKED, adds, point, reads, touch, writes


#: The seed patch ("mm/rmap: support move to different root anon_vma in
#: folio_move_anon_rmap()", v6.8): its two hunks in folio_lock_anon_vma_read().
FAST_RECHECK = hunk("rmap.fast_recheck",
                    "L5: after down_read_trylock() of the root, re-check folio->mapping, else goto retry")
SLOW_RECHECK = hunk("rmap.slow_recheck",
                    "S6: after anon_vma_lock_read(), re-check folio->mapping, else unlock, put and goto retry")
#: A proposed fix, in no kernel: the fast-path recheck's ``goto retry`` leaves
#: ``anon_vma`` set, so a retry that finds the folio unmapped (or its mapping
#: no longer anon) returns it through ``out:`` without its lock; the slow path
#: sets ``anon_vma = NULL`` before its retry (scenario uffd-move-vs-referenced-unmap-dst).
RETRY_RESETS = hunk("rmap.retry_resets_anon_vma",
                    "L5: set anon_vma = NULL before the fast path's goto retry, as S6 does (proposed)")

#: The 2025 rework, "mm: always call rmap_walk() on locked folios" (generation
#: G2): every rmap walker of an anon folio holds the folio lock.
#: ``folio_lock_anon_vma_read()`` warns when called on an unlocked folio
#: (``VM_WARN_ON_FOLIO(!folio_test_locked(folio))``, the checker's I10b) and
#: has no ``retry:`` label; ``folio_referenced()`` trylocks every folio it was
#: not given locked (before: only file and KSM folios).
LOCKED_WALK = hunk("rmap.locked_walk",
                   "G2: folio_lock_anon_vma_read() requires the folio lock, no retry; "
                   "folio_referenced() trylocks anon folios too")


class AnonVma(SlabObject):
    """``struct anon_vma``.  The constructor is ``anon_vma_ctor()``: once per slot."""

    def __init__(self, slot: int) -> None:
        self.name = f"anon_vma#{slot}"
        self.rwsem = RWSem(f"{self.name}.rwsem")
        self.refcount = Atomic(f"{self.name}.refcount", 0)
        self.rb_root: List["AnonVmaChain"] = []
        self.root: "AnonVma" = self
        self.parent: "AnonVma" = self
        self.num_children = 0
        self.num_active_vmas = 0
        self.fp_root = reads(f"{self.name}.root")
        self.fp_refcount = writes(f"{self.name}.refcount")
        #: a reference taken or dropped (an add while others hold it up, :mod:`fuzzrmap.kernel.refcount`)
        self.fp_refcount_get_put = adds(f"{self.name}.refcount")
        self.fp_tree = writes(f"{self.name}.rb_root")
        self.fp_tree_read = reads(f"{self.name}.rb_root")

    def __repr__(self) -> str:
        return self.name if self.gen == 1 else f"{self.name}/gen{self.gen}"


@attrs.define(eq=False)
class AnonVmaChain:
    vma: VMA
    anon_vma: AnonVma


@attrs.define(eq=False)
class RmapWalkControl:
    """``struct rmap_walk_control``: the fields our walkers use."""

    rmap_one: Callable[[Folio, VMA, int, object], Awaitable[bool]]
    arg: object = None
    anon_lock: Optional[Callable[[Folio, "RmapWalkControl"], Awaitable[Optional[AnonVma]]]] = None
    try_lock: bool = False
    contended: bool = False


# -- allocation, reference counting, freeing ----------------------------------

async def anon_vma_alloc(func: str) -> AnonVma:
    """``anon_vma_alloc()`` (mm/rmap.c, v6.8..v6.18): the slab may hand out a slot
    that a stale reader is still looking at, and the plain stores that initialise
    it are separate steps, in the kernel's order.  ``rb_root`` is not reset: the
    slab constructor ``anon_vma_ctor()`` set it once per object, and a freed
    anon_vma's tree is empty."""
    k = current().kernel
    await sleeping(point(func, "anon_vma = kmem_cache_alloc(anon_vma_cachep, GFP_KERNEL)",
                               writes(SLAB_FREELIST, SLAB_SLOTS)))
    anon_vma = k.anon_vma_cachep.kmem_cache_alloc()
    await point(func, f"atomic_set(&{anon_vma!r}->refcount, 1)", anon_vma.fp_refcount)
    anon_vma.refcount.atomic_set(1)
    await point(func, f"{anon_vma!r}->num_children = 0", writes(f"{anon_vma.name}.num_children"))
    anon_vma.num_children = 0
    await point(func, f"{anon_vma!r}->num_active_vmas = 0", writes(f"{anon_vma.name}.num_active_vmas"))
    anon_vma.num_active_vmas = 0
    await point(func, f"{anon_vma!r}->parent = {anon_vma!r}", writes(f"{anon_vma.name}.parent"))
    anon_vma.parent = anon_vma
    # Initialise the anon_vma root to point to itself. If called from fork,
    # the root will be reset to the parents anon_vma.
    await point(func, f"{anon_vma!r}->root = {anon_vma!r}", writes(f"{anon_vma.name}.root"))
    anon_vma.root = anon_vma
    return anon_vma


def get_anon_vma(anon_vma: AnonVma) -> None:
    check.anon_vma_access(anon_vma, "get_anon_vma")
    anon_vma.refcount.atomic_inc()


async def put_anon_vma(anon_vma: AnonVma, func: str, label: str) -> None:
    """``put_anon_vma()`` (P1), then ``__put_anon_vma()`` on the last reference."""
    await point(func, lambda: f"{label} put_anon_vma({anon_vma!r}): atomic_dec_and_test", anon_vma.fp_refcount_get_put)
    check.anon_vma_access(anon_vma, "put_anon_vma")
    if anon_vma.refcount.atomic_dec_and_test():
        await __put_anon_vma(anon_vma)


async def __put_anon_vma(anon_vma: AnonVma) -> None:
    fn = "__put_anon_vma"
    await point(fn, "P2a root = anon_vma->root", anon_vma.fp_root)
    root = anon_vma.root
    await anon_vma_free(anon_vma)
    if root is not anon_vma:
        await point(fn, f"P2c atomic_dec_and_test({root!r}->refcount)", root.fp_refcount_get_put)
        check.anon_vma_access(root, "__put_anon_vma(root)")
        if root.refcount.atomic_dec_and_test():
            await anon_vma_free(root)


async def anon_vma_free(anon_vma: AnonVma) -> None:
    """The free "dance": synchronise with a reader that already owns the root rwsem."""
    fn = "anon_vma_free"
    await point(fn, lambda: f"D2 rwsem_is_locked({anon_vma!r}->root->rwsem)", anon_vma.fp_root)
    check.anon_vma_access(anon_vma, "anon_vma_free")
    if _root(anon_vma).rwsem.is_locked():
        await anon_vma_lock_write(anon_vma, fn, "D3 anon_vma_lock_write")
        await anon_vma_unlock_write(anon_vma, fn, "D4 anon_vma_unlock_write")
    k = current().kernel
    await point(fn, lambda: f"D5 kmem_cache_free(anon_vma_cachep, {anon_vma!r})",
                k.anon_vma_cachep.fp_free(anon_vma))
    check.anon_vma_freed(anon_vma, k.rcu.tasks)
    k.anon_vma_cachep.kmem_cache_free(anon_vma)


# -- the lock wrappers (include/linux/rmap.h); root is read at call time -----

def _root(anon_vma: AnonVma) -> AnonVma:
    """``anon_vma->root``, read as part of the caller's step."""
    touch(f"{anon_vma.name}.root", False)
    return anon_vma.root


async def anon_vma_lock_write(anon_vma: AnonVma, func: str, label: str) -> None:
    check.anon_vma_access(anon_vma, label)
    root = _root(anon_vma)
    await root.rwsem.down_write(func, f"{label}({anon_vma!r}): down_write({root!r}->rwsem)")


def anon_vma_trylock_write(anon_vma: AnonVma) -> bool:
    check.anon_vma_access(anon_vma, "anon_vma_trylock_write")
    return _root(anon_vma).rwsem.down_write_trylock()


async def anon_vma_unlock_write(anon_vma: AnonVma, func: str, label: str) -> None:
    # the root is read when the step runs: so is the label
    await point(func, lambda: f"{label}({anon_vma!r}): up_write({anon_vma.root!r}->rwsem)", anon_vma.fp_root)
    check.anon_vma_access(anon_vma, label)
    _root(anon_vma).rwsem.up_write()


async def anon_vma_lock_read(anon_vma: AnonVma, func: str, label: str) -> None:
    check.anon_vma_access(anon_vma, label)
    root = _root(anon_vma)
    await root.rwsem.down_read(func, f"{label}({anon_vma!r}): down_read({root!r}->rwsem)")


async def anon_vma_unlock_read(anon_vma: AnonVma, func: str, label: str) -> None:
    # the root is read when the step runs: so is the label
    await point(func, lambda: f"{label}({anon_vma!r}): up_read({anon_vma.root!r}->rwsem)", anon_vma.fp_root)
    check.anon_vma_access(anon_vma, label)
    t = current()
    t.anon_vma_locked[:] = [(a, s) for a, s in t.anon_vma_locked if a is not anon_vma]
    _root(anon_vma).rwsem.up_read()


# -- what folio->mapping holds -------------------------------------------------

def folio_anon_vma(folio: Folio) -> Optional[AnonVma]:
    """``folio->mapping`` if it is tagged ``PAGE_MAPPING_ANON`` alone, else None.

    The model's folios are anon: ``mapping`` is an :class:`AnonVma`, a KSM
    stable node (tag ``PAGE_MAPPING_KSM``, :mod:`fuzzrmap.kernel.ksm`) or None.
    """
    mapping = folio.mapping
    return mapping if isinstance(mapping, AnonVma) else None


def folio_test_ksm(folio: Folio) -> bool:
    return folio.mapping is not None and not isinstance(folio.mapping, AnonVma)


# -- getting the anon_vma of a folio ------------------------------------------

async def folio_get_anon_vma(folio: Folio) -> Optional[AnonVma]:
    """Return a referenced anon_vma that might have been relevant to ``folio`` (spec 2.2)."""
    fn = "folio_get_anon_vma"
    anon_vma = None
    await point(fn, "G1 rcu_read_lock(); READ_ONCE(folio->mapping)", reads("folio.mapping"))
    rcu_read_lock()
    anon_mapping = folio_anon_vma(folio)
    if anon_mapping is None:
        return await _out(fn, anon_vma)
    check.anon_vma_loaded(anon_mapping)
    await point(fn, "G2 folio_mapped(folio)", reads("folio.mapcount"))
    if not folio_mapped(folio):
        return await _out(fn, anon_vma)

    anon_vma = anon_mapping
    await point(fn, lambda: f"G3 atomic_inc_not_zero({anon_vma!r}->refcount)", anon_vma.fp_refcount_get_put)
    check.anon_vma_access(anon_vma, "G3 atomic_inc_not_zero", idiom=True)
    if not anon_vma.refcount.atomic_inc_not_zero():
        return await _out(fn, None)
    check.anon_vma_loaded(anon_vma)

    # If this folio is still mapped, then its anon_vma cannot have been freed.
    await point(fn, "G4 folio_mapped(folio)", reads("folio.mapcount"))
    if not folio_mapped(folio):
        rcu_read_unlock()
        await put_anon_vma(anon_vma, fn, "G4")
        return None
    check.anon_vma_loaded(anon_vma)
    return await _out(fn, anon_vma)


async def _out(fn: str, anon_vma: Optional[AnonVma]) -> Optional[AnonVma]:
    """The ``out:`` label shared by the two lookups: leave RCU, return."""
    await point(fn, "LX out: rcu_read_unlock()", TRACKED)
    rcu_read_unlock()
    return anon_vma


async def folio_lock_anon_vma_read(folio: Folio, rwc: Optional[RmapWalkControl]) -> Optional[AnonVma]:
    """Lock the anon_vma of an unlocked folio for read (spec 2.4, steps L0-S8).

    Returns the anon_vma with its root rwsem read-held, or None.  The two
    ``folio->mapping`` rechecks (L5, S6) are the seed patch.
    """
    fn = "folio_lock_anon_vma_read"
    held_at_entry = len([1 for _, m in current().held if m in ("read", "write")])
    anon_vma: Optional[AnonVma] = None
    locked_walk = LOCKED_WALK.on
    if locked_walk:
        # G2: VM_WARN_ON_FOLIO(!folio_test_locked(folio), folio)
        check.walker_holds_folio_lock(folio, fn)

    while True:  # retry: (G0/G1 only; G2 has no retry label)
        await point(fn, "L0 rcu_read_lock()" if locked_walk else "L0 retry: rcu_read_lock()", TRACKED)
        rcu_read_lock()
        await point(fn, "L1 anon_mapping = READ_ONCE(folio->mapping)", reads("folio.mapping"))
        anon_mapping = folio_anon_vma(folio)
        if anon_mapping is None:
            return await _returns(fn, folio, anon_vma, held_at_entry, out=True)
        check.anon_vma_loaded(anon_mapping)
        await point(fn, "L2 folio_mapped(folio)", reads("folio.mapcount"))
        if not folio_mapped(folio):
            return await _returns(fn, folio, anon_vma, held_at_entry, out=True)

        anon_vma = anon_mapping
        await point(fn, lambda: f"L3 root_anon_vma = READ_ONCE({anon_vma!r}->root)", anon_vma.fp_root)
        check.anon_vma_access(anon_vma, "L3 READ_ONCE(anon_vma->root)", idiom=True)
        root_anon_vma = anon_vma.root
        await point(fn, lambda: f"L4 down_read_trylock({root_anon_vma!r}->rwsem)", root_anon_vma.rwsem._fp_read)
        check.anon_vma_access(root_anon_vma, "L4 down_read_trylock", idiom=True)
        if root_anon_vma.rwsem.down_read_trylock():
            if FAST_RECHECK.on:
                # folio_move_anon_rmap() might have changed the anon_vma as we
                # might not hold the folio lock here.
                await point(fn, "L5 READ_ONCE(folio->mapping) != anon_mapping", reads("folio.mapping"))
                if folio.mapping is not anon_mapping:
                    await point(fn, lambda: f"L5 up_read({root_anon_vma!r}->rwsem); rcu_read_unlock(); goto retry",
                                root_anon_vma.rwsem._fp_read)
                    check.anon_vma_access(root_anon_vma, "L5 up_read", idiom=True)
                    root_anon_vma.rwsem.up_read()
                    rcu_read_unlock()
                    if RETRY_RESETS.on:
                        anon_vma = None
                    continue
            # If the folio is still mapped, then this anon_vma is still its
            # anon_vma, and holding the mutex ensures that it will not go away.
            await point(fn, "L6 folio_mapped(folio)", reads("folio.mapcount"))
            if not folio_mapped(folio):
                await point(fn, lambda: f"L6 up_read({root_anon_vma!r}->rwsem)", root_anon_vma.rwsem._fp_read)
                check.anon_vma_access(root_anon_vma, "L6 up_read", idiom=True)
                root_anon_vma.rwsem.up_read()
                anon_vma = None
            else:
                check.anon_vma_loaded(anon_vma)
            return await _returns(fn, folio, anon_vma, held_at_entry, out=True)

        if rwc is not None and rwc.try_lock:
            await point(fn, "S1 trylock failed, rwc->try_lock: rwc->contended = true", TRACKED)
            anon_vma = None
            rwc.contended = True
            return await _returns(fn, folio, anon_vma, held_at_entry, out=True)

        # trylock failed, we got to sleep
        await point(fn, lambda: f"S2 atomic_inc_not_zero({anon_vma!r}->refcount)", anon_vma.fp_refcount_get_put)
        check.anon_vma_access(anon_vma, "S2 atomic_inc_not_zero", idiom=True)
        if not anon_vma.refcount.atomic_inc_not_zero():
            anon_vma = None
            return await _returns(fn, folio, anon_vma, held_at_entry, out=True)
        check.anon_vma_loaded(anon_vma)

        await point(fn, "S3 folio_mapped(folio)", reads("folio.mapcount"))
        if not folio_mapped(folio):
            rcu_read_unlock()
            await put_anon_vma(anon_vma, fn, "S3 rcu_read_unlock();")
            return await _returns(fn, folio, None, held_at_entry, out=False)
        check.anon_vma_loaded(anon_vma)

        # we pinned the anon_vma, its safe to sleep
        await point(fn, "S4 rcu_read_unlock()", TRACKED)
        rcu_read_unlock()
        await anon_vma_lock_read(anon_vma, fn, "S5 anon_vma_lock_read")

        if SLOW_RECHECK.on:
            # folio_move_anon_rmap() might have changed the anon_vma as we
            # might not hold the folio lock here.
            await point(fn, "S6 READ_ONCE(folio->mapping) != anon_mapping", reads("folio.mapping"))
            if folio.mapping is not anon_mapping:
                await anon_vma_unlock_read(anon_vma, fn, "S6 anon_vma_unlock_read")
                await put_anon_vma(anon_vma, fn, "S6")
                anon_vma = None
                continue

        await point(fn, lambda: f"S7 atomic_dec_and_test({anon_vma!r}->refcount)", anon_vma.fp_refcount_get_put)
        check.anon_vma_access(anon_vma, "S7 atomic_dec_and_test")
        if anon_vma.refcount.atomic_dec_and_test():
            # Oops, we held the last refcount, release the lock and bail --
            # can't simply use put_anon_vma() because we'll deadlock on the
            # anon_vma_lock_write() recursion.
            await anon_vma_unlock_read(anon_vma, fn, "S7 anon_vma_unlock_read")
            await __put_anon_vma(anon_vma)
            anon_vma = None
        return await _returns(fn, folio, anon_vma, held_at_entry, out=False)


async def _returns(fn: str, folio: Folio, anon_vma: Optional[AnonVma], held_at_entry: int, out: bool):
    """Leave through ``out:`` (rcu_read_unlock) or directly; check the I1 contract."""
    if out:
        await _out(fn, None)
    check.lock_anon_vma_read_returned(folio, anon_vma, held_at_entry)
    return anon_vma


# -- walking -------------------------------------------------------------------

async def rmap_walk_anon_lock(folio: Folio, rwc: RmapWalkControl) -> Optional[AnonVma]:
    """Only the ``rwc->anon_lock`` branch: every modelled walker sets it."""
    return await rwc.anon_lock(folio, rwc)


async def rmap_walk_anon(folio: Folio, rwc: RmapWalkControl) -> None:
    """Visit every VMA in the folio's anon_vma tree that covers its index (W1-W4)."""
    fn = "rmap_walk_anon"
    t = current()
    mapped_at_start = mappers(folio, t.kernel.vmas())
    anon_vma = await rmap_walk_anon_lock(folio, rwc)  # W1
    if anon_vma is None:
        return
    sem = _root(anon_vma).rwsem

    await point(fn, "W2 pgoff_start = folio_pgoff(folio)", reads("folio.index"))
    check.walk_hold_stable(folio, anon_vma, sem, "W2 folio_pgoff")
    pgoff_start = folio.index

    # anon_vma_interval_tree_foreach(): one node at a time, each looked up in the
    # tree as it is then (cond_resched() between them).
    visited: List[VMA] = []
    avc = None
    stopped = False  # rmap_one() ended the walk: it has seen what it needs
    while True:
        next_node = point(fn, f"W3 anon_vma_interval_tree_foreach({anon_vma!r}->rb_root, {pgoff_start}): next node",
                          anon_vma.fp_tree_read)
        # after each rmap_one(): cond_resched(), a voluntary preemption point
        await (next_node if avc is None else sleeping(next_node))
        check.walk_hold_stable(folio, anon_vma, sem, "W3 interval tree walk")
        avc = anon_vma_interval_tree_next(anon_vma, pgoff_start, avc)
        if avc is None:
            break
        vma = avc.vma
        address = vma_address(vma, pgoff_start)
        visited.append(vma)
        if not await rwc.rmap_one(folio, vma, address, rwc.arg):
            stopped = True
            break
    await anon_vma_unlock_read(anon_vma, fn, "W4 anon_vma_unlock_read")
    if not stopped:
        check.walk_complete(folio, mapped_at_start, visited, locked=folio.lock.owner is t)


def _in_tree_order(chains: List[AnonVmaChain]) -> List[AnonVmaChain]:
    """The interval tree's in-order sequence: by first pgoff (``avc_start_pgoff()``);
    an insert goes right of an equal start, so equal starts stay in insertion order."""
    return sorted(chains, key=lambda avc: avc.vma.vm_pgoff)


def anon_vma_interval_tree_next(anon_vma: AnonVma, pgoff: int,
                                after: Optional[AnonVmaChain]) -> Optional[AnonVmaChain]:
    """The chain after ``after`` (the first when None) in ``anon_vma``'s tree whose VMA covers ``pgoff``."""
    tree = _in_tree_order(anon_vma.rb_root)
    if after is None:
        start = 0
    elif after in tree:
        start = tree.index(after) + 1
    else:  # removed meanwhile (only a walk without the lock sees that): its in-order successor
        start = next((i for i, avc in enumerate(tree) if avc.vma.vm_pgoff > after.vma.vm_pgoff), len(tree))
    return next((avc for avc in tree[start:] if vma_address(avc.vma, pgoff) is not None), None)


async def rmap_walk(folio: Folio, rwc: RmapWalkControl) -> None:
    """``rmap_walk()``: KSM or anon, decided by its own read of ``folio->mapping``."""
    await point("rmap_walk", "folio_test_ksm(folio)", reads("folio.mapping"))
    if folio_test_ksm(folio):
        from fuzzrmap.kernel.ksm import rmap_walk_ksm
        await rmap_walk_ksm(folio, rwc)
    else:
        await rmap_walk_anon(folio, rwc)


async def page_vma_mapped_walk(folio: Folio, vma: VMA, address: int, func: str) -> bool:
    """Take the PTL and check whether the PTE at ``address`` maps ``folio``.

    Returns with the PTL held when it does (the caller then calls
    :func:`page_vma_mapped_walk_done`), without it when it does not.
    """
    await vma.ptl.lock(func, f"page_vma_mapped_walk: spin_lock({vma.ptl.name})")
    await point(func, f"page_vma_mapped_walk: pte at {vma.name}:{address:#x} maps folio?",
                reads(vma.pt_resource))
    if vma.ptes.get(address) is folio:
        return True
    vma.ptl.unlock()
    return False


def page_vma_mapped_walk_done(vma: VMA) -> None:
    vma.ptl.unlock()


# -- folio_referenced() (reclaim's active-list aging) ----------------------------

@attrs.define
class FolioReferencedArg:
    mapcount: int
    referenced: int = 0


async def folio_referenced_one(folio: Folio, vma: VMA, address: int, pra: FolioReferencedArg) -> bool:
    fn = "folio_referenced_one"
    referenced = 0
    if await page_vma_mapped_walk(folio, vma, address, fn):
        await point(fn, f"ptep_clear_flush_young_notify({vma.name}:{address:#x})", writes(vma.young_resource))
        if ptep_test_and_clear_young(vma, address):
            referenced += 1
        pra.mapcount -= 1
        page_vma_mapped_walk_done(vma)
    if referenced:
        pra.referenced += 1
    if not pra.mapcount:
        return False  # To break the loop
    return True


async def folio_referenced(folio: Folio, is_locked: bool) -> int:
    """Test and clear the referenced bits of ``folio``'s mappings; -1 on rmap contention.

    Unless the caller holds the folio lock (``is_locked``), a KSM folio is
    trylocked (busy: return 1, "referenced"); an anon folio is walked without
    the lock in G0/G1 and trylocked too in G2 (:data:`LOCKED_WALK`).
    """
    fn = "folio_referenced"
    await point(fn, "pra.mapcount = folio_mapcount(folio)", reads("folio.mapcount"))
    pra = FolioReferencedArg(mapcount=folio_mapcount(folio))
    rwc = RmapWalkControl(rmap_one=folio_referenced_one, arg=pra,
                          anon_lock=folio_lock_anon_vma_read, try_lock=True)
    if not pra.mapcount:
        return 0
    await point(fn, "folio_raw_mapping(folio); folio_test_ksm(folio)", reads("folio.mapping"))
    if folio.mapping is None:
        return 0
    we_locked = False
    if not is_locked and (LOCKED_WALK.on or folio_test_ksm(folio)):
        await point(fn, "we_locked = folio_trylock(folio)", folio.lock._fp)
        we_locked = folio.lock.trylock()
        if not we_locked:
            return 1
    await rmap_walk(folio, rwc)
    if we_locked:
        await point(fn, "folio_unlock(folio)", folio.lock._fp)
        folio.lock.unlock()
    return -1 if rwc.contended else pra.referenced


# -- moving a folio to another anon_vma ------------------------------------------

async def folio_move_anon_rmap(folio: Folio, vma: VMA) -> None:
    """Point an exclusive folio at ``vma``'s anon_vma (one ``WRITE_ONCE``)."""
    fn = "folio_move_anon_rmap"
    anon_vma = vma.anon_vma
    await point(fn, f"WRITE_ONCE(folio->mapping, {anon_vma!r})", writes("folio.mapping"))
    check.move_anon_rmap_allowed(folio, anon_vma)
    folio.mapping = anon_vma


# -- unlinking and creating anon_vmas --------------------------------------------

async def lock_anon_vma_root(root: Optional[AnonVma], anon_vma: AnonVma, func: str) -> AnonVma:
    await point(func, f"lock_anon_vma_root: new_root = {anon_vma!r}->root", anon_vma.fp_root)
    new_root = anon_vma.root
    if new_root is not root:
        if root is not None:
            await point(func, f"lock_anon_vma_root: up_write({root!r}->rwsem)", root.rwsem._fp)
            root.rwsem.up_write()
        root = new_root
        await root.rwsem.down_write(func, f"lock_anon_vma_root: down_write({root!r}->rwsem)")
    return root


async def unlock_anon_vma_root(root: Optional[AnonVma], func: str) -> None:
    if root is not None:
        await point(func, f"unlock_anon_vma_root: up_write({root!r}->rwsem)", root.rwsem._fp)
        root.rwsem.up_write()


async def unlink_anon_vmas(vma: VMA) -> None:
    """Detach ``vma`` from its anon_vmas and drop the ones left empty (spec 2.9, UL1-UL4)."""
    fn = "unlink_anon_vmas"
    root = None
    # newest to oldest, ensuring the root anon_vma gets freed last
    for avc in list(vma.anon_vma_chain):
        anon_vma = avc.anon_vma
        root = await lock_anon_vma_root(root, anon_vma, fn)
        await point(fn, f"UL1 anon_vma_interval_tree_remove({vma.name}, {anon_vma!r})", anon_vma.fp_tree)
        check.anon_vma_access(anon_vma, "UL1 interval tree remove")
        anon_vma.rb_root.remove(avc)
        # Leave empty anon_vmas on the list - we'll need to free them outside the lock.
        if not anon_vma.rb_root:
            anon_vma.parent.num_children -= 1
            continue
        vma.anon_vma_chain.remove(avc)
    if vma.anon_vma is not None:
        await point(fn, f"UL2 {vma.anon_vma!r}->num_active_vmas--; vma->anon_vma = NULL",
                    writes(f"{vma.name}.anon_vma"))
        vma.anon_vma.num_active_vmas -= 1
        vma.anon_vma = None
    await unlock_anon_vma_root(root, fn)

    # Only empty, unlinked anon_vmas are left on the list: destroy them.
    for avc in list(vma.anon_vma_chain):
        await put_anon_vma(avc.anon_vma, fn, "UL4")
        vma.anon_vma_chain.remove(avc)


def anon_vma_chain_link(vma: VMA, anon_vma: AnonVma) -> None:
    avc = AnonVmaChain(vma, anon_vma)
    vma.anon_vma_chain.insert(0, avc)
    anon_vma.rb_root.append(avc)


async def anon_vma_clone(dst: VMA, src: VMA) -> None:
    fn = "anon_vma_clone"
    root = None
    for pavc in reversed(src.anon_vma_chain):
        anon_vma = pavc.anon_vma
        root = await lock_anon_vma_root(root, anon_vma, fn)
        await point(fn, f"FK2 anon_vma_chain_link({dst.name}, {anon_vma!r})", anon_vma.fp_tree)
        check.anon_vma_access(anon_vma, "FK2 anon_vma_chain_link")
        anon_vma_chain_link(dst, anon_vma)
        # Reuse existing anon_vma if it has no vma and only one anon_vma child.
        if (dst.anon_vma is None and src.anon_vma is not None
                and anon_vma.num_children < 2 and anon_vma.num_active_vmas == 0):
            dst.anon_vma = anon_vma
    if dst.anon_vma is not None:
        dst.anon_vma.num_active_vmas += 1
    await unlock_anon_vma_root(root, fn)


async def anon_vma_fork(vma: VMA, pvma: VMA) -> None:
    """Give a child VMA its own anon_vma under the parent's root (spec 2.10, FK1-FK7)."""
    fn = "anon_vma_fork"
    await point(fn, "FK1 pvma->anon_vma?", reads(f"{pvma.name}.anon_vma"))
    if pvma.anon_vma is None:
        return
    vma.anon_vma = None
    await anon_vma_clone(vma, pvma)
    if vma.anon_vma is not None:
        return

    # Then add our own anon_vma (anon_vma_fork(), mm/rmap.c v6.8..v6.18).
    anon_vma = await anon_vma_alloc(fn)  # FK4
    await point(fn, f"FK4 {anon_vma!r}->num_active_vmas++", writes(f"{anon_vma.name}.num_active_vmas"))
    anon_vma.num_active_vmas += 1
    await sleeping(point(fn, "FK4 avc = anon_vma_chain_alloc(GFP_KERNEL)", TRACKED))
    # The root anon_vma's rwsem is the lock actually used when we
    # lock any of the anon_vmas in this anon_vma tree.
    await point(fn, f"FK5 {anon_vma!r}->root = {pvma.anon_vma.root!r}",
                writes(f"{anon_vma.name}.root") + reads(f"{pvma.name}.anon_vma", f"{pvma.anon_vma.name}.root"))
    anon_vma.root = pvma.anon_vma.root
    await point(fn, f"FK5 {anon_vma!r}->parent = {pvma.anon_vma!r}", writes(f"{anon_vma.name}.parent"))
    anon_vma.parent = pvma.anon_vma
    # With refcounts, an anon_vma can stay around longer than the process it
    # belongs to. The root anon_vma needs to be pinned until this anon_vma is
    # freed, because the lock lives in the root.
    await point(fn, f"FK5 get_anon_vma({anon_vma.root!r})", anon_vma.root.fp_refcount)
    get_anon_vma(anon_vma.root)
    await point(fn, f"FK6 vma->anon_vma = {anon_vma!r}", writes(f"{vma.name}.anon_vma"))
    vma.anon_vma = anon_vma
    await anon_vma_lock_write(anon_vma, fn, "FK7 anon_vma_lock_write")
    await point(fn, f"FK7 anon_vma_chain_link({vma.name}, {anon_vma!r}); parent->num_children++", anon_vma.fp_tree)
    anon_vma_chain_link(vma, anon_vma)
    anon_vma.parent.num_children += 1
    await anon_vma_unlock_write(anon_vma, fn, "FK7 anon_vma_unlock_write")
