"""Scheduling strategies: one file each, one small interface.

A strategy answers a single question, many times per schedule: *of these
enabled tasks, which runs next?*  Like Shuttle's ``Scheduler`` trait, it is
told when a new schedule begins and sees every step as it is recorded.  It
never sees the kernel model: only task ids, the previously running task and
the step index.

Strategies are looked up by name (``--strategy NAME``) in :data:`STRATEGIES`.
"""

from __future__ import annotations

from typing import Dict, Hashable, Optional, Tuple, Type

from fuzzrmap.sched.trace import Step


class Strategy:
    """Interface of every strategy (subclasses override the three hooks)."""

    name = "?"

    def begin(self, index: int) -> None:
        """Schedule number ``index`` of the campaign starts."""

    def next_task(self, enabled: Tuple[int, ...], current: Optional[int], step: int) -> int:
        """Return one of ``enabled`` (ids in spawn order, never empty)."""
        raise NotImplementedError

    def observe(self, step: Step) -> None:
        """Called with each recorded step, right after ``next_task``."""

    def describe(self) -> dict:
        """Parameters that reproduce this strategy (stored in seed files)."""
        return {"name": self.name}

    def carry(self) -> Hashable:
        """What the schedules run so far pass on to the next one (None: nothing).

        A schedule may depend only on its index, the strategy's parameters and
        this value, so a campaign can be cut into shards that start from it
        (:mod:`fuzzrmap.parallel`).  Compared with ``==``; picklable.
        """
        return None

    def resume(self, carried: Hashable) -> None:
        """Continue a campaign from ``carried``, a value :meth:`carry` returned."""


def _registry() -> Dict[str, Type[Strategy]]:
    from fuzzrmap.sched.strategies.pct import PCT
    from fuzzrmap.sched.strategies.random_walk import RandomWalk
    from fuzzrmap.sched.strategies.sticky import Sticky

    return {RandomWalk.name: RandomWalk, Sticky.name: Sticky, PCT.name: PCT}


STRATEGIES = _registry()
