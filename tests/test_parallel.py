"""Campaigns in shards: any number of workers, any completion order, a cluster or
one process - the same schedules, the same first failure, the same seed file;
and an interrupted parallel run stops its workers and keeps its summary."""

import json
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from fuzzrmap import engine, parallel
from fuzzrmap import scenario as registry
from fuzzrmap.sched.strategies.pct import PCT
from fuzzrmap.sched.strategies.sticky import Sticky
from tests.helpers import ctrl_c_reaches_it


class Tracing(PCT):
    """PCT whose carry also fingerprints every decision made so far: two campaigns
    with equal final carries ran the same schedules.  Its carry changes with every
    schedule, so every speculated shard is wrong and must be run again."""

    def __init__(self, seed):
        super().__init__(seed)
        self.trail = 0

    def observe(self, step):
        super().observe(step)
        self.trail = zlib.crc32(bytes([step.task]), self.trail)

    def carry(self):
        return super().carry() + (self.trail,)

    def resume(self, carried):
        super().resume(carried[:2])
        self.trail = carried[2]


def sequential(scenario, variant, strategy, runs):
    """The reference outcome: schedule after schedule with one strategy object, no shards."""
    sc = registry.get(scenario)
    v = sc.variant(variant)
    events = 0
    for index, execution in enumerate(engine.run_many(sc, v, strategy, range(runs), "direct")):
        events += len(execution.events)
        if execution.failure is not None:
            return index + 1, index, events, False, (execution.steps, execution.failure, execution.events)
    return runs, None, events, False, None


def outcome(result):
    e = result.execution
    return (result.schedules, result.failure_index, result.accuracy_events, result.interrupted,
            None if e is None else (e.steps, e.failure, e.events))


def campaign(scenario, variant, strategy, runs, runner, driver="direct"):
    job = parallel.CampaignJob(scenario, variant, strategy, driver)
    return parallel.run_campaign(job, runs, runner)


class OutOfOrder(parallel.Runner):
    """Runs shards in this process but hands their results back newest first, so
    every shard after the first is speculated and confirmed late."""

    def __init__(self):
        self.waiting = []
        self.submitted = 0

    def free(self):
        return 4 - len(self.waiting)

    def submit(self, job, shard):
        self.submitted += 1
        self.waiting.append(parallel.run_shard(job, shard))

    def next_result(self):
        return self.waiting.pop()


@pytest.mark.parametrize("make", [PCT, Tracing])
@pytest.mark.parametrize("variant", ["unpatched", "fixed"])
def test_shards_in_any_completion_order_give_the_sequential_result(variant, make):
    # PCT learns k from the schedules it has seen, so shards depend on each other
    runner = OutOfOrder()
    result = campaign("uffd-move-vs-referenced", variant, make(1), 700, runner)
    reference = make(1)
    assert outcome(result) == sequential("uffd-move-vs-referenced", variant, reference, 700)
    if variant == "fixed":
        assert result.carry == reference.carry()
        if make is Tracing:  # its carry changes with every decision, so every speculation is wrong
            assert runner.submitted > -(-700 // parallel.SHARD), "a wrong speculation must have been re-run"


def test_the_carry_reproduces_the_failing_schedules_strategy():
    sc = registry.get("uffd-move-vs-referenced")
    strategy = PCT(1)
    result = engine.campaign(sc, sc.variant("unpatched"), strategy, runs=2000)
    strategy.begin(result.failure_index)
    again = engine.run_one(sc, sc.variant("unpatched"), PCT(1, steps=strategy.k), result.failure_index)
    assert again.steps == result.execution.steps


@pytest.mark.parametrize("variant,make", [("unpatched", lambda: PCT(3)), ("fixed", lambda: Tracing(2)),
                                          ("fixed", lambda: Sticky(2))])
def test_two_worker_processes_give_the_single_process_result(variant, make):
    sc = registry.get("uffd-move-vs-page-idle")
    one = engine.campaign(sc, sc.variant(variant), make(), runs=600, driver="trio", jobs=1)
    two = engine.campaign(sc, sc.variant(variant), make(), runs=600, driver="trio", jobs=2)
    reference = make()
    assert outcome(one) == outcome(two) == sequential(sc.name, variant, reference, 600)
    assert one.carry == two.carry == (reference.carry() if one.execution is None else one.carry)
    assert (one.execution is not None) == (variant == "unpatched")


def test_a_dask_cluster_gives_the_single_process_result():
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (fuzzrmap[cluster])")
    sc = registry.get("uffd-move-vs-referenced")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        for variant in ("unpatched", "fixed"):
            runner = parallel.Cluster(client=client)
            try:
                clustered = campaign(sc.name, variant, Tracing(1), 400, runner, driver="trio")
            finally:
                runner.close()
            alone = engine.campaign(sc, sc.variant(variant), Tracing(1), runs=400, driver="trio", jobs=1)
            reference = Tracing(1)
            assert outcome(clustered) == outcome(alone) == sequential(sc.name, variant, reference, 400)
            assert clustered.carry == alone.carry
            if alone.execution is None:
                assert alone.carry == reference.carry()
            assert (alone.execution is not None) == (variant == "unpatched")


def run_cli(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "fuzzrmap", *map(str, argv)], capture_output=True, text=True, **kw)


def test_fuzz_runs_on_trio_by_default_and_every_driver_and_job_count_writes_the_same_seed_file(tmp_path):
    seeds = []
    for i, extra in enumerate([[], ["--driver", "direct"], ["--jobs", "2"], ["--jobs", "1", "--driver", "direct"]]):
        out = tmp_path / str(i)
        p = run_cli("fuzz", "uffd-move-vs-page-idle", "--variant", "unpatched", "--runs", "2000", "--seed", "4",
                    "--no-shrink", "--out", out, "--json", *extra)
        assert p.returncode == 1, p.stderr
        report = json.loads(p.stdout)
        assert report["driver"] == ("direct" if "direct" in extra else "trio")
        seeds.append((report["first_failure_at"], report["schedules"], Path(report["seed_file"]).name,
                      Path(report["seed_file"]).read_text()))
    assert len(set(seeds)) == 1


def test_cluster_and_jobs_exclude_each_other_and_a_bad_cluster_is_one_line(capsys):
    from fuzzrmap import cli

    assert cli.main(["fuzz", "uffd-move-vs-referenced", "--jobs", "2", "--cluster", "local:2"]) == cli.EXIT_USAGE
    assert "exclude each other" in capsys.readouterr().err
    assert cli.main(["fuzz", "uffd-move-vs-referenced", "--cluster", "local:zero"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cluster" in err[0], err


def _children(pid):
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find the worker processes")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_parallel_campaign_stops_its_workers_and_prints_its_summary(sig, tmp_path):
    # a campaign far longer than the test: it is stopped once both workers run
    proc = subprocess.Popen([sys.executable, "-m", "fuzzrmap", "fuzz", "uffd-move-vs-referenced", "--variant", "fixed",
                             "--runs", "10000000", "--jobs", "2", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_reaches_it)
    workers = []
    while len(workers) < 2 and proc.poll() is None:
        workers = _children(proc.pid)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "schedules in" in out and "interrupted: no failure found so far" in out
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
