"""Hunt: search every composition of a catalogue's actors for a violation.

A hand-written scenario covers the threads someone thought of; a hunt asks
the broader question "does *any* combination of these operations, running at
the same time, break the protocol?".  It enumerates the compositions of up to
N actors of a catalogue (:mod:`fuzzrmap.actors`; each with at least one rmap
reader or walker, plus the engine's RCU thread), and:

1. **prunes** the compositions whose actors cannot interact.  Each actor runs
   once alone and once after each other actor of the composition has run,
   with footprint recording, and the resources it reads and writes are
   collected (Snowboard's "potential memory communication", on footprints):
   what an actor touches can depend on what another did first (MADV_DONTNEED
   of D zaps F only once a move put F there).  A composition is kept only
   when every actor shares a resource with another actor of it that at least
   one of the two writes.  This is a heuristic: sequential runs miss
   resources an actor touches only on other paths (the slow path of a reader
   that found its trylock contended, an error path, a state that only two
   other actors together make; object names follow allocation order, so an
   object allocated alone may be another object in company).  A pruned composition is
   reported as "pruned (no shared written resource in a sequential run)",
   never as verified.
2. **searches** each kept composition with ``explore`` (DPOR) up to
   ``budget`` executions, collecting the first failing execution of each kind
   (invariant, failing thread); a composition that hits the budget without a
   violation is sampled with ``budget`` PCT schedules (depth 3) and reported as
   budget-limited with PCT's bound on missing a depth-3 bug.
3. **deduplicates** the violations by *signature*: the invariant, the kernel
   steps of the racing pair and the actor kinds involved (those of the racing
   pair's threads and of the thread that broke the invariant).  Each witness
   first gets a quick shrink (a small proof budget), and the racing pair is
   the one ``fuzzrmap replay`` prints for it
   (:func:`fuzzrmap.shrink.racing_pair`), so a signature does not depend on
   the detours of the schedule the search happened to find.  One witness per
   signature - the one of the first composition in enumeration order, so the
   smallest - is shrunk with the full proof budget and written as a seed file.
4. **reports** a findings table and a coverage table, as markdown and JSON.

Everything is written to the output directory as soon as it is known (atomic
writes): a manifest (parameters and model fingerprint), one record per
searched composition, one seed file per finding, then the report.  A resumed
hunt reads them back and skips what is done; it refuses a directory written
with other parameters or against another model.  Results do not depend on the
number of worker processes: each composition's search is a pure function of
its inputs and everything is ordered by enumeration order.

What is left out: the pruning is no proof of independence (see above); a
violated composition whose search hit the budget may hold more violations
than the ones found; one witness per (invariant, failing thread) is kept per
composition, so two different races with the same invariant in the same
thread of one composition count as one there (other compositions may still
tell them apart).
"""

from __future__ import annotations

import concurrent.futures
import gc
import hashlib
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

import attrs

from fuzzrmap import engine, preemption, shrink
from fuzzrmap import scenario as registry
from fuzzrmap.actors import Cast, Catalogue, Composition
from fuzzrmap.hunks import CODE
from fuzzrmap.report import plural
from fuzzrmap.scenario import Variant
from fuzzrmap.sched import drivers, seedfile
from fuzzrmap.sched.strategies.dpor import Explore
from fuzzrmap.sched.strategies.pct import PCT
from fuzzrmap.sched.strategies.replay import Replay
from fuzzrmap.sched.trace import Execution

FORMAT = "fuzzrmap-hunt"
VERSION = 1
DEFAULT_BUDGET = 5000
#: PCT depth of the fallback sampling (a race needing 2 ordering constraints between 3 events)
PCT_DEPTH = 3
#: the proof budget of the quick shrink that every witness gets before its signature is taken
QUICK_PROOF_BUDGET = 100
#: at most this many witnesses (distinct invariant and failing thread) kept per composition
WITNESSES_PER_COMPOSITION = 8

VERIFIED = "verified"
VIOLATED = "violated"
BUDGET_LIMITED = "budget-limited"
PRUNED_WHY = "no shared written resource in a sequential run"

EXIT_CLEAN, EXIT_FOUND, EXIT_USAGE, EXIT_BUDGET = 0, 1, 2, 3


