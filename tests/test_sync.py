"""The generic primitives (fuzzrmap.sync) in the plain environment, and the docs' examples."""

import pytest

from fuzzrmap import engine
from fuzzrmap import scenario as registry
from fuzzrmap.check import SAFETY, violation
from fuzzrmap.scenario import CLEAN, FAILS, Scenario, Variant, World
from fuzzrmap.sched.api import ModelError
from fuzzrmap.sched.strategies.pct import PCT
from fuzzrmap.sync import Cell, Condition, Mutex, RWLock, Thread

from helpers import run_plan
from test_explore import outcomes

EXAMPLES = "docs/examples"
ONE = (Variant("only", CLEAN, ""),)


def plain(name, setup, variants=ONE):
    return Scenario(name=name, spec="test", summary=name, variants=variants, setup=setup)


def producer_consumer(items=1):
    """A one-slot buffer guarded by a mutex and a condition variable; main creates and joins the consumer."""
    def setup():
        lock = Mutex("lock")
        changed = Condition("changed", lock)
        slot, got = Cell("slot", None), Cell("got", ())

        async def consume():
            for _ in range(items):
                await lock.lock()
                while await slot.load() is None:
                    await changed.wait()
                item = await slot.load()
                await slot.store(None)
                await changed.notify()
                await lock.unlock()
                await got.store(await got.load() + (item,))

        consumer = Thread("consumer", consume)

        async def main():
            await consumer.create()
            for item in "ab"[:items]:
                async with lock:
                    while await slot.load() is not None:
                        await changed.wait()
                    await slot.store(item)
                    await changed.notify()
            await consumer.join()
            if await got.load() != tuple("ab"[:items]):
                raise violation("ORDER", SAFETY, "consumer got the items out of order")

        return World(threads=[("main", main), consumer.entry], final_state=lambda: (slot.value, got.value))
    return plain("producer-consumer", setup)


def readers_and_writer():
    """Two readers and a writer on an RWLock: which values the readers see."""
    def setup():
        rw, x = RWLock("rw"), Cell("x", 0)
        seen = []

        def reader(name):
            async def body():
                await rw.read_lock()
                seen.append((name, await x.load()))
                await rw.read_unlock()
            return body

        async def writer():
            await rw.write_lock()
            await x.store(1)
            await x.store(2)
            await rw.write_unlock()

        return World(threads=[("r1", reader("r1")), ("r2", reader("r2")), ("w", writer)],
                     final_state=lambda: tuple(sorted(seen)))
    return plain("readers-and-writer", setup)


def load_and_store():
    """One thread loads a cell another stores: the only conflict is a read against a write."""
    def setup():
        x, seen = Cell("x", 0), []

        async def load():
            seen.append(await x.load())

        async def store():
            await x.store(1)

        return World(threads=[("load", load), ("store", store)], final_state=lambda: tuple(seen))
    return plain("load-and-store", setup)


@pytest.mark.parametrize("make", [producer_consumer, readers_and_writer, load_and_store], ids=lambda m: m.__name__)
def test_reduced_search_agrees_with_naive_on_the_primitives(make):
    sc = make()
    v = sc.variant("only")
    naive, naive_seen, _ = outcomes(sc, v, reduction=False)
    dpor, dpor_seen, _ = outcomes(sc, v, reduction=True)
    assert dpor_seen == naive_seen
    assert dpor.executions <= naive.executions


def test_the_primitives_keep_their_contracts():
    two = producer_consumer(items=2)
    _, seen, _ = outcomes(two, two.variant("only"), reduction=True)
    assert seen == {((None, ("a", "b")), None)}  # every item delivered once, in order, no deadlock
    _, seen, _ = outcomes(readers_and_writer(), readers_and_writer().variant("only"), reduction=False)
    values = {v for state, _ in seen for _, v in state}
    assert values == {0, 2}  # a reader never sees the writer half-way


