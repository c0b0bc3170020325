"""UFFDIO_MOVE of a present PTE (mm/userfaultfd.c, fs/userfaultfd.c): the mover.

Follows ``userfaultfd_move()`` -> ``move_pages()`` -> ``move_pages_pte()`` ->
``move_present_pte()`` (spec section 2.7, steps U1-U3, M1-M8) in the v6.14+
shape, with the v6.8 shape one hunk away (:data:`MOVE_V6_8`):

* **v6.14+** (G1's default): ``uffd_move_lock()`` read-locks the two VMAs
  (``lock_vma_under_rcu()``, falling back to ``mmap_read_lock()`` and
  ``vma_start_read_locked()``; per-VMA locks since v6.10) instead of holding
  ``mmap_lock``; ``ctx->mmap_changing`` is checked before and re-checked under
  ``ctx->map_changing_lock`` (v6.9+); the source folio is trylocked *under the
  source PTL, before* ``folio_get()`` (v6.14, "userfaultfd: do not block on
  locking a large folio with raised refcount").
* **v6.8**: ``mmap_read_lock()`` for the whole move, ``mmap_changing``
  re-checked under it, ``folio_get()`` under the PTL and ``folio_trylock()``
  after the PTL is dropped.

Either way the source folio is pinned and locked, then the *source* anon_vma
is referenced with ``folio_get_anon_vma()`` and its root write-locked - never
the destination's - and only then is the PTE moved and ``folio->mapping``
pointed at the destination anon_vma, with ``folio->index`` written in a
separate, later store.  :data:`NO_ANON_VMA_LOCK` is the 2025 change that drops
the anon_vma part (G2).

While the PTEs are mapped (``pte_offset_map_rw_nolock()``) the mover is inside
an RCU read-side section and may not sleep: on contention for the folio lock or
the anon_vma lock it unmaps, sleeps, and goes back to ``retry``, keeping
``src_folio`` and ``src_anon_vma`` as the kernel does.

Simplifications: one page is moved; no THP, zero page, swap entries, mmu
notifiers or TLB flushes; ``validate_move_areas()`` is assumed to pass (the
scenarios set up compatible VMAs); nothing in the scenarios raises
``mmap_changing`` (no non-cooperative event is modelled), so its checks only
read it.
"""

from __future__ import annotations

from typing import Optional

from fuzzrmap.check import invariants as check
from fuzzrmap.hunks import hunk
from fuzzrmap.kernel.locking import ExclusiveLock
from fuzzrmap.kernel.memory import (
    MM, VMA, Folio, PAGE_SIZE, folio_get, folio_lock, folio_put, folio_trylock, folio_unlock,
    linear_page_index, ptep_get_and_clear, set_pte_at,
)
from fuzzrmap.kernel.mmap import lock_vma_under_rcu, vma_end_read, vma_lookup
from fuzzrmap.kernel.rcu import rcu_read_lock, rcu_read_unlock
from fuzzrmap.kernel.refcount import Atomic
from fuzzrmap.kernel.rwsem import MAP_CHANGING_CLASS, RWSem
from fuzzrmap.kernel.rmap import (
    AnonVma, anon_vma_lock_write, anon_vma_trylock_write, anon_vma_unlock_write,
    folio_get_anon_vma, folio_move_anon_rmap, put_anon_vma,
)
from fuzzrmap.sched.api import TRACKED, adds, point, reads, writes

EAGAIN = -11
EBUSY = -16
EEXIST = -17
EINVAL = -22
ENOENT = -2

#: G1 spans both shapes (see fuzzrmap.kernel.generations); the model's code is the v6.14+ one.
MOVE_V6_8 = hunk("userfaultfd.move_v6_8",
                 "v6.8-v6.9 UFFDIO_MOVE: mmap_read_lock() for the whole move (no per-VMA locks, no "
                 "map_changing_lock); folio_get() under the src PTL, folio_trylock() after it")
#: G2 (2025): "mm/userfaultfd: don't lock anon_vma when performing UFFDIO_MOVE".
NO_ANON_VMA_LOCK = hunk("userfaultfd.no_anon_vma_lock",
                        "G2 (2025): UFFDIO_MOVE no longer takes the src anon_vma lock (no folio_get_anon_vma(), "
                        "no anon_vma_trylock_write()); the folio lock alone serialises it against rmap walkers")


