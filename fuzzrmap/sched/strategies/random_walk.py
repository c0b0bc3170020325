"""Uniform random walk: at every decision, any enabled task, equally likely.

Schedule ``i`` of a campaign with seed ``s`` draws from its own generator,
seeded with ``(s, i)``, so any schedule can be re-run on its own and two
campaigns with the same seed run the same schedules.  A decision with a
single enabled task draws nothing, so the random stream is spent only where
there is a choice.
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
        if len(enabled) == 1:
            return enabled[0]
        return self._rng.choice(enabled)

    def describe(self) -> dict:
        return {"name": self.name, "seed": self.seed, "schedule": self.index}
