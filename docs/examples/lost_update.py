"""A lost update: threads increment a shared counter with a load and a store.

Two scenarios from one file (a family): two and three incrementing threads.
The ``racy`` variant loads and stores without a lock, so two threads can
load the same value and one increment is lost; the ``locked`` variant adds
the hunk ``counter.locked``, which takes a mutex around the increment.

    fuzzrmap explore docs/examples/lost_update.py:lost-update --variant racy
    fuzzrmap fuzz docs/examples/lost_update.py:lost-update-3 --variant locked
"""

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.hunks import hunk
from fuzzrmap.scenario import CLEAN, FAILS, Scenario, Variant, World
from fuzzrmap.sync import Cell, Mutex

LOCKED = hunk("counter.locked", "increment() holds the counter's mutex around the load and the store")

VARIANTS = (
    Variant("racy", FAILS, "load and store with no lock"),
    Variant("locked", CLEAN, "the increment under a mutex", add=[LOCKED]),
)


def counter(threads: int) -> Scenario:
    def setup() -> World:
        count = Cell("count", 0)
        lock = Mutex("lock")

        async def increment():
            if LOCKED.on:
                await lock.lock()
            value = await count.load()
            await count.store(value + 1)
            if LOCKED.on:
                await lock.unlock()

        def every_increment_counted():
            if count.value != threads:
                raise violation("LOST-UPDATE", SAFETY, f"count is {count.value} after {threads} increments")

        return World(threads=[(f"t{i}", increment) for i in range(threads)],
                     final_check=every_increment_counted)

    name = "lost-update" if threads == 2 else f"lost-update-{threads}"
    return Scenario(name=name, spec="docs", summary=f"{threads} threads increment a counter",
                    variants=VARIANTS, setup=setup)


SCENARIOS = [counter(2), counter(3)]
