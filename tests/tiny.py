"""Tiny scenarios for the search tests: a few threads over the real primitives.

Each builds a fresh world per schedule and summarises its final state, so the
reduced search can be compared with the naive one state by state.
"""

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.kernel.locking import spinlock
from fuzzrmap.kernel.rcu import rcu_read_lock, rcu_read_unlock
from fuzzrmap.kernel.refcount import Atomic
from fuzzrmap.kernel.rmap import put_anon_vma
from fuzzrmap.kernel.rwsem import RWSem
from fuzzrmap.kernel.slab import SlotState, slot_resource
from fuzzrmap.hunks import hunk
from fuzzrmap.kernel.environment import KERNEL
from fuzzrmap.scenario import CLEAN, FAILS, Scenario, Variant, World
from fuzzrmap.sched.api import TRACKED, Shared, point, reads, wait_until, writes

LOCKED = hunk("tiny.locked", "the tiny scenarios take their locks")
VARIANTS = (Variant("buggy", FAILS, ""), Variant("locked", CLEAN, "", add=[LOCKED]))


def lost_update():
    """Two threads increment a counter with a load and a store; ``locked`` takes a spinlock."""

    def setup(k, locked):
        state = {"x": 0}
        lock = spinlock("lock")

        def incr(name):
            async def body():
                if locked:
                    await lock.lock(name, "lock")
                await point(name, "load x", reads("x"))
                v = state["x"]
                await point(name, "store x", writes("x"))
                state["x"] = v + 1
                if locked:
                    await point(name, "unlock", writes("lock"))
                    lock.unlock()
                await point(name, "check x", reads("x"))
                if state["x"] == 1 and not locked and name == "b":
                    raise violation("TINY", SAFETY, "lost update seen by b")
            return body

        return World(threads=[("a", incr("a")), ("b", incr("b"))],
                     final_state=lambda: state["x"])

    return _scenario("tiny-lost-update", setup)


def readers_writer():
    """Two readers and a writer on an rwsem, plus an unrelated thread: the order of entries."""

    def setup(k, locked):
        sem = RWSem("sem")
        log = []

        def reader(name):
            async def body():
                await sem.down_read(name, "down_read")
                log.append(name)
                await point(name, "up_read", writes("sem"))
                sem.up_read()
            return body

        async def writer():
            await sem.down_write("w", "down_write")
            log.append("w")
            await point("w", "up_write", writes("sem"))
            sem.up_write()

        async def bystander():
            for i in range(3):
                await point("z", f"local {i}", writes("z"))

        return World(threads=[("r1", reader("r1")), ("r2", reader("r2")), ("w", writer), ("z", bystander)],
                     final_state=lambda: tuple(log))

    return _scenario("tiny-readers-writer", setup)


def rcu_free():
    """A reader dereferences an object inside RCU while another thread frees it (slab + grace period)."""

    def setup(k, locked):
        av = k.anon_vma_cachep.kmem_cache_alloc()
        av.refcount.atomic_set(1)
        seen = []
        obj = reads(slot_resource(av.slot))  # the object's slab state, what the grace period frees

        async def reader():
            await point("reader", "rcu_read_lock", ())
            rcu_read_lock()
            await point("reader", "read object", obj)
            seen.append(av.slab_state.value)
            await point("reader", "rcu_read_unlock", ())
            rcu_read_unlock()
            if not locked:
                await point("reader", "read object after unlock", obj)
                if av.slab_state is SlotState.GONE:
                    raise violation("I5a", SAFETY, "use after free outside RCU")

        async def freer():
            await put_anon_vma(av, "freer", "drop last ref")

        return World(threads=[("reader", reader), ("freer", freer)],
                     final_state=lambda: (tuple(seen), av.slab_state.value))

    return _scenario("tiny-rcu-free", setup)


def abba():
    """Two threads take two locks; ``buggy`` in opposite orders (deadlock), ``locked`` in the same."""

    def setup(k, locked):
        a, b = RWSem("A"), RWSem("B")
        count = Atomic("n", 0)

        def thread(name, first, second):
            async def body():
                await first.down_write(name, f"lock {first.name}")
                await second.down_write(name, f"lock {second.name}")
                await point(name, "count", writes("n"))
                count.atomic_inc()
                await point(name, "unlock both", writes(first.name, second.name))
                second.up_write()
                first.up_write()
            return body

        return World(threads=[("t1", thread("t1", a, b)), ("t2", thread("t2", a, b) if locked else thread("t2", b, a))],
                     final_state=lambda: count.counter)

    return _scenario("tiny-abba", setup)


def _scenario(name, setup):
    """The variant's one hunk tells the tiny scenarios which version to build."""
    return Scenario(name=name, spec="test", summary=name, variants=VARIANTS,
                    setup=lambda k: setup(k, locked=LOCKED.on), environment=KERNEL)


ALL = [lost_update(), readers_writer(), rcu_free(), abba()]


# -- programs written the natural way: no footprints, or shared objects that record themselves ----

ONE = (Variant("fixed", CLEAN, ""),)


