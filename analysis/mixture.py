r"""The mixture regime's studies (docs/mixture.md §5–§6): how honest the planner is, how the
approximation error of a merge grows, and where the optimum leaves the linear regime's answer.

* :func:`merge_errors` — :math:`\varepsilon_{j,i}` against the number of merged steps, per separation;
* :func:`evaluate_cell` — one (preset, separation, budget, N, M) setting: every plan simulated
  exactly and scored by the planner; Spearman correlation, the regret of the planner's pick, the
  exact optimum and the linear regime's optimum on the mixture's covariance spectrum;
* :func:`run_cells` — a grid of cells through the one result cache (a rerun resumes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import spearmanr

from opmerge import Problem, StudentModel, enumerate_plans, format_plan, make_schedule, solve
from opmerge._validate import choice, integer, real_number
from opmerge.errors import InputError
from opmerge.io import ResultCache
from opmerge.mixture import (PRESETS, Expectation, MixtureProblem, mixture_preset, optimal_mixture_plan,
                             planner_tables, simulate_plan)
from opmerge.mixture._planner import plan_amplitude
from opmerge.plans import count_plans

__all__ = ["MixtureCell", "evaluate_cell", "run_cells", "merge_errors", "check_large", "CELL_PLAN_LIMIT"]

#: the most plans one cell simulates (N = 7, M = 1 has 903)
CELL_PLAN_LIMIT = 5000


@dataclass(frozen=True)
class MixtureCell:
    r"""One setting of the planner-honesty grid.

    Parameters
    ----------
    preset : str
        A mixture preset (:data:`opmerge.mixture.PRESETS`).
    separation : float
        The preset's separation (0 = one Gaussian).
    eta_tau : float
        Per-merge gradient-flow budget :math:`\eta\tau`.
    steps, segments : int
        ``N`` (2 to 8) and ``M``.
    schedule : str
    order : int
        Gauss–Hermite order of the expectations.
    family : {"gated", "affine"}
    """

    preset: str = "two-2d"
    separation: float = 4.0
    eta_tau: float = 1.0
    steps: int = 6
    segments: int = 1
    schedule: str = "vp-cosine"
    order: int = 16
    family: str = "gated"

    def __post_init__(self) -> None:
        choice(self.preset, "preset", tuple(PRESETS))
        object.__setattr__(self, "separation", real_number(self.separation, "separation", low=0.0))
        object.__setattr__(self, "eta_tau", real_number(self.eta_tau, "eta_tau", low=0.0, low_open=True))
        object.__setattr__(self, "steps", integer(self.steps, "steps", low=2, high=8))
        object.__setattr__(self, "segments", integer(self.segments, "segments", low=1, high=self.steps))
        object.__setattr__(self, "order", integer(self.order, "order", low=2, high=64))
        choice(self.family, "family", ("gated", "affine"))
        if count_plans(self.steps, self.segments) > CELL_PLAN_LIMIT:
            raise InputError(f"a cell simulates every plan: N = {self.steps}, M = {self.segments} has "
                             f"{count_plans(self.steps, self.segments)} (at most {CELL_PLAN_LIMIT})")

    def problem(self) -> MixtureProblem:
        return MixtureProblem(mixture_preset(self.preset, self.separation), make_schedule(self.schedule, self.steps),
                              StudentModel(eta_tau=self.eta_tau), family=self.family,
                              expectation=Expectation("quadrature", order=self.order))

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_cell(cell: MixtureCell) -> dict:
    r"""Simulate every plan of the cell exactly, score it with the planner, and compare.

    Returns a JSON-friendly dict: ``spearman`` (planner cost vs exact MSE over all plans),
    ``regret`` (exact MSE of the planner's pick over the exact optimum, minus 1), the planner's
    pick, the exact optimum (ties within 1e-12 relative resolved to the first plan of
    :func:`~opmerge.plans.enumerate_plans`), the linear regime's optimum for the mixture's
    covariance spectrum and its exact MSE here, and per plan (text, exact MSE, planner cost).
    """
    problem = cell.problem()
    tables = planner_tables(problem)
    picked = optimal_mixture_plan(problem, cell.segments, tables=tables)
    plans = list(enumerate_plans(cell.steps, cell.segments))
    mse = np.array([simulate_plan(problem, plan, w2=False).mse for plan in plans])
    cost = np.array([plan_amplitude(tables, plan) ** 2 for plan in plans])
    best = int(np.argmin(mse))
    pick_index = plans.index(picked.plan)
    linear = solve(Problem(problem.schedule, lam=problem.mixture.spectrum(), model=problem.model, segments=cell.segments))
    linear_index = plans.index(linear.plan)
    rho = float(spearmanr(cost, mse)[0]) if np.ptp(mse) > 0 and np.ptp(cost) > 0 else float("nan")
    return {
        "cell": cell.to_dict(),
        "plans": len(plans),
        "spearman": rho,
        "regret": float(mse[pick_index] / mse[best] - 1.0) if mse[best] > 0 else float(mse[pick_index] > 0),
        "planner_plan": format_plan(picked.plan),
        "planner_cost": float(picked.cost),
        "planner_mse": float(mse[pick_index]),
        "optimal_plan": format_plan(plans[best]),
        "optimal_mse": float(mse[best]),
        "linear_plan": format_plan(linear.plan),
        "linear_mse": float(mse[linear_index]),
        "linear_regret": float(mse[linear_index] / mse[best] - 1.0) if mse[best] > 0 else 0.0,
        "table_seconds": tables.seconds,
        "rows": [[format_plan(p), float(m), float(c)] for p, m, c in zip(plans, mse, cost)],
    }


def _check_cell_record(record: object) -> bool:
    return isinstance(record, dict) and {"spearman", "regret", "rows", "cell"} <= set(record)


def run_cells(cells: list[MixtureCell], cache_dir=None, progress=None) -> list[dict]:
    """Evaluate ``cells`` in order, each through the result cache in ``cache_dir`` (None: no cache)."""
    cache = ResultCache(cache_dir, "mixture-cell", packages=("opmerge.analysis",))
    out = []
    for index, cell in enumerate(cells):
        out.append(cache.get_or_compute(cell.to_dict(), lambda cell=cell: evaluate_cell(cell), validate=_check_cell_record))
        if progress is not None:
            progress(index + 1, len(cells))
    return out


def merge_errors(preset: str, separations, steps: int = 8, schedule: str = "vp-cosine", order: int = 16,
                 family: str = "gated") -> dict:
    r"""Approximation error :math:`\varepsilon_{m,0}` of merging the last ``m`` teacher steps
    (:math:`m \to 0`, the data side) and :math:`\varepsilon_{N,N-m}` of the first ``m`` (the noise side)
    into one student, for ``m = 1..N`` and each separation. ``m = 1`` is 0 in the gated family.
    """
    rows = []
    for sep in separations:
        problem = MixtureProblem(mixture_preset(preset, sep), make_schedule(schedule, steps), StudentModel(),
                                 family=family, expectation=Expectation("quadrature", order=order))
        tables = planner_tables(problem)
        rows.append({"separation": float(sep),
                     "data_side": [float(tables.approximation[m, 0]) for m in range(1, steps + 1)],
                     "noise_side": [float(tables.approximation[steps, steps - m]) for m in range(1, steps + 1)]})
    return {"preset": preset, "steps": steps, "schedule": schedule, "family": family, "order": order,
            "merged_steps": list(range(1, steps + 1)), "curves": rows}


def check_large(preset: str = "two-2d", separation: float = 4.0, eta_tau: float = 1.0, steps: int = 16,
                segments=(1, 2, 4), random_count: int = 12, seed: int = 0, schedule: str = "vp-cosine",
                expectation: Expectation | None = None, progress=None) -> dict:
    r"""The planner against exact simulation where brute force is out of reach (``N = 16``).

    For each ``M`` in ``segments``: the four canonical plans, ``random_count`` seeded random plans
    (random segment boundaries, :func:`opmerge.plans.random_plan`) and the planner's pick, each
    simulated exactly; reports the Spearman correlation of planner cost and exact MSE over all of
    them, and per ``M`` the pick's regret against the best plan simulated.
    """
    from opmerge import canonical_plan
    from opmerge.plans import CANONICAL_KINDS, random_plan

    steps = integer(steps, "steps", low=2, high=64)
    expectation = expectation or Expectation()
    problem = MixtureProblem(mixture_preset(preset, separation), make_schedule(schedule, steps),
                             StudentModel(eta_tau=eta_tau), expectation=expectation)
    tables = planner_tables(problem, progress=progress)
    rng = np.random.default_rng(seed)
    rows, per_m = [], []
    for m in segments:
        picked = optimal_mixture_plan(problem, m, tables=tables).plan
        named = [(kind, canonical_plan(kind, steps, m)) for kind in CANONICAL_KINDS]
        named += [(f"random-{r}", random_plan(steps, m, rng, boundaries="random")) for r in range(random_count)]
        named.append(("planner", picked))
        seen, results = set(), []
        for name, plan in named:
            text = format_plan(plan)
            if text in seen:
                continue
            seen.add(text)
            results.append({"name": name, "plan": text, "segments": m, "mse": simulate_plan(problem, plan, w2=False).mse,
                            "cost": plan_amplitude(tables, plan) ** 2})
        best = min(r["mse"] for r in results)
        pick = next(r for r in results if r["name"] == "planner" or r["plan"] == format_plan(picked))
        per_m.append({"segments": m, "planner_plan": format_plan(picked), "planner_mse": pick["mse"], "best_mse": best,
                      "best_plan": min(results, key=lambda r: r["mse"])["plan"], "regret": pick["mse"] / best - 1.0,
                      "spearman": float(spearmanr([r["cost"] for r in results], [r["mse"] for r in results])[0])})
        rows += results
    rho = float(spearmanr([r["cost"] for r in rows], [r["mse"] for r in rows])[0])
    return {"preset": preset, "separation": separation, "eta_tau": eta_tau, "steps": steps, "schedule": schedule,
            "expectation": expectation.to_dict(), "spearman": rho, "per_segments": per_m, "rows": rows,
            "table_seconds": tables.seconds}
