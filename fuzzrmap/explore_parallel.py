"""Parallel explore: the subtrees of one search in worker processes.

Stateless search splits naturally: a state of the search tree is named by the
decisions that lead to it, and a worker that knows the path (each node's
enabled threads, sleep set and what was tried there) can search the subtree
below by replaying the path, with nothing shared but that description.  One
search, many *work units*:

* a unit is a path, the threads to try at its last node and nothing else; a
  worker searches below it (:meth:`~fuzzrmap.sched.strategies.dpor.Explore.start_subtree`)
  for at most ``split_after`` runs, then hands back the rest of its subtree
  - every node of its stack with threads left to try - as new units;
* races found in a unit whose reversal starts above the unit's root cannot be
  searched there: the worker returns them as requests, and the coordinator,
  which keeps every node that lies on some unit's path, adds the backtrack
  point unless some unit already tries one of the reversal's initials;
* a thread given to a unit counts as tried at its node from then on, and its
  subtree's exploration is complete once all units below it are: the
  sleep-set argument of the sequential search holds for the finished search.

Deterministic, whatever the timing: a unit's contents are fixed when it is
created, units are created only while merging results, results are merged
in the order their units were dispatched, and units are dispatched only
after a merge (or at the start), newest first - depth-first, like the
sequential search - until ``IN_FLIGHT`` per worker are out.  So a run is a
pure function of the scenario, the variant, the options and ``jobs``; the
timing changes only how fast it goes.  Units are small (``split_after``
runs), which keeps the wait for the oldest unit short and leaves an idle
worker something to take: the queue plays the part of work stealing.
Threads for a node that a unit still searches from are held back until that
unit is merged, so the unit that tries them knows the footprints of the
threads tried there before, and its sleep sets are the sequential search's.

The same verdict and the same violations as ``jobs=1`` (the search is sound
and complete either way).  The counts of a search run to its end are the
sequential ones on every shipped scenario and variant, but need not be in
general: races are merged in unit order, not depth-first order, and may
pick other representatives.  With
``stop_on_failure`` the search stops at the first failure in merge order,
which may not be the one the sequential search meets first.
``max_executions`` is checked at each merge, so a budgeted search may run a
few units past it.

A naive search (no reduction: every schedule within the bound runs, and
nothing depends on races) can instead give the sequential search's answer
exactly (``in_order``).  Its order is fixed by the tree: at each node the
first choice, then the other threads ascending
(:meth:`~fuzzrmap.sched.strategies.dpor.Node.rank`), so every execution has a
position, and a unit runs a stretch of consecutive positions.  The first
failure is then the one with the smallest position once no work left can
hold a smaller one (later work is dropped as soon as a failure is known);
the sequential search meets it after the executions of the stretches that
start before it, which decides whether ``max_executions`` cut the search
first; and a search without failure is cut by the budget once more than
``max_executions`` executions precede all the work left.  The failure, the
completeness and the count of executions are the sequential ones; the runs
needed to know it beyond those are work done ahead.

Workers are forked processes on a pipe each (they inherit the scenario, so
scenarios built in tests need not be picklable); each holds up to
``PER_WORKER`` units, so it need not wait for the coordinator between two.
They ignore Ctrl-C, which the coordinator handles; a model error in a
worker is raised by the coordinator.  Left out: a cluster backend, and
sharing state between workers.
"""

from __future__ import annotations

import gc
import multiprocessing
import signal
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Callable, Deque, Dict, FrozenSet, List, Optional, Tuple

import attrs

from fuzzrmap import engine
from fuzzrmap.scenario import Scenario, Variant
from fuzzrmap.sched.api import RUNNING
from fuzzrmap.sched.strategies.dpor import Explore, Node
from fuzzrmap.sched.trace import Execution

#: runs a unit makes before it hands the rest of its subtree back
SPLIT_AFTER = 48
#: units dispatched and not merged yet, per worker
IN_FLIGHT = 4
#: units a worker process holds at a time (running and queued)
PER_WORKER = 2

Path = Tuple[int, ...]


@attrs.define
class Options:
    reduction: bool
    preemption_bound: Optional[int]
    stop_on_failure: bool
    target: Optional[str]
    check_footprints: bool
    final_states: bool
    split_after: int
    #: give the sequential search's answer (see the module notes)
    in_order: bool = False


#: an execution's place in the naive search's order (:meth:`~fuzzrmap.sched.strategies.dpor.Explore.position`)
Position = Tuple[Tuple[int, int], ...]


