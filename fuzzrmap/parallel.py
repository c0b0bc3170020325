"""Campaigns in shards: on worker processes or a dask cluster, with one result.

A campaign runs schedules by index and stops at the first failing one.  Here
the indices are cut into *shards* of :data:`SHARD` schedules, the work units;
a :class:`Runner` runs them (this process for ``--jobs 1``, a pool of worker
processes for ``--jobs N``, a dask.distributed cluster for ``--cluster``), and
the coordinator, :func:`run_campaign`, confirms their results strictly in
index order.  So the outcome - schedules run, the first failure by index, its
execution - is the one a single process gets, whatever the timing.

A strategy may learn across schedules (PCT's ``k`` grows with the longest
schedule seen): a schedule depends on its index and on the strategy's *carry*
from the schedules before it (:meth:`~fuzzrmap.sched.strategies.Strategy.carry`).
So a shard runs from a carry-in.  A shard whose predecessor is not confirmed
yet starts from the newest carry known (speculation); when the predecessor
turns out to pass on another carry, the shard is run again from the right
one.  The carry settles within a few shards, and memoryless strategies never
re-run anything.

Once any shard reports a failure, no shard after it is started; shards still
running are left to finish (a shard takes tens of milliseconds) and their
results dropped.  On Ctrl-C or SIGTERM the workers are stopped at once and the
campaign reports what its confirmed shards ran.

Only campaigns run here.  ``explore`` runs in one process (its search is
being reworked); the shrinker's proof search too, for now.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
from typing import Any, Callable, Dict, Hashable, Iterator, List, Optional

import attrs

from fuzzrmap import engine, preemption
from fuzzrmap import scenario as registry
from fuzzrmap.sched.strategies import Strategy
from fuzzrmap.sched.trace import Execution

#: schedules per work unit: large enough to dwarf the cost of shipping one
SHARD = 64


class ClusterError(Exception):
    """``--cluster`` cannot be used: dask missing, or no scheduler at the address (exit 2)."""


@attrs.frozen
class CampaignJob:
    """What every shard of a campaign runs: picklable, the scenario by its reference (name or file:name)."""

    scenario: str
    variant: str
    strategy: Strategy
    driver: str
    preemption_model: str = preemption.DEFAULT


@attrs.frozen
class Shard:
    """Schedules ``first`` up to (not including) ``stop``, from the strategy carry ``carry_in``."""

    number: int
    first: int
    stop: int
    carry_in: Hashable


@attrs.frozen
class ShardResult:
    """A shard's schedules up to its first failure.  ``carry`` is the strategy's carry
    before the failing schedule, or after the shard's last one when none failed."""

    shard: Shard
    schedules: int
    accuracy_events: int
    failure_index: Optional[int]
    execution: Optional[Execution]
    carry: Hashable


# Model threads share process-wide state (the running thread in
# fuzzrmap.sched.api), so a process runs one shard at a time even when a
# cluster worker offers several threads.
_ONE_AT_A_TIME = threading.Lock()


def run_shard(job: CampaignJob, shard: Shard) -> ShardResult:
    """Run one shard; what a worker process or a cluster worker executes."""
    with _ONE_AT_A_TIME:
        scenario = registry.resolve(job.scenario)
        variant = scenario.variant(job.variant)
        strategy = copy.deepcopy(job.strategy)
        strategy.resume(shard.carry_in)
        carries: List[Hashable] = []

        def done(sched) -> Execution:
            carries.append(strategy.carry())
            return engine.finish(sched)

        events = 0
        indices = range(shard.first, shard.stop)
        for offset, execution in enumerate(engine.run_many(scenario, variant, strategy, indices, job.driver, done,
                                                                   job.preemption_model)):
            events += len(execution.events)
            if execution.failure is not None:
                before = carries[offset - 1] if offset else shard.carry_in
                return ShardResult(shard, offset + 1, events, shard.first + offset, execution, before)
        return ShardResult(shard, len(indices), events, None, None, carries[-1])


def campaign(job: CampaignJob, runs: int, jobs: int = 1, cluster: Optional[str] = None,
             progress: Optional[Callable[[int, float], None]] = None) -> engine.CampaignResult:
    """Run ``job``'s schedules ``0 .. runs-1`` on the runner ``jobs``/``cluster`` ask for.

    Ctrl-C or SIGTERM, from the moment workers start, ends it as interrupted
    (workers stopped, confirmed shards reported), never with a traceback.
    """
    start = time.perf_counter()
    with _sigterm_as_interrupt():
        try:
            with backend(jobs, cluster) as runner:
                return run_campaign(job, runs, runner, progress)
        except KeyboardInterrupt:  # while workers were starting or stopping
            return engine.CampaignResult(0, None, None, time.perf_counter() - start, 0, interrupted=True,
                                         carry=job.strategy.carry())


