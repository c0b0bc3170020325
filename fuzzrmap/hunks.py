"""Hunks: named code switches, declared where the code is.

A *hunk* is one change to the model's code that a variant may have or not:
a hunk of a patch ("re-check ``folio->mapping`` after the root trylock"), a
kernel-config switch (``CONFIG_SLUB_RCU_DEBUG``), or the shape one kernel
version gives a function.  The module whose code it switches declares it,
next to that code, and tests it where the kernel's code differs::

    FAST_RECHECK = hunk("rmap.fast_recheck", "L5: re-check folio->mapping after the root trylock")
    ...
    if FAST_RECHECK.on:
        ...

A :class:`Generation` names a set of hunks that a real kernel has together
(G1 = v6.8..v6.18); a scenario's variant is a generation plus or minus hunks
(:func:`variant_of` in :mod:`fuzzrmap.scenario`).  Which hunks are on is part
of the schedule: the engine gives the scheduler the variant's set, and
:attr:`Hunk.on` reads it from the schedule running now (during a scenario's
``setup`` too), so a run stays a pure function of its inputs and nothing
global is switched.

What is left out: hunks carry no code themselves (no patching, no
monkey-patching); a hunk is a name that code tests.  Nothing here knows about
the kernel: the kernel model declares its own hunks and generations, a user's
scenario declares its own.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Iterable

import attrs

from fuzzrmap.sched.api import RUNNING, ModelError

#: the two kinds of switch: a change to code, or a kernel-config option
CODE = "code"
CONFIG = "config"


class UnknownHunk(LookupError):
    """A name that no loaded module declared as a hunk (a user error, exit code 2)."""


@attrs.frozen
class Hunk:
    """One named code switch.  ``on`` is true when the running schedule has it."""

    name: str
    summary: str
    kind: str = CODE
    #: the module that declared it (where the switched code is)
    module: str = ""

    @property
    def on(self) -> bool:
        sched = RUNNING.sched
        if sched is None:
            raise ModelError(f"hunk {self.name} tested outside a schedule")
        return self.name in sched.hunks


_DECLARED: Dict[str, Hunk] = {}


def hunk(name: str, summary: str, kind: str = CODE) -> Hunk:
    """Declare the hunk ``name`` in the calling module.

    Declaring a name again with another summary or kind, from another module, is
    an error; the same declaration again (a scenario file loaded from a second
    path, e.g. a copy) is the same hunk.
    """
    import inspect

    if kind not in (CODE, CONFIG):
        raise ValueError(f"hunk kind must be {CODE!r} or {CONFIG!r}, not {kind!r}")
    module = inspect.currentframe().f_back.f_globals.get("__name__", "")
    declared = _DECLARED.get(name)
    if declared is not None and declared.module != module and (declared.summary, declared.kind) != (summary, kind):
        raise ValueError(f"hunk {name!r} declared twice: in {declared.module} and in {module}")
    h = Hunk(name, summary, kind, module)
    _DECLARED[name] = h
    return h


def declared() -> Dict[str, Hunk]:
    """Every hunk declared by the modules imported so far, by name."""
    return dict(_DECLARED)


def lookup(name: str) -> Hunk:
    try:
        return _DECLARED[name]
    except KeyError:
        raise UnknownHunk(f"unknown hunk {name!r} (hunks: {', '.join(sorted(_DECLARED)) or 'none'})") from None


@attrs.frozen
class Generation:
    """A set of hunks that one range of kernel versions has together."""

    name: str
    summary: str
    hunks: FrozenSet[str] = attrs.field(converter=frozenset)

    def __attrs_post_init__(self) -> None:
        for name in self.hunks:
            lookup(name)

    def with_(self, add: Iterable[Hunk] = (), remove: Iterable[Hunk] = ()) -> FrozenSet[str]:
        """This generation's hunk names, plus ``add``, less ``remove``."""
        add_names = {h.name for h in add}
        remove_names = {h.name for h in remove}
        missing = remove_names - self.hunks
        if missing:
            raise ValueError(f"generation {self.name} has no hunk {', '.join(sorted(missing))} to remove")
        return frozenset((self.hunks | add_names) - remove_names)
