"""I12-I14 hold between operations, and break when the structure is damaged mid-schedule."""

import attrs
import pytest

from fuzzrmap import engine
from fuzzrmap.check import structure
from fuzzrmap.kernel import actors as kactors
from fuzzrmap.kernel.actors import CATALOGUE, UffdWorld
from fuzzrmap.sched.strategies.random_walk import RandomWalk
from tests.helpers import _kernel


def _world() -> UffdWorld:
    return kactors.build(_kernel())


def test_the_initial_world_is_sound():
    w = _world()
    assert structure.between_operations(w.kernel, w.folios) is None


def test_a_chain_missing_from_its_tree_is_I12():
    w = _world()
    w.src.anon_vma.rb_root.clear()
    assert structure.between_operations(w.kernel, w.folios)[0] == "I12"


def test_a_wrong_num_active_vmas_is_I12():
    w = _world()
    w.dst.anon_vma.num_active_vmas = 2
    assert structure.between_operations(w.kernel, w.folios)[0] == "I12"


def test_a_mapping_no_walk_reaches_is_I13():
    w = _world()
    w.folio.index += 1  # the torn (mapping, index) state, left behind
    broken = structure.between_operations(w.kernel, w.folios)
    assert broken[0] == "I13" and "S:0x10000 maps F" in broken[2]


def test_a_leaked_anon_vma_reference_is_I14():
    w = _world()
    w.src.anon_vma.refcount.counter += 1
    assert structure.between_operations(w.kernel, w.folios)[0] == "I14"


def _leaky_munmap(w, vma):
    """munmap, then a stray get_anon_vma() on D's anon_vma: a leak the end sweep (I6, a lower bound) misses."""
    await_ = kactors._operation

    async def leak():
        from fuzzrmap.sched.api import point
        await point("test", "atomic_inc(&anon_vma->refcount)")
        w.dst.anon_vma.refcount.counter += 1

    async def body():
        await kactors.munmap(w, vma)
        await await_(w, leak())
    return body()


def test_the_check_runs_when_an_operation_returns():
    """A leak is reported at the end of the operation that made it, in the thread that made it."""
    leaky = attrs.evolve(CATALOGUE.actor("munmap"), run=_leaky_munmap)
    catalogue = attrs.evolve(CATALOGUE, actors=[leaky if a.kind == "munmap" else a for a in CATALOGUE.actors])
    scenario = catalogue.compose("munmap(vma=S)").scenario()
    execution = engine.run_one(scenario, scenario.variant("fixed"), RandomWalk(0), 0)
    assert execution.failure is not None
    assert execution.failure.invariant == "I14" and execution.failure.task == "munmap"


@pytest.mark.parametrize("name", ["cow-reuse", "fault", "ksm", "exit-mmap", "madv-dontneed(vma=S)"])
def test_sequences_keep_the_structure(name):
    scenario = CATALOGUE.compose(name).scenario()
    for variant in scenario.variants:
        execution = engine.run_one(scenario, variant, RandomWalk(1), 0)
        assert execution.failure is None, execution.failure.headline()