def run_campaign(job: CampaignJob, runs: int, runner: "Runner",
                 progress: Optional[Callable[[int, float], None]] = None) -> engine.CampaignResult:
    """Schedules ``0 .. runs-1`` of ``job`` in shards on ``runner``; the first failure by index."""
    start = time.perf_counter()
    count = -(-runs // SHARD)
    confirmed = 0  # shards 0 .. confirmed-1 are confirmed
    carry_after: Dict[int, Hashable] = {-1: job.strategy.carry()}
    newest = (-1, carry_after[-1])  # the highest-numbered shard's carry seen: the speculative guess
    pending: Dict[int, Shard] = {}  # number -> the one submission whose result counts
    redo: Dict[int, Hashable] = {}  # number -> the carry to run it again from, once a worker is free
    finished: Dict[int, ShardResult] = {}
    next_number = 0
    schedules = events = 0

    def submit(number: int, carry: Hashable) -> None:
        shard = Shard(number, number * SHARD, min(runs, (number + 1) * SHARD), carry)
        pending[number] = shard
        runner.submit(job, shard)

    def result(failure: Optional[ShardResult] = None, interrupted: bool = False) -> engine.CampaignResult:
        elapsed = time.perf_counter() - start
        if failure is None:
            return engine.CampaignResult(schedules, None, None, elapsed, events, interrupted,
                                         carry_after[confirmed - 1])
        return engine.CampaignResult(schedules, failure.failure_index, failure.execution, elapsed, events,
                                     interrupted, failure.carry)

    try:
        while confirmed < count:
            stop_at = min([n + 1 for n, r in finished.items() if r.failure_index is not None], default=count)
            for number in [n for n in pending if n >= stop_at]:
                del pending[number]  # after a failure: its result will be dropped
            next_number = min(next_number, stop_at)
            # Until one shard has finished, a learning strategy's carry is a blind guess.
            blind = newest[0] < 0 and newest[1] is not None
            while runner.free():
                if redo:
                    number = min(redo)
                    submit(number, redo.pop(number))
                elif next_number < stop_at and not (blind and pending):
                    submit(next_number, newest[1])
                    next_number += 1
                else:
                    break
            got = runner.next_result()
            if pending.get(got.shard.number) != got.shard:
                continue  # a superseded or dropped run
            del pending[got.shard.number]
            finished[got.shard.number] = got
            if got.failure_index is None and got.shard.number > newest[0]:
                newest = (got.shard.number, got.carry)
            while confirmed in finished:
                got = finished.pop(confirmed)
                if got.shard.carry_in != carry_after[confirmed - 1]:
                    redo[confirmed] = carry_after[confirmed - 1]  # speculated wrong: run it again
                    break
                schedules += got.schedules
                events += got.accuracy_events
                if got.failure_index is not None:
                    return result(got)
                carry_after[confirmed] = got.carry
                if got.carry != got.shard.carry_in or newest[0] < confirmed:
                    newest = (confirmed, got.carry)  # guesses made before this shard's change are stale
                confirmed += 1
                if progress is not None:
                    progress(schedules, time.perf_counter() - start)
    except KeyboardInterrupt:
        return result(interrupted=True)
    return result()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a campaign runs, SIGTERM stops it as Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- runners ------------------------------------------------------------------------

class Runner:
    """Runs shards somewhere, one per worker at a time: a shard queued behind a
    running one would only be speculated further ahead."""

    def free(self) -> int:
        """Workers idle now (a dropped shard keeps its worker until it ends)."""
        raise NotImplementedError

    def submit(self, job: CampaignJob, shard: Shard) -> None:
        raise NotImplementedError

    def next_result(self) -> ShardResult:
        """The next shard to finish (any order); raises what a shard raised."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop every worker now; results not collected are dropped."""


class InProcess(Runner):
    """``--jobs 1``: each shard runs here, when submitted."""

    def __init__(self) -> None:
        self._done: List[ShardResult] = []

    def free(self) -> int:
        return 0 if self._done else 1

    def submit(self, job: CampaignJob, shard: Shard) -> None:
        self._done.append(run_shard(job, shard))

    def next_result(self) -> ShardResult:
        return self._done.pop()


class Processes(Runner):
    """``--jobs N``: N worker processes (forked where the platform can), a pipe each.

    Nothing but the pipes is shared, so stopping is plain: terminate, join.  A
    worker whose coordinator died sees its pipe close and exits.
    """

    def __init__(self, jobs: int) -> None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        self._workers: List[Any] = []
        self._idle: List[Any] = []
        self._busy: List[Any] = []
        try:
            for _ in range(jobs):
                ours, theirs = context.Pipe()
                # the child closes the coordinator's ends it inherits, or no pipe would ever close
                worker = context.Process(target=_serve, args=(theirs, self._idle + [ours]), daemon=True)
                self._workers.append(worker)
                with _signals_held():
                    worker.start()
                theirs.close()
                self._idle.append(ours)
        except BaseException:  # Ctrl-C while starting: stop those already started
            self.close()
            raise

    def free(self) -> int:
        return len(self._idle)

    def submit(self, job: CampaignJob, shard: Shard) -> None:
        pipe = self._idle.pop()
        pipe.send((job, shard))
        self._busy.append(pipe)

    def next_result(self) -> ShardResult:
        pipe = multiprocessing.connection.wait(self._busy)[0]
        ok, value = pipe.recv()
        self._busy.remove(pipe)
        self._idle.append(pipe)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        for worker in self._workers:
            if worker.pid is not None:
                worker.terminate()
        for worker in self._workers:
            if worker.pid is not None:
                worker.join()


_STOPS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while forking: Python runs fork hooks in
    between, and an exception raised by a handler there is printed and lost.
    They arrive when released (a child releases them in :func:`_serve`)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)


