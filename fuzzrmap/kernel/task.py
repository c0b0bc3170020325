"""``current`` and the per-thread kernel state (a slice of ``task_struct``).

Each model thread has a :class:`TaskStruct` hung on its scheduler task.  It
keeps what the kernel keeps per task and what lockdep would know: the RCU
read-side nesting depth and the locks held, in acquisition order.  The
checker reads it for the lock-pairing and lock-order invariants (I7, I8) and
for the grace-period rule (I9), and the environment for where a preempted
thread is (:meth:`~fuzzrmap.kernel.environment.KernelEnvironment.preemption_context`).
Model code marks the yield points where the kernel may sleep with
:func:`sleeping` (``might_sleep()``, a blocking lock, a ``GFP_KERNEL``
allocation) and a spinlock's contended acquire with :func:`spinning`; a wait
is a sleeping point unless it is marked spinning.

:class:`Kernel` holds the globals of one schedule (``anon_vma_cachep``, RCU
state, the mms).  A fresh one is built for every
schedule, so nothing leaks from one run into the next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import attrs

from fuzzrmap.sched import api

if TYPE_CHECKING:  # pragma: no cover
    from fuzzrmap.kernel.memory import MM, VMA
    from fuzzrmap.kernel.rcu import RCU
    from fuzzrmap.kernel.slab import Slab


@attrs.define(eq=False)
class TaskStruct:
    comm: str
    kernel: "Kernel"
    rcu_read_lock_nesting: int = 0
    #: RCU read-side sections entered so far (identifies the current one).
    rcu_sections: int = 0
    #: (lock, mode) pairs in acquisition order; mode is "read", "write" or "lock".
    held: List[Tuple[object, str]] = attrs.Factory(list)
    #: checker: slot -> generation of each anon_vma pointer this task loaded (I5b)
    believed: Dict[int, int] = attrs.Factory(dict)
    #: checker: (anon_vma, rwsem) returned locked by folio_lock_anon_vma_read (I2, I5d)
    anon_vma_locked: List[Tuple[object, object]] = attrs.Factory(list)
    #: the last yield point marked :func:`sleeping` / :func:`spinning` (compared by identity)
    sleeps_at: Optional[api.Op] = None
    spins_at: Optional[api.Op] = None

    @property
    def rcu_resource(self) -> str:
        """Footprint name of this task's RCU read-side state."""
        return f"rcu:{self.comm}"

    def rcu_section_resource(self, n: int) -> str:
        """Footprint name of this task's ``n``-th read-side section (what a grace period waits for)."""
        return f"rcu:section{n}:{self.comm}"

    def holds(self, lock, mode: str) -> bool:
        return (lock, mode) in self.held


@attrs.define(eq=False)
class Kernel:
    anon_vma_cachep: "Slab"
    rcu: "RCU"
    mms: List["MM"] = attrs.Factory(list)

    def vmas(self) -> List["VMA"]:
        """Every VMA of every mm, in mm order."""
        return [v for mm in self.mms for v in mm.vmas]


def current() -> TaskStruct:
    """The running model thread's ``task_struct``."""
    task = api.RUNNING.task  # api.running() without its call (it raises when there is none): most steps ask
    return (task if task is not None else api.running()).state


def sleeping(op: api.Op) -> api.Op:
    """Mark ``op``, about to be awaited, as a point where the kernel may sleep: a preemption
    there needs no preemption model."""
    current().sleeps_at = op
    return op


def spinning(op: api.Op) -> api.Op:
    """Mark the wait ``op`` as a spinlock's acquire: not a sleeping point (a delay there is
    a delay before ``spin_lock()``, as at a plain point)."""
    current().spins_at = op
    return op
