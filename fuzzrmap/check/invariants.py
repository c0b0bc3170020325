"""Invariants I1-I11 of the model specification (section 3), as predicates.

The structural invariants I12-I14, checked between operations, are in
:mod:`fuzzrmap.check.structure`.

Each function is called by the model at the step where its invariant must
hold, and raises the :func:`~fuzzrmap.check.violation` with the spec's id.
Messages name objects as the kernel would print them (``anon_vma#2``, the
slot; a re-used slot shows its generation, ``anon_vma#2/gen2``) so that a
reviewer can follow the failure on the interleaving.

Where the spec is stricter than what can be observed in a sequentially
consistent model, the check says so in its docstring.

The checker's own hooks (marked ``@in_flight``) and the final sweep know
things the kernel cannot see (slot generations, which anon_vma a reader
believes it holds).  A variant that adds the :data:`KERNEL_ONLY` hunk turns
them off and keeps only what a debug kernel would report itself: lockdep's
lock pairing and sleeping rules and RCU nesting (I7, I8, I9, in the
primitives and at thread exit), KASAN's use of a released slab page (I5a),
and deadlocks.  The model code is the same in both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List, Optional, Tuple

import functools

from fuzzrmap.check import ACCURACY, SAFETY, event, report, violation
from fuzzrmap.hunks import CONFIG, hunk
from fuzzrmap.kernel.memory import VMA, Folio, folio_mapped, mappers
from fuzzrmap.kernel.slab import SlotState, slot_resource
from fuzzrmap.sched.api import touch
from fuzzrmap.kernel.task import Kernel, TaskStruct, current

if TYPE_CHECKING:  # pragma: no cover
    from fuzzrmap.kernel.rmap import AnonVma
    from fuzzrmap.kernel.rwsem import RWSem


KERNEL_ONLY = hunk("check.kernel_only",
                   "only what a debug kernel notices (lockdep, KASAN, deadlocks): the checker's own hooks are off",
                   kind=CONFIG)


def in_flight(check):
    """A checker hook that :data:`KERNEL_ONLY` turns into a no-op."""
    @functools.wraps(check)
    def hook(*args, **kwargs):
        if not KERNEL_ONLY.on:
            check(*args, **kwargs)
    return hook


def _held_rwsems(t: TaskStruct) -> List[Tuple["RWSem", str]]:
    return [(lock, mode) for lock, mode in t.held if mode in ("read", "write")]


# -- I5: lifetime of anon_vma slots ------------------------------------------

def anon_vma_access(av: "AnonVma", what: str, idiom: bool = False) -> None:
    """I5a/I5b: an access to ``av`` by the running task.

    ``idiom`` marks the accesses the spec allows on a stale object (L3's root
    read, L4's trylock, S2/G3's ``atomic_inc_not_zero`` and the ``up_read`` of a
    hold from L4): their results are validated afterwards.
    """
    touch(slot_resource(av.slot), False)
    if av.slab_state is SlotState.GONE:
        raise violation("I5a", SAFETY, f"use-after-free: {what} touches {av!r}, whose slab memory was released after a grace period")
    if idiom or KERNEL_ONLY.on:
        return
    if av.slab_state is SlotState.FREE:
        raise violation("I5b", SAFETY, f"{what} uses {av!r}, which is free (kmem_cache_free'd) and not validated")
    seen = current().believed.get(av.slot)
    if seen is not None and seen != av.gen:
        raise violation("I5b", SAFETY, f"{what} uses {av!r}, re-allocated since it was loaded (gen {seen}) and not validated")


@in_flight
def anon_vma_loaded(av: "AnonVma") -> None:
    """The running task loaded a pointer to ``av`` (from ``folio->mapping``), validated it,
    or pinned it with ``atomic_inc_not_zero``.

    A pin holds whatever generation the slot has now, so locking and putting it
    are safe; using it as the folio's anon_vma still needs the
    ``folio->mapping`` recheck, which is what I1 judges.
    """
    current().believed[av.slot] = av.gen


@in_flight
def anon_vma_freed(av: "AnonVma", tasks: Iterable[TaskStruct]) -> None:
    """I5d: ``kmem_cache_free`` only at refcount 0 and while no task holds a lock returned for it."""
    if av.refcount.atomic_read() != 0:
        raise violation("I5d", SAFETY, f"anon_vma_free({av!r}) with refcount {av.refcount.atomic_read()}")
    for t in tasks:
        if any(locked is av for locked, _ in t.anon_vma_locked):
            raise violation("I5d", SAFETY, f"{av!r} freed while {t.comm} holds its lock from folio_lock_anon_vma_read()")


# -- I1, I2: the lock folio_lock_anon_vma_read() returns -----------------------

def _anon(folio: Folio) -> Optional["AnonVma"]:
    """``folio->mapping`` when it is an anon_vma (not None, not a KSM stable node)."""
    from fuzzrmap.kernel.rmap import folio_anon_vma
    return folio_anon_vma(folio)


def _reads_folio_and_tree(folio: Folio, av: "AnonVma") -> None:
    """The shared state the I1/I2 checks read, for the step's footprint."""
    touch("folio.mapping", False)
    touch("folio.mapcount", False)
    touch(f"{av.name}.root", False)
    touch(f"{av.name}.rb_root", False)
    avf = _anon(folio)
    if avf is not None:
        touch(f"{avf.name}.root", False)


