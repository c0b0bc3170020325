"""Preemption models: where each preemption happened, what it needs, and the switch that restricts them."""

import json

import pytest

from fuzzrmap import cli, engine, preemption
from fuzzrmap import scenario as registry
from fuzzrmap.kernel.environment import KERNEL
from fuzzrmap.kernel.locking import folio_lock_bit, spinlock
from fuzzrmap.check import SAFETY, violation
from fuzzrmap.kernel.rcu import RCU, rcu_read_lock, rcu_read_unlock
from fuzzrmap.kernel.rwsem import RWSem
from fuzzrmap.kernel.slab import Slab
from fuzzrmap.kernel.rmap import AnonVma
from fuzzrmap.kernel.task import Kernel, TaskStruct, sleeping
from fuzzrmap.scenario import FAILS, Scenario, Variant, World
from fuzzrmap.sched import seedfile
from fuzzrmap.sched.api import TRACKED, point, reads, wait_until, writes
from fuzzrmap.sched.strategies.random_walk import RandomWalk

FLAGSHIP = "uffd-move-vs-referenced"


@pytest.fixture(scope="module")
def flagship_seed(tmp_path_factory):
    """The shrunk flagship race (1 preemption, inside the reader's RCU section), as ``fuzz --json`` reports it."""
    out = tmp_path_factory.mktemp("flagship")
    report = _json(["fuzz", FLAGSHIP, "--variant", "unpatched", "--runs", "2000", "--seed", "1",
                    "--out", str(out), "--json"], cli.EXIT_FOUND)
    return report


def _json(argv, code):
    import io
    import contextlib
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli.main(argv) == code
    return json.loads(buffer.getvalue())


def _task(**state) -> TaskStruct:
    t = TaskStruct("t", Kernel(anon_vma_cachep=Slab("anon_vma", AnonVma), rcu=RCU()))
    for name, value in state.items():
        setattr(t, name, value)
    return t


def test_the_kernel_environment_says_where_a_thread_is():
    plain, wait = point("f", "x = 1"), wait_until("f", "lock", lambda: True)
    ptl, rwsem = spinlock("vma#1.ptl"), RWSem("anon_vma#1.rwsem")
    cases = [
        (_task(), plain, "at a preemptible point", preemption.FULL),
        (_task(sleeps_at=plain), plain, "at a sleeping point", preemption.NONE),
        (_task(), wait, "at a sleeping point", preemption.NONE),
        (_task(spins_at=wait), wait, "at a preemptible point", preemption.FULL),
        (_task(rcu_read_lock_nesting=2), plain, "inside an RCU read-side section (nesting 2)", preemption.FULL),
        (_task(held=[(rwsem, "read"), (folio_lock_bit("folio.lock"), "lock")]), plain, "at a preemptible point",
         preemption.FULL),
        (_task(held=[(ptl, "spin")], rcu_read_lock_nesting=1, sleeps_at=plain), plain,
         "holding spinlock vma#1.ptl", preemption.ANYWHERE),
    ]
    for state, op, where, needs in cases:
        context = KERNEL.preemption_context(state, op)
        assert context.where == where, context
        assert context.needs == needs, context
        assert {m for m in preemption.MODELS if KERNEL.may_preempt(state, op, m)} == \
            {m for m in preemption.MODELS if preemption.allows(m, needs)}


def test_models_are_ordered_from_the_most_restrictive():
    assert preemption.allows(preemption.NONE, preemption.NONE)
    assert not preemption.allows(preemption.VOLUNTARY, preemption.FULL)
    assert preemption.allows(preemption.ANYWHERE, preemption.ANYWHERE)
    assert not preemption.allows(preemption.FULL, preemption.ANYWHERE)
    assert preemption.strictest([]) == preemption.NONE
    assert preemption.strictest([preemption.FULL, preemption.NONE]) == preemption.FULL


