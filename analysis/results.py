r"""The results of the sweeps: :class:`LambdaSweep` (one direction along :math:`\lambda`) and :class:`GridSweep` (2-D).

Both are frozen dataclasses of numpy arrays and tuples; ``to_dict()`` gives their JSON-friendly
form (numbers unchanged, non-finite values included: the file writer decides how to store them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from opmerge.io import to_jsonable

from .classify import FAMILIES

__all__ = ["LambdaSweep", "GridSweep"]


def _family_runs(lam: np.ndarray, family: Sequence[str]) -> list[dict]:
    """Runs of equal family along the grid: ``[{"family", "lam_min", "lam_max", "points"}, ...]``."""
    runs: list[dict] = []
    for x, fam in zip(lam.tolist(), family):
        if runs and runs[-1]["family"] == fam:
            runs[-1]["lam_max"] = x
            runs[-1]["points"] += 1
        else:
            runs.append({"family": fam, "lam_min": x, "lam_max": x, "points": 1})
    return runs


@dataclass(frozen=True, eq=False)
class LambdaSweep:
    r"""Result of :func:`~opmerge.analysis.sweeps.sweep_lambda`: the optimal family along a grid of :math:`\lambda`.

    Attributes
    ----------
    lam : (n,) ndarray
        The grid (increasing).
    family : tuple of str
        Optimal family per point (:data:`~opmerge.analysis.classify.FAMILIES`).
    w2, lower_bound : (n,) ndarray
        W2 of the optimal plan and its certified lower bound.
    exact : (n,) bool ndarray
        Optimality proven.
    plans : tuple of str
        Optimal plan per point (text notation; ties broken as in :func:`opmerge.solvers.solve`).
    shapes : tuple of dict
        :class:`~opmerge.analysis.classify.PlanShape` of each optimal plan, as dicts.
    canonical : dict of str -> (n,) ndarray
        W2 of each canonical plan.
    thresholds : tuple of dict
        ``{"lam", "lam_lo", "lam_hi", "from", "to"}`` for every family change, in order of
        :math:`\lambda`; the change lies in ``[lam_lo, lam_hi]`` and ``lam`` is their geometric mean.
    config : dict
        The full configuration.
    stats : dict
        Points computed / read from the cache, workers, seconds (not part of the result proper).
    """

    lam: np.ndarray
    family: tuple
    w2: np.ndarray
    lower_bound: np.ndarray
    exact: np.ndarray
    plans: tuple
    shapes: tuple
    canonical: dict
    thresholds: tuple
    config: dict
    stats: dict = field(default_factory=dict)

    def family_ranges(self) -> list[dict]:
        """Runs of equal family along the grid: ``[{"family", "lam_min", "lam_max", "points"}, ...]``."""
        return _family_runs(self.lam, self.family)

    def to_dict(self) -> dict:
        """JSON-friendly dict (lists ``lam``, ``family``, ``w2``, ..., ``thresholds``, ``config``)."""
        return to_jsonable(
            {
                "lam": self.lam,
                "family": list(self.family),
                "w2": self.w2,
                "lower_bound": self.lower_bound,
                "exact": self.exact,
                "plans": list(self.plans),
                "shapes": list(self.shapes),
                "canonical": self.canonical,
                "thresholds": list(self.thresholds),
                "ranges": self.family_ranges(),
                "config": self.config,
            },
            strict=False,
        )

    def summary(self) -> str:
        """Compact text table: the families by :math:`\\lambda` range, then the thresholds."""
        lines = [f"{'family':<8} {'lambda range':<24} {'points':>6}"]
        for run in self.family_ranges():
            span = f"{run['lam_min']:.4g} .. {run['lam_max']:.4g}"
            lines.append(f"{run['family']:<8} {span:<24} {run['points']:>6}")
        if self.thresholds:
            lines.append("")
            lines.append("thresholds (bisection):")
            for t in self.thresholds:
                lines.append(f"  lambda* = {t['lam']:.6g}  in [{t['lam_lo']:.6g}, {t['lam_hi']:.6g}]  {t['from']} -> {t['to']}")
        else:
            lines.append("")
            lines.append("no transition on this grid")
        n_inexact = int(np.sum(~self.exact))
        if n_inexact:
            lines.append(f"WARNING: {n_inexact} point(s) not proven optimal (solver budget hit)")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class GridSweep:
    r"""Result of a 2-D sweep: rows indexed by ``y``, columns by ``x`` (:math:`\lambda` or :math:`\lambda_1`).

    Attributes
    ----------
    x_name, y_name : str
        ``"lam"`` / ``"lam1"`` and ``"eta_tau"`` / ``"steps"`` / ``"lam2"``.
    x : (nx,) ndarray; y : (ny,) ndarray
    family : tuple of tuple of str, shape (ny, nx)
    w2, lower_bound : (ny, nx) ndarray; exact : (ny, nx) bool ndarray
    plans : tuple of tuple of str
    canonical : dict of str -> (ny, nx) ndarray
    thresholds : tuple of tuple of dict
        Per row, the family changes along ``x`` located by bisection (empty rows when not located).
    config : dict
    stats : dict
    """

    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray
    family: tuple
    w2: np.ndarray
    lower_bound: np.ndarray
    exact: np.ndarray
    plans: tuple
    canonical: dict
    thresholds: tuple
    config: dict
    stats: dict = field(default_factory=dict)

    def family_codes(self) -> np.ndarray:
        """Integer codes of the families (index into :data:`~opmerge.analysis.classify.FAMILIES`), shape (ny, nx)."""
        return np.array([[FAMILIES.index(f) for f in row] for row in self.family], dtype=np.int64)

    def to_dict(self) -> dict:
        """JSON-friendly dict of every field but ``stats``."""
        return to_jsonable(
            {
                "x_name": self.x_name,
                "x": self.x,
                "y_name": self.y_name,
                "y": self.y,
                "family": [list(r) for r in self.family],
                "w2": self.w2,
                "lower_bound": self.lower_bound,
                "exact": self.exact,
                "plans": [list(r) for r in self.plans],
                "canonical": self.canonical,
                "thresholds": [list(r) for r in self.thresholds],
                "config": self.config,
            },
            strict=False,
        )

