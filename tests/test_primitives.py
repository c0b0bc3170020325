"""Semantics of the kernel primitives, each checked on a scripted schedule."""

from fuzzrmap.kernel.rcu import rcu_read_lock, rcu_read_unlock, synchronize_rcu
from fuzzrmap.kernel.refcount import Atomic
from fuzzrmap.kernel.rmap import AnonVma
from fuzzrmap.kernel.rwsem import RWSem
from fuzzrmap.kernel.slab import SLUB_RCU_DEBUG, Slab, SlotState
from fuzzrmap.sched.api import point

from helpers import run_threads

log = []


def test_writer_preference_queued_writer_blocks_new_readers_and_trylocks():
    sem = RWSem("sem")
    seen = {}

    def reader1(k):
        async def body():
            await sem.down_read("t", "r1 down_read")
            await point("t", "r1 holds")
            await point("t", "r1 up_read")
            sem.up_read()
        return body()

    def writer(k):
        async def body():
            await sem.down_write("t", "w down_write")  # queues behind reader1
            await point("t", "w holds")
            sem.up_write()
        return body()

    def reader2(k):
        async def body():
            await point("t", "r2 trylock")
            seen["trylock_with_writer_queued"] = sem.down_read_trylock()
            seen["is_locked"] = sem.is_locked()
            await sem.down_read("t", "r2 down_read")  # must queue behind the writer
            seen["order"] = list(log)
            sem.up_read()
        return body()

    # r1 takes it, w queues, r2 tries, r2 queues, r1 releases -> w, then r2.
    execution, _ = run_threads([reader1, writer, reader2], order=[0, 0, 1, 1, 2, 2, 2, 0, 0, 1, 1, 2, 2])
    assert execution.failure is None, execution.failure
    assert seen["trylock_with_writer_queued"] is False
    assert seen["is_locked"] is True
    labels = [s.label for s in execution.steps]
    assert labels.index("w down_write [wakes holding it]") < labels.index("r2 down_read [wakes holding it]")


def _reader(sem, name, log):
    def make(k):
        async def body():
            await sem.down_read(name, f"{name} down_read")
            log.append(name)
            await point(name, f"{name} up_read")
            sem.up_read()
        return body()
    return make


def _writer(sem, name, log):
    def make(k):
        async def body():
            await sem.down_write(name, f"{name} down_write")
            log.append(name)
            await point(name, f"{name} up_write")
            sem.up_write()
        return body()
    return make


def test_wakeup_grants_every_queued_reader_even_behind_a_writer():
    # rwsem_mark_wake(): phase-fair, all queued readers are granted, writers skipped.
    sem = RWSem("sem")
    log, granted = [], []

    def writer(k):
        async def body():
            await sem.down_write("w", "w down_write")
            await point("w", "w up_write")
            sem.up_write()
            granted.append(sorted(t.comm for t in sem.holders))
        return body()

    legs = [("t0", "w up_write"), ("t1", "r1 down_read [wakes"), ("t2", "w2 down_write [wakes"),
            ("t3", "r3 down_read [wakes"), ("t0", None)]
    execution, _ = run_threads([writer, _reader(sem, "r1", log), _writer(sem, "w2", log), _reader(sem, "r3", log)],
                               legs=legs)
    assert execution.failure is None, execution.failure
    assert granted == [["t1", "t3"]], "both queued readers hold it, the writer between them still waits"


def test_reader_steals_the_lock_before_a_woken_writer_runs():
    # rwsem_down_read_slowpath(): "Reader optimistic lock stealing" - the lock is
    # free but a writer is queued (woken, not yet run): a new reader takes it.
    sem = RWSem("sem")
    log = []
    legs = [("t0", "r0 up_read"), ("t1", "w1 down_write [wakes"), ("t0", None), ("t2", None), ("t1", None)]
    execution, _ = run_threads([_reader(sem, "r0", log), _writer(sem, "w1", log), _reader(sem, "r2", log)],
                               legs=legs)
    assert execution.failure is None, execution.failure
    assert log == ["r0", "r2", "w1"]
    assert not any("[rwsem_down_read_slowpath: queue]" in s.label for s in execution.steps), "r2 did not queue"


