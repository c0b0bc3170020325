"""Folios, VMAs, mms and page tables (include/linux/mm_types.h, mm/memory.c).

Follows the structures the rmap code reads, with the fields of spec
section 1: ``folio->mapping`` (the anon_vma a folio belongs to), ``->index``
(its pgoff in that VMA's linear space), the mapcount (``folio_mapped()``), the
``PageAnonExclusive`` bit and the folio lock; a VMA's ``anon_vma`` and its
``anon_vma_chain``; one page table lock per VMA (each VMA of a scenario sits
under its own PMD) and a PTE per page address.

Simplifications: small folios only; ``folio->mapping`` holds the anon_vma
object itself or ``None`` (``PAGE_MAPPING_ANON`` is implied, KSM and file
folios are out of scope); a PTE is the folio it maps or ``None``; the
accessed/dirty bits are one ``young`` flag per PTE.  Folios are never freed:
every thread that uses one holds a reference.

:func:`zap_pte_range` is the part of ``munmap``/``exit`` that clears PTEs
(mm/memory.c ``zap_pte_range()`` -> ``zap_present_ptes()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional

from fuzzrmap.kernel.locking import ExclusiveLock, folio_lock_bit, spinlock
from fuzzrmap.kernel.refcount import Atomic
from fuzzrmap.kernel.rwsem import MMAP_LOCK_CLASS, VMA_LOCK_CLASS, RWSem
from fuzzrmap.sched.api import point, touch, writes

if TYPE_CHECKING:  # pragma: no cover
    from fuzzrmap.kernel.rmap import AnonVma, AnonVmaChain

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT


class Folio:
    def __init__(self, name: str, mapping: "AnonVma", index: int) -> None:
        self.name = name
        self.mapping: Optional["AnonVma"] = mapping
        self.index = index
        self._mapcount = 0
        self.anon_exclusive = True
        self.lock: ExclusiveLock = folio_lock_bit(f"{name}.lock")
        self._refcount = Atomic(f"{name}._refcount", 1)
        #: PG_lru: on an LRU list, so reclaim may isolate it (footprint :attr:`lru_resource`)
        self.lru = True
        self.lru_resource = f"{name}.lru"

    def __repr__(self) -> str:
        return self.name


def folio_mapped(folio: Folio) -> bool:
    return folio._mapcount > 0


def folio_mapcount(folio: Folio) -> int:
    return folio._mapcount


def folio_get(folio: Folio) -> None:
    folio._refcount.atomic_inc()


def folio_put(folio: Folio) -> None:
    folio._refcount.atomic_dec_and_test()


def folio_trylock(folio: Folio) -> bool:
    return folio.lock.trylock()


async def folio_lock(folio: Folio, func: str, label: str) -> None:
    await folio.lock.lock(func, label)


def folio_unlock(folio: Folio) -> None:
    folio.lock.unlock()


class MM:
    def __init__(self, name: str) -> None:
        self.name = name
        self.mmap_lock = RWSem(f"{name}.mmap_lock", MMAP_LOCK_CLASS)
        #: every VMA not yet freed (remove_vma()), detached ones included (the checker's view)
        self.vmas: List["VMA"] = []
        #: the maple tree ``mm->mm_mt``: the VMAs a lookup finds
        self.mm_mt: List["VMA"] = []
        #: ``mm->mm_lock_seq``: bumped when mmap_lock stops being write-held (vma_end_write_all())
        self.mm_lock_seq = 0

    @property
    def mt_resource(self) -> str:
        """Footprint name of the maple tree."""
        return f"{self.name}.mm_mt"

    @property
    def seq_resource(self) -> str:
        """Footprint name of ``mm_lock_seq`` (part of the per-VMA locks)."""
        return f"{self.name}.mm_lock_seq"

    def __repr__(self) -> str:
        return self.name

    @property
    def vmas_resource(self) -> str:
        """Footprint name of :attr:`vmas`, the VMAs not yet freed (the checker's view;
        lookups read :attr:`mt_resource`)."""
        return f"{self.name}.vmas"


class VMA:
    def __init__(self, name: str, mm: MM, vm_start: int, pages: int, vm_pgoff: int) -> None:
        self.name = name
        self.vm_mm = mm
        self.vm_start = vm_start
        self.vm_end = vm_start + pages * PAGE_SIZE
        self.vm_pgoff = vm_pgoff
        self.anon_vma: Optional["AnonVma"] = None
        #: newest first, as list_add() leaves it
        self.anon_vma_chain: List["AnonVmaChain"] = []
        self.ptes: Dict[int, Optional[Folio]] = {}
        #: the PTEs' accessed bits (read and cleared through :func:`pte_young`, :func:`ptep_test_and_clear_young`)
        self.young: Dict[int, bool] = {}
        self.ptl = spinlock(f"{name}.ptl")
        #: per-VMA lock (CONFIG_PER_VMA_LOCK, v6.4..v6.14 shape: an rwsem and a sequence number)
        self.vm_lock = RWSem(f"{name}.vm_lock", VMA_LOCK_CLASS)
        self.vm_lock_seq = -1
        self.detached = False
        #: ``vma->vm_userfaultfd_ctx.ctx``
        self.vm_userfaultfd_ctx = None
        mm.vmas.append(self)
        mm.mm_mt.append(self)

    def __repr__(self) -> str:
        return self.name

    @property
    def pt_resource(self) -> str:
        """Footprint name of this VMA's page table entries (what they map)."""
        return f"pte:{self.name}"

    @property
    def young_resource(self) -> str:
        """Footprint name of the accessed bits of this VMA's PTEs (:attr:`young`):
        clearing one changes no mapping, so it does not race with reading one."""
        return f"young:{self.name}"


