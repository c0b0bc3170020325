"""Idle page tracking (mm/page_idle.c): an rmap walker without the folio lock.

``page_idle_bitmap_write()`` pins a folio (``page_idle_get_folio()``:
``folio_try_get()`` of an LRU folio), moves the accessed bits of every PTE
mapping it into the folio (``page_idle_clear_pte_refs()``), marks it idle and
drops the pin.  For an anon, non-KSM folio v6.8-v6.18 take no folio lock and
walk with ``folio_lock_anon_vma_read()`` and ``try_lock == false``: the one
modelled reader that reaches the slow path (spec section 2.5; DAMON's paddr
ops do the same).  A KSM folio is trylocked.  In G2 ("mm: always call
rmap_walk() on locked folios") every folio is trylocked: :data:`TRYLOCK`.

Left out: the idle and young page flags themselves (the walk's completeness
is what the checker judges), mmu notifiers, PMD-mapped folios, the LRU test.
"""

from __future__ import annotations

from fuzzrmap.hunks import hunk
from fuzzrmap.kernel.memory import VMA, Folio, folio_mapped, ptep_test_and_clear_young
from fuzzrmap.kernel.rmap import (
    RmapWalkControl, folio_lock_anon_vma_read, folio_test_ksm, page_vma_mapped_walk, page_vma_mapped_walk_done,
    rmap_walk,
)
from fuzzrmap.sched.api import adds, point, reads, writes

TRYLOCK = hunk("page_idle.trylock", "G2: page_idle_clear_pte_refs() trylocks every folio before rmap_walk()")


async def page_idle_clear_pte_refs_one(folio: Folio, vma: VMA, addr: int, arg: object) -> bool:
    fn = "page_idle_clear_pte_refs_one"
    if await page_vma_mapped_walk(folio, vma, addr, fn):
        await point(fn, f"ptep_clear_young_notify({vma.name}:{addr:#x})", writes(vma.young_resource))
        ptep_test_and_clear_young(vma, addr)
        page_vma_mapped_walk_done(vma)
    return True


async def page_idle_clear_pte_refs(folio: Folio) -> None:
    fn = "page_idle_clear_pte_refs"
    rwc = RmapWalkControl(rmap_one=page_idle_clear_pte_refs_one, anon_lock=folio_lock_anon_vma_read)
    await point(fn, "folio_mapped(folio) && folio_raw_mapping(folio); need_lock = folio_test_ksm(folio)",
                reads("folio.mapcount", "folio.mapping"))
    if not folio_mapped(folio) or folio.mapping is None:
        return
    need_lock = TRYLOCK.on or folio_test_ksm(folio)
    if need_lock:
        await point(fn, "folio_trylock(folio)", folio.lock._fp)
        if not folio.lock.trylock():
            return
    await rmap_walk(folio, rwc)
    if need_lock:
        await point(fn, "folio_unlock(folio)", folio.lock._fp)
        folio.lock.unlock()


async def page_idle_get_folio(folio: Folio) -> bool:
    """``folio_try_get()`` of the folio at a pfn (an LRU folio is never freed in the model)."""
    await point("page_idle_get_folio", "folio_try_get(folio)", adds(folio._refcount.name))
    return folio._refcount.atomic_inc_not_zero()


async def page_idle_put_folio(folio: Folio) -> None:
    await point("page_idle_bitmap_write", "folio_set_idle(folio); folio_put(folio)", adds(folio._refcount.name))
    folio._refcount.atomic_dec_and_test()
