"""What model code may await: yield points and scheduler-owned waits.

A model thread is a plain ``async def`` body.  Every time it is about to touch
shared state or a lock it awaits an :class:`Op`; the op travels up to whoever
drives the coroutine (a driver in :mod:`fuzzrmap.sched.drivers`) and the
scheduler decides which thread runs next.  A thread that awaits an op is
parked *before* the access the op names, so the access happens when, and only
when, the scheduler picks that thread.

There are two kinds of op, and one awaitable for each:

* :func:`point` - a preemption point.  Always enabled.
* :func:`wait_until` - a blocking wait.  Enabled only while its ``ready``
  predicate holds.  This is how the scheduler, not trio, owns blocking: a
  thread asleep on an rwsem is simply not enabled, and when no thread is
  enabled while some are alive, that is a deadlock.

Every op carries the kernel function it belongs to, a step label from the
model specification and a *footprint*: the shared resources the step will read
or write, as ``(resource, is_write)`` pairs.  Footprints describe the step that
follows the yield point, up to the next one.

Primitives (locks, atomics, RCU, the slab) also :func:`touch` what they
access, so a step's recorded footprint is the declared one plus everything
the primitives did during the step; exhaustive search relies on it.

Model code must never await anything else (trio primitives included): a driver
that receives a foreign object raises :class:`ModelError`.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple, Union

Footprint = Tuple[Tuple[str, bool], ...]


class ModelError(RuntimeError):
    """The model broke the scheduler's contract (not a kernel bug)."""


Label = Union[str, Callable[[], str]]


class Op:
    """A yield point: the step a parked thread will perform when chosen.

    A label that names what the step will act on (an anon_vma's current root,
    a slot's generation) is given as a callable: it is formatted when the
    label is read, and the scheduler reads it when it chooses the step - right
    before the step runs, after whatever other threads did meanwhile - so the
    recorded label says what the step did.
    """

    __slots__ = ("func", "_label", "footprint", "ready")

    def __init__(
        self,
        func: str,
        label: Label,
        footprint: Footprint,
        ready: Optional[Callable[[], bool]],
    ) -> None:
        self.func = func
        self._label = label
        self.footprint = footprint
        self.ready = ready

    @property
    def label(self) -> str:
        label = self._label
        return label if isinstance(label, str) else label()

    def __await__(self):
        yield self

    def __repr__(self) -> str:
        return f"Op({self.func}: {self.label})"


def point(func: str, label: Label, footprint: Footprint = ()) -> Op:
    """A preemption point before step ``label`` of kernel function ``func``."""
    return Op(func, label, footprint, None)


def wait_until(
    func: str, label: Label, ready: Callable[[], bool], footprint: Footprint = ()
) -> Op:
    """Block until ``ready()`` is true; the scheduler re-evaluates it at each decision."""
    return Op(func, label, footprint, ready)


def reads(*resources: str) -> Footprint:
    return tuple((r, False) for r in resources)


def writes(*resources: str) -> Footprint:
    return tuple((r, True) for r in resources)


class _Running:
    """The thread executing model code right now (the kernel's ``current``)
    and the scheduler that released it."""

    task = None
    sched = None
    #: accesses of the running step, while the scheduler records footprints
    touched = None


RUNNING = _Running()


def touch(resource: str, write: bool) -> None:
    """Primitives report each access to shared state (recorded only when footprints are)."""
    touched = RUNNING.touched
    if touched is not None:
        touched.append((resource, write))


def running():
    """The scheduler task that is executing model code right now."""
    task = RUNNING.task
    if task is None:
        raise ModelError("model code ran outside a scheduled task")
    return task

