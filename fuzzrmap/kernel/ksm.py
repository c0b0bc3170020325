"""KSM merging an anon folio (mm/ksm.c, v6.8-v6.18): its mapping stops being anon.

``ksmd`` finds a page it can merge, pins it, and under ``mmap_read_lock`` and
the folio lock ``try_to_merge_one_page()`` write-protects the PTE
(``write_protect_page()``: refused while anyone else holds a reference, i.e.
``folio_mapcount + 1 != folio_ref_count``; clears ``PageAnonExclusive``) and
upgrades the folio "from PageAnon+anon_vma to PageKsm+NULL stable_node":
``folio->mapping`` becomes a KSM-tagged pointer.  The rmap_item then takes a
reference on the VMA's anon_vma (``get_anon_vma()``, kept while the page is
merged), and ``stable_tree_insert()`` points ``folio->mapping`` at the new
stable node, again under the folio lock.

From then on readers see a non-anon mapping: ``folio_lock_anon_vma_read()``
returns NULL at L1, and a walker takes the folio lock and walks the stable
node's rmap_items (:func:`rmap_walk_ksm`, which requires the folio lock).

Left out: the twin page (the model merges F as the first page of a pair; the
other page and ``replace_page()`` are out of scope), the unstable tree, the
stable tree's rb-trees and chains, unmerging, ``break_ksm()``.
"""

from __future__ import annotations

from typing import List, Optional

import attrs

from fuzzrmap.check import invariants as check
from fuzzrmap.kernel.memory import MM, VMA, Folio, folio_get, folio_put
from fuzzrmap.kernel.rmap import (
    AnonVma, RmapWalkControl, anon_vma_lock_read, anon_vma_unlock_read, folio_test_ksm, get_anon_vma,
)
from fuzzrmap.sched.api import point, reads, writes

EBUSY = -16
EFAULT = -14


@attrs.define(eq=False)
class KsmRmapItem:
    """``struct ksm_rmap_item``: one merged mapping; holds a reference on ``anon_vma``."""

    mm: MM
    address: int
    anon_vma: Optional[AnonVma] = None


@attrs.define(eq=False)
class KsmStableNode:
    """``struct ksm_stable_node``; ``folio->mapping`` points at it with the KSM tag."""

    name: str
    hlist: List[KsmRmapItem] = attrs.Factory(list)

    def __repr__(self) -> str:
        return f"stable_node {self.name}|PAGE_MAPPING_KSM"


#: ``folio_set_stable_node(folio, NULL)``: the KSM tag over a NULL node
KSM_NULL_NODE = KsmStableNode("NULL")


def ksm_rmap_items(folios: List[Folio]) -> List[KsmRmapItem]:
    """The rmap_items of the stable nodes the given folios point at (checker helper)."""
    return [item for f in folios if isinstance(f.mapping, KsmStableNode) for item in f.mapping.hlist]


async def write_protect_page(vma: VMA, folio: Folio, addr: int) -> int:
    fn = "write_protect_page"
    await vma.ptl.lock(fn, f"page_vma_mapped_walk: spin_lock({vma.ptl.name})")
    await point(fn, "pte maps folio; folio_mapcount(folio) + 1 != folio_ref_count(folio); "
                    "folio_try_share_anon_rmap_pte: ClearPageAnonExclusive; wrprotect",
                writes(vma.pt_resource, "folio.anon_exclusive", folio._refcount.name) + reads("folio.mapcount"))
    err = EFAULT
    if vma.ptes.get(addr) is folio:
        err = EBUSY
        if folio._mapcount + 1 == folio._refcount.atomic_read():
            folio.anon_exclusive = False
            err = 0
    vma.ptl.unlock()
    return err


async def try_to_merge_one_page(vma: VMA, folio: Folio, addr: int) -> int:
    fn = "try_to_merge_one_page"
    await point(fn, "trylock_page(page)", folio.lock._fp)
    if not folio.lock.trylock():
        return EBUSY
    err = await write_protect_page(vma, folio, addr)
    if err == 0:
        # While we hold page lock, upgrade page from PageAnon+anon_vma to
        # PageKsm+NULL stable_node: stable_tree_insert() will update stable_node.
        await point(fn, "folio_set_stable_node(folio, NULL): WRITE_ONCE(folio->mapping, NULL|PAGE_MAPPING_KSM)",
                    writes("folio.mapping"))
        check.folio_field_write_allowed(folio, "folio->mapping = KSM")
        folio.mapping = KSM_NULL_NODE
    await point(fn, "unlock_page(page)", folio.lock._fp)
    folio.lock.unlock()
    return err