def test_writer_steals_from_a_queued_writer_and_wakeup_does_not_hand_it_over():
    sem = RWSem("sem")
    log = []
    legs = [("t0", "w0 up_write"), ("t1", "w1 down_write [wakes"), ("t0", None), ("t2", None), ("t1", None)]
    execution, _ = run_threads([_writer(sem, "w0", log), _writer(sem, "w1", log), _writer(sem, "w2", log)],
                               legs=legs)
    assert execution.failure is None, execution.failure
    assert log == ["w0", "w2", "w1"], "w2 spun and took the lock the queued w1 had been woken for"


def test_a_reader_in_transit_fails_write_trylocks_and_counts_as_locked():
    # down_read() adds its bias before it looks: until its slow path queues or
    # takes the lock, the count is not zero.
    sem = RWSem("sem")
    seen = {}

    def writer(k):
        async def body():
            await sem.down_write("w", "w down_write")
            await point("w", "w up_write")
            sem.up_write()
            seen["trylock"] = sem.down_write_trylock()
            seen["is_locked"] = sem.is_locked()
        return body()

    legs = [("t0", "w up_write"), ("t1", "r down_read [rwsem_down_read_slowpath"), ("t0", None), ("t1", None)]
    execution, _ = run_threads([writer, _reader(sem, "r", [])], legs=legs)
    assert execution.failure is None, execution.failure
    assert seen == {"trylock": False, "is_locked": True}


def test_up_read_by_a_non_holder_runs_on_and_the_next_writer_waits_for_ever():
    sem = RWSem("sem")
    log = []

    def bad(k):
        async def body():
            await point("bad", "up_read without down")
            sem.up_read()
        return body()

    execution, _ = run_threads([bad, _writer(sem, "w", log)], order=[0, 1, 1])
    assert execution.failure.invariant == "I7" and execution.failure.task == "t0"
    assert [c.invariant for c in execution.consequences] == ["I8"], execution.consequences
    assert "w down_write [wakes holding it]" in execution.consequences[0].message
    assert log == []


def test_up_read_that_takes_another_readers_hold_lets_a_writer_in_beside_it():
    sem = RWSem("sem")
    log = []

    def bad(k):
        async def body():
            await point("bad", "up_read without down")
            sem.up_read()
        return body()

    legs = [("t0", "r up_read"), ("t1", None), ("t2", None)]
    execution, _ = run_threads([_reader(sem, "r", log), bad, _writer(sem, "w", log)], legs=legs)
    assert execution.failure.invariant == "I7" and execution.failure.task == "t1"
    assert execution.consequences[0].invariant == "I7x"
    assert "for write while t0 holds it for read" in execution.consequences[0].message
    assert log == ["r", "w"]


def test_sleeping_inside_rcu_is_I8():
    sem = RWSem("sem")

    def holder(k):
        async def body():
            await sem.down_write("t", "w")
            await point("t", "hold")
            sem.up_write()
        return body()

    def sleeper(k):
        async def body():
            await point("t", "rcu_read_lock")
            rcu_read_lock()
            await sem.down_read("t", "down_read inside rcu")
        return body()

    execution, _ = run_threads([holder, sleeper], order=[0, 1, 1])
    assert execution.failure.invariant == "I8"
    assert "RCU" in execution.failure.message


def test_abba_deadlock_is_detected_with_the_waits_named():
    a, b = RWSem("A"), RWSem("B")

    def t(first, second):
        def make(k):
            async def body():
                await first.down_write("t", f"lock {first.name}")
                await second.down_write("t", f"lock {second.name}")
            return body()
        return make

    execution, _ = run_threads([t(a, b), t(b, a)], order=[0, 1, 0, 1])
    assert execution.failure.invariant == "I8"
    assert "deadlock" in execution.failure.message
    assert "lock B [wakes holding it]" in execution.failure.message


