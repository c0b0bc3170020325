"""The reduced search against the naive one: same final states, same violations.

Covers the tiny scenarios, programs written without footprints (a step that
declares nothing conflicts with everything), mutexes written as one blocking
step, the scaling families at small N, and random small programs over shared
cells, spinlocks and waits.
"""

import random

import pytest

from fuzzrmap import engine
from fuzzrmap.check import SAFETY, violation
from fuzzrmap.kernel.locking import spinlock
from fuzzrmap.kernel.rcu import rcu_read_lock, rcu_read_unlock
from fuzzrmap.kernel.rmap import put_anon_vma
from fuzzrmap.kernel.rwsem import RWSem
from fuzzrmap.check.invariants import anon_vma_access
from fuzzrmap.kernel.slab import SLAB_FREELIST, SLAB_SLOTS, SlotState, slot_resource
from fuzzrmap.kernel.refcount import Atomic
from fuzzrmap.sched.api import (CREATE, TRACKED, FootprintError, adds, operation, point, reads, touch,
                                wait_until, writes)
from fuzzrmap.sched.strategies.dpor import conflicting

import tiny


def outcomes(scenario, reduction, check_footprints=True):
    seen = set()

    def record(execution, sched):
        world = sched.world.world
        seen.add((world.final_state(), execution.failure.invariant if execution.failure else None))

    result = engine.explore(scenario, scenario.variants[0], reduction=reduction, stop_on_failure=False,
                            on_execution=record, check_footprints=check_footprints)
    assert result.complete
    return result, seen


def same_as_naive(scenario):
    naive, naive_seen = outcomes(scenario, reduction=False)
    reduced, reduced_seen = outcomes(scenario, reduction=True)
    assert reduced_seen == naive_seen
    return naive, reduced, naive_seen


NATURAL = [tiny.unlocked_counter(), tiny.one_step_mutex("abba"), tiny.one_step_mutex("split"),
           tiny.one_step_mutex("ok")]


@pytest.mark.parametrize("scenario", NATURAL, ids=lambda s: s.name)
def test_programs_without_footprints_are_searched_soundly(scenario):
    same_as_naive(scenario)


@pytest.mark.parametrize("scenario,invariant", [(tiny.unlocked_counter(), "TINY"),
                                                (tiny.one_step_mutex("abba"), "I8"),
                                                (tiny.one_step_mutex("split"), "TINY")],
                         ids=lambda x: getattr(x, "name", x))
def test_an_undeclared_race_is_never_verified(scenario, invariant):
    result = engine.explore(scenario, scenario.variants[0])
    assert result.failure is not None and result.failure.failure.invariant == invariant


def test_a_correct_one_step_mutex_is_verified():
    scenario = tiny.one_step_mutex("ok")
    result = engine.explore(scenario, scenario.variants[0])
    assert result.complete and result.failure is None


@pytest.mark.parametrize("family", sorted(tiny.FAMILIES))
@pytest.mark.parametrize("n", [2, 3])
def test_scaling_families_match_naive(family, n):
    naive, reduced, seen = same_as_naive(tiny.FAMILIES[family](n))
    assert reduced.executions <= naive.executions


def test_the_disjoint_family_needs_one_execution():
    result = engine.explore(tiny.disjoint(5), tiny.ONE[0])
    assert (result.executions, result.pruned) == (1, 0)


def test_the_lock_family_runs_each_order_of_the_lock_once():
    _, seen = outcomes(tiny.one_lock(4), reduction=True)
    result = engine.explore(tiny.one_lock(4), tiny.ONE[0])
    assert len(seen) == 24 and result.executions == 24


# -- random small programs ----------------------------------------------------------------

