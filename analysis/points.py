r"""One sweep point: what fixes a solve (:class:`PointSpec`), solving it (:func:`solve_point`) and its cache.

Every grid point of a sweep is one call of :func:`opmerge.solvers.solve` on a
:class:`~opmerge.objective.Problem`; its **family** is the first canonical plan (vanilla, boot, cd,
pd; uniform segments) whose W2 attains the optimum within the solver's tolerance, else
``"mixed"`` (docs/theory.md §6: compare W2 values, not plan strings).

Finished points are kept in an :class:`opmerge.io.ResultCache` with namespace
:data:`CACHE_NAMESPACE`, keyed by the point's :meth:`PointSpec.config` *and* the fingerprint of the
source of the core and of ``opmerge.analysis`` (:func:`point_cache`): editing a line of either
invalidates every cached point.

A sweep holds at most :data:`MAX_POINTS` grid points (:func:`check_point_count`): its grid, its
specs and its records live in memory, and every point is a file of the cache.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from opmerge._validate import integer, is_real
from opmerge.io import ResultCache, to_jsonable
from opmerge.model import StudentModel
from opmerge.objective import Problem
from opmerge.schedules import Schedule
from opmerge.solvers import solve

from .classify import canonical_w2, classify_plan, family_from_values

__all__ = ["CACHE_NAMESPACE", "CACHE_PACKAGES", "MAX_POINTS", "PointSpec", "check_point_count", "solve_point", "point_cache", "check_point_record"]

#: namespace of sweep points in an :class:`opmerge.io.ResultCache`
CACHE_NAMESPACE = "phase-point"
#: packages whose source, with the core's, computes a point (part of the cache key)
CACHE_PACKAGES = ("opmerge.analysis",)
#: most grid points of one sweep (all rows together): about 100 MB of records and 100,000 cache
#: files, hours of solving on one core; a larger count is refused before anything is allocated
MAX_POINTS = 100_000


def check_point_count(count: object, name: str = "points") -> int:
    """The number of grid points of a sweep, checked to be an integer in ``[1, MAX_POINTS]``.

    Called before a grid is allocated (``opmerge phase --points 1e12`` would ask for 7 TiB).

    Parameters
    ----------
    count : int
        The number of points.
    name : str
        Parameter name for the message.

    Returns
    -------
    int

    Raises
    ------
    InputTypeError
        When ``count`` is not an integer.
    InputError
        When ``count`` is not in ``[1, MAX_POINTS]``.
    """
    return integer(count, name, low=1, high=MAX_POINTS)


@dataclass(frozen=True)
class PointSpec:
    r"""Everything that fixes one solve: the problem and the solver budgets.

    Parameters
    ----------
    schedule : Schedule
    lam : tuple of float
        Eigenvalues :math:`\lambda_i \ge 0` (one per direction).
    weights : tuple of float or None
        Multiplicities :math:`\omega_i` (``None``: all 1).
    model : StudentModel
    solver : {"ddim", "heun"}
    target : {"teacher", "data"}
    segments : int
        Student steps ``M``.
    node_budget : int
    time_budget : float
    """

    schedule: Schedule
    lam: tuple
    weights: tuple | None
    model: StudentModel
    solver: str
    target: str
    segments: int
    node_budget: int
    time_budget: float

    def problem(self) -> Problem:
        """The :class:`~opmerge.objective.Problem` of this point."""
        return Problem(
            self.schedule,
            np.asarray(self.lam, dtype=np.float64),
            weights=None if self.weights is None else np.asarray(self.weights, dtype=np.float64),
            model=self.model,
            solver=self.solver,
            target=self.target,
            segments=self.segments,
        )

    def config(self) -> dict:
        """Full JSON-friendly configuration (the cache key hashes it together with the code fingerprint)."""
        return {
            "kind": "solve",
            "schedule": self.schedule.to_dict(),
            "lam": [float(x) for x in self.lam],
            "weights": None if self.weights is None else [float(x) for x in self.weights],
            "model": self.model.to_dict(),
            "solver": self.solver,
            "target": self.target,
            "segments": int(self.segments),
            "node_budget": int(self.node_budget),
            "time_budget": float(self.time_budget),
        }


def solve_point(spec: PointSpec) -> dict:
    r"""Solve one point and summarise it as a JSON-friendly record.

    The record holds ``lam``, ``family`` (:func:`~opmerge.analysis.classify.family_from_values` of
    the canonical W2s, the optimum :math:`W_2^\star` and the solver tolerance: the first kind ``k``
    with :math:`W_2(k) \le W_2^\star + \mathrm{tol}`), ``w2``, ``lower_bound``, ``exact``, ``tol``,
    ``plan`` (text notation), ``shape`` (:class:`~opmerge.analysis.classify.PlanShape` as a dict),
    ``canonical`` (``{kind: W2}``), ``method``, ``nodes`` and ``seconds``. Non-finite numbers are
    kept as they are (the cache stores them exactly).

    Parameters
    ----------
    spec : PointSpec

    Returns
    -------
    dict
    """
    problem = spec.problem()
    start = time.perf_counter()
    solution = solve(problem, node_budget=spec.node_budget, time_budget=spec.time_budget)
    canonical = canonical_w2(problem)
    return to_jsonable(
        {
            "lam": list(spec.lam),
            "family": family_from_values(canonical, float(solution.w2), float(solution.tol)),
            "w2": float(solution.w2),
            "lower_bound": float(solution.lower_bound),
            "exact": bool(solution.exact),
            "tol": float(solution.tol),
            "plan": str(solution.plan),
            "shape": classify_plan(solution.plan).to_dict(),
            "canonical": canonical,
            "method": solution.method,
            "nodes": int(solution.nodes),
            "seconds": time.perf_counter() - start,
        },
        strict=False,
    )


#: the fields of a point record and their JSON types (a cached record must have them all)
_RECORD_FIELDS = {"lam": list, "family": str, "w2": (int, float), "lower_bound": (int, float), "exact": bool, "tol": (int, float),
                  "plan": str, "shape": dict, "canonical": dict, "method": str, "nodes": int, "seconds": (int, float)}


def check_point_record(record: object) -> bool:
    """Whether ``record`` has the shape of a :func:`solve_point` record (the cache's ``validate`` hook).

    A cache entry with a valid checksum but another shape (written by another version, or edited
    with its checksum recomputed) is then a miss and the point is solved again.

    Parameters
    ----------
    record : object

    Returns
    -------
    bool
    """
    if not isinstance(record, dict):
        return False
    for name, kind in _RECORD_FIELDS.items():
        value = record.get(name)
        if not isinstance(value, kind) or (kind != bool and isinstance(value, bool)):
            return False
    return all(is_real(v) for v in record["lam"])


def point_cache(directory: str | os.PathLike | None) -> ResultCache:
    """The cache of sweep points in ``directory`` (``None``: caching off).

    Parameters
    ----------
    directory : path-like or None
        Cache folder.

    Returns
    -------
    opmerge.io.ResultCache
        Namespace :data:`CACHE_NAMESPACE`; its key covers the source of the core and of
        :data:`CACHE_PACKAGES`.
    """
    return ResultCache(directory, CACHE_NAMESPACE, packages=CACHE_PACKAGES)
