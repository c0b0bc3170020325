"""G2: every rmap walker holds the folio lock; the readers trylock; an unlocked walker is I10b."""

import attrs

from fuzzrmap import engine
from fuzzrmap.actors import Actor
from fuzzrmap.kernel.actors import CATALOGUE
from fuzzrmap.kernel.generations import G1, G2
from fuzzrmap.kernel.rmap import FAST_RECHECK, LOCKED_WALK, SLOW_RECHECK, RmapWalkControl, rmap_walk
from fuzzrmap.kernel.page_idle import TRYLOCK, page_idle_clear_pte_refs_one
from fuzzrmap.kernel.rmap import folio_lock_anon_vma_read
from fuzzrmap.scenario import UNKNOWN, Variant
from fuzzrmap.sched.strategies.random_walk import RandomWalk
from tests.helpers import run_plan


def test_g2_is_the_locked_walk_without_rechecks():
    assert LOCKED_WALK.name in G2.hunks and TRYLOCK.name in G2.hunks
    assert FAST_RECHECK.name not in G2.hunks and SLOW_RECHECK.name not in G2.hunks
    assert LOCKED_WALK.name not in G1.hunks


async def _unlocked_walker(w):
    """A walker that forgot the folio lock (the spec's V-G2-UNLOCKED-WALKER)."""
    await rmap_walk(w.folio, RmapWalkControl(rmap_one=page_idle_clear_pte_refs_one,
                                             anon_lock=folio_lock_anon_vma_read))


def _catalogue_with_unlocked_walker():
    bad = Actor("unlocked-walker", "reader", "rmap_walk() without the folio lock", "test", _unlocked_walker,
                reads_rmap=True)
    return attrs.evolve(CATALOGUE, actors=(bad,) + CATALOGUE.actors)


def test_an_unlocked_walker_is_I10b_in_g2_only():
    scenario = _catalogue_with_unlocked_walker().compose("unlocked-walker").scenario()
    g2 = engine.run_one(scenario, scenario.variant("g2"), RandomWalk(0), 0)
    assert g2.failure is not None and g2.failure.invariant == "I10b"
    g1 = engine.run_one(scenario, scenario.variant("fixed"), RandomWalk(0), 0)
    assert g1.failure is None


def test_in_g2_page_idle_does_not_walk_a_folio_the_mover_holds():
    """The mover holds F's folio lock from M4 (before M7a): page_idle's trylock fails and it walks nothing."""
    scenario = CATALOGUE.compose("page-idle", "uffd-move(src=S)").scenario()
    legs = [("mover", "M7a"), ("reader", None), ("mover", None)]
    for variant, walked in (("g2", False), ("fixed", True)):
        execution, _ = run_plan(scenario, scenario.variant(variant), legs)
        assert execution.failure is None
        reader_funcs = {s.func for s in execution.steps if execution.roles[s.task] == "reader"}
        assert ("folio_lock_anon_vma_read" in reader_funcs) is walked, variant


def test_g2_without_the_page_idle_hunk_walks_unlocked_and_is_caught():
    """Dropping one reader's trylock from G2 leaves an unlocked walker: I10b."""
    scenario = CATALOGUE.compose("page-idle").scenario(
        variants=[Variant("g2-no-trylock", UNKNOWN, "", G2, remove=[TRYLOCK])])
    execution = engine.run_one(scenario, scenario.variant("g2-no-trylock"), RandomWalk(0), 0)
    assert execution.failure is not None and execution.failure.invariant == "I10b"
