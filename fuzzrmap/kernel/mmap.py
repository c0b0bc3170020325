"""The mmap lock, per-VMA locks, address-space teardown and fork.

* ``mmap_lock`` (include/linux/mmap_lock.h): an rwsem; dropping the write hold,
  by unlock or by downgrade, ends every VMA write lock (``vma_end_write_all()``
  bumps ``mm->mm_lock_seq``).
* Per-VMA locks (CONFIG_PER_VMA_LOCK, include/linux/mm.h and mm/memory.c,
  the v6.4..v6.14 shape: an rwsem ``vm_lock`` and ``vm_lock_seq``):
  :func:`vma_start_write` (under the mmap write lock) waits for the VMA's
  readers and marks it write-locked until the mmap write hold ends;
  :func:`lock_vma_under_rcu` finds a VMA in the maple tree and read-locks it
  unless it is write-locked or detached.
* :func:`do_munmap` follows ``__vm_munmap()`` -> ``do_vmi_align_munmap()``
  (mm/mmap.c v6.8; mm/vma.c ``vms_gather_munmap_vmas()`` and
  ``vms_complete_munmap_vmas()`` v6.11+): under ``mmap_write_lock`` it
  write-locks and detaches the VMA and takes it out of the maple tree, then
  *downgrades* ``mmap_lock`` to read before ``unmap_region()`` (zap, then
  ``free_pgtables()`` -> ``unlink_anon_vmas()``), so same-mm ``mmap_read_lock``
  users (faults, MADV_DONTNEED, UFFDIO_MOVE of other VMAs) overlap the
  teardown; they can no longer find the VMA being torn down.
* :func:`dup_mmap` is fork of one VMA (kernel/fork.c ``dup_mmap()`` ->
  ``anon_vma_fork()``, then ``copy_page_range()`` -> ``copy_present_pte()``):
  the child's new anon_vma comes from the slab, so it may land in the slot of
  one just freed, with ``root`` pointing at itself for a moment before it is
  set to the parent's root; the child then maps the parent's folios, and
  ``folio_try_dup_anon_rmap_pte()`` clears ``PageAnonExclusive``.

Left out: VMA splitting and merging, page-table freeing, the mmu_gather TLB
batching; a ``vma_start_read()`` is one step (its two ``vm_lock_seq`` checks around the
trylock give the same answers in any interleaving with a writer).
"""

from __future__ import annotations

from typing import Optional

from fuzzrmap.kernel.memory import MM, VMA, set_pte_at, zap_pte_range
from fuzzrmap.kernel.rcu import rcu_read_lock, rcu_read_unlock
from fuzzrmap.kernel.rmap import anon_vma_fork, unlink_anon_vmas
from fuzzrmap.sched.api import point, reads, touch, writes


# -- mmap_lock --------------------------------------------------------------------

def vma_end_write_all(mm: MM) -> None:
    """Every VMA write lock of ``mm`` ends (``WRITE_ONCE(mm->mm_lock_seq, ...+1)``)."""
    touch(mm.seq_resource, True)
    mm.mm_lock_seq += 1


async def mmap_write_unlock(mm: MM, func: str) -> None:
    await point(func, "mmap_write_unlock(mm)", mm.mmap_lock._fp)
    vma_end_write_all(mm)
    mm.mmap_lock.up_write()


async def mmap_write_downgrade(mm: MM, func: str) -> None:
    await point(func, "mmap_write_downgrade(mm)", mm.mmap_lock._fp)
    vma_end_write_all(mm)
    mm.mmap_lock.downgrade_write()


def vma_lookup(mm: MM, addr: int) -> Optional[VMA]:
    """The VMA of ``mm``'s maple tree that contains ``addr``."""
    touch(mm.mt_resource, False)
    for vma in mm.mm_mt:
        if vma.vm_start <= addr < vma.vm_end:
            return vma
    return None


# -- per-VMA locks ------------------------------------------------------------------

def _write_locked(vma: VMA) -> bool:
    touch(vma.vm_mm.seq_resource, False)
    return vma.vm_lock_seq == vma.vm_mm.mm_lock_seq


async def vma_start_write(vma: VMA, func: str) -> None:
    """``vma_start_write()``: wait for the VMA's readers, then mark it write-locked."""
    await point(func, f"vma_start_write({vma.name}): vm_lock_seq == mm_lock_seq?",
                reads(vma.vm_mm.seq_resource, f"{vma.name}.vm_lock_seq"))
    if _write_locked(vma):
        return
    await vma.vm_lock.down_write(func, f"vma_start_write({vma.name}): down_write(vm_lock)")
    await point(func, f"vma_start_write({vma.name}): vm_lock_seq = mm_lock_seq; up_write(vm_lock)",
                vma.vm_lock._fp + writes(f"{vma.name}.vm_lock_seq"))
    touch(vma.vm_mm.seq_resource, False)
    vma.vm_lock_seq = vma.vm_mm.mm_lock_seq
    vma.vm_lock.up_write()


