r"""The optimal merge plan: interval dynamic program plus certified branch and bound.

Every node value is bilinear in its children, so :func:`achievable_range` computes, exactly and in
:math:`O(N^3)`, the interval :math:`[S_{\min}, S_{\max}]` of student operators over *all* plans with
``M`` segments (one interval per eigen-direction). For one direction whose goal lies outside it,
the optimum is the nearest extreme and is read off by backtracking. Otherwise (the range
*straddles* the goal, ``docs/theory.md`` §6) or for several directions, :func:`solve` runs a branch and
bound over partial plans whose bounds come from the same tables. It always returns a certificate:
``lower_bound`` :math:`\le W_2^\star \le` ``w2``, and ``exact = True`` when
``w2 - lower_bound <= tol`` with ``tol = atol + rtol * sqrt(sum_i s_i g_i^2)``.

Ties (plans whose W2 agree within ``tol``) are broken in favour of the first plan met in this order:
canonical ``vanilla``, ``boot``, ``cd``, ``pd`` (uniform segments), the DP's extreme plans, then the
search order; a later plan replaces the incumbent only when it is better by more than ``tol``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..objective import PlanEvaluation, Problem, evaluate_plan
from ..plans import CANONICAL_KINDS, MergeNode, Plan, canonical_plan
from .._util import deep_recursion
from ._checks import check_choice, check_flag, check_int, check_node_budget, check_problem, check_time_budget, check_tolerances
from ._kernels import INIT_CODES, find_choice, range_dp
from ._line import estimate_slack_for, run_line_search
from ._search import LineSearch1D, PlanSearch
from ._tolerance import optimality_tolerance, pruning_threshold

__all__ = ["Solution", "range_tables", "achievable_range", "extreme_plan", "solve", "DEFAULT_NODE_BUDGET", "DEFAULT_TIME_BUDGET"]

DEFAULT_NODE_BUDGET = 1_000_000_000
DEFAULT_TIME_BUDGET = 10.0
#: one-direction search engines of :func:`solve`
ENGINES = ("numba", "python")
#: longest holes resolved from sorted value lists (``list_length``)
MAX_LIST_LENGTH = 11
_TABLE_NAMES = ("v_lo", "v_hi", "f_lo", "f_hi", "g_lo", "g_hi")


def _merge_count_range(problem: Problem) -> range:
    n, m = problem.steps, problem.segments
    return range(0, 1) if m == n else range(1, n - m + 1)


def _dp_one(problem: Problem, direction: int, retention: np.ndarray) -> dict:
    jump = problem.jump[direction] if problem.jump is not None else np.zeros((1, 1))
    out = range_dp(
        np.ascontiguousarray(problem.step_values[direction]),
        np.ascontiguousarray(retention[direction]),
        INIT_CODES[problem.model.init],
        np.ascontiguousarray(jump),
        problem.segments,
    )
    return dict(zip(_TABLE_NAMES, out))


def range_tables(problem: Problem) -> dict[str, np.ndarray]:
    r"""Value ranges of trees ``V``, forests ``F`` and segment sequences ``G`` for every direction.

    The interval dynamic program of :mod:`opmerge.solvers._kernels`: every node value is bilinear
    in its children, so the extremes over all subtrees of an interval are attained at corners of
    the children's extremes,

    .. math:: V_{\min}(i, j) = \min_{m,\ c_1 \in \{V^{\pm}(m, j)\},\ R \in \{F^{\pm}(i, m)\}} f(c_1, R),

    and likewise for the maxima, forests and segment sequences (:math:`O(N^3)` in all).

    Parameters
    ----------
    problem : Problem

    Returns
    -------
    dict of str to ndarray
        Arrays with the direction axis first: ``v_lo, v_hi, f_lo, f_hi`` of shape
        ``(d, N + 1, N + 1)`` (entry ``[., i, j]`` for the steps ``j -> i``), ``g_lo, g_hi`` of
        shape ``(d, M + 1, N + 1)``. For ``budget='total'`` the ranges enclose the union over the
        possible merge counts.

    Raises
    ------
    InputTypeError
        When ``problem`` is not a :class:`~opmerge.objective.Problem`.
    """
    return _range_tables(check_problem(problem))


def _range_tables(problem: Problem) -> dict[str, np.ndarray]:
    if problem.model.budget != "total":
        per_direction = [_dp_one(problem, d, problem.retention) for d in range(problem.dim)]
        return {name: np.stack([t[name] for t in per_direction]) for name in _TABLE_NAMES}
    tables: dict = {}
    for count in _merge_count_range(problem):
        retention = problem.retention_for(count)
        per_direction = [_dp_one(problem, d, retention) for d in range(problem.dim)]
        for name in ("v_lo", "f_lo", "g_lo"):
            stacked = np.stack([t[name] for t in per_direction])
            tables[name] = stacked if name not in tables else np.minimum(tables[name], stacked)
        for name in ("v_hi", "f_hi", "g_hi"):
            stacked = np.stack([t[name] for t in per_direction])
            tables[name] = stacked if name not in tables else np.maximum(tables[name], stacked)
    return tables


def achievable_range(problem: Problem, tables: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact :math:`[\min_{\text{plans}} S_i, \max_{\text{plans}} S_i]` per direction.

    .. math:: S_i^- = G_{\min}(M, N)_i, \qquad S_i^+ = G_{\max}(M, N)_i

    Exact for ``budget='per-merge'``; an enclosing interval for ``budget='total'``.

    Parameters
    ----------
    problem : Problem
    tables : dict, optional
        The output of :func:`range_tables` for ``problem`` (computed when omitted).

    Returns
    -------
    lo, hi : (d,) ndarray
        The smallest and largest student value of every direction over all plans with ``M`` segments.

    Raises
    ------
    InputTypeError
        When ``problem`` is not a :class:`~opmerge.objective.Problem`.
    """
    check_problem(problem)
    return _student_range(problem, _range_tables(problem) if tables is None else tables)


