"""PCT: probabilistic concurrency testing (Burckhardt et al., ASPLOS'10).

Every task gets a random priority when it first becomes enabled; the highest
priority enabled task always runs.  At ``depth - 1`` change points, drawn
uniformly over the expected schedule length ``k``, the task about to run drops
below every initial priority.  A bug that needs ``d`` ordering constraints
(its *depth*) is then hit by one schedule with probability at least
``1 / (n * k**(d - 1))`` for ``n`` tasks - independent of how unlikely the
interleaving is for a uniform random walk, which is why PCT finds the
flagship races in tens of schedules rather than thousands.

``k`` is estimated from the schedules seen, as the paper and Shuttle's
``PctScheduler`` do: it is the length of the longest schedule run so far
(1 before the first one ends), so it only grows.  A fixed guess larger than
the program (the 50 steps this used to assume) puts most change points after
its end and finds a depth-``d`` bug far less often than the bound promises.
Change points are step numbers counted from 1, as in the paper: change point
``c`` lowers the thread about to take step ``c``.  The value of ``k`` used by
each schedule is part of its description, so a seed file says exactly what
ran.  Schedule ``i`` of seed ``s`` draws from its own generator, seeded with
``(s, i)``.
"""

from __future__ import annotations

import math
import random
from typing import Dict, List, Optional, Tuple

from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.trace import Step


class PCT(Strategy):
    name = "pct"

    def __init__(self, seed: int, depth: int = 3, steps: int = 1) -> None:
        if depth < 1:
            raise ValueError("PCT depth must be at least 1")
        self.seed = seed
        self.depth = depth
        self.k = steps
        self.index = 0
        self.max_tasks = 0
        self._rng = random.Random(0)
        self._priority: Dict[int, float] = {}
        self._changes: List[int] = []
        self._length = 0

    def begin(self, index: int) -> None:
        self.k = max(self.k, self._length)
        self._length = 0
        self.index = index
        self._rng = random.Random((self.seed << 32) ^ index ^ (self.depth << 60))
        self._priority = {}
        self._changes = sorted(self._rng.randrange(1, self.k + 1) for _ in range(self.depth - 1))

    def next_task(self, enabled: Tuple[int, ...], current: Optional[int], step: int) -> int:
        for tid in enabled:
            if tid not in self._priority:
                self._priority[tid] = self.depth + self._rng.random()
        self.max_tasks = max(self.max_tasks, len(self._priority))
        best = max(enabled, key=self._priority.__getitem__)
        for i, at in enumerate(self._changes):
            if at == step + 1:
                self._priority[best] = self.depth - 1 - i + self._rng.random() * 0.5
                best = max(enabled, key=self._priority.__getitem__)
        return best

    def observe(self, step: Step) -> None:
        self._length += 1

    def describe(self) -> dict:
        return {"name": self.name, "seed": self.seed, "schedule": self.index, "depth": self.depth, "k": self.k}

    def carry(self) -> Tuple[int, int]:
        """The ``k`` the next schedule will use, and the most threads seen."""
        return max(self.k, self._length), self.max_tasks

    def resume(self, carried: Tuple[int, int]) -> None:
        self.k, self.max_tasks = carried
        self._length = 0

    def miss_probability(self, runs: int) -> float:
        """Upper bound on missing a depth-``depth`` bug in ``runs`` schedules.

        Computed in logarithms, so a large depth gives a bound near 1 rather
        than an overflow.
        """
        n = max(self.max_tasks, 1)
        log_p = -(math.log(n) + (self.depth - 1) * math.log(self.k))
        return math.exp(runs * math.log1p(-math.exp(log_p))) if log_p < 0 else 0.0