def vma_start_read(vma: VMA) -> bool:
    """``vma_start_read()``: fails if the VMA is write-locked or a writer holds or waits for ``vm_lock``."""
    touch(f"{vma.name}.vm_lock_seq", False)
    if _write_locked(vma):
        return False
    return vma.vm_lock.down_read_trylock()


async def vma_end_read(vma: VMA, func: str) -> None:
    await point(func, f"vma_end_read({vma.name})", vma.vm_lock._fp_read)
    vma.vm_lock.up_read()


async def lock_vma_under_rcu(mm: MM, address: int, func: str) -> Optional[VMA]:
    """``lock_vma_under_rcu()`` (mm/memory.c): the read-locked VMA at ``address``, or None."""
    await point(func, f"lock_vma_under_rcu({address:#x}): rcu_read_lock(); mas_walk()", reads(mm.mt_resource))
    rcu_read_lock()
    vma = vma_lookup(mm, address)
    if vma is None:
        rcu_read_unlock()
        return None
    await point(func, f"lock_vma_under_rcu: vma_start_read({vma.name})",
                vma.vm_lock._fp_read + reads(mm.seq_resource, f"{vma.name}.vm_lock_seq"))
    if not vma_start_read(vma):
        rcu_read_unlock()
        return None
    # Check if the VMA got isolated after we found it
    await point(func, f"lock_vma_under_rcu: {vma.name}->detached?; rcu_read_unlock()", reads(f"{vma.name}.detached"))
    if vma.detached:
        vma.vm_lock.up_read()
        rcu_read_unlock()
        return None
    rcu_read_unlock()
    return vma


# -- munmap -----------------------------------------------------------------------------

async def unmap_region(vma: VMA) -> None:
    await zap_pte_range(vma)  # unmap_vmas()
    await unlink_anon_vmas(vma)  # free_pgtables()


async def do_munmap(mm: MM, vma: VMA) -> None:
    """munmap() of the whole of ``vma``."""
    fn = "do_vmi_align_munmap"
    await mm.mmap_lock.down_write(fn, "mmap_write_lock(mm)")
    if vma not in mm.mm_mt:
        # vma_find() finds nothing in the range any more: nothing to unmap
        await mmap_write_unlock(mm, fn)
        return
    # vms_gather_munmap_vmas(): isolate the VMA.
    await vma_start_write(vma, fn)
    await point(fn, f"vma_mark_detached({vma.name}); vma_iter_clear(): {vma.name} leaves mm->mm_mt",
                writes(mm.mt_resource, f"{vma.name}.detached"))
    vma.detached = True
    mm.mm_mt.remove(vma)
    # vms_complete_munmap_vmas(): "We can free page tables without
    # write-locking mmap_lock because VMAs were isolated before we downgraded
    # mmap_lock."
    await mmap_write_downgrade(mm, fn)
    await unmap_region(vma)
    await point(fn, f"remove_vma({vma.name})", writes(f"{vma.name}.anon_vma", mm.vmas_resource))
    mm.vmas.remove(vma)
    await point(fn, "mmap_read_unlock(mm)", mm.mmap_lock._fp_read)
    mm.mmap_lock.up_read()


# -- fork --------------------------------------------------------------------------------

async def copy_present_pte(dst_vma: VMA, src_vma: VMA, addr: int) -> None:
    """``copy_present_pte()`` / ``__copy_present_ptes()`` (mm/memory.c, v6.8..v6.18), anon
    folio: the child's PTE is write-protected and old (``pte_mkold()``)."""
    fn = "copy_present_pte"
    await src_vma.ptl.lock(fn, f"copy_pte_range: spin_lock({src_vma.ptl.name})")
    await dst_vma.ptl.lock(fn, f"copy_pte_range: spin_lock_nested({dst_vma.ptl.name})")
    await point(fn, f"folio_get; folio_try_dup_anon_rmap_pte: ClearPageAnonExclusive; wrprotect; "
                    f"set_pte_at({dst_vma.name}:{addr:#x})",
                writes(src_vma.pt_resource, dst_vma.pt_resource, dst_vma.young_resource, "folio.mapcount",
                       "folio.anon_exclusive"))
    folio = src_vma.ptes.get(addr)
    if folio is not None:
        folio._refcount.atomic_inc(pin=False)  # folio_get(): the child's PTE holds it
        folio._mapcount += 1
        folio.anon_exclusive = False
        set_pte_at(dst_vma, addr, folio, young=False)
    dst_vma.ptl.unlock()
    src_vma.ptl.unlock()


async def dup_mmap(child: VMA, parent: VMA) -> None:
    """fork() as it concerns ``parent``: anon_vma_fork(), then copy its present PTEs."""
    fn = "dup_mmap"
    mm = parent.vm_mm
    await mm.mmap_lock.down_write(fn, "mmap_write_lock(oldmm)")
    await vma_start_write(parent, fn)
    await anon_vma_fork(child, parent)
    for addr in sorted(parent.ptes):
        await copy_present_pte(child, parent, addr)
    await mmap_write_unlock(mm, fn)
