"""Exhaustive search: depth-first over schedules, with partial-order reduction.

The search is stateless: every schedule is re-executed from the start, its
first decisions replaying a prefix of the previous one (the DFS stack), the
rest chosen fresh.  Two modes:

* **Reduced** (the default): dynamic partial-order reduction with sleep sets
  (Flanagan and Godefroid, POPL'05; Abdulla et al., POPL'14).  Each executed
  step carries its footprint - the declared accesses of its yield point plus
  everything the primitives touched (:func:`fuzzrmap.sched.api.touch`).  After
  an execution, every *race* - two conflicting steps of different threads not
  ordered by program order, by another conflict, or by one step enabling the
  other - adds the later thread to the backtrack set of the state before the
  earlier step (or, when that thread was not enabled there, every enabled
  thread).  Sleep sets keep transitions already explored from a state asleep
  along independent branches, so equivalent orders are not run twice.  The
  search is complete: every Mazurkiewicz trace, hence every reachable final
  state and violation, is covered (tests compare it with the naive search).
* **Naive**, optionally bounded by a number of *preemptions* (switches away
  from a thread that could have continued): every schedule is run.  This is
  the reference for the soundness tests and the search that proves a trace
  minimal (no failure with fewer preemptions).

A preemption bound is only offered without reduction: combining the two
soundly needs the extra backtracking of bounded POR (Coons et al.), which is
left out.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

import attrs

from fuzzrmap.sched.api import Footprint, ModelError
from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.trace import Execution


class Prune(Exception):
    """The current execution is redundant (sleep-set blocked) or over the bound."""


def conflicting(a: Footprint, b: Footprint) -> bool:
    """Two footprints conflict when they share a resource and one of them writes it."""
    for res, w in a:
        for res2, w2 in b:
            if res == res2 and (w or w2):
                return True
    return False


@attrs.define(eq=False)
class Node:
    """A state on the DFS stack: the decision taken there and what is left to try."""

    enabled: Tuple[int, ...]
    current: Optional[int]
    preemptions: int
    sleep: Dict[int, Footprint]
    chosen: int = -1
    backtrack: Set[int] = attrs.Factory(set)
    #: threads explored from this state, with the footprint of their step
    done: Dict[int, Footprint] = attrs.Factory(dict)

    def preempts(self, tid: int) -> bool:
        return self.current is not None and tid != self.current and self.current in self.enabled


class Explore(Strategy):
    name = "explore"

    def __init__(self, reduction: bool = True, preemption_bound: Optional[int] = None) -> None:
        if reduction and preemption_bound is not None:
            raise ValueError("a preemption bound needs the naive search (reduction=False)")
        self.reduction = reduction
        self.bound = preemption_bound
        self.stack: List[Node] = []
        #: the scheduler of the running execution (its recorded footprints)
        self.sched = None
        self._fresh_from = 0
        self.hit_bound = False

    # -- moving the DFS ------------------------------------------------------
    def advance(self) -> bool:
        """Set up the next execution; False when the search space is exhausted."""
        while self.stack:
            node = self.stack[-1]
            for tid in sorted(node.backtrack):
                if tid not in node.done and tid not in node.sleep and self._allowed(node, tid):
                    node.chosen = tid
                    self._fresh_from = len(self.stack) - 1
                    return True
            self.stack.pop()
        return False

    def _allowed(self, node: Node, tid: int) -> bool:
        if self.bound is None or not node.preempts(tid) or node.preemptions < self.bound:
            return True
        self.hit_bound = True
        return False

    # -- the Strategy interface ---------------------------------------------------
    def next_task(self, enabled: Tuple[int, ...], current: Optional[int], step: int) -> int:
        if step < len(self.stack):
            node = self.stack[step]
            if node.enabled != enabled:
                raise ModelError(f"nondeterministic model: at step {step} enabled {enabled}, before {node.enabled}")
            if step > 0:
                self._record_parent(step)
            return node.chosen
        parent = self.stack[-1] if self.stack else None
        sleep: Dict[int, Footprint] = {}
        preemptions = 0
        if parent is not None:
            fp = self._record_parent(step)
            preemptions = parent.preemptions + parent.preempts(parent.chosen)
            if self.reduction:
                asleep = list(parent.sleep.items()) + [(q, f) for q, f in parent.done.items() if q != parent.chosen]
                sleep = {q: f for q, f in asleep if not conflicting(f, fp)}
        node = Node(enabled, current, preemptions, sleep)
        awake = [t for t in enabled if t not in sleep]
        if not awake:
            raise Prune("sleep-set blocked")
        tid = current if current in awake else awake[0]
        if not self._allowed(node, tid):
            raise Prune("over the preemption bound")
        node.chosen = tid
        node.backtrack = {tid} if self.reduction else {t for t in enabled}
        self.stack.append(node)
        return tid

    def _record_parent(self, step: int) -> Footprint:
        fp = self.sched.steps[step - 1].footprint
        parent = self.stack[step - 1]
        parent.done[parent.chosen] = fp
        return fp

    def describe(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, "preemption_bound": self.bound}

    # -- after an execution ------------------------------------------------------
    def analyse(self, execution: Execution) -> None:
        """Record the last step and, with reduction, add backtrack points for every race."""
        steps = execution.steps
        if steps:
            self.stack[len(steps) - 1].done[steps[-1].task] = steps[-1].footprint
        if self.reduction:
            self._races(execution)

    def _races(self, execution: Execution) -> None:
        steps = execution.steps
        n_threads = len(execution.roles)
        clocks: List[List[int]] = []
        last_of: Dict[int, int] = {}
        touched: Dict[str, List[Tuple[int, bool]]] = {}
        for i, step in enumerate(steps):
            t = step.task
            vc = list(clocks[last_of[t]]) if t in last_of else [-1] * n_threads
            # Races are judged on t's own history: the step that last enabled t
            # orders it, but t may have been enabled before, then disabled by a
            # conflicting step (a lock stolen from a woken waiter) that it races.
            ordered = vc
            enabler = self._enabler(i, t)
            if enabler is not None:
                vc = _join(vc, clocks[enabler])
            earlier = set()
            for res, w in step.footprint:
                for j, wj in touched.get(res, ()):
                    if (w or wj) and steps[j].task != t:
                        earlier.add(j)
            # A conflicting step j during which t was disabled (t blocked on
            # what j held) is no race partner that orders the ones before it:
            # t may still be co-enabled with, and race against, an earlier step.
            for j in sorted(earlier, reverse=True):
                if ordered[steps[j].task] >= j:
                    continue  # already ordered before i
                if i >= self._fresh_from:
                    self._backtrack(j, t)
                if t in self.stack[j].enabled:
                    ordered = _join(ordered, clocks[j])
            for j in earlier:
                vc = _join(vc, clocks[j])
            vc[t] = i
            clocks.append(vc)
            last_of[t] = i
            for res, w in step.footprint:
                touched.setdefault(res, []).append((i, w))

    def _enabler(self, i: int, t: int) -> Optional[int]:
        """The step that made thread ``t`` enabled for its step ``i``, if it was disabled before."""
        for j in range(i - 1, -1, -1):
            if t not in self.stack[j].enabled:
                return j
            if self.stack[j].chosen == t:
                return None
        return None

    def _backtrack(self, j: int, t: int) -> None:
        node = self.stack[j]
        if t in node.enabled:
            if t not in node.sleep:
                node.backtrack.add(t)
        else:
            node.backtrack.update(q for q in node.enabled if q not in node.sleep)


def _join(a: List[int], b: List[int]) -> List[int]:
    return [x if x >= y else y for x, y in zip(a, b)]
