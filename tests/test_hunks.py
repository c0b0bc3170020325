"""Hunks are switched per schedule, declared once, and make the variants."""

import pytest

from fuzzrmap import hunks
from fuzzrmap.kernel.generations import G0, G1
from fuzzrmap.kernel.rmap import FAST_RECHECK, SLOW_RECHECK
from fuzzrmap.scenario import CLEAN, Variant
from fuzzrmap.sched.api import ModelError


def test_variant_is_a_generation_plus_or_minus_hunks():
    v = Variant("no-fast", CLEAN, "", G1, remove=[FAST_RECHECK])
    assert v.hunks == {SLOW_RECHECK.name}
    assert v.scope() == "G1 - rmap.fast_recheck"
    assert Variant("g0+slow", CLEAN, "", G0, add=[SLOW_RECHECK]).hunks == {SLOW_RECHECK.name}
    with pytest.raises(ValueError, match="no hunk rmap.fast_recheck"):
        Variant("bad", CLEAN, "", G0, remove=[FAST_RECHECK]).hunks


def test_a_hunk_is_declared_once():
    with pytest.raises(ValueError, match="declared twice"):
        exec("from fuzzrmap.hunks import hunk\nhunk('rmap.fast_recheck', 'again')", {"__name__": "elsewhere"})


def test_a_generation_names_only_declared_hunks():
    with pytest.raises(hunks.UnknownHunk, match="unknown hunk 'rmap.no_such'"):
        hunks.Generation("Gx", "", ("rmap.no_such",))


def test_a_hunk_is_only_tested_inside_a_schedule():
    from fuzzrmap.sched.api import RUNNING
    saved, RUNNING.sched = RUNNING.sched, None
    try:
        with pytest.raises(ModelError, match="outside a schedule"):
            FAST_RECHECK.on
    finally:
        RUNNING.sched = saved


def test_kernel_only_turns_the_checkers_own_hooks_off_on_the_same_schedule(seed_path):
    """The schedule of a checker-found failure, re-run with check.kernel_only: the model code is the
    same (the same steps up to the failure), only what a debug kernel reports may fail it."""
    from fuzzrmap import engine
    from fuzzrmap.check.invariants import KERNEL_ONLY
    from fuzzrmap.sched import seedfile
    from fuzzrmap.scenario import FAILS
    from helpers import Scripted

    seed = seedfile.read(seed_path)
    sc = engine.scenario_for(seed)
    checked = sc.variant(seed.variant)
    kernel_only = Variant("kernel-only", FAILS, "", checked.generation, add=[KERNEL_ONLY], remove=checked.remove)
    assert seed.failure.invariant.startswith("I1")
    order = [s.task for s in seed.steps]
    assert engine.run_one(sc, checked, Scripted(order)).failure.invariant == seed.failure.invariant
    quiet = engine.run_one(sc, kernel_only, Scripted(order))
    assert [(s.task, s.label) for s in quiet.steps[:len(order)]] == [(s.task, s.label) for s in seed.steps]
    assert quiet.failure is None or quiet.failure.invariant in ("I5a", "I7", "I8", "I9")
