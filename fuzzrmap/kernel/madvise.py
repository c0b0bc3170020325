"""MADV_DONTNEED (mm/madvise.c) and exit_mmap() (mm/mmap.c): teardown of page tables.

* :func:`madvise_dontneed` follows ``do_madvise()`` -> ``madvise_dontneed_single_vma()``
  -> ``zap_page_range_single()`` (v6.8-v6.18): under ``mmap_read_lock`` (MADV_DONTNEED
  needs no write lock, so faults, UFFDIO_MOVE and other madvise calls of the
  same mm run alongside), zap the VMA's PTEs and let the mmu_gather drop the
  folio references (``tlb_finish_mmu()``).  The VMA and its anon_vmas stay:
  a zap without an unlink.
* :func:`exit_mmap` follows ``exit_mmap()`` (v6.8-v6.12 in mm/mmap.c, later mm/vma.c
  helpers): under ``mmap_read_lock`` zap every VMA (``unmap_vmas()``), then
  under ``mmap_write_lock`` ``free_pgtables()`` unlinks every VMA's anon_vmas
  and ``remove_vma()`` drops the VMAs.  The kernel runs it once no task uses
  the mm (``mm_users`` is 0, so UFFDIO_MOVE's ``mmget_not_zero()`` fails); the
  model lets the mm's other actors run alongside, an over-approximation, and
  re-reads the VMA list under the write lock so a munmap that ran in between
  is seen.

Left out: ranges smaller than a VMA (each VMA of the model is one page),
``userfaultfd_remove()`` notification, mmu notifiers, the OOM reaper's
``MMF_OOM_SKIP`` handshake, hugetlb.
"""

from __future__ import annotations

from typing import List

from fuzzrmap.kernel.memory import MM, VMA, Folio, folio_put, zap_pte_range
from fuzzrmap.kernel.rmap import unlink_anon_vmas
from fuzzrmap.sched.api import adds, point, reads, writes

ENOMEM = -12


async def tlb_finish_mmu(folios: List[Folio], func: str) -> None:
    """The mmu_gather frees its batch: one ``folio_put()`` per zapped mapping."""
    for folio in folios:
        await point(func, f"tlb_finish_mmu: folio_put({folio.name})", adds(folio._refcount.name))
        folio_put(folio)


async def madvise_dontneed(mm: MM, vma: VMA) -> int:
    """``madvise(vma->vm_start, vma_pages(vma), MADV_DONTNEED)``; 0 or -ENOMEM (no VMA)."""
    fn = "do_madvise"
    await mm.mmap_lock.down_read(fn, "mmap_read_lock(mm)")
    await point(fn, f"find_vma({vma.name})", reads(mm.mt_resource))
    if vma not in mm.mm_mt:
        await point(fn, "mmap_read_unlock(mm): -ENOMEM", mm.mmap_lock._fp_read)
        mm.mmap_lock.up_read()
        return ENOMEM
    zapped = await zap_pte_range(vma)  # zap_page_range_single() -> unmap_single_vma()
    await tlb_finish_mmu(zapped, "zap_page_range_single")
    await point(fn, "mmap_read_unlock(mm)", mm.mmap_lock._fp_read)
    mm.mmap_lock.up_read()
    return 0


async def exit_mmap(mm: MM) -> None:
    """The last user of ``mm`` is gone: zap every VMA, then unlink and remove them all."""
    fn = "exit_mmap"
    await mm.mmap_lock.down_read(fn, "mmap_read_lock(mm)")
    await point(fn, "unmap_vmas(): vma_next() over the mm", reads(mm.mt_resource))
    vmas = list(mm.mm_mt)
    zapped: List[Folio] = []
    for vma in vmas:
        zapped += await zap_pte_range(vma)
    await point(fn, "mmap_read_unlock(mm)", mm.mmap_lock._fp_read)
    mm.mmap_lock.up_read()
    await mm.mmap_lock.down_write(fn, "mmap_write_lock(mm)")
    await point(fn, "free_pgtables(): the VMAs of the mm", reads(mm.mt_resource))
    vmas = list(mm.mm_mt)
    for vma in vmas:
        await unlink_anon_vmas(vma)
    await tlb_finish_mmu(zapped, fn)
    for vma in vmas:
        await point(fn, f"remove_vma({vma.name})", writes(mm.mt_resource, mm.vmas_resource))
        mm.mm_mt.remove(vma)
        mm.vmas.remove(vma)
    await point(fn, "mmap_write_unlock(mm)", mm.mmap_lock._fp)
    mm.mmap_lock.up_write()