def random_program(seed):
    """2-3 threads of 1-3 operations over two cells, a spinlock and waits on a flag (or a cell),
    tracked or declared."""
    rng = random.Random(seed)
    n_threads = rng.choice([2, 2, 3])
    plans = []
    for _ in range(n_threads):
        ops = []
        for _ in range(rng.randint(1, 3 if n_threads == 2 else 2)):
            ops.append(rng.choice(["read", "write", "locked-incr", "set-flag", "wait-flag", "declared-read",
                                   "declared-wait-flag", "declared-wait-either"]))
        plans.append(ops)

    def threads(k):
        cells = [tiny.Cell("x0"), tiny.Cell("x1")]
        flag = tiny.Cell("flag")
        lock = spinlock("L")
        log = []

        def body(t, ops):
            async def run():
                for op in ops:
                    c = cells[rng_for(t, op)]
                    if op == "read":
                        await point(f"t{t}", "read", TRACKED)
                        log.append((t, c.value))
                    elif op == "declared-read":
                        await point(f"t{t}", "read", reads(f"{c._shared_name}.value"))
                        log.append((t, c.value))
                    elif op == "write":
                        await point(f"t{t}", "write", TRACKED)
                        c.value = t + 1
                    elif op == "locked-incr":
                        await lock.lock(f"t{t}", "lock")
                        await point(f"t{t}", "incr", TRACKED)
                        c.value += 1
                        await point(f"t{t}", "unlock", TRACKED)
                        lock.unlock()
                    elif op == "set-flag":
                        await point(f"t{t}", "set flag", TRACKED)
                        flag.value = 1
                    elif op == "wait-flag":
                        await wait_until(f"t{t}", "wait flag", lambda: flag.value == 1, TRACKED)
                        log.append((t, -1))
                    elif op == "declared-wait-flag":
                        await wait_until(f"t{t}", "wait flag", lambda: flag.value == 1, reads("flag.value"))
                        log.append((t, -2))
                    else:  # a predicate over two cells, declared
                        await wait_until(f"t{t}", "wait flag or cell", lambda: flag.value == 1 or c.value > 1,
                                         reads("flag.value", f"{c._shared_name}.value"))
                        log.append((t, -3))
            return run

        return ([(f"t{t}", body(t, ops)) for t, ops in enumerate(plans)],
                lambda: (tuple(c.value for c in cells), flag.value, tuple(sorted(log))))

    def rng_for(t, op):
        return (t + len(op)) % 2

    return tiny._program(f"random-{seed}", threads)


@pytest.mark.parametrize("seed", range(60))
def test_random_programs_match_naive(seed):
    same_as_naive(random_program(seed))


# -- footprint checking ---------------------------------------------------------------------

def test_check_footprints_names_the_step_and_the_resource():
    scenario = tiny.liar()
    with pytest.raises(FootprintError, match=r"step 0 \(liar: liar says it only reads x\) writes x.value"):
        engine.explore(scenario, scenario.variants[0], check_footprints=True)
    assert engine.explore(scenario, scenario.variants[0]).complete


def either_flag(declared):
    """A waiter released by either of two flags, logging what it saw of the first one.

    ``declared``: its footprint names both flags; else it is TRACKED and the
    predicate, which short-circuits, reads only the flag that released it.
    """
    def threads(k):
        a, b = tiny.Cell("a"), tiny.Cell("b")
        seen = []

        async def setter(cell):
            await point("set", f"{cell._shared_name} = 1", TRACKED)
            cell.value = 1

        async def waiter():
            await wait_until("w", "wait a or b", lambda: a.value == 1 or b.value == 1,
                             reads("a.value", "b.value") if declared else TRACKED)
            seen.append(a.value)

        return ([("A", lambda: setter(a)), ("w", waiter), ("B", lambda: setter(b))],
                lambda: (tuple(seen), a.value, b.value))

    return tiny._program(f"tiny-either-flag-{'declared' if declared else 'tracked'}", threads)


@pytest.mark.parametrize("declared", [True, False])
def test_a_wait_released_by_either_of_two_steps(declared):
    _, _, seen = same_as_naive(either_flag(declared))
    assert {state[0] for state, _ in seen} == {(0,), (1,)}


