"""fuzzrmap inside a test suite: one call that fails a test with the interleaving.

:func:`check` runs a sampling campaign (PCT by default) and :func:`explore`
the exhaustive search, over a scenario's variant; when either finds a
failure, it is shrunk, saved in the *corpus* (a directory of seed files, one
per failure signature, like Hypothesis's example database) and the call
raises :class:`AssertionError` whose message is the column report, the seed
file's path and the command that replays it - no object dumps.

Before searching, both replay the corpus's seed files of the same scenario
and variant: a saved failure that still happens fails the test at once
(a regression test for free).  A seed file that no longer fits the model
(stale fingerprint, divergence) is reported with a :class:`StaleSeedFile`
warning and kept; it is never deleted silently.

The corpus is ``.fuzzrmap/corpus`` under the current directory, the pytest
plugin's ``--fuzzrmap-corpus`` when it runs, or the ``corpus`` argument.

Left out: a corpus shared between machines, and deleting entries (delete
the files).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

from fuzzrmap import engine, report, shrink
from fuzzrmap import scenario as registry
from fuzzrmap.scenario import Scenario, UnknownName, Variant
from fuzzrmap.sched import seedfile
from fuzzrmap.sched.strategies import STRATEGIES
from fuzzrmap.sched.strategies.pct import PCT
from fuzzrmap.sched.trace import Execution

#: where failures are saved and replayed from (the pytest plugin sets it from --fuzzrmap-corpus)
DEFAULT_CORPUS = Path(".fuzzrmap") / "corpus"


class StaleSeedFile(UserWarning):
    """A corpus entry that cannot be replayed against this model (kept, not deleted)."""


def check(scenario: Union[str, Scenario], variant: Optional[str] = None, strategy: str = "pct",
          runs: int = 1000, seed: int = 0, corpus: Optional[Path] = None) -> engine.CampaignResult:
    """Replay the corpus, then run ``runs`` schedules of ``strategy`` (``pct``, ``sticky``,
    ``random``); raise AssertionError with the report when a schedule fails."""
    __tracebackhide__ = True
    sc, v = _resolve(scenario, variant)
    corpus = Path(corpus or DEFAULT_CORPUS)
    _replay_corpus(sc, v, corpus)
    chosen = PCT(seed) if strategy == "pct" else STRATEGIES[strategy](seed)
    result = engine.campaign(sc, v, chosen, runs)
    if result.execution is not None:
        chosen.begin(result.failure_index)
        _fail(sc, v, engine.seed_file_for(sc, v, chosen, result.execution), result.execution, corpus)
    return result


def explore(scenario: Union[str, Scenario], variant: Optional[str] = None,
            max_executions: Optional[int] = None, corpus: Optional[Path] = None) -> engine.ExploreResult:
    """Replay the corpus, then search every interleaving (up to ``max_executions``); raise
    AssertionError with the report when one fails.  The result says whether the search was complete."""
    __tracebackhide__ = True
    sc, v = _resolve(scenario, variant)
    corpus = Path(corpus or DEFAULT_CORPUS)
    _replay_corpus(sc, v, corpus)
    result = engine.explore(sc, v, max_executions=max_executions)
    if result.failure is not None:
        found = engine.seed_file_for(sc, v, engine.Explore(), result.failure)
        _fail(sc, v, found, result.failure, corpus)
    return result


def _resolve(scenario: Union[str, Scenario], variant: Optional[str]) -> Tuple[Scenario, Variant]:
    sc = registry.resolve(scenario) if isinstance(scenario, str) else scenario
    if variant is None:
        if len(sc.variants) != 1:
            raise UnknownName(f"scenario {sc.name!r} has several variants "
                              f"({', '.join(v.name for v in sc.variants)}): name one")
        return sc, sc.variants[0]
    return sc, sc.variant(variant)


def _fail(sc: Scenario, v: Variant, found: seedfile.SeedFile, execution: Execution, corpus: Path) -> None:
    __tracebackhide__ = True
    shrunk = shrink.shrink(sc, v, execution)
    seed = shrunk.seed_file(found)
    path = save(seed, corpus)
    raise AssertionError(message(sc, v, shrunk.execution, path))


def message(sc: Scenario, v: Variant, execution: Execution, path: Path, what: str = "found") -> str:
    """The failure as the test report shows it: headline, seed file, replay command, interleaving."""
    race = shrink.racing_pair(sc, v, execution)
    preempted = engine.preemptions(sc, v, execution)
    return "\n".join([
        f"fuzzrmap {what} a failing schedule of {sc.name} / {v.name}: {execution.failure.headline()}",
        f"  seed file: {path}",
        f"  replay it: {sc.replay_command(path)}",
        "",
        report.interleaving(execution, race, compact=True, color=False),
        report.legend(preempted),
        "",
        report.verdict(execution, race, preemptions=preempted),
    ])


def signature(seed: seedfile.SeedFile) -> str:
    """What makes two failures the same for the corpus: scenario, variant, invariant, thread, step."""
    f = seed.failure
    where = seed.steps[f.step] if f.step < len(seed.steps) else None
    key = [seed.scenario, seed.variant, f.invariant, f.task, where.func if where else "(end)",
           where.label if where else ""]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]


def save(seed: seedfile.SeedFile, corpus: Path) -> Path:
    """Write ``seed`` into the corpus under its signature; an entry with that signature that
    still replays is kept (the first one found stays)."""
    path = corpus / f"{seed.scenario}-{seed.variant}-{seed.failure.invariant}-{signature(seed)}.json"
    if path.exists():
        try:
            kept = seedfile.read(path)
            if kept.fingerprint == seed.fingerprint:
                return path
        except seedfile.SeedFileError:
            pass
    seedfile.write(seed, path)
    return path


def corpus_entries(corpus: Path) -> Iterator[Path]:
    return iter(sorted(Path(corpus).glob("*.json"))) if Path(corpus).is_dir() else iter(())


def replay_entry(seed: seedfile.SeedFile, sc: Optional[Scenario] = None,
                 scenario_files: Tuple[str, ...] = ()) -> Tuple[Scenario, Execution]:
    """Replay one corpus entry (with ``sc`` when the caller holds its scenario, else found by
    name or in one of ``scenario_files``, which the user named).  Raises UnknownName or
    ReplayError when it cannot be replayed."""
    if sc is None:
        sc = engine.scenario_for(seed, _named_file(seed, scenario_files))
    return sc, engine.replay(seed, scenario=sc)


def _named_file(seed: seedfile.SeedFile, scenario_files: Tuple[str, ...]) -> Optional[str]:
    if seed.source is None:
        return None
    for given in scenario_files:
        if Path(given).resolve() == Path(seed.source).resolve():
            return given
    return None


def _replay_corpus(sc: Scenario, v: Variant, corpus: Path) -> None:
    __tracebackhide__ = True
    for path in corpus_entries(corpus):
        try:
            seed = seedfile.read(path)
            if (seed.scenario, seed.variant) != (sc.name, v.name):
                continue
            _, execution = replay_entry(seed, sc)
        except (seedfile.SeedFileError, UnknownName, engine.ReplayError) as e:
            warnings.warn(StaleSeedFile(f"{path}: {e.args[0] if e.args else e}"), stacklevel=3)
            continue
        if execution.failure is not None:
            raise AssertionError(message(sc, v, execution, path, what="replayed"))

