"""Trace records: what one schedule did, step by step, and how it ended.

A *step* is one scheduling decision: the task released, the yield point it was
parked at (kernel function and step label), and the set of tasks that were
enabled at that moment.  The list of chosen task ids is the schedule's
*decisions*; together with the labels and enabled sets it is what a seed file
stores, so a replay can both re-execute the schedule and notice the first step
at which the model no longer behaves as it did when the file was written.

A :class:`Failure` is a broken invariant (or a deadlock, or a livelock) with
the evidence a reviewer needs.  An :class:`Event` is the same shape but does
not fail the run: the accuracy misses of unlocked rmap walkers (I10c) that the
fixed kernel has too.
"""

from __future__ import annotations

from typing import Optional, Tuple

import attrs

from fuzzrmap.sched.api import Footprint

SAFETY = "SAFETY"
ACCURACY = "ACCURACY"
LIVENESS = "LIVENESS"


class Step:
    """One decision.  ``footprint`` is the released step's accesses,
    ``(resource, access)`` pairs, and ``ops`` whether it began or ended an
    operation; both are derived from the model on every run, not stored in
    seed files and not compared.

    A plain slotted class rather than an attrs record: one is built per
    decision, on the hot path.  Treat it as immutable once its schedule has
    ended (the scheduler completes ``footprint`` while recording one).
    """

    __slots__ = ("task", "func", "label", "enabled", "footprint", "ops")

    def __init__(self, task: int, func: str, label: str, enabled: Tuple[int, ...],
                 footprint: Footprint = ()) -> None:
        self.task = task
        self.func = func
        self.label = label
        self.enabled = enabled
        self.footprint = footprint
        #: whether the step began or ended an operation (:data:`~fuzzrmap.sched.api.BEGINS`, ``ENDS``)
        self.ops = 0

    def _key(self) -> tuple:
        return self.task, self.func, self.label, self.enabled

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Step:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Step(task={self.task!r}, func={self.func!r}, label={self.label!r}, enabled={self.enabled!r})"


@attrs.frozen
class Failure:
    """A violated invariant: ``invariant`` is its id in the spec (``I1c``, ``I8``...)."""

    invariant: str
    kind: str
    task: str
    step: int
    message: str

    def headline(self) -> str:
        return f"{self.invariant} [{self.kind}] in {self.task} at step {self.step}: {self.message}"

    def to_json(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Failure":
        return cls(**{f.name: data[f.name] for f in attrs.fields(cls)})


Event = Failure


@attrs.frozen
class Execution:
    """The outcome of one schedule."""

    roles: Tuple[str, ...]
    steps: Tuple[Step, ...]
    failure: Optional[Failure]
    events: Tuple[Event, ...]
    #: failures that followed ``failure`` in the same run (the run went on after it)
    consequences: Tuple[Failure, ...] = ()

    @property
    def decisions(self) -> Tuple[int, ...]:
        return tuple(s.task for s in self.steps)