def test_a_notify_wakes_only_threads_that_were_waiting_when_it_was_sent():
    def setup():
        lock = Mutex("m")
        cond = Condition("c", lock)
        mark = Cell("mark", 0)

        async def w1():  # waits, is woken by the first notify, waits again
            await lock.lock()
            await cond.wait()
            await cond.wait()
            await lock.unlock()

        async def w2():
            await lock.lock()
            await cond.wait()
            await lock.unlock()

        async def notifier():
            await cond.notify()
            await mark.store(1)
            await cond.notify()

        return World(threads=[("w1", w1), ("w2", w2), ("n", notifier)])

    sc = plain("wake-ups", setup)
    # w1 waits; n wakes it; w2 waits; n sends a second wake-up, for w1 or w2; w1 takes the first
    # one and waits again: the second wake-up can now only be w2's, so w1 is left waiting.
    execution, _ = run_plan(sc, sc.variant("only"), [("w1", None), ("n", "store"), ("w2", None), ("n", None),
                                                     ("w1", None)])
    assert execution.failure.invariant == "I8"
    assert "w1 waits at w1 wait c [woken]" in execution.failure.message
    assert "w2" not in execution.failure.message


def test_a_plain_scenario_runs_exactly_its_own_threads():
    sc = producer_consumer()
    execution = engine.run_one(sc, sc.variant("only"), PCT(0))
    assert execution.roles == ("main", "consumer")


def misuse(body):
    def setup():
        m = Mutex("m")
        return World(threads=[("t", lambda: body(m))])
    sc = plain("misuse", setup)
    return engine.run_one(sc, sc.variant("only"), PCT(0))


def test_unlocking_a_mutex_not_held_is_reported():
    async def body(m):
        await m.unlock()
    assert misuse(body).failure.invariant == "LOCK"


def test_a_thread_that_ends_holding_a_lock_is_reported():
    async def body(m):
        await m.lock()
    failure = misuse(body).failure
    assert (failure.invariant, failure.task) == ("LOCK", "t") and "ends holding m" in failure.message


def test_a_cell_value_read_inside_a_thread_is_refused():
    def setup():
        c = Cell("c", 0)

        async def t():
            await c.store(1)
            c.value  # an access the footprint would not see
        return World(threads=[("t", t)])
    sc = plain("peek", setup)
    with pytest.raises(ModelError, match="c.value read inside a thread"):
        engine.run_one(sc, sc.variant("only"), PCT(0))


# -- the docs' examples, loaded by path as a user would ---------------------------------

def example(ref):
    return registry.resolve(f"{EXAMPLES}/{ref}")


DOCS = [("lost_update.py:lost-update", "racy"), ("lost_update.py:lost-update", "locked"),
        ("lost_update.py:lost-update-3", "racy"), ("lost_update.py:lost-update-3", "locked"),
        ("abba.py", "abba"), ("abba.py", "ordered"),
        ("moving_item.py", "fixed"), ("moving_item.py", "unpatched"),
        ("moving_item.py", "no-recheck"), ("moving_item.py", "no-lock-destination"),
        ("transfer.py", "racy"), ("transfer.py", "locked")]


@pytest.mark.parametrize("ref,variant", DOCS)
def test_explore_gives_each_docs_example_its_expected_verdict(ref, variant):
    sc = example(ref)
    v = sc.variant(variant)
    result = engine.explore(sc, v)
    if v.expect == FAILS:
        assert result.failure is not None
        assert set(result.failure.roles) == {role for role, _ in sc.setup().threads}  # no thread but its own
    else:
        assert result.complete and result.failure is None


@pytest.mark.parametrize("ref,variant,invariant", [("lost_update.py:lost-update", "racy", "LOST-UPDATE"),
                                                   ("abba.py", "abba", "I8")])
def test_pct_finds_the_lost_update_and_the_deadlock(ref, variant, invariant):
    sc = example(ref)
    result = engine.campaign(sc, sc.variant(variant), PCT(1, depth=2), runs=200)
    assert result.execution is not None and result.execution.failure.invariant == invariant
    assert result.execution.roles == tuple(role for role, _ in sc.setup().threads)