@in_flight
def lock_anon_vma_read_returned(folio: Folio, av: Optional["AnonVma"], held_at_entry: int) -> None:
    """I1: the return contract of ``folio_lock_anon_vma_read()``."""
    t = current()
    new = _held_rwsems(t)[held_at_entry:]
    if av is None:
        if new:
            raise violation("I1a", SAFETY, f"returned NULL but still holds {new[0][0].name}")
        return
    if len(new) != 1 or new[0][1] != "read":
        raise violation("I1a", SAFETY, f"returned {av!r} holding {[(l.name, m) for l, m in new]}, not exactly one read hold")
    sem = new[0][0]
    _reads_folio_and_tree(folio, av)
    if av.slab_state is not SlotState.LIVE:
        raise violation("I1b", SAFETY, f"returned {av!r}, which is {av.slab_state.value}, with {sem.name} read-held")
    if av.root.rwsem is not sem:
        raise violation("I1a", SAFETY, f"returned {av!r} holding {sem.name}, but its root is now {av.root!r}")
    avf = _anon(folio)
    if avf is not None and avf.root.rwsem is not sem:
        raise violation("I1c", ACCURACY, f"reader holds {sem.name} but folio->mapping is {avf!r} with root {avf.root!r}")
    for vma in mappers(folio, current().kernel.vmas()):
        if not any(avc.vma is vma for avc in av.rb_root):
            raise violation("I1d", ACCURACY, f"{vma.name} maps {folio.name} but has no anon_vma_chain in {av!r}'s tree")
    t.anon_vma_locked.append((av, sem))


@in_flight
def walk_hold_stable(folio: Folio, av: "AnonVma", sem: "RWSem", what: str) -> None:
    """I2: while a walker holds the lock returned for ``av``, the folio stays in that tree."""
    anon_vma_access(av, what)
    _reads_folio_and_tree(folio, av)
    if av.root.rwsem is not sem:
        raise violation("I2", SAFETY, f"{what}: {av!r}'s root changed to {av.root!r} while {sem.name} is held for it")
    avf = _anon(folio)
    if folio_mapped(folio) and avf is not None and avf.root.rwsem is not sem:
        raise violation("I2", SAFETY, f"{what}: {folio.name} moved to {avf!r} (root {avf.root!r}) while the walker holds {sem.name}")


@in_flight
def walk_complete(folio: Folio, mapped_at_start: List[VMA], visited: List[VMA], locked: bool) -> None:
    """I10: an rmap walk visits the VMAs that map the folio.

    A walker holding the folio lock must visit every mapping present for the
    whole walk (I10a, a failure).  For an unlocked walker, a VMA that maps the
    folio when the walk ends and was not visited is an accuracy event (I10c):
    the fixed kernel has them too, in the torn (mapping, index) window of spec
    section 4.4.
    """
    now = mappers(folio, current().kernel.vmas())
    expected = [v for v in now if v in mapped_at_start] if locked else now
    missed = [v.name for v in expected if v not in visited]
    if not missed:
        return
    msg = f"rmap walk of {folio.name} missed {', '.join(missed)}, which maps it"
    if locked:
        raise violation("I10a", SAFETY, msg)
    event("I10c", msg)


def walker_holds_folio_lock(folio: Folio, func: str) -> None:
    """I10b (G2): every rmap walker of an anon folio holds its folio lock
    (``VM_WARN_ON_FOLIO(!folio_test_locked(folio))`` in the walk's entry)."""
    t = current()
    touch(folio.lock.name, False)
    if folio.lock.owner is not t:
        raise violation("I10b", SAFETY, f"{func}() on {folio.name} by {t.comm}, which does not hold its folio lock")


# -- I3, I4: who may move a folio ----------------------------------------------

@in_flight
def folio_field_write_allowed(folio: Folio, what: str) -> None:
    """I3: ``folio->mapping`` and ``folio->index`` of an anon folio change only under the folio lock."""
    t = current()
    touch(folio.lock.name, False)
    if folio.lock.owner is not t:
        raise violation("I3", SAFETY, f"{t.comm} writes {what} of {folio.name} without the folio lock")


