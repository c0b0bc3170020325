"""Fingerprints: which code a seed file was recorded against, per scenario.

A seed file is valid as long as the code that decides its schedule is the
same.  That code is the scenario's own module plus the *model modules* it
uses, found by following its imports (and those of its environment's
module) transitively: the modules of the
packages in :data:`MODEL` (the kernel model, the checker, the generic
primitives and environments, the shipped scenario helpers) and the modules
that live beside the scenario file (a user's own model code).  The tooling
(``fuzzrmap.sched``, the engine, reports) is not part of it: replay checks
every recorded step against what the model does, so a change there that
alters a schedule is caught step by step.

So adding a scenario, or editing one another scenario uses, leaves a seed
file valid; editing the scenario's file or a model module it imports makes
it stale.  Each file is hashed as its syntax tree without docstrings, so
edits to comments and docs keep seed files valid.

Left out: imports hidden from the syntax tree (``importlib.import_module``
with a computed name) are not followed.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

#: packages and modules whose code is part of a scenario's model when it imports them
MODEL = ("fuzzrmap.kernel", "fuzzrmap.check", "fuzzrmap.sync", "fuzzrmap.environment", "fuzzrmap.scenarios")


def of(scenario) -> str:
    """``sha256:...`` over the scenario's file and the model modules it reaches."""
    h = hashlib.sha256()
    for label, path in _closure(scenario):
        h.update(label.encode())
        h.update(_normalised(path.read_text()).encode())
    return "sha256:" + h.hexdigest()[:32]


def files(scenario) -> List[str]:
    """The files the fingerprint covers, for messages (model modules by name)."""
    return [label for label, _ in _closure(scenario)]


def _closure(scenario) -> List[Tuple[str, Path]]:
    """The scenario's file (labelled by its name) and its environment's module, and what they import."""
    file = scenario.file
    if file is None:
        raise ValueError("a scenario without a file has no fingerprint (load it through fuzzrmap.scenario)")
    home = file.parent
    env_module = type(scenario.environment).__module__
    seen: Dict[Path, str] = {file: file.name, _source(env_module): env_module}
    todo = [(file, scenario.module), (_source(env_module), env_module)]
    while todo:
        path, name = todo.pop()
        for dep_name, dep_path in _imports(path, name):
            if dep_path in seen:
                continue
            if _is_model(dep_name) or home in dep_path.parents:
                seen[dep_path] = dep_name
                todo.append((dep_path, dep_name))
    return sorted(((label, path) for path, label in seen.items()), key=lambda lp: lp[0])


def _is_model(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in MODEL)


def _imports(path: Path, module: str) -> Iterator[Tuple[str, Path]]:
    """(module name, file) of each module ``path`` imports that has a Python source file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            # ``from pkg import name``: name may be a submodule
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            for prefix in _prefixes(name):
                found = _source(prefix)
                if found is not None:
                    yield prefix, found


def _prefixes(name: str) -> List[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c`` (importing a module imports its packages)."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts)) if parts[i]]


def _source(name: str) -> Optional[Path]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin).resolve()


def _normalised(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)
