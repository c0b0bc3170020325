"""Preemption models: where a thread may be switched away from, and what each switch needs.

The scheduler may switch away from a thread that could continue (a
*preemption*, ``*`` in reports) at any yield point.  In a kernel the model
threads are tasks on different CPUs, and a preemption means the thread was
*delayed* at that point while the others ran.  Where a delay is possible
depends on the kernel's preemption model (kernel/Kconfig.preempt) and on
what the thread is doing there:

* at a **sleeping point** (a blocking lock, ``might_sleep()``, a
  ``GFP_KERNEL`` allocation) any kernel may delay it: it sleeps when the lock
  is contended or the allocation reclaims (``PREEMPT_NONE``), or is
  rescheduled at the explicit preemption point (``PREEMPT_VOLUNTARY``);
* at a plain **preemptible point** it needs ``CONFIG_PREEMPT`` ("all kernel
  code (that is not executing in a critical section) preemptible"), or an
  interrupt;
* **inside an RCU read-side section** it needs ``CONFIG_PREEMPT_RCU``, which
  ``CONFIG_PREEMPT`` turns on (kernel/rcu/Kconfig: ``default y if
  PREEMPTION``, v6.8-v6.12; ``if (PREEMPT || PREEMPT_RT || PREEMPT_DYNAMIC)``
  since), or an interrupt or a stalled vCPU;
* **under a spinlock** (preemption disabled) no preemption model allows it:
  it needs an interrupt or a stalled vCPU (hypervisor preemption).

The environment of a scenario tells which case a thread is in
(:meth:`~fuzzrmap.environment.Environment.preemption_context`); this module
only orders the models and names what each allows, from the most to the
least restrictive:

* ``none`` and ``voluntary``: a switch only at sleeping points.  The two
  differ in how soon a task is rescheduled, not in where it can be: a
  thread that reaches a sleeping point may sleep there in either (a lock
  held by a thread outside the model, reclaim in an allocation).
* ``full``: ``CONFIG_PREEMPT`` with ``CONFIG_PREEMPT_RCU``: a switch
  anywhere but under a spinlock.
* ``anywhere``: a switch at every yield point (the default), which also
  stands for a long interrupt or a vCPU stall under a spinlock.

What is left out: a delay's length.  On SMP, two CPUs overlap short stretches
of code with no delay at all; a model preemption lets the others run any
number of steps, which needs the thread to stop.  A verdict under ``none``
is therefore about schedules in which no thread stops at a point where it
cannot sleep, not about every SMP timing.
"""

from __future__ import annotations

from typing import Tuple

import attrs

NONE, VOLUNTARY, FULL, ANYWHERE = "none", "voluntary", "full", "anywhere"
#: from the most restrictive to the least
MODELS: Tuple[str, ...] = (NONE, VOLUNTARY, FULL, ANYWHERE)
DEFAULT = ANYWHERE

#: what each model allows, as the VERIFIED scope line states it
SCOPES = {
    ANYWHERE: "preempt anywhere (a switch at every yield point)",
    FULL: "preemption model full (CONFIG_PREEMPT with CONFIG_PREEMPT_RCU: a switch anywhere but under a spinlock)",
    VOLUNTARY: "preemption model voluntary (CONFIG_PREEMPT_VOLUNTARY: a switch only at sleeping points)",
    NONE: "preemption model none (CONFIG_PREEMPT_NONE: a switch only at sleeping points)",
}


def allows(model: str, needs: str) -> bool:
    """Whether preemption model ``model`` allows a preemption that needs ``needs``."""
    return MODELS.index(needs) <= MODELS.index(model)


def strictest(needs) -> str:
    """The least permissive model that allows every one of ``needs`` (``none`` for no preemption)."""
    return max(needs, key=MODELS.index, default=NONE)


@attrs.frozen
class Context:
    """Where a thread is when it is preempted: ``where`` it is (for the report), the least
    permissive model that allows a preemption there (``needs``), and ``why`` (what the kernel
    needs to delay the thread there)."""

    where: str
    needs: str
    why: str


@attrs.frozen
class Preemption:
    """Step ``step`` switched away from thread ``thread``, which was at ``context``; ``before``
    is the label of the step the thread ran next, as it ran (empty if it never ran again)."""

    step: int
    thread: str
    context: Context
    before: str = ""

    @property
    def needs(self) -> str:
        return self.context.needs

    def legend(self) -> str:
        return f"step {self.step}*: {self.thread} delayed {self.where} (needs {self.context.why})"

    @property
    def where(self) -> str:
        return f"{self.context.where}, before {self.before}" if self.before else self.context.where

    def to_json(self) -> dict:
        return {"step": self.step, "thread": self.thread, "context": self.context.where, "before": self.before,
                "needs": self.context.needs, "why": self.context.why}


def verdict(preemptions) -> str:
    """One line: the least permissive model under which the whole trace runs."""
    needs = strictest(p.needs for p in preemptions)
    if not preemptions:
        return "preemption model needed: none (no preemption)"
    weaker = [m for m in MODELS if not allows(m, needs)]
    if not weaker:
        return "preemption model needed: none (every preemption is at a sleeping point)"
    return (f"preemption model needed: {needs} (not possible under {' or '.join(weaker)} without "
            f"an interrupt or a vCPU stall)")
