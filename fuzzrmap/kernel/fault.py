"""Page faults that create or re-use anon rmap (mm/memory.c, mm/rmap.c).

* :func:`do_anonymous_page` - the first fault in a VMA without an anon_vma:
  ``vmf_anon_prepare()`` -> ``__anon_vma_prepare()`` allocates a new root
  anon_vma (it may land in a slot a reader still looks at, like fork's), links
  the VMA under its write lock, and ``folio_add_new_anon_rmap()`` maps a new
  exclusive folio.  v6.8-v6.18; with per-VMA locks the fault retries under
  ``mmap_read_lock`` when the VMA has no anon_vma, which is the path modelled.
* :func:`do_wp_page` - a write fault on a read-only anon PTE.  A folio that is
  not ``PageAnonExclusive`` is re-used when ``wp_can_reuse_anon_folio()``
  (v6.7+) finds the caller's mapping to be its only reference, under the folio
  lock: ``folio_move_anon_rmap()`` then points it at the faulting VMA's
  anon_vma, a move *within one root* that takes no anon_vma lock in any
  generation.  Otherwise the page is copied (``wp_page_copy()``).
* :func:`do_mmap_anon` - ``mmap()`` of a fresh private anonymous VMA.

Left out: VMA merging (``find_mergeable_anon_vma()`` finds nothing: the
modelled VMAs are never adjacent and compatible), ``mm->page_table_lock`` in
``__anon_vma_prepare()`` (one thread faults a given VMA), swap cache, large
folios, pinned folios, ``wp_page_copy()``'s mmu notifiers and its copy of the
data, the fork of any other VMA of the mm (fork is :func:`fuzzrmap.kernel.mmap.dup_mmap`).
"""

from __future__ import annotations

from typing import List

from fuzzrmap.kernel.memory import (
    MM, VMA, Folio, folio_put, linear_page_index, set_pte_at,
)
from fuzzrmap.kernel.rmap import (
    anon_vma_alloc, anon_vma_chain_link, anon_vma_lock_write, anon_vma_unlock_write,
    folio_move_anon_rmap, folio_test_ksm, put_anon_vma,
)
from fuzzrmap.kernel.task import sleeping
from fuzzrmap.sched.api import TRACKED, adds, point, reads, writes

VM_FAULT_OOM = "oom"


async def __anon_vma_prepare(vma: VMA) -> None:
    fn = "__anon_vma_prepare"
    await sleeping(point(fn, "avc = anon_vma_chain_alloc(GFP_KERNEL); find_mergeable_anon_vma(vma): none",
                         TRACKED))
    anon_vma = await anon_vma_alloc(fn)
    await point(fn, f"{anon_vma!r}->num_children++ (self-parent link)", writes(f"{anon_vma.name}.num_children"))
    anon_vma.num_children += 1
    allocated = anon_vma
    await anon_vma_lock_write(anon_vma, fn, "anon_vma_lock_write")
    await point(fn, f"if (!vma->anon_vma): vma->anon_vma = {anon_vma!r}; anon_vma_chain_link(); num_active_vmas++",
                writes(f"{vma.name}.anon_vma", f"{anon_vma.name}.rb_root"))
    if vma.anon_vma is None:
        vma.anon_vma = anon_vma
        anon_vma_chain_link(vma, anon_vma)
        anon_vma.num_active_vmas += 1
        allocated = None
    await anon_vma_unlock_write(anon_vma, fn, "anon_vma_unlock_write")
    if allocated is not None:
        await put_anon_vma(allocated, fn, "put_anon_vma(allocated)")


async def do_anonymous_page(vma: VMA, addr: int, name: str, folios: List[Folio]) -> None:
    """First touch of ``addr``: a new exclusive folio ``name`` (appended to ``folios``)."""
    fn = "do_anonymous_page"
    await point(fn, "vmf_anon_prepare(): vma->anon_vma?", reads(f"{vma.name}.anon_vma"))
    if vma.anon_vma is None:
        await __anon_vma_prepare(vma)
    await vma.ptl.lock(fn, f"pte_offset_map_lock: spin_lock({vma.ptl.name})")
    await point(fn, f"pte_none({vma.name}:{addr:#x}); folio_add_new_anon_rmap({name}, {vma.name}); set_pte_at",
                writes(vma.pt_resource, vma.young_resource, "folio.mapping"))
    if vma.ptes.get(addr) is None:
        folio = Folio(name, mapping=vma.anon_vma, index=linear_page_index(vma, addr))
        folio._mapcount = 1
        set_pte_at(vma, addr, folio)
        folios.append(folio)
    vma.ptl.unlock()


# -- write faults ------------------------------------------------------------------

