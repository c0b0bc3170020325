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
or write, as ``(resource, access)`` pairs, the access ``False`` (a read),
``True`` (a write), :data:`ADD` or :data:`CREATE`.  Footprints describe the step that
follows the yield point, up to the next one; a wait's footprint also names
what its ``ready`` predicate reads.

:data:`ADD` is a write that commutes with every other add of the same
resource: two steps that each add to it conflict with neither order, a read
or a write of it conflicts with both.  A primitive records an add only in a
state where the two orders of any two adds reach the same state and each add
does the same in both (an rwsem's reader acquire and release with no writer
and no waiter, :mod:`fuzzrmap.kernel.rwsem`); elsewhere it records a write.
A yield point may declare an add for such a step; exhaustive search takes a
declared add of a step that has not run (a pending step) as a write.

:data:`CREATE` is a write that brings about, once, what a wait reading
the resource (declared, or read by its predicate) waits for: every such wait
is disabled in every state before that write (a queue entry that a consumer
waits for, the end of an RCU read-side section).  It conflicts as a write does, and
exhaustive search knows that such a wait can never be moved before it.
Which resource a step creates depends on the state it runs in, so a
creation is recorded (:func:`touch`) as the step runs, never declared.

Exhaustive search trusts footprints to decide which steps commute, so an
unknown one must never look independent.  Three ways to give one:

* **declared**: ``point(func, label, reads("x") + writes("y"))``;
* :data:`TRACKED` (the empty declaration, ``()``): the step touches only
  objects that record their own accesses (primitives and :class:`Shared`
  objects), so the recorded accesses are the whole footprint;
* **nothing**: the footprint is unknown and the step is taken to write the
  universal resource :data:`ANY`, which conflicts with every step.

Whatever is declared, primitives (locks, atomics, RCU, the slab) and
:class:`Shared` objects also :func:`touch` what they access, so a step's
recorded footprint is the declared one plus everything recorded during the
step.  With footprint checking on (``explore --check-footprints``), an access
of a :class:`Shared` object that the running step did not declare stops the
run with a :class:`FootprintError` naming the step and the resource.

Operations and the check between them.  A model thread may await a call as
an *operation* (:func:`operation`): a kernel call such as ``do_munmap()``
that leaves shared state consistent only when it returns.  When an
operation ends and no thread is inside one, a check of that quiet state runs.  Its reads are not
recorded: a check reads everything, and recorded reads would make every
write race with every check.  Exhaustive search covers the check instead by
the states themselves: for each execution it enumerates the quiet states of
its equivalence class that the execution did not pass through and replays
each new one (:meth:`fuzzrmap.sched.strategies.dpor.Explore.quiet_states`).

Model code must never await anything else (trio primitives included): a driver
that receives a foreign object raises :class:`ModelError`.
"""

from __future__ import annotations

import types
from typing import Awaitable, Callable, Dict, Optional, Tuple, TypeVar, Union

#: an access: ``False`` (read), ``True`` (write), :data:`ADD` or :data:`CREATE`
Access = Union[bool, str]
Footprint = Tuple[Tuple[str, Access], ...]

#: The access of a step that adds to a resource: conflicts with reads and writes, not with other adds.
ADD = "add"
#: The access of the one write that brings about what a wait reading the resource waits for.
CREATE = "create"
#: The universal resource: a step that writes it conflicts with every step.
ANY = "*"
UNKNOWN: Footprint = ((ANY, True),)
#: The empty declaration: the step's accesses are exactly those recorded by :func:`touch`.
TRACKED: Footprint = ()


class ModelError(RuntimeError):
    """The model broke the scheduler's contract (not a kernel bug)."""


class FootprintError(ModelError):
    """A step accessed a tracked resource its declared footprint does not cover."""


Label = Union[str, Callable[[], str]]
T = TypeVar("T")


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


def point(func: str, label: Label, footprint: Optional[Footprint] = None) -> Op:
    """A preemption point before step ``label`` of kernel function ``func``.

    Without a footprint the step may touch anything (:data:`UNKNOWN`).
    """
    return Op(func, label, UNKNOWN if footprint is None else footprint, None)


def wait_until(
    func: str, label: Label, ready: Callable[[], bool], footprint: Optional[Footprint] = None
) -> Op:
    """Block until ``ready()`` is true; the scheduler re-evaluates it at each decision.

    ``footprint`` covers both what ``ready`` reads and what the step then does;
    without one, the wait conflicts with every step (:data:`UNKNOWN`).
    """
    return Op(func, label, UNKNOWN if footprint is None else footprint, ready)


def reads(*resources: str) -> Footprint:
    """The footprint of a step that reads ``resources`` (built once per set of names)."""
    fp = _READS.get(resources)
    if fp is None:
        fp = _READS[resources] = tuple([(r, False) for r in resources])
    return fp


def writes(*resources: str) -> Footprint:
    """The footprint of a step that writes ``resources`` (built once per set of names)."""
    fp = _WRITES.get(resources)
    if fp is None:
        fp = _WRITES[resources] = tuple([(r, True) for r in resources])
    return fp