def queue_and_consumer(create):
    """Two producers each queue an entry (a write of ``x`` with it); a consumer, after a step of
    its own, waits for the first entry, then reads ``x``.  ``create``: each queueing records that
    it creates its entry (:data:`~fuzzrmap.sched.api.CREATE`), else that it writes it."""
    def threads(k):
        queue, x, seen = [], tiny.Cell("x", 0), []

        def producer(value):
            async def body():
                await point("produce", f"x = {value}; queue it", writes("queue", "x.value"))
                touch(f"entry#{len(queue)}", CREATE if create else True)
                x.value = value
                queue.append(value)
            return body

        async def consumer():
            await point("consume", "a step of its own", writes("own"))
            await wait_until("consume", "wait for entry#0", lambda: len(queue) > 0, reads("entry#0"))
            first = queue[0]
            await point("consume", "read x", reads("x.value"))
            seen.append((first, x.value))

        return ([("one", producer(1)), ("two", producer(2)), ("consumer", consumer)],
                lambda: (tuple(seen), tuple(queue), x.value))

    return tiny._program(f"tiny-queue-{'create' if create else 'write'}", threads)


def test_a_wait_is_never_tried_before_what_creates_its_resource():
    """Declared as a creation, the queue entry the consumer waits for spares the search the
    orders that would run the consumer first and then find its wait disabled: the same states as
    naive, and nothing cut short."""
    found = {}
    for create in (True, False):
        naive, reduced, seen = same_as_naive(queue_and_consumer(create))
        assert {state[0] for state, _ in seen} == {((1, 1),), ((1, 2),), ((2, 2),), ((2, 1),)}
        found[create] = reduced.pruned
    assert found[True] == 0 < found[False]


def nested_rcu():
    """Two RCU readers of a stale object, one with a nested section, while it is freed.

    Only the outermost lock and unlock of a section are visible to grace
    periods, and a grace period's end waits only for the readers in a
    section at its start: the reduced search must still reach every state.
    """
    def threads(k):
        av = k.anon_vma_cachep.kmem_cache_alloc()
        av.refcount.atomic_set(1)
        obj = reads(slot_resource(av.slot))
        seen = {"r1": [], "r2": []}

        def look(who):
            seen[who].append(av.slab_state.value)
            if av.slab_state is SlotState.GONE:
                raise violation("TINY", SAFETY, f"{who} finds the object released")

        async def nested():
            await point("r1", "rcu_read_lock (outer)", ())
            rcu_read_lock()
            await point("r1", "rcu_read_lock (inner); read; rcu_read_unlock (inner)", obj)
            rcu_read_lock()
            look("r1")
            rcu_read_unlock()
            await point("r1", "read; rcu_read_unlock (outer)", obj)
            look("r1")
            rcu_read_unlock()

        async def single():
            await point("r2", "rcu_read_lock; read", obj)
            rcu_read_lock()
            look("r2")
            await point("r2", "rcu_read_unlock", ())
            rcu_read_unlock()

        async def freer():
            await put_anon_vma(av, "freer", "drop last ref")

        return ([("r1", nested), ("r2", single), ("freer", freer)],
                lambda: (tuple(seen["r1"]), tuple(seen["r2"]), av.slab_state.value))

    return tiny._program("tiny-nested-rcu", threads)


def test_nested_rcu_sections_and_grace_periods():
    """Compares the states of the executions that end cleanly and the violations: a failing
    execution stops at its failure, where independent steps of other threads may or may not have run."""
    scenario = nested_rcu()
    naive, reduced = (engine.explore(scenario, scenario.variants[0], reduction=r, stop_on_failure=False,
                                     final_states=True, check_footprints=True) for r in (False, True))
    assert clean(reduced.outcomes) == clean(naive.outcomes) and len(clean(naive.outcomes)) > 1
    assert reduced.violations == naive.violations
    assert reduced.executions < naive.executions / 10