def _program(name, threads):
    """A scenario of one variant from ``threads(kernel) -> [(role, body)]``."""
    def setup(k):
        bodies, final = threads(k)
        return World(threads=bodies, final_state=final)
    return Scenario(name=name, spec="test", summary=name, variants=ONE, setup=setup, environment=KERNEL)


def unlocked_counter():
    """Two threads increment a counter with a load and a store and declare nothing: a lost update."""

    def threads(k):
        state = {"x": 0, "done": 0}

        def incr(name):
            async def body():
                await point(name, "load x")
                v = state["x"]
                await point(name, "store x; done += 1")
                state["x"] = v + 1
                state["done"] += 1
                if state["done"] == 2 and state["x"] != 2:
                    raise violation("TINY", SAFETY, f"lost update: x = {state['x']}")
            return body

        return [("a", incr("a")), ("b", incr("b"))], lambda: state["x"]

    return _program("tiny-unlocked-counter", threads)


def one_step_mutex(bug):
    """A mutex written as one ``wait_until(lambda: not held)`` step, then the acquire, no footprints.

    ``abba``: two threads take two such mutexes in opposite orders (a deadlock);
    ``split``: an increment whose load and store sit in two critical sections (a lost update);
    ``ok``: a correct increment under one mutex.
    """

    def threads(k):
        held = {"A": False, "B": False}
        state = {"x": 0, "done": 0}

        async def lock(name, m):
            await wait_until(name, f"lock {m}", lambda: not held[m])
            held[m] = True

        async def unlock(name, m):
            await point(name, f"unlock {m}")
            held[m] = False

        def thread(name, first, second):
            async def body():
                if bug == "abba":
                    await lock(name, first)
                    await lock(name, second)
                    await point(name, "x += 1")
                    state["x"] += 1
                    await unlock(name, second)
                    await unlock(name, first)
                elif bug == "split":
                    await lock(name, "A")
                    await point(name, "load x")
                    v = state["x"]
                    await unlock(name, "A")
                    await lock(name, "A")
                    await point(name, "store x")
                    state["x"] = v + 1
                    await unlock(name, "A")
                else:
                    await lock(name, "A")
                    await point(name, "load x")
                    v = state["x"]
                    await point(name, "store x")
                    state["x"] = v + 1
                    await unlock(name, "A")
                await point(name, "done += 1")
                state["done"] += 1
                if state["done"] == 2 and state["x"] != 2:
                    raise violation("TINY", SAFETY, f"lost update: x = {state['x']}")
            return body

        return [("t1", thread("t1", "A", "B")), ("t2", thread("t2", "B", "A"))], lambda: state["x"]

    return _program(f"tiny-one-step-mutex-{bug}", threads)


class Cell(Shared):
    """A shared variable that records its own reads and writes."""

    def __init__(self, name, value=0):
        super().__init__(name)
        self.value = value


def disjoint(n):
    """N threads, each writing its own variable twice: one execution."""

    def threads(k):
        cells = [Cell(f"x{i}") for i in range(n)]

        def body(i):
            async def run():
                for step in range(2):
                    await point(f"t{i}", f"x{i} += 1", TRACKED)
                    cells[i].value += 1
            return run

        return [(f"t{i}", body(i)) for i in range(n)], lambda: tuple(c.value for c in cells)

    return _program(f"family-disjoint-{n}", threads)


def one_lock(n):
    """N threads each lock; write; unlock on one spinlock: the N! orders of the lock."""

    def threads(k):
        lock = spinlock("L")
        log = Cell("log", ())

        def body(i):
            async def run():
                await lock.lock(f"t{i}", "lock L")
                await point(f"t{i}", "log += t", TRACKED)
                log.value += (i,)
                await point(f"t{i}", "unlock L", TRACKED)
                lock.unlock()
            return run

        return [(f"t{i}", body(i)) for i in range(n)], lambda: log.value

    return _program(f"family-one-lock-{n}", threads)


def two_locks(n):
    """N threads on two spinlocks, even threads A then B, odd threads B then A (deadlocks from N = 2)."""

    def threads(k):
        locks = {"A": spinlock("A"), "B": spinlock("B")}
        log = Cell("log", ())

        def body(i):
            first, second = ("A", "B") if i % 2 == 0 else ("B", "A")

            async def run():
                await locks[first].lock(f"t{i}", f"lock {first}")
                await locks[second].lock(f"t{i}", f"lock {second}")
                await point(f"t{i}", "log += t", TRACKED)
                log.value += (i,)
                await point(f"t{i}", "unlock both", TRACKED)
                locks[second].unlock()
                locks[first].unlock()
            return run

        return [(f"t{i}", body(i)) for i in range(n)], lambda: log.value

    return _program(f"family-two-locks-{n}", threads)


FAMILIES = {"disjoint": disjoint, "one-lock": one_lock, "two-locks": two_locks}


def liar():
    """One thread whose step declares a read of a tracked cell and writes it."""
    def threads(k):
        cell = Cell("x")

        async def liar_thread():
            await point("liar", "says it only reads x", reads("x.value"))
            cell.value = 1

        return [("liar", liar_thread)], lambda: cell.value

    return _program("tiny-liar", threads)
