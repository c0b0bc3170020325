"""Sticky random walk: keep running the current task with probability ``stay``.

A uniform walk switches tasks at almost every decision, so races that need
one thread to run a long stretch undisturbed (the mover's whole move while the
reader waits between two loads) are rare.  Staying with the current task with
probability ``stay`` (when it is enabled) and otherwise picking uniformly
among the others makes long runs likely while keeping every schedule
reachable.  Seeding as in :mod:`~fuzzrmap.sched.strategies.random_walk`.
"""

from __future__ import annotations

import random
from typing import Optional, Tuple

from fuzzrmap.sched.strategies import Strategy


class Sticky(Strategy):
    name = "sticky"

    def __init__(self, seed: int, stay: float = 0.9) -> None:
        if not 0.0 <= stay < 1.0:
            raise ValueError("stay must be in [0, 1)")
        self.seed = seed
        self.stay = stay
        self.index = 0
        self._rng = random.Random(0)

    def begin(self, index: int) -> None:
        self.index = index
        self._rng = random.Random((self.seed << 32) ^ index ^ (1 << 62))

    def next_task(self, enabled: Tuple[int, ...], current: Optional[int], step: int) -> int:
        if len(enabled) == 1:
            return enabled[0]
        if current in enabled:
            if self._rng.random() < self.stay:
                return current
            others = [t for t in enabled if t != current]
            return others[self._rng.randrange(len(others))]
        return enabled[self._rng.randrange(len(enabled))]

    def describe(self) -> dict:
        return {"name": self.name, "seed": self.seed, "schedule": self.index, "stay": self.stay}
