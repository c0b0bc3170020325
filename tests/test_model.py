"""The breaking interleavings of spec section 4, steered step by step.

Each test drives a flagship scenario through the schedule the spec describes
and checks what the unpatched reader does wrong and that the patched one
retries and returns the destination anon_vma instead.
"""

from fuzzrmap import scenario as registry
from fuzzrmap.kernel.memory import MM, VMA, Folio, folio_mapped, set_pte_at, zap_pte_range
from fuzzrmap.kernel.rcu import RCU
from fuzzrmap.kernel.rmap import (
    AnonVma, RmapWalkControl, anon_vma_alloc, anon_vma_chain_link, anon_vma_interval_tree_next, anon_vma_lock_read,
    anon_vma_unlock_read, put_anon_vma, rmap_walk_anon,
)
from fuzzrmap.kernel.slab import Slab
from fuzzrmap.kernel.task import Kernel
from fuzzrmap.kernel.mmap import do_munmap, vma_lookup
from fuzzrmap.kernel.memory import PAGE_SIZE
from fuzzrmap.kernel.userfaultfd import MOVE_V6_8, move_pages
from fuzzrmap.kernel.actors import D_ADDR, S_ADDR, build
from fuzzrmap import preemption
from fuzzrmap.kernel.environment import KERNEL
from fuzzrmap.sched.api import RUNNING, TRACKED, point

from helpers import run_plan, run_threads

REFERENCED = registry.get("uffd-move-vs-referenced")
PAGE_IDLE = registry.get("uffd-move-vs-page-idle")

# 4.1: the reader loads folio->mapping and anon_vma->root, stalls; the move,
# the munmap of S (which frees anon_vma#1) and a fork (which re-allocates
# its slot with another root) all complete; then the reader trylocks.
FAST_PATH_RACE = [("reader", "L4"), ("mover", None), ("munmap", None), ("fork", None), ("reader", None)]
FAST_PATH_RACE_NO_REUSE = [("reader", "L4"), ("mover", None), ("munmap", None), ("reader", None)]
# 4.2: the mover holds the source root for write, so the reader pins the
# anon_vma and sleeps in down_read; it wakes after the move.
SLOW_PATH_RACE = [("reader", "L4"), ("mover", "M7a"), ("reader", None), ("mover", None), ("reader", None)]


def test_unpatched_fast_path_returns_a_reused_anon_vma_whose_root_changed():
    execution, _ = run_plan(REFERENCED, REFERENCED.variant("unpatched"), FAST_PATH_RACE)
    f = execution.failure
    assert (f.invariant, f.task) == ("I1a", "reader"), f
    assert "anon_vma#1/gen2" in f.message and "root is now anon_vma#3" in f.message


def test_unpatched_fast_path_returns_a_freed_anon_vma():
    execution, _ = run_plan(REFERENCED, REFERENCED.variant("unpatched"), FAST_PATH_RACE_NO_REUSE)
    f = execution.failure
    assert (f.invariant, f.task) == ("I1b", "reader"), f
    assert "free" in f.message


def test_fixed_fast_path_retries_and_walks_the_destination_tree():
    execution, sched = run_plan(REFERENCED, REFERENCED.variant("fixed"), FAST_PATH_RACE)
    assert execution.failure is None, execution.failure
    labels = [s.label for s in execution.steps if execution.roles[s.task] == "reader"]
    assert any(label.startswith("L5 up_read") for label in labels), "the recheck must send the reader back to retry"
    assert any("anon_vma#2" in label and label.startswith("W3") for label in labels), "the walk must use D's tree"
    world = sched.world.world
    assert world.folios[0].mapping.name == "anon_vma#2"


def test_unpatched_slow_path_returns_the_old_tree():
    execution, _ = run_plan(PAGE_IDLE, PAGE_IDLE.variant("unpatched"), SLOW_PATH_RACE)
    f = execution.failure
    assert (f.invariant, f.task) == ("I1c", "reader"), f
    assert "holds anon_vma#1.rwsem but folio->mapping is anon_vma#2" in f.message


def test_no_slow_recheck_breaks_the_slow_path_and_fixed_does_not():
    assert run_plan(PAGE_IDLE, PAGE_IDLE.variant("no-slow-recheck"), SLOW_PATH_RACE)[0].failure.invariant == "I1c"
    execution, _ = run_plan(PAGE_IDLE, PAGE_IDLE.variant("fixed"), SLOW_PATH_RACE)
    assert execution.failure is None, execution.failure
    labels = [s.label for s in execution.steps]
    assert any(label.startswith("S6 anon_vma_unlock_read") for label in labels)


