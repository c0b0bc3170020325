"""Guided: follow a sketch of a schedule, filling the gaps without preempting.

The sketch is a list of *blocks*, ``(task, steps)``: run ``task`` for up to
``steps`` steps, then the next block.  A block whose task is not enabled when
its turn comes, or that blocks early, gives up its remaining steps.  When the
blocks are used up, the running task continues while it can, then the lowest
enabled task runs: no preemption is ever added.  The preemptions of a guided
run are therefore exactly the block boundaries at which the previous task
could have continued.

This is what the shrinker edits: removing, merging and shortening blocks,
each candidate a complete run that either still fails the same way or not.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from fuzzrmap.sched.strategies import Strategy

Block = Tuple[int, int]


class Guided(Strategy):
    name = "guided"

    def __init__(self, blocks: Sequence[Block]) -> None:
        self.blocks: List[Block] = [tuple(b) for b in blocks]
        self._at = 0
        self._left = 0

    def begin(self, index: int) -> None:
        self._at = 0
        self._left = self.blocks[0][1] if self.blocks else 0

    def next_task(self, enabled: Tuple[int, ...], current: Optional[int], step: int) -> int:
        while self._at < len(self.blocks):
            task = self.blocks[self._at][0]
            if self._left > 0 and task in enabled:
                self._left -= 1
                return task
            self._at += 1
            if self._at < len(self.blocks):
                self._left = self.blocks[self._at][1]
        return current if current in enabled else enabled[0]

    def describe(self) -> dict:
        return {"name": self.name, "blocks": [list(b) for b in self.blocks]}


def blocks_of(decisions: Sequence[int]) -> List[Block]:
    """Run-length blocks of a decision list."""
    out: List[Block] = []
    for tid in decisions:
        if out and out[-1][0] == tid:
            out[-1] = (tid, out[-1][1] + 1)
        else:
            out.append((tid, 1))
    return out
