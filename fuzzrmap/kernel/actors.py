"""The kernel's concurrent operations as actors over one shared world.

The world is the common state of the UFFDIO_MOVE scenarios (spec section 4):
one mm with two private anonymous VMAs, ``S`` (source, anon_vma#1 its own
root) and ``D`` (destination, registered with the userfaultfd, anon_vma#2
its own root); folio ``F`` is exclusive, mapped once at ``S:0x10000``.  The
two VMAs sit at different pgoffs, so a walker that pairs the destination tree
with the source index misses the mapping (the benign window of spec 4.4).  A
second process (``parent`` with VMA ``P``, anon_vma#3) can fork: its child's
new anon_vma comes from the slab, into a slot that a freed anon_vma left.
Every reader pins F itself (reclaim's isolation, ``page_idle_get_folio()``,
``damon_get_folio()``) and drops the pin when it is done, so operations that
count references (``wp_can_reuse_anon_folio()``, KSM's
``write_protect_page()``) see the readers that are running.  Reclaim takes F
off its LRU (PG_lru) as it isolates it, so two reclaimers never walk F at
once; page_idle's and DAMON's own ``folio_test_lru()`` checks are left out,
so they may start on a folio reclaim has isolated (more orders than the
kernel allows, never fewer).  ksmd is one thread: a composition has at most
one ``ksm``.

Each actor is one kernel operation as a model thread, named and cited; the
catalogue orders them readers first, then movers, teardown and creation,
which is the thread order of every composition.  Some actors are short
sequences of operations (``cow-reuse``: fork, MADV_DONTNEED in the parent,
a write fault in the child), so that what needs a sequence is reachable.

After every operation an actor runs, if no other operation is in flight, the
structural invariants I12-I14 are checked (:mod:`fuzzrmap.check.structure`)
when the variant has the config hunk :data:`BETWEEN_OPS`: every variant of
the catalogue (so every composition) has it; the named flagship scenarios'
variants leave it out, to keep their exhaustive searches at the size they had.
``fuzzrmap actors`` lists the catalogue.
"""

from __future__ import annotations

from typing import Awaitable, List

import attrs

from fuzzrmap.actors import Actor, Catalogue, Param
from fuzzrmap.check import structure, violation
from fuzzrmap.hunks import CONFIG, hunk
from fuzzrmap.kernel.damon import MKOLD, YOUNG, damon_pa_access
from fuzzrmap.kernel.fault import do_mmap_anon, handle_first_fault, handle_write_fault
from fuzzrmap.kernel.environment import KERNEL, KernelWorld
from fuzzrmap.kernel.generations import G0, G1, G2
from fuzzrmap.kernel.ksm import ksm_merge
from fuzzrmap.kernel.madvise import exit_mmap, madvise_dontneed
from fuzzrmap.kernel.memory import MM, PAGE_SIZE, VMA, Folio, linear_page_index, set_pte_at
from fuzzrmap.kernel.mmap import do_munmap, dup_mmap
from fuzzrmap.kernel.page_idle import page_idle_clear_pte_refs, page_idle_get_folio, page_idle_put_folio
from fuzzrmap.kernel.rmap import FAST_RECHECK, SLOW_RECHECK, AnonVma, anon_vma_chain_link, folio_referenced
from fuzzrmap.kernel.task import Kernel
from fuzzrmap.kernel.userfaultfd import UserfaultfdCtx, move_pages
from fuzzrmap.scenario import UNKNOWN, Variant
from fuzzrmap.sched.api import RUNNING, adds, operation, point, reads, wait_until, writes

S_ADDR = 0x10000
D_ADDR = 0x40000
N_ADDR = 0xA0000


#: The I12-I14 check between operations, a debug option like CONFIG_DEBUG_VM.
#: Exhaustive search replays the quiet states it checks that no execution it
#: ran passed through (:func:`fuzzrmap.sched.api.operation_ends`).
BETWEEN_OPS = hunk("debug.between_ops", "check I12-I14 after every operation that leaves no other in flight",
                   kind=CONFIG)


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
    #: every folio of the world, F first; faults append the ones they create
    folios: List[Folio] = attrs.Factory(list)

    def vma(self, name: str) -> VMA:
        return {"S": self.src, "D": self.dst}[name]


