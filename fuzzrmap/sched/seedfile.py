"""Seed files: a failing schedule as plain JSON data.

A seed file names the scenario and variant, the strategy that found the
schedule, a fingerprint of the model it ran against, every step (task id,
kernel function, step label, enabled set) and the failure.  It is data only:
it is parsed with :mod:`json`, validated field by field, and the scenario is
looked up by its registered name; nothing in it is ever executed or
unpickled.  Only regular files of bounded size are read, strict JSON only
(no ``NaN``, no booleans where numbers belong), and the free-form
``strategy`` and ``shrink`` objects are checked to be shallow plain data
before anything copies them.  Files are written atomically
(:func:`fuzzrmap.files.write_text`), so an interrupted run leaves either the
old file or the new one.

Format (``"format": "fuzzrmap-seed"``, ``"version": 1``)::

    {"format": "fuzzrmap-seed", "version": 1,
     "scenario": "uffd-move-vs-referenced", "variant": "unpatched",
     "strategy": {"name": "random", "seed": 1, "schedule": 117},
     "fingerprint": "sha256:...",
     "threads": ["reader", "mover", "munmap", "fork", "rcu"],
     "decisions": [0, 0, 1, ...],
     "steps": [{"task": 0, "func": "folio_referenced", "label": "...", "enabled": [0, 1, 2, 3, 4]}, ...],
     "failure": {"invariant": "I1c", "kind": "ACCURACY", "task": "reader", "step": 41, "message": "..."},
     "shrink": {"preemptions": 1, "steps": 38, "proved": true, ...},
     "source": {"by": "name"},
     "preemption_model": "anywhere"}

``shrink`` is present in files written after shrinking.  ``source`` says how
the scenario was found: ``{"by": "name"}`` (registered; also what a file
without ``source`` means) or ``{"by": "path", "path": "scenarios/counter.py"}``
(a file the user named, the path as it was given).  Replay never loads that
file unless the user names it again.  ``preemption_model`` is the model the
schedule ran under (:mod:`fuzzrmap.preemption`; a file without it ran under
``anywhere``): the enabled sets depend on it, so replay runs under it too.

``decisions`` repeats the task ids of ``steps`` so that the schedule can be
read (or edited) at a glance; the two must agree.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Tuple

import attrs

from fuzzrmap import files
from fuzzrmap.files import shown
from fuzzrmap.preemption import ANYWHERE, MODELS
from fuzzrmap.sched.trace import Failure, Step

FORMAT = "fuzzrmap-seed"
VERSION = 1
#: how deep ``strategy`` and ``shrink`` may nest (a shrunk file's strategy holds the original's)
PLAIN_DEPTH = 4


class SeedFileError(Exception):
    """The file is missing, unreadable, malformed or of an unknown format."""


@attrs.frozen
class SeedFile:
    scenario: str
    variant: str
    strategy: dict
    fingerprint: str
    roles: Tuple[str, ...]
    steps: Tuple[Step, ...]
    failure: Optional[Failure]
    #: how the schedule was shrunk and whether its preemption count is proved minimal
    shrink: Optional[dict] = None
    #: the scenario file as the user named it, or None for a registered scenario
    source: Optional[str] = None
    #: the preemption model the schedule ran under (fuzzrmap.preemption.MODELS)
    preemption_model: str = ANYWHERE

    def to_json(self) -> dict:
        data = {
            "format": FORMAT,
            "version": VERSION,
            "scenario": self.scenario,
            "variant": self.variant,
            "strategy": self.strategy,
            "fingerprint": self.fingerprint,
            "threads": list(self.roles),
            "decisions": [s.task for s in self.steps],
            "steps": [{"task": s.task, "func": s.func, "label": s.label, "enabled": list(s.enabled)}
                      for s in self.steps],
            "failure": self.failure.to_json() if self.failure else None,
        }
        if self.shrink is not None:
            data["shrink"] = self.shrink
        data["source"] = {"by": "name"} if self.source is None else {"by": "path", "path": self.source}
        data["preemption_model"] = self.preemption_model
        return data


def write(seed: SeedFile, path: Path, replace: bool = True) -> Path:
    """Write ``seed`` atomically as strict JSON, creating its directory; return the path written.

    With ``replace=False`` a different existing file is never overwritten
    (see :func:`fuzzrmap.files.write_text`).  Raises :class:`OSError`.
    """
    text = json.dumps(seed.to_json(), indent=1, allow_nan=False) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return files.write_text(text, path, replace=replace)


def read(path: Path) -> SeedFile:
    try:
        text = files.read_text(Path(path), "seed file")
    except files.FileError as e:
        raise SeedFileError(str(e)) from None
    where = shown(str(path))
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise SeedFileError(f"{where}: not a seed file: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    except RecursionError:
        raise SeedFileError(f"{where}: not a seed file: JSON nested too deeply") from None
    except ValueError as e:  # a number beyond int's digit limit, or NaN/Infinity
        raise SeedFileError(f"{where}: not a seed file: {e.args[0].split(';')[0]}") from None
    return parse(data, where)


def _no_constant(name: str):
    raise ValueError(f"{name} is not strict JSON")


def parse(data: Any, where: str) -> SeedFile:
    def need(obj: Any, key: str, kind, ctx: str = ""):
        if not isinstance(obj, dict) or key not in obj:
            raise SeedFileError(f"{where}: malformed seed file: missing {ctx}{key!r}")
        value = obj[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise SeedFileError(f"{where}: malformed seed file: {ctx}{key!r} should be {_kind(kind)}")
        return value

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SeedFileError(f"{where}: not a fuzzrmap seed file (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if type(version) is not int or version != VERSION:
        raise SeedFileError(f"{where}: seed file format version {_brief(version)} is not supported "
                            f"(this fuzzrmap reads version {VERSION})")
    roles = need(data, "threads", list)
    if not all(isinstance(r, str) for r in roles):
        raise SeedFileError(f"{where}: malformed seed file: 'threads' should be a list of names")
    decisions = need(data, "decisions", list)
    steps = []
    for i, raw in enumerate(need(data, "steps", list)):
        ctx = f"steps[{i}]."
        task = need(raw, "task", int, ctx)
        enabled = need(raw, "enabled", list, ctx)
        if not all(type(e) is int and 0 <= e < len(roles) for e in enabled) or not 0 <= task < len(roles):
            raise SeedFileError(f"{where}: malformed seed file: {ctx[:-1]} names a thread that does not exist")
        steps.append(Step(task, need(raw, "func", str, ctx), need(raw, "label", str, ctx), tuple(enabled)))
    if decisions != [s.task for s in steps]:
        raise SeedFileError(f"{where}: malformed seed file: 'decisions' disagrees with the tasks of 'steps'")
    failure = data.get("failure")
    if failure is not None:
        for key in ("invariant", "kind", "task", "message"):
            need(failure, key, str, "failure.")
        need(failure, "step", int, "failure.")
        failure = Failure.from_json(failure)
    strategy = need(data, "strategy", dict)
    _check_plain(strategy, where, "strategy")
    shrunk = data.get("shrink")
    if shrunk is not None:
        need(data, "shrink", dict)
        _check_plain(shrunk, where, "shrink")
    source = need(data, "source", dict) if "source" in data else {"by": "name"}
    by = need(source, "by", str, "source.")
    if by not in ("name", "path"):
        raise SeedFileError(f"{where}: malformed seed file: 'source.by' should be \"name\" or \"path\"")
    source = need(source, "path", str, "source.") if by == "path" else None
    model = need(data, "preemption_model", str) if "preemption_model" in data else ANYWHERE
    if model not in MODELS:
        raise SeedFileError(f"{where}: malformed seed file: 'preemption_model' should be one of "
                            f"{', '.join(MODELS)}, not {shown(json.dumps(model), 20)}")
    return SeedFile(
        scenario=need(data, "scenario", str),
        variant=need(data, "variant", str),
        strategy=strategy,
        fingerprint=need(data, "fingerprint", str),
        roles=tuple(roles),
        steps=tuple(steps),
        failure=failure,
        shrink=shrunk,
        source=source,
        preemption_model=model,
    )


def _check_plain(value: Any, where: str, ctx: str, depth: int = 0) -> None:
    """``value`` is an object of strings, whole or finite numbers, booleans, null and such objects."""
    if isinstance(value, dict):
        if depth >= PLAIN_DEPTH:
            raise SeedFileError(f"{where}: malformed seed file: {ctx!r} nests deeper than {PLAIN_DEPTH} objects")
        for key, item in value.items():
            _check_plain(item, where, f"{ctx}.{key}", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value) or isinstance(value, list):
        raise SeedFileError(f"{where}: malformed seed file: {shown(ctx)} should be a string, number or object")


def _brief(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    return shown(json.dumps(value), 20)


def _kind(kind) -> str:
    return {str: "a string", int: "an integer", list: "a list", dict: "an object"}[kind]