@attrs.define
class Unit:
    """Search below the node at ``path``, trying ``todo`` there; ``nodes`` are the path's nodes."""

    seq: int
    path: Path
    nodes: List[Node]
    todo: Tuple[int, ...]
    #: no execution of the unit has a position before this one (a prefix of theirs)
    order: Position = ()


@attrs.define
class UnitResult:
    seq: int
    tally: engine.Tally
    bound_cut: bool
    #: (depth, initials, threads added) for nodes above the unit's root
    requests: List[Tuple[int, FrozenSet[int], FrozenSet[int]]]
    #: the unit's stack from its root down to the deepest node with threads left
    nodes: List[Node]
    #: (depth, threads left to try) of those nodes
    frontier: List[Tuple[int, List[int]]]
    #: the position of the unit's first execution and of its failure (None: no such execution)
    first: Optional[Position] = None
    failure_at: Optional[Position] = None


# -- the worker side ----------------------------------------------------------------

_JOB: Optional[Tuple[Scenario, Variant, Options]] = None


def _worker(conn: Connection) -> None:
    """A worker process: run the units that come down ``conn`` until told to stop (``None``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()  # what it inherits lives as long as it does: its collector need not walk (and copy) that
    RUNNING.check_footprints = _JOB[2].check_footprints
    while True:
        try:
            unit = conn.recv()
        except EOFError:
            return
        if unit is None:
            return
        try:
            conn.send(("done", run_unit(unit)))
        except Exception as e:  # noqa: BLE001 - a model error: the coordinator raises it
            conn.send(("error", e))


def run_unit(unit: Unit) -> UnitResult:
    """Search one unit's subtree for at most ``split_after`` runs."""
    scenario, variant, opts = _JOB
    strategy = Explore(reduction=opts.reduction, preemption_bound=opts.preemption_bound)
    tally = engine.Tally()
    positions: List[Position] = []  # of the unit's executions, in order (``in_order`` only)
    seen = (lambda execution, sched: positions.append(strategy.position())) if opts.in_order else None
    # the root unit's first run is the first execution of the whole search
    if not unit.nodes or strategy.start_subtree(unit.nodes, unit.todo):
        engine.search(scenario, variant, strategy, tally, advance_first=False, max_runs=opts.split_after,
                      on_execution=seen, stop_on_failure=opts.stop_on_failure, target=opts.target,
                      final_states=opts.final_states)
    else:
        tally.complete = True
    frontier = [] if tally.complete else strategy.frontier()
    top = max(strategy.base - 1, 0)
    bottom = frontier[-1][0] + 1 if frontier else top + 1
    return UnitResult(unit.seq, tally, strategy.hit_bound, strategy.requests,
                      strategy.stack[top:bottom] if strategy.stack else [], frontier,
                      positions[0] if positions else None,
                      positions[-1] if positions and tally.failure is not None else None)


# -- the coordinator --------------------------------------------------------------------