class HuntError(Exception):
    """Bad input to a hunt, or an output directory it cannot use (exit code 2)."""


# -- what to hunt -------------------------------------------------------------------

@attrs.frozen
class Plan:
    """The parameters a hunt's results depend on (``--jobs`` is not one of them)."""

    catalogue: str
    variant: str
    generation: Optional[str]
    max_actors: int
    actors: Optional[Tuple[str, ...]]
    budget: int
    proof_budget: int

    def to_json(self) -> dict:
        data = attrs.asdict(self)
        data["actors"] = list(self.actors) if self.actors is not None else None
        return data


def model_fingerprint(catalogue: Catalogue) -> str:
    """The fingerprint of every composition of ``catalogue`` (they share the catalogue's module)."""
    return engine.fingerprint(Composition(catalogue, (next(catalogue.actors[0].casts()),)).scenario())


def choose_catalogue(name: Optional[str]) -> Catalogue:
    """The catalogue called ``name``, or the only one there is."""
    found = registry.catalogues()
    if name is None:
        if len(found) != 1:
            raise HuntError(f"there are {len(found)} actor catalogues; pick one with --catalogue "
                            f"({', '.join(c.name for c in found)})")
        return found[0]
    for c in found:
        if c.name == name:
            return c
    raise HuntError(f"unknown catalogue {name!r} (catalogues: {', '.join(c.name for c in found) or 'none'})")


def choose_variant(catalogue: Catalogue, generation: Optional[str], variant: Optional[str]) -> Variant:
    """The variant a hunt runs.

    ``variant`` names it; ``generation`` alone picks the catalogue's variant
    that *is* that generation (no hunk added or removed); both: the named
    variant, which must belong to that generation; neither: the catalogue's
    first variant (what ``--variant`` defaults to in the other commands).
    """
    def gen(v: Variant) -> Optional[str]:
        return v.generation.name if v.generation is not None else None

    generations = sorted({g for g in map(gen, catalogue.variants) if g is not None})
    if generation is not None and generation not in generations:
        raise HuntError(f"catalogue {catalogue.name} has no variant of generation {generation!r} "
                        f"(generations: {', '.join(generations) or 'none'})")
    if variant is not None:
        chosen = next((v for v in catalogue.variants if v.name == variant), None)
        if chosen is None:
            raise HuntError(f"catalogue {catalogue.name} has no variant {variant!r} "
                            f"(variants: {', '.join(v.name for v in catalogue.variants)})")
        if generation is not None and gen(chosen) != generation:
            raise HuntError(f"variant {variant} is of generation {gen(chosen)}, not {generation} ({chosen.scope()})")
        return chosen
    if generation is None:
        return catalogue.variants[0]
    # exactly G: its code is G's (config switches such as debug checks may differ)
    exact = [v for v in catalogue.variants if gen(v) == generation and not v.remove
             and all(h.kind != CODE for h in v.add)]
    if not exact:
        named = [v.name for v in catalogue.variants if gen(v) == generation]
        raise HuntError(f"no variant of catalogue {catalogue.name} is exactly {generation}; "
                        f"name one with --variant ({', '.join(named)})")
    return exact[0]


# -- pruning by footprints -------------------------------------------------------------

Footprint = Dict[str, bool]


def footprint(catalogue: Catalogue, variant: Variant, cast: Cast, after: Optional[Cast] = None) -> Footprint:
    """The resources ``cast`` touches in one sequential run: alone, or once ``after`` has run
    (to its end, unless it waits for ``cast``): name -> written.

    Resources named after the thread itself (``exit:reader``, ``rcu:reader``)
    are left out: in a composition every thread has its own.  The catalogue's
    quiet checks are off: what they read, completed operations wrote.
    """
    for check in catalogue.quiet_checks:
        if check.name in variant.hunks:
            variant = variant.without(check)
    composition = Composition(catalogue, (cast,) if after is None else (after, cast))
    scenario = composition.scenario()
    mine = len(composition.casts) - 1
    role = composition.roles()[mine]
    strategy = Explore()  # its first execution runs the lowest thread that can run: ``after`` first
    sched = engine.prepare(scenario, variant, strategy, 0)
    sched.record_footprints = True
    strategy.sched = sched
    drivers.run_direct(sched)
    execution = engine.finish(sched)
    found: Footprint = {}
    for step in execution.steps:
        if step.task != mine:
            continue
        for resource, write in step.footprint:
            if not resource.endswith(":" + role):
                found[resource] = found.get(resource, False) or bool(write)  # an add counts as a write
    return found


