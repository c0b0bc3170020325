"""The pytest plugin (entry point ``pytest11``): ``pytest --fuzzrmap``.

With ``--fuzzrmap``, pytest collects, besides the suite's own tests:

* one test per seed file of the corpus (``--fuzzrmap-corpus``, default
  ``.fuzzrmap/corpus`` under the root directory), first: it replays the saved
  failure and fails when a variant expected clean still fails (a
  regression).  An entry that cannot be replayed (stale fingerprint,
  divergence, a scenario file not named) is reported with a warning and
  skipped, never deleted;
* one test per registered scenario and variant, and per scenario of each file
  named with ``--fuzzrmap-file``, with ids ``SCENARIO[VARIANT]``: it passes when
  the verdict matches the variant's expectation.  The search is ``explore``
  up to ``--fuzzrmap-max-executions``, then PCT for ``--fuzzrmap-runs``
  schedules if the search was not complete; a failure that was not expected
  is shrunk, saved in the corpus and reported as an interleaving.  A clean
  variant whose search was not complete passes with a warning.

Without ``--fuzzrmap`` the plugin only sets the corpus that
:mod:`fuzzrmap.testing` uses.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from fuzzrmap import engine, testing
from fuzzrmap import scenario as registry
from fuzzrmap.scenario import FAILS
from fuzzrmap.sched import seedfile
from fuzzrmap.sched.strategies.pct import PCT


def pytest_addoption(parser) -> None:
    group = parser.getgroup("fuzzrmap")
    group.addoption("--fuzzrmap", action="store_true",
                    help="collect a test per fuzzrmap scenario and variant, and per saved failure")
    group.addoption("--fuzzrmap-file", action="append", default=[], metavar="PATH",
                    help="also collect the scenarios of this scenario file (repeatable)")
    group.addoption("--fuzzrmap-corpus", metavar="DIR",
                    help="where failures are saved and replayed from (default .fuzzrmap/corpus)")
    group.addoption("--fuzzrmap-max-executions", type=int, default=20_000, metavar="N",
                    help="explore budget per variant (default 20000)")
    group.addoption("--fuzzrmap-runs", type=int, default=2_000, metavar="N",
                    help="PCT schedules when explore was not complete (default 2000)")


def pytest_configure(config) -> None:
    corpus = config.getoption("fuzzrmap_corpus")
    testing.DEFAULT_CORPUS = Path(corpus) if corpus else Path(config.rootpath) / ".fuzzrmap" / "corpus"


def pytest_collection_modifyitems(session, config, items) -> None:
    if not config.getoption("fuzzrmap"):
        return
    files = tuple(config.getoption("fuzzrmap_file"))
    try:
        scenarios = list(registry.scenarios().values()) + [s for f in files for s in registry.file_scenarios(f)]
    except registry.UnknownName as e:
        raise pytest.UsageError(f"fuzzrmap: {e.args[0]}") from None
    parent = _Group.from_parent(session, name="fuzzrmap", nodeid="fuzzrmap")
    ours = [_CorpusEntry.from_parent(parent, name=f"corpus[{p.name}]", path=p, files=files)
            for p in testing.corpus_entries(testing.DEFAULT_CORPUS)]
    ours += [_Verdict.from_parent(parent, name=f"{sc.name}[{v.name}]", scenario=sc, variant=v)
             for sc in scenarios for v in sc.variants]
    items[:0] = ours


class _Group(pytest.Collector):
    def collect(self):  # the items are made by pytest_collection_modifyitems
        return []


class _Item(pytest.Item):
    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, self.name


class _Verdict(_Item):
    def __init__(self, *, scenario, variant, **kw) -> None:
        super().__init__(**kw)
        self.scenario = scenario
        self.variant = variant

    def runtest(self) -> None:
        sc, v, config = self.scenario, self.variant, self.config
        result = engine.explore(sc, v, max_executions=config.getoption("fuzzrmap_max_executions"))
        found = result.failure
        how = "explore"
        if found is None and not result.complete:
            strategy = PCT(0)
            campaign = engine.campaign(sc, v, strategy, config.getoption("fuzzrmap_runs"))
            found, how = campaign.execution, f"explore ({result.executions} executions) and PCT"
            if found is not None:
                strategy.begin(campaign.failure_index)
                seed = engine.seed_file_for(sc, v, strategy, found)
        elif found is not None:
            seed = engine.seed_file_for(sc, v, engine.Explore(), found)
        if v.expect == FAILS:
            if found is None:
                raise AssertionError(f"{sc.name} / {v.name} is expected to fail, but {how} found no failure"
                                     f"{'' if result.complete else ' (the search was not complete)'}")
            return
        if found is not None:
            testing._fail(sc, v, seed, found, testing.DEFAULT_CORPUS)
        if not result.complete:
            warnings.warn(f"{sc.name} / {v.name}: no failure, but not verified: the search stopped at "
                          f"{result.executions} executions (--fuzzrmap-max-executions)")


class _CorpusEntry(_Item):
    def __init__(self, *, files, **kw) -> None:
        super().__init__(**kw)
        self.files = files

    def runtest(self) -> None:
        try:
            seed = seedfile.read(self.path)
            sc, execution = testing.replay_entry(seed, scenario_files=self.files)
            v = sc.variant(seed.variant)
        except (seedfile.SeedFileError, registry.UnknownName, engine.ReplayError) as e:
            reason = f"stale corpus entry {self.path}: {e.args[0] if e.args else e}"
            warnings.warn(testing.StaleSeedFile(reason))
            pytest.skip(reason)
        if execution.failure is not None and v.expect != FAILS:
            raise AssertionError(testing.message(sc, v, execution, self.path, what="replayed"))
