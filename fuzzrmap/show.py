"""Timelines of a seed file: the column text, an HTML swimlane, a Chrome trace.

A seed file records which thread ran at every step, but not what the threads
held while they ran, and the lock holds are what a reviewer needs to see a
race: the reader read-holds ``anon_vma#1.rwsem`` while the mover moves the
folio to ``anon_vma#2``.  So :func:`record` replays the file (the same checks
as ``fuzzrmap replay``: fingerprint, divergence) with an observer that
snapshots, after every step, the locks of *every* thread, not only of the one
that ran, because a rwsem release grants the lock to its sleeping waiters in
the releaser's step.  The threads are found through the kernel's task list
(``kernel.rcu.tasks``, spawn order, the scheduler's thread ids).  The
snapshots become :class:`Hold` spans: a thread held a lock in a mode after
every step from ``first`` to ``last``; it took it in step ``first`` and let
it go in step ``last + 1`` (or never).

Three renderings of the same :class:`Timeline`:

* ``text``: what ``replay`` prints, the interleaving and the verdict.
* ``html``: one self-contained page (no scripts, no network) with an inline
  SVG: a lane per thread that ran, a box per step in a column per step, the
  lock holds as bars under the lane, an arrow between the two steps of the
  racing pair and a line at the failing step.
* ``chrome``: the Chrome Trace Event Format (Perfetto UI, chrome://tracing):
  a track per thread with a slice per step, tracks of lock holds under it and
  the failure as a global instant.  A step lasts 10 us of trace time.

Every output is a function of the seed file: no timings, no dates, and sets
are sorted before they are written.  Left out: resources other than locks
(refcounts, RCU sections, the slab), which the step labels already name.
"""

from __future__ import annotations

import html
import itertools
import json
import os
from pathlib import Path
from typing import Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple

import attrs

from fuzzrmap import engine, report
from fuzzrmap.sched.api import RUNNING
from fuzzrmap.shrink import racing_pair
from fuzzrmap.sched.seedfile import SeedFile
from fuzzrmap.sched.trace import Execution, Failure

#: the locks (name, mode) one thread holds, per thread id
Snapshot = Tuple[FrozenSet[Tuple[str, str]], ...]


@attrs.frozen
class Hold:
    """``thread`` held ``lock`` in ``mode`` after every step from ``first`` to ``last``."""

    thread: int
    lock: str
    mode: str
    first: int
    last: int


@attrs.frozen
class Timeline:
    """A replayed seed file and the lock holds of its threads."""

    seed: SeedFile
    execution: Execution
    holds: Tuple[Hold, ...]
    #: the racing pair (step indices), None when the schedule does not fail
    race: Optional[Tuple[int, int]]

    @property
    def threads(self) -> Tuple[int, ...]:
        """The threads that ran, by id."""
        return tuple(sorted({s.task for s in self.execution.steps}))

    @property
    def columns(self) -> int:
        """One per step, and one more when the failure is found after the last step."""
        failure = self.execution.failure
        return max(len(self.execution.steps), failure.step + 1 if failure else 0)

    def rows(self, thread: int) -> List[List[Hold]]:
        """``thread``'s holds packed into rows whose holds do not overlap."""
        rows: List[List[Hold]] = []
        for hold in sorted((h for h in self.holds if h.thread == thread), key=_hold_order):
            row = next((r for r in rows if r[-1].last < hold.first), None)
            if row is None:
                rows.append([hold])
            else:
                row.append(hold)
        return rows


def _hold_order(h: Hold):
    return h.first, h.last, h.thread, h.lock, h.mode


def record(seed: SeedFile, scenario_file: Optional[str] = None) -> Timeline:
    """Replay ``seed`` and take the lock holds of all threads after each step
    (``scenario_file``: the file a seed file's scenario was loaded from, named by the user)."""
    snapshots: List[Snapshot] = []

    def observe(step_index: int, task) -> None:
        assert step_index == len(snapshots), "one observation per step"
        snapshots.append(tuple(frozenset((lock.name, mode) for lock, mode in getattr(t.state, "held", ()))
                               for t in RUNNING.sched.tasks))

    execution = engine.replay(seed, observer=observe, scenario_file=scenario_file)
    race = None
    if execution.failure is not None:
        scenario = engine.scenario_for(seed, scenario_file)
        race = racing_pair(scenario, scenario.variant(seed.variant), execution)
    return Timeline(seed, execution, hold_spans(snapshots), race)