class UserfaultfdCtx:
    """``struct userfaultfd_ctx``: the fields UFFDIO_MOVE reads."""

    def __init__(self, mm: MM) -> None:
        self.mm = mm
        #: raised by non-cooperative events (fork, mremap, munmap, MADV_DONTNEED) until user space reads them
        self.mmap_changing = Atomic(f"{mm.name}.uffd.mmap_changing", 0)
        self.map_changing_lock = RWSem(f"{mm.name}.uffd.map_changing_lock", MAP_CHANGING_CLASS)


async def double_pt_lock(ptl1: ExclusiveLock, ptl2: ExclusiveLock, func: str) -> None:
    if ptl1.name > ptl2.name:
        ptl1, ptl2 = ptl2, ptl1
    # lock in virtual address order to avoid lock inversion
    await ptl1.lock(func, f"M7a double_pt_lock: spin_lock({ptl1.name})")
    if ptl1 is not ptl2:
        await ptl2.lock(func, f"M7a double_pt_lock: spin_lock_nested({ptl2.name})")


def double_pt_unlock(ptl1: ExclusiveLock, ptl2: ExclusiveLock) -> None:
    ptl1.unlock()
    if ptl1 is not ptl2:
        ptl2.unlock()


async def move_present_pte(dst_vma: VMA, src_vma: VMA, dst_addr: int, src_addr: int,
                           orig_dst_pte: Optional[Folio], orig_src_pte: Folio,
                           src_folio: Folio) -> int:
    fn = "move_present_pte"
    err = 0
    await double_pt_lock(dst_vma.ptl, src_vma.ptl, fn)
    await point(fn, "M7b pte_same(src_pte) && pte_same(dst_pte); PageAnonExclusive",
                reads(src_vma.pt_resource, dst_vma.pt_resource))
    if src_vma.ptes.get(src_addr) is not orig_src_pte or dst_vma.ptes.get(dst_addr) is not orig_dst_pte:
        err = EAGAIN
    elif not src_folio.anon_exclusive:
        err = EBUSY
    else:
        await point(fn, f"M7c ptep_clear_flush({src_vma.name}:{src_addr:#x})", writes(src_vma.pt_resource, src_vma.young_resource))
        ptep_get_and_clear(src_vma, src_addr)
        await folio_move_anon_rmap(src_folio, dst_vma)  # M7e
        await point(fn, "M7f src_folio->index = linear_page_index(dst_vma, dst_addr)", writes("folio.index"))
        check.folio_field_write_allowed(src_folio, "folio->index")
        src_folio.index = linear_page_index(dst_vma, dst_addr)
        await point(fn, f"M7g set_pte_at({dst_vma.name}:{dst_addr:#x})", writes(dst_vma.pt_resource, dst_vma.young_resource))
        set_pte_at(dst_vma, dst_addr, src_folio)
    await point(fn, "M7h double_pt_unlock", writes(dst_vma.ptl.name, src_vma.ptl.name))
    double_pt_unlock(dst_vma.ptl, src_vma.ptl)
    return err