def _serve(pipe, coordinator_ends: List[Any]) -> None:
    """A worker process: shards in, results (or what a shard raised) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's; it stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
    for end in coordinator_ends:
        end.close()
    while True:
        try:
            job, shard = pipe.recv()
        except EOFError:  # the coordinator is gone
            return
        try:
            reply = (True, run_shard(job, shard))
        except Exception as e:  # noqa: B902 - re-raised by the coordinator
            reply = (False, e)
        pipe.send(reply)


class Cluster(Runner):
    """``--cluster``: shards are dask.distributed tasks.

    ``address`` is a running scheduler's address, or ``local:N`` for a
    LocalCluster of N single-threaded worker processes started (and stopped)
    here.  ``client`` uses an existing client instead (tests).
    """

    def __init__(self, address: Optional[str] = None, client: Any = None) -> None:
        try:
            import distributed
        except ImportError:
            raise ClusterError("--cluster needs dask.distributed: pip install 'fuzzrmap[cluster]'") from None
        self._own: List[Any] = []
        if client is None:
            client = self._connect(distributed, address)
        self._client = client
        self._results: "queue.Queue[Any]" = queue.Queue()
        self._futures: List[Any] = []
        self._slots = max(1, sum(client.nthreads().values()))

    def _connect(self, distributed, address: str):
        try:
            if address.startswith("local:"):
                workers = int(address[len("local:"):])
                if workers < 1:
                    raise ValueError
                cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=None)
                self._own.append(cluster)
                client = distributed.Client(cluster)
            else:
                client = distributed.Client(address, timeout="10s")
        except ValueError:
            raise ClusterError(f"--cluster {address!r}: 'local:N' needs a whole number of workers, at least 1") from None
        except (OSError, TimeoutError) as e:
            raise ClusterError(f"--cluster {address!r}: cannot reach a dask scheduler there ({e})") from None
        self._own.insert(0, client)
        return client

    def free(self) -> int:
        return self._slots - len(self._futures)

    def submit(self, job: CampaignJob, shard: Shard) -> None:
        future = self._client.submit(run_shard, job, shard, pure=False)
        future.add_done_callback(self._results.put)
        self._futures.append(future)

    def next_result(self) -> ShardResult:
        future = self._results.get()
        self._futures.remove(future)
        return future.result()

    def close(self) -> None:
        if self._futures:
            self._client.cancel(self._futures)
        for thing in self._own:
            thing.close()


@contextlib.contextmanager
def backend(jobs: int = 1, cluster: Optional[str] = None) -> Iterator[Runner]:
    """The runner for ``--jobs`` / ``--cluster``, closed (workers stopped) on the way out."""
    if cluster is not None:
        runner: Runner = Cluster(cluster)
    elif jobs > 1:
        runner = Processes(jobs)
    else:
        runner = InProcess()
    try:
        yield runner
    finally:
        runner.close()


def default_jobs() -> int:
    """The machine's cores (those this process may use)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1
