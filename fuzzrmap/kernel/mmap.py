"""Address-space teardown and fork, the parts that free and re-use anon_vmas.

* :func:`do_munmap` follows ``do_vmi_munmap()`` (mm/vma.c, mm/mmap.c): under
  ``mmap_write_lock`` it zaps the VMA's PTEs (``unmap_vmas()``) and then, in
  ``free_pgtables()``, calls ``unlink_anon_vmas()``, which drops the last
  reference of an anon_vma left without VMAs.  Zap always precedes unlink.
* :func:`dup_mmap` is fork of one VMA (kernel/fork.c ``dup_mmap()`` ->
  ``anon_vma_fork()``, then ``copy_page_range()`` -> ``copy_present_pte()``):
  the child's new anon_vma comes from the slab, so it may land in the slot of
  one just freed, with ``root`` pointing at itself for a moment before it is
  set to the parent's root; the child then maps the parent's folios, and
  ``folio_try_dup_anon_rmap_pte()`` clears ``PageAnonExclusive``.

Left out: VMA splitting and merging, page-table freeing, the mmu_gather TLB
batching.
"""

from __future__ import annotations

from fuzzrmap.kernel.memory import MM, VMA, folio_get, set_pte_at, zap_pte_range
from fuzzrmap.kernel.rmap import anon_vma_fork, unlink_anon_vmas
from fuzzrmap.sched.api import point, writes


async def unmap_region(vma: VMA) -> None:
    await zap_pte_range(vma)  # unmap_vmas()
    await unlink_anon_vmas(vma)  # free_pgtables()


async def do_munmap(mm: MM, vma: VMA) -> None:
    fn = "do_vmi_munmap"
    await mm.mmap_lock.down_write(fn, "mmap_write_lock(mm)")
    if vma not in mm.vmas:
        # vma_find() finds nothing in the range any more: nothing to unmap
        await point(fn, "mmap_write_unlock(mm): no VMA", mm.mmap_lock._fp)
        mm.mmap_lock.up_write()
        return
    await unmap_region(vma)
    await point(fn, f"remove_vma({vma.name}); mmap_write_unlock(mm)", mm.mmap_lock._fp + writes(mm.vmas_resource))
    mm.vmas.remove(vma)
    mm.mmap_lock.up_write()


async def copy_present_pte(dst_vma: VMA, src_vma: VMA, addr: int) -> None:
    fn = "copy_present_pte"
    await src_vma.ptl.lock(fn, f"copy_pte_range: spin_lock({src_vma.ptl.name})")
    await dst_vma.ptl.lock(fn, f"copy_pte_range: spin_lock_nested({dst_vma.ptl.name})")
    await point(fn, f"folio_get; folio_try_dup_anon_rmap_pte: ClearPageAnonExclusive; wrprotect; "
                    f"set_pte_at({dst_vma.name}:{addr:#x})",
                writes(src_vma.pt_resource, dst_vma.pt_resource, "folio.mapcount", "folio.anon_exclusive"))
    folio = src_vma.ptes.get(addr)
    if folio is not None:
        folio_get(folio)
        folio._mapcount += 1
        folio.anon_exclusive = False
        set_pte_at(dst_vma, addr, folio)
    dst_vma.ptl.unlock()
    src_vma.ptl.unlock()


async def dup_mmap(child: VMA, parent: VMA) -> None:
    """fork() as it concerns ``parent``: anon_vma_fork(), then copy its present PTEs."""
    fn = "dup_mmap"
    mm = parent.vm_mm
    await mm.mmap_lock.down_write(fn, "mmap_write_lock(oldmm)")
    await anon_vma_fork(child, parent)
    for addr in sorted(parent.ptes):
        await copy_present_pte(child, parent, addr)
    await point(fn, "mmap_write_unlock(oldmm)", mm.mmap_lock._fp)
    mm.mmap_lock.up_write()
