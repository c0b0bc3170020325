"""The interleaving as a reviewer reads it: one column per thread.

Each step is one line in the column of the thread that ran it: the spec's
step label and the kernel expression; a thread's kernel function is printed
as a header in its column whenever it changes.  Threads that never ran get
no column.  The output depends only on the execution (no timings, no
terminal width), so two replays of a seed file print the same bytes.
"""

from __future__ import annotations

import textwrap
from typing import List, Optional, Tuple

from fuzzrmap.sched.trace import Execution

COLUMN = 34


def interleaving(execution: Execution) -> str:
    active = sorted({s.task for s in execution.steps})
    col_of = {tid: i for i, tid in enumerate(active)}
    width = COLUMN

    def row(step: str, cells: List[str]) -> str:
        return (f"{step:>5} | " + " | ".join(c.ljust(width) for c in cells)).rstrip()

    lines = [row("step", [execution.roles[t] for t in active]),
             "------+-" + "-+-".join("-" * width for _ in active)]
    last_func = {}
    for i, step in enumerate(execution.steps):
        col = col_of[step.task]
        if last_func.get(step.task) != step.func:
            last_func[step.task] = step.func
            cells = [""] * len(active)
            cells[col] = _fit(step.func + "()", width)
            lines.append(row("", cells))
        parts = textwrap.wrap(step.label, width, initial_indent="  ", subsequent_indent="    ",
                              break_on_hyphens=False)
        for n, part in enumerate(parts):
            cells = [""] * len(active)
            cells[col] = part
            lines.append(row(str(i) if n == 0 else "", cells))
    return "\n".join(lines)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def verdict(execution: Execution) -> str:
    lines = []
    if execution.failure is not None:
        lines.append(f"FAILED {execution.failure.headline()}")
    else:
        lines.append("no invariant broken")
    if execution.events:
        lines.append(f"{len(execution.events)} accuracy event(s), not failures:")
        lines += [f"  {e.headline()}" for e in execution.events]
    return "\n".join(lines)


def conflicting(a, b) -> bool:
    """Two footprints conflict when they share a resource and one of them writes it."""
    return any(r == r2 and (w or w2) for r, w in a for r2, w2 in b)


def racing_pair(execution: Execution) -> Optional[Tuple[int, int]]:
    """The last two conflicting steps of different threads, one of them the failing thread's.

    Returned as step indices ``(i, j)``, ``i < j <= failure step``; None when the
    execution did not fail or no such pair exists.
    """
    f = execution.failure
    if f is None or f.task not in execution.roles:
        return None
    t = execution.roles.index(f.task)
    steps = execution.steps
    for j in range(min(f.step, len(steps) - 1), 0, -1):
        for i in range(j - 1, -1, -1):
            a, b = steps[i], steps[j]
            if a.task != b.task and t in (a.task, b.task) and conflicting(a.footprint, b.footprint):
                return i, j
    return None