def build(k: Kernel) -> UffdWorld:
    mm = MM("mm")
    src = VMA("S", mm, S_ADDR, pages=1, vm_pgoff=0x10)
    dst = VMA("D", mm, D_ADDR, pages=1, vm_pgoff=0x40)
    # one userfaultfd registered over both VMAs, so a move may go either way
    src.vm_userfaultfd_ctx = dst.vm_userfaultfd_ctx = UserfaultfdCtx(mm)
    as_ = new_root_anon_vma(k, src)
    new_root_anon_vma(k, dst)
    folio = Folio("F", mapping=as_, index=linear_page_index(src, S_ADDR))
    set_pte_at(src, S_ADDR, folio)
    folio._mapcount = 1

    parent_mm = MM("parent")
    parent = VMA("P", parent_mm, 0x70000, pages=1, vm_pgoff=0x70)
    new_root_anon_vma(k, parent)
    k.mms.extend([mm, parent_mm])
    return UffdWorld(k, mm, src, dst, folio, parent, [folio])


# -- operations: the check between them -------------------------------------------

async def _operation(w: UffdWorld, call: Awaitable):
    """Run one kernel call as an operation: with :data:`BETWEEN_OPS`, I12-I14 are checked
    when it returns on a quiet world."""
    if not BETWEEN_OPS.on:
        return await call
    return await operation(call, lambda: _check_structure(w))


def _check_structure(w: UffdWorld) -> None:
    broken = structure.between_operations(w.kernel, w.folios)
    if broken is not None:
        raise violation(*broken)


# -- the actors ------------------------------------------------------------------

async def _isolated(w: UffdWorld, func: str, put: str, walk) -> None:
    """Reclaim's reference on F around its walk: ``isolate_lru_folios()`` (mm/vmscan.c,
    v6.8-v6.18) takes F off its LRU under the lru_lock - ``folio_test_lru()``,
    ``folio_try_get()``, ``folio_test_clear_lru()`` - so of two reclaimers only
    one gets it; the putback sets PG_lru again and drops the reference."""
    folio = w.folio
    await point(func, "isolate_lru_folios: folio_test_lru; folio_try_get; folio_test_clear_lru",
                writes(folio.lru_resource) + adds(folio._refcount.name))
    if not folio.lru or not folio._refcount.atomic_inc_not_zero():
        return
    folio.lru = False
    await walk()
    await point(func, f"{put}: folio_set_lru; folio_put", writes(folio.lru_resource) + adds(folio._refcount.name))
    folio.lru = True
    folio._refcount.atomic_dec_and_test()


async def referenced(w: UffdWorld) -> None:
    """shrink_active_list() ages an anon folio it isolated, without its lock."""
    async def age():
        await _operation(w, folio_referenced(w.folio, is_locked=False))
    await _isolated(w, "shrink_active_list", "move_folios_to_lru", age)


async def referenced_locked(w: UffdWorld) -> None:
    """shrink_folio_list() checks the references of a folio it isolated and locked."""
    async def check():
        fn = "shrink_folio_list"
        await point(fn, "folio_trylock(folio)", w.folio.lock._fp)
        if not w.folio.lock.trylock():
            return
        await _operation(w, folio_referenced(w.folio, is_locked=True))
        await point(fn, "folio_unlock(folio)", w.folio.lock._fp)
        w.folio.lock.unlock()
    await _isolated(w, "shrink_folio_list", "folio_putback_lru", check)


async def page_idle(w: UffdWorld) -> None:
    async def walk():
        if await page_idle_get_folio(w.folio):
            await page_idle_clear_pte_refs(w.folio)
            await page_idle_put_folio(w.folio)
    await _operation(w, walk())


async def damon(w: UffdWorld, op: str) -> None:
    await _operation(w, damon_pa_access(w.folio, op))


async def uffd_move(w: UffdWorld, src: str) -> None:
    """UFFDIO_MOVE of the page at the start of ``src`` to the start of the other VMA."""
    src_vma = w.vma(src)
    dst_vma = w.dst if src_vma is w.src else w.src
    await _operation(w, move_pages(dst_vma.vm_userfaultfd_ctx, dst_vma.vm_start, src_vma.vm_start, PAGE_SIZE))