def rcu_slab(order, allocate=False):
    """A reader in RCU sections, a freer of one anon_vma, the RCU thread, and with ``allocate`` a
    thread that takes an object from the slab (re-using the freed slot, or not) and frees it again.

    ``order``: ``any``, the reader's sections (two of them) and the free in any order;
    ``covered``, the free waits until the reader is inside its one section; ``after``, the
    reader enters its one section after the free.  The reader uses the object in each section
    (I5a if its memory is gone).
    """
    def threads(k):
        cachep = k.anon_vma_cachep
        av = cachep.kmem_cache_alloc()
        av.refcount.atomic_set(0)
        inside, freed = tiny.Cell("inside", False), tiny.Cell("freed", False)
        seen, got = [], []

        async def reader():
            if order == "after":
                await wait_until("reader", "wait for the free", lambda: freed.value, reads("freed.value"))
            for _ in range(2 if order == "any" else 1):
                await point("reader", "rcu_read_lock", writes("inside.value"))
                rcu_read_lock()
                inside.value = True
                await point("reader", "use the object", reads(slot_resource(av.slot)))
                anon_vma_access(av, "reader", idiom=True)
                seen.append((av.slab_state.value, av.gen))
                await point("reader", "rcu_read_unlock", ())
                rcu_read_unlock()

        async def freer():
            if order == "covered":
                await wait_until("freer", "wait for the reader's section", lambda: inside.value,
                                 reads("inside.value"))
            await point("freer", "kmem_cache_free", cachep.fp_free(av) + writes("freed.value"))
            cachep.kmem_cache_free(av)
            freed.value = True

        async def allocator():
            await point("alloc", "kmem_cache_alloc", writes(SLAB_FREELIST, SLAB_SLOTS))
            obj = cachep.kmem_cache_alloc()
            got.append((obj.slot, obj.gen))
            await point("alloc", "kmem_cache_free", cachep.fp_free(obj))
            cachep.kmem_cache_free(obj)

        bodies = [("reader", reader), ("freer", freer)] + ([("alloc", allocator)] if allocate else [])
        return bodies, lambda: (tuple(seen), tuple(got), tuple(o.slab_state.value for o in cachep.slots))

    return tiny._program(f"tiny-rcu-slab-{order}{'-alloc' if allocate else ''}", threads)


@pytest.mark.parametrize("order,allocate", [("any", False), ("any", True), ("covered", True), ("after", True)])
def test_rcu_callbacks_and_slab_reuse_match_naive(order, allocate):
    """The grace period of a free starts at the free, its callback is a step of the RCU thread,
    and a slot re-allocated meanwhile is left alone: the reduced search still reaches every
    state and violation."""
    scenario = rcu_slab(order, allocate)
    naive, reduced = (engine.explore(scenario, scenario.variants[0], reduction=r, stop_on_failure=False,
                                     final_states=True, check_footprints=True) for r in (False, True))
    assert clean(reduced.outcomes) == clean(naive.outcomes) and len(clean(naive.outcomes)) > 1
    assert reduced.violations == naive.violations
    assert reduced.executions < naive.executions


def test_an_unlock_commutes_with_the_snapshot_of_a_free():
    """A free's grace period waits for each task's latest section, open or ended, so a section's
    end and the free commute (the callback runs after both either way), and the search never
    tries the grace period before the end it waits for: a reader's two sections and a free take
    9 executions, none cut short (12 when an unlock conflicted with the snapshot)."""
    scenario = rcu_slab("any")
    result = engine.explore(scenario, scenario.variants[0], stop_on_failure=False)
    assert result.complete and (result.executions, result.pruned) == (9, 0)


def test_a_use_after_the_grace_period_is_found_unless_the_section_covers_the_free():
    """A reader whose section began after the free is not waited for (I5a); one inside at the
    free is, however late the grace period would start."""
    found = {}
    for order in ("after", "covered"):
        scenario = rcu_slab(order)
        result = engine.explore(scenario, scenario.variants[0], stop_on_failure=False, final_states=True)
        assert result.complete
        found[order] = {invariant for invariant, _ in result.violations}
        assert any(state[-1][0] == "gone" for state, invariant in result.outcomes if invariant is None)
    assert found == {"after": {"I5a"}, "covered": set()}


