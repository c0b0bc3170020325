"""Scenarios: an initial kernel state, the threads that race on it, and variants.

A scenario file (in the top-level ``scenarios/`` folder, installed as the
``fuzzrmap.scenarios`` package) defines one :class:`Scenario` named
``SCENARIO``.  Its ``setup`` builds a fresh :class:`World` for every schedule
from a fresh :class:`~fuzzrmap.kernel.task.Kernel`.  Each :class:`Variant` is
a generation plus or minus hunks (:mod:`fuzzrmap.hunks`; ``setup`` and the
model code see them through :attr:`~fuzzrmap.hunks.Hunk.on`) and states, as
data, whether the fuzzer is expected to find a failure in it; tests and
``fuzzrmap list`` read that expectation from here.

Scenarios are resolved by their registered name, never by executing a path
from a seed file.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Coroutine, Dict, FrozenSet, Hashable, List, Optional, Tuple

import attrs

from fuzzrmap.hunks import Generation, Hunk
from fuzzrmap.kernel.memory import Folio
from fuzzrmap.kernel.task import Kernel

FAILS = "fails"
CLEAN = "clean"


@attrs.frozen
class Variant:
    """A generation plus ``add`` and minus ``remove``: the hunks a schedule runs with."""

    name: str
    expect: str
    summary: str
    generation: Optional[Generation] = None
    add: Tuple[Hunk, ...] = attrs.field(default=(), converter=tuple)
    remove: Tuple[Hunk, ...] = attrs.field(default=(), converter=tuple)

    @property
    def hunks(self) -> FrozenSet[str]:
        if self.generation is None:
            return frozenset(h.name for h in self.add)
        return self.generation.with_(self.add, self.remove)

    def scope(self) -> str:
        """The variant as a generation and its differences, e.g. ``G1 - rmap.fast_recheck``."""
        parts = [self.generation.name if self.generation is not None else "no generation"]
        parts += [f"+ {h.name}" for h in self.add] + [f"- {h.name}" for h in self.remove]
        return " ".join(parts)


@attrs.define
class World:
    """What ``setup`` returns: threads by role (spawn order), the folios to check at
    the end, and optionally a summary of the final state (compared by the search tests)."""

    threads: List[Tuple[str, Callable[[], Coroutine]]]
    folios: List[Folio]
    final_state: Optional[Callable[[], Hashable]] = None


@attrs.frozen
class Scenario:
    name: str
    spec: str
    summary: str
    variants: Tuple[Variant, ...]
    setup: Callable[[Kernel], World]
    module: str = ""

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise UnknownName(f"scenario {self.name!r} has no variant {name!r} (variants: {', '.join(v.name for v in self.variants)})")


class UnknownName(LookupError):
    """An unknown scenario or variant name (a user error, exit code 2)."""


def _load() -> Dict[str, Scenario]:
    import fuzzrmap.scenarios as package

    found: Dict[str, Scenario] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        scenario = getattr(module, "SCENARIO", None)
        if scenario is None:
            continue
        found[scenario.name] = attrs.evolve(scenario, module=module.__name__)
    return found


_REGISTRY: Dict[str, Scenario] = {}


def scenarios() -> Dict[str, Scenario]:
    if not _REGISTRY:
        _REGISTRY.update(_load())
    return _REGISTRY


def get(name: str) -> Scenario:
    try:
        return scenarios()[name]
    except KeyError:
        raise UnknownName(f"unknown scenario {name!r} (scenarios: {', '.join(scenarios())})") from None
