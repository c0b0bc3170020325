"""Necessity: which hunks of a fix are needed, under this model.

For each code hunk of a variant (:meth:`~fuzzrmap.scenario.Variant.code_hunks`),
:func:`analyse` reverts that hunk alone (the variant ``V~HUNK``) and searches
it: ``explore`` up to a budget of executions, then, if that search was not
complete, PCT for a budget of schedules.  The verdict per hunk:

* **needed** - the reverted variant fails; the witness is shrunk and saved as
  a seed file (its variant is ``V~HUNK``, so it replays as it is);
* **not needed** - the complete search found no failure: every interleaving
  of this scenario is safe without the hunk (under this model and its
  invariants; another scenario may need it);
* **unknown** - neither search found a failure and the exhaustive one was
  cut by its budget.

The variant itself is searched the same way first (the ``baseline``): when
it fails already, reverting a hunk cannot show that the hunk is needed, and
the report says so.

Left out: pairs of hunks (two hunks that each cover the other's absence are
both "not needed" alone).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import attrs

from fuzzrmap import engine, shrink
from fuzzrmap.scenario import Scenario, Variant
from fuzzrmap.sched import seedfile
from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.strategies.pct import PCT
from fuzzrmap.sched.trace import Execution

MAX_EXECUTIONS = 20_000
RUNS = 20_000


@attrs.frozen
class Search:
    """The outcome of searching one variant: explore, then PCT if explore was cut short."""

    variant: Variant
    failure: Optional[Execution]
    found_by: Optional[str]
    complete: bool
    executions: int
    schedules: int
    #: the strategy that found the failure (what its seed file records)
    strategy: Optional[Strategy] = None
    seed_file: Optional[Path] = None
    #: the variant fails with the hunk too, so a failure without it decides nothing
    baseline_fails: bool = False

    @property
    def needed(self) -> Optional[bool]:
        """As a reverted hunk's verdict: True needed, False not needed, None unknown."""
        if self.failure is not None:
            return None if self.baseline_fails else True
        return False if self.complete else None

    def describe(self) -> str:
        if self.failure is not None:
            return f"fails ({self.failure.failure.invariant}, found by {self.found_by})"
        if self.complete:
            return f"clean (complete search, {self.executions} executions)"
        return f"unknown (explore stopped at {self.executions} executions, PCT ran {self.schedules} schedules)"

    def to_json(self) -> dict:
        return {"hunk": self.variant.name.rpartition("~")[2], "needed": self.needed, "complete": self.complete,
                "invariant": self.failure.failure.invariant if self.failure else None,
                "seed_file": str(self.seed_file) if self.seed_file else None,
                "found_by": self.found_by, "executions": self.executions, "schedules": self.schedules}


def search(scenario: Scenario, variant: Variant, max_executions: int = MAX_EXECUTIONS, runs: int = RUNS,
           seed: int = 0) -> Search:
    """Explore ``variant`` up to ``max_executions``; if that was not complete, run PCT ``runs`` times."""
    explored = engine.explore(scenario, variant, max_executions=max_executions)
    if explored.interrupted:
        raise KeyboardInterrupt
    if explored.failure is not None or explored.complete:
        return Search(variant, explored.failure, "explore" if explored.failure else None,
                      explored.complete, explored.executions, 0, engine.Explore())
    strategy = PCT(seed)
    campaign = engine.campaign(scenario, variant, strategy, runs)
    if campaign.interrupted:
        raise KeyboardInterrupt
    if campaign.execution is not None:
        strategy.begin(campaign.failure_index)
    return Search(variant, campaign.execution, f"PCT, seed {seed}" if campaign.execution else None,
                  False, explored.executions, campaign.schedules, strategy)


def analyse(scenario: Scenario, variant: Variant, out: Path, max_executions: int = MAX_EXECUTIONS,
            runs: int = RUNS, seed: int = 0) -> Tuple[Search, List[Search]]:
    """The search of ``variant`` itself, and one :class:`Search` per code hunk of it, reverted
    alone; the witnesses are shrunk and saved in ``out``."""
    baseline = search(scenario, variant, max_executions, runs, seed)
    verdicts = []
    for h in variant.code_hunks():
        result = search(scenario, variant.without(h), max_executions, runs, seed)
        if result.failure is not None:
            result = attrs.evolve(_witness(scenario, result, out), baseline_fails=baseline.failure is not None)
        verdicts.append(result)
    return baseline, verdicts


def _witness(scenario: Scenario, result: Search, out: Path) -> Search:
    shrunk = shrink.shrink(scenario, result.variant, result.failure)
    found = engine.seed_file_for(scenario, result.variant, result.strategy, result.failure)
    path = out / f"{scenario.name}-{result.variant.name}-{shrunk.execution.failure.invariant}-necessity.json"
    seedfile.write(shrunk.seed_file(found), path)
    return attrs.evolve(result, failure=shrunk.execution, seed_file=path)