def clean(outcomes):
    """The final states of the executions that ended without a violation."""
    return {state for state, invariant in outcomes if invariant is None}


# -- rwsem readers: their acquires and releases commute (ADD) --------------------------------

def rwsem_program(seed):
    """2 threads of 1-2 operations, or 3 of one, on one kernel rwsem around a shared cell: blocking and
    trylock readers, writers, a downgrade, ``rwsem_is_locked()``, ``rwsem_is_contended()`` and a
    stray ``up_read()`` by a task that does not hold the lock (I7, after which the run goes on with a corrupted count)."""
    rng = random.Random(seed)
    kinds = ["read", "read", "try-read", "write", "downgrade", "is-locked", "is-contended", "stray-up"]
    n_threads = rng.choice([2, 3, 3])
    plans = [[rng.choice(kinds) for _ in range(rng.randint(1, 2 if n_threads == 2 else 1))]
             for _ in range(n_threads)]

    def threads(k):
        sem = RWSem("sem")
        cell = tiny.Cell("x")
        log = []

        def body(t, ops):
            fn = f"t{t}"

            async def read_section(what):
                await point(fn, f"{what}: read x", TRACKED)
                log.append((t, what, cell.value))
                await point(fn, "up_read", sem._fp_read)
                sem.up_read()

            async def run():
                for op in ops:
                    if op == "read":
                        await sem.down_read(fn, "down_read")
                        await read_section("read")
                    elif op == "try-read":
                        await point(fn, "down_read_trylock", sem._fp_read)
                        if sem.down_read_trylock():
                            await read_section("try")
                        else:
                            log.append((t, "try failed"))
                    elif op in ("write", "downgrade"):
                        await sem.down_write(fn, "down_write")
                        await point(fn, "x += 1", TRACKED)
                        cell.value += 1
                        if op == "write":
                            await point(fn, "up_write", sem._fp)
                            sem.up_write()
                        else:
                            await point(fn, "downgrade_write", sem._fp)
                            sem.downgrade_write()
                            await read_section("downgraded")
                    elif op == "is-locked":
                        await point(fn, "rwsem_is_locked", reads("sem"))
                        log.append((t, "locked", sem.is_locked()))
                    elif op == "is-contended":
                        await point(fn, "rwsem_is_contended", reads("sem"))
                        log.append((t, "contended", sem.is_contended()))
                    else:
                        await point(fn, "up_read without the lock", sem._fp_read)
                        sem.up_read()
            return run

        def final():
            return (tuple(sorted(log)), sem.count_readers, sem.writer is not None,
                    tuple(sorted(h.comm for h in sem.holders)), len(sem.waiters))

        return [(f"t{t}", body(t, ops)) for t, ops in enumerate(plans)], final

    return tiny._program(f"rwsem-{seed}", threads)


def every_failure(scenario, reduction):
    """(final state, every failure of the run with its message) of each execution."""
    seen = set()

    def record(execution, sched):
        failures = ((execution.failure,) if execution.failure else ()) + tuple(execution.consequences)
        seen.add((sched.world.world.final_state(), tuple((f.invariant, f.message) for f in failures)))

    result = engine.explore(scenario, scenario.variants[0], reduction=reduction, stop_on_failure=False,
                            on_execution=record, check_footprints=True)
    assert result.complete
    return result, seen


def every_failure_as_naive(scenario):
    """The reduced search meets every (final state, failures) of the naive one, in no more executions."""
    naive, naive_seen = every_failure(scenario, reduction=False)
    reduced, reduced_seen = every_failure(scenario, reduction=True)
    assert reduced_seen == naive_seen
    assert reduced.executions <= naive.executions