def hold_spans(snapshots: Sequence[Snapshot]) -> Tuple[Hold, ...]:
    """The maximal runs of consecutive snapshots in which a thread holds a lock in a mode."""
    spans = []
    open_since: Dict[Tuple[int, str, str], int] = {}
    held_after = [{(t, lock, mode) for t, held in enumerate(snap) for lock, mode in held} for snap in snapshots]
    for step, now in enumerate(held_after + [set()]):
        for key in open_since.keys() - now:
            spans.append(Hold(*key, first=open_since.pop(key), last=step - 1))
        for key in now - open_since.keys():
            open_since[key] = step
    return tuple(sorted(spans, key=_hold_order))


# -- text ------------------------------------------------------------------------

def text(timeline: Timeline) -> str:
    execution = timeline.execution
    return (f"{report.interleaving(execution, timeline.race, compact=True)}\n{report.legend()}\n\n"
            f"{report.verdict(execution, timeline.race)}\n")


# -- Chrome Trace Event Format ------------------------------------------------------

PID = 1
STEP_US = 10
FIRST_LOCK_TID = 100


def chrome(timeline: Timeline) -> str:
    """The trace as JSON, in the object form."""
    seed = timeline.seed
    trace = {
        "traceEvents": list(_chrome_events(timeline)),
        "displayTimeUnit": "ms",
        "otherData": {"scenario": seed.scenario, "variant": seed.variant, "fingerprint": seed.fingerprint},
    }
    return json.dumps(trace, indent=1) + "\n"


def step_tid(thread: int) -> int:
    """Thread n's track (tid 0 is the idle task in Linux traces, so n + 1)."""
    return thread + 1


def _tracks(timeline: Timeline) -> List[Tuple[int, str, List[Hold]]]:
    """(tid, name, holds) of every track in display order: a thread's steps, then its rows of holds."""
    tracks = []
    lock_tids = itertools.count(FIRST_LOCK_TID)
    for thread in timeline.threads:
        role = timeline.execution.roles[thread]
        tracks.append((step_tid(thread), role, []))
        tracks += [(next(lock_tids), f"{role} locks" + (f" ({n + 1})" if n else ""), row)
                   for n, row in enumerate(timeline.rows(thread))]
    return tracks


def _chrome_events(timeline: Timeline) -> Iterator[dict]:
    execution, seed = timeline.execution, timeline.seed
    yield _metadata("process_name", 0, {"name": f"{seed.scenario} / {seed.variant}"})
    for index, (tid, name, holds) in enumerate(_tracks(timeline)):
        yield _metadata("thread_name", tid, {"name": name})
        yield _metadata("thread_sort_index", tid, {"sort_index": index})
        yield from (_hold_slice(hold, tid) for hold in holds)
    for i, step in enumerate(execution.steps):
        yield {"name": f"{step.func}: {step.label}", "cat": "step", "ph": "X", "ts": i * STEP_US, "dur": STEP_US,
               "pid": PID, "tid": step_tid(step.task),
               "args": {"step": i, "enabled": [execution.roles[t] for t in step.enabled]}}
    for event in execution.events:
        yield _instant(timeline, event, "t", f"{event.invariant} [{event.kind}] (not a failure)")
    if execution.failure is not None:
        failure = execution.failure
        yield _instant(timeline, failure, "g", f"FAILED {failure.invariant} [{failure.kind}]")


def _metadata(kind: str, tid: int, args: dict) -> dict:
    return {"name": kind, "ph": "M", "ts": 0, "pid": PID, "tid": tid, "args": args}


def _hold_slice(hold: Hold, tid: int) -> dict:
    return {"name": f"{hold.lock} ({hold.mode})", "cat": "lock", "ph": "X", "ts": hold.first * STEP_US,
            "dur": (hold.last - hold.first + 1) * STEP_US, "pid": PID, "tid": tid,
            "args": {"lock": hold.lock, "mode": hold.mode, "first_step": hold.first, "last_step": hold.last}}


def _instant(timeline: Timeline, finding: Failure, scope: str, name: str) -> dict:
    """A failure or event at its step, on its thread's track (the first track for end-of-run checks)."""
    roles = timeline.execution.roles
    thread = roles.index(finding.task) if finding.task in roles else timeline.threads[0]
    return {"name": name, "cat": "invariant", "ph": "i", "s": scope, "ts": finding.step * STEP_US,
            "pid": PID, "tid": step_tid(thread), "args": finding.to_json()}


# -- HTML swimlane -----------------------------------------------------------------

