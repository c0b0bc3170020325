"""Exhaustive search: depth-first over schedules, with partial-order reduction.

The search is stateless: every schedule is re-executed from the start, its
first decisions replaying a prefix of the previous one (the DFS stack), the
rest chosen fresh.  Two modes:

* **Reduced** (the default): source-set DPOR with sleep sets (Abdulla,
  Aronis, Jonsson and Sagonas, "Source sets", JACM 2017, algorithm
  Source-DPOR).  Each executed step carries its footprint - the declared
  accesses of its yield point plus everything recorded during the step
  (:func:`fuzzrmap.sched.api.touch`), and for a wait what its predicate read.
  Two steps of different threads *conflict* when they share a resource and
  one writes it (a step of unknown footprint writes :data:`~fuzzrmap.sched.api.ANY`
  and conflicts with every step).  After an execution, for every *race* - a
  conflicting pair ``e`` before ``e'`` not ordered by program order and
  conflicts through other steps - the state before ``e`` must also try some
  thread that can start the reversed order: the *initials* of ``v``, the
  steps after ``e`` that do not depend on it followed by ``e'``.  If none is
  tried or asleep there yet, one is added.  Sleep sets keep a thread
  already explored from a state asleep along independent branches, so an
  equivalent order is cut short ("cut short as redundant") instead of run.
* **Naive**, optionally bounded by a number of *preemptions* (switches away
  from a thread that could have continued): every schedule is run.  This is
  the reference for the soundness tests and the search that proves a trace
  minimal (no failure with fewer preemptions).

Blocking.  The paper's model has no disabled steps; ours has waits, enabled
only while a predicate holds, and the reversed order of a race may not exist
when ``e`` is what enabled ``e'``.  Three rules keep the search sound, and a
fourth spares it reversals that cannot exist:

* a wait's footprint includes what its predicate reads (recorded each time
  the wait is released), so the step that enables a waiter conflicts with it;
  nothing else orders them (no "enabled-by" edge that would hide a race);
* a race with a wait ``e'`` does not hide the earlier races of ``e'`` (every
  conflicting earlier step not ordered before the waiter's previous step is
  a race), because a reversal past the step that enabled it may be
  impossible while one further back is not - a mutex's previous acquire
  rather than its release;
* when no initial of the reversal can run in the state before ``e``, every
  initial is a wait disabled there.  A wait with a declared footprint stays
  disabled along the steps of the reversal before it (they do not touch what
  its predicate reads), so the reversal does not exist and nothing is added:
  the orders that would enable the wait otherwise are races of their own,
  and the earlier races of the wait stay visible (the second rule).  Only
  for a wait whose predicate reads are known just from the state where it
  was released (a :data:`~fuzzrmap.sched.api.TRACKED` wait) is every enabled
  thread added (Flanagan and Godefroid's fallback); and the threads still
  parked when an execution ends
  (a deadlock, a failure, a daemon asleep) count as pending steps, with their
  declared footprint plus what their predicate reads, so races with steps
  that never ran are not lost;
* a race of a step ``e`` that creates a resource
  (:data:`~fuzzrmap.sched.api.CREATE`) with a wait ``e'`` that reads it has
  no reversal: the wait is disabled in every state before ``e``.
  Nothing is added, and the earlier races of ``e'`` stay visible.

Subtrees.  :meth:`Explore.start_subtree` confines the search to the states
below a given path (parallel explore, :mod:`fuzzrmap.explore_parallel`):
it tries only the given threads at the path's end, and the backtrack points
its races need above that are handed back as requests instead of searched.

Quiet states.  A check that runs when an operation ends and no thread is
inside one (:func:`~fuzzrmap.sched.api.operation_ends`) reads without
recording, so it orders nothing; the state it sees depends only on the set
of steps before it, a downward-closed set (a *cut*) of the execution's
happens-before order, whatever order they ran in.  After each full execution
:meth:`Explore.quiet_states` enumerates its cuts that end with a step ending
an operation, hold that step as their last, and leave every thread outside
its operations; each one not seen before that the execution did not pass
through is handed back as decisions to replay.  Every execution of the
program is equivalent to one that ran, so every quiet state it passes through
is a cut of one that ran.  A quiet state is keyed by the steps of each
thread, with their vector clocks, up to its last step that writes a resource
the check may read (:attr:`Explore.quiet_check_reads`): a step of the cut is
what it is whatever else the cut holds (its past is in the cut), so what the
check reads is the same in two cuts with the same such steps.

A preemption bound is only offered without reduction: combining the two
soundly needs the extra backtracking of bounded POR (Coons et al.), which is
left out.  So is state caching.  Measured on ``uffd-move-vs-referenced``
(fixed) with a canonical hash of the model's objects and the threads'
frames: the search reaches 8,446 distinct states, most of them many times,
but a run cut at a state seen before must still add the backtrack points
that the races of the subtree below it need in its own prefix.  With those
(a summary of each state's subtree, races as Flanagan and Godefroid's), it
took 125 executions and 4,975 runs cut short, against 6,906 and 559, and
the hashing made it 14 times slower.

No two complete executions of the reduced search are equivalent (sleep sets
see to it; a test checks it), so its executions count the classes of the
program under the recorded footprints: 6,906 on that same search, a floor
for any search that runs one execution per class.  Among those executions,
ignoring the conflicts of any one group of resources (the slab, RCU, the
mmap_lock, the per-VMA locks, rwsems, PTE locks, PTEs, folio fields) still
leaves 3,270 to 6,834 classes.
"""

