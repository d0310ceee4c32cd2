r"""Phase sweeps: which plan family is optimal as the data variance :math:`\lambda` (and more) varies.

Every grid point is one call of :func:`opmerge.solvers.solve` on a :class:`~opmerge.objective.Problem`;
its **family** is :func:`~analysis.classify.family_of_solution` — the first canonical plan
(vanilla, boot, cd, pd; uniform segments) whose W2 attains the optimum within the solver's
tolerance, else ``"mixed"`` (THEORY.md §6: compare W2 values, not plan strings).

* :func:`sweep_lambda` — one direction, a grid of :math:`\lambda`; every change of family between
  neighbouring grid points is located by bisection (:func:`locate_transition`) to a relative
  tolerance ``tol``.
* :func:`sweep_lambda_eta`, :func:`sweep_lambda_steps`, :func:`sweep_two_directions` — 2-D grids
  (:math:`\lambda \times \eta\tau`, :math:`\lambda \times N`, :math:`\lambda_1 \times \lambda_2` of a
  two-direction spectrum solved jointly), with the transitions along :math:`\lambda` located per row.

Execution
---------
Points run in worker processes (:class:`concurrent.futures.ProcessPoolExecutor`, ``workers``
defaults to ``os.cpu_count()``) in chunks, with a tqdm progress bar. A sweep whose estimated serial
time (the second point's time times the number of points) is below :data:`PARALLEL_MIN_SECONDS`
runs in-process: starting workers would cost more than it saves. The results are identical either
way and always come back in grid order. With ``cache_dir`` every finished point is written at once
to its own JSON file keyed by the hash of its full configuration (:mod:`analysis._cache`); a later
run with the same configuration reads it back instead of solving again, so Ctrl-C loses nothing
that had finished. Results do not depend on the number of workers. (The solver's ``time_budget``
is the one source of non-determinism: a point that hits it may differ between runs; such points
carry ``exact = False``.)
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

import numpy as np

import opmerge
from opmerge.model import StudentModel
from opmerge.objective import TARGETS, Problem
from opmerge.plans import CANONICAL_KINDS
from opmerge.schedules import Schedule, make_schedule
from opmerge.solvers import DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET, solve
from opmerge.teacher import SOLVERS

from ._cache import CACHE_VERSION, PointCache, to_jsonable
from .classify import FAMILIES, canonical_w2, classify_plan, family_from_values

__all__ = [
    "PARALLEL_MIN_SECONDS",
    "PointSpec",
    "solve_point",
    "PointRunner",
    "run_points",
    "LambdaSweep",
    "GridSweep",
    "locate_transition",
    "sweep_lambda",
    "sweep_lambda_eta",
    "sweep_lambda_steps",
    "sweep_two_directions",
]

#: below this estimated serial time (seconds) a sweep runs in-process instead of starting workers
PARALLEL_MIN_SECONDS = 1.0
#: default relative tolerance of the transition bisection
DEFAULT_THRESHOLD_TOL = 1e-3
_MAX_TRANSITIONS_PER_CELL = 16


# ---------------------------------------------------------------------------------------------
# one point
# ---------------------------------------------------------------------------------------------


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
        """Full JSON-friendly configuration (the cache key is the hash of this dict)."""
        return {
            "kind": "solve",
            "cache_version": CACHE_VERSION,
            "opmerge_version": opmerge.__version__,
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

    The record holds ``lam``, ``family`` (:func:`~analysis.classify.family_from_values` of the
    canonical W2s, the optimum and the tolerance), ``w2``, ``lower_bound``, ``exact``, ``tol``,
    ``plan`` (text notation), ``shape`` (:class:`~analysis.classify.PlanShape` as a dict),
    ``canonical`` (``{kind: W2}``), ``method``, ``nodes`` and ``seconds``.

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
        }
    )


def _solve_chunk(specs: list[PointSpec], cache_dir: str | None) -> list[dict]:
    """Worker task: solve a chunk of points, writing each to the cache as soon as it is done."""
    cache = PointCache(cache_dir)
    out = []
    for spec in specs:
        record = solve_point(spec)
        cache.store(spec.config(), record)
        out.append(record)
    return out


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
        raise TypeError(f"workers must be an int >= 1 or None, got {type(workers).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1 (or None for os.cpu_count()), got {workers}")
    return int(workers)


def _pool_context():
    # fork shares the parent's imported modules and Numba-compiled kernels (no per-worker start-up);
    # elsewhere spawn is the safe default
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _progress_bar(total: int, initial: int, desc: str, enabled: bool):
    # disable=None: tqdm shows the bar only when stderr is a terminal (no noise in logs and pipes)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="pt", disable=None if enabled else True, leave=False, file=sys.stderr, dynamic_ncols=True)


class PointRunner:
    r"""Solves batches of points with one cache and, when worthwhile, one long-lived process pool.

    A sweep makes one runner and hands it every batch (the grid, then each bisection round), so a
    pool is started at most once. Per batch: cached points are read back; the first two points of
    the runner's life run in-process (they load or compile the Numba kernels before any fork and
    time a solve); the rest run in-process when ``workers == 1`` or the estimated serial time
    (mean in-process solve time :math:`\times` points left) is below :data:`PARALLEL_MIN_SECONDS`,
    else in the pool, in chunks of :math:`\lceil n / (4\,\mathrm{workers}) \rceil` points (at most
    64). Every finished point is written to the cache at once (by the worker that solved it). On
    any exception, ``KeyboardInterrupt`` included, pending chunks are cancelled and the exception
    propagates; finished points stay in the cache.

    Parameters
    ----------
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs everything in-process.
    cache_dir : path-like, optional
        Cache folder (``None``: no cache).

    Use as a context manager (``with PointRunner(...) as runner:``) so the pool is shut down.
    """

    def __init__(self, workers: int | None = None, cache_dir: str | os.PathLike | None = None):
        self.workers = _check_workers(workers)
        self.cache = PointCache(cache_dir)
        self.cache_arg = None if cache_dir is None else os.fspath(cache_dir)
        self.executor: ProcessPoolExecutor | None = None
        self.serial_seconds = 0.0
        self.serial_points = 0
        self.totals = {"points": 0, "cached": 0, "computed": 0, "parallel": False}

    def __enter__(self) -> "PointRunner":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)

    def close(self, cancel: bool = False) -> None:
        """Shut the pool down (cancelling pending work when ``cancel``)."""
        if self.executor is not None:
            self.executor.shutdown(wait=not cancel, cancel_futures=cancel)
            self.executor = None

    def _solve_here(self, spec: PointSpec) -> dict:
        t0 = time.perf_counter()
        record = solve_point(spec)
        self.serial_seconds += time.perf_counter() - t0
        self.serial_points += 1
        self.cache.store(spec.config(), record)
        return record

    def run(self, specs: Sequence[PointSpec], *, progress: bool = False, desc: str = "points") -> tuple[list[dict], dict]:
        """Solve ``specs``; returns their records in order and the batch statistics."""
        start = time.perf_counter()
        records: list[dict | None] = [self.cache.load(spec.config()) for spec in specs]
        todo = [k for k, r in enumerate(records) if r is None]
        stats = {"points": len(specs), "cached": len(specs) - len(todo), "computed": 0, "workers": self.workers, "parallel": False}
        bar = _progress_bar(len(specs), stats["cached"], desc, progress and len(todo) > 0)
        try:
            while todo and self.serial_points < 2:
                k = todo.pop(0)
                records[k] = self._solve_here(specs[k])
                stats["computed"] += 1
                bar.update(1)
            estimate = self.serial_seconds / max(self.serial_points, 1) * len(todo)
            if todo and (self.workers == 1 or estimate < PARALLEL_MIN_SECONDS):
                for k in todo:
                    records[k] = self._solve_here(specs[k])
                    stats["computed"] += 1
                    bar.update(1)
            elif todo:
                stats["parallel"] = True
                size = max(1, min(64, math.ceil(len(todo) / (4 * self.workers))))
                chunks = [todo[a : a + size] for a in range(0, len(todo), size)]
                if self.executor is None:
                    self.executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=_pool_context())
                pending = {self.executor.submit(_solve_chunk, [specs[k] for k in chunk], self.cache_arg): chunk for chunk in chunks}
                try:
                    while pending:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            chunk = pending.pop(future)
                            for k, record in zip(chunk, future.result()):
                                records[k] = record
                            stats["computed"] += len(chunk)
                            bar.update(len(chunk))
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
        finally:
            bar.close()
        stats["seconds"] = time.perf_counter() - start
        for key in ("points", "cached", "computed"):
            self.totals[key] += stats[key]
        self.totals["parallel"] = self.totals["parallel"] or stats["parallel"]
        return records, stats  # type: ignore[return-value]


def run_points(
    specs: Sequence[PointSpec],
    *,
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    desc: str = "points",
) -> tuple[list[dict], dict]:
    r"""Solve many points (cached, in parallel when worthwhile), returning their records in input order.

    One batch of a :class:`PointRunner` (see there for the in-process / pool rule, chunking, cache
    and interrupt behaviour).

    Parameters
    ----------
    specs : sequence of PointSpec
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs everything in-process.
    cache_dir : path-like, optional
        Cache folder (``None``: no cache).
    progress : bool
        Show a tqdm progress bar (on stderr).
    desc : str
        Progress bar label.

    Returns
    -------
    records : list of dict
        :func:`solve_point` records, one per spec, in order.
    stats : dict
        ``{"points", "cached", "computed", "workers", "parallel", "seconds"}``.
    """
    with PointRunner(workers, cache_dir) as runner:
        return runner.run(specs, progress=progress, desc=desc)


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------


def _family_runs(lam: np.ndarray, family: Sequence[str]) -> list[dict]:
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
    r"""Result of :func:`sweep_lambda`: the optimal family along a grid of :math:`\lambda`.

    Attributes
    ----------
    lam : (n,) ndarray
        The grid (increasing).
    family : tuple of str
        Optimal family per point (:data:`~analysis.classify.FAMILIES`).
    w2, lower_bound : (n,) ndarray
        W2 of the optimal plan and its certified lower bound.
    exact : (n,) bool ndarray
        Optimality proven.
    plans : tuple of str
        Optimal plan per point (text notation; ties broken as in :func:`opmerge.solvers.solve`).
    shapes : tuple of dict
        :class:`~analysis.classify.PlanShape` of each optimal plan, as dicts.
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
            }
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
        """Integer codes of the families (index into :data:`~analysis.classify.FAMILIES`), shape (ny, nx)."""
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
            }
        )


