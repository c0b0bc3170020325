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