def test_grace_period_waits_for_preexisting_readers_only():
    events = []

    def reader(k):
        async def body():
            await point("t", "enter")
            rcu_read_lock()
            await point("t", "inside")
            events.append("reader leaves")
            rcu_read_unlock()
            await point("t", "enter again")
            rcu_read_lock()
            await point("t", "inside again")
            events.append("reader leaves again")
            rcu_read_unlock()
        return body()

    def updater(k):
        async def body():
            await synchronize_rcu("t")
            events.append("grace period over")
        return body()

    # reader enters; GP starts; reader leaves; reader re-enters; GP ends while reader is inside its new section
    execution, _ = run_threads([reader, updater], order=[0, 1, 0, 0, 1, 0])
    assert execution.failure is None
    assert events.index("reader leaves") < events.index("grace period over") < events.index("reader leaves again")


def freeing(slab, obj):
    """A thread that frees ``obj`` to ``slab`` in one step."""
    def thread(k):
        async def body():
            await point("t", "free")
            slab.kmem_cache_free(obj)
        return body()
    return thread


def test_slab_reuses_the_last_freed_slot_and_releases_only_after_a_grace_period():
    slab = Slab("anon_vma", AnonVma)
    a = slab.kmem_cache_alloc()
    b = slab.kmem_cache_alloc()
    a.refcount.atomic_set(0)

    _, first = run_threads([freeing(slab, a)])
    assert a.slab_state is SlotState.FREE
    c = slab.kmem_cache_alloc()
    assert c is a and c.gen == 2 and c.slab_state is SlotState.LIVE, "freed memory is handed out again at once"
    assert c.rwsem is a.rwsem, "the constructor runs once per slot: the rwsem survives"
    first.rcu.callbacks[0].func()
    assert c.slab_state is SlotState.LIVE, "re-allocated before the grace period ended: the page is in use again"

    _, kernel = run_threads([freeing(slab, c)])
    assert [head.label for head in kernel.rcu.callbacks] == ["rcu_free_slab(anon_vma#1/gen2)"]
    kernel.rcu.callbacks[0].func()
    assert c.slab_state is SlotState.GONE
    assert slab.kmem_cache_alloc() is not c, "a released slot is never reused"
    assert b.slab_state is SlotState.LIVE


def test_the_callback_of_an_earlier_free_leaves_a_later_free_of_the_slot_alone():
    slab = Slab("anon_vma", AnonVma)
    a = slab.kmem_cache_alloc()
    a.refcount.atomic_set(0)

    _, first = run_threads([freeing(slab, a)])
    assert slab.kmem_cache_alloc() is a
    _, second = run_threads([freeing(slab, a)])
    first.rcu.callbacks[0].func()
    assert a.slab_state is SlotState.FREE, "the second free's grace period has not ended"
    second.rcu.callbacks[0].func()
    assert a.slab_state is SlotState.GONE


def test_slub_rcu_debug_reuses_a_freed_slot_only_after_a_grace_period():
    slab = Slab("anon_vma", AnonVma)
    a = slab.kmem_cache_alloc()
    a.refcount.atomic_set(0)
    got = {}

    def freer(k):
        async def body():
            await point("t", "free")
            slab.kmem_cache_free(a)
            got["at once"] = slab.kmem_cache_alloc()
            await point("t", "grace period")
            k.rcu.callbacks[0].func()
            got["gone"] = a.slab_state
            got["after"] = slab.kmem_cache_alloc()
        return body()

    run_threads([freer], hunks=[SLUB_RCU_DEBUG])
    assert got["at once"] is not a, "the free waits for a grace period before the slot can be reused"
    assert got["gone"] is SlotState.GONE, "KASAN poisons it when the grace period ends"
    assert got["after"] is a and a.gen == 2 and a.slab_state is SlotState.LIVE


def test_inc_not_zero_cannot_resurrect_and_double_put_is_I6():
    ref = Atomic("r", 0)
    assert ref.atomic_inc_not_zero() is False and ref.counter == 0

    def putter(k):
        async def body():
            await point("t", "put")
            ref.atomic_dec_and_test()
        return body()

    execution, _ = run_threads([putter])
    assert execution.failure.invariant == "I6"