async def move_pages_pte(dst_vma: VMA, src_vma: VMA, dst_addr: int, src_addr: int) -> int:
    """Move the page at ``src_addr`` to ``dst_addr``; an errno or 0."""
    fn = "move_pages_pte"
    src_folio: Optional[Folio] = None
    src_folio_pte: Optional[Folio] = None
    src_anon_vma: Optional[AnonVma] = None
    ptes_mapped = False

    def pte_unmap_both() -> None:
        nonlocal ptes_mapped
        rcu_read_unlock()
        rcu_read_unlock()
        ptes_mapped = False

    while True:  # retry:
        await point(fn, "M1 retry: pte_offset_map_nolock(dst_pte), (src_pte)", TRACKED)
        rcu_read_lock()
        rcu_read_lock()
        ptes_mapped = True

        await dst_vma.ptl.lock(fn, f"M2 spin_lock({dst_vma.ptl.name})")
        await point(fn, f"M2 orig_dst_pte = ptep_get({dst_vma.name}:{dst_addr:#x}); spin_unlock",
                    reads(dst_vma.pt_resource))
        orig_dst_pte = dst_vma.ptes.get(dst_addr)
        dst_vma.ptl.unlock()
        if orig_dst_pte is not None:
            err = EEXIST
            break

        await src_vma.ptl.lock(fn, f"M2 spin_lock({src_vma.ptl.name})")
        await point(fn, f"M2 orig_src_pte = ptep_get({src_vma.name}:{src_addr:#x}); spin_unlock",
                    reads(src_vma.pt_resource))
        orig_src_pte = src_vma.ptes.get(src_addr)
        src_vma.ptl.unlock()
        if orig_src_pte is None:
            err = ENOENT
            break

        # If PTE changed after we locked the folio them start over
        if src_folio is not None and src_folio_pte is not orig_src_pte:
            err = EAGAIN
            break

        # Pin and lock both source folio and anon_vma. Since we are in RCU
        # read section, we can't block, so on contention have to unmap the
        # ptes, obtain the lock and retry.
        if src_folio is None:
            # Pin the page while holding the lock to be sure the page isn't freed under us
            await src_vma.ptl.lock(fn, f"M4 spin_lock({src_vma.ptl.name})")
            await point(fn, "M4 pte_same(orig_src_pte, ptep_get(src_pte)); PageAnonExclusive",
                        reads(src_vma.pt_resource))
            if src_vma.ptes.get(src_addr) is not orig_src_pte:
                src_vma.ptl.unlock()
                err = EAGAIN
                break
            folio = orig_src_pte
            if not folio.anon_exclusive:
                src_vma.ptl.unlock()
                err = EBUSY
                break
            if MOVE_V6_8.on:
                await point(fn, "M4 folio_get(folio); spin_unlock(src_ptl)", adds(folio._refcount.name))
                folio_get(folio)
                src_folio = folio
                src_folio_pte = orig_src_pte
                src_vma.ptl.unlock()
                await point(fn, "M4 folio_trylock(src_folio)", writes(src_folio.lock.name))
                locked = folio_trylock(src_folio)
            else:
                # v6.14+: trylock before folio_get(), still under the src PTL
                # (a large folio that is contended returns -EAGAIN instead;
                # the model has small folios only).
                await point(fn, "M4 locked = folio_trylock(folio)", writes(folio.lock.name))
                locked = folio_trylock(folio)
                await point(fn, "M4 folio_get(folio); spin_unlock(src_ptl)", adds(folio._refcount.name))
                folio_get(folio)
                src_folio = folio
                src_folio_pte = orig_src_pte
                src_vma.ptl.unlock()
            if not locked:
                pte_unmap_both()
                # now we can block and wait
                await folio_lock(src_folio, fn, "M4 folio_lock(src_folio)")
                continue

        if src_anon_vma is None and not NO_ANON_VMA_LOCK.on:
            # folio_referenced walks the anon_vma chain without the folio
            # lock. Serialize against it with the anon_vma lock, the folio
            # lock is not enough.
            src_anon_vma = await folio_get_anon_vma(src_folio)  # M6
            if src_anon_vma is None:
                # page was unmapped from under us
                err = EAGAIN
                break
            await point(fn, f"M6 anon_vma_trylock_write({src_anon_vma!r})", src_anon_vma.root.rwsem._fp)
            if not anon_vma_trylock_write(src_anon_vma):
                pte_unmap_both()
                # now we can block and wait
                await anon_vma_lock_write(src_anon_vma, fn, "M6 anon_vma_lock_write")
                continue

        err = await move_present_pte(dst_vma, src_vma, dst_addr, src_addr,
                                     orig_dst_pte, orig_src_pte, src_folio)
        break

    # out:
    if src_anon_vma is not None:
        await anon_vma_unlock_write(src_anon_vma, fn, "M8 anon_vma_unlock_write")
        await put_anon_vma(src_anon_vma, fn, "M8")
    if src_folio is not None:
        await point(fn, "M8 folio_unlock(src_folio); folio_put(src_folio)", writes(src_folio.lock.name))
        folio_unlock(src_folio)
        folio_put(src_folio)
    if ptes_mapped:
        await point(fn, "M8 pte_unmap(dst_pte); pte_unmap(src_pte)", TRACKED)
        pte_unmap_both()
    return err


async def uffd_lock_vma(mm: MM, address: int, func: str):
    """``uffd_lock_vma()`` (v6.10+): (errno, the read-locked VMA at ``address``)."""
    vma = await lock_vma_under_rcu(mm, address, func)
    if vma is not None:
        # We know we're going to need to use anon_vma, so check that early.
        await point(func, f"uffd_lock_vma: {vma.name}->anon_vma?", reads(f"{vma.name}.anon_vma"))
        if vma.anon_vma is not None:
            return 0, vma
        await vma_end_read(vma, func)
    await mm.mmap_lock.down_read(func, "uffd_lock_vma: mmap_read_lock(mm)")
    await point(func, f"uffd_lock_vma: find_vma_and_prepare_anon({address:#x}); vma_start_read_locked()",
                reads(mm.mt_resource))
    vma = vma_lookup(mm, address)
    err = ENOENT
    if vma is not None:
        assert vma.anon_vma is not None, "scenarios give the VMAs they move into an anon_vma"
        err = 0 if vma.vm_lock.down_read_trylock() else EAGAIN
    await point(func, "uffd_lock_vma: mmap_read_unlock(mm)", mm.mmap_lock._fp_read)
    mm.mmap_lock.up_read()
    return err, (vma if not err else None)


