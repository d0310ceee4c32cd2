r"""The joint optimal plan for several eigen-directions: a pruned Pareto dynamic program.

Why the interval DP does not simply extend
------------------------------------------
For one direction the extremes of every interval's value set are enough (``_kernels.range_dp``).
For ``d`` directions the root objective :math:`W_2^2 = \sum_i s_i (S_i - g_i)^2` couples them:
a subtree that is worse for one direction may be better for another. The dynamic program below
keeps, for every interval, a *front* of value vectors (one per surviving subtree), and discards a
vector only when it provably cannot be part of a better plan.

Context of a position
---------------------
Fix a position in a plan (a tree over ``j -> i``, a forest over ``j -> i`` used as the rest of a
node or as the tail of a longer forest, or a run of ``k`` segments) and everything outside it
(its *context*). Every node value is affine in each child and a forest is a product, so the
student value at the root is affine in the value :math:`x` of that position:

.. math:: S_i = \alpha_i + \beta_i\, x_i .

When every teacher step is :math:`\ge 0`, every retention lies in :math:`[0, 1]` and the initial
value :math:`a_0` of the non-warm inits is :math:`\ge 0` (checked: :func:`pareto_applicable`),
every value is :math:`\ge 0`, nodes are non-decreasing in their children and
:math:`\alpha_i, \beta_i \ge 0`. A top-down pass (:func:`~opmerge.solvers._pareto_kernels.context_bounds`) bounds
:math:`\alpha_i \in [A^-_i, A^+_i]` and :math:`\beta_i \in [B^-_i, B^+_i]` over all contexts of
every position, composing the local affine maps of ``docs/theory.md`` §4 with the exact value ranges of the
interval DP; it skips contexts that already cannot beat the incumbent (their bound, below, is
above the threshold), and clips with :math:`\alpha_i \le S^+_i` and
:math:`\beta_i \le (S^+_i - A^-_i)/x^-_i`, where :math:`[S^-_i, S^+_i]` is the achievable range.

Pruning by bound
----------------
A candidate value vector :math:`x` of a position gives
:math:`S_i \in [A^-_i + B^-_i x_i,\ A^+_i + B^+_i x_i] \cap [S^-_i, S^+_i]`, so

.. math:: \mathrm{LB}^2(x) = \sum_i s_i\, \mathrm{dist}\big(g_i, [\cdot]\big)^2 \le W_2^2

for every plan that uses :math:`x` there; candidates with :math:`\mathrm{LB}^2 \ge \theta`, with
:math:`\theta = (W_2^{\text{incumbent}} - \mathrm{tol})^2`, are dropped.

Dominance
---------
Two candidates :math:`u, v` of the same position, in the same context, give root values that
differ by :math:`S_i(u) - S_i(v) = \beta_i \Delta_i` with :math:`\Delta = u - v`, so

.. math::
   W_2^2(u) - W_2^2(v) = \sum_i s_i \beta_i \Delta_i\,\big(2(\alpha_i - g_i) + \beta_i (u_i + v_i)\big)
   \le \sum_i \min\big(\text{box}_i,\ \text{range}_i\big),

where :math:`\text{box}_i` maximises the term over :math:`(\alpha_i, \beta_i)` in the context box
(closed form: linear in :math:`\alpha`, convex quadratic in :math:`\beta`) and
:math:`\text{range}_i = s_i \max \{ x y \}` over :math:`x \in \beta\Delta_i`,
:math:`y \in [2(S^-_i - g_i), 2(S^+_i - g_i)]` (both root values are achievable). When the sum
is :math:`\le 0`, replacing :math:`v` by :math:`u` never increases :math:`W_2` in any context:
:math:`v` is dropped. For a direction whose goal lies outside the achievable range (*one-sided*:
larger, or smaller, is better) the bound of a coordinate that moves the right way is
:math:`\le 0`, so this contains ordinary Pareto dominance with each direction oriented by its
side; it also handles *two-sided* directions (goal inside the range) exactly, trading their
possible loss against the certain gains elsewhere. The relation "never worse in any context" is
a preorder, so the fronts may be filtered in any order.

Exactness
---------
By induction over the intervals (bottom-up replacement of subtrees, each never increasing
:math:`W_2`): every plan with :math:`W_2^2 < \theta` has a plan built from front vectors that is
at least as good and survives to the root. Hence, when the DP completes,
:math:`W_2^\star \ge \min(\min_{\text{root front}} W_2, \sqrt{\theta})`, and the returned
plan (best root vector, or the incumbent) is optimal within ``tol``. The certificate does not
depend on the floating-point evaluation beyond ``tol`` (plan values are recomputed with
:func:`~opmerge.objective.evaluate_plan`, bit-identical to the DP: same association).

When the path does not apply (negative values, ``budget='total'``) or a front exceeds
``max_front``, the candidate count exceeds ``node_budget`` or the time runs out,
:func:`solve_joint` falls back to the branch and bound of :func:`opmerge.solvers.exact.solve`
and returns its certificate, raised by the sum of the per-direction optima (see
:func:`per_direction_bound`).

Where the code lives
--------------------
This module holds the public solvers, :func:`solve_joint` and :func:`per_direction_bound`, and
:func:`pareto_applicable`; the front dynamic program is
:class:`~opmerge.solvers._pareto_dp.ParetoDP`, its Numba kernels (``context_bounds``,
``combine_candidates``, ``dominates``, ``merge_fronts``) are in
:mod:`opmerge.solvers._pareto_kernels` and their plain-Python references in
:mod:`opmerge.solvers._reference` (private modules: their signatures may change).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..objective import Problem, evaluate_plan
from ._interrupts import interruptible
from ._checks import (check_groups, check_int, check_node_budget, check_problem, check_progress, check_tables,
                      check_time_budget, check_tolerances)
from ._control import Budget, Incumbent, optimality_tolerance, seed_incumbent
from ._pareto_dp import ParetoAbort, ParetoDP, pareto_applicable, root_objective
from .exact import DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET, search_plan, solve_with_tables
from .progress import ProgressCallback
from .solution import Solution, certified_solution
from ._grouped import use_groups
from .tables import ProblemTables, TablesStopped, check_table_size

__all__ = ["solve_joint", "per_direction_bound", "pareto_applicable", "PARETO_METHODS", "DEFAULT_MAX_FRONT"]

PARETO_METHODS = ("pareto", "search", "pareto+search")
#: largest front (value vectors of one interval) of :func:`solve_joint` before the DP gives up
DEFAULT_MAX_FRONT = 20000
#: share of ``time_budget`` given to the Pareto DP attempts before the branch and bound takes over
_PARETO_SHARE = 0.85
#: share of ``time_budget`` for the first attempt (threshold: incumbent - tol)
_FIRST_SHARE = 0.4
#: first bisection point between the certified bound and the incumbent (fraction of the gap in W2^2)
_BISECT_START = 0.25



@interruptible
def per_direction_bound(problem: Problem, tables: dict[str, np.ndarray] | None = None, *,
                        time_budget: float = 2.0) -> tuple[float, np.ndarray]:
    r"""Certified lower bound :math:`\sqrt{\sum_i (W_{2,i}^\star)^2}` from the directions alone.

    :math:`W_{2,i}^\star` is the optimum of direction ``i`` alone (a one-direction problem with
    weight :math:`\omega_i`); since the joint objective is the sum of the per-direction terms,
    :math:`\sum_i (W_{2,i}^\star)^2 \le (W_2^\star)^2`. For a direction whose goal lies outside its
    achievable range the optimum is the distance to the nearest end (exact, closed form); for a
    straddling direction the one-direction :func:`~opmerge.solvers.exact.solve` gives it (its
    certified ``lower_bound``), one direction after the other while ``time_budget`` seconds last
    (a one-direction search has a start-up cost and may overrun its share); directions not reached
    keep the valid bound 0.

    Parameters
    ----------
    problem : Problem
    tables : dict, optional
        The output of :func:`~opmerge.solvers.exact.range_tables` for ``problem`` (computed when omitted).
    time_budget : float
        Seconds (``> 0``) for the range tables (when not given) and the one-direction searches of
        the straddling directions; when it ends during the tables the bound is 0.

    Returns
    -------
    bound : float
    per_direction : (d,) ndarray
        The per-direction lower bounds :math:`W_{2,i}`.

    Raises
    ------
    InputError, InputTypeError
        When ``problem`` is not a Problem, ``tables`` is not the output of
        :func:`~opmerge.solvers.range_tables` for it or ``time_budget`` is not a number ``> 0``.
    """
    check_problem(problem)
    time_budget = check_time_budget(time_budget)
    tables = check_tables(tables, problem)
    budget = Budget(time_budget, DEFAULT_NODE_BUDGET)
    try:
        problem_tables = ProblemTables(problem, tables, budget=budget)
    except TablesStopped:
        return 0.0, np.zeros(problem.dim)  # the time ran out while the range tables were built: 0 is valid
    return _per_direction_bound(problem, problem_tables, budget.deadline)


def _per_direction_bound(problem: Problem, tables: ProblemTables, deadline: float,
                         budget: Budget | None = None) -> tuple[float, np.ndarray]:
    """:func:`per_direction_bound` for validated arguments; the one-direction searches stop at
    ``deadline``; ``budget`` (of the calling solver) is told the progress between directions."""
    lo, hi = tables.lo, tables.hi
    if problem.target == "data":
        a_lo = np.where(lo >= 0, lo, np.where(hi <= 0, -hi, 0.0))
        a_hi = np.maximum(np.abs(lo), np.abs(hi))
        lo, hi = a_lo, a_hi
    dist = np.maximum(0.0, np.maximum(lo - problem.goal, problem.goal - hi))
    per = np.sqrt(problem.scale) * dist
    straddle = np.nonzero((dist == 0.0) & (problem.scale > 0))[0]
    for k in straddle:
        left = deadline - time.perf_counter()
        if left <= 0:
            break  # the bound 0 stays valid for the directions not solved
        if budget is not None:
            budget.report("bound")
        one = Problem(
            problem.schedule, lam=[float(problem.lam[k])], weights=[float(problem.weights[k])], model=problem.model,
            solver=problem.solver, target=problem.target, segments=problem.segments,
        )
        one_budget = Budget(left, DEFAULT_NODE_BUDGET)
        try:
            one_tables = ProblemTables(one, budget=one_budget)
        except TablesStopped:
            break  # the bound 0 stays valid for the directions not solved
        incumbent = seed_incumbent(one, one_tables, optimality_tolerance(one, None, 0.0), one_budget)
        per[k] = search_plan(one, one_tables, incumbent, one_budget, node_budget=DEFAULT_NODE_BUDGET, list_length=6).lower_bound
    return float(math.sqrt(float(np.sum(per**2)))), per


@interruptible
def solve_joint(
    problem: Problem,
    *,
    max_front: int = DEFAULT_MAX_FRONT,
    node_budget: int = DEFAULT_NODE_BUDGET,
    time_budget: float = DEFAULT_TIME_BUDGET,
    rtol: float | None = None,
    atol: float = 0.0,
    progress: ProgressCallback | None = None,
    groups: int | str | None = "auto",
) -> Solution:
    r"""The plan with ``M`` segments minimising :math:`W_2 = \sqrt{\sum_i s_i (S_i - g_i)^2}` over all
    directions jointly, with a certificate.

    Method (``Solution.method``):

    * ``"pareto"``: a run of the pruned Pareto dynamic program of this module completed and settled
      the question; the plan is optimal within ``tol`` (``exact=True``).
    * ``"search"``: the Pareto path does not apply (:func:`pareto_applicable`); the branch and
      bound of :func:`~opmerge.solvers.exact.solve` ran.
    * ``"pareto+search"``: the Pareto runs did not settle it within their share of the budget and
      the branch and bound ran with the rest.

    Runs of the DP. The first uses the threshold :math:`\theta = (W_2^{\text{inc}} - \mathrm{tol})^2`
    of the incumbent (best seed plan of :func:`~opmerge.solvers.exact.solve`), with up to 40 % of
    ``time_budget``. When it stops early (a front above ``max_front``, more than ``node_budget``
    candidates, or its time share spent), the DP is rerun with thresholds
    :math:`\theta' = L + f\,(\theta - L)` between a certified bound :math:`L` (first
    :func:`per_direction_bound` squared) and :math:`\theta`, starting at ``f = 1/4``: a lower
    threshold prunes more, so the run is cheaper. A run that completes with an empty root proves
    :math:`W_2^{\star 2} \ge \theta'` (``L`` rises, ``f`` doubles); one that completes with a root
    vector has found the optimum (every plan below :math:`\theta'` is matched by a root vector);
    one that stops early divides ``f`` by 4. These runs share 85 % of ``time_budget``; the branch
    and bound gets the rest (at least 15 %; the total can overrun by that much, plus the branch and
    bound's own overrun).

    ``lower_bound`` is always certified: for ``"pareto"`` the optimum within ``tol``; otherwise the
    largest of :math:`\sqrt{L}`, the branch-and-bound bound and :func:`per_direction_bound`
    (never above ``w2``).

    Parameters
    ----------
    problem : Problem
    max_front : int
        Largest front (value vectors kept for one interval) before the DP gives up (``>= 1``).
    node_budget : int
        Largest number of candidate vectors the DP may generate; also the branch-and-bound budget
        (``>= 1``).
    time_budget : float
        Seconds (``> 0``; the DP checks the clock between batches of candidates).
    rtol, atol : float
        ``tol = atol + rtol * sqrt(sum_i s_i g_i^2)`` (finite, ``>= 0``); ``rtol=None`` is
        ``64 N eps`` as in :func:`~opmerge.solvers.exact.solve`.
    groups : "auto", int or None
        Bound the directions in at most this many groups (:mod:`opmerge.solvers._grouped`): the
        ranges and contexts of the DP are kept per group (enclosing each member's), the candidates
        and the certificate per direction, so the answer is still exact for the full problem while
        memory and the context pass shrink from ``d`` to ``groups`` slots. ``"auto"`` (default):
        from 1,024 directions on, ``d / 6`` groups within ``[256, 1024]``
        (:func:`~opmerge.solvers._grouped.auto_groups`); ``None``: one slot per direction. Used
        only where the Pareto path applies; a grouped run that cannot settle the question within
        the budget ends uncertified (``stopped``) with its certified bound, without the branch and bound.

    Returns
    -------
    Solution
        ``nodes`` counts candidate vectors generated by the DP (plus branch-and-bound expansions).

    Raises
    ------
    InputError
        When a budget, ``max_front`` or a tolerance is out of range.
    InputTypeError
        When ``problem`` is not a Problem or an argument has the wrong type.
    """
    check_problem(problem)
    max_front = check_int(max_front, "max_front", 1)
    node_budget = check_node_budget(node_budget)
    time_budget = check_time_budget(time_budget)
    check_tolerances(rtol, atol)
    check_progress(progress)
    n_groups = use_groups(problem, check_groups(groups))
    if n_groups is None:
        check_table_size(problem)
    budget = Budget(time_budget, node_budget, progress)
    return solve_with_tables(problem, rtol, atol, budget, lambda tables, incumbent: joint_plan(
        problem, tables, incumbent, budget, max_front=max_front, node_budget=node_budget), groups=n_groups)


def joint_plan(problem: Problem, tables: ProblemTables, incumbent: Incumbent, budget: Budget, *, max_front: int,
               node_budget: int) -> Solution:
    """:func:`solve_joint` for validated arguments, the tables, the seeded incumbent and the budget of the call
    (also called by :func:`opmerge.solvers.solve`)."""
    start = budget.start
    time_budget = budget.time_budget
    tol = incumbent.tol
    lo, hi = tables.lo, tables.hi
    tol_sq = incumbent.threshold_for
    # incumbent: the seeds of solve() in the same order and with the same tie rule
    seeds = incumbent.copy()
    best_plan, best_eval, best_sq = seeds.plan, seeds.evaluation, seeds.sq

    applicable, _why = pareto_applicable(problem)
    nodes = 0
    lower_sq = 0.0  # certified: no plan has W2^2 below it
    direction_bound = None
    if applicable:
        budget_s = float(time_budget)
        phase_end = start + _PARETO_SHARE * budget_s
        fraction = 1.0
        first = True
        while nodes < node_budget:
            target = tol_sq(best_sq)
            if fraction >= 1.0 or target <= lower_sq:
                theta, full = target, True
            else:
                theta, full = lower_sq + fraction * (target - lower_sq), False
            now = time.perf_counter()
            if now >= phase_end:
                break
            deadline = start + _FIRST_SHARE * budget_s if first else now + 0.5 * (phase_end - now)
            budget.nodes = nodes
            dp = ParetoDP(problem, theta, max_front=int(max_front), node_budget=int(node_budget) - nodes,
                          deadline=min(deadline, phase_end), tables=tables, budget=budget)
            try:
                root = dp.run()
            except ParetoAbort:
                root = None
            nodes += dp.candidates
            if root is not None and len(root):
                # every plan with W2^2 < theta is matched by a root vector: the best one is the optimum
                objective = root_objective(problem, root.values)
                index = int(np.argmin(objective))
                plan = dp.plan_of(index)
                ev = evaluate_plan(problem, plan)
                if ev.w2 * ev.w2 < best_sq:
                    best_plan, best_eval, best_sq = plan, ev, ev.w2 * ev.w2
                lower = min(math.sqrt(float(objective[index])), best_eval.w2)
                return certified_solution(best_plan, best_eval, lower, tol, "pareto", nodes, (lo, hi),
                                          time.perf_counter() - start, problem)
            if root is not None and full:
                # no plan beats the incumbent by more than tol
                w2 = best_eval.w2
                return certified_solution(best_plan, best_eval, min(max(w2 - incumbent.search_tol, 0.0), w2), tol, "pareto", nodes,
                                          (lo, hi), time.perf_counter() - start, problem)
            if first:
                # the full threshold was too hard: bisect between a certified bound and the incumbent
                direction_bound, _ = _per_direction_bound(problem, tables, _bound_deadline(budget, budget_s), budget)
                lower_sq = max(lower_sq, direction_bound * direction_bound)
                budget.note(bound=math.sqrt(lower_sq))
                fraction = _BISECT_START
                first = False
                continue
            if root is not None:
                lower_sq = max(lower_sq, theta)  # completed with nothing below theta
                budget.note(bound=math.sqrt(lower_sq))
                fraction = min(1.0, 2.0 * fraction)
            else:
                fraction /= 4.0
                if fraction < 1e-4:
                    break
    # fallback: branch and bound with the rest of the time
    if direction_bound is None:
        direction_bound, _ = _per_direction_bound(problem, tables, _bound_deadline(budget, float(time_budget)), budget)
    budget.nodes = nodes
    budget.note(bound=max(direction_bound, math.sqrt(lower_sq)))
    if getattr(tables, "grouped", False):
        # the branch and bound needs every direction's tables, which the grouped solver never holds
        w2 = best_eval.w2
        lower = min(max(direction_bound, math.sqrt(lower_sq)), w2)
        return certified_solution(best_plan, best_eval, lower, tol, "pareto", nodes, (lo, hi), time.perf_counter() - start,
                                  problem, stopped=True)
    search = search_plan(problem, tables, seeds.copy(), budget, node_budget=node_budget)
    if search.w2 * search.w2 < tol_sq(best_sq):
        best_plan, best_eval = search.plan, search.evaluation
    w2 = best_eval.w2
    lower = min(max(search.lower_bound, direction_bound, math.sqrt(lower_sq)), w2)
    return certified_solution(best_plan, best_eval, lower, tol, "pareto+search" if applicable else "search",
                              nodes + search.nodes, (lo, hi), time.perf_counter() - start, problem,
                              stopped=search.stopped)


def _bound_deadline(budget: Budget, seconds: float) -> float:
    """Deadline of :func:`per_direction_bound` inside :func:`joint_plan`: ``min(1 s, 5 %)`` of the budget, within it."""
    return min(budget.deadline, time.perf_counter() + min(1.0, 0.05 * seconds))
