r"""The certified branch and bound over partial plans (any number of directions).

For one direction whose goal lies outside the achievable range (:func:`~opmerge.solvers.tables.achievable_range`)
the optimum is the nearest extreme, already among the seed plans (``method = "extreme"``).
Otherwise (the range *straddles* the goal, ``docs/theory.md`` §6) or for several directions,
:func:`search_plan` runs a branch and bound over partial plans whose bounds come from the same
interval DP tables: the Numba one-direction search (:mod:`~opmerge.solvers._line`, default for one
direction with a per-merge budget), its plain-Python reference (``engine="python"``) or the
general search of :mod:`~opmerge.solvers._search`. It always returns a certificate:
``lower_bound`` :math:`\le W_2^\star \le` ``w2``, and ``exact`` when ``w2 - lower_bound <= tol``.

Called by :func:`opmerge.solvers.solve` (the dispatcher) and by the fallback of
:func:`opmerge.solvers.solve_joint`, with validated arguments, the tables, the seeded incumbent and
the budget of the call.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..laws import LAWS
from ..objective import Problem, evaluate_plan
from ._law_search import LawPlanSearch
from ._control import Budget, Incumbent, optimality_tolerance, seed_incumbent
from ._grouped import GroupedTables, seed_from_bins
from ._kernels import INIT_CODES
from ._line import estimate_slack_for, run_line_search
from ._search import LineSearch1D, PlanSearch
from .solution import Solution, certified_solution
from .tables import ProblemTables, TablesStopped, retention_bound

__all__ = ["search_plan", "seeds_only_solution", "DEFAULT_NODE_BUDGET", "DEFAULT_TIME_BUDGET", "DEFAULT_LIST_LENGTH", "ENGINES", "MAX_LIST_LENGTH"]

DEFAULT_NODE_BUDGET = 1_000_000_000
DEFAULT_TIME_BUDGET = 10.0
#: one-direction search engines of :func:`opmerge.solvers.solve`
ENGINES = ("numba", "python")
#: holes of at most this many steps are resolved from sorted value lists (default of ``list_length``)
DEFAULT_LIST_LENGTH = 10
#: longest holes resolved from sorted value lists (``list_length``)
MAX_LIST_LENGTH = 11


def search_plan(problem: Problem, tables: ProblemTables, incumbent: Incumbent, budget: Budget, *, node_budget: int,
                list_length: int = DEFAULT_LIST_LENGTH, engine: str = "numba") -> Solution:
    r"""The branch and bound of :func:`opmerge.solvers.solve`, for validated arguments.

    Parameters
    ----------
    problem : Problem
    tables : ProblemTables
        The range tables of ``problem``.
    incumbent : Incumbent
        Seeded (:func:`~opmerge.solvers._control.seed_incumbent`); updated in place.
    budget : Budget
        Deadline and progress reports of the call.
    node_budget : int
        Largest number of expansions.
    list_length : int
        One direction: holes of at most this many steps are resolved from sorted value lists.
    engine : {"numba", "python"}

    Returns
    -------
    Solution
        ``method`` is ``"extreme"`` when one direction's goal lies outside its range, else
        ``"search"``.
    """
    last = tables.direction_last()
    search_kwargs = dict(
        tables=last,
        step_values=problem.step_values,
        r_lo=retention_bound(problem, np.minimum),
        r_hi=retention_bound(problem, np.maximum),
        init_code=INIT_CODES[problem.model.init],
        jump=problem.jump,
        goal=problem.goal,
        scale=problem.scale,
        data_target=problem.target == "data",
        segments=problem.segments,
    )
    if problem.model.linear:
        search = PlanSearch(**search_kwargs)
    else:
        search = LawPlanSearch(problem, **search_kwargs)

    def evaluate_exact(plan):
        ev = evaluate_plan(problem, plan)
        return ev.w2 * ev.w2, plan

    best_sq = incumbent.sq
    root_bound = search.bound_sq(search.root())
    method = "extreme" if problem.dim == 1 and root_bound >= incumbent.threshold() else "search"
    if root_bound >= incumbent.threshold():
        # the goal lies outside the achievable range (or an incumbent already attains the bound)
        found_plan, lower_sq, nodes, complete = None, root_bound, 0, True
    elif not problem.model.linear:  # sign, adam: the general search with the law's node enclosures
        _found_sq, found_plan, lower_sq, nodes, complete = search.run(best_sq, incumbent.threshold_for, evaluate_exact,
                                                                       node_budget, budget)
    elif problem.dim == 1 and problem.model.budget != "total" and engine != "python":
        _found_sq, found_plan, lower_sq, nodes, complete = run_line_search(
            problem, tables.direction(0), best_sq, incumbent.search_tol, estimate_slack_for(problem), node_budget, budget, list_length
        )
    else:
        if problem.dim == 1 and problem.model.budget != "total":
            search = LineSearch1D(**search_kwargs, list_length=list_length)
        _found_sq, found_plan, lower_sq, nodes, complete = search.run(best_sq, incumbent.threshold_for, evaluate_exact,
                                                                       node_budget, budget)
    if found_plan is not None:
        found_eval = evaluate_plan(problem, found_plan)
        if found_eval.w2 < incumbent.w2:
            incumbent.take(found_plan, found_eval)
    w2 = incumbent.w2
    lower = math.sqrt(max(0.0, min(lower_sq, w2 * w2)))
    return certified_solution(incumbent.plan, incumbent.evaluation, lower, incumbent.tol, method, nodes, (tables.lo, tables.hi),
                              budget.elapsed(), problem, stopped=not complete, certified=LAWS[problem.model.training].exact_solver)


def seeds_only_solution(problem: Problem, incumbent: Incumbent, budget: Budget) -> Solution:
    r"""The answer of a solver whose time budget ran out while the range tables were built.

    The best of the canonical plans (``vanilla``, ``boot``, ``cd``, ``pd``, offered to
    ``incumbent`` before the tables; the extreme plans need the tables), uncertified:
    ``lower_bound = 0`` (always valid), ``stopped = True``, ``method = "seeds"`` and an unknown
    achievable range (``-inf``, ``inf`` per direction); ``exact`` follows from these numbers
    (true only when the seed's :math:`W_2 \le` ``tol``).

    Parameters
    ----------
    problem : Problem
    incumbent : Incumbent
        Seeded with the canonical plans (:func:`~opmerge.solvers._control.seed_incumbent` with
        ``tables=None``).
    budget : Budget
        The budget of the call (for ``elapsed``).

    Returns
    -------
    Solution
    """
    unknown = (np.full(problem.dim, -np.inf), np.full(problem.dim, np.inf))
    return certified_solution(incumbent.plan, incumbent.evaluation, 0.0, incumbent.tol, "seeds", 0, unknown,
                              budget.elapsed(), problem, stopped=True)


def solve_with_tables(problem: Problem, rtol, atol, budget: Budget,
                      search: Callable[[ProblemTables, Incumbent], Solution], groups: int | None = None) -> Solution:
    r"""The steps every certified solve takes around its search, under one ``budget``.

    1. the canonical seed plans (they need no tables);
    2. the range tables, built under the deadline; when it passes during them, the answer is
       :func:`seeds_only_solution`;
    3. the extreme seed plans (they need the tables);
    4. ``search(tables, incumbent)``;

    and the budget's final report (:meth:`~opmerge.solvers._control.Budget.finish`).

    Parameters
    ----------
    problem : Problem
    rtol, atol : float or None
        Validated tolerances (:func:`~opmerge.solvers._control.optimality_tolerance`).
    budget : Budget
    search : callable
        The search phase: :func:`search_plan` or :func:`~opmerge.solvers.pareto.joint_plan`
        with its other arguments bound.
    groups : int, optional
        Bound the directions in this many groups (:mod:`opmerge.solvers._grouped`): the tables
        are :class:`~opmerge.solvers._grouped.GroupedTables` and step 3 is the greedy plans of
        binned problems instead of the extreme plans (``search`` must be ``joint_plan``;
        :func:`~opmerge.solvers._grouped.seed_from_bins`).

    Returns
    -------
    Solution
    """
    incumbent = seed_incumbent(problem, None, optimality_tolerance(problem, rtol, atol), budget)
    try:
        tables = ProblemTables(problem, budget=budget) if groups is None else GroupedTables(problem, groups, budget)
    except TablesStopped:
        solution = seeds_only_solution(problem, incumbent, budget)
    else:
        if groups is None:
            seed_incumbent(problem, tables, incumbent.tol, budget, start=incumbent)
        else:
            seed_from_bins(problem, incumbent, budget)
            budget.note(incumbent=incumbent.w2)
        solution = search(tables, incumbent)
    budget.finish(solution.w2, solution.lower_bound, solution.nodes)
    return solution