from __future__ import annotations

from typing import Callable, Dict, FrozenSet, List, Optional, Set, Tuple

import attrs

from fuzzrmap.sched.api import ADD, ANY, BEGINS, CREATE, ENDS, RUNNING, Footprint, ModelError, clash
from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.trace import Execution


class Prune(Exception):
    """The current execution is redundant (sleep-set blocked) or over the bound."""


def conflicting(a: Footprint, b: Footprint) -> bool:
    """Two footprints conflict when they share a resource and one of them writes it
    (two adds do not conflict, :data:`~fuzzrmap.sched.api.ADD`).

    A write of :data:`ANY` conflicts with every non-empty footprint.
    """
    for res, w in a:
        for res2, w2 in b:
            if (res == res2 and clash(w, w2)) or (res == ANY and w) or (res2 == ANY and w2):
                return True
    return False


@attrs.define(eq=False)
class Node:
    """A state on the DFS stack: the decision taken there and what is left to try."""

    enabled: Tuple[int, ...]
    current: Optional[int]
    preemptions: int
    sleep: Dict[int, Footprint]
    chosen: int = -1
    #: what kind of step the chosen thread took (:attr:`Event.waits`)
    chosen_waits: int = 0
    backtrack: Set[int] = attrs.Factory(set)
    #: threads explored from this state, with the footprint of their step
    done: Dict[int, Footprint] = attrs.Factory(dict)

    def copy(self, chosen: int) -> "Node":
        """The same state with its own ``backtrack`` and ``done`` (the sleep set never changes)."""
        return Node(self.enabled, self.current, self.preemptions, self.sleep, chosen, self.chosen_waits,
                    set(self.backtrack), dict(self.done))

    def preempts(self, tid: int) -> bool:
        return self.current is not None and tid != self.current and self.current in self.enabled

    def first_choice(self) -> Optional[int]:
        """The thread the search runs first here: the current one if awake, else the lowest awake; None if none is."""
        awake = [t for t in self.enabled if t not in self.sleep]
        if not awake:
            return None
        return self.current if self.current in awake else awake[0]

    def rank(self, tid: int) -> Tuple[int, int]:
        """Where ``tid`` comes in the order the search tries threads here: the first choice, then ascending."""
        return tid != self.first_choice(), tid


@attrs.define(eq=False)
class Event:
    """A step for the race analysis: executed, or pending when the execution ended."""

    task: int
    footprint: Footprint
    #: 0: a preemption point; 1: a wait with a declared footprint; 2: a wait with none (TRACKED)
    waits: int