@attrs.define
class Coordinator:
    """The nodes on the units' paths, and the units still to run, in creation order.

    Threads for a node that a unit still searches from are held back until
    that unit is merged: they then join a unit that knows the footprints of
    the threads tried there, so its sleep set is the sequential search's.
    """

    options: Options
    #: path -> node; a node's ``backtrack`` is every thread given to some unit there
    nodes: Dict[Path, Node] = attrs.Factory(dict)
    queue: Deque[Unit] = attrs.Factory(deque)
    units: Dict[int, Unit] = attrs.Factory(dict)
    created: int = 0
    #: path -> units searching from that node, not merged yet
    busy: Dict[Path, int] = attrs.Factory(dict)
    #: path -> threads held back for that node
    held: Dict[Path, List[int]] = attrs.Factory(dict)

    def root(self) -> None:
        self._unit((), [], ())

    def _unit(self, path: Path, nodes: List[Node], todo: Tuple[int, ...]) -> None:
        unit = Unit(self.created, path, nodes, todo, self._order(path, todo))
        self.created += 1
        self.queue.append(unit)
        self.units[unit.seq] = unit

    def _subtree(self, path: Path, todo: List[int]) -> None:
        """A unit trying ``todo`` at the node at ``path`` (given to it from now on)."""
        self.nodes[path].backtrack.update(todo)
        self.busy[path] = self.busy.get(path, 0) + 1
        nodes = [self.nodes[path[:depth]].copy(path[depth] if depth < len(path) else -1)
                 for depth in range(len(path) + 1)]
        self._unit(path, nodes, tuple(todo))

    def _order(self, path: Path, todo) -> Position:
        """The smallest position an execution trying ``todo`` at the node at ``path`` can have."""
        if not todo:
            return ()
        return tuple(self.nodes[path[:depth]].rank(tid) for depth, tid in enumerate(path)) + \
            (min(self.nodes[path].rank(tid) for tid in todo),)

    def unexplored(self) -> List[Position]:
        """The orders of the work held back (queued and dispatched units have their own)."""
        return [self._order(path, threads) for path, threads in self.held.items()]

    def drop(self, keep: Callable[[Unit], bool]) -> None:
        """Leave out the queued units that ``keep`` rejects, as if they had run and found nothing."""
        rejected = [unit for unit in self.queue if not keep(unit)]
        while rejected:
            for unit in rejected:
                self.queue.remove(unit)
                self.merge(UnitResult(unit.seq, engine.Tally(), False, [], [], []))
            rejected = [unit for unit in self.queue if not keep(unit)]

    def merge(self, result: UnitResult) -> None:
        """Fold a unit's nodes, requests and frontier into the search (in dispatch order)."""
        unit = self.units.pop(result.seq)
        top = max(len(unit.nodes) - 1, 0)
        path = unit.path[:top]
        if unit.nodes:
            self.busy[path] -= 1
        keys = [path]  # the path of each returned node
        for node in result.nodes[:-1]:
            keys.append(keys[-1] + (node.chosen,))
        for key, node in zip(keys, result.nodes):
            known = self.nodes.get(key)
            if known is None:
                node.backtrack |= node.done.keys()
                self.nodes[key] = node
            else:
                known.done.update(node.done)
        todo: Dict[Path, List[int]] = {}
        for depth, initials, added in result.requests:
            key = unit.path[:depth]
            node = self.nodes[key]
            claimed = node.backtrack | node.done.keys() | node.sleep.keys()
            if initials & claimed or not added - claimed:
                continue
            node.backtrack |= added
            todo.setdefault(key, []).extend(sorted(added - claimed))
        for depth, left in result.frontier:
            todo.setdefault(keys[depth - top], []).extend(left)
        if unit.nodes and not self.busy[path] and path in self.held:
            todo.setdefault(path, []).extend(self.held.pop(path))
        for key, threads in todo.items():
            if self.busy.get(key):
                self.held.setdefault(key, []).extend(threads)
            else:
                self._subtree(key, threads)


@attrs.define
class InOrder:
    """The sequential naive search's answer, from the units merged so far (see the module notes)."""

    budget: Optional[int]
    #: (position of the first execution, executions) of each unit merged: consecutive stretches of the order
    stretches: List[Tuple[Position, int]] = attrs.Factory(list)
    failure: Optional[Execution] = None
    failure_at: Optional[Position] = None

    def add(self, result: UnitResult) -> None:
        if result.first is not None:
            self.stretches.append((result.first, result.tally.executions))
        if result.failure_at is not None and (self.failure_at is None or result.failure_at < self.failure_at):
            self.failure, self.failure_at = result.tally.failure, result.failure_at

    def wanted(self, unit: Unit) -> bool:
        """Whether ``unit`` can hold an execution before the first failure known."""
        return self.failure_at is None or _may_precede(unit.order, self.failure_at)

    def answer(self, unexplored: List[Position]) -> Optional[Tuple[str, int]]:
        """("failure" | "cut" | "complete", the sequential search's executions) once it is known.

        ``unexplored``: the orders of all the work not merged yet.
        """
        if self.failure_at is not None:
            meets_it_after = sum(n for first, n in self.stretches if first <= self.failure_at)
            if self.budget is not None and meets_it_after > self.budget:
                return "cut", self.budget
            if not any(_may_precede(order, self.failure_at) for order in unexplored):
                return "failure", meets_it_after
            return None
        ahead = min(unexplored, default=None)
        clean = sum(n for first, n in self.stretches if ahead is None or first < ahead)
        if self.budget is not None and clean > self.budget:
            return "cut", self.budget
        return ("complete", clean) if ahead is None else None


def _may_precede(order: Position, position: Position) -> bool:
    """Whether work of ``order`` (a prefix of its executions' positions) can hold one before ``position``."""
    return order <= position[:len(order)]


@attrs.define(eq=False)
class Slot:
    """A dispatched unit, and its result once some process has run it."""

    unit: Unit
    taken: bool = False
    result: Optional[UnitResult] = None


