r"""The optimal merge plan: one entry point, :func:`solve`, that validates and dispatches.

:func:`solve` checks its arguments once, starts the budget of the call (its deadline covers
everything that follows), builds the interval DP tables once (:class:`~opmerge.solvers.tables.ProblemTables`),
seeds the incumbent with the canonical and extreme plans (:func:`~opmerge.solvers._control.seed_incumbent`),
then runs

* one direction (or ``joint=False``): the certified branch and bound of
  :func:`opmerge.solvers.exact.search_plan` (``method`` ``"extreme"`` or ``"search"``);
* several directions: the Pareto dynamic program of :func:`opmerge.solvers.pareto.joint_plan`, with
  the branch and bound as its fallback (``"pareto"``, ``"search"``, ``"pareto+search"``).

It always returns a certificate: ``lower_bound`` :math:`\le W_2^\star \le` ``w2``, and
``exact = (w2 - lower_bound <= tol)`` (:mod:`opmerge.solvers.solution`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import IndistinguishablePlansWarning
from ..objective import Problem
from ..plans import count_plans
from ._interrupts import interruptible
from ._checks import (check_choice, check_flag, check_groups, check_int, check_node_budget, check_problem, check_progress,
                      check_time_budget, check_tolerances)
from ._warmup import compile_kernels
from ._control import Budget
from .exact import (DEFAULT_LIST_LENGTH, DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET, ENGINES, MAX_LIST_LENGTH, search_plan,
                    solve_with_tables)
from ._grouped import use_groups
from .pareto import DEFAULT_MAX_FRONT, joint_plan
from .progress import ProgressCallback
from .solution import Solution
from .tables import check_table_size

__all__ = ["solve"]


@interruptible
def solve(
    problem: Problem,
    *,
    node_budget: int = DEFAULT_NODE_BUDGET,
    time_budget: float = DEFAULT_TIME_BUDGET,
    rtol: float | None = None,
    atol: float = 0.0,
    list_length: int = DEFAULT_LIST_LENGTH,
    engine: str = "numba",
    joint: bool = True,
    progress: ProgressCallback | None = None,
    groups: int | str | None = "auto",
) -> Solution:
    r"""Find the plan with ``M`` segments that minimises :math:`W_2` (``docs/theory.md`` §5), with a certificate.

    .. math:: W_2^2 = \sum_i s_i\, (S_i - g_i)^2, \qquad
              \texttt{lower\_bound} \le W_2^\star \le \texttt{w2}

    Parameters
    ----------
    problem : Problem
    node_budget : int
        Maximum branch-and-bound expansions (an int ``>= 1``); when exhausted the best plan found
        is returned with ``exact=False`` and a certified ``lower_bound``.
    time_budget : float
        Seconds (``> 0``; ``inf``: no limit) for the whole call: the range tables, the seed plans and
        every search phase. When it runs out the best plan found is returned with a certified
        ``lower_bound`` (``exact`` then says whether the gap is within ``tol``).
    rtol, atol : float
        Optimality tolerance on W2 (finite, ``>= 0``): ``tol = atol + rtol * sqrt(sum_i s_i g_i^2)``.
        The default ``rtol = 64 N eps`` is a safe multiple of the floating-point resolution of
        :math:`S` itself (each of the :math:`\le N - 1` merge nodes adds a few roundings of
        relative size ``eps``), so plans closer than ``tol`` cannot be told apart by evaluating them.
    list_length : int
        One-direction search, in ``[1, 11]``: holes of at most this many steps are resolved from
        sorted lists of all their values (sizes grow like :math:`5.8^{L}`: up to 309,147 entries
        for 10 steps; shortened automatically so that all lists together stay below 12 million
        entries).
    engine : {"numba", "python"}
        One-direction search: the Numba kernel (default) or its plain-Python reference.
    joint : bool
        Several directions: use the Pareto dynamic program of :func:`opmerge.solvers.pareto.solve_joint`
        (default), which falls back to this branch and bound with a certified bound.
    progress : callable, optional
        Called with a :class:`~opmerge.solvers.progress.Progress` (phase, elapsed seconds, nodes,
        incumbent, bound) at most every 0.5 s while the search runs, and once with
        ``phase="done"`` at the end if it was called before; :func:`~opmerge.solvers.stderr_progress`
        prints one status line on standard error.
    groups : "auto", int or None
        Several directions on the Pareto path: bound them in groups (see
        :func:`~opmerge.solvers.pareto.solve_joint`); ``"auto"`` groups from 1,024 directions on.

    Returns
    -------
    Solution

    Raises
    ------
    InputError
        When a budget, tolerance, ``list_length`` or ``engine`` is out of range.
    InputTypeError
        When ``problem`` is not a Problem or an argument has the wrong type.
    """
    check_problem(problem)
    node_budget = check_node_budget(node_budget)
    time_budget = check_time_budget(time_budget)
    check_tolerances(rtol, atol)
    list_length = check_int(list_length, "list_length", 1, MAX_LIST_LENGTH)
    check_choice(engine, "engine", ENGINES)
    joint = check_flag(joint, "joint")
    check_progress(progress)
    n_groups = use_groups(problem, check_groups(groups)) if joint and problem.dim > 1 else None
    if n_groups is None:
        check_table_size(problem)  # before the warm-up: refuse a problem too large at once
    if math.isfinite(time_budget):
        compile_kernels(solve)  # compilation is start-up, not part of the budget (none without a limit)
    budget = Budget(time_budget, node_budget, progress)
    if joint and problem.dim > 1 and problem.model.linear:
        def search(tables, incumbent):
            return joint_plan(problem, tables, incumbent, budget, max_front=DEFAULT_MAX_FRONT, node_budget=node_budget)
    else:
        def search(tables, incumbent):
            return search_plan(problem, tables, incumbent, budget, node_budget=node_budget, list_length=list_length, engine=engine)
    solution = solve_with_tables(problem, rtol, atol, budget, search, groups=n_groups)
    warn_if_indistinguishable(solution)
    return solution


def warn_if_indistinguishable(solution: Solution) -> None:
    r"""Warn (:class:`~opmerge.errors.IndistinguishablePlansWarning`) when plans cannot be told apart,
    though more than one plan exists: every plan's :math:`W_2` lies within the solver's tolerance
    of the optimum's (the achievable range of the student values is that narrow), or the optimum
    reaches 0 (every ratio to it is infinite). Node floors (docs/theory.md §9.7) separate plans
    too, so with non-zero floors only the second test applies.

    .. math:: \sqrt{\textstyle\sum_i s_i (S_i^+ - S_i^-)^2} \le \texttt{tol}
              \quad\text{or}\quad W_2^\star \le \texttt{tol}
    """
    problem = solution.problem
    if count_plans(problem.steps, problem.segments) <= 1:
        return
    lo, hi = solution.student_range
    # no plan's W2 differs from the optimum's by more than this (|S| moves no more than S)
    spread = float(np.sqrt(np.sum(problem.scale * (np.asarray(hi) - np.asarray(lo)) ** 2)))
    floors = problem.floor is not None and bool(np.any(problem.floor > 0))  # node floors also separate plans
    if spread <= solution.tol and not floors:
        what = (f"every plan has W2 = {solution.w2:.3g} within tol = {solution.tol:.3g} (the achievable student "
                f"values span {spread:.3g} in W2)")
    elif solution.w2 <= solution.tol:
        what = (f"the optimum reproduces the teacher (W2 = {solution.w2:.3g} <= tol = {solution.tol:.3g}), so every "
                "ratio W2 / W2_opt is infinite and a ranking only says which plans converge")
    else:
        return
    warnings.warn(
        f"plans cannot be told apart: {what}; the training budget drives nodes to their targets "
        f"(schedule {problem.schedule.name}, training {problem.model.training}, input scaling {problem.model.input_scaling}). "
        "Use a smaller budget (eta_tau, or lr * gd_steps) or input_scaling='preconditioned'",
        IndistinguishablePlansWarning, stacklevel=3)
