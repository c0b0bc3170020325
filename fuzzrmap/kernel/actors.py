"""The kernel's concurrent operations as actors over one shared world.

The world is the common state of the UFFDIO_MOVE scenarios (spec section 4):
one mm with two private anonymous VMAs, ``S`` (source, anon_vma#1 its own
root) and ``D`` (destination, registered with the userfaultfd, anon_vma#2
its own root); folio ``F`` is exclusive, mapped once at ``S:0x10000``, and an
unlocked reader holds a reference on it (reclaim isolated it from the LRU).
The two VMAs sit at different pgoffs, so a walker that pairs the destination
tree with the source index misses the mapping (the benign window of spec
4.4).  A second process (``parent`` with VMA ``P``, anon_vma#3) can fork: its
child's new anon_vma comes from the slab, into a slot that a freed anon_vma
left.

Each actor is one kernel operation as a model thread, named and cited; the
catalogue orders them readers first, then movers, teardown and creation,
which is the thread order of every composition.  ``fuzzrmap actors`` lists
them.
"""

from __future__ import annotations

from typing import List

import attrs

from fuzzrmap.actors import Actor, Catalogue, Param
from fuzzrmap.kernel.generations import G0, G1
from fuzzrmap.kernel.memory import MM, PAGE_SIZE, VMA, Folio, linear_page_index, set_pte_at
from fuzzrmap.kernel.mmap import do_munmap, dup_mmap
from fuzzrmap.kernel.page_idle import page_idle_clear_pte_refs
from fuzzrmap.kernel.rmap import FAST_RECHECK, SLOW_RECHECK, AnonVma, anon_vma_chain_link, folio_referenced
from fuzzrmap.kernel.task import Kernel
from fuzzrmap.kernel.userfaultfd import move_pages
from fuzzrmap.scenario import UNKNOWN, Variant

S_ADDR = 0x10000
D_ADDR = 0x40000


def new_root_anon_vma(k: Kernel, vma: VMA) -> AnonVma:
    """What ``__anon_vma_prepare()`` leaves for a VMA's first anon fault."""
    av = k.anon_vma_cachep.kmem_cache_alloc()
    av.refcount.atomic_set(1)
    av.num_children = 1  # self-parent link for new root
    av.num_active_vmas = 1
    vma.anon_vma = av
    anon_vma_chain_link(vma, av)
    return av


@attrs.define
class UffdWorld:
    kernel: Kernel
    mm: MM
    src: VMA
    dst: VMA
    folio: Folio
    parent: VMA

    def vma(self, name: str) -> VMA:
        return {"S": self.src, "D": self.dst}[name]


def build(k: Kernel) -> UffdWorld:
    mm = MM("mm")
    src = VMA("S", mm, S_ADDR, pages=1, vm_pgoff=0x10)
    dst = VMA("D", mm, D_ADDR, pages=1, vm_pgoff=0x40)
    as_ = new_root_anon_vma(k, src)
    new_root_anon_vma(k, dst)
    folio = Folio("F", mapping=as_, index=linear_page_index(src, S_ADDR))
    set_pte_at(src, S_ADDR, folio)
    folio._mapcount = 1
    folio._refcount.atomic_inc()  # the reader's reference (it isolated F from the LRU)

    parent_mm = MM("parent")
    parent = VMA("P", parent_mm, 0x70000, pages=1, vm_pgoff=0x70)
    new_root_anon_vma(k, parent)
    k.mms.extend([mm, parent_mm])
    return UffdWorld(k, mm, src, dst, folio, parent)


# -- the actors ------------------------------------------------------------------

async def referenced(w: UffdWorld) -> None:
    """shrink_active_list() ages an anon folio it isolated, without its lock."""
    await folio_referenced(w.folio, is_locked=False)


async def page_idle(w: UffdWorld) -> None:
    await page_idle_clear_pte_refs(w.folio)


async def uffd_move(w: UffdWorld, src: str) -> None:
    """UFFDIO_MOVE of the page at the start of ``src`` to the start of the other VMA."""
    src_vma = w.vma(src)
    dst_vma = w.dst if src_vma is w.src else w.src
    await move_pages(w.mm, dst_vma, src_vma, dst_vma.vm_start, src_vma.vm_start, PAGE_SIZE)


async def munmap(w: UffdWorld, vma: str) -> None:
    await do_munmap(w.mm, w.vma(vma))


async def fork(w: UffdWorld) -> None:
    """fork() of the parent: the child's mm and VMA C are new, nobody else sees them yet."""
    k = w.kernel
    n = sum(1 for mm in k.mms if mm.name.startswith("child"))
    suffix = str(n + 1) if n else ""
    child_mm = MM(f"child{suffix}")
    child = VMA(f"C{suffix}", child_mm, w.parent.vm_start, pages=1, vm_pgoff=w.parent.vm_pgoff)
    k.mms.append(child_mm)
    await dup_mmap(child, w.parent)


VMA_PARAM = ("S", "D")

ACTORS = (
    Actor("referenced", "reader", "folio_referenced() of F, unlocked and try_lock (reclaim)",
          "mm/rmap.c folio_referenced(), from mm/vmscan.c shrink_active_list(), v6.8-v6.18",
          referenced, reads_rmap=True),
    Actor("page-idle", "reader", "page_idle_clear_pte_refs() of F, unlocked and blocking",
          "mm/page_idle.c page_idle_clear_pte_refs(), v6.8-v6.18", page_idle, reads_rmap=True),
    Actor("uffd-move", "mover", "UFFDIO_MOVE of one page from VMA src to the other VMA",
          "mm/userfaultfd.c move_pages() -> move_pages_pte() -> move_present_pte()",
          uffd_move, params=[Param("src", VMA_PARAM, "the VMA the page moves from")]),
    Actor("munmap", "munmap", "munmap of one VMA of the mm (zap, then unlink_anon_vmas)",
          "mm/vma.c do_vmi_munmap()", munmap, params=[Param("vma", VMA_PARAM, "the VMA unmapped")]),
    Actor("fork", "fork", "fork of another process: anon_vma_fork() re-uses a freed slot",
          "kernel/fork.c dup_mmap() -> mm/rmap.c anon_vma_fork()", fork),
)


def _folios(w: UffdWorld) -> List[Folio]:
    return [w.folio]


VARIANTS = (
    Variant("fixed", UNKNOWN, "G1 as merged: both folio->mapping rechecks", G1),
    Variant("unpatched", UNKNOWN, "G0 reader (before the seed patch) against the UFFDIO_MOVE mover", G0),
    Variant("no-fast-recheck", UNKNOWN, "only the slow-path recheck (hunk 2)", G1, remove=[FAST_RECHECK]),
    Variant("no-slow-recheck", UNKNOWN, "only the fast-path recheck (hunk 1)", G1, remove=[SLOW_RECHECK]),
)

CATALOGUE = Catalogue("kernel", "kernel operations that race with an unlocked rmap walk of an anon folio",
                      ACTORS, build, _folios, VARIANTS)