def linear_page_index(vma: VMA, address: int) -> int:
    return ((address - vma.vm_start) >> PAGE_SHIFT) + vma.vm_pgoff


def vma_address(vma: VMA, pgoff: int) -> Optional[int]:
    """The address of ``pgoff`` in ``vma``, or None (``-EFAULT``) when outside it."""
    address = vma.vm_start + ((pgoff - vma.vm_pgoff) << PAGE_SHIFT)
    if vma.vm_start <= address < vma.vm_end:
        return address
    return None


def set_pte_at(vma: VMA, addr: int, folio: Folio, young: bool = True) -> None:
    """Map ``folio`` at ``addr``; the caller took care of the mapcount."""
    touch(vma.young_resource, True)
    vma.ptes[addr] = folio
    vma.young[addr] = young


def ptep_get_and_clear(vma: VMA, addr: int) -> Optional[Folio]:
    touch(vma.young_resource, True)
    vma.young.pop(addr, None)
    return vma.ptes.pop(addr, None)


def pte_young(vma: VMA, addr: int) -> bool:
    """The accessed bit of the PTE at ``addr`` (recorded as a read of :attr:`VMA.young_resource`)."""
    touch(vma.young_resource, False)
    return bool(vma.young.get(addr))


def ptep_test_and_clear_young(vma: VMA, addr: int) -> bool:
    """Clear the accessed bit at ``addr``; whether it was set (recorded as a write)."""
    touch(vma.young_resource, True)
    young = bool(vma.young.get(addr))
    if addr in vma.young:
        vma.young[addr] = False
    return young


def mappers(folio: Folio, vmas: List[VMA]) -> List[VMA]:
    """The VMAs whose page tables map ``folio`` right now (checker helper)."""
    for v in vmas:
        touch(v.pt_resource, False)
    return [v for v in vmas if folio in v.ptes.values()]


async def zap_pte_range(vma: VMA) -> List[Folio]:
    """Clear every PTE of ``vma`` and drop the rmap of the folios they mapped;
    return the folios unmapped, whose references the caller's mmu_gather drops.

    ``zap_present_folio_ptes()`` (mm/memory.c, v6.8..v6.18), anon folio, under
    the PTL: ``clear_full_ptes()``, then ``folio_remove_rmap_ptes()`` (an anon
    folio never delays its rmap), two steps: between them no PTE maps the folio
    but ``folio_mapped()`` is still true."""
    fn = "zap_pte_range"
    zapped: List[Folio] = []
    for addr in sorted(vma.ptes):
        await vma.ptl.lock(fn, f"Z1 spin_lock({vma.ptl.name})")
        await point(fn, f"Z1 clear_full_ptes({vma.name}:{addr:#x})", writes(vma.pt_resource, vma.young_resource))
        folio = ptep_get_and_clear(vma, addr)
        if folio is not None:
            await point(fn, f"Z2 folio_remove_rmap_ptes({folio.name}, {vma.name})", writes("folio.mapcount"))
            folio._mapcount -= 1
            zapped.append(folio)
        await point(fn, f"Z3 pte_unmap_unlock({vma.ptl.name})", writes(vma.ptl.name))
        vma.ptl.unlock()
    return zapped
