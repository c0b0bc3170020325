"""Fixtures shared by the CLI and export tests."""

import pytest

from fuzzrmap import cli


@pytest.fixture(scope="session")
def seed_path(tmp_path_factory):
    """A shrunk seed file of the unpatched page_idle race, written by ``fuzzrmap fuzz``."""
    out = tmp_path_factory.mktemp("seeds")
    assert cli.main(["fuzz", "uffd-move-vs-page-idle", "--variant", "unpatched", "--runs", "2000", "--seed", "3",
                     "--out", str(out), "--json"]) == cli.EXIT_FOUND
    (path,) = [p for p in out.glob("*.json") if not p.name.endswith("-original.json")]
    return path
