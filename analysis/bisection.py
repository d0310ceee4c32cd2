r"""Locating the changes of the optimal family by bisection: one driver for one bracket or many.

A bracket :math:`[a, b]` holds the invariant ``family(a) == from`` and ``family(b) != from``. Each
step evaluates the geometric midpoint

.. math:: m = \sqrt{a b} \quad (\text{arithmetic } (a + b)/2 \text{ when } a = 0)

and keeps the half in which the family still changes, until :math:`b - a \le \mathrm{tol}\cdot b`
(or float resolution: :math:`m` no longer lies strictly inside). The reported threshold is
:math:`\sqrt{\lambda_{lo}\lambda_{hi}}` with its bracket, so its relative error is at most ``tol``.

:func:`bisect_brackets` is the one driver. It advances every open bracket together, one batch of
midpoints per round, which :func:`locate_rows` hands to a :class:`~opmerge.analysis.runner.PointRunner`
(parallel, cached) and :func:`locate_transition` to a plain callable. With ``follow``, a bracket that
ends on a third family is restarted from its upper end towards the cell's right end, so several
transitions inside one grid cell are all found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from opmerge.errors import InputError
from opmerge.parallel import progress_bar

from ._checks import check_rel_tol
from .points import PointSpec
from .runner import PointRunner

__all__ = ["DEFAULT_THRESHOLD_TOL", "MAX_TRANSITIONS_PER_CELL", "midpoint", "bisect_brackets", "locate_transition", "locate_rows"]

#: default relative tolerance of the transition bisection
DEFAULT_THRESHOLD_TOL = 1e-3
#: at most this many restarts (third, fourth ... family) inside one grid cell
MAX_TRANSITIONS_PER_CELL = 16


def midpoint(a: float, b: float) -> float:
    r"""The bisection point of :math:`[a, b]`: :math:`\sqrt{ab}` when :math:`a > 0`, else :math:`(a + b)/2`.

    Parameters
    ----------
    a, b : float
        Bracket ends, ``0 <= a < b``.

    Returns
    -------
    float
    """
    return math.sqrt(a * b) if a > 0 else 0.5 * (a + b)


@dataclass
class _Bracket:
    """State of one bracket: ``[a, b]`` with family ``fam_a`` at ``a`` and ``to`` at ``b``.

    ``end``/``fam_end`` are the right end of the grid cell and its family (for restarts); ``tag``
    is the caller's label (the row of a 2-D sweep).
    """

    tag: int
    a: float
    b: float
    fam_a: str
    to: str
    end: float
    fam_end: str
    evaluations: int = 0
    restarts: int = 0

    def is_open(self, tol: float) -> bool:
        mid = midpoint(self.a, self.b)
        return self.b - self.a > tol * self.b and self.a < mid < self.b

    def threshold(self) -> dict:
        return {"lam": midpoint(self.a, self.b), "lam_lo": self.a, "lam_hi": self.b, "from": self.fam_a, "to": self.to,
                "evaluations": self.evaluations}

    def restart(self) -> "_Bracket":
        return _Bracket(self.tag, self.b, self.end, self.to, self.fam_end, self.end, self.fam_end, 0, self.restarts + 1)


def bisect_brackets(
    brackets: Sequence[tuple[int, float, float, str, str]],
    families_at: Callable[[list[tuple[int, float]]], Sequence[str]],
    *,
    tol: float,
    follow: bool,
    on_round: Callable[[], None] | None = None,
) -> list[tuple[int, dict]]:
    r"""Bisect many brackets at once: every round evaluates the midpoints of all open brackets in one call.

    Parameters
    ----------
    brackets : sequence of (tag, a, b, fam_a, fam_b)
        Starting brackets, ``0 <= a < b``, ``fam_a != fam_b`` (the families at ``a`` and ``b``).
    families_at : callable
        ``[(tag, x), ...] -> [family, ...]``: the families at the midpoints of one round, in order.
    tol : float
        Relative width of the final brackets, in ``(0, 1)``.
    follow : bool
        When a bracket ends on a family other than ``fam_b`` below ``b``, restart it from its upper
        end towards ``b`` (at most :data:`MAX_TRANSITIONS_PER_CELL` times).
    on_round : callable, optional
        Called after every round (progress).

    Returns
    -------
    list of (tag, dict)
        Thresholds ``{"lam", "lam_lo", "lam_hi", "from", "to", "evaluations"}`` in the order they closed.
    """
    state = [_Bracket(tag, float(a), float(b), fam_a, fam_b, float(b), fam_b) for tag, a, b, fam_a, fam_b in brackets]
    found: list[tuple[int, dict]] = []
    while state:
        active = [br for br in state if br.is_open(tol)]
        for br in state:
            if br.is_open(tol):
                continue
            found.append((br.tag, br.threshold()))
            if follow and br.to != br.fam_end and br.b < br.end and br.restarts < MAX_TRANSITIONS_PER_CELL:
                active.append(br.restart())
        state = active
        if not state:
            break
        mids = [midpoint(br.a, br.b) for br in state]
        families = families_at([(br.tag, m) for br, m in zip(state, mids)])
        for br, m, fam in zip(state, mids, families):
            br.evaluations += 1
            if fam == br.fam_a:
                br.a = m
            else:
                br.b, br.to = m, fam
        if on_round is not None:
            on_round()
    return found


def locate_transition(
    lam_a: float,
    lam_b: float,
    fam_a: str,
    fam_b: str,
    family_at: Callable[[float], str],
    *,
    tol: float = DEFAULT_THRESHOLD_TOL,
) -> dict:
    r"""Bisect :math:`[\lambda_a, \lambda_b]` for the first change away from ``fam_a``.

    Invariant: ``family_at(a) == fam_a`` and ``family_at(b) != fam_a``. Each step evaluates the
    geometric midpoint :math:`m = \sqrt{ab}` (arithmetic when :math:`a = 0`) and keeps the half where
    the family still changes, until :math:`b - a \le \mathrm{tol}\cdot b`. When a third family
    appears inside the bracket the bisection follows the first change after :math:`\lambda_a`, and
    ``to`` is the family found just above it (call again from ``lam_hi`` to find the next one).

    Parameters
    ----------
    lam_a, lam_b : float
        Bracket, ``0 <= lam_a < lam_b``.
    fam_a, fam_b : str
        Families at the two ends (must differ).
    family_at : callable
        :math:`\lambda \mapsto` family.
    tol : float
        Relative width of the final bracket, in ``(0, 1)``.

    Returns
    -------
    dict
        ``{"lam": sqrt(lam_lo * lam_hi), "lam_lo", "lam_hi", "from": fam_a, "to", "evaluations"}``.
    """
    a, b = float(lam_a), float(lam_b)
    if not (0 <= a < b and math.isfinite(b)):
        raise InputError(f"need 0 <= lam_a < lam_b < inf, got lam_a = {lam_a!r}, lam_b = {lam_b!r}")
    if fam_a == fam_b:
        raise InputError(f"fam_a and fam_b must differ, both are {fam_a!r}")
    tol = check_rel_tol(tol)
    found = bisect_brackets([(0, a, b, fam_a, fam_b)], lambda points: [family_at(x) for _, x in points], tol=tol, follow=False)
    return found[0][1]


def locate_rows(
    rows: Sequence[tuple[np.ndarray, Sequence[str], Callable[[float], PointSpec]]],
    *,
    tol: float,
    runner: PointRunner,
    progress: bool,
) -> list[list[dict]]:
    r"""Bisect every family change of every row at once, one batch of midpoints per round.

    Row ``r`` is ``(x, family, spec_at)``: the grid, the family at each grid point and the point
    at any ``x``. Each pair of neighbouring grid points of different families starts a bracket of
    :func:`bisect_brackets` (with ``follow``); all open brackets' midpoints are solved together by
    ``runner`` (in parallel, cached), so the rounds cost :math:`\sim\log_2(\log(b/a)/\mathrm{tol})`
    batches instead of one solve after another.

    Parameters
    ----------
    rows : sequence of (x, family, spec_at)
    tol : float
        Relative bisection tolerance.
    runner : PointRunner
    progress : bool
        Progress bar of the rounds.

    Returns
    -------
    list of list of dict
        Per row, the thresholds sorted by ``lam``.
    """
    starts = [
        (r, float(x[k]), float(x[k + 1]), family[k], family[k + 1])
        for r, (x, family, _) in enumerate(rows)
        for k in range(len(x) - 1)
        if family[k] != family[k + 1]
    ]
    found: list[list[dict]] = [[] for _ in rows]
    if not starts:
        return found

    def families_at(points: list[tuple[int, float]]) -> list[str]:
        records, _ = runner.run([rows[r][2](m) for r, m in points], progress=False)
        return [rec["family"] for rec in records]

    bar = progress_bar(None, 0, "thresholds", progress, unit="round")
    try:
        for r, threshold in bisect_brackets(starts, families_at, tol=tol, follow=True, on_round=lambda: bar.update(1)):
            found[r].append(threshold)
    finally:
        bar.close()
    for row in found:
        row.sort(key=lambda t: t["lam"])
    return found
