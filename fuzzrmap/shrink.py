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

Local edits can get stuck, so the preemption count is then checked by
iterative deepening: the naive exhaustive search bounded to 0, 1, ...
preemptions, all within one budget of executions.  The first bound at which
the invariant breaks gives a schedule with that many preemptions, and since
every lower bound was searched completely without it, that count is *proved*
minimal.  When the budget runs out first, the bounds searched so far are a
proved lower bound, and the report states both ends.

The reduced search (DPOR) cannot prove a preemption bound: pruning an order
as equivalent to one already run can cut the one with fewer preemptions
(bounding it soundly needs the extra backtracking of bounded POR, which
:mod:`~fuzzrmap.sched.strategies.dpor` leaves out).  It is used where it is
sound: it runs one schedule of *every* trace, so its failing schedules
include one of each failing trace.  When local edits leave more than one
preemption, the one of those with the fewest becomes the starting point of
more local edits, before the proof.  That is what shrinks long witnesses
such as the fork window's.

Under a preemption model other than ``anywhere`` every run of the shrinker
(local edits, the searches) runs under that model, so the shrunk schedule is
one the model allows; the reduced search is then a naive one (see
:func:`fuzzrmap.engine.explore`).

With ``jobs`` > 1 the naive searches of the proof run in that many worker
processes (:mod:`fuzzrmap.explore_parallel`, in order): each gives the
sequential search's answer - the same first failure, the same budget cut,
the same count - so the result is the same as with ``jobs=1``, witness
and statement alike; only the time differs.  The reduced search stays in
one process (it reads every execution).

Ctrl-C at any point keeps the best schedule so far and marks the result
interrupted.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import attrs

from fuzzrmap import engine, preemption
from fuzzrmap.report import plural, preemption_steps
from fuzzrmap.scenario import Scenario, Variant
from fuzzrmap.sched.seedfile import SeedFile
from fuzzrmap.sched.strategies.dpor import conflicting
from fuzzrmap.sched.strategies.guided import Block, Guided, blocks_of
from fuzzrmap.sched.trace import Execution

PROOF_BUDGET = 10_000

#: ``progress(executions, phase)``: executions run so far and what is being done
Progress = Callable[[int, str], None]


def preemptions(execution: Execution) -> int:
    """Switches away from a thread that was still enabled."""
    return len(preemption_steps(execution))


@attrs.frozen
class ShrinkResult:
    execution: Execution
    original_steps: int
    original_preemptions: int
    #: no schedule with fewer than this many preemptions breaks the invariant (complete searches)
    at_least: int
    #: executions of the complete searches that established ``at_least``
    proof_executions: int
    candidates: int
    #: the bound whose search stopped at the budget, None when every search completed
    budget_cut: Optional[int] = None
    interrupted: bool = False
    preemption_model: str = preemption.DEFAULT

    @property
    def preemptions(self) -> int:
        return preemptions(self.execution)

    @property
    def proved(self) -> bool:
        return self.at_least >= self.preemptions

    def minimality(self) -> str:
        n = self.preemptions
        if self.proved:
            how = ("nothing to remove" if n == 0 else
                   f"no failure with {n - 1} in {self.proof_executions:,} executions")
            return f"minimal: {plural(n, 'preemption')} (proved: {how})"
        if self.at_least > 0:
            known = (f"at least {self.at_least}: no failure with at most {self.at_least - 1} "
                     f"in {self.proof_executions:,} executions")
        else:
            known = "nothing proved"
        why = ("interrupted" if self.interrupted else
               f"the search with {self.budget_cut} ran out of its budget")
        return f"{plural(n, 'preemption')} (not proved minimal: {known}; {why})"

    def seed_file(self, found: SeedFile) -> SeedFile:
        """The seed file of the shrunk schedule, derived from the one it was shrunk from."""
        origin = found.strategy.get("from", found.strategy) if found.strategy.get("name") == "shrink" \
            else found.strategy
        return attrs.evolve(found, strategy={"name": "shrink", "from": origin},
                            roles=self.execution.roles, steps=self.execution.steps,
                            failure=self.execution.failure, shrink=self.to_json(),
                            preemption_model=self.preemption_model)

    def to_json(self) -> dict:
        return {"preemptions": self.preemptions, "steps": len(self.execution.steps), "proved": self.proved,
                "at_least": self.at_least, "proof_executions": self.proof_executions,
                "budget_cut": self.budget_cut, "interrupted": self.interrupted,
                "original_steps": self.original_steps, "original_preemptions": self.original_preemptions}


