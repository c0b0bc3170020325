"""Timelines of a seed file: the column text, a changelog diagram, an HTML swimlane, a Chrome trace.

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

Four renderings of the same :class:`Timeline`:

* ``text``: what ``replay`` prints, the interleaving and the verdict.
* ``html``: one self-contained page (no scripts, no network) that opens on
  the race: an inline SVG with time flowing down, a lane per thread that ran,
  a labelled box per step, quiet runs of one thread folded as in the text
  view and the whole scaled to fit the window, so that the racing pair (an
  arrow between its two boxes) and the failing step are on the first screen;
  a checkbox swaps in the same drawing with every step.  Lock holds are bars
  at the right of each lane.
* ``chrome``: the Chrome Trace Event Format (Perfetto UI, chrome://tracing):
  a track per thread with a slice per step, tracks of lock holds under it,
  the failure as a global instant, each preemption as an instant on the
  preempted thread's track and the racing pair as a flow arrow between its
  two slices.  A step lasts 10 us of trace time.
* ``changelog``: the race as kernel commit messages draw it, in at most 72
  columns.

Every rendering says which preemption model the trace needs; ``text`` and
``html`` also say where each preemption happened
(:func:`fuzzrmap.engine.preemptions`).

Every output is a function of the seed file: no timings, no dates, and sets
are sorted before they are written.  Left out: resources other than locks
(refcounts, RCU sections, the slab), which the step labels already name.
"""

from __future__ import annotations

import html
import itertools
import json
import re
from typing import Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple

import attrs

from fuzzrmap import engine, preemption, report
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
    #: where each preemption happened and what it needs
    preemptions: Tuple[preemption.Preemption, ...] = ()

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
    scenario = engine.scenario_for(seed, scenario_file)
    variant = scenario.variant(seed.variant)
    race = racing_pair(scenario, variant, execution) if execution.failure is not None else None
    preempted = engine.preemptions(scenario, variant, execution, seed.preemption_model)
    return Timeline(seed, execution, hold_spans(snapshots), race, tuple(preempted))


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
    return (f"{report.interleaving(execution, timeline.race, compact=True)}\n"
            f"{report.legend(timeline.preemptions, width=report.LINE)}\n\n"
            f"{report.verdict(execution, timeline.race, width=report.LINE, preemptions=timeline.preemptions)}\n")


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
    preempting = set(report.preemption_steps(execution))
    racing = timeline.race or ()
    for i, step in enumerate(execution.steps):
        yield {"name": f"{step.func}: {step.label}", "cat": "step", "ph": "X", "ts": i * STEP_US, "dur": STEP_US,
               "pid": PID, "tid": step_tid(step.task),
               "args": {"step": i, "enabled": [execution.roles[t] for t in step.enabled],
                        "preemption": i in preempting, "racing": i in racing}}
        if i in preempting:
            preempted = execution.steps[i - 1].task
            yield {"name": f"preempted by {execution.roles[step.task]}", "cat": "preemption", "ph": "i", "s": "t",
                   "ts": i * STEP_US, "pid": PID, "tid": step_tid(preempted), "args": {"step": i}}
    for n, k in enumerate(racing):  # a flow arrow from the first of the pair to the second
        yield {"name": "racing pair", "cat": "race", "ph": "s" if n == 0 else "f", "id": 1,
               "ts": k * STEP_US + STEP_US // 2, "pid": PID, "tid": step_tid(execution.steps[k].task),
               **({"bp": "e"} if n else {})}
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

PAGE_WIDTH = 1240
GUTTER = 56
HEAD = 24
WIDEST_LANE = 360
LINE_HEIGHT = 14
ROW_GAP = 3
CHAR_WIDTH = 6.6
HOLD_BAR = 5
HOLD_STEP = 7
THREAD_COLOURS = ("#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#fdd0a2", "#d9d9d9")
MODE_COLOURS = {"read": "#6baed6", "write": "#e6550d", "lock": "#756bb1", "spin": "#31a354"}