async def wp_can_reuse_anon_folio(folio: Folio, vma: VMA) -> bool:
    """mm/memory.c (v6.7+), small folio, no swap cache: the only reference is ours."""
    fn = "wp_can_reuse_anon_folio"
    await point(fn, "folio_test_ksm(folio) || folio_ref_count(folio) > 3; folio_ref_count(folio) > 1",
                reads("folio.mapping", folio._refcount.name))
    if folio_test_ksm(folio) or folio._refcount.atomic_read() > 1:
        return False
    await point(fn, "folio_trylock(folio)", folio.lock._fp)
    if not folio.lock.trylock():
        return False
    await point(fn, "folio_test_ksm(folio) || folio_ref_count(folio) != 1",
                reads("folio.mapping", folio._refcount.name))
    if folio_test_ksm(folio) or folio._refcount.atomic_read() != 1:
        await point(fn, "folio_unlock(folio)", folio.lock._fp)
        folio.lock.unlock()
        return False
    # Ok, we've got the only folio reference from our mapping and the folio is
    # locked, it's dark out, and we're wearing sunglasses. Hit it.
    await folio_move_anon_rmap(folio, vma)
    await point(fn, "folio_unlock(folio)", folio.lock._fp)
    folio.lock.unlock()
    return True


async def do_wp_page(vma: VMA, addr: int, copy_name: str, folios: List[Folio]) -> str:
    """Write fault on ``vma:addr`` with the PTL held on entry; 'reuse', 'copy' or 'none'."""
    fn = "do_wp_page"
    await vma.ptl.lock(fn, f"handle_pte_fault: spin_lock({vma.ptl.name})")
    await point(fn, f"folio = vm_normal_folio({vma.name}:{addr:#x}); PageAnonExclusive(page)",
                reads(vma.pt_resource, "folio.anon_exclusive"))
    folio = vma.ptes.get(addr)
    if folio is None:
        vma.ptl.unlock()
        return "none"
    if folio.anon_exclusive or await wp_can_reuse_anon_folio(folio, vma):
        await point(fn, "wp_page_reuse: SetPageAnonExclusive; pte_mkwrite; pte_unmap_unlock",
                    writes(vma.pt_resource, "folio.anon_exclusive"))
        folio.anon_exclusive = True
        vma.ptl.unlock()
        return "reuse"
    await point(fn, "pte_unmap_unlock: copy the page", writes(vma.ptl.name))
    vma.ptl.unlock()
    await wp_page_copy(vma, addr, folio, copy_name, folios)
    return "copy"


async def wp_page_copy(vma: VMA, addr: int, old: Folio, name: str, folios: List[Folio]) -> None:
    fn = "wp_page_copy"
    await vma.ptl.lock(fn, f"pte_offset_map_lock: spin_lock({vma.ptl.name})")
    await point(fn, f"pte_same; folio_add_new_anon_rmap({name}); set_pte_at; folio_remove_rmap_pte({old.name})",
                writes(vma.pt_resource, vma.young_resource, "folio.mapcount", "folio.mapping"))
    if vma.ptes.get(addr) is not old:
        vma.ptl.unlock()
        return
    new = Folio(name, mapping=vma.anon_vma, index=linear_page_index(vma, addr))
    new._mapcount = 1
    set_pte_at(vma, addr, new)
    folios.append(new)
    old._mapcount -= 1
    vma.ptl.unlock()
    await point(fn, f"folio_put({old.name})", adds(old._refcount.name))
    folio_put(old)


async def handle_write_fault(mm: MM, vma: VMA, addr: int, copy_name: str, folios: List[Folio]) -> str:
    fn = "handle_mm_fault"
    await mm.mmap_lock.down_read(fn, "mmap_read_lock(mm)")
    await point(fn, f"find_vma({vma.name})", reads(mm.mt_resource))
    result = "none"
    if vma in mm.mm_mt:
        result = await do_wp_page(vma, addr, copy_name, folios)
    await point(fn, "mmap_read_unlock(mm)", mm.mmap_lock._fp_read)
    mm.mmap_lock.up_read()
    return result


async def handle_first_fault(mm: MM, vma: VMA, addr: int, name: str, folios: List[Folio]) -> None:
    fn = "handle_mm_fault"
    await mm.mmap_lock.down_read(fn, "mmap_read_lock(mm)")
    await point(fn, f"find_vma({vma.name})", reads(mm.mt_resource))
    if vma in mm.mm_mt:
        await do_anonymous_page(vma, addr, name, folios)
    await point(fn, "mmap_read_unlock(mm)", mm.mmap_lock._fp_read)
    mm.mmap_lock.up_read()


async def do_mmap_anon(mm: MM, name: str, start: int, pgoff: int) -> VMA:
    """``mmap(start, PAGE_SIZE, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS)``: no anon_vma yet."""
    fn = "do_mmap"
    await mm.mmap_lock.down_write(fn, "mmap_write_lock(mm)")
    await point(fn, f"mmap_region: vma_link({name})", writes(mm.mt_resource, mm.vmas_resource))
    vma = VMA(name, mm, start, pages=1, vm_pgoff=pgoff)
    await point(fn, "mmap_write_unlock(mm)", mm.mmap_lock._fp)
    mm.mmap_lock.up_write()
    return vma


