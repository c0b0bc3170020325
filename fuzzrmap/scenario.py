"""Scenarios: an initial state, the threads that race on it, and variants; where to find them.

A scenario's ``setup`` builds a fresh :class:`World` for every schedule; the
:class:`~fuzzrmap.environment.Environment` the scenario names decides what
``setup`` is given and what runs beside its threads (the kernel model's
environment passes a fresh ``Kernel`` and adds the RCU thread; the plain one
passes nothing and adds nothing).  Each :class:`Variant` is a generation plus
or minus hunks (:mod:`fuzzrmap.hunks`; ``setup`` and the model code see them
through :attr:`~fuzzrmap.hunks.Hunk.on`) and states, as data, whether the
fuzzer is expected to find a failure in it.  A variant name ``V~HUNK`` means
variant ``V`` with ``HUNK`` reverted (what ``fuzzrmap necessity`` runs).

Where scenarios come from.  A module defines ``SCENARIO`` (one) or
``SCENARIOS`` (a list: a family sharing code).  Registered scenarios are
looked up by name: the shipped ones (the top-level ``scenarios/`` folder,
installed as ``fuzzrmap.scenarios``) and those that installed packages
declare under the entry-point group ``fuzzrmap.scenarios`` (a module, a
scenario or a list of scenarios).  A file the user names,
``path/to/file.py[:NAME]``, is loaded by executing it: that is the user's own
code, named on the command line.

A seed file never makes fuzzrmap execute code the user did not name: it
records how its scenario was found (by name, or the path of the file), and a
seed file found in a file is replayed only when the user names that file
again (``--scenario PATH``, see :func:`for_seed`).  A rule such as "any file
inside the seed file's directory" would let a downloaded folder of seed files
run the code that came with it.

A scenario module may also define ``CATALOGUE`` (:mod:`fuzzrmap.actors`):
then every composition of its actors is a scenario too, found by its name
(``page-idle+uffd-move(src=S)+munmap(vma=S)``).

"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from shlex import quote
from typing import Any, Callable, Coroutine, Dict, FrozenSet, Hashable, List, Optional, Tuple

import attrs

from fuzzrmap.environment import PLAIN, Environment
from fuzzrmap.hunks import CODE, Generation, Hunk, UnknownHunk, lookup

FAILS = "fails"
CLEAN = "clean"
#: no expectation: a composition nobody has judged yet, or a derived variant (``V~HUNK``)
UNKNOWN = "unknown"

#: the entry-point group under which installed packages register scenarios
ENTRY_POINT_GROUP = "fuzzrmap.scenarios"


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

    def code_hunks(self) -> List[Hunk]:
        """The variant's hunks that change code (not config switches), by name."""
        return [h for h in map(lookup, sorted(self.hunks)) if h.kind == CODE]

    def scope(self) -> str:
        """The variant as a generation and its differences, e.g. ``G1 - rmap.fast_recheck``."""
        parts = [self.generation.name if self.generation is not None else "no generation"]
        parts += [f"+ {h.name}" for h in self.add] + [f"- {h.name}" for h in self.remove]
        return " ".join(parts)

    def without(self, h: Hunk) -> "Variant":
        """This variant with ``h`` reverted, named ``NAME~HUNK``."""
        if h.name not in self.hunks:
            raise UnknownName(f"variant {self.name!r} has no hunk {h.name!r} to revert "
                              f"(its hunks: {', '.join(sorted(self.hunks)) or 'none'})")
        if h in self.add:
            add, remove = [a for a in self.add if a != h], self.remove
        else:
            add, remove = self.add, self.remove + (h,)
        return Variant(f"{self.name}~{h.name}", UNKNOWN, f"{self.name} with {h.name} reverted",
                       self.generation, add, remove)


@attrs.define
class World:
    """What ``setup`` returns: threads by role (spawn order); optionally a summary of the
    final state (compared by the search tests) and ``final_check()``, which runs once every
    thread has returned and raises ``fuzzrmap.check.violation(...)`` when the end state is wrong."""

    threads: List[Tuple[str, Callable[[], Coroutine]]]
    final_state: Optional[Callable[[], Hashable]] = None
    final_check: Optional[Callable[[], None]] = None


@attrs.frozen
class Scenario:
    name: str
    spec: str
    summary: str
    variants: Tuple[Variant, ...]
    setup: Callable[..., World]
    environment: Environment = PLAIN
    #: the module that defines it (set when it is loaded)
    module: str = ""
    #: its module's file (what its fingerprint starts from)
    file: Optional[Path] = None
    #: the scenario file as the user named it; None when found by its registered name
    source: Optional[str] = None

    def variant(self, name: str) -> Variant:
        base, *reverted = name.split("~")
        for v in self.variants:
            if v.name == base:
                break
        else:
            raise UnknownName(f"scenario {self.name!r} has no variant {base!r} "
                              f"(variants: {', '.join(v.name for v in self.variants)})")
        try:
            for hunk_name in reverted:
                v = v.without(lookup(hunk_name))
        except UnknownHunk as e:
            raise UnknownName(e.args[0]) from None
        return v

    @property
    def ref(self) -> str:
        """How to name this scenario on the command line."""
        return self.name if self.source is None else f"{self.source}:{self.name}"

    def replay_command(self, seed_path: Path) -> str:
        """The command that replays a seed file of this scenario, as it can be typed."""
        command = f"fuzzrmap replay {quote(str(seed_path))}"
        return command if self.source is None else f"{command} --scenario {quote(self.source)}"


class UnknownName(LookupError):
    """An unknown scenario or variant name, or a scenario file that cannot be loaded
    (a user error, exit code 2)."""


