r"""Fidelity versus cost: the best :math:`W_2` reachable within a distillation budget.

Two costs of a plan (``docs/spectra.md`` explains the choice):

* ``"merges"``: the number of merge nodes, i.e. of distillation runs (``Plan.n_merges``).
* ``"teacher_evals"``: the largest number of teacher evaluations that one training target needs,
  :math:`\max_{\text{nodes}} \#\{\text{children that are teacher leaves}\}` (0 without merges).
  A merge node is trained on targets made by running its children once per sample; a child that
  is a leaf is one teacher step (one teacher network evaluation), a child that is a merge node is
  an already distilled student. Vanilla distillation, one node over all ``N`` steps, needs ``N``
  teacher evaluations per target; BOOT, CD and PD need at most 2. The *total* over all nodes,
  :math:`\sum_{\text{nodes}} \#\text{leaf children} = N - \#\{\text{one-leaf segments}\}`, is the same for
  every plan with the same segments (each teacher step is evaluated once per sample, in exactly
  one run), so it cannot tell plans apart; the per-target peak is what differs.

The front (:func:`fidelity_cost_front`) lists, for increasing cost ``c``, the smallest :math:`W_2`
over all plans with cost **at most** ``c``, keeping only the costs where it strictly improves
(by more than the tolerance of :func:`~opmerge.solvers.exact.solve`): a Pareto front with
non-increasing :math:`W_2`. Each point carries a plan of exactly that cost attaining it.

Method: the front dynamic program of :mod:`opmerge.solvers.pareto` with a cost *label* on each
value vector (merges: added up; peak: the node's own leaf children joined with its children's
peaks by ``max``). A vector is dropped only when another one with a label that is no larger
(componentwise) dominates it, which keeps the best plan of every budget; no bound pruning (there is
no single incumbent). Exact for every ``N`` where the fronts fit in ``max_front`` within
``time_budget``; otherwise a beam (the ``beam`` vectors of smallest bound of every interval) gives
plans with ``exact=False``.
When the Pareto path does not apply (:func:`~opmerge.solvers.pareto.pareto_applicable`, e.g.
``budget='total'``), every plan is enumerated (small ``N`` only).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..errors import InputError
from ..objective import Problem, evaluate_plan
from ..plans import MergeNode, Plan, count_plans, enumerate_plans
from ._interrupts import interruptible
from ._checks import check_choice, check_int, check_plan, check_problem, check_time_budget
from ._pareto_dp import ParetoAbort, ParetoDP, pareto_applicable, root_objective
from .tables import ProblemTables, TablesStopped
from ._control import Budget, optimality_tolerance, seed_plans
from .exact import DEFAULT_NODE_BUDGET

__all__ = ["COSTS", "FRONT_METHODS", "FrontPoint", "plan_cost", "fidelity_cost_front", "front_by_enumeration", "MAX_ENUMERATED_PLANS"]

COSTS = ("merges", "teacher_evals")
#: how :func:`fidelity_cost_front` computes the front
FRONT_METHODS = ("auto", "dp", "enumerate")
#: largest number of plans :func:`front_by_enumeration` accepts
MAX_ENUMERATED_PLANS = 300_000
_LABEL_RULE = {"merges": 1, "teacher_evals": 2}


@dataclass(frozen=True, eq=False)
class FrontPoint:
    """One point of the fidelity-cost front.

    Attributes
    ----------
    cost : int       the plan's cost (``plan_cost(plan, cost_name)``)
    w2 : float       its W2 (the best over all plans with cost <= ``cost`` when ``exact``)
    plan : Plan
    exact : bool     proven optimal for the budget ``cost``
    """

    cost: int
    w2: float
    plan: Plan
    exact: bool

    def to_dict(self) -> dict:
        """JSON-friendly form (plan in text notation)."""
        return {"cost": self.cost, "w2": self.w2, "plan": str(self.plan), "exact": self.exact}


def plan_cost(plan: Plan, cost: str = "merges") -> int:
    r"""Cost of a plan (see the module docstring).

    .. math:: \text{merges} = \#\text{nodes}, \qquad
              \text{teacher\_evals} = \max_{\text{nodes}} \#\{\text{children that are teacher leaves}\}

    (``teacher_evals`` is 0 without merge nodes).

    Parameters
    ----------
    plan : Plan
    cost : {"merges", "teacher_evals"}

    Returns
    -------
    int

    Raises
    ------
    InputError
        For an unknown ``cost``.
    InputTypeError
        When ``plan`` is not a :class:`~opmerge.plans.Plan`.
    """
    check_choice(cost, "cost", COSTS)
    check_plan(plan)
    return _plan_cost(plan, cost)


def _plan_cost(plan: Plan, cost: str) -> int:
    if cost == "merges":
        return plan.n_merges
    peak = 0
    for node in plan.merge_nodes():
        peak = max(peak, sum(1 for child in node.children if not isinstance(child, MergeNode)))
    return peak


def _front_from(costs, w2s, plans, tol: float, exact: bool) -> list[FrontPoint]:
    order = sorted(range(len(costs)), key=lambda t: (costs[t], w2s[t], t))
    points: list[FrontPoint] = []
    best = math.inf
    for t in order:
        if w2s[t] < best - tol or (not points and math.isfinite(w2s[t])):
            points.append(FrontPoint(int(costs[t]), float(w2s[t]), plans[t], exact))
            best = w2s[t]
    return points


def front_by_enumeration(problem: Problem, cost: str = "merges") -> list[FrontPoint]:
    """The front by evaluating every plan (the test oracle).

    Parameters
    ----------
    problem : Problem
        With ``count_plans(N, M) <= MAX_ENUMERATED_PLANS``.
    cost : {"merges", "teacher_evals"}

    Returns
    -------
    list of FrontPoint
        As :func:`fidelity_cost_front` (every point ``exact``).

    Raises
    ------
    InputError
        For an unknown ``cost`` or a problem with too many plans.
    InputTypeError
        When ``problem`` is not a Problem.
    """
    check_problem(problem)
    check_choice(cost, "cost", COSTS)
    return _front_by_enumeration(problem, cost)


def _front_by_enumeration(problem: Problem, cost: str) -> list[FrontPoint]:
    total = count_plans(problem.steps, problem.segments)
    if total > MAX_ENUMERATED_PLANS:
        raise InputError(f"enumerating {total} plans is too many (at most {MAX_ENUMERATED_PLANS} plans with N = "
                         f"{problem.steps}, M = {problem.segments}); use method='dp'")
    tol = optimality_tolerance(problem, None, 0.0)
    plans = list(enumerate_plans(problem.steps, problem.segments))
    w2s = [evaluate_plan(problem, plan).w2 for plan in plans]
    costs = [_plan_cost(plan, cost) for plan in plans]
    # among plans of equal cost keep the smallest W2 (ties: enumeration order)
    return _front_from(costs, w2s, plans, tol, True)


@interruptible
def fidelity_cost_front(
    problem: Problem,
    cost: str = "merges",
    *,
    method: str = "auto",
    max_front: int = 20000,
    time_budget: float = 60.0,
    beam: int = 64,
) -> list[FrontPoint]:
    r"""The Pareto front of (cost, :math:`W_2`) over all plans with ``problem.segments`` segments.

    For every budget ``c`` the best :math:`W_2` over plans with cost :math:`\le c`; the returned
    points are the budgets where it strictly improves (cost ascending, :math:`W_2` descending).

    Parameters
    ----------
    problem : Problem
    cost : {"merges", "teacher_evals"}
        See the module docstring.
    method : {"auto", "dp", "enumerate"}
        ``auto``: the labelled front DP when :func:`~opmerge.solvers.pareto.pareto_applicable`,
        else enumeration.
    max_front : int
        Largest front per interval of the exact DP.
    time_budget : float
        Seconds for the whole call: the range tables, then the exact DP (half of what is left),
        then the beam (the rest). When it runs out while the tables are built or the beam runs, the
        front of the canonical plans (vanilla, boot, cd, pd) is returned, every point ``exact=False``.
    beam : int
        When the exact DP exceeds ``max_front`` or its share of ``time_budget``, it is rerun as a beam keeping the
        ``min(beam, max_front)`` vectors of smallest bound per interval; its points have ``exact=False``.

    Returns
    -------
    list of FrontPoint

    Raises
    ------
    InputError
        For an unknown ``cost`` or ``method``, a ``max_front``, ``beam`` or ``time_budget`` out of
        range, ``method='dp'`` where the DP does not apply, or enumeration of too many plans.
    InputTypeError
        When ``problem`` is not a Problem or an argument has the wrong type.
    """
    check_problem(problem)
    check_choice(cost, "cost", COSTS)
    check_choice(method, "method", FRONT_METHODS)
    max_front = check_int(max_front, "max_front", 1)
    time_budget = check_time_budget(time_budget)
    beam = check_int(beam, "beam", 1)
    applicable, why = pareto_applicable(problem)
    if method == "enumerate" or (method == "auto" and not applicable):
        return _front_by_enumeration(problem, cost)
    if not applicable:
        raise InputError(f"method='dp' does not apply to this problem ({why}); use method='enumerate' or 'auto'")
    tol = optimality_tolerance(problem, None, 0.0)
    budget = Budget(time_budget, DEFAULT_NODE_BUDGET)
    try:
        tables = ProblemTables(problem, budget=budget)
    except TablesStopped:
        return _canonical_front(problem, cost, tol)
    rule = _LABEL_RULE[cost]
    exact = True
    # the exact DP gets half of what is left; when it stops, the beam gets the rest, and when that
    # stops too, the front of the canonical plans is the answer
    now = time.perf_counter()
    try:
        dp = ParetoDP(problem, math.inf, label_rule=rule, max_front=int(max_front),
                      deadline=now + (budget.deadline - now) / 2, tables=tables)
        root = dp.run()
    except ParetoAbort:
        exact = False
        try:
            dp = ParetoDP(problem, math.inf, label_rule=rule, max_front=2**62, beam=int(min(beam, max_front)),
                          deadline=budget.deadline, tables=tables)
            root = dp.run()
        except ParetoAbort:
            return _canonical_front(problem, cost, tol)
    if len(root) == 0:  # cannot happen without pruning; kept for safety
        raise RuntimeError("internal error: the front DP kept no plan")
    objective = root_objective(problem, root.values)
    labels = root.labels[:, 0] if cost == "merges" else root.labels[:, 1]
    order = sorted(range(len(root)), key=lambda t: (int(labels[t]), float(objective[t]), t))
    points: list[FrontPoint] = []
    best = math.inf
    for t in order:
        plan = dp.plan_of(t)
        if points and not math.sqrt(float(objective[t])) < best - tol:
            continue
        ev = evaluate_plan(problem, plan)
        if points and not ev.w2 < best - tol:
            continue
        points.append(FrontPoint(_plan_cost(plan, cost), float(ev.w2), plan, exact))
        best = ev.w2
    return points


def _canonical_front(problem: Problem, cost: str, tol: float) -> list[FrontPoint]:
    """The front of the canonical plans, every point ``exact=False`` (the answer of
    :func:`fidelity_cost_front` when its time budget ends in the range tables or the beam)."""
    plans = list(seed_plans(problem, None))
    return _front_from([_plan_cost(plan, cost) for plan in plans],
                       [evaluate_plan(problem, plan).w2 for plan in plans], plans, tol, False)