def communicate(a: Footprint, b: Footprint) -> bool:
    """``a`` and ``b`` share a resource that at least one of them writes."""
    return any(r in b and (w or b[r]) for r, w in a.items())


@attrs.define
class Footprints:
    """Each cast's footprint alone and after each cast (the pruning's evidence), made as needed."""

    catalogue: Catalogue
    variant: Variant
    runs: Dict[Tuple[Optional[str], str], Footprint] = attrs.Factory(dict)

    def of(self, cast: Cast, after: Optional[Cast] = None) -> Footprint:
        key = (after.name if after is not None else None, cast.name)
        if key not in self.runs:
            self.runs[key] = footprint(self.catalogue, self.variant, cast, after)
        return self.runs[key]

    def in_company(self, composition: Composition, i: int) -> Footprint:
        """Cast ``i``'s resources in ``composition``: alone, and after each other cast of it."""
        cast = composition.casts[i]
        union = dict(self.of(cast))
        for j, other in enumerate(composition.casts):
            if j != i:
                for resource, write in self.of(cast, other).items():
                    union[resource] = union.get(resource, False) or write
        return union


def isolated(composition: Composition, footprints: Footprints) -> Optional[Cast]:
    """The first cast that communicates with no other cast of ``composition`` (None: keep it)."""
    casts = composition.casts
    company = [footprints.in_company(composition, i) for i in range(len(casts))]
    for i, cast in enumerate(casts):
        if not any(communicate(company[i], company[j]) for j in range(len(casts)) if j != i):
            return cast
    return None


# -- signatures ---------------------------------------------------------------------------

@attrs.frozen
class Signature:
    """What makes two violations the same: invariant, racing pair's kernel steps, actor kinds."""

    invariant: str
    #: the racing pair as ((actor kind, kernel function, step label), (...)), or None if none was found
    pair: Optional[Tuple[Tuple[str, str, str], ...]]
    kinds: Tuple[str, ...]

    @property
    def key(self) -> str:
        return json.dumps([self.invariant, self.pair, self.kinds])

    @property
    def id(self) -> str:
        return f"{self.invariant}-{hashlib.sha256(self.key.encode()).hexdigest()[:8]}"

    def describe(self) -> str:
        if self.pair is None:
            return f"{self.invariant} (no racing pair found) in {', '.join(self.kinds)}"
        (k1, _, l1), (k2, _, l2) = self.pair
        return f"{self.invariant}: {k1} `{l1}` before {k2} `{l2}`"

    def to_json(self) -> dict:
        return {"id": self.id, "invariant": self.invariant, "kinds": list(self.kinds),
                "racing_pair": [{"actor": k, "func": f, "label": l} for k, f, l in self.pair] if self.pair else None}

    @classmethod
    def from_json(cls, data: dict) -> "Signature":
        pair = data["racing_pair"]
        return cls(data["invariant"], tuple((p["actor"], p["func"], p["label"]) for p in pair) if pair else None,
                   tuple(data["kinds"]))


def signature(composition: Composition, variant: Variant, execution: Execution) -> Signature:
    """The signature of a failing execution, with the racing pair that ``fuzzrmap replay`` shows for it."""
    scenario = composition.scenario()
    replayed = engine.run_one(scenario, variant, Replay(execution.steps))
    kind_of = dict(zip(composition.roles(), (c.actor.kind for c in composition.casts)))
    pair = shrink.racing_pair(scenario, variant, replayed)
    kinds = set()
    failing = replayed.failure.task
    if failing in kind_of:
        kinds.add(kind_of[failing])
    steps = None
    if pair is not None:
        steps = []
        for i in pair:
            step = replayed.steps[i]
            kind = kind_of.get(replayed.roles[step.task], replayed.roles[step.task])
            kinds.add(kind)
            steps.append((kind, step.func, step.label))
        steps = tuple(steps)
    return Signature(replayed.failure.invariant, steps, tuple(sorted(kinds)))