def test_the_flagship_race_says_its_preemption_is_inside_rcu(flagship_seed, capsys):
    (p,) = flagship_seed["preemptions"]
    assert p["thread"] == "reader" and p["needs"] == "full"
    assert p["context"].startswith("inside an RCU read-side section (nesting 1)")
    assert flagship_seed["needs"] == "full" and flagship_seed["preemption_model"] == "anywhere"
    assert json.loads(open(flagship_seed["seed_file"]).read())["preemption_model"] == "anywhere"
    assert cli.main(["replay", flagship_seed["seed_file"]]) == cli.EXIT_FOUND
    out = capsys.readouterr().out
    assert f"step {p['step']}*: reader delayed inside an RCU read-side section (nesting 1)" in out
    assert "(needs CONFIG_PREEMPT_RCU, an interrupt or a vCPU stall)" in " ".join(out.split())
    assert "preemption model needed: full (not possible under none or voluntary" in out


def test_a_delay_inside_rcu_is_found_under_anywhere_but_not_under_none():
    scenario = registry.resolve(FLAGSHIP)
    variant = scenario.variant("unpatched")
    anywhere = engine.explore(scenario, variant, reduction=False, preemption_bound=1)
    assert anywhere.failure is not None
    (p,) = engine.preemptions(scenario, variant, anywhere.failure)
    assert p.thread == "reader" and p.needs == preemption.FULL and "RCU" in p.context.where
    none = engine.explore(scenario, variant, reduction=False, preemption_bound=1, preemption_model=preemption.NONE)
    assert none.complete and none.failure is None
    assert "preemption model none (CONFIG_PREEMPT_NONE" in engine.verified_scope(scenario, variant, none)
    assert "preempt anywhere" in engine.verified_scope(scenario, variant, anywhere)


def test_under_a_model_no_schedule_preempts_where_the_model_forbids():
    scenario = registry.resolve(FLAGSHIP)
    variant = scenario.variant("unpatched")
    seen = set()
    for execution in engine.run_many(scenario, variant, RandomWalk(7), range(60), preemption_model=preemption.NONE):
        needs = {p.needs for p in engine.preemptions(scenario, variant, execution, preemption.NONE)}
        assert needs <= {preemption.NONE}
        seen |= needs
    assert seen == {preemption.NONE}, "the random walk preempts at sleeping points"
    anywhere = set()
    for execution in engine.run_many(scenario, variant, RandomWalk(7), range(20)):
        anywhere |= {p.needs for p in engine.preemptions(scenario, variant, execution)}
    assert anywhere > {preemption.NONE}


def lost_update(context: str) -> Scenario:
    """Two threads increment ``x`` with a load and a store, the window between them ``context``:
    a plain preemptible point, inside an RCU read-side section, under a spinlock of the thread's
    own (no exclusion), or a sleeping point (an allocation)."""

    def setup(k):
        state = {"x": 0}

        def incr(name):
            own = spinlock(f"{name}.lock")

            async def body():
                await point(name, "enter", TRACKED)
                if context == "rcu":
                    rcu_read_lock()
                if context == "spinlock":
                    own.trylock()
                await point(name, "load x", reads("x"))
                value = state["x"]
                if context == "sleeping":
                    await sleeping(point(name, "kmalloc(GFP_KERNEL)", TRACKED))
                await point(name, "store x", writes("x"))
                state["x"] = value + 1
                await point(name, "leave", TRACKED)
                if context == "rcu":
                    rcu_read_unlock()
                if context == "spinlock":
                    own.unlock()
            return body

        def final_check():
            if state["x"] != 2:
                raise violation("TINY", SAFETY, f"lost update: x = {state['x']}")

        return World(threads=[("a", incr("a")), ("b", incr("b"))], final_check=final_check)

    return Scenario(name=f"lost-update-{context}", spec="test", summary="", variants=(Variant("only", FAILS, ""),),
                    setup=setup, environment=KERNEL)


@pytest.mark.parametrize("context, needs", [("sleeping", preemption.NONE), ("plain", preemption.FULL),
                                            ("rcu", preemption.FULL), ("spinlock", preemption.ANYWHERE)])
