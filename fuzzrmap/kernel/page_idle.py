"""Idle page tracking (mm/page_idle.c): an rmap walker without the folio lock.

``page_idle_clear_pte_refs()`` moves the accessed bits of every PTE mapping a
folio into the folio before user space marks it idle.  For an anon, non-KSM
folio it takes no folio lock and walks with ``folio_lock_anon_vma_read()``
and ``try_lock == false``: the one modelled reader that reaches the slow path
(spec section 2.5; DAMON's paddr ops do the same).

Left out: the idle and young page flags themselves (the walk's completeness
is what the checker judges), mmu notifiers, PMD-mapped folios.
"""

from __future__ import annotations

from fuzzrmap.kernel.memory import VMA, Folio, folio_mapped
from fuzzrmap.kernel.rmap import (
    RmapWalkControl, folio_lock_anon_vma_read, page_vma_mapped_walk, page_vma_mapped_walk_done, rmap_walk,
)
from fuzzrmap.sched.api import point, reads, writes


async def page_idle_clear_pte_refs_one(folio: Folio, vma: VMA, addr: int, arg: object) -> bool:
    fn = "page_idle_clear_pte_refs_one"
    if await page_vma_mapped_walk(folio, vma, addr, fn):
        await point(fn, f"ptep_clear_young_notify({vma.name}:{addr:#x})", writes(vma.pt_resource))
        vma.young[addr] = False
        page_vma_mapped_walk_done(vma)
    return True


async def page_idle_clear_pte_refs(folio: Folio) -> None:
    fn = "page_idle_clear_pte_refs"
    rwc = RmapWalkControl(rmap_one=page_idle_clear_pte_refs_one, anon_lock=folio_lock_anon_vma_read)
    await point(fn, "folio_mapped(folio) && folio_raw_mapping(folio)", reads("folio.mapcount", "folio.mapping"))
    if not folio_mapped(folio) or folio.mapping is None:
        return
    # anon and not KSM: need_lock is false, walk without the folio lock
    await rmap_walk(folio, rwc)
