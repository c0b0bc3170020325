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
from fuzzrmap.kernel.slab import SlotState
from fuzzrmap.hunks import hunk
from fuzzrmap.kernel.environment import KERNEL
from fuzzrmap.scenario import CLEAN, FAILS, Scenario, Variant, World
from fuzzrmap.sched.api import point, reads, writes

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

        async def reader():
            await point("reader", "rcu_read_lock", ())
            rcu_read_lock()
            await point("reader", "read object", reads("obj"))
            seen.append(av.slab_state.value)
            await point("reader", "rcu_read_unlock", ())
            rcu_read_unlock()
            if not locked:
                await point("reader", "read object after unlock", reads("obj"))
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