def adds(*resources: str) -> Footprint:
    """The footprint of a step that adds to ``resources`` (:data:`ADD`; built once per set of names)."""
    fp = _ADDS.get(resources)
    if fp is None:
        fp = _ADDS[resources] = tuple([(r, ADD) for r in resources])
    return fp


def clash(a: Access, b: Access) -> bool:
    """Whether two accesses of one resource conflict: one of them writes, and they are not two adds."""
    return bool(a or b) and not (a == ADD and b == ADD)


# Footprints are immutable and resource names come from model object names, so
# these caches stay as small as the set of distinct footprints a model declares.
_READS: Dict[Tuple[str, ...], Footprint] = {}
_WRITES: Dict[Tuple[str, ...], Footprint] = {}
_ADDS: Dict[Tuple[str, ...], Footprint] = {}


class _Running:
    """The thread executing model code right now (the kernel's ``current``)
    and the scheduler that released it."""

    __slots__ = ("task", "sched", "touched", "check_footprints", "checking")

    def __init__(self) -> None:
        self.task = None
        self.sched = None
        #: accesses of the running step, while the scheduler records footprints
        self.touched = None
        #: check Shared accesses against the running step's declared footprint
        self.check_footprints = False
        #: a check between operations is running (it may read what threads may not)
        self.checking = False


RUNNING = _Running()


def touch(resource: str, write: Access) -> None:
    """Primitives report each access to shared state (recorded only when footprints are)."""
    touched = RUNNING.touched
    if touched is not None:
        touched.append((resource, write))


def covers(footprint: Footprint, resource: str, write: Access) -> bool:
    """Whether ``footprint`` allows the access (a declared write covers any access, a declared add an add)."""
    return any(r == ANY or (r == resource and (w is True or w == write)) for r, w in footprint)


def _touch_checked(resource: str, write: bool) -> None:
    touched = RUNNING.touched
    if touched is None:
        return
    touched.append((resource, write))
    if RUNNING.check_footprints:
        op = RUNNING.task.op if RUNNING.task is not None else None
        if op is not None and op.footprint is not TRACKED and not covers(op.footprint, resource, write):
            step = len(RUNNING.sched.steps) - 1
            raise FootprintError(
                f"step {step} ({RUNNING.task.role}: {op.func} {op.label}) {'writes' if write else 'reads'} "
                f"{resource}, which its declared footprint {list(op.footprint)} does not cover")


class Shared:
    """Shared model state that records its own accesses.

    Every read or write of a public attribute of a subclass instance is
    touched as resource ``"<name>.<attribute>"`` (``name`` is the object's
    own name, given to ``__init__``), so exhaustive search sees it whatever
    the step declared.  Attributes starting with ``_`` are private and not
    recorded.  Reads of methods and class constants are recorded too: keep
    such objects small.
    """

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_shared_name", name)

    def __getattribute__(self, attr: str):
        if attr[0] != "_" and RUNNING.touched is not None:
            _touch_checked(f"{object.__getattribute__(self, '_shared_name')}.{attr}", False)
        return object.__getattribute__(self, attr)

    def __setattr__(self, attr: str, value) -> None:
        if attr[0] != "_" and RUNNING.touched is not None:
            _touch_checked(f"{object.__getattribute__(self, '_shared_name')}.{attr}", True)
        object.__setattr__(self, attr, value)


#: :attr:`~fuzzrmap.sched.trace.Step.ops` bits: the step begins an operation, ends one
BEGINS = 1
ENDS = 2


@types.coroutine
def operation(call: Awaitable[T], check: Callable[[], None]):
    """Await ``call`` as one operation; when it returns and no thread is inside one, run ``check()``.

    The operation begins inside the call's first step (a body starts with a
    yield point) and ends inside its last.  ``check`` reads shared state
    without recording it (see the module notes), raises a violation when the
    state is broken, and must write nothing.
    """
    it = call.__await__()
    try:
        sent = yield it.send(None)
    except StopIteration as done:  # no step: nothing shared was touched
        return done.value
    _enter(running())
    while True:
        try:
            op = it.send(sent)
        except StopIteration as done:
            _leave(running(), check)
            return done.value
        sent = yield op


def _enter(task) -> None:
    task.in_op += 1
    RUNNING.sched.in_operation += 1
    RUNNING.sched.steps[-1].ops |= BEGINS


def _leave(task, check: Callable[[], None]) -> None:
    task.in_op -= 1
    sched = RUNNING.sched
    sched.in_operation -= 1
    sched.steps[-1].ops |= ENDS
    if sched.in_operation == 0:
        touched, RUNNING.touched = RUNNING.touched, None
        RUNNING.checking = True
        try:
            check()
        finally:
            RUNNING.touched = touched
            RUNNING.checking = False


def running():
    """The scheduler task that is executing model code right now."""
    task = RUNNING.task
    if task is None:
        raise ModelError("model code ran outside a scheduled task")
    return task