def module_scenarios(module: Any) -> List[Scenario]:
    """The scenarios a module defines (``SCENARIO`` and ``SCENARIOS``), tagged with it."""
    found = [module.SCENARIO] if hasattr(module, "SCENARIO") else []
    found += list(getattr(module, "SCENARIOS", ()))
    for sc in found:
        if not isinstance(sc, Scenario):
            raise UnknownName(f"{module.__name__}: {sc!r} is not a fuzzrmap Scenario")
    return [attrs.evolve(sc, module=module.__name__, file=Path(module.__file__).resolve()) for sc in found]


# -- registered scenarios: shipped, and installed under the entry-point group ------

def _load() -> Tuple[Dict[str, Scenario], list]:
    import fuzzrmap.scenarios as package

    found: Dict[str, Scenario] = {}
    catalogues = []

    def add(scenarios: List[Scenario], where: str) -> None:
        for sc in scenarios:
            if sc.name in found:
                raise UnknownName(f"scenario {sc.name!r} is defined twice: in {found[sc.name].module} and in {where}")
            found[sc.name] = sc

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        add(module_scenarios(module), module.__name__)
        catalogue = getattr(module, "CATALOGUE", None)
        if catalogue is not None and catalogue not in catalogues:
            catalogues.append(catalogue)
    for ep in _entry_points():
        try:
            obj = ep.load()
        except Exception as e:
            raise UnknownName(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}) "
                              f"cannot be loaded: {e.__class__.__name__}: {e}") from None
        add(_entry_point_scenarios(ep, obj), f"entry point {ep.name} = {ep.value}")
    return found, catalogues


def _entry_points() -> list:
    from importlib import metadata

    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        return sorted(eps.select(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    return sorted(eps.get(ENTRY_POINT_GROUP, ()), key=lambda ep: ep.name)  # Python 3.9


def _entry_point_scenarios(ep, obj) -> List[Scenario]:
    if isinstance(obj, Scenario):
        obj = [obj]
    if isinstance(obj, (list, tuple)):
        module = sys.modules[ep.value.split(":")[0]]
        tagged = []
        for sc in obj:
            if not isinstance(sc, Scenario):
                raise UnknownName(f"entry point {ep.name} = {ep.value}: {sc!r} is not a fuzzrmap Scenario")
            tagged.append(attrs.evolve(sc, module=module.__name__, file=Path(module.__file__).resolve()))
        return tagged
    return module_scenarios(obj)


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
                      f"a composition of actors such as page-idle+munmap(vma=S), see 'fuzzrmap actors'; "
                      f"or name a file: path/to/file.py[:NAME])")


# -- scenario files named by the user -------------------------------------------------

def _split(ref: str) -> Tuple[str, Optional[str]]:
    """``file.py:NAME`` -> (``file.py``, ``NAME``); anything else -> (ref, None)."""
    head, sep, tail = ref.rpartition(":")
    return (head, tail or None) if sep and head.endswith(".py") else (ref, None)


def is_file_ref(ref: str) -> bool:
    """Whether ``ref`` names a file (``x.py``, ``dir/x.py:NAME``) rather than a registered scenario."""
    path, _ = _split(ref)
    return path.endswith(".py") or "/" in path


def resolve(ref: str) -> Scenario:
    """The scenario ``ref`` names: a registered name, or ``path/to/file.py[:NAME]``."""
    if not is_file_ref(ref):
        return get(ref)
    return load_file(*_split(ref))


def file_scenarios(path: str) -> List[Scenario]:
    """Execute the scenario file ``path`` (once per process) and return its scenarios."""
    file = Path(path)
    if not file.is_file():
        raise UnknownName(f"no scenario file {path}")
    found = module_scenarios(_import_file(file.resolve()))
    if not found:
        raise UnknownName(f"{path} defines no SCENARIO or SCENARIOS")
    return [attrs.evolve(sc, source=path) for sc in found]


def load_file(path: str, name: Optional[str] = None) -> Scenario:
    """The scenario ``name`` of the file ``path`` (or its only one)."""
    found = file_scenarios(path)
    if name is None:
        if len(found) > 1:
            raise UnknownName(f"{path} defines several scenarios ({', '.join(s.name for s in found)}): "
                              f"name one as {path}:NAME")
        return found[0]
    for sc in found:
        if sc.name == name:
            return sc
    raise UnknownName(f"{path} has no scenario {name!r} (it defines: {', '.join(s.name for s in found)})")


def _import_file(file: Path):
    digest = hashlib.sha256(str(file).encode()).hexdigest()[:8]
    module_name = f"fuzzrmap_file_{''.join(c if c.isalnum() else '_' for c in file.stem)}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        line = _line_in(e, file)
        raise UnknownName(f"cannot load scenario file {file}{line}: {e.__class__.__name__}: {e}") from None
    return module


def _line_in(e: BaseException, file: Path) -> str:
    """`` (line N)`` of the deepest frame of ``e`` in ``file``, if any."""
    if isinstance(e, SyntaxError) and e.lineno:
        return f" (line {e.lineno})"
    tb, line = e.__traceback__, None
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename) == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (line {line})" if line else ""


def for_seed(name: str, recorded_path: Optional[str], given_path: Optional[str]) -> Scenario:
    """The scenario a seed file names, found without running code the user did not name.

    A seed file that records a scenario file (``recorded_path``) is replayed only
    when the user names a file (``given_path``, e.g. the same one) on the command
    line; the scenario is then looked up by name in that file, and the
    fingerprint check that follows makes sure its code is the code that was
    recorded.  A seed file of a registered scenario needs no file.
    """
    if given_path is not None:
        return load_file(given_path, name)
    if recorded_path is not None:
        raise UnknownName(f"the scenario {name!r} of this seed file was loaded from {recorded_path}; a seed file "
                          f"never runs code by itself: name the file with --scenario {quote(recorded_path)}")
    return get(name)
