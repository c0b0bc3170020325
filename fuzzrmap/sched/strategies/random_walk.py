"""Uniform random walk: at every decision, any enabled task, equally likely.

Schedule ``i`` of a campaign with seed ``s`` draws from its own generator,
seeded with ``(s, i)``, so any schedule can be re-run on its own and two
campaigns with the same seed run the same schedules.  A decision with a
single enabled task draws nothing, so the random stream is spent only where
there is a choice.

A decision draws exactly what ``random.Random.choice`` draws (the fewest
random bits that can name an index, drawn again while the index is out of
range), inlined: it is the one thing a random walk does per decision.
"""

from __future__ import annotations

import random
from typing import Optional, Tuple

from fuzzrmap.sched.strategies import Strategy


class RandomWalk(Strategy):
    name = "random"

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.index = 0
        self._rng = random.Random(0)

    def begin(self, index: int) -> None:
        self.index = index
        self._rng = random.Random((self.seed << 32) ^ index)

    def next_task(self, enabled: Tuple[int, ...], current: Optional[int], step: int) -> int:
        n = len(enabled)
        if n == 1:
            return enabled[0]
        bits = self._rng.getrandbits
        k = n.bit_length()
        i = bits(k)
        while i >= n:
            i = bits(k)
        return enabled[i]

    def describe(self) -> dict:
        return {"name": self.name, "seed": self.seed, "schedule": self.index}