def test_referenced_gives_up_on_contention_instead_of_sleeping():
    execution, _ = run_plan(REFERENCED, REFERENCED.variant("no-slow-recheck"), SLOW_PATH_RACE)
    assert execution.failure is None
    assert any(s.label.startswith("S1 trylock failed") for s in execution.steps)


def test_torn_mapping_index_window_is_an_accuracy_event_not_a_failure():
    # The reader reads folio->mapping after M7e (anon_vma#2) but folio->index before M7f.
    legs = [("mover", "M7f"), ("reader", "L0"), ("reader", "W3"), ("mover", None), ("reader", None)]
    legs = [("mover", "WRITE_ONCE")] + legs
    execution, _ = run_plan(PAGE_IDLE, PAGE_IDLE.variant("fixed"), legs)
    assert execution.failure is None, execution.failure
    assert [(e.invariant, e.task) for e in execution.events] == [("I10c", "reader")]
    assert "missed D" in execution.events[0].message


# -- fidelity of single kernel functions, on hand-built states ----------------

def test_anon_vma_alloc_stores_one_by_one_so_a_stale_pin_sees_the_old_root():
    # anon_vma_alloc() (v6.8..v6.18): refcount is set before root; a stale
    # reader's atomic_inc_not_zero() in between pins an object whose root is
    # still the one its previous life had.
    seen = {}
    objs = {}

    def freer(k):
        root = k.anon_vma_cachep.kmem_cache_alloc()
        child = k.anon_vma_cachep.kmem_cache_alloc()
        root.refcount.atomic_set(2)
        child.refcount.atomic_set(1)
        child.root = child.parent = root
        objs.update(root=root, child=child)

        async def body():
            await put_anon_vma(child, "t0", "last put")
        return body()

    def allocator(k):
        async def body():
            objs["new"] = await anon_vma_alloc("t1")
        return body()

    def stale_reader(k):
        async def body():
            child = objs["child"]
            await point("t2", "atomic_inc_not_zero(refcount)")
            seen["pinned"] = child.refcount.atomic_inc_not_zero()
            await point("t2", "READ_ONCE(anon_vma->root)")
            seen["root"] = child.root
        return body()

    legs = [("t0", None), ("t1", "anon_vma#2/gen2->num_children"), ("t2", None), ("t1", None)]
    execution, _ = run_threads([freer, allocator, stale_reader], legs=legs)
    assert execution.failure is None, execution.failure
    assert objs["new"] is objs["child"], "the slab handed the freed slot out again"
    assert seen == {"pinned": True, "root": objs["root"]}
    assert objs["new"].root is objs["new"], "allocation finishes by pointing root at itself"


def test_anon_vma_alloc_does_not_reset_the_tree_the_constructor_set():
    def allocator(k):
        av = k.anon_vma_cachep.kmem_cache_alloc()
        tree = av.rb_root

        async def body():
            av.refcount.atomic_set(0)
            await point("t0", "free")
            k.anon_vma_cachep.kmem_cache_free(av)
            again = await anon_vma_alloc("t0")
            assert again is av and again.rb_root is tree
        return body()

    execution, _ = run_threads([allocator])
    assert execution.failure is None, execution.failure
    assert not any("rb_root" in res for s in execution.steps for res, _ in s.footprint)


def test_zap_clears_the_pte_before_it_drops_the_mapcount():
    # zap_present_folio_ptes(): clear_full_ptes(), then folio_remove_rmap_ptes().
    seen = {}
    world = {}

    def zapper(k):
        mm = MM("mm")
        vma = VMA("V", mm, 0x10000, pages=1, vm_pgoff=0x10)
        folio = Folio("F", mapping=None, index=0x10)
        set_pte_at(vma, 0x10000, folio)
        folio._mapcount = 1
        world.update(vma=vma, folio=folio)

        async def body():
            await zap_pte_range(vma)
        return body()

    def looker(k):
        async def body():
            await point("t1", "folio_mapped(folio); pte")
            seen["mapped"] = folio_mapped(world["folio"])
            seen["pte"] = world["vma"].ptes.get(0x10000)
        return body()

    execution, _ = run_threads([zapper, looker], legs=[("t0", "Z2"), ("t1", None), ("t0", None)])
    assert execution.failure is None, execution.failure
    assert seen == {"mapped": True, "pte": None}
    assert not folio_mapped(world["folio"])