STYLE = """
html, body { height: 100%; margin: 0; }
body { font: 14px/1.35 system-ui, sans-serif; padding: .5em 1em; box-sizing: border-box; color: #222;
       display: flex; flex-direction: column; }
body > * { flex: none; }
h1 { font-size: 1.15em; margin: 0; }
header p { margin: .1em 0; }
.failed { color: #a40000; font-weight: 600; }
#all { margin-left: 0; }
svg.timeline { display: block; width: 100%; border: 1px solid #ccc; margin-top: .3em; }
svg.folded { flex: 1 1 0; min-height: 0; height: auto; }
svg.every-step { display: none; height: auto; }
body:has(#all:checked) svg.folded { display: none; }
body:has(#all:checked) svg.every-step { display: block; }
svg text { font: 11px monospace; fill: #222; }
svg .role { font: bold 12px sans-serif; }
svg .func { fill: #555; font-style: italic; }
svg .fold { fill: #777; }
svg .number { fill: #777; }
svg .number.preempting { fill: #b36b00; font-weight: bold; }
.lane-bg { fill: #f6f6f6; }
.step { stroke: #fff; }
.step.racing { stroke: #d00; stroke-width: 2.5; }
.step.failing { stroke: #a40000; stroke-width: 2.5; fill: #f4b6b6; }
.hold { stroke: none; }
.race { stroke: #d00; stroke-width: 2; fill: none; }
#arrow path { fill: #d00; }
.legend span { display: inline-block; width: 1em; height: .8em; margin: 0 .3em 0 1em; }
pre { font-size: 12px; }
""" + "".join(f".c{n} {{ fill: {c}; }}\n" for n, c in enumerate(THREAD_COLOURS)) \
    + "".join(f".hold.{m} {{ fill: {c}; }} .legend .{m} {{ background: {c}; }}\n" for m, c in MODE_COLOURS.items())


def html_page(timeline: Timeline) -> str:
    """The page: a short header, then the folded timeline scaled to fit the window (a checkbox
    swaps in the one with every step), the legend and the interleaving as text."""
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
        '<p><input type="checkbox" id="all"><label for="all"> every step (quiet runs of one thread are folded)</label></p>',
        _svg(timeline, compact=True),
        _svg(timeline, compact=False),
        _legend(),
        "<details><summary>The interleaving as text</summary>",
        f"<pre>{_e(report.interleaving(execution, timeline.race, width=160))}</pre>",
        "</details>",
        "</body>",
        "</html>",
        "",
    ])


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def strategy_words(strategy: dict) -> str:
    """A seed file's strategy as a phrase: ``PCT, seed 1, schedule 71, depth 3, k 50``."""
    params = {k: v for k, v in strategy.items() if k != "name"}
    origin = params.pop("from", None)
    name = {"pct": "PCT", "sticky": "sticky random", "random": "random walk", "explore": "exhaustive search",
            "shrink": "shrunk"}.get(str(strategy.get("name")), str(strategy.get("name", "?")))
    words = ", ".join([name] + [f"{k.replace('_', ' ')} {v}" for k, v in params.items() if v is not None])
    if isinstance(origin, dict):
        words += f" from {strategy_words(origin)}"
    return words


def _header_lines(timeline: Timeline) -> Iterator[str]:
    execution, seed = timeline.execution, timeline.seed
    for n, line in enumerate(report.verdict(execution, preemptions=timeline.preemptions).splitlines()):
        failed = n == 0 and execution.failure is not None
        yield f'<p class="verdict{" failed" if failed else ""}">{_e(line)}</p>'
    for p in timeline.preemptions:
        yield f"<p>{_e(p.legend())}</p>"
    pair = timeline.race
    if pair is not None:
        first, second = (f"step {k} ({execution.roles[execution.steps[k].task]}: {execution.steps[k].label})"
                         for k in pair)
        yield f"<p>racing pair: {_e(first)} &rarr; {_e(second)}</p>"
    yield (f"<p>{len(execution.steps)} steps, {report.plural(len(report.preemption_steps(execution)), 'preemption')}; "
           f"strategy: {_e(strategy_words(seed.strategy))}; model {_e(seed.fingerprint)}</p>")


def _legend() -> str:
    modes = "".join(f'<span class="{m}"></span>{m}' for m in MODE_COLOURS)
    return (f'<p class="legend">Lock holds as bars at the right of each lane, by mode:{modes}. '
            "A step number in orange is a preemption; red outlines and the red arrow mark the racing pair; "
            "the step with the red fill broke the invariant.  Hover a box or bar for details.</p>")


@attrs.frozen
class _Row:
    item: report.Item
    top: int
    lines: Tuple[str, ...]

    @property
    def bottom(self) -> int:
        return self.top + len(self.lines) * LINE_HEIGHT + ROW_GAP