class Explore(Strategy):
    name = "explore"

    def __init__(self, reduction: bool = True, preemption_bound: Optional[int] = None) -> None:
        if reduction and preemption_bound is not None:
            raise ValueError("a preemption bound needs the naive search (reduction=False)")
        self.reduction = reduction
        self.bound = preemption_bound
        self.stack: List[Node] = []
        #: the scheduler of the running execution (its recorded footprints)
        self.sched = None
        self._fresh_from = 0
        self.hit_bound = False
        #: (tid, op) of the threads parked after the last step of this execution
        self._parked: List[Tuple[int, object]] = []
        #: a subtree search (:meth:`start_subtree`): the nodes above ``base``
        #: belong to the whole search, the threads to try at its root are ``todo``
        self.base = 0
        self.todo: Tuple[int, ...] = ()
        #: backtrack points this subtree search found for nodes above ``base``:
        #: (depth, initials of the reversal, threads it added there)
        self.requests: List[Tuple[int, FrozenSet[int], FrozenSet[int]]] = []
        #: vector clocks of the last analysed execution's steps
        self._clocks: List[List[int]] = []
        #: keys of the quiet states already checked or handed back (:meth:`quiet_states`)
        self.quiet_seen: Set[Tuple[int, ...]] = set()
        #: whether a check between operations may read a resource (the environment says)
        self.quiet_check_reads: Callable[[str], bool] = lambda resource: True
        self._check_reads: Dict[str, bool] = {}

    # -- moving the DFS ------------------------------------------------------
    def advance(self) -> bool:
        """Set up the next execution; False when the search space (or the subtree) is exhausted."""
        while self.stack:
            depth = len(self.stack) - 1
            node = self.stack[depth]
            left = self.pending(node, self.todo if depth == self.base - 1 else node.backtrack)
            if left:
                node.chosen = left[0]
                self._fresh_from = depth
                return True
            if depth < self.base:
                return False
            self.stack.pop()
        return False

    def pending(self, node: Node, options) -> List[int]:
        """The threads of ``options`` still to try at ``node``, in the order the search tries them."""
        return [tid for tid in sorted(options)
                if tid not in node.done and tid not in node.sleep and self._allowed(node, tid)]

    # -- searching a subtree (parallel explore) -----------------------------------
    def start_subtree(self, nodes: List[Node], todo: Tuple[int, ...]) -> bool:
        """Search only below ``nodes[-1]``, trying ``todo`` there; False when none is left to try.

        ``nodes`` is the path from the initial state, each with the choice
        taken (the last one's is set here).  Races that need a backtrack
        point at one of these nodes are not searched here but listed in
        :attr:`requests`.
        """
        self.stack = list(nodes)
        self.base = len(nodes)
        self.todo = tuple(todo)
        return self.advance()

    def frontier(self) -> List[Tuple[int, List[int]]]:
        """(depth, threads) of every node on the stack with threads left to try (the subtree's rest)."""
        out = []
        for depth in range(self.base - 1, len(self.stack)):
            node = self.stack[depth]
            left = self.pending(node, self.todo if depth == self.base - 1 else node.backtrack)
            if left:
                out.append((depth, left))
        return out

    def position(self) -> Tuple[Tuple[int, int], ...]:
        """The running execution's place in the search's order: execution ``a`` runs before ``b``
        iff ``a``'s position is the smaller (of one naive search; a reduced one depends on its races)."""
        return tuple(node.rank(node.chosen) for node in self.stack)

    def _allowed(self, node: Node, tid: int) -> bool:
        if self.bound is None or not node.preempts(tid) or node.preemptions < self.bound:
            return True
        self.hit_bound = True
        return False

    # -- the Strategy interface ---------------------------------------------------
    def begin(self, index: int) -> None:
        self._parked = []

    def next_task(self, enabled: Tuple[int, ...], current: Optional[int], step: int) -> int:
        if step < len(self.stack):
            node = self.stack[step]
            if node.enabled != enabled:
                raise ModelError(f"nondeterministic model: at step {step} enabled {enabled}, before {node.enabled}")
            if step > 0:
                self._record_parent(step)
            node.chosen_waits = self._waits(node.chosen)
            return node.chosen
        parent = self.stack[-1] if self.stack else None
        sleep: Dict[int, Footprint] = {}
        preemptions = 0
        if parent is not None:
            fp = self._record_parent(step)
            preemptions = parent.preemptions + parent.preempts(parent.chosen)
            if self.reduction:
                asleep = list(parent.sleep.items()) + [(q, f) for q, f in parent.done.items() if q != parent.chosen]
                sleep = {q: f for q, f in asleep if not conflicting(f, fp)}
        node = Node(enabled, current, preemptions, sleep)
        tid = node.first_choice()
        if tid is None:
            raise Prune("sleep-set blocked")
        if not self._allowed(node, tid):
            raise Prune("over the preemption bound")
        node.chosen = tid
        node.chosen_waits = self._waits(tid)
        node.backtrack = {tid} if self.reduction else {t for t in enabled}
        self.stack.append(node)
        return tid

    def _waits(self, tid: int) -> int:
        return _wait_kind(self.sched.tasks[tid].op)

    def _record_parent(self, step: int) -> Footprint:
        fp = self.sched.steps[step - 1].footprint
        parent = self.stack[step - 1]
        parent.done[parent.chosen] = fp
        return fp

    def after_step(self, step_index: int, task) -> None:
        """Scheduler observer: remember the parked threads (the pending steps if the execution ends here)."""
        self._parked = [(t.tid, t.op) for t in self.sched.tasks if t.op is not None]

    def describe(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, "preemption_bound": self.bound}

    # -- after an execution ------------------------------------------------------
    def analyse(self, execution: Execution, complete: bool = True) -> None:
        """Record the last step and, with reduction, add backtrack points for every race.

        ``complete`` is False for an execution cut short as redundant: its
        races are analysed, its parked threads are not pending steps.
        """
        steps = execution.steps
        if steps and len(steps) <= len(self.stack):
            self.stack[len(steps) - 1].done[steps[-1].task] = steps[-1].footprint
        if self.reduction:
            events = [Event(s.task, s.footprint, self.stack[i].chosen_waits) for i, s in enumerate(steps)]
            if complete:
                events += self._pending()
            self._races(events, len(steps), len(execution.roles))

    def _pending(self) -> List[Event]:
        """The steps the parked threads would take next (their predicate reads recorded now).

        A declared add counts as a write: whether the step would add depends
        on the state it would run in.
        """
        pending = []
        for tid, op in self._parked:
            footprint = tuple([(r, True if w == ADD else w) for r, w in op.footprint])
            if op.ready is not None:
                RUNNING.touched = []
                try:
                    op.ready()
                finally:
                    touched, RUNNING.touched = RUNNING.touched, None
                footprint = tuple(dict.fromkeys(footprint + tuple(touched)))
            pending.append(Event(tid, footprint, _wait_kind(op)))
        return pending

    def _races(self, events: List[Event], n: int, n_threads: int) -> None:
        """Vector clocks over ``events`` (program order and conflicts), then each race's backtrack point.

        ``events[:n]`` ran in this order; the rest are pending steps after the end.
        """
        clocks: List[List[int]] = []
        self._clocks = clocks
        last_of: Dict[int, int] = {}
        accesses: Dict[str, List[Tuple[int, bool]]] = {}
        anything: List[int] = []  # events that may touch anything
        for i, ev in enumerate(events):
            t = ev.task
            base = clocks[last_of[t]] if t in last_of else [-1] * n_threads
            earlier = self._conflicts(ev, events, accesses, anything)
            vc = list(base)
            for j in earlier:
                if vc[events[j].task] < j:
                    vc = _join(vc, clocks[j])
            vc[t] = i
            clocks.append(vc)
            if i < n:  # pending steps come last and order nothing
                last_of[t] = i
                for res, w in ev.footprint:
                    if res == ANY:
                        anything.append(i)
                    else:
                        accesses.setdefault(res, []).append((i, w))
            if i < self._fresh_from:
                continue
            visible = list(base)
            for j in earlier:
                if visible[events[j].task] >= j:
                    continue  # ordered before i through steps that can be reversed
                if self._backtrack(j, i, events, clocks, n) and self._reversible(j, i, events, earlier, clocks, base):
                    visible = _join(visible, clocks[j])

    # -- quiet states ------------------------------------------------------------
    def quiet_states(self, execution: Execution) -> List[Tuple[int, ...]]:
        """Decisions that reach each new quiet state of ``execution``'s class it did not pass through.

        A quiet state is a cut of the execution's happens-before order whose
        last step ``e`` ends an operation and in which no thread is inside
        one; its decisions are the cut's steps in the order they ran, ``e``
        moved last (nothing in the cut depends on it).  The quiet states
        that the execution, or a replay handed back, passes through on its
        way are not handed back again.  Call after
        :meth:`analyse` of a full execution, with reduction.
        """
        steps = execution.steps
        if not self.reduction or not any(s.ops for s in steps):
            return []
        n, clocks = len(steps), self._clocks
        threads = len(execution.roles)
        mine: List[List[int]] = [[] for _ in range(threads)]  # each thread's step indices
        depth: List[List[int]] = [[0] for _ in range(threads)]  # operations open after p steps
        position = [0] * n
        for i, s in enumerate(steps):
            mine[s.task].append(i)
            position[i] = len(mine[s.task])
            depth[s.task].append(depth[s.task][-1] + (s.ops & BEGINS and 1) - (s.ops & ENDS and 1))
        # each step's vector clock as counts of steps per thread; each thread's prefix keys,
        # which change only at a step writing what the check may read
        counts = [tuple(position[g] if g >= 0 else 0 for g in clocks[i]) for i in range(n)]
        keys: List[List[int]] = []
        for t in range(threads):
            chain, key, row = 0, 0, [0]
            for g in mine[t]:
                chain = hash((chain, counts[g], steps[g].func, steps[g].label))
                if self.seen_by_check(steps[g].footprint):
                    key = chain
                row.append(key)
            keys.append(row)
        def passes(order):
            """The keys of the quiet states a run of ``order`` checks as it goes."""
            at = [0] * threads
            for g in order:
                at[steps[g].task] = position[g]
                if steps[g].ops & ENDS and not any(depth[u][p] for u, p in enumerate(at)):
                    yield tuple([keys[u][p] for u, p in enumerate(at)])

        self.quiet_seen.update(passes(range(n)))
        new: Dict[Tuple[int, ...], Tuple[Tuple[int, ...], int]] = {}
        for e, s in enumerate(steps):
            t = s.task
            if not s.ops & ENDS or depth[t][position[e]]:
                continue
            options = []
            for u in range(threads):
                if u == t:
                    options.append([position[e]])
                    continue
                after = next((p for p, g in enumerate(mine[u]) if clocks[g][t] >= e), len(mine[u]))
                options.append([p for p in range(counts[e][u], after + 1) if not depth[u][p]])
            for cut in _cuts(options, mine, counts):
                key = tuple([keys[u][p] for u, p in enumerate(cut)])
                if key not in self.quiet_seen:
                    new.setdefault(key, (cut, e))
        # the largest first: a replay checks the quiet states it passes through on its way
        found = []
        for key, (cut, e) in sorted(new.items(), key=lambda item: -sum(item[1][0])):
            if key in self.quiet_seen:
                continue
            order = sorted(g for u, p in enumerate(cut) for g in mine[u][:p] if g != e) + [e]
            self.quiet_seen.update(passes(order))
            found.append(tuple(steps[g].task for g in order))
        return found

    def seen_by_check(self, footprint: Footprint) -> bool:
        """Whether a step of ``footprint`` writes a resource a check between operations may read."""
        known = self._check_reads
        for res, w in footprint:
            if w:
                if res not in known:
                    known[res] = res == ANY or self.quiet_check_reads(res)
                if known[res]:
                    return True
        return False

    def _reversible(self, j: int, i: int, events: List[Event], earlier: List[int],
                    clocks: List[List[int]], base: List[int]) -> bool:
        """Whether step ``i`` can surely run before ``j``: then ``j`` hides the races further back.

        A preemption point always can.  A wait can when its thread was
        already parked at it and enabled in the state before ``j``, its
        footprint is declared (so it covers what the predicate reads), and no
        step that stays before it in the reversed order (after ``j``, not
        depending on it) conflicts with it: the predicate then reads what it
        read before ``j``, where it held.
        """
        ev = events[i]
        if not ev.waits:
            return True
        q, p = ev.task, events[j].task
        if ev.waits == 2 or base[q] > j or q not in self.stack[j].enabled:
            return False
        return not any(k > j and clocks[k][p] < j for k in earlier)

    @staticmethod
    def _conflicts(ev: Event, events: List[Event], accesses, anything) -> List[int]:
        """Earlier executed events of other threads that conflict with ``ev``, latest first."""
        t = ev.task
        found = set(j for j in anything if events[j].task != t)
        universal = any(res == ANY and w for res, w in ev.footprint)
        if universal:
            found.update(j for lst in accesses.values() for j, _ in lst if events[j].task != t)
        else:
            for res, w in ev.footprint:
                for j, wj in accesses.get(res, ()):
                    if clash(w, wj) and events[j].task != t:
                        found.add(j)
        return sorted(found, reverse=True)

    def _backtrack(self, j: int, i: int, events: List[Event], clocks: List[List[int]], n: int) -> bool:
        """Race ``j`` before ``i``: make the state before ``j`` try an initial of the reversed order.

        False when the reversed order cannot run from there: ``i`` is a wait
        for a resource that ``j`` creates (:data:`~fuzzrmap.sched.api.CREATE`),
        or one of its initials is a wait with a declared footprint, disabled
        before ``j``, that nothing before it in the reversal touches.
        """
        if events[i].waits and _waits_for_creation(events[j], events[i]):
            return False
        node = self.stack[j]
        p = events[j].task
        # v = the executed steps after j that do not depend on j, then step i
        v = [k for k in range(j + 1, min(i, n)) if clocks[k][p] < j] + [i]
        first: Dict[int, int] = {}
        for k in v:
            first.setdefault(events[k].task, k)
        initials = set()
        for r, k in first.items():
            ck = clocks[k]
            if not any(s != r and f <= ck[s] for s, f in first.items()):
                initials.add(r)
        if any(events[first[r]].waits == 1 and r not in node.enabled for r in initials):
            return False
        if initials & (node.backtrack | node.done.keys() | node.sleep.keys()):
            return True
        runnable = sorted(r for r in initials if r in node.enabled)
        if runnable:
            added = {events[i].task if events[i].task in runnable else runnable[0]}
        else:
            added = {q for q in node.enabled if q not in node.sleep}
        node.backtrack |= added
        if j < self.base:
            self.requests.append((j, frozenset(initials), frozenset(added)))
        return True