def _student_range(problem: Problem, tables: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return tables["g_lo"][:, problem.segments, problem.steps].copy(), tables["g_hi"][:, problem.segments, problem.steps].copy()


def extreme_plan(problem: Problem, direction: int = 0, side: str = "lo", tables: dict[str, np.ndarray] | None = None) -> Plan:
    """A plan attaining the minimum (``side='lo'``) or maximum (``'hi'``) student value of one direction.

    The choices that attain the extremes of :func:`range_tables` are recomputed node by node
    (same arithmetic, so equality is exact) and the plan is rebuilt from the root down.

    Parameters
    ----------
    problem : Problem
        With ``budget='per-merge'`` (for ``'total'`` a node's retention depends on the whole plan).
    direction : int
        Eigen-direction, in ``[0, d - 1]``.
    side : {"lo", "hi"}
    tables : dict, optional
        The output of :func:`range_tables` for ``problem`` (computed when omitted).

    Returns
    -------
    Plan
        A plan with ``M`` segments whose student value of ``direction`` is the end ``side`` of
        :func:`achievable_range`.

    Raises
    ------
    InputError
        For ``budget='total'``, a ``side`` other than ``'lo'``/``'hi'`` or a direction out of range.
    InputTypeError
        When ``problem`` is not a Problem or ``direction`` not an int.
    """
    check_problem(problem)
    if problem.model.budget == "total":
        raise InputError("extreme_plan needs problem.model.budget = 'per-merge' (extreme plans are not read off the DP for 'total')")
    check_choice(side, "side", ("lo", "hi"))
    direction = check_int(direction, "direction", 0, problem.dim - 1)
    return _extreme_plan(problem, direction, side, _range_tables(problem) if tables is None else tables)


def _extreme_plan(problem: Problem, direction: int, side: str, tables: dict[str, np.ndarray]) -> Plan:
    t = tables
    d = direction
    jump = np.ascontiguousarray(problem.jump[d]) if problem.jump is not None else np.zeros((1, 1))
    args = (
        np.ascontiguousarray(problem.step_values[d]), np.ascontiguousarray(problem.retention[d]),
        INIT_CODES[problem.model.init], jump,
        *(np.ascontiguousarray(t[name][d]) for name in _TABLE_NAMES),
    )

    def choice(table, s, k_or_i, j):
        m, bits = find_choice(table, s, k_or_i, j, *args)
        if m == -2:  # cannot happen: the extreme was computed by the same arithmetic
            raise RuntimeError("internal error: no choice attains the DP extreme")
        return int(m), int(bits)

    def tree(i, j, s):
        if j == i + 1:
            return j
        m, bits = choice(0, s, i, j)
        return MergeNode((tree(m, j, bits & 1), *forest(i, m, (bits >> 1) & 1)))

    def forest(i, j, s):
        out = []
        while True:
            if j == i + 1:
                out.append(j)
                return out
            m, bits = choice(1, s, i, j)
            if m < 0:
                out.append(tree(i, j, s))
                return out
            out.append(tree(m, j, bits & 1))
            j, s = m, (bits >> 1) & 1

    with deep_recursion(4 * problem.steps):
        segments = []
        k, j, s = problem.segments, problem.steps, 0 if side == "lo" else 1
        while k > 1:
            m, bits = choice(2, s, k, j)
            segments.append(tree(m, j, bits & 1))
            k, j, s = k - 1, m, (bits >> 1) & 1
        segments.append(tree(0, j, s))
        return Plan(tuple(segments))


@dataclass(frozen=True, eq=False)
class Solution:
    r"""The optimal plan with its certificate.

    Attributes
    ----------
    plan : Plan
    evaluation : PlanEvaluation   (student values, ``S``, ``T``, ``E``, ``w2``)
    w2 : float                    W2 of ``plan``
    lower_bound : float           certified: no plan has W2 below it
    exact : bool                  ``w2 - lower_bound <= tol``
    tol : float
    method : str                  ``"extreme"`` (goal outside the range), ``"search"``, ``"pareto"`` or ``"pareto+search"``
    nodes : int                   branch-and-bound expansions
    student_range : (lo, hi)      achievable ``S`` per direction (see :func:`achievable_range`)
    elapsed : float               seconds
    problem : Problem
    """

    plan: Plan
    evaluation: PlanEvaluation
    w2: float
    lower_bound: float
    exact: bool
    tol: float
    method: str
    nodes: int
    student_range: tuple
    elapsed: float
    problem: Problem = field(repr=False)

    @property
    def gap(self) -> float:
        """``w2 - lower_bound`` (0 when the bound is attained)."""
        return max(0.0, self.w2 - self.lower_bound)

    def to_dict(self) -> dict:
        """JSON-friendly summary (plan in text notation, per-direction lists, certificate, configuration)."""
        ev = self.evaluation
        return {
            "plan": str(self.plan),
            "student": ev.student.tolist(),
            "teacher": ev.teacher.tolist(),
            "exact_flow": ev.exact.tolist(),
            "w2": self.w2,
            "exact": self.exact,
            "lower_bound": self.lower_bound,
            "tolerance": self.tol,
            "method": self.method,
            "nodes": self.nodes,
            "student_range": {"min": self.student_range[0].tolist(), "max": self.student_range[1].tolist()},
            "seconds": self.elapsed,
            "n_merges": self.plan.n_merges,
        }


def _seed_plans(problem: Problem, tables: dict) -> list[Plan]:
    plans = [canonical_plan(kind, problem.steps, problem.segments) for kind in CANONICAL_KINDS]
    if problem.model.budget != "total":
        for d in range(problem.dim):
            for side in ("lo", "hi"):
                plans.append(_extreme_plan(problem, d, side, tables))
    return plans


def solve(
    problem: Problem,
    *,
    node_budget: int = DEFAULT_NODE_BUDGET,
    time_budget: float = DEFAULT_TIME_BUDGET,
    rtol: float | None = None,
    atol: float = 0.0,
    list_length: int = 10,
    engine: str = "numba",
    joint: bool = True,
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
        Seconds (``> 0``; ``inf``: no limit), same effect as ``node_budget``.
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
    if check_flag(joint, "joint") and problem.dim > 1:
        from .pareto import DEFAULT_MAX_FRONT, _solve_joint  # here: the pareto module imports this one

        return _solve_joint(problem, max_front=DEFAULT_MAX_FRONT, node_budget=node_budget, time_budget=time_budget,
                            rtol=rtol, atol=atol)
    return _solve_by_search(problem, node_budget=node_budget, time_budget=time_budget, rtol=rtol, atol=atol,
                            list_length=list_length, engine=engine)


def _solve_by_search(
    problem: Problem, *, node_budget: int, time_budget: float, rtol: float | None, atol: float, list_length: int = 10,
    engine: str = "numba",
) -> Solution:
    """The branch and bound of :func:`solve` (any number of directions), for validated arguments."""
    start = time.perf_counter()
    tables = _range_tables(problem)
    lo, hi = _student_range(problem, tables)
    tol = optimality_tolerance(problem, rtol, atol)

    def tol_sq(best_sq: float) -> float:
        return pruning_threshold(best_sq, tol)

    best_plan, best_eval = None, None
    best_sq = math.inf
    for plan in _seed_plans(problem, tables):
        ev = evaluate_plan(problem, plan)
        if ev.w2 * ev.w2 < tol_sq(best_sq) or best_plan is None:
            best_plan, best_eval, best_sq = plan, ev, ev.w2 * ev.w2

    search_kwargs = dict(
        tables={k: np.ascontiguousarray(np.moveaxis(tables[k], 0, -1)) for k in ("v_lo", "v_hi", "f_lo", "f_hi", "g_lo", "g_hi")},
        step_values=problem.step_values,
        r_lo=_retention_bound(problem, np.minimum),
        r_hi=_retention_bound(problem, np.maximum),
        init_code=INIT_CODES[problem.model.init],
        jump=problem.jump,
        goal=problem.goal,
        scale=problem.scale,
        data_target=problem.target == "data",
        segments=problem.segments,
    )
    search = PlanSearch(**search_kwargs)

    def evaluate_exact(plan):
        ev = evaluate_plan(problem, plan)
        return ev.w2 * ev.w2, plan

    root_bound = search.bound_sq(search.root())
    method = "extreme" if problem.dim == 1 and root_bound >= tol_sq(best_sq) else "search"
    if root_bound >= tol_sq(best_sq):
        # the goal lies outside the achievable range (or an incumbent already attains the bound)
        found_plan, lower_sq, nodes = None, root_bound, 0
    elif problem.dim == 1 and problem.model.budget != "total" and engine != "python":
        found_sq, found_plan, lower_sq, nodes, _complete = run_line_search(
            problem, tables, best_sq, tol, estimate_slack_for(problem), node_budget, start + time_budget, list_length
        )
        if found_plan is None:
            found_sq = best_sq
    else:
        if problem.dim == 1 and problem.model.budget != "total":
            search = LineSearch1D(**search_kwargs, list_length=list_length)
        found_sq, found_plan, lower_sq, nodes, _complete = search.run(best_sq, tol_sq, evaluate_exact, node_budget, time_budget)
    if found_plan is not None:
        found_eval = evaluate_plan(problem, found_plan)
        if found_eval.w2 < best_eval.w2:
            best_plan, best_eval = found_plan, found_eval
    w2 = best_eval.w2
    lower = math.sqrt(max(0.0, min(lower_sq, w2 * w2)))
    return Solution(
        plan=best_plan,
        evaluation=best_eval,
        w2=w2,
        lower_bound=lower,
        exact=bool(w2 - lower <= tol),
        tol=tol,
        method=method,
        nodes=nodes,
        student_range=(lo, hi),
        elapsed=time.perf_counter() - start,
        problem=problem,
    )


def _retention_bound(problem: Problem, reduce) -> np.ndarray:
    if problem.model.budget != "total":
        return np.asarray(problem.retention)
    tables = [problem.retention_for(count) for count in _merge_count_range(problem)]
    out = tables[0]
    for t in tables[1:]:
        out = reduce(out, t)
    return out
