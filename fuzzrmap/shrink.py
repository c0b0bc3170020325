"""Shrinking: the same failure with the fewest preemptions, then the fewest steps.

A failing schedule found at random is long and switches threads often; the
race needs only a few of those switches.  The shrinker edits the schedule as
a list of blocks (run this thread for n steps, then that one; see
:class:`~fuzzrmap.sched.strategies.guided.Guided`) and keeps any edit after
which the *same invariant* still breaks with a smaller
(preemptions, length): it removes blocks, moves a block next to the thread's
other block so that the switch in between disappears, and shortens blocks.
Candidates are tried in a fixed order and the first improvement wins, so the
result is a pure function of the input.

Local edits can get stuck, so the result is then checked by the naive
exhaustive search bounded to one preemption fewer: if that search finds the
invariant broken, its schedule replaces ours and shrinking goes on; if it
completes without, the preemption count is *proved* minimal; if its budget
runs out first, the report says so.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import attrs

from fuzzrmap import engine
from fuzzrmap.report import plural, preemption_steps
from fuzzrmap.scenario import Scenario, Variant
from fuzzrmap.sched.seedfile import SeedFile
from fuzzrmap.sched.strategies.dpor import conflicting
from fuzzrmap.sched.strategies.guided import Block, Guided, blocks_of
from fuzzrmap.sched.trace import Execution

PROOF_BUDGET = 20_000


def preemptions(execution: Execution) -> int:
    """Switches away from a thread that was still enabled."""
    return len(preemption_steps(execution))


@attrs.frozen
class ShrinkResult:
    execution: Execution
    original_steps: int
    original_preemptions: int
    proved: bool
    proof_executions: int
    candidates: int

    @property
    def preemptions(self) -> int:
        return preemptions(self.execution)

    def minimality(self) -> str:
        n = self.preemptions
        if self.proved:
            how = "nothing to remove" if n == 0 else f"no failure with {n - 1} in {self.proof_executions} executions"
            return f"minimal: {plural(n, 'preemption')} (proved: {how})"
        return f"{plural(n, 'preemption')} (not proved: budget of {self.proof_executions} executions ran out)"

    def seed_file(self, found: SeedFile) -> SeedFile:
        """The seed file of the shrunk schedule, derived from the one it was shrunk from."""
        return attrs.evolve(found, strategy={"name": "shrink", "from": found.strategy},
                            roles=self.execution.roles, steps=self.execution.steps,
                            failure=self.execution.failure, shrink=self.to_json())

    def to_json(self) -> dict:
        return {"preemptions": self.preemptions, "steps": len(self.execution.steps), "proved": self.proved,
                "proof_executions": self.proof_executions, "original_steps": self.original_steps,
                "original_preemptions": self.original_preemptions}


def shrink(scenario: Scenario, variant: Variant, execution: Execution,
           proof_budget: int = PROOF_BUDGET) -> ShrinkResult:
    target = execution.failure.invariant
    best = execution
    candidates = 0
    while True:
        best, tried = _local(scenario, variant, best, target)
        candidates += tried
        n = preemptions(best)
        if n == 0:
            return ShrinkResult(best, len(execution.steps), preemptions(execution), True, 0, candidates)
        search = engine.explore(scenario, variant, reduction=False, preemption_bound=n - 1,
                                max_executions=proof_budget, target=target)
        if search.failure is not None:
            best = search.failure
            continue
        return ShrinkResult(best, len(execution.steps), preemptions(execution), search.complete,
                            search.executions, candidates)


def _key(execution: Execution) -> Tuple[int, int]:
    return preemptions(execution), len(execution.steps)


def _local(scenario: Scenario, variant: Variant, best: Execution, target: str) -> Tuple[Execution, int]:
    tried = 0
    improved = True
    while improved:
        improved = False
        for blocks in _edits(blocks_of(best.decisions)):
            tried += 1
            candidate = engine.run_one(scenario, variant, Guided(blocks))
            if candidate.failure is not None and candidate.failure.invariant == target \
                    and _key(candidate) < _key(best):
                best = candidate
                improved = True
                break
    return best, tried


def _edits(blocks: List[Block]):
    """Candidate schedules, the ones that can remove a preemption first."""
    n = len(blocks)
    for k in range(n):
        yield _normal(blocks[:k] + blocks[k + 1:])
    for k in range(n):
        for m in range(k + 2, n):
            if blocks[m][0] == blocks[k][0]:
                yield _normal(blocks[:k + 1] + [blocks[m]] + blocks[k + 1:m] + blocks[m + 1:])
                yield _normal(blocks[:k] + blocks[k + 1:m] + [blocks[k]] + blocks[m:])
                break
    for k in range(n):
        if blocks[k][1] > 1:
            yield blocks[:k] + [(blocks[k][0], blocks[k][1] - 1)] + blocks[k + 1:]


def _normal(blocks: List[Block]) -> List[Block]:
    out: List[Block] = []
    for task, count in blocks:
        if out and out[-1][0] == task:
            out[-1] = (task, out[-1][1] + count)
        else:
            out.append((task, count))
    return out


def racing_pair(scenario: Scenario, variant: Variant, execution: Execution) -> Optional[Tuple[int, int]]:
    """Two conflicting steps of different threads whose order decides the failure.

    Scanning back from the failure, the first pair ``(i, j)`` such that running
    thread ``j``'s steps up to ``j`` before step ``i`` (everything else in its
    order) really puts ``j`` first and no longer breaks the invariant.  Pairs
    that conflict on data (``folio->mapping``, ``anon_vma->root``, a PTE) are
    preferred to pairs that only meet on a lock, a refcount or RCU state.
    """
    for data_only in (True, False):
        pair = _first_deciding_pair(scenario, variant, execution, data_only)
        if pair is not None:
            return pair
    return None


_SYNC_SUFFIXES = (".rwsem", ".mmap_lock", ".ptl", ".lock", ".refcount", "._refcount",
                  ".vm_lock", ".vm_lock_seq", ".mm_lock_seq", ".map_changing_lock",
                  ".mm_mt", ".detached")  # VMA lookup and locking: the mm's protocol, not rmap data
_SYNC_PREFIXES = ("rcu:", "exit:", "slot#")


def _is_data(resource: str) -> bool:
    return not (resource.endswith(_SYNC_SUFFIXES) or resource.startswith(_SYNC_PREFIXES) or resource == "slab")


def _first_deciding_pair(scenario, variant, execution, data_only: bool) -> Optional[Tuple[int, int]]:
    target = execution.failure.invariant
    steps = execution.steps
    decisions = list(execution.decisions)
    for j in range(len(steps) - 1, 0, -1):
        for i in range(j - 1, -1, -1):
            a, b = steps[i], steps[j]
            if a.task == b.task or not conflicting(a.footprint, b.footprint):
                continue
            if data_only and not conflicting([f for f in a.footprint if _is_data(f[0])], b.footprint):
                continue
            moved = [d for d in decisions[i:j + 1] if d == b.task]
            rest = [d for d in decisions[i:j + 1] if d != b.task]
            trial = engine.run_one(scenario, variant, Guided(blocks_of(decisions[:i] + moved + rest)))
            if trial.failure is not None and trial.failure.invariant == target:
                continue
            if _runs_before(trial, b, a, steps):
                return i, j
    return None


def _runs_before(trial: Execution, first, second, steps) -> bool:
    """In ``trial``, did step ``first`` (by its thread-local position) run before ``second``?"""
    def position(step) -> Tuple[int, int]:
        k = sum(1 for s in steps[:steps.index(step)] if s.task == step.task)
        return step.task, k

    seen = {}
    order = []
    for s in trial.steps:
        k = seen.get(s.task, 0)
        seen[s.task] = k + 1
        order.append((s.task, k))
    want, other = position(first), position(second)
    if want not in order:
        return False
    return other not in order or order.index(want) < order.index(other)