def _cuts(options: List[List[int]], mine: List[List[int]], counts: List[Tuple[int, ...]]):
    """Every choice of one count per thread from ``options`` that is a cut: no chosen
    step's vector clock reaches past another thread's count."""
    chosen: List[int] = []

    def fits(u: int, p: int) -> bool:
        if p and any(c < counts[mine[u][p - 1]][v] for v, c in enumerate(chosen)):
            return False
        return all(not q or counts[mine[v][q - 1]][u] <= p for v, q in enumerate(chosen))

    def extend(u: int):
        if u == len(options):
            yield tuple(chosen)
            return
        for p in options[u]:
            if fits(u, p):
                chosen.append(p)
                yield from extend(u + 1)
                chosen.pop()

    return extend(0)


def _waits_for_creation(creator: Event, wait: Event) -> bool:
    """Whether ``wait`` reads a resource that ``creator`` creates: it cannot run before it."""
    created = {r for r, w in creator.footprint if w == CREATE}
    return bool(created) and any(r in created for r, _ in wait.footprint)


def _wait_kind(op) -> int:
    if op.ready is None:
        return 0
    return 1 if op.footprint else 2


def _join(a: List[int], b: List[int]) -> List[int]:
    return [x if x >= y else y for x, y in zip(a, b)]
