"""The breaking interleavings of spec section 4, steered step by step.

Each test drives a flagship scenario through the schedule the spec describes
and checks what the unpatched reader does wrong and that the patched one
retries and returns the destination anon_vma instead.
"""

from fuzzrmap import scenario as registry

from helpers import run_plan

REFERENCED = registry.get("uffd-move-vs-referenced")
PAGE_IDLE = registry.get("uffd-move-vs-page-idle")

# 4.1: the reader loads folio->mapping and anon_vma->root, stalls; the move,
# the munmap of S (which frees anon_vma#1) and a fork (which re-allocates
# its slot with another root) all complete; then the reader trylocks.
FAST_PATH_RACE = [("reader", "L4"), ("mover", None), ("munmap", None), ("fork", None), ("reader", None)]
FAST_PATH_RACE_NO_REUSE = [("reader", "L4"), ("mover", None), ("munmap", None), ("reader", None)]
# 4.2: the mover holds the source root for write, so the reader pins the
# anon_vma and sleeps in down_read; it wakes after the move.
SLOW_PATH_RACE = [("reader", "L4"), ("mover", "M7a"), ("reader", None), ("mover", None), ("reader", None)]


def test_unpatched_fast_path_returns_a_reused_anon_vma_whose_root_changed():
    execution, _ = run_plan(REFERENCED, REFERENCED.variant("unpatched"), FAST_PATH_RACE)
    f = execution.failure
    assert (f.invariant, f.task) == ("I1a", "reader"), f
    assert "anon_vma#1/gen2" in f.message and "root is now anon_vma#3" in f.message


def test_unpatched_fast_path_returns_a_freed_anon_vma():
    execution, _ = run_plan(REFERENCED, REFERENCED.variant("unpatched"), FAST_PATH_RACE_NO_REUSE)
    f = execution.failure
    assert (f.invariant, f.task) == ("I1b", "reader"), f
    assert "free" in f.message


def test_fixed_fast_path_retries_and_walks_the_destination_tree():
    execution, sched = run_plan(REFERENCED, REFERENCED.variant("fixed"), FAST_PATH_RACE)
    assert execution.failure is None, execution.failure
    labels = [s.label for s in execution.steps if execution.roles[s.task] == "reader"]
    assert any(label.startswith("L5 up_read") for label in labels), "the recheck must send the reader back to retry"
    assert any("anon_vma#2" in label and label.startswith("W3") for label in labels), "the walk must use D's tree"
    world = sched.world.world
    assert world.folios[0].mapping.name == "anon_vma#2"


def test_unpatched_slow_path_returns_the_old_tree():
    execution, _ = run_plan(PAGE_IDLE, PAGE_IDLE.variant("unpatched"), SLOW_PATH_RACE)
    f = execution.failure
    assert (f.invariant, f.task) == ("I1c", "reader"), f
    assert "holds anon_vma#1.rwsem but folio->mapping is anon_vma#2" in f.message


def test_no_slow_recheck_breaks_the_slow_path_and_fixed_does_not():
    assert run_plan(PAGE_IDLE, PAGE_IDLE.variant("no-slow-recheck"), SLOW_PATH_RACE)[0].failure.invariant == "I1c"
    execution, _ = run_plan(PAGE_IDLE, PAGE_IDLE.variant("fixed"), SLOW_PATH_RACE)
    assert execution.failure is None, execution.failure
    labels = [s.label for s in execution.steps]
    assert any(label.startswith("S6 anon_vma_unlock_read") for label in labels)


def test_referenced_gives_up_on_contention_instead_of_sleeping():
    execution, _ = run_plan(REFERENCED, REFERENCED.variant("no-slow-recheck"), SLOW_PATH_RACE)
    assert execution.failure is None
    assert any(s.label.startswith("S1 trylock failed") for s in execution.steps)


def test_torn_mapping_index_window_is_an_accuracy_event_not_a_failure():
    # The reader reads folio->mapping after M7e (anon_vma#2) but folio->index before M7f.
    legs = [("mover", "M7f"), ("reader", "L0"), ("reader", "W3"), ("mover", None), ("reader", None)]
    legs = [("mover", "WRITE_ONCE")] + legs
    execution, _ = run_plan(PAGE_IDLE, PAGE_IDLE.variant("fixed"), legs)
    assert execution.failure is None, execution.failure
    assert [(e.invariant, e.task) for e in execution.events] == [("I10c", "reader")]
    assert "missed D" in execution.events[0].message