def _layout(timeline: Timeline, compact: bool):
    """Lane x by thread, lane width, and the rows top to bottom."""
    threads = timeline.threads
    lane = min(WIDEST_LANE, (PAGE_WIDTH - GUTTER) // len(threads))
    holds_room = max((len(timeline.rows(t)) for t in threads), default=0) * HOLD_STEP
    chars = max(12, int((lane - 12 - holds_room) / CHAR_WIDTH))
    rows, top = [], HEAD + 4
    for item in report.outline(timeline.execution, timeline.race, compact):
        if item.kind == "step":
            lines = report.wrap(item.text, chars, first="", rest="  ")
            if item.failing:  # the step the page is about: never a one-line sliver when scaled down
                lines.append(f"!! {timeline.execution.failure.invariant} broken")
        else:
            text = f"... {item.text}" if item.kind == "fold" else item.text
            lines = [text if len(text) <= chars else text[:chars - 1] + "~"]
        row = _Row(item, top, tuple(lines))
        rows.append(row)
        top = row.bottom
    failure = timeline.execution.failure
    if failure is not None and failure.step >= len(timeline.execution.steps):  # an end-of-run check
        rows.append(_Row(report.Item("end", threads[0], f"end: {failure.invariant}", failure.step, failure.step,
                                     failing=True), top, (f"end of the run: {failure.invariant}",)))
        top = rows[-1].bottom
    x = {t: GUTTER + n * lane for n, t in enumerate(threads)}
    return x, lane, rows, top + 6


def _svg(timeline: Timeline, compact: bool) -> str:
    x, lane, rows, height = _layout(timeline, compact)
    width = GUTTER + lane * len(x) + 4
    kind = "folded" if compact else "every-step"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline {kind}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet">',
             '<defs><marker id="arrow-{0}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#d00"/></marker></defs>'.format(kind)]
    execution = timeline.execution
    for thread, left in x.items():
        role = execution.roles[thread]
        parts.append(f'<g class="lane" data-thread="{_e(role)}">')
        parts.append(f'<rect class="lane-bg" x="{left + 1}" y="0" width="{lane - 2}" height="{height}"/>')
        parts.append(f'<text class="role" x="{left + 6}" y="{HEAD - 8}">{_e(role)}</text>')
        parts += [_row_svg(timeline, row, left, lane) for row in rows if row.item.thread == thread]
        parts += _holds_svg(timeline, thread, left + lane, rows)
        parts.append("</g>")
    parts += [f'<text class="number{" preempting" if row.item.preempting else ""}" x="{GUTTER - 6}" '
              f'y="{row.top + LINE_HEIGHT - 3}" text-anchor="end">{row.item.first}{"*" if row.item.preempting else ""}'
              f'</text>' for row in rows if row.item.kind == "step"]
    if timeline.race is not None:
        parts.append(_race_svg(timeline, x, lane, rows, kind))
    parts.append("</svg>")
    return "\n".join(parts)


def _row_svg(timeline: Timeline, row: _Row, left: int, lane: int) -> str:
    item = row.item
    baseline = row.top + LINE_HEIGHT - 3
    text = "".join(f'<tspan x="{left + 8}" dy="{0 if n == 0 else LINE_HEIGHT}">{_e(line)}</tspan>'
                   for n, line in enumerate(row.lines))
    if item.kind in ("func", "fold"):
        return f'<text class="{item.kind}" x="{left + 8}" y="{baseline}">{text}</text>'
    execution = timeline.execution
    classes = f"step c{item.thread % len(THREAD_COLOURS)}" + (" racing" if item.racing else "") \
        + (" failing" if item.failing else "")
    if item.kind == "end":
        tooltip = execution.failure.headline()
    else:
        step = execution.steps[item.first]
        enabled = ", ".join(execution.roles[t] for t in step.enabled)
        tooltip = f"step {item.first}: {step.func}()\n{step.label}\nenabled: {enabled}"
        if item.failing:
            tooltip += f"\n{execution.failure.headline()}"
    box = (f'<rect class="{classes}" id="{_step_id(item)}" x="{left + 4}" y="{row.top}" width="{lane - 8}" '
           f'height="{row.bottom - row.top - ROW_GAP}" rx="3"><title>{_e(tooltip)}</title></rect>')
    return f'{box}\n<text x="{left + 8}" y="{baseline}">{text}</text>'


