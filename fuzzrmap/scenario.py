"""Scenarios: an initial kernel state, the threads that race on it, and variants.

A scenario file (in the top-level ``scenarios/`` folder, installed as the
``fuzzrmap.scenarios`` package) defines one :class:`Scenario` named
``SCENARIO``.  Its ``setup`` builds a fresh :class:`World` for every schedule
from a fresh :class:`~fuzzrmap.kernel.task.Kernel`.  Each :class:`Variant` is
a generation plus or minus hunks (:mod:`fuzzrmap.hunks`; ``setup`` and the
model code see them through :attr:`~fuzzrmap.hunks.Hunk.on`) and states, as
data, whether the fuzzer is expected to find a failure in it; tests and
``fuzzrmap list`` read that expectation from here.

A scenario module may also define ``CATALOGUE`` (:mod:`fuzzrmap.actors`):
then every composition of its actors is a scenario too, found by its name
(``page-idle+uffd-move(src=S)+munmap(vma=S)``).

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
#: no expectation (a composition nobody has judged yet)
UNKNOWN = "unknown"


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


def _load() -> Tuple[Dict[str, Scenario], list]:
    import fuzzrmap.scenarios as package

    found: Dict[str, Scenario] = {}
    catalogues = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        scenario = getattr(module, "SCENARIO", None)
        if scenario is not None:
            found[scenario.name] = attrs.evolve(scenario, module=module.__name__)
        catalogue = getattr(module, "CATALOGUE", None)
        if catalogue is not None and catalogue not in catalogues:
            catalogues.append(catalogue)
    return found, catalogues


_REGISTRY: Dict[str, Scenario] = {}
_CATALOGUES: list = []


def scenarios() -> Dict[str, Scenario]:
    if not _REGISTRY:
        found, catalogues = _load()
        _REGISTRY.update(found)
        _CATALOGUES.extend(catalogues)
    return _REGISTRY


def catalogues() -> list:
    """The actor catalogues of the scenario modules (:mod:`fuzzrmap.actors`)."""
    scenarios()
    return list(_CATALOGUES)


def get(name: str) -> Scenario:
    """A registered scenario, or the composition of a catalogue's actors that ``name`` spells."""
    found = scenarios().get(name)
    if found is not None:
        return found
    errors = []
    for catalogue in catalogues():
        try:
            return catalogue.parse(name).scenario()
        except UnknownName as e:
            errors.append(str(e))
    if "+" in name or "(" in name:
        raise UnknownName(f"unknown scenario {name!r}: {'; '.join(errors) or 'no actor catalogue'}")
    raise UnknownName(f"unknown scenario {name!r} (scenarios: {', '.join(scenarios())}; "
                      f"or a composition of actors such as page-idle+munmap(vma=S), see 'fuzzrmap actors')")