def test_rmap_walk_reads_the_interval_tree_node_by_node():
    # rmap_walk_anon(): anon_vma_interval_tree_foreach() looks each next node up
    # in the tree as it is then; a chain linked behind the walk's position (by a
    # writer the walker's lock does not exclude) is still visited.
    visited, world = [], {}

    def walker(k):
        mm = MM("mm")
        av = k.anon_vma_cachep.kmem_cache_alloc()
        av.refcount.atomic_set(1)
        v1 = VMA("V1", mm, 0x10000, pages=1, vm_pgoff=0x10)
        v2 = VMA("V2", mm, 0x90000, pages=1, vm_pgoff=0x10)
        anon_vma_chain_link(v1, av)
        folio = Folio("F", mapping=av, index=0x10)
        world.update(av=av, v2=v2)

        async def lock(folio, rwc):
            await av.rwsem.down_read("t0", "anon_lock: down_read")
            return av

        async def rmap_one(folio, vma, address, arg):
            await point("t0", f"rmap_one {vma.name}")
            visited.append(vma.name)
            return True

        async def body():
            await rmap_walk_anon(folio, RmapWalkControl(rmap_one=rmap_one, anon_lock=lock))
        return body()

    def linker(k):
        async def body():
            await point("t1", "anon_vma_chain_link(V2)")
            anon_vma_chain_link(world["v2"], world["av"])
        return body()

    legs = [("t0", "rmap_one V1"), ("t0", "W3"), ("t1", None), ("t0", None)]
    execution, _ = run_threads([walker, linker], legs=legs)
    assert execution.failure is None, execution.failure
    assert visited == ["V1", "V2"]


def test_the_walk_to_the_next_node_is_a_voluntary_preemption_point():
    # rmap_walk_anon(): cond_resched() after each rmap_one(), so a switch at the
    # step to the next node needs no preemptible kernel; the first node's step
    # has no cond_resched() before it.
    needs = []

    def walker(k):
        mm = MM("mm")
        av = k.anon_vma_cachep.kmem_cache_alloc()
        av.refcount.atomic_set(1)
        for name, start in (("V1", 0x10000), ("V2", 0x90000)):
            anon_vma_chain_link(VMA(name, mm, start, pages=1, vm_pgoff=0x10), av)
        folio = Folio("F", mapping=av, index=0x10)

        async def lock(folio, rwc):
            await av.rwsem.down_read("t0", "anon_lock: down_read")
            return av

        async def rmap_one(folio, vma, address, arg):
            await point("t0", f"rmap_one {vma.name}", TRACKED)
            return True

        async def body():
            await rmap_walk_anon(folio, RmapWalkControl(rmap_one=rmap_one, anon_lock=lock))
        return body()

    def observer(k):
        async def body():
            await point("t1", "look at t0", TRACKED)
            walker_task = RUNNING.sched.tasks[0]
            assert walker_task.op.label.startswith("W3 ")
            needs.append(KERNEL.preemption_context(walker_task.state, walker_task.op).needs)
        return body()

    for legs in ([("t0", "W3"), ("t1", None), ("t0", None)],
                 [("t0", "rmap_one V1"), ("t0", "W3"), ("t1", None), ("t0", None)]):
        execution, _ = run_threads([walker, observer], legs=legs)
        assert execution.failure is None, execution.failure
    assert needs == [preemption.FULL, preemption.NONE], needs


def test_chains_with_one_start_are_walked_in_the_order_they_were_linked():
    # interval_tree_insert() puts an equal start to the right: the in-order walk
    # visits equal starts as they were linked (a fork's child VMA at the parent's
    # address and pgoff comes after the parent); the walk order is the kernel's,
    # and the same in every run.
    k = Kernel(anon_vma_cachep=Slab("anon_vma", AnonVma), rcu=RCU())
    av = k.anon_vma_cachep.kmem_cache_alloc()
    vmas = [VMA(name, MM(f"mm{name}"), start, pages=1, vm_pgoff=0x10)
            for name, start in (("C", 0x30000), ("A", 0x10000), ("B", 0x20000))]
    for vma in vmas:
        anon_vma_chain_link(vma, av)
    order, avc = [], None
    while (avc := anon_vma_interval_tree_next(av, 0x10, avc)) is not None:
        order.append(avc.vma.name)
    assert order == ["C", "A", "B"]


def _uffd_world(k, into):
    into["w"] = build(k)
    return into["w"]


