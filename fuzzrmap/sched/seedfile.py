"""Seed files: a failing schedule as plain JSON data.

A seed file names the scenario and variant, the strategy that found the
schedule, a fingerprint of the model it ran against, every step (task id,
kernel function, step label, enabled set) and the failure.  It is data only:
it is parsed with :mod:`json`, validated field by field, and the scenario is
looked up by its registered name; nothing in it is ever executed or
unpickled.  Files are written atomically (temporary file, fsync, rename), so
an interrupted run leaves either the old file or the new one.

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
     "source": {"by": "name"}}

``shrink`` is present in files written after shrinking.  ``source`` says how
the scenario was found: ``{"by": "name"}`` (registered; also what a file
without ``source`` means) or ``{"by": "path", "path": "scenarios/counter.py"}``
(a file the user named, the path as it was given).  Replay never loads that
file unless the user names it again.

``decisions`` repeats the task ids of ``steps`` so that the schedule can be
read (or edited) at a glance; the two must agree.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Tuple

import attrs

from fuzzrmap.sched.trace import Failure, Step

FORMAT = "fuzzrmap-seed"
VERSION = 1


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
        return data


def write(seed: SeedFile, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(seed.to_json(), f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> SeedFile:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SeedFileError(f"{path}: no such seed file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SeedFileError(f"{path}: cannot read seed file ({e.__class__.__name__}: {e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SeedFileError(f"{path}: not a seed file: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    return parse(data, str(path))


def parse(data: Any, where: str) -> SeedFile:
    def need(obj: Any, key: str, kind, ctx: str = ""):
        if not isinstance(obj, dict) or key not in obj:
            raise SeedFileError(f"{where}: malformed seed file: missing {ctx}{key!r}")
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SeedFileError(f"{where}: malformed seed file: {ctx}{key!r} should be {_kind(kind)}")
        return value

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SeedFileError(f"{where}: not a fuzzrmap seed file (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if version != VERSION:
        raise SeedFileError(f"{where}: seed file format version {version!r} is not supported (this fuzzrmap reads version {VERSION})")
    roles = need(data, "threads", list)
    if not all(isinstance(r, str) for r in roles):
        raise SeedFileError(f"{where}: malformed seed file: 'threads' should be a list of names")
    decisions = need(data, "decisions", list)
    steps = []
    for i, raw in enumerate(need(data, "steps", list)):
        ctx = f"steps[{i}]."
        task = need(raw, "task", int, ctx)
        enabled = need(raw, "enabled", list, ctx)
        if not all(isinstance(e, int) and 0 <= e < len(roles) for e in enabled) or not 0 <= task < len(roles):
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
    source = data.get("source", {"by": "name"})
    by = need(source, "by", str, "source.")
    if by not in ("name", "path"):
        raise SeedFileError(f"{where}: malformed seed file: 'source.by' should be \"name\" or \"path\"")
    source = need(source, "path", str, "source.") if by == "path" else None
    return SeedFile(
        scenario=need(data, "scenario", str),
        variant=need(data, "variant", str),
        strategy=need(data, "strategy", dict),
        fingerprint=need(data, "fingerprint", str),
        roles=tuple(roles),
        steps=tuple(steps),
        failure=failure,
        shrink=data.get("shrink") if isinstance(data.get("shrink"), dict) else None,
        source=source,
    )


def _kind(kind) -> str:
    return {str: "a string", int: "an integer", list: "a list", dict: "an object"}[kind]
