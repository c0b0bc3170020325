"""The kernel model as an environment (:mod:`fuzzrmap.environment`).

A scenario that names :data:`KERNEL` gets, for every schedule:

* a fresh :class:`~fuzzrmap.kernel.task.Kernel` (an ``anon_vma`` slab,
  RCU state, no mms yet), passed to its ``setup(k)``;
* a :class:`~fuzzrmap.kernel.task.TaskStruct` per thread, registered with RCU;
* the RCU grace-period thread (role ``rcu``), which releases the slab pages
  of freed anon_vmas one grace period after the free and returns when every
  other thread has;
* the end checks: at each thread's end, no lock held and no open RCU section
  (I7, I9); once all have returned, I5c, I6 and I11 over the final state,
  with the folios the world names (:class:`KernelWorld`);
* what the I12-I14 check between operations never reads: locks, RCU state,
  thread exits and accessed bits (:meth:`KernelEnvironment.quiet_check_reads`,
  held to it by ``--check-footprints`` through a digest of everything else);
* where a thread is when it is preempted (:mod:`fuzzrmap.preemption`): under
  a spinlock, inside an RCU read-side section (``CONFIG_PREEMPT_RCU`` is
  what ``CONFIG_PREEMPT`` gives), at a sleeping point (marked by the model
  with :func:`~fuzzrmap.kernel.task.sleeping`; every wait but a spinlock's)
  or at a plain preemptible point.  The model has no ``preempt_disable()``
  of its own: spinlocks are what disables preemption in the code modelled.

What is left out: the kernel's other background threads (kswapd, kcompactd)
are not modelled; a scenario that needs one writes it as its own thread.
"""

from __future__ import annotations

import enum
import types
from typing import Any, Callable, Dict, List, Tuple

import attrs

from fuzzrmap import preemption
from fuzzrmap.check import invariants, violation
from fuzzrmap.environment import Environment, Thread
from fuzzrmap.kernel.locking import SPIN, ExclusiveLock
from fuzzrmap.kernel.memory import Folio
from fuzzrmap.kernel.rcu import RCU, rcu_gp_kthread
from fuzzrmap.kernel.rmap import AnonVma
from fuzzrmap.kernel.rwsem import RWSem
from fuzzrmap.kernel.slab import Slab
from fuzzrmap.kernel.task import Kernel, TaskStruct
from fuzzrmap.scenario import World


@attrs.define
class KernelWorld(World):
    """A world whose end state is checked for the folios it names (I5c)."""

    folios: List[Folio] = attrs.Factory(list)


class KernelEnvironment(Environment):
    name = "kernel"

    def build(self, setup: Callable[[Kernel], World]) -> Tuple[Kernel, World]:
        kernel = Kernel(anon_vma_cachep=Slab("anon_vma", AnonVma), rcu=RCU())
        return kernel, setup(kernel)

    def background(self, sched, kernel: Kernel) -> List[Thread]:
        return [("rcu", rcu_gp_kthread)]

    def task_state(self, role: str, kernel: Kernel) -> TaskStruct:
        state = TaskStruct(role, kernel)
        kernel.rcu.tasks.append(state)
        return state

    def preemption_context(self, state: TaskStruct, op) -> preemption.Context:
        spinlocks = [lock.name for lock, mode in state.held if mode == SPIN]
        if spinlocks:
            return preemption.Context(
                f"holding spinlock {', '.join(spinlocks)}", preemption.ANYWHERE,
                "an interrupt or a vCPU stall: spin_lock() disables preemption")
        if state.rcu_read_lock_nesting:
            return preemption.Context(
                f"inside an RCU read-side section (nesting {state.rcu_read_lock_nesting})",
                preemption.FULL, "CONFIG_PREEMPT_RCU, an interrupt or a vCPU stall")
        if op is state.sleeps_at or (op.ready is not None and op is not state.spins_at):
            return preemption.Context("at a sleeping point", preemption.NONE,
                                      "nothing special: it may sleep there")
        return preemption.Context("at a preemptible point", preemption.FULL,
                                  "CONFIG_PREEMPT or an interrupt")

    def thread_exit(self, state: TaskStruct) -> None:
        invariants.task_exit(state)

    def final_check(self, kernel: Kernel, world: Any) -> None:
        broken = invariants.final_state(kernel, world.folios if isinstance(world, KernelWorld) else ())
        if broken is not None:
            raise violation(*broken)

    def quiet_check_reads(self, resource: str) -> bool:
        """I12-I14 (:mod:`fuzzrmap.check.structure`) read no lock (the rwsems, spinlocks and
        folio locks, ``mmap_lock``, the per-VMA lock and its sequence counts), no RCU state, no
        thread's exit and no accessed bit."""
        return not resource.startswith(_UNREAD_PREFIXES) and not resource.endswith(_UNREAD_SUFFIXES)

    def quiet_digest(self, kernel: Kernel, world: Any) -> list:
        """The kernel and the world, without what :meth:`quiet_check_reads` leaves out."""
        out: list = []
        _digest((kernel, world), out, {})
        return out


_UNREAD_PREFIXES = ("rcu:", "rcu.", "exit:", "young:")
_UNREAD_SUFFIXES = (".rwsem", ".ptl", ".lock", "_lock", "_lock_seq")
#: objects and attributes behind those resources (and the checker's own bookkeeping of pins)
_UNREAD_TYPES = (RWSem, ExclusiveLock, RCU, TaskStruct, types.FunctionType, types.MethodType)
_UNREAD_ATTRS = frozenset({"young", "vm_lock_seq", "mm_lock_seq", "_pins"})


def _digest(o: Any, out: list, seen: Dict[int, int]) -> None:
    """Append a canonical form of ``o`` to ``out``: values as they are, objects by their
    fields, each object once (a second visit appends its number)."""
    if o is None or isinstance(o, (int, str, float, enum.Enum)):
        out.append(o)
        return
    if isinstance(o, type):
        out.append(o.__qualname__)
        return
    if isinstance(o, _UNREAD_TYPES):
        out.append(type(o).__name__)
        return
    if id(o) in seen:
        out.append(("seen", seen[id(o)]))
        return
    seen[id(o)] = len(seen)
    out.append(type(o).__name__)
    if isinstance(o, (list, tuple)):
        out.append(len(o))
        for x in o:
            _digest(x, out, seen)
    elif isinstance(o, dict):
        out.append(len(o))
        for k, v in o.items():
            _digest(k, out, seen)
            _digest(v, out, seen)
    elif isinstance(o, (set, frozenset)):
        out.append(sorted(map(repr, o)))
    else:
        names = list(getattr(o, "__dict__", ())) + [n for c in type(o).__mro__ for n in getattr(c, "__slots__", ())]
        for name in names:
            if name not in _UNREAD_ATTRS and hasattr(o, name):
                out.append(name)
                _digest(getattr(o, name), out, seen)


KERNEL = KernelEnvironment()
