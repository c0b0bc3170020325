"""The interleaving as a reviewer reads it: one column per thread.

Each step is a line in the column of the thread that ran it: the spec's step
label and the kernel expression, with the thread's kernel function as a header
whenever it changes.  Threads that never ran get no column.  Marks:

* ``*`` after the step number: a preemption - the thread before could have
  continued;
* ``>>`` before a label: one of the racing pair, the two conflicting steps
  whose order decides the failure;
* ``!!`` before a label: the step at which the invariant broke.

The compact form (the default) folds the quiet middle of each run of one
thread into a single "... n steps" line, keeping the first and last step of
the run and every marked step: a shrunk flagship race fits on a screen.
Colour (on a terminal) only emphasises the marks; the text is the same.
The columns share the given line width (the terminal's, or 100 when piped),
down to :data:`NARROWEST` characters each, and labels wrap within them.

Under the legend, one line per preemption says where the preempted thread
was (inside an RCU read-side section, holding a spinlock, at a sleeping or a
plain preemptible point) and what a kernel needs to delay it there; under the
failure, one line names the least permissive preemption model that allows the
whole trace (:mod:`fuzzrmap.preemption`).  The environment supplies the
contexts (:func:`fuzzrmap.engine.preemptions`).

The output depends only on the execution, so two replays of a seed file print
the same bytes.
"""

from __future__ import annotations

import re
import textwrap
from typing import Iterator, List, Optional, Sequence, Set, Tuple

import attrs

from fuzzrmap import preemption
from fuzzrmap.sched.trace import Execution

#: the default line width, and the narrowest and widest a column gets
LINE = 100
NARROWEST = 16
WIDEST = 52
RED, YELLOW, BOLD, RESET = "\033[31m", "\033[33m", "\033[1m", "\033[0m"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def preemption_steps(execution: Execution) -> List[int]:
    """Steps that switch away from a thread that was still enabled."""
    steps = execution.steps
    return [i for i in range(1, len(steps))
            if steps[i].task != steps[i - 1].task and steps[i - 1].task in steps[i].enabled]