# ---------------------------------------------------------------------------------------------
# argument checking
# ---------------------------------------------------------------------------------------------


def _check_grid(values: Iterable[float], name: str, positive: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 1-D sequence of numbers") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0")
    if arr.size > 1 and np.any(np.diff(arr) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return arr


def _check_schedule(schedule: Schedule | str, steps: int | None) -> Schedule:
    if isinstance(schedule, Schedule):
        if steps is not None and steps != schedule.steps:
            raise ValueError(f"steps = {steps} contradicts the schedule's N = {schedule.steps}")
        return schedule
    if isinstance(schedule, str):
        if steps is None:
            raise ValueError("a schedule given by name needs steps (the number of teacher steps N)")
        return make_schedule(schedule, steps)
    raise TypeError(f"schedule must be an opmerge Schedule or a schedule name, got {type(schedule).__name__}")


def _check_common(model, solver, target, segments, tol, node_budget, time_budget) -> StudentModel:
    model = StudentModel() if model is None else model
    if not isinstance(model, StudentModel):
        raise TypeError(f"model must be a StudentModel, got {type(model).__name__}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if isinstance(segments, bool) or not isinstance(segments, (int, np.integer)) or segments < 1:
        raise ValueError(f"segments must be an int >= 1, got {segments!r}")
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"tol (relative bisection tolerance) must be in (0, 1), got {tol!r}")
    if isinstance(node_budget, bool) or not isinstance(node_budget, (int, np.integer)) or node_budget < 1:
        raise ValueError(f"node_budget must be an int >= 1, got {node_budget!r}")
    if not (isinstance(time_budget, (int, float)) and time_budget > 0):
        raise ValueError(f"time_budget must be > 0 seconds, got {time_budget!r}")
    return model


# ---------------------------------------------------------------------------------------------
# transitions
# ---------------------------------------------------------------------------------------------


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
        raise ValueError(f"need 0 <= lam_a < lam_b < inf, got lam_a = {lam_a!r}, lam_b = {lam_b!r}")
    if fam_a == fam_b:
        raise ValueError(f"fam_a and fam_b must differ, both are {fam_a!r}")
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    to, evaluations = fam_b, 0
    while b - a > tol * b:
        mid = _midpoint(a, b)
        if not a < mid < b:  # float resolution reached
            break
        fam = family_at(mid)
        evaluations += 1
        if fam == fam_a:
            a = mid
        else:
            b, to = mid, fam
    lam = _midpoint(a, b)
    return {"lam": lam, "lam_lo": a, "lam_hi": b, "from": fam_a, "to": to, "evaluations": evaluations}


def _sweep_stats(grid_stats: dict, runner: PointRunner) -> dict:
    """Grid statistics plus the bisection points (``threshold_points``, ``threshold_computed``)."""
    out = dict(grid_stats)
    out["threshold_points"] = runner.totals["points"] - grid_stats["points"]
    out["threshold_computed"] = runner.totals["computed"] - grid_stats["computed"]
    out["parallel"] = runner.totals["parallel"]
    return out


def _midpoint(a: float, b: float) -> float:
    return math.sqrt(a * b) if a > 0 else 0.5 * (a + b)


def _locate_rows(
    rows: Sequence[tuple[np.ndarray, Sequence[str], Callable[[float], PointSpec]]],
    *,
    tol: float,
    runner: PointRunner,
    progress: bool,
) -> list[list[dict]]:
    r"""Bisect every family change of every row at once, one batch of midpoints per round.

    Row ``r`` is ``(x, family, spec_at)``. Every bracket follows the rule of
    :func:`locate_transition`; all open brackets' midpoints are solved together by
    :func:`run_points` (in parallel, cached), so the rounds cost ``~log2(log(b/a)/tol)`` batches
    instead of one solve after another. A bracket that ends on a third family is continued from its
    upper end to the cell's right end. Thresholds come back sorted by ``lam`` within each row.
    """
    found: list[list[dict]] = [[] for _ in rows]
    brackets: list[dict] = []
    for r, (x, family, _) in enumerate(rows):
        for k in range(len(x) - 1):
            if family[k] != family[k + 1]:
                brackets.append(
                    {"row": r, "a": float(x[k]), "b": float(x[k + 1]), "fam_a": family[k], "to": family[k + 1],
                     "end": float(x[k + 1]), "fam_end": family[k + 1], "evaluations": 0, "restarts": 0}
                )
    if not brackets:
        return found
    from tqdm import tqdm

    bar = tqdm(desc="thresholds", unit="round", disable=None if progress else True, leave=False, file=sys.stderr, dynamic_ncols=True)
    try:
        while brackets:
            active, done = [], []
            for br in brackets:
                mid = _midpoint(br["a"], br["b"])
                (active if (br["b"] - br["a"] > tol * br["b"] and br["a"] < mid < br["b"]) else done).append(br)
            for br in done:
                found[br["row"]].append(
                    {"lam": _midpoint(br["a"], br["b"]), "lam_lo": br["a"], "lam_hi": br["b"], "from": br["fam_a"], "to": br["to"], "evaluations": br["evaluations"]}
                )
                if br["to"] != br["fam_end"] and br["b"] < br["end"] and br["restarts"] < _MAX_TRANSITIONS_PER_CELL:
                    active.append(
                        {**br, "a": br["b"], "b": br["end"], "fam_a": br["to"], "to": br["fam_end"], "evaluations": 0, "restarts": br["restarts"] + 1}
                    )
            brackets = active
            if not brackets:
                break
            mids = [_midpoint(br["a"], br["b"]) for br in brackets]
            specs = [rows[br["row"]][2](m) for br, m in zip(brackets, mids)]
            records, _ = runner.run(specs, progress=False)
            for br, m, rec in zip(brackets, mids, records):
                br["evaluations"] += 1
                if rec["family"] == br["fam_a"]:
                    br["a"] = m
                else:
                    br["b"], br["to"] = m, rec["family"]
            bar.update(1)
    finally:
        bar.close()
    for row in found:
        row.sort(key=lambda t: t["lam"])
    return found


# ---------------------------------------------------------------------------------------------
# sweeps
# ---------------------------------------------------------------------------------------------


def _stack(records: list[dict], key: str, dtype=np.float64) -> np.ndarray:
    return np.array([r[key] for r in records], dtype=dtype)


def _base_config(schedule, model, solver, target, segments, tol, node_budget, time_budget) -> dict:
    return {
        "schedule": schedule.to_dict() if isinstance(schedule, Schedule) else schedule,
        "model": model.to_dict(),
        "solver": solver,
        "target": target,
        "segments": int(segments),
        "tol": float(tol),
        "node_budget": int(node_budget),
        "time_budget": float(time_budget),
        "opmerge_version": opmerge.__version__,
    }


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
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    node_budget: int = DEFAULT_NODE_BUDGET,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> LambdaSweep:
    r"""Optimal plan family of a one-direction problem along a grid of :math:`\lambda`.

    At every :math:`\lambda` the optimum :math:`W_2^\star(\lambda) = \min_{\text{plans}} W_2` is solved
    exactly (:func:`opmerge.solvers.solve`) and its family is the first canonical plan ``k`` with
    :math:`W_2(k) \le W_2^\star + \mathrm{tol}_\text{solver}`, else ``"mixed"``. Between neighbouring
    grid points of different families the change is located by :func:`locate_transition` to a
    relative width ``tol``.

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
    lam = _check_grid(lams, "lams")
    schedule = _check_schedule(schedule, steps)
    model = _check_common(model, solver, target, segments, tol, node_budget, time_budget)

    def spec_at(x: float) -> PointSpec:
        return PointSpec(schedule, (float(x),), None, model, solver, target, int(segments), int(node_budget), float(time_budget))

    thresholds: list[dict] = []
    with PointRunner(workers, cache_dir) as runner:
        records, stats = runner.run([spec_at(x) for x in lam], progress=progress, desc="lambda sweep")
        family = tuple(r["family"] for r in records)
        if locate:
            thresholds = _locate_rows([(lam, family, spec_at)], tol=tol, runner=runner, progress=progress)[0]
        stats = _sweep_stats(stats, runner)
    config = _base_config(schedule, model, solver, target, segments, tol, node_budget, time_budget)
    config.update(sweep="lambda", lam_grid=lam)
    return LambdaSweep(
        lam=lam,
        family=family,
        w2=_stack(records, "w2"),
        lower_bound=_stack(records, "lower_bound"),
        exact=_stack(records, "exact", bool),
        plans=tuple(r["plan"] for r in records),
        shapes=tuple(r["shape"] for r in records),
        canonical={kind: np.array([r["canonical"][kind] for r in records]) for kind in CANONICAL_KINDS},
        thresholds=tuple(thresholds),
        config=to_jsonable(config),
        stats=stats,
    )


def _grid_sweep(
    x: np.ndarray,
    y: np.ndarray,
    x_name: str,
    y_name: str,
    spec_at: Callable[[float, int], PointSpec],
    *,
    locate: bool,
    tol: float,
    workers,
    cache_dir,
    progress: bool,
    config: dict,
    desc: str,
) -> GridSweep:
    specs = [spec_at(float(xv), row) for row in range(len(y)) for xv in x]
    nx, ny = len(x), len(y)
    with PointRunner(workers, cache_dir) as runner:
        records, stats = runner.run(specs, progress=progress, desc=desc)
        rows = [records[r * nx : (r + 1) * nx] for r in range(ny)]
        family = tuple(tuple(rec["family"] for rec in row) for row in rows)
        if locate:
            row_specs = [(x, family[r], lambda xv, r=r: spec_at(float(xv), r)) for r in range(ny)]
            thresholds = [tuple(t) for t in _locate_rows(row_specs, tol=tol, runner=runner, progress=progress)]
        else:
            thresholds = [() for _ in range(ny)]
        stats = _sweep_stats(stats, runner)

    def grid(key: str, dtype=np.float64) -> np.ndarray:
        return np.array([[rec[key] for rec in row] for row in rows], dtype=dtype)

    return GridSweep(
        x_name=x_name,
        x=x,
        y_name=y_name,
        y=y,
        family=family,
        w2=grid("w2"),
        lower_bound=grid("lower_bound"),
        exact=grid("exact", bool),
        plans=tuple(tuple(rec["plan"] for rec in row) for row in rows),
        canonical={kind: np.array([[rec["canonical"][kind] for rec in row] for row in rows]) for kind in CANONICAL_KINDS},
        thresholds=tuple(thresholds),
        config=to_jsonable(config),
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
    schedule, model, solver, target, segments, steps, tol, locate, workers, cache_dir, progress, node_budget, time_budget :
        As in :func:`sweep_lambda`.

    Returns
    -------
    GridSweep
        ``x_name = "lam"``, ``y_name = "eta_tau"``.
    """
    lam = _check_grid(lams, "lams")
    eta = _check_grid(eta_taus, "eta_taus", positive=True)
    schedule = _check_schedule(schedule, steps)
    model = _check_common(model, solver, target, segments, tol, node_budget, time_budget)
    models = [replace(model, eta_tau=float(e)) for e in eta]

    def spec_at(x: float, row: int) -> PointSpec:
        return PointSpec(schedule, (x,), None, models[row], solver, target, int(segments), int(node_budget), float(time_budget))

    config = _base_config(schedule, model, solver, target, segments, tol, node_budget, time_budget)
    config.update(sweep="lambda-eta", lam_grid=lam, eta_tau_grid=eta)
    return _grid_sweep(lam, eta, "lam", "eta_tau", spec_at, locate=locate, tol=tol, workers=workers, cache_dir=cache_dir, progress=progress, config=config, desc="lambda x eta-tau")


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
    model, solver, target, segments, tol, locate, workers, cache_dir, progress, node_budget, time_budget :
        As in :func:`sweep_lambda`.

    Returns
    -------
    GridSweep
        ``x_name = "lam"``, ``y_name = "steps"``.
    """
    lam = _check_grid(lams, "lams")
    if not isinstance(schedule, str):
        raise TypeError(f"schedule must be a schedule name for a sweep over N, got {type(schedule).__name__}")
    steps_arr = _check_grid(steps_list, "steps_list", positive=True)
    if np.any(steps_arr != np.round(steps_arr)):
        raise ValueError("steps_list must hold integers")
    model = _check_common(model, solver, target, segments, tol, node_budget, time_budget)
    if np.any(steps_arr < segments):
        raise ValueError(f"every N in steps_list must be >= segments = {segments}")
    schedules = [make_schedule(schedule, int(n)) for n in steps_arr]

    def spec_at(x: float, row: int) -> PointSpec:
        return PointSpec(schedules[row], (x,), None, model, solver, target, int(segments), int(node_budget), float(time_budget))

    config = _base_config(schedule, model, solver, target, segments, tol, node_budget, time_budget)
    config.update(sweep="lambda-steps", lam_grid=lam, steps_grid=steps_arr.astype(int))
    return _grid_sweep(lam, steps_arr.astype(int), "lam", "steps", spec_at, locate=locate, tol=tol, workers=workers, cache_dir=cache_dir, progress=progress, config=config, desc="lambda x N")


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
    schedule, model, solver, target, segments, steps, tol, locate, workers, cache_dir, progress, node_budget, time_budget :
        As in :func:`sweep_lambda` (``locate`` bisects along :math:`\lambda_1` per row; off by default).

    Returns
    -------
    GridSweep
        ``x_name = "lam1"``, ``y_name = "lam2"``.
    """
    lam1 = _check_grid(lam1s, "lam1s")
    lam2 = _check_grid(lam2s, "lam2s")
    schedule = _check_schedule(schedule, steps)
    model = _check_common(model, solver, target, segments, tol, node_budget, time_budget)
    w = tuple(float(v) for v in weights)
    if len(w) != 2 or not all(math.isfinite(v) and v >= 0 for v in w):
        raise ValueError(f"weights must be two finite numbers >= 0, got {weights!r}")

    def spec_at(x: float, row: int) -> PointSpec:
        return PointSpec(schedule, (x, float(lam2[row])), w, model, solver, target, int(segments), int(node_budget), float(time_budget))

    config = _base_config(schedule, model, solver, target, segments, tol, node_budget, time_budget)
    config.update(sweep="two-directions", lam1_grid=lam1, lam2_grid=lam2, weights=list(w))
    return _grid_sweep(lam1, lam2, "lam1", "lam2", spec_at, locate=locate, tol=tol, workers=workers, cache_dir=cache_dir, progress=progress, config=config, desc="lambda1 x lambda2")