def test_a_window_is_found_exactly_under_the_models_that_allow_a_delay_in_it(context, needs):
    scenario = lost_update(context)
    variant = scenario.variant("only")
    for model in preemption.MODELS:
        result = engine.explore(scenario, variant, reduction=False, preemption_model=model)
        assert result.complete or result.failure is not None
        assert (result.failure is not None) == preemption.allows(model, needs), (model, result)
        if result.failure is not None:
            found = preemption.strictest(p.needs for p in engine.preemptions(scenario, variant, result.failure, model))
            assert preemption.allows(model, found) and preemption.allows(found, needs), (model, found)


def test_replay_refuses_a_trace_the_model_forbids(flagship_seed, capsys):
    path = flagship_seed["seed_file"]
    assert cli.main(["replay", path, "--preemption-model", "none"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not allowed under preemption model none" in err and "needs full" in err
    assert cli.main(["replay", path, "--preemption-model", "full"]) == cli.EXIT_FOUND
    assert cli.main(["shrink", path, "--preemption-model", "voluntary", "-o", path + "-v.json"]) == cli.EXIT_USAGE
    assert "not allowed under preemption model voluntary" in capsys.readouterr().err


def test_a_seed_file_records_its_model_and_replays_under_it(tmp_path, capsys):
    report = _json(["fuzz", FLAGSHIP, "--variant", "unpatched", "--runs", "500", "--seed", "1",
                    "--preemption-model", "full", "--out", str(tmp_path), "--json"], cli.EXIT_FOUND)
    assert report["preemption_model"] == "full" and report["needs"] == "full"
    assert "-full-" in report["seed_file"]
    data = json.loads(open(report["seed_file"]).read())
    assert data["preemption_model"] == "full"
    assert cli.main(["replay", report["seed_file"], "--json"]) == cli.EXIT_FOUND
    assert json.loads(capsys.readouterr().out)["preemptions"] == report["preemptions"]
    # without the field, a file ran under "anywhere"; an unknown model is refused
    del data["preemption_model"]
    assert seedfile.parse(data, "f").preemption_model == "anywhere"
    data["preemption_model"] = "lazy"
    with pytest.raises(seedfile.SeedFileError, match="'preemption_model' should be one of none, voluntary"):
        seedfile.parse(data, "f")


def test_explore_under_a_model_says_it_searches_naively(tmp_path):
    report = _json(["explore", FLAGSHIP, "--variant", "unpatched", "--preemption-model", "voluntary",
                    "--max-executions", "5", "--json", "--out", str(tmp_path)], cli.EXIT_BUDGET)
    assert report["preemption_model"] == "voluntary" and report["preemptions"] is None
    assert report["search"].startswith("naive (every schedule), preemption model voluntary (naive: ")


def test_fuzz_text_report_of_the_flagship_says_where_its_preemption_happened(tmp_path, capsys):
    assert cli.main(["fuzz", FLAGSHIP, "--variant", "unpatched", "--runs", "2000", "--seed", "1",
                     "--out", str(tmp_path)]) == cli.EXIT_FOUND
    out = " ".join(capsys.readouterr().out.split())
    assert "* preemption (the thread before could have continued)" in out
    assert "*: reader delayed inside an RCU read-side section (nesting 1), before" in out
    assert "preemption model needed: full" in out


def test_shrink_under_a_model_keeps_the_schedule_allowed_and_records_the_model(flagship_seed, tmp_path):
    out = tmp_path / "min.json"
    report = _json(["shrink", flagship_seed["seed_file"], "--preemption-model", "full", "-o", str(out), "--json"],
                   cli.EXIT_CLEAN)
    assert report["preemption_model"] == "full" and report["needs"] == "full"
    assert [p["needs"] for p in report["preemption_contexts"]] == ["full"] * report["preemptions"]
    assert seedfile.read(out).preemption_model == "full"
    assert cli.main(["replay", str(out), "--preemption-model", "full"]) == cli.EXIT_FOUND
