"""Structural rmap invariants I12-I14, checked between operations.

The end-of-schedule sweep (I5c, I6, I11 in :mod:`fuzzrmap.check.invariants`)
sees only the state every thread leaves.  A flaw that one operation creates
and a later one repairs or hides (an anon_vma chain linked to the wrong tree,
a mapping no walk can reach, a reference leaked and then dropped twice) is
visible only in between.  :func:`between_operations` checks the structure
when an operation returns (an actor's kernel call, or each call of an actor
that is a sequence) and no other operation is in flight: the kernel itself
breaks these invariants transiently, under its locks (an unlink removes a
chain from the tree before it leaves the VMA's list; UFFDIO_MOVE rewrites
``folio->mapping`` before ``folio->index``), so they hold only at such quiet
points.  In a sequential schedule that is after every operation.

* **I12 - chains and trees agree.**  An anon_vma_chain is in its anon_vma's
  interval tree if and only if it is on its VMA's chain list; a VMA's own
  ``anon_vma`` is on its list; every anon_vma on one list shares the list's
  root; ``num_active_vmas`` is the number of VMAs whose ``anon_vma`` it is;
  ``num_children`` is the number of live anon_vmas with a non-empty tree whose
  ``parent`` it is (a root counts itself).
* **I13 - every mapping is reachable.**  For every mapped folio, each VMA
  whose page table maps it at ``address`` is found by a walk of the folio's
  index: an anon folio's anon_vma tree holds a chain of that VMA and
  ``vma_address(vma, folio->index) == address``; for a KSM folio, one of its
  stable node's rmap_items has that address and its anon_vma's tree holds the
  VMA (of the item's mm, or of a fork of it, as ``rmap_walk_ksm()`` searches).
* **I14 - references equal the references held.**  A live anon_vma's
  refcount is exactly 1 (its own, while its tree is not empty) plus one per
  live anon_vma whose root it is, plus one per KSM rmap_item that points at
  it.  A folio's refcount is at least its mapcount (the mmu_gather drops the
  references of zapped mappings later, and munmap's model does not drop them).

The checks run through :func:`fuzzrmap.sched.api.operation_ends`: their
reads are not recorded, and exhaustive search replays every quiet state of
the classes it runs (so the check needs no footprint of its own).
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

from fuzzrmap.check import SAFETY
from fuzzrmap.kernel.memory import Folio, folio_mapped, vma_address
from fuzzrmap.kernel.slab import SlotState
from fuzzrmap.kernel.task import Kernel

Broken = Optional[Tuple[str, str, str]]


def chains_and_trees(k: Kernel) -> Broken:
    """I12."""
    vmas = k.vmas()
    live = [av for av in k.anon_vma_cachep.slots if av.slab_state is SlotState.LIVE]
    for vma in vmas:
        for avc in vma.anon_vma_chain:
            if avc not in avc.anon_vma.rb_root:
                return ("I12", SAFETY, f"{vma.name}'s chain links {avc.anon_vma!r}, whose tree lacks it")
            if avc.anon_vma.root is not vma.anon_vma_chain[0].anon_vma.root:
                return ("I12", SAFETY, f"{vma.name}'s chain mixes roots {avc.anon_vma.root!r} "
                                       f"and {vma.anon_vma_chain[0].anon_vma.root!r}")
        if vma.anon_vma is not None and not any(avc.anon_vma is vma.anon_vma for avc in vma.anon_vma_chain):
            return ("I12", SAFETY, f"{vma.name}->anon_vma {vma.anon_vma!r} is not on its chain")
    for av in live:
        for avc in av.rb_root:
            if avc not in avc.vma.anon_vma_chain or avc.vma not in vmas:
                return ("I12", SAFETY, f"{av!r}'s tree holds a chain of {avc.vma.name} that is not on its list")
        active = sum(1 for v in vmas if v.anon_vma is av)
        if av.num_active_vmas != active:
            return ("I12", SAFETY, f"{av!r} has num_active_vmas {av.num_active_vmas}, but {active} VMAs use it")
        children = sum(1 for o in live if o.parent is av and o.rb_root)
        if av.num_children != children:
            return ("I12", SAFETY, f"{av!r} has num_children {av.num_children}, but {children} live anon_vmas "
                                   f"with VMAs have it as parent")
    return None


def mappings_reachable(k: Kernel, folios: Iterable[Folio]) -> Broken:
    """I13."""
    from fuzzrmap.kernel.ksm import KsmStableNode
    from fuzzrmap.kernel.rmap import AnonVma

    for folio in folios:
        if not folio_mapped(folio):
            continue
        for vma in k.vmas():
            for address, mapped in vma.ptes.items():
                if mapped is not folio:
                    continue
                m = folio.mapping
                if isinstance(m, AnonVma):
                    found = any(avc.vma is vma for avc in m.rb_root)
                    if not found or vma_address(vma, folio.index) != address:
                        return ("I13", SAFETY, f"{vma.name}:{address:#x} maps {folio.name}, but a walk of "
                                               f"{m!r} at index {folio.index:#x} does not reach it")
                elif isinstance(m, KsmStableNode):
                    # rmap_walk_ksm() searches the item's own mm first, then forks of it
                    if not any(item.address == address and item.anon_vma is not None
                               and any(avc.vma is vma for avc in item.anon_vma.rb_root) for item in m.hlist):
                        return ("I13", SAFETY, f"{vma.name}:{address:#x} maps {folio.name}, but no rmap_item "
                                               f"of {m!r} reaches it")
                else:
                    return ("I13", SAFETY, f"{vma.name}:{address:#x} maps {folio.name}, whose mapping is NULL")
    return None


def references_held(k: Kernel, folios: List[Folio]) -> Broken:
    """I14."""
    from fuzzrmap.kernel.ksm import ksm_rmap_items

    items = ksm_rmap_items(folios)
    live = [av for av in k.anon_vma_cachep.slots if av.slab_state is SlotState.LIVE]
    for av in live:
        held = (1 if av.rb_root else 0) + sum(1 for o in live if o is not av and o.root is av) \
            + sum(1 for item in items if item.anon_vma is av)
        if av.refcount.counter != held:
            return ("I14", SAFETY, f"{av!r} has refcount {av.refcount.counter}, but {held} references are held "
                                   f"(own tree, descendants, KSM rmap_items)")
    for folio in folios:
        if folio._refcount.counter < folio._mapcount:
            return ("I14", SAFETY, f"{folio.name} has refcount {folio._refcount.counter} below its "
                                   f"mapcount {folio._mapcount}")
    return None


def between_operations(k: Kernel, folios: List[Folio]) -> Broken:
    """I12, I13, I14 on a quiet state; the first broken one, or None."""
    return chains_and_trees(k) or mappings_reachable(k, folios) or references_held(k, folios)