def shrink(scenario: Scenario, variant: Variant, execution: Execution,
           proof_budget: int = PROOF_BUDGET, progress: Optional[Progress] = None,
           preemption_model: str = preemption.DEFAULT, jobs: int = 1) -> ShrinkResult:
    """The same invariant broken with the fewest preemptions, then the fewest steps, every run
    under ``preemption_model`` (which must allow ``execution``'s schedule).

    When local edits leave more than one preemption, the reduced search
    (at most ``proof_budget`` executions) supplies the starting point with the
    fewest; the naive searches of the proof share another ``proof_budget``,
    in ``jobs`` worker processes.  A pure function of its arguments, ``jobs`` aside.
    """
    target = execution.failure.invariant
    work = _Work(scenario, variant, target, progress, preemption_model, jobs)
    best = work.run(Guided(blocks_of(execution.decisions)))  # the same schedule, its enabled sets under the model
    at_least, proof, cut = 0, 0, None
    try:
        best = work.local(best)
        if preemptions(best) > 1:
            fewest = work.fewest_in_every_trace(proof_budget)
            if fewest is not None and _key(fewest) < _key(best):
                best = work.local(fewest)
        while at_least < preemptions(best):
            search = work.explore(f"proof: any failure with at most {at_least}?", reduction=False,
                                  preemption_bound=at_least, max_executions=proof_budget - proof,
                                  jobs=work.jobs, in_order=True)
            if search.interrupted:
                raise KeyboardInterrupt
            if search.failure is not None:  # at most `at_least`, and none with fewer: minimal
                proof += search.executions
                best = work.local(search.failure)
                break
            if not search.complete:
                cut = at_least
                break
            proof += search.executions
            at_least += 1
    except KeyboardInterrupt:
        return ShrinkResult(best, len(execution.steps), preemptions(execution), at_least, proof,
                            work.candidates, cut, interrupted=True, preemption_model=preemption_model)
    return ShrinkResult(best, len(execution.steps), preemptions(execution), at_least, proof, work.candidates, cut,
                        preemption_model=preemption_model)


@attrs.define
class _Work:
    """The runs of one shrink, counted for its progress line."""

    scenario: Scenario
    variant: Variant
    target: str
    progress: Optional[Progress]
    preemption_model: str
    jobs: int
    candidates: int = 0
    executions: int = 0

    def run(self, strategy) -> Execution:
        return engine.run_one(self.scenario, self.variant, strategy, preemption_model=self.preemption_model)

    def _report(self, phase: str) -> None:
        if self.progress is not None:
            self.progress(self.executions, phase)

    def local(self, best: Execution) -> Execution:
        """Local edits until none improves (see the module notes)."""
        improved = True
        while improved:
            improved = False
            phase = f"local edits: {plural(preemptions(best), 'preemption')}, {len(best.steps)} steps"
            for blocks in _edits(blocks_of(best.decisions)):
                self.candidates += 1
                self.executions += 1
                self._report(phase)
                candidate = self.run(Guided(blocks))
                if candidate.failure is not None and candidate.failure.invariant == self.target \
                        and _key(candidate) < _key(best):
                    best = candidate
                    improved = True
                    break
        return best

    def explore(self, phase: str, **search) -> engine.ExploreResult:
        before = self.executions

        def progress(executions: int, pruned: int) -> None:
            self.executions = before + executions + pruned
            self._report(phase)

        return engine.explore(self.scenario, self.variant, target=self.target, progress=progress,
                              preemption_model=self.preemption_model, **search)

    def fewest_in_every_trace(self, budget: int) -> Optional[Execution]:
        """Of the reduced search's failing schedules (one per failing trace), one with the fewest preemptions."""
        fewest: List[Execution] = []

        def keep(execution: Execution, sched) -> None:
            broken = execution.failure
            if broken is not None and broken.invariant == self.target \
                    and (not fewest or _key(execution) < _key(fewest[0])):
                fewest[:] = [execution]

        search = self.explore("reduced search: every failing trace", stop_on_failure=False,
                              on_execution=keep, max_executions=budget)
        if search.interrupted:
            raise KeyboardInterrupt
        return fewest[0] if fewest else None


def _key(execution: Execution) -> Tuple[int, int]:
    return preemptions(execution), len(execution.steps)


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
_SYNC_PREFIXES = ("rcu:", "exit:", "slot#", "slab.")


def _is_data(resource: str) -> bool:
    return not (resource.endswith(_SYNC_SUFFIXES) or resource.startswith(_SYNC_PREFIXES))


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