@pytest.mark.parametrize("seed", range(40))
def test_rwsem_programs_match_naive(seed):
    every_failure_as_naive(rwsem_program(seed))


def test_two_readers_and_a_writer():
    """The readers' acquires and releases commute; the writer's place among them does not."""
    def threads(k):
        sem = RWSem("sem")
        cell = tiny.Cell("x")
        log = []

        def reader(name):
            async def body():
                await sem.down_read(name, "down_read")
                await point(name, "read x", TRACKED)
                log.append((name, cell.value))
                await point(name, "up_read", sem._fp_read)
                sem.up_read()
            return body

        async def writer():
            await sem.down_write("w", "down_write")
            await point("w", "x = 1", TRACKED)
            cell.value = 1
            await point("w", "up_write", sem._fp)
            sem.up_write()

        return ([("r1", reader("r1")), ("r2", reader("r2")), ("w", writer)],
                lambda: (tuple(sorted(log)), sem.count_readers, sem.writer is not None))

    scenario = tiny._program("tiny-two-readers-writer", threads)
    naive, naive_seen = every_failure(scenario, reduction=False)
    reduced, reduced_seen = every_failure(scenario, reduction=True)
    assert reduced_seen == naive_seen
    assert {state[0] for state, _ in naive_seen} == {(("r1", 0), ("r2", 0)), (("r1", 0), ("r2", 1)),
                                                     (("r1", 1), ("r2", 0)), (("r1", 1), ("r2", 1))}


def test_readers_around_a_queued_writer_match_naive():
    """A reader's acquire and another's release while a writer is queued: the release that
    empties the count wakes the writer, the acquire takes the fast or the slow path; an observer
    reads ``rwsem_is_contended()`` and the holders wherever it runs."""
    def threads(k):
        sem = RWSem("sem")
        log = []

        def reader(name):
            async def body():
                await sem.down_read(name, "down_read")
                await point(name, "up_read", sem._fp_read)
                sem.up_read()
            return body

        async def writer():
            await sem.down_write("w", "down_write")
            await point("w", "up_write", sem._fp)
            sem.up_write()

        async def observer():
            await point("o", "rwsem_is_contended", reads("sem"))
            log.append((sem.is_contended(), tuple(sorted(h.comm for h in sem.holders))))

        return ([("r1", reader("r1")), ("w", writer), ("r2", reader("r2")), ("o", observer)],
                lambda: tuple(log))

    scenario = tiny._program("tiny-reader-steps-with-a-waiter", threads)
    naive, naive_seen = every_failure(scenario, reduction=False)
    reduced, reduced_seen = every_failure(scenario, reduction=True)
    assert reduced_seen == naive_seen


def test_two_readers_alone_need_one_execution():
    """Each reader takes and drops the rwsem twice, a blocking and a trylock acquire: one trace."""
    def threads(k):
        sem = RWSem("sem")

        def reader(name):
            async def body():
                for _ in range(2):
                    await sem.down_read(name, "down_read")
                    await point(name, "up_read", sem._fp_read)
                    sem.up_read()
                await point(name, "down_read_trylock", sem._fp_read)
                assert sem.down_read_trylock()
                await point(name, "up_read", sem._fp_read)
                sem.up_read()
            return body

        return [("r1", reader("r1")), ("r2", reader("r2"))], lambda: sem.count_readers

    scenario = tiny._program("tiny-two-readers", threads)
    result = engine.explore(scenario, scenario.variants[0])
    assert (result.executions, result.pruned, result.complete) == (1, 0, True)


# -- the check between operations --------------------------------------------------------------

