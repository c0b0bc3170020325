"""Progress of long commands: what is being done, how many executions, how fast.

``fuzz``, ``explore`` and ``shrink`` can run for minutes; a user who sees
nothing for that long cannot tell a slow search from a hung one.  A
:class:`Meter` shows one live line on stderr - the phase, the count (out of
the budget, when there is one), the rate and the elapsed time - drawn by
``rich``, and only when stderr is a terminal and no machine-readable output
was asked for, so pipes, files and ``--json`` see no progress bytes at all.
The line is transient: it is gone when the command prints its result.

Left out: estimates of the time remaining (searches stop at the first
failure, so the budget is not the work left).
"""

from __future__ import annotations

import sys
import time
from typing import Optional


class Meter:
    """A live progress line, or nothing when ``shown`` is false.

    Use it as a context manager and call :meth:`update` as often as you like:
    updates cost a few microseconds and the line is redrawn ten times a second.
    """

    def __init__(self, shown: bool, unit: str, total: Optional[int] = None, phase: str = "") -> None:
        self.unit = unit
        self.total = total
        self._progress = None
        self._task = None
        self._start = time.perf_counter()
        if shown:
            self._open(phase)

    @staticmethod
    def wanted(json_output: bool) -> bool:
        """Progress is shown on a terminal, never with ``--json``."""
        stderr = sys.stderr
        return not json_output and stderr is not None and stderr.isatty()

    def _open(self, phase: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        count = "{task.completed:,.0f}" + ("/{task.total:,.0f}" if self.total else "") + f" {self.unit}"
        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if self.total:
            columns.append(BarColumn(bar_width=24))
        columns += [TextColumn(count), TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
        self._progress = Progress(*columns, console=Console(file=sys.stderr), transient=True)
        self._task = self._progress.add_task(phase, total=self.total, rate="")

    def __enter__(self) -> "Meter":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, done: int, phase: Optional[str] = None) -> None:
        """``done`` units so far; ``phase`` names what is being done now."""
        if self._progress is None:
            return
        elapsed = time.perf_counter() - self._start
        rate = f"{done / elapsed:,.0f}/s" if elapsed > 0 else ""
        fields = {"completed": done, "rate": rate}
        if phase is not None:
            fields["description"] = phase
        self._progress.update(self._task, **fields)
