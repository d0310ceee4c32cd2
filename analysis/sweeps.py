r"""Phase sweeps: which plan family is optimal as the data variance :math:`\lambda` (and more) varies.

* :func:`sweep_lambda` — one direction, a grid of :math:`\lambda`; every change of family between
  neighbouring grid points is located by bisection (:mod:`~opmerge.analysis.bisection`) to a
  relative tolerance ``tol``.
* :func:`sweep_lambda_eta`, :func:`sweep_lambda_steps`, :func:`sweep_two_directions` — 2-D grids
  (:math:`\lambda \times \eta\tau`, :math:`\lambda \times N`, :math:`\lambda_1 \times \lambda_2` of a
  two-direction spectrum solved jointly), with the transitions along :math:`\lambda` located per row;
* :func:`direction_families` — every direction of a spectrum solved alone;
* :func:`lambda_grid` — the log-spaced grid of ``opmerge phase``, its size checked first.

A sweep holds at most :data:`~opmerge.analysis.points.MAX_POINTS` grid points (all rows
together); a larger grid is refused with an :class:`~opmerge.errors.InputError` before any point is
built.

The four sweeps are one routine, :func:`_solve_rows`: the grid of every row is solved as one batch by a
:class:`~opmerge.analysis.runner.PointRunner` (cached, parallel when worthwhile), then the family
changes of all rows are bisected together. A :math:`\lambda` sweep is a grid with one row. Results
do not depend on the number of workers. (The solver's ``time_budget`` is the one source of
non-determinism: a point that hits it may differ between runs; such points carry ``exact = False``.)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Callable, Iterable

import numpy as np

from opmerge.errors import InputError, InputTypeError
from opmerge.io import to_jsonable
from opmerge.model import StudentModel
from opmerge.parallel import ExecutorConfig
from opmerge.plans import CANONICAL_KINDS
from opmerge.schedules import Schedule, make_schedule
from opmerge.solvers import DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET

from ._checks import check_common, check_grid, check_schedule
from .bisection import DEFAULT_THRESHOLD_TOL, locate_rows
from .points import MAX_POINTS, PointSpec, check_point_count
from .results import GridSweep, LambdaSweep
from .runner import PointRunner, run_points

__all__ = ["MAX_POINTS", "lambda_grid", "sweep_lambda", "sweep_lambda_eta", "sweep_lambda_steps", "sweep_two_directions",
           "direction_families"]


def lambda_grid(lam_min: float, lam_max: float, points: int) -> np.ndarray:
    r"""``points`` log-spaced values :math:`\lambda_k = \lambda_\min (\lambda_\max/\lambda_\min)^{k/(K-1)}`.

    ``points`` is checked (:func:`~opmerge.analysis.points.check_point_count`: an integer in
    ``[1, MAX_POINTS]``) before the grid is allocated; one point gives ``[lam_min]``.

    Parameters
    ----------
    lam_min, lam_max : float
        Finite, ``0 < lam_min < lam_max`` (``lam_max`` is ignored for one point).
    points : int
        Number of values :math:`K`.

    Returns
    -------
    (points,) float64 ndarray
    """
    count = check_point_count(points, "points")
    try:
        lo, hi = float(lam_min), float(lam_max)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"lam_min and lam_max must be numbers, got {lam_min!r} and {lam_max!r}") from exc
    if not (math.isfinite(lo) and lo > 0):
        raise InputError(f"lam_min must be finite and > 0, got {lam_min!r}")
    if count == 1:
        return np.array([lo])
    if not (math.isfinite(hi) and hi > lo):
        raise InputError(f"lam_max must be finite and > lam_min = {lo:g}, got {lam_max!r}")
    return np.geomspace(lo, hi, count)


def _check_size(name: str, *grids: np.ndarray) -> None:
    """Refuse a grid of more than :data:`MAX_POINTS` points in all (before its points are built)."""
    total = math.prod(int(g.size) for g in grids)
    if total > MAX_POINTS:
        raise InputError(f"{name} has {total} grid points; a sweep takes at most {MAX_POINTS} (MAX_POINTS)")


def _solve_rows(
    x: np.ndarray,
    n_rows: int,
    spec_at: Callable[[float, int], PointSpec],
    *,
    locate: bool,
    tol: float,
    workers: int | None,
    executor: ExecutorConfig | str | None,
    cache_dir: str | os.PathLike | None,
    progress: bool,
    desc: str,
) -> tuple[list[list[dict]], list[tuple], dict]:
    """Solve the grid ``x`` in each of ``n_rows`` rows, then bisect every family change of every row.

    Returns the records per row, the thresholds per row (empty when not ``locate``) and the
    statistics: the grid batch's plus ``threshold_points``, ``threshold_computed`` (bisection
    points) and ``parallel`` (whether any batch used the pool).
    """
    nx = len(x)
    specs = [spec_at(float(xv), row) for row in range(n_rows) for xv in x]
    with PointRunner(workers, cache_dir, executor=executor) as runner:
        records, grid_stats = runner.run(specs, progress=progress, desc=desc)
        rows = [records[r * nx : (r + 1) * nx] for r in range(n_rows)]
        if locate:
            row_specs = [(x, tuple(rec["family"] for rec in rows[r]), lambda xv, r=r: spec_at(float(xv), r)) for r in range(n_rows)]
            thresholds = [tuple(t) for t in locate_rows(row_specs, tol=tol, runner=runner, progress=progress)]
        else:
            thresholds = [() for _ in range(n_rows)]
        stats = dict(grid_stats)
        stats["threshold_points"] = runner.totals["points"] - grid_stats["points"]
        stats["threshold_computed"] = runner.totals["computed"] - grid_stats["computed"]
        stats["parallel"] = runner.totals["parallel"]
    return rows, thresholds, stats


@dataclass(frozen=True)
class _Setup:
    """The checked options every point of a sweep shares; builds its points and its configuration."""

    schedule: Schedule
    model: StudentModel
    solver: str
    target: str
    segments: int
    tol: float
    node_budget: int
    time_budget: float

    @classmethod
    def checked(cls, schedule: Schedule, model, solver, target, segments, tol, node_budget, time_budget) -> "_Setup":
        model = check_common(model, solver, target, segments, tol, node_budget, time_budget)
        return cls(schedule, model, solver, target, int(segments), float(tol), int(node_budget), float(time_budget))

    def point(self, lam: tuple, weights: tuple | None = None, *, model: StudentModel | None = None,
              schedule: Schedule | None = None) -> PointSpec:
        return PointSpec(self.schedule if schedule is None else schedule, lam, weights, self.model if model is None else model,
                         self.solver, self.target, self.segments, self.node_budget, self.time_budget)

    def config(self, schedule: dict | str | None = None, **extra) -> dict:
        base = {
            "schedule": self.schedule.to_dict() if schedule is None else schedule,
            "model": self.model.to_dict(),
            "solver": self.solver,
            "target": self.target,
            "segments": self.segments,
            "tol": self.tol,
            "node_budget": self.node_budget,
            "time_budget": self.time_budget,
        }
        return to_jsonable(dict(base, **extra), strict=False)


def sweep_lambda(
    lams: Iterable[float],
    *,
    schedule: Schedule | str,
    model: StudentModel | None = None,
    solver: str = "ddim",
    target: str = "teacher",
    segments: int = 1,
    steps: int | None = None,
    tol: float = DEFAULT_THRESHOLD_TOL,
    locate: bool = True,
    workers: int | None = None,
    executor: ExecutorConfig | str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    node_budget: int = DEFAULT_NODE_BUDGET,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> LambdaSweep:
    r"""Optimal plan family of a one-direction problem along a grid of :math:`\lambda`.

    At every :math:`\lambda` the optimum :math:`W_2^\star(\lambda) = \min_{\text{plans}} W_2` is solved
    exactly (:func:`opmerge.solvers.solve`) and its family is the first canonical plan ``k`` with
    :math:`W_2(k) \le W_2^\star + \mathrm{tol}_\text{solver}`, else ``"mixed"``. Between neighbouring
    grid points of different families the change is bisected to a relative width ``tol``.

    Parameters
    ----------
    lams : sequence of float
        Strictly increasing, ``>= 0``.
    schedule : Schedule or str
        A schedule, or a schedule name together with ``steps``.
    model : StudentModel, optional
        Default ``StudentModel()`` (warm init, :math:`\eta\tau = 0.5`).
    solver, target, segments :
        As in :class:`~opmerge.objective.Problem`.
    steps : int, optional
        ``N`` when ``schedule`` is a name.
    tol : float
        Relative bisection tolerance for the thresholds, in ``(0, 1)``.
    locate : bool
        Locate the thresholds (otherwise ``thresholds`` is empty).
    workers : int, optional
        Processes (default ``os.cpu_count()``).
    executor : ExecutorConfig or str, optional
        The engine of the batches (:mod:`opmerge.parallel`): ``process`` (default) or ``ray``
        (``local`` runs every point in this process). Results do not depend on it.
    cache_dir : path-like, optional
        Point cache folder (resume; ``None``: no cache).
    progress : bool
        tqdm progress bar.
    node_budget, time_budget :
        Passed to :func:`opmerge.solvers.solve`.

    Returns
    -------
    LambdaSweep
    """
    lam = check_grid(lams, "lams")
    _check_size("lams", lam)
    setup = _Setup.checked(check_schedule(schedule, steps), model, solver, target, segments, tol, node_budget, time_budget)
    (records,), (thresholds,), stats = _solve_rows(
        lam, 1, lambda x, row: setup.point((x,)), locate=locate, tol=tol, workers=workers, executor=executor, cache_dir=cache_dir,
        progress=progress, desc="lambda sweep",
    )
    return LambdaSweep(
        lam=lam,
        family=tuple(r["family"] for r in records),
        w2=np.array([r["w2"] for r in records], dtype=np.float64),
        lower_bound=np.array([r["lower_bound"] for r in records], dtype=np.float64),
        exact=np.array([r["exact"] for r in records], dtype=bool),
        plans=tuple(r["plan"] for r in records),
        shapes=tuple(r["shape"] for r in records),
        canonical={kind: np.array([r["canonical"][kind] for r in records]) for kind in CANONICAL_KINDS},
        thresholds=thresholds,
        config=setup.config(sweep="lambda", lam_grid=lam),
        stats=stats,
    )


def _grid_sweep(
    x: np.ndarray,
    y: np.ndarray,
    x_name: str,
    y_name: str,
    spec_at: Callable[[float, int], PointSpec],
    *,
    config: dict,
    desc: str,
    **run,
) -> GridSweep:
    rows, thresholds, stats = _solve_rows(x, len(y), spec_at, desc=desc, **run)

    def grid(key: str, dtype=np.float64) -> np.ndarray:
        return np.array([[rec[key] for rec in row] for row in rows], dtype=dtype)

    return GridSweep(
        x_name=x_name,
        x=x,
        y_name=y_name,
        y=y,
        family=tuple(tuple(rec["family"] for rec in row) for row in rows),
        w2=grid("w2"),
        lower_bound=grid("lower_bound"),
        exact=grid("exact", bool),
        plans=tuple(tuple(rec["plan"] for rec in row) for row in rows),
        canonical={kind: np.array([[rec["canonical"][kind] for rec in row] for row in rows]) for kind in CANONICAL_KINDS},
        thresholds=tuple(thresholds),
        config=config,
        stats=stats,
    )


def sweep_lambda_eta(
    lams: Iterable[float],
    eta_taus: Iterable[float],
    *,
    schedule: Schedule | str,
    model: StudentModel | None = None,
    solver: str = "ddim",
    target: str = "teacher",
    segments: int = 1,
    steps: int | None = None,
    tol: float = DEFAULT_THRESHOLD_TOL,
    locate: bool = True,
    workers: int | None = None,
    executor: ExecutorConfig | str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    node_budget: int = DEFAULT_NODE_BUDGET,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> GridSweep:
    r"""Phase diagram in :math:`(\lambda, \eta\tau)`: the optimal family per cell.

    Row ``r`` uses ``replace(model, eta_tau=eta_taus[r])``; everything else as in
    :func:`sweep_lambda`. With ``locate`` the transitions along :math:`\lambda` are bisected in every
    row (the transition curve :math:`\lambda^\star(\eta\tau)`).

    Parameters
    ----------
    lams : sequence of float
        Strictly increasing, ``>= 0`` (columns).
    eta_taus : sequence of float
        Strictly increasing, ``> 0`` (rows).
    schedule, model, solver, target, segments, steps, tol, locate, workers, executor, cache_dir, progress, node_budget, time_budget :
        As in :func:`sweep_lambda`.

    Returns
    -------
    GridSweep
        ``x_name = "lam"``, ``y_name = "eta_tau"``.
    """
    lam = check_grid(lams, "lams")
    eta = check_grid(eta_taus, "eta_taus", positive=True)
    _check_size("lams x eta_taus", lam, eta)
    setup = _Setup.checked(check_schedule(schedule, steps), model, solver, target, segments, tol, node_budget, time_budget)
    models = [replace(setup.model, eta_tau=float(e)) for e in eta]
    return _grid_sweep(
        lam, eta, "lam", "eta_tau", lambda x, row: setup.point((x,), model=models[row]),
        config=setup.config(sweep="lambda-eta", lam_grid=lam, eta_tau_grid=eta), desc="lambda x eta-tau",
        locate=locate, tol=tol, workers=workers, executor=executor, cache_dir=cache_dir, progress=progress,
    )


def sweep_lambda_steps(
    lams: Iterable[float],
    steps_list: Iterable[int],
    *,
    schedule: str = "vp-cosine",
    model: StudentModel | None = None,
    solver: str = "ddim",
    target: str = "teacher",
    segments: int = 1,
    tol: float = DEFAULT_THRESHOLD_TOL,
    locate: bool = True,
    workers: int | None = None,
    executor: ExecutorConfig | str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    node_budget: int = DEFAULT_NODE_BUDGET,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> GridSweep:
    r"""Optimal family in :math:`(\lambda, N)`: row ``r`` uses ``make_schedule(schedule, steps_list[r])``.

    Parameters
    ----------
    lams : sequence of float
        Strictly increasing, ``>= 0``.
    steps_list : sequence of int
        Strictly increasing teacher step counts ``N >= segments``.
    schedule : str
        Schedule name (:data:`~opmerge.schedules.SCHEDULE_NAMES`).
    model, solver, target, segments, tol, locate, workers, executor, cache_dir, progress, node_budget, time_budget :
        As in :func:`sweep_lambda`.

    Returns
    -------
    GridSweep
        ``x_name = "lam"``, ``y_name = "steps"``.
    """
    lam = check_grid(lams, "lams")
    if not isinstance(schedule, str):
        raise InputTypeError(f"schedule must be a schedule name for a sweep over N, got {type(schedule).__name__}")
    steps_arr = check_grid(steps_list, "steps_list", positive=True)
    _check_size("lams x steps_list", lam, steps_arr)
    if np.any(steps_arr != np.round(steps_arr)):
        raise InputError("steps_list must hold integers")
    steps_int = steps_arr.astype(int)
    schedules = [make_schedule(schedule, int(n)) for n in steps_int]
    setup = _Setup.checked(schedules[0], model, solver, target, segments, tol, node_budget, time_budget)
    if np.any(steps_int < setup.segments):
        raise InputError(f"every N in steps_list must be >= segments = {segments}")
    return _grid_sweep(
        lam, steps_int, "lam", "steps", lambda x, row: setup.point((x,), schedule=schedules[row]),
        config=setup.config(schedule, sweep="lambda-steps", lam_grid=lam, steps_grid=steps_int), desc="lambda x N",
        locate=locate, tol=tol, workers=workers, executor=executor, cache_dir=cache_dir, progress=progress,
    )


def sweep_two_directions(
    lam1s: Iterable[float],
    lam2s: Iterable[float],
    *,
    schedule: Schedule | str,
    weights: tuple[float, float] = (1.0, 1.0),
    model: StudentModel | None = None,
    solver: str = "ddim",
    target: str = "teacher",
    segments: int = 1,
    steps: int | None = None,
    tol: float = DEFAULT_THRESHOLD_TOL,
    locate: bool = False,
    workers: int | None = None,
    executor: ExecutorConfig | str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    node_budget: int = DEFAULT_NODE_BUDGET,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> GridSweep:
    r"""Joint optimal plan of a two-direction spectrum :math:`(\lambda_1, \lambda_2)` on a grid.

    Each cell solves one plan for both directions,
    :math:`\min_{\text{plans}} \sum_{i=1,2} \omega_i \|v_{N,i}\|^2 (S_i - T_i)^2` (``teacher`` target),
    and reports its family as in :func:`sweep_lambda`.

    Parameters
    ----------
    lam1s : sequence of float
        Columns (strictly increasing, ``>= 0``).
    lam2s : sequence of float
        Rows (strictly increasing, ``>= 0``).
    weights : (float, float)
        Multiplicities :math:`(\omega_1, \omega_2)`.
    schedule, model, solver, target, segments, steps, tol, locate, workers, executor, cache_dir, progress, node_budget, time_budget :
        As in :func:`sweep_lambda` (``locate`` bisects along :math:`\lambda_1` per row; off by default).

    Returns
    -------
    GridSweep
        ``x_name = "lam1"``, ``y_name = "lam2"``.
    """
    lam1 = check_grid(lam1s, "lam1s")
    lam2 = check_grid(lam2s, "lam2s")
    _check_size("lam1s x lam2s", lam1, lam2)
    setup = _Setup.checked(check_schedule(schedule, steps), model, solver, target, segments, tol, node_budget, time_budget)
    try:
        w = tuple(float(v) for v in weights)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"weights must be two finite numbers >= 0, got {weights!r}") from exc
    if len(w) != 2 or not all(math.isfinite(v) and v >= 0 for v in w):
        raise InputError(f"weights must be two finite numbers >= 0, got {weights!r}")

    return _grid_sweep(
        lam1, lam2, "lam1", "lam2", lambda x, row: setup.point((x, float(lam2[row])), w),
        config=setup.config(sweep="two-directions", lam1_grid=lam1, lam2_grid=lam2, weights=list(w)), desc="lambda1 x lambda2",
        locate=locate, tol=tol, workers=workers, executor=executor, cache_dir=cache_dir, progress=progress,
    )


def direction_families(
    lam: Iterable[float],
    *,
    schedule: Schedule | str,
    model: StudentModel | None = None,
    solver: str = "ddim",
    target: str = "teacher",
    steps: int | None = None,
    workers: int | None = None,
    executor: ExecutorConfig | str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    node_budget: int = DEFAULT_NODE_BUDGET,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> tuple[list[str], list[dict]]:
    r"""The optimal family of every direction of a spectrum solved alone (one student step).

    Each distinct eigenvalue :math:`\lambda` is solved once as the one-direction problem
    :math:`\min_{\text{plans}} W_2(\lambda)`; every direction gets the family and the record of its
    eigenvalue.

    Parameters
    ----------
    lam : sequence of float
        Eigenvalues ``>= 0``, any order, repeats allowed.
    schedule, model, solver, target, steps, workers, executor, cache_dir, progress, node_budget, time_budget :
        As in :func:`sweep_lambda`.

    Returns
    -------
    families : list of str
        Per direction, in the order of ``lam``.
    records : list of dict
        Per direction, the :func:`~opmerge.analysis.points.solve_point` record of its eigenvalue.
    """
    try:
        values = np.asarray(lam, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError("lam must be a 1-D sequence of numbers") from exc
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise InputError("lam must be a non-empty 1-D sequence of finite eigenvalues >= 0")
    distinct = np.unique(values)
    _check_size("lam (distinct values)", distinct)
    setup = _Setup.checked(check_schedule(schedule, steps), model, solver, target, 1, DEFAULT_THRESHOLD_TOL, node_budget, time_budget)
    records, _ = run_points([setup.point((float(x),)) for x in distinct], workers=workers, executor=executor, cache_dir=cache_dir,
                            progress=progress, desc="directions")
    record_of = {float(x): r for x, r in zip(distinct, records)}
    per_direction = [record_of[float(x)] for x in values]
    return [r["family"] for r in per_direction], per_direction
