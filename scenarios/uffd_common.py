"""The initial state shared by the UFFDIO_MOVE scenarios (spec section 4).

One mm with two private anonymous VMAs: ``S`` (source, anon_vma#1 its own
root) and ``D`` (destination, registered with the userfaultfd, anon_vma#2 its
own root).  Folio ``F`` is exclusive, mapped once at ``S:0x10000``.  The two
VMAs sit at different pgoffs, so a walker that pairs the destination tree with
the source index misses the mapping (the benign window of spec 4.4).

A second process (``parent`` with VMA ``P``, anon_vma#3) forks: its child's
new anon_vma comes from the slab, into the slot anon_vma#1 leaves when freed.
"""

from __future__ import annotations

from typing import Callable, Coroutine

import attrs

from fuzzrmap.kernel.memory import MM, PAGE_SIZE, VMA, Folio, linear_page_index, set_pte_at
from fuzzrmap.kernel.mmap import do_munmap, dup_mmap
from fuzzrmap.kernel.rmap import AnonVma, anon_vma_chain_link
from fuzzrmap.kernel.generations import G0, G1
from fuzzrmap.kernel.rmap import FAST_RECHECK, SLOW_RECHECK
from fuzzrmap.kernel.task import Kernel
from fuzzrmap.kernel.userfaultfd import UserfaultfdCtx, move_pages
from fuzzrmap.scenario import CLEAN, FAILS, Variant, World

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
    mm: MM
    src: VMA
    dst: VMA
    folio: Folio
    parent: VMA
    child: VMA


def build(k: Kernel) -> UffdWorld:
    mm = MM("mm")
    src = VMA("S", mm, S_ADDR, pages=1, vm_pgoff=0x10)
    dst = VMA("D", mm, D_ADDR, pages=1, vm_pgoff=0x40)
    dst.vm_userfaultfd_ctx = UserfaultfdCtx(mm)
    as_ = new_root_anon_vma(k, src)
    new_root_anon_vma(k, dst)
    folio = Folio("F", mapping=as_, index=linear_page_index(src, S_ADDR))
    set_pte_at(src, S_ADDR, folio)
    folio._mapcount = 1
    folio._refcount.atomic_inc()  # the reader's reference (it isolated F from the LRU)

    parent_mm, child_mm = MM("parent"), MM("child")
    parent = VMA("P", parent_mm, 0x70000, pages=1, vm_pgoff=0x70)
    child = VMA("C", child_mm, 0x70000, pages=1, vm_pgoff=0x70)
    new_root_anon_vma(k, parent)
    k.mms.extend([mm, parent_mm, child_mm])
    return UffdWorld(mm, src, dst, folio, parent, child)


def threads(w: UffdWorld, reader: Callable[[], Coroutine], fork: bool) -> World:
    """The reader, the mover, munmap of S and, with ``fork``, a fork that re-uses freed slots."""
    async def mover():
        await move_pages(w.dst.vm_userfaultfd_ctx, D_ADDR, S_ADDR, PAGE_SIZE)

    async def munmap():
        await do_munmap(w.mm, w.src)

    async def forker():
        await dup_mmap(w.child, w.parent)

    racing = [("reader", reader), ("mover", mover), ("munmap", munmap)]
    if fork:
        racing.append(("fork", forker))
    return World(threads=racing, folios=[w.folio])


def setup_with(reader: Callable[[Folio], Coroutine], fork: bool) -> Callable[[Kernel], World]:
    """A scenario's setup: the common state, ``reader(F)`` as the reader thread, and the others."""
    def setup(k: Kernel) -> World:
        w = build(k)

        async def read():
            await reader(w.folio)

        return threads(w, read, fork)
    return setup


def variants(no_slow_recheck_expect: str, fixed_expect: str = CLEAN) -> tuple:
    return (
        Variant("fixed", fixed_expect, "G1 as merged: both folio->mapping rechecks", G1),
        Variant("unpatched", FAILS, "G0 reader (before the seed patch) against the UFFDIO_MOVE mover", G0),
        Variant("no-fast-recheck", FAILS, "only the slow-path recheck (hunk 2)", G1, remove=[FAST_RECHECK]),
        Variant("no-slow-recheck", no_slow_recheck_expect, "only the fast-path recheck (hunk 1)", G1,
                remove=[SLOW_RECHECK]),
    )
