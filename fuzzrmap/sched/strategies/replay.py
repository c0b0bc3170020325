"""Replay: follow the decisions recorded in a seed file, and check them.

At each step the recorded task must be enabled and parked at the recorded
kernel function and step label.  If not, the model is no longer the one the
file was written against (or the file was edited), and :class:`Divergence`
names the first step where the two disagree.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.trace import Step


class Divergence(Exception):
    """The model did not do what the recorded schedule says at some step."""


class Replay(Strategy):
    name = "replay"

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self._at = 0

    def begin(self, index: int) -> None:
        self._at = 0

    def next_task(self, enabled: Tuple[int, ...], current: Optional[int], step: int) -> int:
        if step >= len(self.steps):
            raise Divergence(f"step {step}: the recorded schedule has ended but the model can still run tasks {list(enabled)}")
        want = self.steps[step].task
        if want not in enabled:
            raise Divergence(f"step {step}: recorded task {want} is not enabled (enabled: {list(enabled)})")
        return want

    def observe(self, step: Step) -> None:
        want = self.steps[self._at]
        if (step.func, step.label) != (want.func, want.label):
            raise Divergence(
                f"step {self._at}: task {step.task} is at {step.func} {step.label!r}, "
                f"the seed file recorded {want.func!r} {want.label!r}")
        if step.enabled != want.enabled:
            raise Divergence(
                f"step {self._at}: enabled tasks are {list(step.enabled)}, "
                f"the seed file recorded {list(want.enabled)}")
        self._at += 1
