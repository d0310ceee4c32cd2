"""Progress reports of long searches: what :func:`opmerge.solvers.solve` passes to ``progress``.

``solve(problem, progress=callback)`` calls ``callback(report)`` with a :class:`Progress` at most
every :data:`REPORT_INTERVAL` seconds while it works (never on short runs), and once more with
``phase="done"`` when it returns, if it reported anything before or ran that long. :func:`stderr_progress` is a
ready-made callback that prints one status line on standard error.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Callable, TextIO

__all__ = ["Progress", "ProgressCallback", "REPORT_INTERVAL", "StderrProgress", "stderr_progress"]

#: seconds between two reports of one search (the first one comes after this long too)
REPORT_INTERVAL = 0.5


@dataclass(frozen=True)
class Progress:
    r"""One progress report of a search.

    Attributes
    ----------
    phase : str
        What runs now: ``"tables"`` (interval DP), ``"seeds"`` (canonical and extreme plans),
        ``"pareto"`` (the Pareto dynamic program), ``"bound"`` (per-direction bounds),
        ``"search"`` (branch and bound), or ``"done"`` (the last report).
    elapsed : float
        Seconds since the search started.
    nodes : int
        Work done so far: branch-and-bound expansions plus Pareto candidate vectors.
    incumbent : float
        :math:`W_2` of the best plan found so far (``inf`` before the first one).
    bound : float
        Certified lower bound on the optimal :math:`W_2` known so far (0 when none yet).
    """

    phase: str
    elapsed: float
    nodes: int
    incumbent: float
    bound: float

    @property
    def gap(self) -> float:
        """``incumbent - bound`` (``inf`` before the first plan)."""
        return self.incumbent - self.bound if math.isfinite(self.incumbent) else math.inf

    def line(self) -> str:
        """The report as one short line of text."""
        incumbent = f"{self.incumbent:.10g}" if math.isfinite(self.incumbent) else "-"
        return (f"opmerge: {self.phase:<6} {self.elapsed:7.1f} s  {self.nodes:>12,d} nodes  "
                f"W2 {incumbent}  bound {self.bound:.10g}")


ProgressCallback = Callable[[Progress], None]


class StderrProgress:
    """A progress callback that prints :meth:`Progress.line` on a stream (standard error by default).

    On a terminal the line is rewritten in place (carriage return) at every report and ended with
    a newline by the ``"done"`` report; elsewhere (a log file, a pipe) a full line is written at
    most every ``every`` seconds, plus the ``"done"`` line.

    Parameters
    ----------
    stream : text stream, optional
        Where to write (``sys.stderr`` at the time of each call when omitted).
    every : float
        Seconds between two lines when the stream is not a terminal.
    """

    def __init__(self, stream: TextIO | None = None, every: float = 5.0):
        self._stream = stream
        self.every = float(every)
        self._last = -math.inf
        self._width = 0

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream if self._stream is not None else sys.stderr

    def __call__(self, report: Progress) -> None:
        stream = self.stream
        text = report.line()
        tty = bool(getattr(stream, "isatty", lambda: False)())
        if tty:
            pad = " " * max(0, self._width - len(text))
            stream.write("\r" + text + pad + ("\n" if report.phase == "done" else ""))
            self._width = 0 if report.phase == "done" else len(text)
        else:
            now = time.monotonic()
            if report.phase != "done" and now - self._last < self.every:
                return
            # the next search starts afresh: its first report is printed whatever this one's time
            self._last = -math.inf if report.phase == "done" else now
            stream.write(text + "\n")
        stream.flush()


#: the ready-made callback: ``solve(problem, progress=stderr_progress)``
stderr_progress = StderrProgress()
