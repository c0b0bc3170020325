"""Actors compose into scenarios with stable names; each runs clean alone and in pairs."""

import pytest

from fuzzrmap import engine
from fuzzrmap import scenario as registry
from fuzzrmap.actors import Composition
from fuzzrmap.kernel.actors import CATALOGUE
from fuzzrmap.scenario import UnknownName
from fuzzrmap.sched.strategies.random_walk import RandomWalk

CASTS = [c for a in CATALOGUE.actors for c in a.casts()]


def test_a_composition_has_one_name_whatever_the_order():
    a = CATALOGUE.compose("fork", "munmap(vma=S)", "page-idle", "uffd-move")
    b = CATALOGUE.compose("uffd-move(src=S)", "page-idle", "fork", "munmap")
    assert a == b
    assert a.name == "page-idle+uffd-move(src=S)+munmap(vma=S)+fork"
    assert CATALOGUE.parse(a.name) == a
    assert a.roles() == ["reader", "mover", "munmap", "fork"]
    assert CATALOGUE.compose("page-idle", "referenced").roles() == ["reader", "reader2"]


def test_composition_names_are_scenarios():
    s = registry.get("page-idle+munmap(vma=D)")
    assert s.name == "page-idle+munmap(vma=D)" and [v.name for v in s.variants][0] == "fixed"


@pytest.mark.parametrize("name, message", [
    ("page-idle+munmap(vma=X)", "takes one of S, D, not 'X'"),
    ("page-idle+nothing", "unknown actor 'nothing'"),
    ("page-idle+munmap(size=1)", "has no parameter 'size'"),
    ("no-such-scenario", "unknown scenario 'no-such-scenario'"),
])
def test_bad_composition_names_say_why(name, message):
    with pytest.raises(UnknownName, match=message):
        registry.get(name)


def test_the_flagship_scenarios_are_compositions():
    s = registry.get("uffd-move-vs-page-idle-fork")
    assert [role for role, _ in s.setup(engine_kernel()).threads] == ["reader", "mover", "munmap", "fork"]


def engine_kernel():
    from tests.helpers import _kernel
    return _kernel()


def test_enumeration_keeps_only_compositions_with_a_reader():
    comps = list(CATALOGUE.compositions(2))
    assert all(any(c.actor.reads_rmap for c in comp.casts) for comp in comps)
    assert len({comp.name for comp in comps}) == len(comps)
    readers = [c for c in CASTS if c.actor.reads_rmap]
    others = len(CASTS) - len(readers)
    assert len(readers) == 5 and others == 11
    # readers alone, reader pairs (with repetition), a reader with another cast
    assert len(comps) == 5 + (5 * 4 // 2 + 5) + 5 * 11


def test_ksmd_is_one_thread():
    """Two concurrent KSM merges would be two ksmd threads: refused by name, never enumerated."""
    with pytest.raises(UnknownName, match="at most one"):
        CATALOGUE.compose("referenced", "ksm", "ksm")
    assert not [c for c in CATALOGUE.compositions(3) if c.name.count("ksm") > 1]
    assert CATALOGUE.compose("referenced", "ksm").name == "referenced+ksm"


def test_two_reclaimers_never_walk_the_folio_at_once():
    """isolate_lru_folios() clears PG_lru: of two reclaimers only one isolates F and walks it."""
    scenario = CATALOGUE.compose("referenced", "referenced-locked").scenario()
    walks = set()

    def seen(execution, sched):
        # each reclaimer's steps from its isolation to its putback; one that failed to isolate has one step
        spans = []
        for t in (0, 1):
            mine = [i for i, s in enumerate(execution.steps) if s.task == t]
            if len(mine) > 1:
                spans.append((mine[0], mine[-1]))
        walks.add(len(spans))
        if len(spans) == 2:
            (a0, a1), (b0, b1) = spans
            assert a1 < b0 or b1 < a0, f"both reclaimers hold F at once: {spans}"

    result = engine.explore(scenario, scenario.variant("fixed"), on_execution=seen, stop_on_failure=False)
    assert result.complete and result.failure is None
    assert walks == {1, 2}  # one reclaimer, or one after the other


@pytest.mark.parametrize("cast", CASTS, ids=lambda c: c.name)
def test_each_actor_runs_alone_without_a_violation(cast):
    scenario = Composition(CATALOGUE, (cast,)).scenario()
    execution = engine.run_one(scenario, scenario.variant("fixed"), RandomWalk(0), 0)
    assert execution.failure is None, execution.failure.headline()


def test_every_pair_of_actors_runs_clean_on_sampled_schedules():
    for a in CASTS:
        for b in CASTS:
            if a.actor is b.actor and a.actor.single:
                continue
            scenario = CATALOGUE.compose(a.name, b.name).scenario()
            variant = scenario.variant("fixed")
            for i in range(10):
                execution = engine.run_one(scenario, variant, RandomWalk(3), i)
                assert execution.failure is None, (scenario.name, execution.failure.headline())


@pytest.mark.parametrize("cast", CASTS, ids=lambda c: c.name)
def test_each_actor_runs_alone_in_every_variant(cast):
    scenario = Composition(CATALOGUE, (cast,)).scenario()
    for variant in scenario.variants:
        for i in range(3):
            execution = engine.run_one(scenario, variant, RandomWalk(5), i)
            assert execution.failure is None, (variant.name, execution.failure.headline())


def test_fuzzrmap_actors_lists_the_catalogue(capsys):
    import json
    from fuzzrmap.cli import main

    assert main(["actors", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["catalogues"][0]
    assert [a["kind"] for a in listed["actors"]] == [a.kind for a in CATALOGUE.actors]
    damon = next(a for a in listed["actors"] if a["kind"] == "damon")
    assert damon["params"] == [{"name": "op", "choices": ["mkold", "young"],
                                "summary": "clear the accessed bits, or test them"}]
    assert "mm/damon/ops-common.c" in damon["source"]
    assert main(["actors"]) == 0
    assert "ksm" in capsys.readouterr().out


def test_enumerated_compositions_are_named_as_they_parse():
    for comp in CATALOGUE.compositions(2):
        assert CATALOGUE.parse(comp.name) == comp, comp.name


def test_a_speculative_reference_does_not_make_the_wp_reuse_move_an_i4():
    # wp_can_reuse_anon_folio() proves exclusivity by folio_ref_count() == 1 under the
    # folio lock; a reader's later folio_get() does not undo that (mm/memory.c)
    scenario = registry.get("referenced+cow-reuse")
    result = engine.explore(scenario, scenario.variant("fixed"))
    assert result.complete and result.failure is None, result.failure and result.failure.failure.headline()