# -- one composition ------------------------------------------------------------------------

def search(catalogue_name: str, variant_name: str, name: str, budget: int) -> dict:
    """Search one composition; its record (JSON data), as written to the output directory.

    Runs in a worker process: everything is passed and returned by name or as data.
    Raises KeyboardInterrupt when interrupted, so a partial search is never recorded.
    """
    catalogue = choose_catalogue(catalogue_name)
    composition = catalogue.parse(name)
    scenario = composition.scenario()
    variant = scenario.variant(variant_name)
    witnesses: Dict[Tuple[str, str], Tuple[Execution, dict]] = {}
    exhaustive = Explore().describe()

    def collect(execution: Execution, sched) -> None:
        failure = execution.failure
        key = (failure.invariant, failure.task) if failure is not None else None
        if key is not None and key not in witnesses and len(witnesses) < WITNESSES_PER_COMPOSITION:
            witnesses[key] = (execution, exhaustive)

    start = time.perf_counter()
    explored = engine.explore(scenario, variant, max_executions=budget, on_execution=collect, stop_on_failure=False)
    if explored.interrupted:
        raise KeyboardInterrupt
    record = {"composition": name, "actors": len(composition.casts),
              "explore": {"executions": explored.executions, "complete": explored.complete,
                          "elapsed_s": round(explored.elapsed_s, 3)},
              "sampled": None}
    if not witnesses and not explored.complete:
        pct = PCT(0, depth=PCT_DEPTH)
        sampled = engine.campaign(scenario, variant, pct, budget)
        if sampled.interrupted:
            raise KeyboardInterrupt
        record["sampled"] = {"strategy": "pct", "depth": PCT_DEPTH, "schedules": sampled.schedules,
                             "miss_probability": None if sampled.execution else pct.miss_probability(sampled.schedules)}
        if sampled.execution is not None:
            pct.begin(sampled.failure_index)
            failure = sampled.execution.failure
            witnesses[(failure.invariant, failure.task)] = (sampled.execution, pct.describe())
    found = []
    for (execution, described) in witnesses.values():
        seed = attrs.evolve(engine.seed_file_for(scenario, variant, Explore(), execution), strategy=described)
        quick = shrink.shrink(scenario, variant, execution, proof_budget=QUICK_PROOF_BUDGET)
        found.append({"signature": signature(composition, variant, quick.execution).to_json(),
                      "seed": quick.seed_file(seed).to_json()})
    record["witnesses"] = found
    record["verdict"] = VIOLATED if found else VERIFIED if explored.complete else BUDGET_LIMITED
    record["elapsed_s"] = round(time.perf_counter() - start, 3)
    return record


def shrink_witness(seed_json: dict, proof_budget: int) -> dict:
    """The shrunk seed file (JSON data) of a witness seed file (JSON data), in this process
    (a hunt shrinks its findings side by side in its workers)."""
    found = seedfile.parse(seed_json, "witness")
    execution = engine.replay(found)
    scenario = registry.get(found.scenario)
    shrunk = shrink.shrink(scenario, scenario.variant(found.variant), execution, proof_budget=proof_budget)
    return shrunk.seed_file(found).to_json()


# -- the output directory -------------------------------------------------------------------

