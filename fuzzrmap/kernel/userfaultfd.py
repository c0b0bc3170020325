"""UFFDIO_MOVE of a present PTE (mm/userfaultfd.c): the mover.

Follows ``move_pages()`` -> ``move_pages_pte()`` -> ``move_present_pte()`` of
the v6.8..v6.13 era (spec section 2.7, steps M1-M8): the source folio is
pinned and locked, then the *source* anon_vma is referenced with
``folio_get_anon_vma()`` and its root write-locked - never the destination's -
and only then is the PTE moved and ``folio->mapping`` pointed at the
destination anon_vma, with ``folio->index`` written in a separate, later store.

While the PTEs are mapped (``pte_offset_map_nolock()``) the mover is inside an
RCU read-side section and may not sleep: on contention for the folio lock or
the anon_vma lock it unmaps, sleeps, and goes back to ``retry``, keeping
``src_folio`` and ``src_anon_vma`` as the kernel does.

Simplifications: one page is moved; ``mmap_read_lock()`` stands for the
per-VMA locks of v6.10+ (both exclude munmap of the two VMAs, which is all the
race needs); no THP, zero page, swap entries, mmu notifiers or TLB flushes;
``validate_move_areas()`` is assumed to pass (the scenarios set up compatible
VMAs).
"""

from __future__ import annotations

from typing import Optional

from fuzzrmap.check import invariants as check
from fuzzrmap.kernel.locking import ExclusiveLock
from fuzzrmap.kernel.memory import (
    MM, VMA, Folio, PAGE_SIZE, folio_get, folio_lock, folio_put, folio_trylock, folio_unlock,
    linear_page_index, ptep_get_and_clear, set_pte_at,
)
from fuzzrmap.kernel.rcu import rcu_read_lock, rcu_read_unlock
from fuzzrmap.kernel.rmap import (
    AnonVma, anon_vma_lock_write, anon_vma_trylock_write, anon_vma_unlock_write,
    folio_get_anon_vma, folio_move_anon_rmap, put_anon_vma,
)
from fuzzrmap.sched.api import TRACKED, point, reads, writes

EAGAIN = -11
EBUSY = -16
EEXIST = -17
ENOENT = -2


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
        await point(fn, f"M7c ptep_clear_flush({src_vma.name}:{src_addr:#x})", writes(src_vma.pt_resource))
        ptep_get_and_clear(src_vma, src_addr)
        await folio_move_anon_rmap(src_folio, dst_vma)  # M7e
        await point(fn, "M7f src_folio->index = linear_page_index(dst_vma, dst_addr)", writes("folio.index"))
        check.folio_field_write_allowed(src_folio, "folio->index")
        src_folio.index = linear_page_index(dst_vma, dst_addr)
        await point(fn, f"M7g set_pte_at({dst_vma.name}:{dst_addr:#x})", writes(dst_vma.pt_resource))
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
            await src_vma.ptl.lock(fn, f"M4 spin_lock({src_vma.ptl.name})")
            await point(fn, "M4 pte_same(orig_src_pte, ptep_get(src_pte)); PageAnonExclusive; folio_get",
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
            folio_get(folio)
            src_folio = folio
            src_folio_pte = orig_src_pte
            src_vma.ptl.unlock()

            await point(fn, "M4 folio_trylock(src_folio)", writes(src_folio.lock.name))
            if not folio_trylock(src_folio):
                pte_unmap_both()
                # now we can block and wait
                await folio_lock(src_folio, fn, "M4 folio_lock(src_folio)")
                continue

        if src_anon_vma is None:
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


async def move_pages(mm: MM, dst_vma: VMA, src_vma: VMA, dst_start: int, src_start: int, length: int) -> int:
    """UFFDIO_MOVE: move ``length`` bytes of anonymous memory, page by page."""
    fn = "move_pages"
    await mm.mmap_lock.down_read(fn, "U2 mmap_read_lock(mm)")
    await point(fn, f"U2 find_vma_and_prepare_anon({dst_vma.name}): anon_vma_prepare",
                reads(f"{dst_vma.name}.anon_vma", mm.vmas_resource))
    if dst_vma not in mm.vmas or src_vma not in mm.vmas:
        # find_vma() finds no VMA at dst_start or src_start any more: -ENOENT
        await point(fn, "mmap_read_unlock(mm): -ENOENT", mm.mmap_lock._fp)
        mm.mmap_lock.up_read()
        return ENOENT
    assert dst_vma.anon_vma is not None, "scenarios give the destination VMA an anon_vma"
    moved = 0
    err = 0
    src_addr, dst_addr = src_start, dst_start
    while src_addr < src_start + length:
        err = await move_pages_pte(dst_vma, src_vma, dst_addr, src_addr)
        if not err:
            dst_addr += PAGE_SIZE
            src_addr += PAGE_SIZE
            moved += PAGE_SIZE
        elif err != EAGAIN:
            break
    await point(fn, "mmap_read_unlock(mm)", mm.mmap_lock._fp)
    mm.mmap_lock.up_read()
    return moved if moved else err
