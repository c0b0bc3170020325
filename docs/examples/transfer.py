"""Money in flight: a check between operations.

Two threads each move one unit from account ``a`` to account ``b``; a third
rebalances the accounts from the known total.  Each call is one operation
(``fuzzrmap.sync.operation``): whenever an operation returns and no other is
in flight, not only at the end, the accounts must add up to the total.  A
rebalance that runs last repairs what an earlier race lost, so a check at
the end alone would miss those orders.  The ``racy`` variant transfers
without the accounts' mutex, so a transfer racing with another or with the
rebalance loses or makes money; the ``locked`` variant adds the hunk
``bank.locked``.

    fuzzrmap explore docs/examples/transfer.py --variant racy
"""

from fuzzrmap.check import SAFETY, violation
from fuzzrmap.hunks import hunk
from fuzzrmap.scenario import CLEAN, FAILS, Scenario, Variant, World
from fuzzrmap.sync import Cell, Mutex, operation

LOCKED = hunk("bank.locked", "transfer() holds the accounts' mutex around its loads and stores")
TOTAL = 10


def setup() -> World:
    a, b = Cell("a", TOTAL), Cell("b", 0)
    lock = Mutex("accounts")

    async def transfer():
        if LOCKED.on:
            await lock.lock()
        await a.store(await a.load() - 1)
        await b.store(await b.load() + 1)
        if LOCKED.on:
            await lock.unlock()

    async def rebalance():
        async with lock:
            await a.store(TOTAL // 2)
            await b.store(TOTAL - TOTAL // 2)

    def balanced():
        if a.value + b.value != TOTAL:
            raise violation("BALANCE", SAFETY, f"a + b = {a.value} + {b.value}, not {TOTAL}")

    def thread(call):
        async def body():
            await operation(call(), balanced)
        return body

    return World(threads=[("t0", thread(transfer)), ("t1", thread(transfer)), ("audit", thread(rebalance))])


SCENARIO = Scenario(name="transfer", spec="docs", summary="two transfers and a rebalance between two accounts",
                    variants=(Variant("racy", FAILS, "transfers without the mutex"),
                              Variant("locked", CLEAN, "transfers under the mutex", add=[LOCKED])),
                    setup=setup)