def operations_program(seed, seen):
    """2-3 threads of 1-3 operations (1-2 with three threads), each of 1-2 steps writing or reading two cells,
    or writing a third one that the check does not read; when an operation ends with none in flight, the
    check adds the two cells' values to ``seen``.  A thread may also write outside its operations."""
    rng = random.Random(seed)
    n_threads = rng.choice([2, 2, 3])
    plans = [[[(rng.choice(["write", "read", "add", "mark"]), rng.randrange(2)) for _ in range(rng.randint(1, 2))]
              for _ in range(rng.randint(1, 3 if n_threads == 2 else 2))] for _ in range(n_threads)]
    loose = [rng.random() < 0.3 for _ in plans]

    def threads(k):
        # the third cell is named as an accessed bit, which the kernel's quiet_check_reads() leaves out
        cells = [tiny.Cell("x0"), tiny.Cell("x1"), tiny.Cell("young:z")]

        def check():
            seen.add((cells[0].value, cells[1].value))

        def body(t, ops):
            async def steps(n, op):
                for kind, c in op:
                    await point(f"t{t}", f"{kind} x{c}", TRACKED)
                    if kind == "write":
                        cells[c].value = 10 * t + n + 1
                    elif kind == "add":
                        cells[c].value += t + 1
                    elif kind == "mark":
                        cells[2].value = 10 * t + n + 1
                    else:
                        cells[c].value

            async def run():
                for n, op in enumerate(ops):
                    await operation(steps(n, op), check)
                    if loose[t]:
                        await point(f"t{t}", "loose write x0", TRACKED)
                        cells[0].value = 100 + t
            return run

        return [(f"t{t}", body(t, ops)) for t, ops in enumerate(plans)], lambda: tuple(c.value for c in cells)

    return tiny._program(f"operations-{seed}", threads)


@pytest.mark.parametrize("seed", range(40))
def test_the_check_between_operations_sees_every_quiet_state_the_naive_search_sees(seed):
    naive_seen, reduced_seen = set(), set()
    naive = engine.explore(operations_program(seed, naive_seen), tiny.ONE[0], reduction=False)
    reduced = engine.explore(operations_program(seed, reduced_seen), tiny.ONE[0])
    assert naive.complete and reduced.complete
    assert reduced_seen == naive_seen


def test_a_state_only_another_order_passes_through_is_checked():
    """Thread a's operation writes x, thread b's writes y: they commute, so one execution covers
    both orders; the state after b alone (y ahead of x) is reached by a replay, and found."""
    def threads(k):
        x, y = tiny.Cell("x"), tiny.Cell("y")

        def check():
            if y.value > x.value:
                raise violation("TINY", SAFETY, "y ahead of x between operations")

        def writer(cell):
            async def write():
                await point(cell._shared_name, "write", TRACKED)
                cell.value = 1
                await point(cell._shared_name, "done", TRACKED)

            async def body():
                await operation(write(), check)
            return body

        return [("a", writer(x)), ("b", writer(y))], lambda: (x.value, y.value)

    scenario = tiny._program("tiny-quiet-state", threads)
    result = engine.explore(scenario, tiny.ONE[0])
    assert result.executions == 1 and result.quiet_states == 1
    assert result.failure is not None and result.failure.failure.invariant == "TINY"
    assert [s.task for s in result.failure.steps] == [1, 1]


# -- reference counts: gets and puts of threads that hold their own reference commute (ADD) ------

