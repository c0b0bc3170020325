"""A reader/writer protocol with two hunks: find an item that a mover may move to another table.

Each table has a reader/writer lock and a set of items; ``owner`` says which
table holds the item ``x``.  The reader (``lookup``) reads ``owner`` without
a lock, read-locks that table and uses ``x`` there.  The mover (``move``)
write-locks the source table, moves ``x`` to the destination and publishes
the new ``owner``.  It is the shape of the kernel's race between
``folio_lock_anon_vma_read()`` and UFFDIO_MOVE, in a dozen lines.

Generation ``v2`` has two hunks:

* ``table.recheck`` - after taking the lock, the reader re-reads ``owner``
  and retries if it changed (without it, the reader can lock the table ``x``
  has just left: STALE);
* ``table.lock_destination`` - the mover write-locks the destination too.
  It is not needed: ``owner`` is published after the insert, so a reader
  that sees the new owner finds ``x`` there.

``fuzzrmap necessity docs/examples/moving_item.py --variant fixed`` proves
the first needed and the second not.
"""

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.hunks import Generation, hunk
from fuzzrmap.scenario import CLEAN, FAILS, Scenario, Variant, World
from fuzzrmap.sync import Cell, RWLock

RECHECK = hunk("table.recheck", "lookup() re-reads owner after read_lock() and retries if it changed")
LOCK_DESTINATION = hunk("table.lock_destination", "move() write-locks the destination table too")

V1 = Generation("v1", "the reader trusts the owner it read before locking", ())
V2 = Generation("v2", "the reader re-checks; the mover locks both tables", (RECHECK.name, LOCK_DESTINATION.name))


class Table:
    def __init__(self, name: str, items: frozenset) -> None:
        self.name = name
        self.lock = RWLock(f"{name}.lock")
        self.items = Cell(f"{name}.items", items)

    def __repr__(self) -> str:
        return self.name


def setup() -> World:
    a, b = Table("A", frozenset({"x"})), Table("B", frozenset())
    owner = Cell("owner", a)

    async def lookup():
        while True:
            table = await owner.load()
            await table.lock.read_lock()
            if RECHECK.on and await owner.load() is not table:
                await table.lock.read_unlock()
                continue
            if "x" not in await table.items.load():
                raise violation("STALE", SAFETY, f"lookup() holds {table.name}.lock but x is not in {table.name}")
            await table.lock.read_unlock()
            return

    async def move():
        await a.lock.write_lock()
        if LOCK_DESTINATION.on:
            await b.lock.write_lock()
        await a.items.store(frozenset())
        await b.items.store(frozenset({"x"}))
        await owner.store(b)
        if LOCK_DESTINATION.on:
            await b.lock.write_unlock()
        await a.lock.write_unlock()

    return World(threads=[("reader", lookup), ("mover", move)])


SCENARIO = Scenario(
    name="moving-item",
    spec="docs",
    summary="lookup() without a lock vs move() to another table",
    variants=(
        Variant("fixed", CLEAN, "v2: both hunks", V2),
        Variant("unpatched", FAILS, "v1: no recheck, one lock", V1),
        Variant("no-recheck", FAILS, "v2 without the reader's recheck", V2, remove=[RECHECK]),
        Variant("no-lock-destination", CLEAN, "v2 without the destination lock", V2, remove=[LOCK_DESTINATION]),
    ),
    setup=setup,
)
