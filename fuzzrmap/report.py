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

The output depends only on the execution, so two replays of a seed file print
the same bytes.
"""

from __future__ import annotations

import textwrap
from typing import Iterator, List, Optional, Sequence, Set, Tuple

from fuzzrmap.sched.trace import Execution

COLUMN = 34
WIDEST = 52
#: the width the columns share when few threads ran (a shrunk race has two or three)
LINE = 150
RED, YELLOW, BOLD, RESET = "\033[31m", "\033[33m", "\033[1m", "\033[0m"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def preemption_steps(execution: Execution) -> List[int]:
    """Steps that switch away from a thread that was still enabled."""
    steps = execution.steps
    return [i for i in range(1, len(steps))
            if steps[i].task != steps[i - 1].task and steps[i - 1].task in steps[i].enabled]


def interleaving(execution: Execution, race: Optional[Tuple[int, int]] = None,
                 compact: bool = False, color: bool = False) -> str:
    steps = execution.steps
    active = sorted({s.task for s in steps})
    col_of = {tid: i for i, tid in enumerate(active)}
    preempting = set(preemption_steps(execution))
    failing = execution.failure.step if execution.failure is not None else None
    marked = preempting | set(race or ()) | ({failing} if failing is not None else set())
    width = max(COLUMN, min(WIDEST, LINE // len(active) - 3)) if active else COLUMN

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
    last_func = {}
    for first, last in _runs(steps):
        shown = _shown(first, last, marked) if compact else range(first, last + 1)
        previous = first - 1
        for i in shown:
            step = steps[i]
            col = col_of[step.task]
            if i > previous + 1:
                hidden = range(previous + 1, i)
                funcs = ", ".join(dict.fromkeys(steps[k].func for k in hidden))
                lines.append(row("", col, _fit(f"  ... {plural(len(hidden), 'step')}: {funcs}", width)))
                last_func[step.task] = steps[i - 1].func
            previous = i
            if last_func.get(step.task) != step.func:
                last_func[step.task] = step.func
                lines.append(row("", col, _fit(step.func + "()", width)))
            mark = ">> " if race and i in race else "!! " if i == failing else ""
            code = BOLD + RED if mark else ""
            number = f"{i}{'*' if i in preempting else ' '}"
            for n, part in enumerate(_wrap(mark + step.label, width)):
                text = row(number if n == 0 else "", col, part, code)
                if n == 0 and i in preempting and color:
                    text = text.replace(f"{number} |", f"{i}{YELLOW}*{RESET} |", 1)
                lines.append(text)
    return "\n".join(lines)


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


def _wrap(label: str, width: int) -> Sequence[str]:
    return textwrap.wrap(label, width, initial_indent="  ", subsequent_indent="    ", break_on_hyphens=False)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def legend() -> str:
    return "* preemption (the thread before could have continued)   >> racing pair   !! invariant broken"


def verdict(execution: Execution, race: Optional[Tuple[int, int]] = None) -> str:
    lines = []
    if execution.failure is not None:
        lines.append(f"FAILED {execution.failure.headline()}")
        lines += [f"  then {c.headline()}" for c in execution.consequences]
    else:
        lines.append("no invariant broken")
    if race is not None:
        a, b = (execution.steps[k] for k in race)
        lines.append(f"racing pair: step {race[0]} ({execution.roles[a.task]}: {a.label}) before "
                     f"step {race[1]} ({execution.roles[b.task]}: {b.label}); the other order does not fail")
    if execution.events:
        lines.append(f"{len(execution.events)} accuracy event(s), not failures:")
        lines += [f"  {e.headline()}" for e in execution.events]
    return "\n".join(lines)
