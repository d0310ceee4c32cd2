r"""The image study's held-out prediction from a calibrated cost model (docs/calibration.md §7).

With ``costs`` (a cost model from ``opmerge calibrate --teacher checkpoint``), the network recipe's
plans are predicted by the calibrated law with its node floors
(:meth:`opmerge.calibration.CostModel.student_model`), and per ``M`` the planner's optimum under that
cost model, the **recommended plan** (:func:`recommended_plan`), is trained and measured beside the
study's plans. :func:`score_predictions` then reports, per ``M`` and pooled over ``M``, the rank
agreement of the calibrated prediction with the measured :math:`W_2` (on the study's own plans, the
recommended one left out unless it is one of them) and the measured rank of the recommended plan
among them. It reads only plan texts and measured numbers, so it also scores a finished study's
``images.json`` (:func:`score_result`).

Held out: the pilots of the calibration are single merges, which the compared plans (one to four
segments) never are; :func:`score_predictions` reports any plan the two share (``shared_with_pilots``).
"""

from __future__ import annotations

import math

import numpy as np

from opmerge.calibration import CostModel, load_cost_model
from opmerge.errors import InputError
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import Plan, format_plan, parse_plan
from opmerge.schedules import Schedule
from opmerge.solvers import solve

from .comparison import rank_agreement

__all__ = ["RECOMMENDED", "RECOMMEND_TIME_BUDGET", "read_costs", "recommended_plan", "score_predictions", "score_result"]

#: the name of the recommended plan among the study's plans
RECOMMENDED = "recommended"
#: seconds the planner may spend on one recommended plan (its certificate is reported)
RECOMMEND_TIME_BUDGET = 60.0


def read_costs(path: str, steps: int) -> CostModel:
    """Read a cost model for a study of ``steps`` teacher steps (:class:`~opmerge.errors.InputError` naming the mismatch)."""
    cost = load_cost_model(path)
    if cost.step_table.steps != steps:
        raise InputError(f"the cost model {path!r} was calibrated for N = {cost.step_table.steps} steps, the study uses N = {steps}")
    return cost


def _problem(cost: CostModel, schedule: Schedule, lam: np.ndarray, segments: int, init: str, input: str) -> Problem:
    return Problem(schedule, lam, model=cost.student_model(init=init, input=input), segments=segments)


def recommended_plan(cost: CostModel, schedule: Schedule, lam: np.ndarray, segments: int, *, init: str = "warm", input: str = "forward",
                     time_budget: float = RECOMMEND_TIME_BUDGET) -> tuple[Plan, dict]:
    """The planner's optimum with ``segments`` steps under the cost model, and its certificate.

    Returns
    -------
    (Plan, dict)
        The plan, and ``w2`` (predicted), ``lower_bound``, ``exact``, ``stopped``, ``seconds``.
    """
    solution = solve(_problem(cost, schedule, lam, segments, init, input), time_budget=time_budget)
    return solution.plan, {"plan": format_plan(solution.plan), "w2": solution.w2, "lower_bound": solution.lower_bound,
                           "exact": bool(solution.exact), "stopped": bool(solution.stopped), "seconds": solution.elapsed}


def score_predictions(rows: list[dict], cost: CostModel, schedule: Schedule, lam: np.ndarray, *, init: str = "warm",
                      input: str = "forward", pilot_plans: tuple = ()) -> dict:
    r"""Calibrated prediction against the measurement (module docstring).

    Parameters
    ----------
    rows : list of dict
        Plan students of one teacher and recipe: ``segments``, ``name``, ``plan`` (text) and the measured
        ``w2_cov`` (or ``w2`` holding it).
    cost : CostModel
    schedule : Schedule
    lam : array (d,)
        The teacher's eigenvalues.
    init, input : str
        The recipe's student init and inputs.
    pilot_plans : tuple of str
        The calibration's pilot plans (to report any the study shares).

    Returns
    -------
    dict
        ``by_segments`` (``str(M)`` -> ``plans``, ``names``, ``measured``, ``predicted``, the rank
        agreement (``spearman``, ``kendall``, ``n``, ``winner_agrees``), ``recommended`` (plan, measured,
        predicted, ``rank`` among the study's plans at that ``M`` counting it, ``of``) and
        ``predicted_best_rank`` (measured rank of the plan the prediction ranks first among the
        study's plans)), ``pooled`` (rank agreement over every ``M``), ``shared_with_pilots``.
    """
    def measured_of(row):
        return float(row["w2_cov"] if "w2_cov" in row else row["w2"]["w2_cov"])

    out: dict = {"by_segments": {}, "law": cost.law, "floors": cost.floor_table is not None}
    pooled_m, pooled_p = [], []
    for m in sorted({int(r["segments"]) for r in rows}):
        problem = _problem(cost, schedule, lam, m, init, input)
        study, recommended = {}, None
        for r in rows:
            if int(r["segments"]) != m:
                continue
            if r["name"] == RECOMMENDED:
                recommended = r
            else:
                study.setdefault(r["plan"], r)
        texts = list(study)
        measured = [measured_of(study[t]) for t in texts]
        predicted = [evaluate_plan(problem, parse_plan(t, schedule.steps)).w2 for t in texts]
        entry = {"plans": texts, "names": [study[t]["name"] for t in texts], "measured": measured, "predicted": predicted,
                 **rank_agreement(measured, predicted)}
        order = sorted(measured)
        entry["predicted_best_rank"] = 1 + order.index(measured[int(np.argmin(predicted))]) if texts else None
        if recommended is not None:
            value = measured_of(recommended)
            entry["recommended"] = {"plan": recommended["plan"], "measured": value,
                                    "predicted": evaluate_plan(problem, parse_plan(recommended["plan"], schedule.steps)).w2,
                                    "in_study": recommended["plan"] in study,
                                    "rank": 1 + sum(1 for t, v in zip(texts, measured) if v < value and t != recommended["plan"]),
                                    "of": len(texts) + (0 if recommended["plan"] in study else 1)}
        out["by_segments"][str(m)] = entry
        pooled_m += measured
        pooled_p += predicted
    out["pooled"] = rank_agreement(pooled_m, pooled_p)
    log_err = [abs(math.log10(p / v)) for p, v in zip(pooled_p, pooled_m) if p > 0 and v > 0]
    out["median_abs_log10_error"] = float(np.median(log_err)) if log_err else None
    out["shared_with_pilots"] = sorted({r["plan"] for r in rows} & set(pilot_plans))
    return out


def score_result(result: dict, cost: CostModel, teacher: str = "trained", recipe: str = "network") -> dict:
    """:func:`score_predictions` of a finished study's result (``images.json``) for one teacher and recipe."""
    from opmerge.schedules import make_schedule

    cfg = result["config"]
    rows = [r for r in result["plan_students"] if r["teacher"] == teacher and r["recipe"] == recipe]
    if not rows:
        raise InputError(f"the study has no plan students of the {teacher} teacher with the {recipe} recipe")
    return score_predictions(rows, cost, make_schedule(cfg["schedule"], cfg["steps"]), np.asarray(result["lam"], dtype=np.float64),
                             init=cfg["init"], input=cfg["input"], pilot_plans=tuple(cost.report.get("pilot_plans", ())))
