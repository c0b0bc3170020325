"""The documentation in docs/ keeps up with the code.

The ids are read from the source, not from a list kept by hand: every
invariant id the package can report (a string constant such as ``"I5d"`` or
``"LIVELOCK"``, whether it is passed to ``violation()``, to ``Failure()`` or
returned by the final-state sweep) must have a heading in docs/invariants.md,
and every step id that starts a label in the kernel model (the argument after
``fn``/``func`` in ``point()``, ``wait_until()`` and the lock calls) must head a
row of a table in docs/steps.md.  Users do not have the design folder the
project was written from, so no file in the repository may point at it.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path
from typing import Dict, Iterator, Set

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

INVARIANT_ID = re.compile(r"(?:I\d+[a-z]?|LIVELOCK)")
STEP_ID = re.compile(r"[A-Z]{1,2}(?:\d+[a-z]?|X)(?=[\s:;(]|$)")
#: the outside folder's name, built so that this file does not mention it
OUTSIDE = re.compile(r"(?<![\w-])" + "shared" + "/")


def _python_files(folder: Path) -> Iterator[Path]:
    return iter(sorted(folder.rglob("*.py")))


def invariant_ids_in_code() -> Dict[str, Set[str]]:
    """Invariant id -> the package files whose code names it."""
    found: Dict[str, Set[str]] = {}
    for path in _python_files(ROOT / "fuzzrmap"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and INVARIANT_ID.fullmatch(node.value)):
                found.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
    return found


def _leading_text(node: ast.expr) -> str:
    """The literal start of a str or f-string argument, or of the one a label callable
    (``lambda: f"..."``) returns ('' for anything else)."""
    if isinstance(node, ast.Lambda):
        node = node.body
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value
    return ""


def step_ids_in_model() -> Dict[str, Set[str]]:
    """Step id -> the kernel-model files whose labels start with it.

    Model code passes ``(..., fn, label)`` to every call that yields:
    ``point(fn, label)``, ``lock.down_read(fn, label)``,
    ``put_anon_vma(av, fn, label)``...
    """
    found: Dict[str, Set[str]] = {}
    for path in _python_files(ROOT / "fuzzrmap" / "kernel"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            for arg, label in zip(node.args, node.args[1:]):
                if isinstance(arg, ast.Name) and arg.id in ("fn", "func"):
                    match = STEP_ID.match(_leading_text(label))
                    if match:
                        found.setdefault(match.group(0), set()).add(path.name)
    return found


def documented_invariants() -> Set[str]:
    """Ids that head a section of docs/invariants.md (``## I7: ...``, ``### I1a``)."""
    text = (DOCS / "invariants.md").read_text()
    return set(re.findall(r"^#{2,4} (" + INVARIANT_ID.pattern + r")\b", text, re.M))


def documented_steps() -> Set[str]:
    """Ids in the first column of a table row of docs/steps.md."""
    text = (DOCS / "steps.md").read_text()
    return set(re.findall(r"^\| *(" + STEP_ID.pattern + r") *\|", text, re.M))


def test_the_extractors_see_the_model():
    invariants = invariant_ids_in_code()
    steps = step_ids_in_model()
    assert {"I1a", "I5d", "I7", "I8", "I11", "LIVELOCK"} <= set(invariants)
    assert {"L4", "L5", "S5", "S6", "M7a", "FK5", "UL4", "LX", "P2a"} <= set(steps)
    # generation names and invariant ids are not step ids
    assert not {"G0", "I7"} & set(steps)


def test_every_invariant_the_code_reports_is_documented():
    missing = {inv: sorted(files) for inv, files in invariant_ids_in_code().items()
               if inv not in documented_invariants()}
    assert not missing, f"invariant ids with no heading in docs/invariants.md: {missing}"


def test_every_step_id_of_the_model_is_documented():
    missing = {step: sorted(files) for step, files in step_ids_in_model().items()
               if step not in documented_steps()}
    assert not missing, f"step ids with no table row in docs/steps.md: {missing}"


def _repository_files() -> Iterator[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                                cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for name in listed.decode().split("\0"):
        path = ROOT / name
        if name and path.is_file():
            yield path


def test_nothing_points_outside_the_repository():
    offenders = []
    for path in _repository_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "files that point at a folder users do not have:\n" + "\n".join(offenders)


def test_the_docs_index_lists_exactly_the_pages():
    index = (DOCS / "README.md").read_text()
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert linked == pages


def test_the_guides_examples_are_the_example_files_verbatim():
    text = (DOCS / "authoring.md").read_text()
    shown = re.findall(r"<!-- example: (\S+) -->\n```python\n(.*?)```\n", text, re.S)
    assert {name for name, _ in shown} == {f"docs/examples/{p.name}" for p in (DOCS / "examples").glob("*.py")}
    for name, code in shown:
        assert code == (ROOT / name).read_text(), f"{name} differs from its copy in docs/authoring.md"


@pytest.mark.parametrize("page", ["authoring.md", "pytest.md"])
def test_the_docs_link_only_to_pages_of_the_repository(page):
    text = (DOCS / page).read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert not target.startswith("/") and ".." not in target, target