COLUMN = 34
GUTTER = 120
AXIS = 26
STEP_HEIGHT = 22
HOLD_HEIGHT = 12
LANE_GAP = 12
CHAR_WIDTH = 6.1
HOLD_CHAR_WIDTH = 5.5
THREAD_COLOURS = ("#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#fdd0a2", "#d9d9d9")
MODE_COLOURS = {"read": "#6baed6", "write": "#e6550d", "lock": "#756bb1", "spin": "#31a354"}

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
header p { margin: .2em 0; }
.failed { color: #a40000; font-weight: 600; }
svg text.failed { fill: #a40000; }
.timeline { overflow-x: auto; border: 1px solid #ccc; }
svg text { font: 10px monospace; fill: #222; }
svg .role { font: bold 12px sans-serif; }
svg .tick { fill: #777; }
.lane-bg { fill: #f6f6f6; }
.step { stroke: #fff; }
.step.racing { stroke: #d00; stroke-width: 2.5; }
.hold { stroke: #fff; }
.hold-label { fill: #fff; font-size: 9px; }
.race { stroke: #d00; stroke-width: 2; fill: none; }
#arrow path { fill: #d00; }
.failure { stroke: #a40000; stroke-dasharray: 4 3; }
.legend span { display: inline-block; width: 1em; height: .8em; margin: 0 .3em 0 1em; }
pre { font-size: 12px; }
""" + "".join(f".c{n} {{ fill: {c}; }}\n" for n, c in enumerate(THREAD_COLOURS)) \
    + "".join(f".hold.{m} {{ fill: {c}; }} .legend .{m} {{ background: {c}; }}\n" for m, c in MODE_COLOURS.items())


@attrs.frozen
class _Lane:
    thread: int
    top: int
    rows: List[List[Hold]]

    @property
    def height(self) -> int:
        return STEP_HEIGHT + 2 + len(self.rows) * HOLD_HEIGHT


def html_page(timeline: Timeline) -> str:
    seed, execution = timeline.seed, timeline.execution
    title = f"{seed.scenario} / {seed.variant}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>fuzzrmap: {_e(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        *_header_lines(timeline),
        "</header>",
        f'<div class="timeline">{_svg(timeline)}</div>',
        _legend(),
        "<details><summary>The interleaving as text</summary>",
        f"<pre>{_e(report.interleaving(execution, timeline.race))}</pre>",
        "</details>",
        "</body>",
        "</html>",
        "",
    ])


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _header_lines(timeline: Timeline) -> Iterator[str]:
    execution, seed = timeline.execution, timeline.seed
    for n, line in enumerate(report.verdict(execution).splitlines()):
        failed = n == 0 and execution.failure is not None
        yield f'<p class="verdict{" failed" if failed else ""}">{_e(line)}</p>'
    pair = timeline.race
    if pair is not None:
        first, second = (f"step {k} ({execution.roles[execution.steps[k].task]}: {execution.steps[k].label})"
                         for k in pair)
        yield f"<p>racing pair: {_e(first)} &rarr; {_e(second)}</p>"
    strategy = seed.strategy.get("name", "?")
    params = ", ".join(f"{k} {v}" for k, v in seed.strategy.items() if k != "name")
    yield f"<p>{len(execution.steps)} steps; strategy {_e(f'{strategy} ({params})')}; model {_e(seed.fingerprint)}</p>"


def _legend() -> str:
    modes = "".join(f'<span class="{m}"></span>{m}' for m in MODE_COLOURS)
    return (f'<p class="legend">Lock holds under each lane, by mode:{modes}. '
            "Hover a box or bar for details; the red arrow joins the racing pair.</p>")


def _lanes(timeline: Timeline) -> List[_Lane]:
    lanes, top = [], AXIS
    for thread in timeline.threads:
        lane = _Lane(thread, top, timeline.rows(thread))
        lanes.append(lane)
        top += lane.height + LANE_GAP
    return lanes


def _x(step: int) -> int:
    return GUTTER + step * COLUMN


def _svg(timeline: Timeline) -> str:
    lanes = _lanes(timeline)
    width = _x(timeline.columns) + COLUMN
    height = lanes[-1].top + lanes[-1].height + LANE_GAP
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
             *_ticks(timeline.columns)]
    pair = timeline.race
    parts += [_lane_svg(timeline, lane, width, pair or ()) for lane in lanes]
    parts += _failure_svg(timeline, height)
    if pair is not None:
        parts.append(_race_svg(timeline, lanes, pair))
    parts.append("</svg>")
    return "\n".join(parts)


def _ticks(columns: int) -> Iterator[str]:
    for step in range(0, columns, 5):
        yield f'<text class="tick" x="{_x(step) + 2}" y="{AXIS - 8}">{step}</text>'


def _lane_svg(timeline: Timeline, lane: _Lane, width: int, racing: Tuple[int, ...]) -> str:
    role = timeline.execution.roles[lane.thread]
    parts = [f'<g class="lane" data-thread="{_e(role)}">',
             f'<rect class="lane-bg" x="0" y="{lane.top}" width="{width}" height="{lane.height}"/>',
             f'<text class="role" x="6" y="{lane.top + 15}">{_e(role)}</text>']
    for i, step in enumerate(timeline.execution.steps):
        if step.task == lane.thread:
            parts.append(_step_svg(timeline, i, lane, i in racing))
    for n, row in enumerate(lane.rows):
        parts += [_hold_svg(hold, lane.top + STEP_HEIGHT + 2 + n * HOLD_HEIGHT, role) for hold in row]
    parts.append("</g>")
    return "\n".join(parts)


def _step_svg(timeline: Timeline, index: int, lane: _Lane, racing: bool) -> str:
    execution = timeline.execution
    step = execution.steps[index]
    enabled = ", ".join(execution.roles[t] for t in step.enabled)
    tooltip = f"step {index}: {step.func}()\n{step.label}\nenabled: {enabled}"
    classes = f"step c{lane.thread % len(THREAD_COLOURS)}" + (" racing" if racing else "")
    x = _x(index)
    box = (f'<rect class="{classes}" x="{x + 1}" y="{lane.top}" width="{COLUMN - 2}" height="{STEP_HEIGHT}">'
           f"<title>{_e(tooltip)}</title></rect>")
    short = _short_label(step.label, COLUMN - 4)
    if not short:
        return box
    return box + f'\n<text x="{x + 3}" y="{lane.top + 15}">{_e(short)}</text>'


def _short_label(label: str, room: float) -> str:
    """The spec's step id (``L4``, ``M7c``) when the label starts with one that fits in ``room`` px."""
    word = label.split(" ", 1)[0]
    return word if word[:1].isupper() and word.isalnum() and len(word) * CHAR_WIDTH <= room else ""


def _hold_svg(hold: Hold, top: int, role: str) -> str:
    x, width = _x(hold.first) + 1, (hold.last - hold.first + 1) * COLUMN - 2
    tooltip = f"{role} holds {hold.lock} ({hold.mode}) after steps {hold.first}-{hold.last}"
    bar = (f'<rect class="hold {_e(hold.mode)}" x="{x}" y="{top}" width="{width}" height="{HOLD_HEIGHT - 2}">'
           f"<title>{_e(tooltip)}</title></rect>")
    if len(hold.lock) * HOLD_CHAR_WIDTH > width - 4:
        return bar
    return bar + f'\n<text class="hold-label" x="{x + 2}" y="{top + HOLD_HEIGHT - 4}">{_e(hold.lock)}</text>'


def _failure_svg(timeline: Timeline, height: int) -> Iterator[str]:
    failure = timeline.execution.failure
    if failure is None:
        return
    x = _x(failure.step) + COLUMN // 2
    yield (f'<line class="failure" x1="{x}" y1="{AXIS - 4}" x2="{x}" y2="{height}">'
           f"<title>{_e(failure.headline())}</title></line>")
    yield f'<text class="failed" x="{x + 3}" y="{AXIS - 8}">{_e(failure.invariant)}</text>'


def _race_svg(timeline: Timeline, lanes: List[_Lane], pair: Tuple[int, int]) -> str:
    steps = timeline.execution.steps
    lane_of = {lane.thread: lane for lane in lanes}
    first, second = (lane_of[steps[k].task] for k in pair)
    x1, x2 = (_x(k) + COLUMN // 2 for k in pair)
    y1 = first.top + STEP_HEIGHT // 2
    y2 = second.top if second.top > first.top else second.top + STEP_HEIGHT
    return (f'<line class="race" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" marker-end="url(#arrow)">'
            f"<title>racing pair: steps {pair[0]} and {pair[1]}</title></line>")


# -- output -------------------------------------------------------------------------

RENDERERS = {"text": text, "html": html_page, "chrome": chrome}
FORMATS = tuple(RENDERERS)


def render(timeline: Timeline, fmt: str) -> str:
    return RENDERERS[fmt](timeline)


def write(document: str, path: Path) -> None:
    """Write ``document`` to ``path`` atomically: a new file beside it, then a rename.

    The temporary file is created with ``open(..., "x")``, not ``mkstemp``, so
    the result gets the permissions of any file the user writes (umask).
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    out = open(tmp, "x", encoding="utf-8")
    try:
        with out:
            out.write(document)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
