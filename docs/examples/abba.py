"""An ABBA deadlock: two threads take two mutexes in opposite orders.

``abba`` (the bug): t1 locks A then B, t2 locks B then A; if each takes its
first lock before the other takes its second, neither can go on and the
scheduler reports the deadlock.  ``ordered`` (the fix, hunk
``abba.ordered``): both take A first.

    fuzzrmap explore docs/examples/abba.py --variant abba
"""

from fuzzrmap.hunks import hunk
from fuzzrmap.scenario import CLEAN, FAILS, Scenario, Variant, World
from fuzzrmap.sync import Cell, Mutex

ORDERED = hunk("abba.ordered", "transfer_back() takes A before B, like transfer()")


def setup() -> World:
    a, b = Mutex("A"), Mutex("B")
    moved = Cell("moved", 0)

    async def transfer():
        async with a:
            async with b:
                await moved.fetch_add(1)

    async def transfer_back():
        first, second = (a, b) if ORDERED.on else (b, a)
        async with first:
            async with second:
                await moved.fetch_add(-1)

    return World(threads=[("t1", transfer), ("t2", transfer_back)])


SCENARIO = Scenario(
    name="abba",
    spec="docs",
    summary="two threads lock two mutexes in opposite orders",
    variants=(Variant("abba", FAILS, "opposite lock orders"),
              Variant("ordered", CLEAN, "one lock order", add=[ORDERED])),
    setup=setup,
)
