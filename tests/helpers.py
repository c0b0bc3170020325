"""Test harness: run hand-written model threads, and steer a schedule by role."""

from __future__ import annotations

import signal
from typing import List, Optional, Sequence, Tuple

from fuzzrmap.engine import finish, prepare
from fuzzrmap.kernel.rcu import RCU
from fuzzrmap.kernel.rmap import AnonVma
from fuzzrmap.kernel.slab import Slab
from fuzzrmap.kernel.task import Kernel, TaskStruct
from fuzzrmap.sched import drivers
from fuzzrmap.sched.scheduler import Scheduler
from fuzzrmap.sched.strategies import Strategy


class Scripted(Strategy):
    """Run tasks in a fixed order of task ids; when the script is used up, the lowest enabled id."""

    name = "scripted"

    def __init__(self, order: Sequence[int]) -> None:
        self.order = list(order)
        self.at = 0

    def next_task(self, enabled, current, step):
        while self.at < len(self.order):
            want = self.order[self.at]
            self.at += 1
            if want in enabled:
                return want
        return enabled[0]


class Plan(Strategy):
    """Steer a scenario by role: each leg runs one role until its pending label starts with a prefix.

    A leg ``(role, prefix)`` runs ``role`` while it is enabled and not parked at a
    yield point whose label starts with ``prefix`` (``None``: until it ends or blocks).
    After the plan, the lowest enabled id runs.
    """

    name = "plan"

    def __init__(self, roles: Sequence[str], legs: Sequence[Tuple[str, Optional[str]]]) -> None:
        self.roles = list(roles)
        self.legs = list(legs)
        self.sched: Optional[Scheduler] = None

    def next_task(self, enabled, current, step):
        while self.legs:
            role, prefix = self.legs[0]
            tid = self.roles.index(role)
            task = self.sched.tasks[tid]
            if tid in enabled and (prefix is None or not task.op.label.startswith(prefix)):
                return tid
            self.legs.pop(0)
        return enabled[0]


def run_plan(scenario, variant, legs):
    plan = Plan([], legs)
    sched = prepare(scenario, variant, plan, 0)
    plan.roles = [t.role for t in sched.tasks]
    plan.sched = sched
    drivers.run_direct(sched)
    return finish(sched), sched


def _kernel() -> Kernel:
    return Kernel(anon_vma_cachep=Slab("anon_vma", AnonVma), rcu=RCU())


def run_threads(bodies: List, order: Sequence[int] = (), max_steps: int = 1000,
                legs: Optional[Sequence[Tuple[str, Optional[str]]]] = None, hunks: Sequence = ()):
    """Run ``bodies`` (callables taking the kernel) as threads t0, t1, ...; returns (execution, kernel).

    The schedule follows ``order`` (task ids), or ``legs`` as :class:`Plan` reads
    them (roles ``t0``, ``t1``...); ``hunks`` are the hunks the schedule runs with.
    """
    kernel = _kernel()
    roles = [f"t{i}" for i in range(len(bodies))]
    strategy = Plan(roles, legs) if legs is not None else Scripted(order)
    sched = Scheduler(strategy, max_steps)
    sched.hunks = frozenset(h.name for h in hunks)
    if legs is not None:
        strategy.sched = sched
    for i, body in enumerate(bodies):
        task = sched.spawn(f"t{i}", body(kernel))
        task.state = TaskStruct(f"t{i}", kernel)
        kernel.rcu.tasks.append(task.state)
    drivers.run_direct(sched)
    return sched.execution(), kernel


def ctrl_c_reaches_it() -> None:
    """``preexec_fn`` of a CLI process that a test stops with SIGINT: give it Ctrl-C's default
    action, as a terminal would, even when the tests run in the background of a shell, which
    ignores SIGINT there (the CLI would inherit that, and Python then never raises
    KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