@in_flight
def move_anon_rmap_allowed(folio: Folio, new: "AnonVma") -> None:
    """I3 and I4 at ``folio_move_anon_rmap()``.  With the G2 mover
    (:data:`~fuzzrmap.kernel.userfaultfd.NO_ANON_VMA_LOCK`) the folio lock is
    the whole contract, so the old root's write lock is not required."""
    t = current()
    folio_field_write_allowed(folio, f"folio->mapping = {new!r}")
    touch("folio.mapping", False)
    old = folio.mapping
    if old is not None and old is not _anon(folio):
        raise violation("I4", SAFETY, f"folio_move_anon_rmap on {folio.name}, a KSM folio ({old!r})")
    touch("folio.mapcount", False)
    for av in (old, new):
        if av is not None:
            touch(f"{av.name}.root", False)
            touch(slot_resource(av.slot), False)
    from fuzzrmap.kernel.userfaultfd import NO_ANON_VMA_LOCK  # the mover imports the checker

    if old is not None and old.root is not new.root and folio_mapped(folio) and not NO_ANON_VMA_LOCK.on:
        if not t.holds(old.root.rwsem, "write"):
            raise violation("I3", SAFETY, f"{t.comm} moves {folio.name} from root {old.root!r} to root {new.root!r} without holding {old.root.rwsem.name} for write")
    if new.slab_state is not SlotState.LIVE:
        raise violation("I3", SAFETY, f"{folio.name} moved into {new!r}, which is {new.slab_state.value}")
    # do_wp_page()'s re-use (WP5) moves a folio that is not PageAnonExclusive
    # yet: wp_can_reuse_anon_folio() proved it exclusive by folio_ref_count() == 1
    # under the folio lock (mm/memory.c, v6.8-v6.18).  A speculative reference
    # taken after that check (reclaim's isolation, page_idle's folio_try_get())
    # does not undo the proof, so the move is judged by where it goes: within
    # one root, a singly mapped folio.
    wp_reuse = old is not None and old.root is new.root
    if folio._mapcount > 1 or not (folio.anon_exclusive or wp_reuse):
        raise violation("I4", SAFETY, f"folio_move_anon_rmap on {folio.name} with mapcount {folio._mapcount}, exclusive={folio.anon_exclusive}")


# -- end of a thread and end of a schedule --------------------------------------

def task_exit(t: TaskStruct) -> None:
    """I7/I9: a thread ends holding no lock and outside RCU.

    A lock left held stays held (reported, and the run goes on: whoever needs
    it next waits for ever, which the deadlock check then reports)."""
    if t.held:
        lock, mode = t.held[0]
        report("I7", SAFETY, f"{t.comm} ends holding {lock.name} ({mode})")
    if t.rcu_read_lock_nesting:
        raise violation("I9", SAFETY, f"{t.comm} ends inside an RCU read-side section (nesting {t.rcu_read_lock_nesting})")


def final_state(k: "Kernel", folios: Iterable[Folio]) -> Optional[Tuple[str, str, str]]:
    """I5c, I6 and I11 over the state left when every thread has returned.

    Returns (invariant, kind, message) for the first broken one, or None
    (always None with :data:`KERNEL_ONLY`).
    """
    if KERNEL_ONLY.on:
        return None
    vmas = k.vmas()
    for folio in folios:
        av = _anon(folio)
        if folio_mapped(folio) and av is not None and av.slab_state is not SlotState.LIVE:
            return ("I5c", SAFETY, f"{folio.name} is mapped but its anon_vma {av!r} is {av.slab_state.value}")
    for vma in vmas:
        for avc in vma.anon_vma_chain:
            if avc not in avc.anon_vma.rb_root:
                return ("I11", SAFETY, f"{vma.name}'s chain links {avc.anon_vma!r}, whose tree lacks it")
            if avc.anon_vma.root is not vma.anon_vma_chain[0].anon_vma.root:
                return ("I11", SAFETY, f"{vma.name}'s chain mixes roots {avc.anon_vma.root!r} and {vma.anon_vma_chain[0].anon_vma.root!r}")
        if vma.ptes and (vma.anon_vma is None or not vma.anon_vma_chain):
            return ("I11", SAFETY, f"{vma.name} maps anon pages but has no anon_vma")
    for av in k.anon_vma_cachep.slots:
        if av.slab_state is not SlotState.LIVE:
            continue
        if av.num_children < 0 or av.num_active_vmas < 0:
            return ("I11", SAFETY, f"{av!r} has num_children {av.num_children}, num_active_vmas {av.num_active_vmas}")
        for avc in av.rb_root:
            if avc not in avc.vma.anon_vma_chain:
                return ("I11", SAFETY, f"{av!r}'s tree holds a chain of {avc.vma.name} that is not on its list")
        descendants = sum(1 for o in k.anon_vma_cachep.slots
                          if o is not av and o.slab_state is SlotState.LIVE and o.root is av)
        want = descendants + (1 if av.rb_root else 0)
        if av.root is av and av.refcount.atomic_read() < want:
            return ("I6", SAFETY, f"root {av!r} has refcount {av.refcount.atomic_read()} < {want} (live descendants + tree)")
    return None