async def cow_reuse(w: UffdWorld) -> None:
    """fork of S's mm, MADV_DONTNEED of S in the parent, a write fault on the child's copy.

    The child's VMA has its own anon_vma under S's root; F, no longer
    exclusive after fork, is left with one mapping and one reference, so
    ``do_wp_page()`` re-uses it and ``folio_move_anon_rmap()`` moves it
    within the root.
    """
    k = w.kernel
    child_mm = MM("cow")
    child = VMA("Sc", child_mm, w.src.vm_start, pages=1, vm_pgoff=w.src.vm_pgoff)
    k.mms.append(child_mm)
    await _operation(w, dup_mmap(child, w.src))
    await _operation(w, madvise_dontneed(w.mm, w.src))
    await _operation(w, handle_write_fault(child_mm, child, child.vm_start, "Fc", w.folios))


async def munmap(w: UffdWorld, vma: str) -> None:
    await _operation(w, do_munmap(w.mm, w.vma(vma)))


async def madv_dontneed(w: UffdWorld, vma: str) -> None:
    await _operation(w, madvise_dontneed(w.mm, w.vma(vma)))


#: roles of the actors that act on the mm as one of its users (tasks of the mm,
#: or ``mmget_not_zero()`` callers: UFFDIO_MOVE, ksmd)
MM_USERS = ("mover", "cow", "munmap", "dontneed", "fault", "ksmd")


async def exit_mm(w: UffdWorld) -> None:
    """The last user of the mm drops it: ``mmput()`` -> ``exit_mmap()``.

    Every other user of the mm has finished first (``mm_users`` reaches 0
    only then; later UFFDIO_MOVE calls fail ``mmget_not_zero()`` and ksmd
    skips an exiting mm); rmap readers of F are not users and run alongside.
    """
    users = [t for t in RUNNING.sched.tasks if t.role.rstrip("0123456789") in MM_USERS]
    await wait_until("mmput", "atomic_dec_and_test(&mm->mm_users): the last user",
                     lambda: not any(t.alive for t in users), reads(*(t.exit_resource for t in users)))
    await _operation(w, exit_mmap(w.mm))


async def fork(w: UffdWorld) -> None:
    """fork() of the parent: the child's mm and VMA C are new, nobody else sees them yet."""
    k = w.kernel
    n = sum(1 for mm in k.mms if mm.name.startswith("child"))
    suffix = str(n + 1) if n else ""
    child_mm = MM(f"child{suffix}")
    child = VMA(f"C{suffix}", child_mm, w.parent.vm_start, pages=1, vm_pgoff=w.parent.vm_pgoff)
    k.mms.append(child_mm)
    await _operation(w, dup_mmap(child, w.parent))


async def fault(w: UffdWorld) -> None:
    """mmap() of a fresh anonymous VMA N in the mm, then its first fault (a new root anon_vma)."""
    n = sum(1 for v in w.mm.vmas if v.name.startswith("N"))
    name = f"N{n + 1 if n else ''}"
    vma = await _operation(w, do_mmap_anon(w.mm, name, N_ADDR + n * 0x10000, (N_ADDR >> 12) + n * 0x10))
    await _operation(w, handle_first_fault(w.mm, vma, vma.vm_start, f"{name}0", w.folios))


async def ksm(w: UffdWorld) -> None:
    """ksmd merges F at S (F becomes the KSM page of a pair whose twin is out of scope)."""
    await _operation(w, ksm_merge(w.mm, w.src, S_ADDR, w.folio))


VMA_PARAM = ("S", "D")