def _step_id(item: report.Item) -> str:
    return "failing" if item.failing else f"step-{item.first}"


def _y_span(rows: Sequence[_Row], first: int, last: int) -> Tuple[int, int]:
    """The rows that draw steps ``first``-``last`` (folded ones included), as (top, bottom)."""
    covering = [r for r in rows if r.item.kind in ("step", "fold") and r.item.first <= last and first <= r.item.last]
    return min(r.top for r in covering), max(r.bottom for r in covering) - ROW_GAP


def _holds_svg(timeline: Timeline, thread: int, right: int, rows: Sequence[_Row]) -> Iterator[str]:
    role = timeline.execution.roles[thread]
    for n, hold_row in enumerate(timeline.rows(thread)):
        left = right - 4 - HOLD_BAR - n * HOLD_STEP
        for hold in hold_row:
            top, bottom = _y_span(rows, hold.first, hold.last)
            tooltip = f"{role} holds {hold.lock} ({hold.mode}) after steps {hold.first}-{hold.last}"
            yield (f'<rect class="hold {_e(hold.mode)}" x="{left}" y="{top}" width="{HOLD_BAR}" '
                   f'height="{max(bottom - top, 2)}"><title>{_e(tooltip)}</title></rect>')


def _race_svg(timeline: Timeline, x, lane: int, rows: Sequence[_Row], kind: str) -> str:
    steps = timeline.execution.steps
    first, second = (next(r for r in rows if r.item.kind == "step" and r.item.first == k) for k in timeline.race)
    x1, x2 = (x[steps[r.item.first].task] + lane // 2 for r in (first, second))
    y1 = first.bottom - ROW_GAP
    y2 = second.top
    return (f'<line class="race" id="race-{kind}" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" '
            f'marker-end="url(#arrow-{kind})"><title>racing pair: steps {timeline.race[0]} and '
            f'{timeline.race[1]}</title></line>')


# -- the race as a kernel commit message draws it ----------------------------------------------

CHANGELOG_WIDTH = 72


def changelog(timeline: Timeline) -> str:
    """The interleaving in staggered columns, one per thread, kernel function calls only.

    Each thread's column starts further right; a line holds one thread's
    call, so a long name may run into the next column's space.  The racing
    pair and the failing step add their expression; everything fits in
    :data:`CHANGELOG_WIDTH` columns, ready to paste into a patch description.
    """
    execution = timeline.execution
    threads = timeline.threads
    indent = min(26, (CHANGELOG_WIDTH - 30) // max(len(threads) - 1, 1))
    at = {t: n * indent for n, t in enumerate(threads)}
    header = "".join(execution.roles[t].ljust(indent) for t in threads).rstrip()
    lines = [header, "".join(("-" * len(execution.roles[t])).ljust(indent) for t in threads).rstrip(), ""]

    def put(thread: int, text: str, extra: int = 0) -> None:
        left = at[thread] + extra
        lines.extend(" " * left + part for part in
                     report.wrap(text, CHANGELOG_WIDTH - left, first="", rest="  "))

    last_thread = None
    for item in report.outline(execution, timeline.race, compact=False):
        wanted = item.kind == "func" or item.kind == "step" and (item.racing or item.failing)
        if not wanted:
            continue
        if last_thread is not None and item.thread != last_thread:
            lines.append("")
        last_thread = item.thread
        if item.kind == "func":
            put(item.thread, item.text)
            continue
        code = _code(item.text)
        if item.failing and execution.failure is not None:
            code += f"  /* {execution.failure.invariant} */"
        put(item.thread, code, extra=2)
    lines.append("")
    for line in report.verdict(execution, timeline.race, preemptions=timeline.preemptions).splitlines():
        lines += report.wrap(line, CHANGELOG_WIDTH, first="", rest="  ")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _code(label: str) -> str:
    """A step label without the spec's step id (``L1 x = READ_ONCE(y)`` -> ``x = READ_ONCE(y)``)."""
    word, _, rest = label.partition(" ")
    return rest if rest and re.fullmatch(r"[A-Z]{1,3}[0-9X][0-9a-z]?", word) else label


# -- output -------------------------------------------------------------------------

RENDERERS = {"text": text, "changelog": changelog, "html": html_page, "chrome": chrome}
FORMATS = tuple(RENDERERS)


def render(timeline: Timeline, fmt: str) -> str:
    return RENDERERS[fmt](timeline)