async def ksm_merge(mm: MM, vma: VMA, addr: int, folio: Folio) -> int:
    """ksmd merges the page at ``vma:addr`` (``cmp_and_merge_page()`` on its first page)."""
    fn = "cmp_and_merge_page"
    # scan_get_next_rmap_item(): under mmap_read_lock, follow_page() pins the page
    await mm.mmap_lock.down_read(fn, "scan_get_next_rmap_item: mmap_read_lock(mm)")
    await vma.ptl.lock(fn, f"follow_page: spin_lock({vma.ptl.name})")
    await point(fn, f"follow_page({vma.name}:{addr:#x}): folio_get unless already KSM",
                reads(vma.pt_resource, "folio.mapping") + writes(folio._refcount.name))
    # a page already in the stable tree is not merged again
    mapped = vma in mm.mm_mt and vma.ptes.get(addr) is folio and not folio_test_ksm(folio)
    if mapped:
        folio_get(folio)
    vma.ptl.unlock()
    await point(fn, "mmap_read_unlock(mm)", mm.mmap_lock._fp_read)
    mm.mmap_lock.up_read()
    if not mapped:
        return EFAULT

    item = KsmRmapItem(mm, addr)
    # try_to_merge_with_ksm_page(rmap_item, page, NULL)
    await mm.mmap_lock.down_read("try_to_merge_with_ksm_page", "mmap_read_lock(mm)")
    await point("try_to_merge_with_ksm_page", f"find_mergeable_vma({vma.name})", reads(mm.mt_resource))
    err = EFAULT
    if vma in mm.mm_mt:
        err = await try_to_merge_one_page(vma, folio, addr)
        if err == 0:
            # Must get reference to anon_vma while still holding mmap_lock
            await point("try_to_merge_with_ksm_page",
                        f"rmap_item->anon_vma = {vma.anon_vma!r}; get_anon_vma()", vma.anon_vma.fp_refcount)
            item.anon_vma = vma.anon_vma
            get_anon_vma(vma.anon_vma)
    await point("try_to_merge_with_ksm_page", "mmap_read_unlock(mm)", mm.mmap_lock._fp_read)
    mm.mmap_lock.up_read()

    if err == 0:
        await folio.lock.lock(fn, "folio_lock(kfolio)")
        await point(fn, "stable_tree_insert: folio_set_stable_node(kfolio, stable_node); stable_tree_append",
                    writes("folio.mapping"))
        check.folio_field_write_allowed(folio, "folio->mapping = stable_node")
        folio.mapping = KsmStableNode(folio.name, [item])
        await point(fn, "folio_unlock(kfolio)", folio.lock._fp)
        folio.lock.unlock()
    await point(fn, "folio_put(page)", writes(folio._refcount.name))
    folio_put(folio)
    return err


async def rmap_walk_ksm(folio: Folio, rwc: RmapWalkControl) -> None:
    """Walk the VMAs that map a KSM folio through its stable node's rmap_items."""
    fn = "rmap_walk_ksm"
    # Rely on the page lock to protect against concurrent modifications to
    # that page's node of the stable tree.
    check.walker_holds_folio_lock(folio, fn)
    await point(fn, "stable_node = folio_stable_node(folio)", reads("folio.mapping"))
    stable_node = folio.mapping
    if not isinstance(stable_node, KsmStableNode) or not stable_node.hlist:
        return
    for search_new_forks in (False, True):
        for item in list(stable_node.hlist):
            anon_vma = item.anon_vma
            await point(fn, f"anon_vma_trylock_read({anon_vma!r})", anon_vma.root.rwsem._fp_read)
            check.anon_vma_access(anon_vma, "rmap_walk_ksm: anon_vma_trylock_read")
            if not anon_vma.root.rwsem.down_read_trylock():
                if rwc.try_lock:
                    rwc.contended = True
                    return
                await anon_vma_lock_read(anon_vma, fn, "anon_vma_lock_read")
            await point(fn, f"anon_vma_interval_tree_foreach({anon_vma!r}->rb_root, 0, ULONG_MAX)",
                        anon_vma.fp_tree_read)
            for avc in list(anon_vma.rb_root):
                vma = avc.vma
                if not vma.vm_start <= item.address < vma.vm_end:
                    continue
                if (item.mm is vma.vm_mm) == search_new_forks:
                    continue
                if not await rwc.rmap_one(folio, vma, item.address, rwc.arg):
                    await anon_vma_unlock_read(anon_vma, fn, "anon_vma_unlock_read")
                    return
            await anon_vma_unlock_read(anon_vma, fn, "anon_vma_unlock_read")