def test_munmap_downgrades_mmap_lock_so_a_same_mm_reader_overlaps_the_teardown():
    # vms_complete_munmap_vmas() (v6.11+; do_vmi_align_munmap() before):
    # mmap_write_downgrade() before unmap_region().
    world, seen = {}, {}

    def munmap(k):
        w = _uffd_world(k, world)

        async def body():
            await do_munmap(w.mm, w.src)
        return body()

    def fault(k):
        async def body():
            w = world["w"]
            await w.mm.mmap_lock.down_read("t1", "mmap_read_lock(mm)")
            await point("t1", "look at S")
            seen["S still mapped"] = bool(w.src.ptes)
            seen["S found"] = vma_lookup(w.mm, S_ADDR) is not None
            await point("t1", "mmap_read_unlock(mm)")
            w.mm.mmap_lock.up_read()
        return body()

    execution, _ = run_threads([munmap, fault], legs=[("t0", "Z1"), ("t1", None), ("t0", None)])
    assert execution.failure is None, execution.failure
    assert seen == {"S still mapped": True, "S found": False}


def _mover_vs_munmap(hunks):
    world, seen = {}, {}

    def mover(k):
        w = _uffd_world(k, world)

        async def body():
            await move_pages(w.dst.vm_userfaultfd_ctx, D_ADDR, S_ADDR, PAGE_SIZE)
        return body()

    def munmap(k):
        async def body():
            w = world["w"]
            await do_munmap(w.mm, w.src)
        return body()

    def observer(k):
        async def body():
            await point("t2", "who holds mmap_lock")
            seen["munmap holds mmap_lock"] = world["w"].mm.mmap_lock.writer is not None
        return body()

    execution, _ = run_threads([mover, munmap, observer], hunks=hunks,
                               legs=[("t0", "M7a"), ("t1", None), ("t2", None), ("t0", None), ("t1", None)])
    return execution, seen, world["w"]


def test_uffdio_move_holds_per_vma_locks_so_munmap_waits_at_vma_start_write():
    # v6.10+ uffd_move_lock(): munmap of S takes mmap_lock while the move runs
    # and waits for the mover's read lock on S in vma_start_write().
    execution, seen, w = _mover_vs_munmap(hunks=[])
    assert execution.failure is None, execution.failure
    assert seen == {"munmap holds mmap_lock": True}
    waits = [s.label for s in execution.steps if execution.roles[s.task] == "t1"]
    assert "vma_start_write(S): down_write(vm_lock) [wakes holding it]" in waits
    assert w.folio.mapping is w.dst.anon_vma, "the move completed before S was torn down"


def test_uffdio_move_v6_8_holds_mmap_lock_for_the_whole_move():
    execution, seen, w = _mover_vs_munmap(hunks=[MOVE_V6_8])
    assert execution.failure is None, execution.failure
    assert seen == {"munmap holds mmap_lock": False}
    assert w.folio.mapping is w.dst.anon_vma


def test_uffdio_move_trylocks_the_folio_under_the_src_ptl_since_v6_14():
    def labels_of(hunks):
        world = {}

        def mover(k):
            w = _uffd_world(k, world)

            async def body():
                await move_pages(w.dst.vm_userfaultfd_ctx, D_ADDR, S_ADDR, PAGE_SIZE)
            return body()

        execution, _ = run_threads([mover], hunks=hunks)
        assert execution.failure is None, execution.failure
        return [s.label for s in execution.steps]

    new, old = labels_of([]), labels_of([MOVE_V6_8])
    assert new.index("M4 locked = folio_trylock(folio)") < new.index("M4 folio_get(folio); spin_unlock(src_ptl)")
    assert old.index("M4 folio_get(folio); spin_unlock(src_ptl)") < old.index("M4 folio_trylock(src_folio)")


def test_a_step_label_names_what_the_step_acted_on_when_it_ran():
    # anon_vma_unlock_read() reads anon_vma->root when it runs; the root changed
    # while the thread was parked, and the label says which rwsem it released.
    objs = {}

    def unlocker(k):
        for name in ("r1", "r2", "av"):
            objs[name] = k.anon_vma_cachep.kmem_cache_alloc()
            objs[name].refcount.atomic_set(1)
        objs["av"].root = objs["r1"]

        async def body():
            await anon_vma_lock_read(objs["av"], "t0", "lock")
            await anon_vma_unlock_read(objs["av"], "t0", "unlock")
        return body()

    def rerooter(k):
        async def body():
            await point("t1", "anon_vma->root = r2")
            objs["av"].root = objs["r2"]
        return body()

    execution, _ = run_threads([unlocker, rerooter], legs=[("t0", "unlock"), ("t1", None), ("t0", None)])
    unlock = [s.label for s in execution.steps if s.label.startswith("unlock")]
    assert unlock == ["unlock(anon_vma#3): up_read(anon_vma#2->rwsem)"]
    assert execution.failure.invariant == "I7" and "up_read(anon_vma#2.rwsem)" in execution.failure.message
