"""Address-space teardown and fork, the parts that free and re-use anon_vmas.

* :func:`do_munmap` follows ``do_vmi_munmap()`` (mm/vma.c, mm/mmap.c): under
  ``mmap_write_lock`` it zaps the VMA's PTEs (``unmap_vmas()``) and then, in
  ``free_pgtables()``, calls ``unlink_anon_vmas()``, which drops the last
  reference of an anon_vma left without VMAs.  Zap always precedes unlink.
* :func:`dup_mmap` is the anon_vma part of fork (kernel/fork.c ``dup_mmap()``
  -> ``anon_vma_fork()``): the child's new anon_vma comes from the slab, so it
  may land in the slot of one just freed, with ``root`` pointing at itself for
  a moment before it is set to the parent's root.

Left out: VMA splitting and merging, page-table freeing, the mmu_gather TLB
batching, copying the parent's PTEs (the child VMA maps nothing).
"""

from __future__ import annotations

from fuzzrmap.kernel.memory import MM, VMA, zap_pte_range
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


async def dup_mmap(child: VMA, parent: VMA) -> None:
    fn = "dup_mmap"
    mm = parent.vm_mm
    await mm.mmap_lock.down_write(fn, "mmap_write_lock(oldmm)")
    await anon_vma_fork(child, parent)
    await point(fn, "mmap_write_unlock(oldmm)", writes(mm.mmap_lock.name))
    mm.mmap_lock.up_write()