ACTORS = (
    # readers and walkers
    Actor("referenced", "reader", "folio_referenced() of F, unlocked and try_lock (reclaim's active list)",
          "mm/vmscan.c shrink_active_list() -> mm/rmap.c folio_referenced(folio, 0), v6.8-v6.18",
          referenced, reads_rmap=True),
    Actor("page-idle", "reader", "page_idle_clear_pte_refs() of F, unlocked and blocking",
          "mm/page_idle.c page_idle_bitmap_write() -> page_idle_clear_pte_refs(), v6.8-v6.18",
          page_idle, reads_rmap=True),
    Actor("damon", "reader", "DAMON paddr access check of F (mkold or young), unlocked and blocking",
          "mm/damon/paddr.c damon_pa_mkold()/damon_pa_young() -> mm/damon/ops-common.c "
          "damon_folio_mkold()/damon_folio_young(), v6.8-v6.18",
          damon, params=[Param("op", (MKOLD, YOUNG), "clear the accessed bits, or test them")], reads_rmap=True),
    Actor("referenced-locked", "walker", "folio_referenced() of F with the folio lock held (locked walker)",
          "mm/vmscan.c shrink_folio_list() -> folio_check_references() -> mm/rmap.c folio_referenced(folio, 1), "
          "v6.8-v6.18", referenced_locked, reads_rmap=True),
    # movers
    Actor("uffd-move", "mover", "UFFDIO_MOVE of one page from VMA src to the other VMA",
          "mm/userfaultfd.c move_pages() -> move_pages_pte() -> move_present_pte()",
          uffd_move, params=[Param("src", VMA_PARAM, "the VMA the page moves from")]),
    Actor("cow-reuse", "cow", "fork of S's mm, MADV_DONTNEED of S, write fault in the child: "
          "do_wp_page() re-uses F and moves it within S's root",
          "kernel/fork.c dup_mmap() -> copy_present_pte(); mm/madvise.c MADV_DONTNEED; mm/memory.c do_wp_page() "
          "-> wp_can_reuse_anon_folio() -> folio_move_anon_rmap(), v6.8-v6.18", cow_reuse),
    # teardown
    Actor("munmap", "munmap", "munmap of one VMA of the mm (zap, then unlink_anon_vmas)",
          "mm/vma.c do_vmi_munmap()", munmap, params=[Param("vma", VMA_PARAM, "the VMA unmapped")]),
    Actor("madv-dontneed", "dontneed", "MADV_DONTNEED of one VMA (zap under mmap_read_lock, no unlink)",
          "mm/madvise.c madvise_dontneed_single_vma() -> mm/memory.c zap_page_range_single(), v6.8-v6.18",
          madv_dontneed, params=[Param("vma", VMA_PARAM, "the VMA zapped")]),
    Actor("exit-mmap", "exit", "exit_mmap() of the mm of S and D (zap all, then unlink and remove all)",
          "mm/mmap.c exit_mmap(), v6.8-v6.18", exit_mm),
    # creation and re-use
    Actor("fork", "fork", "fork of another process: anon_vma_fork() re-uses a freed slot",
          "kernel/fork.c dup_mmap() -> mm/rmap.c anon_vma_fork()", fork),
    Actor("fault", "fault", "mmap of a fresh VMA, then its first fault: __anon_vma_prepare() allocates a root",
          "mm/mmap.c do_mmap(); mm/memory.c do_anonymous_page() -> vmf_anon_prepare() -> "
          "mm/rmap.c __anon_vma_prepare(), v6.8-v6.18", fault),
    Actor("ksm", "ksmd", "KSM merges F: folio->mapping becomes a KSM stable node",
          "mm/ksm.c cmp_and_merge_page() -> try_to_merge_with_ksm_page() -> try_to_merge_one_page() -> "
          "write_protect_page(); stable_tree_insert(), v6.8-v6.18", ksm, single=True),
)


def _world(w: UffdWorld, threads) -> KernelWorld:
    return KernelWorld(threads=threads, folios=w.folios)


_CHECKED = [BETWEEN_OPS]
VARIANTS = (
    Variant("fixed", UNKNOWN, "G1 as merged: both folio->mapping rechecks", G1, add=_CHECKED),
    Variant("unpatched", UNKNOWN, "G0 reader (before the seed patch) against the UFFDIO_MOVE mover", G0,
            add=_CHECKED),
    Variant("no-fast-recheck", UNKNOWN, "only the slow-path recheck (hunk 2)", G1, add=_CHECKED,
            remove=[FAST_RECHECK]),
    Variant("no-slow-recheck", UNKNOWN, "only the fast-path recheck (hunk 1)", G1, add=_CHECKED,
            remove=[SLOW_RECHECK]),
    Variant("g2", UNKNOWN, "G2: every rmap walker holds the folio lock, no rechecks", G2, add=_CHECKED),
)

CATALOGUE = Catalogue("kernel", "kernel operations that race with an unlocked rmap walk of an anon folio",
                      ACTORS, build, _world, VARIANTS, environment=KERNEL, module=__name__,
                      quiet_checks=[BETWEEN_OPS])