async def uffd_move_lock(mm: MM, dst_start: int, src_start: int):
    """``uffd_move_lock()`` (v6.10+): (errno, dst_vma, src_vma), both read-locked on success."""
    fn = "uffd_move_lock"
    err, dst_vma = await uffd_lock_vma(mm, dst_start, fn)
    if err:
        return err, None, None
    # Skip finding src_vma if src_start is in dst_vma.
    if dst_vma.vm_start <= src_start < dst_vma.vm_end:
        return 0, dst_vma, dst_vma
    src_vma = await lock_vma_under_rcu(mm, src_start, fn)
    if src_vma is not None:
        return 0, dst_vma, src_vma
    # Undo any locking and retry in mmap_lock critical section
    await vma_end_read(dst_vma, fn)
    await mm.mmap_lock.down_read(fn, "mmap_read_lock(mm)")
    await point(fn, "find_vmas_mm_locked(); vma_start_read_locked(dst, src)", reads(mm.mt_resource))
    dst_vma, src_vma = vma_lookup(mm, dst_start), vma_lookup(mm, src_start)
    err = ENOENT if dst_vma is None or src_vma is None else 0
    if not err:
        dst_vma.vm_lock.down_read_trylock()
        if src_vma is not dst_vma:
            src_vma.vm_lock.down_read_trylock()
    await point(fn, "mmap_read_unlock(mm)", mm.mmap_lock._fp_read)
    mm.mmap_lock.up_read()
    return err, dst_vma, src_vma


async def uffd_move_unlock(dst_vma: VMA, src_vma: VMA) -> None:
    await vma_end_read(src_vma, "uffd_move_unlock")
    if src_vma is not dst_vma:
        await vma_end_read(dst_vma, "uffd_move_unlock")


async def move_pages(ctx: UserfaultfdCtx, dst_start: int, src_start: int, length: int) -> int:
    """UFFDIO_MOVE: move ``length`` bytes of anonymous memory, page by page."""
    mm = ctx.mm
    await point("userfaultfd_move", "U1 atomic_read(&ctx->mmap_changing)", reads(ctx.mmap_changing.name))
    if ctx.mmap_changing.atomic_read():
        return EAGAIN
    fn = "move_pages"
    if MOVE_V6_8.on:
        await mm.mmap_lock.down_read(fn, "U2 mmap_read_lock(mm)")
        await point(fn, "U3 atomic_read(mmap_changing) (re-check after taking mmap_lock)",
                    reads(ctx.mmap_changing.name))
        err = EAGAIN if ctx.mmap_changing.atomic_read() else 0
        if not err:
            await point(fn, "U2 find_vma(dst), find_vma(src); anon_vma_prepare(dst)", reads(mm.mt_resource))
            dst_vma, src_vma = vma_lookup(mm, dst_start), vma_lookup(mm, src_start)
            err = ENOENT if dst_vma is None or src_vma is None else 0
    else:
        err, dst_vma, src_vma = await uffd_move_lock(mm, dst_start, src_start)
        if err:
            return err
        await ctx.map_changing_lock.down_read(fn, "U3 down_read(&ctx->map_changing_lock)")
        await point(fn, "U3 atomic_read(&ctx->mmap_changing) (re-check after taking map_changing_lock)",
                    reads(ctx.mmap_changing.name))
        err = EAGAIN if ctx.mmap_changing.atomic_read() else 0
    moved = 0
    if not err:
        assert dst_vma.anon_vma is not None, "scenarios give the destination VMA an anon_vma"
        src_addr, dst_addr = src_start, dst_start
        while src_addr < src_start + length:
            err = await move_pages_pte(dst_vma, src_vma, dst_addr, src_addr)
            if not err:
                dst_addr += PAGE_SIZE
                src_addr += PAGE_SIZE
                moved += PAGE_SIZE
            elif err != EAGAIN:
                break
    # out_unlock:
    if MOVE_V6_8.on:
        await point(fn, "mmap_read_unlock(mm)", mm.mmap_lock._fp_read)
        mm.mmap_lock.up_read()
    else:
        await point(fn, "up_read(&ctx->map_changing_lock)", ctx.map_changing_lock._fp_read)
        ctx.map_changing_lock.up_read()
        await uffd_move_unlock(dst_vma, src_vma)
    return moved if moved else err