def write_json(path: Path, data) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    write_text(path, json.dumps(data, indent=1) + "\n")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@attrs.define
class Store:
    """A hunt's output directory: manifest, composition records, finding seed files, report."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def open(self, plan: Plan, resume: bool) -> None:
        """Start a hunt here, or check that the one here was run with ``plan`` (HuntError if not)."""
        wanted = {"format": FORMAT, "version": VERSION, "fingerprint": model_fingerprint(choose_catalogue(plan.catalogue)),
                  "plan": plan.to_json()}
        if not self.manifest.exists():
            if resume:
                raise HuntError(f"--resume {self.root}: no hunt there (no manifest.json)")
            try:
                write_json(self.manifest, wanted)
            except OSError as e:
                raise HuntError(f"cannot write to {self.root}: {e.strerror or e}") from None
            return
        if not resume:
            raise HuntError(f"{self.root} already holds a hunt; continue it with --resume {self.root} "
                            f"or choose another --out")
        try:
            have = json.loads(self.manifest.read_text())
        except (OSError, ValueError) as e:
            raise HuntError(f"--resume {self.root}: unreadable manifest.json ({e})") from None
        if not isinstance(have, dict) or (have.get("format"), have.get("version")) != (FORMAT, VERSION):
            raise HuntError(f"--resume {self.root}: manifest.json is not a fuzzrmap hunt manifest of version {VERSION}")
        if have.get("fingerprint") != wanted["fingerprint"]:
            raise HuntError(f"--resume {self.root}: written against model {have.get('fingerprint')}, "
                            f"this is model {wanted['fingerprint']}; start a new hunt")
        old = have.get("plan") or {}
        diff = [f"{k} {old.get(k)!r} there, {v!r} here" for k, v in wanted["plan"].items() if old.get(k) != v]
        if diff:
            raise HuntError(f"--resume {self.root}: written with other parameters ({'; '.join(diff)})")

    def record_path(self, index: int, name: str) -> Path:
        return self.root / "compositions" / f"{index:04d}-{re.sub(r'[^A-Za-z0-9-]+', '_', name)}.json"

    def records(self) -> Dict[str, dict]:
        """The composition records written so far, by composition name."""
        found = {}
        for path in sorted((self.root / "compositions").glob("*.json")):
            try:
                data = json.loads(path.read_text())
                found[data["composition"]] = data
            except (OSError, ValueError, KeyError, TypeError):
                continue  # never written whole (writes are atomic): search it again
        return found

    def finding_path(self, sig: Signature) -> Path:
        return self.root / "findings" / f"{sig.id}.json"


# -- the hunt ---------------------------------------------------------------------------------

@attrs.define
class Finding:
    signature: Signature
    composition: str
    message: str
    seed_file: Path
    shrunk: dict
    #: compositions in which the same signature was found
    seen_in: List[str]
    #: the least permissive kernel preemption model under which the shrunk witness runs
    needs: str

    @property
    def preemptions(self) -> int:
        return self.shrunk["preemptions"]

    def to_json(self) -> dict:
        sig = self.signature.to_json()
        return {"signature": sig["id"], "invariant": self.signature.invariant, "message": self.message,
                "actors": list(self.signature.kinds), "composition": self.composition,
                "racing_pair": sig["racing_pair"], "preemptions": self.preemptions,
                "preemptions_proved_minimal": self.shrunk["proved"], "needs_preemption": self.needs,
                "seed_file": str(self.seed_file), "replay": f"fuzzrmap replay {self.seed_file}",
                "seen_in": self.seen_in}


@attrs.define
class HuntResult:
    plan: Plan
    variant: Variant
    out: Path
    enumerated: List[Composition]
    pruned: Dict[str, Cast]
    records: Dict[str, dict]
    findings: List[Finding]
    elapsed_s: float
    interrupted: bool = False

    def count(self, verdict: str, size: Optional[int] = None) -> int:
        return sum(1 for r in self.records.values() if r["verdict"] == verdict and size in (None, r["actors"]))

    @property
    def kept(self) -> int:
        return len(self.enumerated) - len(self.pruned)

    def exit_code(self) -> int:
        if self.findings or self.count(VIOLATED):
            return EXIT_FOUND
        return EXIT_BUDGET if self.count(BUDGET_LIMITED) else EXIT_CLEAN

    def worst_miss(self) -> Optional[float]:
        bounds = [r["sampled"]["miss_probability"] for r in self.records.values()
                  if r["verdict"] == BUDGET_LIMITED and r["sampled"]]
        return max(bounds) if bounds else None

    def to_json(self) -> dict:
        return {"catalogue": self.plan.catalogue, "generation": self.plan.generation, "variant": self.variant.name,
                "scope": self.variant.scope(), "max_actors": self.plan.max_actors, "budget": self.plan.budget,
                "compositions": {"enumerated": len(self.enumerated), "kept": self.kept, "pruned": len(self.pruned),
                                 "searched": len(self.records), "verified": self.count(VERIFIED),
                                 "violated": self.count(VIOLATED), "budget_limited": self.count(BUDGET_LIMITED),
                                 "worst_miss_probability": self.worst_miss()},
                "pruned": {name: f"{cast.name}: {PRUNED_WHY}" for name, cast in self.pruned.items()},
                "findings": [f.to_json() for f in self.findings],
                "out": str(self.out), "elapsed_s": round(self.elapsed_s, 3), "interrupted": self.interrupted}

    def markdown(self) -> str:
        lines = [f"## Hunt: {self.plan.catalogue} / {self.variant.name} ({self.variant.scope()}), "
                 f"up to {plural(self.plan.max_actors, 'actor')}, budget {self.plan.budget} executions", "",
                 "### Findings", ""]
        if self.findings:
            lines += ["| signature | invariant | actors | witness composition | preemptions | preemption model "
                      "| seed file | replay |", "|---|---|---|---|---|---|---|---|"]
            for f in self.findings:
                proved = "" if f.shrunk["proved"] else " (not proved minimal)"
                model = preemption.SCOPES[f.needs]
                lines.append(f"| {f.signature.describe()} | {f.message} | {', '.join(f.signature.kinds)} "
                             f"| `{f.composition}` (+{len(f.seen_in) - 1} more) | {f.preemptions}{proved} "
                             f"| {model} | `{f.seed_file}` | `fuzzrmap replay {f.seed_file}` |")
        unshrunk = len(_groups(self)) - len(self.findings)
        if self.interrupted:
            pending = f"; {plural(unshrunk, 'signature')} met but not shrunk yet" if unshrunk else ""
            lines.append(f"The hunt was interrupted{pending}: `fuzzrmap hunt --resume {self.out}` continues it.")
        elif not self.findings:
            lines.append("No violation found.")
        lines += ["", "### Coverage", "", "| actors | enumerated | pruned | kept | verified complete | violated "
                  "| budget-limited | not searched |", "|---|---|---|---|---|---|---|---|"]
        sizes = sorted({len(c.casts) for c in self.enumerated})
        for size in sizes + [None]:
            comps = [c for c in self.enumerated if size in (None, len(c.casts))]
            pruned = sum(1 for c in comps if c.name in self.pruned)
            searched = sum(1 for c in comps if c.name in self.records)
            lines.append(f"| {size if size is not None else 'all'} | {len(comps)} | {pruned} | {len(comps) - pruned} "
                         f"| {self.count(VERIFIED, size)} | {self.count(VIOLATED, size)} "
                         f"| {self.count(BUDGET_LIMITED, size)} | {len(comps) - pruned - searched} |")
        lines += ["", f"Pruned: {PRUNED_WHY} (each actor ran alone and after each other "
                  "actor once; a heuristic, not a proof: resources an actor touches only on other paths are not seen)."]
        worst = self.worst_miss()
        if worst is not None:
            lines.append(f"Budget-limited: the exhaustive search stopped at {self.plan.budget} executions and "
                         f"{self.plan.budget} PCT schedules (depth {PCT_DEPTH}) found nothing; a depth-{PCT_DEPTH} "
                         f"bug is missed with probability <= {worst:.3g} in the worst of them.")
        return "\n".join(lines) + "\n"


def plan_compositions(catalogue: Catalogue, variant: Variant, max_actors: int,
                      kinds: Optional[Sequence[str]]) -> Tuple[List[Composition], Dict[str, Cast]]:
    """Every composition in enumeration order, by its canonical name (the one its seed files
    carry), and the pruned ones (name -> the isolated cast)."""
    enumerated = [catalogue.parse(c.name) for c in catalogue.compositions(max_actors, kinds)]
    footprints = Footprints(catalogue, variant)
    pruned = {}
    for comp in enumerated:
        alone = isolated(comp, footprints) if len(comp.casts) > 1 else None
        if alone is not None:
            pruned[comp.name] = alone
    return enumerated, pruned


#: progress(searched, kept, violated, findings shrunk)
Progress = Callable[[int, int, int, int], None]


def hunt(plan: Plan, out: Path, jobs: int = 1, resume: bool = False,
         progress: Optional[Progress] = None) -> HuntResult:
    """Run (or resume) a hunt; ``progress(searched, kept, violated, shrunk)`` is told as it goes.

    Compositions are searched in enumeration order (``jobs`` at a time), and
    each signature is shrunk, ahead of the searches still waiting, as soon as
    every composition before the first that met it has been searched: its
    witness is then that first one whatever ``jobs`` is, and an interrupted
    hunt keeps the findings shrunk so far.  On KeyboardInterrupt (Ctrl-C, or
    SIGTERM while the CLI runs it) the report of what is known is written and
    the interrupt propagates.
    """
    start = time.perf_counter()
    catalogue = choose_catalogue(plan.catalogue)
    variant = choose_variant(catalogue, plan.generation, plan.variant)
    store = Store(out)
    store.open(plan, resume)
    enumerated, pruned = plan_compositions(catalogue, variant, plan.max_actors, plan.actors)
    records = {name: r for name, r in store.records().items() if name in {c.name for c in enumerated}}
    result = HuntResult(plan, variant, out, enumerated, pruned, records, [], 0.0)
    searches = deque((i, c) for i, c in enumerate(enumerated) if c.name not in pruned and c.name not in records)
    order = [c.name for c in enumerated if c.name not in pruned]
    prefix = [0]  # the kept compositions before it are all searched
    shrinks: Deque[Tuple[Signature, dict]] = deque()
    queued: Set[str] = set()
    shrunk = [0]

    def report() -> None:
        if progress:
            progress(len(records), result.kept, result.count(VIOLATED), shrunk[0])

    def first_seen() -> None:
        """Queue the shrink of each signature first met in the searched prefix (enumeration order)."""
        while prefix[0] < len(order) and order[prefix[0]] in records:
            for witness in records[order[prefix[0]]].get("witnesses", ()):
                sig = Signature.from_json(witness["signature"])
                if sig.id not in queued:
                    queued.add(sig.id)
                    if store.finding_path(sig).exists():
                        shrunk[0] += 1
                    else:
                        shrinks.append((sig, witness["seed"]))
            prefix[0] += 1

    def next_task():
        if shrinks:
            sig, seed = shrinks.popleft()
            return sig, shrink_witness, (seed, plan.proof_budget)
        if searches:
            index, comp = searches.popleft()
            return (index, comp), search, (plan.catalogue, variant.name, comp.name, plan.budget)
        return None

    def done(item, value) -> None:
        if isinstance(item, Signature):
            seedfile.write(seedfile.parse(value, "shrunk witness"), store.finding_path(item))
            shrunk[0] += 1
        else:
            index, comp = item
            write_json(store.record_path(index, comp.name), value)
            records[comp.name] = value
            first_seen()
        report()

    try:
        first_seen()
        report()
        _drive(jobs, next_task, done)
    except KeyboardInterrupt:
        result.interrupted = True
        raise
    finally:
        _findings_known(result, store)
        result.elapsed_s = time.perf_counter() - start
        write_json(out / "hunt.json", result.to_json())
        write_text(out / "hunt.md", result.markdown())
    return result


def _groups(result: HuntResult) -> Dict[str, Tuple[Signature, List[Tuple[str, dict]]]]:
    """Witnesses by signature id, in enumeration order of their compositions."""
    groups: Dict[str, Tuple[Signature, List[Tuple[str, dict]]]] = {}
    for comp in result.enumerated:
        record = result.records.get(comp.name)
        for witness in (record or {}).get("witnesses", ()):
            sig = Signature.from_json(witness["signature"])
            groups.setdefault(sig.id, (sig, []))[1].append((comp.name, witness["seed"]))
    return groups


def _findings_known(result: HuntResult, store: Store) -> None:
    """The findings whose shrunk seed file is on disk, in enumeration order of their witnesses."""
    result.findings = []
    for sig, witnesses in _groups(result).values():
        path = store.finding_path(sig)
        if not path.exists():
            continue
        seed = seedfile.read(path)
        scenario = registry.get(seed.scenario)
        preempted = engine.preemptions(scenario, scenario.variant(seed.variant), engine.replay(seed),
                                       seed.preemption_model)
        result.findings.append(Finding(sig, witnesses[0][0], seed.failure.message, path, seed.shrink or {},
                                       [name for name, _ in witnesses], preemption.strictest(p.needs for p in preempted)))


def _drive(jobs: int, next_task: Callable[[], Optional[tuple]], done: Callable) -> None:
    """Run the tasks ``next_task()`` hands out, ``(item, fn, args)`` or None when it has none now,
    until it has none and none is running; ``done(item, fn(*args))`` for each, in this process or
    at most ``jobs`` at a time in workers.  ``next_task`` is asked again after each ``done``, so
    the tasks that earlier results make (a shrink) go before those that wait (a search)."""
    if jobs == 1:
        while (task := next_task()) is not None:
            item, fn, args = task
            done(item, fn(*args))
        return
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init)
    running: Dict[concurrent.futures.Future, object] = {}
    try:
        while True:
            while len(running) < jobs and (task := next_task()) is not None:
                item, fn, args = task
                running[pool.submit(fn, *args)] = item
            if not running:
                break
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                done(running.pop(future), future.result())
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()


def _worker_init() -> None:
    """Workers leave Ctrl-C (sent to the whole process group) to the parent, which stops them,
    and die at once on SIGTERM (the parent's handler, inherited by fork, would let them go on).
    What they inherit lives as long as they do: their collector need not walk (and copy) it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.freeze()


def _stop(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (their work in progress is not recorded)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
        return
    workers = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.terminate()
    for process in workers:
        process.join()


# -- the command ----------------------------------------------------------------------------------

def command(args) -> int:
    """``fuzzrmap hunt``: the arguments parsed by :mod:`fuzzrmap.cli`."""
    catalogue = choose_catalogue(args.catalogue)
    kinds = None
    if args.actors is not None:
        kinds = tuple(k.strip() for k in args.actors.split(",") if k.strip())
        for k in kinds:
            catalogue.actor(k)  # UnknownName: exit 2
        if not any(catalogue.actor(k).reads_rmap for k in kinds):
            raise HuntError(f"--actors {args.actors}: no rmap reader or walker among them, nothing to compose")
    variant = choose_variant(catalogue, args.generation, args.variant)
    generation = variant.generation.name if variant.generation is not None else None
    if args.resume is not None and args.out is not None and args.resume != args.out:
        raise HuntError("--resume DIR continues the hunt in DIR; do not give another --out")
    out = args.resume or args.out or Path("fuzzrmap-hunt")
    plan = Plan(catalogue.name, variant.name, generation, args.max_actors, kinds, args.budget, args.proof_budget)
    show = not args.json and sys.stderr.isatty()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if show:
            result = _with_progress(plan, out, args.jobs, args.resume is not None)
        else:
            result = hunt(plan, out, args.jobs, args.resume is not None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(_summary(result))
        print()
        print(result.markdown())
        print(f"written to {out}/ (hunt.md, hunt.json, findings/, compositions/)")
    return result.exit_code()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _with_progress(plan: Plan, out: Path, jobs: int, resume: bool) -> HuntResult:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("preparing", total=None)

        def progress(searched: int, kept: int, violated: int, shrunk: int) -> None:
            bar.update(task, description=f"searching compositions ({violated} violated, {shrunk} findings shrunk)",
                       completed=searched, total=kept)
        return hunt(plan, out, jobs, resume, progress)


def _summary(result: HuntResult) -> str:
    by_cast: Dict[str, int] = {}
    for cast in result.pruned.values():
        by_cast[cast.name] = by_cast.get(cast.name, 0) + 1
    why = ", ".join(f"{name} shares nothing written in {n}" for name, n in sorted(by_cast.items()))
    lines = [f"{len(result.enumerated)} compositions of up to {plural(result.plan.max_actors, 'actor')}; "
             f"pruned {len(result.pruned)} ({PRUNED_WHY}{': ' + why if why else ''}); "
             f"searched {len(result.records)} of {result.kept} kept in {result.elapsed_s:.1f} s",
             "  pruning is a heuristic: each actor ran alone and after each other actor once, so resources "
             "it touches only on other paths (contended slow paths, error paths) are not seen"]
    return "\n".join(lines)

