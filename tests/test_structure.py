"""I12-I14 hold between operations, and break when the structure is damaged mid-schedule."""

import attrs
import pytest

from fuzzrmap import engine
from fuzzrmap.check import structure
from fuzzrmap.kernel import actors as kactors
from fuzzrmap.kernel.actors import CATALOGUE, UffdWorld
from fuzzrmap.kernel.environment import KERNEL
from fuzzrmap.sched.api import FootprintError
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


def _explore(scenario, **kw):
    return engine.explore(scenario, scenario.variant("fixed"), max_executions=300, stop_on_failure=False, **kw)


def test_check_footprints_holds_the_kernel_to_what_the_checks_between_operations_read(monkeypatch):
    """No step of a composition that writes only locks, RCU state, exits or accessed bits changes
    the rest of the kernel; a claim that the checks do not read the page tables is caught."""
    scenario = CATALOGUE.compose("referenced", "uffd-move", "munmap").scenario()
    assert _explore(scenario, check_footprints=True).executions == 300
    reads = KERNEL.quiet_check_reads
    monkeypatch.setattr(KERNEL, "quiet_check_reads", lambda resource: not resource.startswith("pte:") and reads(resource))
    with pytest.raises(FootprintError, match="changes what a check between operations reads"):
        _explore(scenario, check_footprints=True)


def test_quiet_states_that_differ_only_in_what_the_checks_do_not_read_are_checked_once(monkeypatch):
    """Leaving locks, RCU state and accessed bits out of the quiet states' keys replays fewer of them."""
    scenario = CATALOGUE.compose("referenced", "uffd-move", "munmap").scenario()
    keyed_by_reads = _explore(scenario)
    monkeypatch.setattr(KERNEL, "quiet_check_reads", lambda resource: True)
    keyed_by_all = _explore(scenario)
    assert keyed_by_reads.executions == keyed_by_all.executions
    assert keyed_by_reads.quiet_states < keyed_by_all.quiet_states