def interleaving(execution: Execution, race: Optional[Tuple[int, int]] = None,
                 compact: bool = False, color: bool = False, width: int = LINE) -> str:
    """The steps in one column per thread that ran, in lines of at most ``width`` characters
    (unless a column at its narrowest does not fit)."""
    steps = execution.steps
    active = sorted({s.task for s in steps})
    col_of = {tid: i for i, tid in enumerate(active)}
    line_width = width
    width = max(NARROWEST, min(WIDEST, (line_width - 8 - 3 * (len(active) - 1)) // max(len(active), 1)))

    def paint(text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if color and text.strip() else text

    def row(number: str, col: int, text: str, code: str = "") -> str:
        cells = [""] * len(active)
        cells[col] = text
        line = f"{number:>5} | " + " | ".join(c.ljust(width) for c in cells)
        if code:
            line = line.replace(text.ljust(width), paint(text.ljust(width), code), 1)
        return line.rstrip()

    lines = [(f"{'step':>5} | " + " | ".join(execution.roles[t].ljust(width) for t in active)).rstrip(),
             "------+-" + "-+-".join("-" * width for _ in active)]
    for item in outline(execution, race, compact):
        col = col_of[item.thread]
        if item.kind == "fold":
            lines.append(row("", col, _fit(f"  ... {item.text}", width)))
        elif item.kind == "func":
            lines.append(row("", col, _fit(item.text, width)))
        else:
            mark = ">> " if item.racing else "!! " if item.failing else ""
            code = BOLD + RED if mark else ""
            i = item.first
            number = f"{i}{'*' if item.preempting else ' '}"
            for n, part in enumerate(wrap(mark + item.text, width)):
                text = row(number if n == 0 else "", col, part, code)
                if n == 0 and item.preempting and color:
                    text = text.replace(f"{number} |", f"{i}{YELLOW}*{RESET} |", 1)
                lines.append(text)
    return "\n".join(lines)


@attrs.frozen
class Item:
    """One line of the outline: a step, a folded run of steps, or the kernel function a thread enters.

    ``first``-``last`` are the steps it stands for (one for a step; none, ``first > last``, for a function).
    """

    kind: str
    thread: int
    text: str
    first: int
    last: int
    racing: bool = False
    failing: bool = False
    preempting: bool = False


def outline(execution: Execution, race: Optional[Tuple[int, int]] = None, compact: bool = True) -> Iterator[Item]:
    """The interleaving as the column view draws it (see the module notes); ``compact`` folds quiet runs."""
    steps = execution.steps
    preempting = set(preemption_steps(execution))
    failing = execution.failure.step if execution.failure is not None else None
    marked = preempting | set(race or ()) | ({failing} if failing is not None else set())
    last_func = {}
    for first, last in _runs(steps):
        shown = _shown(first, last, marked) if compact else range(first, last + 1)
        previous = first - 1
        for i in shown:
            step = steps[i]
            if i > previous + 1:
                hidden = range(previous + 1, i)
                funcs = ", ".join(dict.fromkeys(steps[k].func for k in hidden))
                yield Item("fold", step.task, f"{plural(len(hidden), 'step')}: {funcs}", hidden[0], hidden[-1])
                last_func[step.task] = steps[i - 1].func
            previous = i
            if last_func.get(step.task) != step.func:
                last_func[step.task] = step.func
                yield Item("func", step.task, step.func + "()", i, i - 1)
            yield Item("step", step.task, step.label, i, i, racing=bool(race) and i in race,
                       failing=i == failing, preempting=i in preempting)


def _runs(steps) -> Iterator[Tuple[int, int]]:
    """Maximal runs of consecutive steps by one thread, as (first, last) indices."""
    start = 0
    for i in range(1, len(steps) + 1):
        if i == len(steps) or steps[i].task != steps[start].task:
            yield start, i - 1
            start = i


def _shown(first: int, last: int, marked: Set[int]) -> List[int]:
    keep = {first, last} | {i for i in marked if first <= i <= last}
    return sorted(keep)


def wrap(label: str, width: int, first: str = "  ", rest: str = "    ") -> List[str]:
    """``label`` in lines of at most ``width``, indented; long words break after ``(``, ``,`` or ``->``."""
    lines: List[str] = []
    line = first
    for word in label.split():
        for n, piece in enumerate(re.split(r"(?<=[(,])|(?<=->)", word)):
            glue = " " if n == 0 and line.strip() else ""
            if len(line) + len(glue) + len(piece) > width and line.strip():
                lines.append(line)
                line, glue = rest, ""
            while len(line) + len(piece) > width:
                room = max(width - len(line), 1)
                lines.append(line + piece[:room])
                line, piece = rest, piece[room:]
            line += glue + piece
    lines.append(line)
    return lines


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def legend(preemptions: Sequence[preemption.Preemption] = (), width: Optional[int] = None) -> str:
    """The marks, then where each preemption happened and what it needs (wrapped to ``width``)."""
    lines = ["* preemption (the thread before could have continued)   >> racing pair   !! invariant broken"]
    lines += [p.legend() for p in preemptions]
    return _wrapped(lines, width)


def verdict(execution: Execution, race: Optional[Tuple[int, int]] = None, width: Optional[int] = None,
            preemptions: Optional[Sequence[preemption.Preemption]] = None) -> str:
    """The failure, the preemption model the trace needs (when ``preemptions`` are given), the
    racing pair and the accuracy events, wrapped to ``width`` if given."""
    lines = []
    if execution.failure is not None:
        lines.append(f"FAILED {execution.failure.headline()}")
        lines += [f"  then {c.headline()}" for c in execution.consequences]
    else:
        lines.append("no invariant broken")
    if preemptions is not None:
        lines.append(preemption.verdict(preemptions))
    if race is not None:
        a, b = (execution.steps[k] for k in race)
        lines.append(f"racing pair: step {race[0]} ({execution.roles[a.task]}: {a.label}) before "
                     f"step {race[1]} ({execution.roles[b.task]}: {b.label}); the other order does not fail")
    if execution.events:
        lines.append(f"{len(execution.events)} accuracy event(s), not failures:")
        lines += [f"  {e.headline()}" for e in execution.events]
    return _wrapped(lines, width)


def _wrapped(lines: List[str], width: Optional[int]) -> str:
    if width is None:
        return "\n".join(lines)
    return "\n".join(wrapped for line in lines
                     for wrapped in textwrap.wrap(line, width, subsequent_indent="    ", break_on_hyphens=False))
