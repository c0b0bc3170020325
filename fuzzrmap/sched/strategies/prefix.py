"""Prefix: run a given list of decisions, then stop the schedule.

Exhaustive search replays the quiet states of an execution's class with it
(:meth:`fuzzrmap.sched.strategies.dpor.Explore.quiet_states`): the decisions
reach the state and the check between operations runs in the last step;
nothing after it is of interest.  Unlike :class:`~.replay.Replay` it checks
nothing about the steps: the decisions come from the same search, not a file.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from fuzzrmap.sched.api import ModelError
from fuzzrmap.sched.strategies import Strategy


class PrefixEnd(Exception):
    """The decisions are used up: the schedule stops here."""


class Prefix(Strategy):
    name = "prefix"

    def __init__(self, decisions: Sequence[int]) -> None:
        self.decisions = tuple(decisions)

    def next_task(self, enabled: Tuple[int, ...], current: Optional[int], step: int) -> int:
        if step >= len(self.decisions):
            raise PrefixEnd()
        tid = self.decisions[step]
        if tid not in enabled:
            raise ModelError(f"nondeterministic model: a quiet state's step {step} (task {tid}) is not enabled "
                             f"(enabled: {list(enabled)})")
        return tid

    def describe(self) -> dict:
        return {"name": self.name, "decisions": list(self.decisions)}
