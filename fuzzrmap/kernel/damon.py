"""DAMON's physical-address operations (mm/damon/paddr.c, mm/damon/ops-common.c).

DAMON samples whether a physical page was accessed: ``damon_pa_mkold()``
clears the accessed bits of every PTE that maps the folio and
``damon_pa_young()`` tests them.  Both pin the folio with
``damon_get_folio()`` (``folio_try_get()`` of an LRU folio, a copy of
``page_idle_get_folio()``), then walk its rmap exactly as page_idle does: an
anon, non-KSM folio without the folio lock, through
``folio_lock_anon_vma_read()`` with ``try_lock == false`` (fast and slow
path); a KSM folio under ``folio_trylock()``.  v6.8-v6.10 have this code in
paddr.c (``__damon_pa_mkold``/``__damon_pa_young``), later kernels in
ops-common.c (``damon_folio_mkold``/``damon_folio_young``); the walk is the
same.  In G2 ("mm: always call rmap_walk() on locked folios") both trylock
every folio: :data:`TRYLOCK`.

Left out: DAMON's regions, sampling and aggregation; the idle/young page
flags; mmu notifiers; PMD mappings.  The young walk stops at the first
accessed PTE, as ``damon_folio_young_one()`` does.
"""

from __future__ import annotations

import attrs

from fuzzrmap.hunks import hunk
from fuzzrmap.kernel.memory import VMA, Folio, folio_mapped, pte_young, ptep_test_and_clear_young
from fuzzrmap.kernel.rmap import (
    RmapWalkControl, folio_lock_anon_vma_read, folio_test_ksm, page_vma_mapped_walk, page_vma_mapped_walk_done,
    rmap_walk,
)
from fuzzrmap.sched.api import adds, point, reads, writes

TRYLOCK = hunk("damon.trylock", "G2: damon_folio_mkold()/damon_folio_young() trylock every folio before rmap_walk()")

MKOLD = "mkold"
YOUNG = "young"


@attrs.define
class Accessed:
    accessed: bool = False


async def damon_folio_mkold_one(folio: Folio, vma: VMA, addr: int, arg: object) -> bool:
    fn = "damon_folio_mkold_one"
    if await page_vma_mapped_walk(folio, vma, addr, fn):
        await point(fn, f"damon_ptep_mkold: ptep_test_and_clear_young({vma.name}:{addr:#x})",
                    writes(vma.young_resource))
        ptep_test_and_clear_young(vma, addr)
        page_vma_mapped_walk_done(vma)
    return True


async def damon_folio_young_one(folio: Folio, vma: VMA, addr: int, arg: Accessed) -> bool:
    fn = "damon_folio_young_one"
    arg.accessed = False
    if await page_vma_mapped_walk(folio, vma, addr, fn):
        await point(fn, f"pte_young(ptep_get({vma.name}:{addr:#x}))", reads(vma.young_resource))
        arg.accessed = pte_young(vma, addr)
        page_vma_mapped_walk_done(vma)
    # If accessed, stop walking
    return not arg.accessed


async def damon_folio_walk(folio: Folio, op: str) -> bool:
    """``damon_folio_mkold()`` or ``damon_folio_young()``; returns ``accessed`` (young)."""
    fn = f"damon_folio_{op}"
    arg = Accessed()
    one = damon_folio_mkold_one if op == MKOLD else damon_folio_young_one
    rwc = RmapWalkControl(rmap_one=one, arg=arg, anon_lock=folio_lock_anon_vma_read)
    await point(fn, "folio_mapped(folio) && folio_raw_mapping(folio); need_lock = folio_test_ksm(folio)",
                reads("folio.mapcount", "folio.mapping"))
    if not folio_mapped(folio) or folio.mapping is None:
        return False
    need_lock = TRYLOCK.on or folio_test_ksm(folio)
    if need_lock:
        await point(fn, "folio_trylock(folio)", folio.lock._fp)
        if not folio.lock.trylock():
            return False
    await rmap_walk(folio, rwc)
    if need_lock:
        await point(fn, "folio_unlock(folio)", folio.lock._fp)
        folio.lock.unlock()
    return arg.accessed


async def damon_pa_access(folio: Folio, op: str) -> bool:
    """``damon_pa_mkold()`` / ``damon_pa_young()`` of the page of ``folio``: pin, walk, put."""
    fn = f"damon_pa_{op}"
    await point(fn, "folio = damon_get_folio(pfn): folio_try_get()", adds(folio._refcount.name))
    if not folio._refcount.atomic_inc_not_zero():
        return False
    accessed = await damon_folio_walk(folio, op)
    await point(fn, "folio_put(folio)", adds(folio._refcount.name))
    folio._refcount.atomic_dec_and_test()
    return accessed