class Workers:
    """``jobs`` forked worker processes.

    Each holds up to ``PER_WORKER`` units (one running, the others queued),
    so it need not wait for the coordinator between two units.
    """

    def __init__(self, jobs: int) -> None:
        context = multiprocessing.get_context("fork")
        self.taken: Dict[Connection, Deque[Slot]] = {}
        self.processes = []
        for _ in range(jobs):
            ours, theirs = context.Pipe()
            process = context.Process(target=_worker, args=(theirs,), daemon=True)
            process.start()
            theirs.close()
            self.taken[ours] = deque()
            self.processes.append(process)

    def oldest(self, slots: Deque[Slot]) -> UnitResult:
        """The result of ``slots[0]``; the other slots are run meanwhile, by whichever worker is free."""
        while slots[0].result is None:
            self._hand_out(slots)
            self._collect()
        return slots[0].result

    def _hand_out(self, slots: Deque[Slot]) -> None:
        for conn, queue in self.taken.items():
            while len(queue) < PER_WORKER:
                untaken = next((slot for slot in slots if not slot.taken), None)
                if untaken is None:
                    return
                untaken.taken = True
                conn.send(untaken.unit)
                queue.append(untaken)

    def _collect(self) -> None:
        """Wait for at least one result."""
        for conn in wait([c for c, queue in self.taken.items() if queue]):
            try:
                kind, value = conn.recv()
            except EOFError:
                raise RuntimeError("an explore worker process died") from None
            if kind == "error":
                raise value
            self.taken[conn].popleft().result = value

    def close(self) -> None:
        """Stop the workers (a unit they are running is finished first, or they are terminated)."""
        for conn in self.taken:
            try:
                conn.send(None)
            except OSError:
                pass
        for process in self.processes:
            process.join(timeout=2)
            if process.is_alive():
                process.terminate()
                process.join()
        for conn in self.taken:
            conn.close()


def explore(scenario: Scenario, variant: Variant, jobs: int, reduction: bool = True,
            preemption_bound: Optional[int] = None, max_executions: Optional[int] = None,
            stop_on_failure: bool = True, target: Optional[str] = None, check_footprints: bool = False,
            final_states: bool = False, split_after: int = SPLIT_AFTER,
            progress: Optional[Callable[[int, int], None]] = None, in_order: bool = False) -> engine.ExploreResult:
    """:func:`fuzzrmap.engine.explore` with the subtrees of the search in ``jobs`` worker processes.

    ``in_order`` (a naive search that stops on failure): the failure, completeness and executions
    are the sequential search's (see the module notes).
    """
    global _JOB
    if in_order and (reduction or not stop_on_failure):
        raise ValueError("in_order needs the naive search stopping on failure")
    options = Options(reduction, preemption_bound, stop_on_failure, target, check_footprints, final_states,
                      split_after, in_order)
    order = InOrder(max_executions) if in_order else None
    coordinator = Coordinator(options)
    coordinator.root()
    tally = engine.Tally()
    bound_cut = interrupted = False
    start = time.perf_counter()
    _JOB = (scenario, variant, options)
    workers = Workers(jobs)
    # units dispatched and not merged yet, oldest first: they are merged in this order
    slots: Deque[Slot] = deque()

    def dispatch() -> None:
        while coordinator.queue and len(slots) < IN_FLIGHT * jobs:
            slots.append(Slot(coordinator.queue.pop()))  # newest first: depth-first

    try:
        dispatch()
        while slots:
            result = workers.oldest(slots)
            slots.popleft()
            tally.add(result.tally)
            bound_cut |= result.bound_cut
            if progress is not None:
                progress(tally.executions, tally.pruned)
            if order is not None:
                order.add(result)
                coordinator.merge(result)
                coordinator.drop(order.wanted)
                answer = order.answer([unit.order for unit in coordinator.queue]
                                      + [slot.unit.order for slot in slots] + coordinator.unexplored())
                if answer is not None:
                    _sequential(tally, order, *answer)
                    break
                dispatch()
                continue
            if (stop_on_failure and result.tally.failure is not None) or \
                    (max_executions is not None and tally.executions >= max_executions):
                break
            coordinator.merge(result)
            dispatch()
        else:
            tally.complete = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        workers.close()
        _JOB = None
    return engine.explore_result(tally, time.perf_counter() - start, reduction, preemption_bound, bound_cut,
                                 interrupted, jobs)


def _sequential(tally: engine.Tally, order: InOrder, verdict: str, executions: int) -> None:
    """Make ``tally`` the sequential search's: ``verdict`` after ``executions``."""
    tally.executions = executions
    tally.complete = verdict == "complete"
    tally.failure = order.failure if verdict == "failure" else None
    broken = tally.failure.failure if tally.failure else None
    tally.violations = {(broken.invariant, broken.message)} if broken else set()
