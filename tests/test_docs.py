"""The documentation's code is the code the tests run, and it points only inside the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_the_guides_examples_are_the_example_files_verbatim():
    text = (DOCS / "authoring.md").read_text()
    shown = re.findall(r"<!-- example: (\S+) -->\n```python\n(.*?)```\n", text, re.S)
    assert {name for name, _ in shown} == {f"docs/examples/{p.name}" for p in (DOCS / "examples").glob("*.py")}
    for name, code in shown:
        assert code == (ROOT / name).read_text(), f"{name} differs from its copy in docs/authoring.md"


@pytest.mark.parametrize("page", ["authoring.md", "pytest.md"])
def test_the_docs_link_only_to_pages_of_the_repository(page):
    text = (DOCS / page).read_text()
    assert "shared/" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert not target.startswith("/") and ".." not in target, target