def refcount_program(seed):
    """2-3 threads on one reference count that starts at 1 to 3: pins (``atomic_inc_not_zero()``
    then ``atomic_dec_and_test()`` by the same thread), a put of a reference the thread does not
    hold (the count may reach zero: the object is freed), ``atomic_read()``, ``atomic_inc()`` and
    ``atomic_inc(pin=False)`` (a reference for an object)."""
    rng = random.Random(seed)
    kinds = ["pin", "pin", "pin", "put", "put", "read", "get", "ref"]
    start = rng.choice([1, 2, 3])
    plans = [[rng.choice(kinds) for _ in range(rng.randint(1, 2))] for _ in range(rng.choice([2, 3, 3]))]

    def threads(k):
        count = Atomic("obj.refcount", start)
        log = []

        def body(t, ops):
            fn = f"t{t}"

            async def run():
                for op in ops:
                    if op == "pin":
                        await point(fn, "atomic_inc_not_zero", adds(count.name))
                        if not count.atomic_inc_not_zero():
                            log.append((t, "pin failed"))
                            continue
                        await point(fn, "atomic_dec_and_test", adds(count.name))
                        if count.atomic_dec_and_test():
                            log.append((t, "freed by its own put"))
                    elif op == "put":
                        await point(fn, "atomic_dec_and_test", adds(count.name))
                        if count.counter and count.atomic_dec_and_test():
                            log.append((t, "freed"))
                    elif op == "read":
                        await point(fn, "atomic_read", reads(count.name))
                        log.append((t, "read", count.atomic_read()))
                    elif op == "get":
                        await point(fn, "atomic_inc", adds(count.name))
                        count.atomic_inc()
                    else:
                        await point(fn, "atomic_inc for an object", adds(count.name))
                        count.atomic_inc(pin=False)
            return run

        return [(f"t{t}", body(t, ops)) for t, ops in enumerate(plans)], lambda: (tuple(sorted(log)), count.counter)

    return tiny._program(f"refcount-{seed}", threads)


@pytest.mark.parametrize("seed", range(60))
def test_refcount_programs_match_naive(seed):
    every_failure_as_naive(refcount_program(seed))


def test_two_pins_over_a_held_reference_need_one_execution():
    """Two threads each take and drop a reference while a third holds the object: one trace."""
    def threads(k):
        count = Atomic("obj.refcount", 1)

        def pin(name):
            async def body():
                await point(name, "atomic_inc_not_zero", adds(count.name))
                assert count.atomic_inc_not_zero()
                await point(name, "atomic_dec_and_test", adds(count.name))
                assert not count.atomic_dec_and_test()
            return body

        return [("a", pin("a")), ("b", pin("b"))], lambda: count.counter

    result = engine.explore(tiny._program("tiny-two-pins", threads), tiny.ONE[0])
    assert result.complete and result.executions == 1 and result.pruned == 0


# -- no class twice ----------------------------------------------------------------------------

def trace_class(execution):
    """The Mazurkiewicz class of ``execution`` under its recorded footprints: each step, named by
    its thread and its place in it, with the steps of other threads before it that it conflicts
    with.  Two executions are equivalent (one is a reordering of independent neighbours of the
    other) exactly when their classes are equal."""
    steps = execution.steps
    names, counts = [], {}
    for step in steps:
        counts[step.task] = counts.get(step.task, -1) + 1
        names.append((step.task, counts[step.task]))
    return frozenset(
        (names[j], step.label, frozenset(names[i] for i in range(j)
                                         if steps[i].task != step.task and conflicting(steps[i].footprint, step.footprint)))
        for j, step in enumerate(steps))


def classes_of_reduced_search(scenario, variant=None, max_executions=None):
    classes = []
    engine.explore(scenario, variant or scenario.variants[0], stop_on_failure=False, max_executions=max_executions,
                   on_execution=lambda execution, sched: classes.append(trace_class(execution)))
    return classes


@pytest.mark.parametrize("scenario", [random_program(seed) for seed in range(0, 60, 6)]
                         + [rwsem_program(seed) for seed in range(0, 40, 5)]
                         + [tiny.FAMILIES[family](3) for family in sorted(tiny.FAMILIES)],
                         ids=lambda s: s.name)
def test_the_reduced_search_runs_no_class_twice(scenario):
    classes = classes_of_reduced_search(scenario)
    assert len(set(classes)) == len(classes)


def test_the_flagship_search_runs_no_class_twice():
    """Each execution of ``explore`` on the flagship is of its own class, so its count is the number
    of classes: a search that runs one execution per class can take no fewer."""
    from fuzzrmap import scenario as registry
    sc = registry.get("uffd-move-vs-referenced")
    classes = classes_of_reduced_search(sc, sc.variant("fixed"), max_executions=600)
    assert len(classes) == 600
    assert len(set(classes)) == len(classes)
