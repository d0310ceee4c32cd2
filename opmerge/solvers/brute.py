"""Brute force over every plan (the test oracle for small N)."""

from __future__ import annotations

from ..errors import InputError
from ..objective import PlanEvaluation, Problem, evaluate_plan
from ..plans import count_plans, enumerate_plans
from ._checks import check_problem

__all__ = ["brute_force", "MAX_BRUTE_FORCE_PLANS"]

MAX_BRUTE_FORCE_PLANS = 2_000_000


def brute_force(problem: Problem) -> list[PlanEvaluation]:
    r"""Evaluate every plan with ``problem.segments`` segments; returns the evaluations sorted by W2.

    The number of plans is the little Schröder number for ``M = 1`` (4279 for ``N = 8``); refuses
    more than ``MAX_BRUTE_FORCE_PLANS``.

    Parameters
    ----------
    problem : Problem

    Returns
    -------
    list of PlanEvaluation
        One per plan, by increasing ``w2`` (ties: enumeration order).

    Raises
    ------
    InputError
        When the problem has more than ``MAX_BRUTE_FORCE_PLANS`` plans.
    InputTypeError
        When ``problem`` is not a Problem.
    """
    check_problem(problem)
    total = count_plans(problem.steps, problem.segments)
    if total > MAX_BRUTE_FORCE_PLANS:
        raise InputError(f"brute force over {total} plans is too large (at most {MAX_BRUTE_FORCE_PLANS} plans with "
                         f"N = {problem.steps}, M = {problem.segments}); use solve()")
    evaluations = [evaluate_plan(problem, plan) for plan in enumerate_plans(problem.steps, problem.segments)]
    evaluations.sort(key=lambda ev: ev.w2)
    return evaluations
