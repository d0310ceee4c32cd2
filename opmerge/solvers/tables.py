r"""The interval dynamic program's value ranges, the achievable range and extreme plans.

Every node value is bilinear in its children, so :func:`range_tables` computes, exactly and in
:math:`O(N^3)` per direction, the smallest and largest value of every tree, forest and sequence of
segments over every interval (Numba kernel :func:`opmerge.solvers._kernels.range_dp`);
:func:`achievable_range` reads off the interval :math:`[S_{\min}, S_{\max}]` of student operators
over *all* plans with ``M`` segments, and :func:`extreme_plan` rebuilds a plan attaining one end.

The solvers build the tables once per problem (:class:`ProblemTables`, which also holds the
direction-last copies their kernels read) and pass them down.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..objective import Problem
from ..plans import MergeNode, Plan
from .._util import deep_recursion
from ._checks import check_choice, check_int, check_problem
from ._kernels import INIT_CODES, find_choice, range_dp

__all__ = ["range_tables", "achievable_range", "extreme_plan", "ProblemTables", "TABLE_NAMES"]

#: names of the six tables, in the order :func:`~opmerge.solvers._kernels.range_dp` returns them
TABLE_NAMES = ("v_lo", "v_hi", "f_lo", "f_hi", "g_lo", "g_hi")
_TABLE_NAMES = TABLE_NAMES


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
        return _stack(_per_direction_tables(problem), 0)
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


def _per_direction_tables(problem: Problem, report=None) -> list[dict[str, np.ndarray]]:
    """The six tables of every direction (``budget='per-merge'``), one dict per direction;
    ``report()`` (optional) is called before each direction (progress reports)."""
    out = []
    for d in range(problem.dim):
        if report is not None:
            report()
        out.append(_dp_one(problem, d, problem.retention))
    return out


def _stack(per_direction: list[dict[str, np.ndarray]], axis: int) -> dict[str, np.ndarray]:
    return {name: np.stack([t[name] for t in per_direction], axis=axis) for name in _TABLE_NAMES}


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
    one = {name: tables[name][direction] for name in _TABLE_NAMES}
    return plan_from_shape(extreme_shape(problem, direction, side, one))


def extreme_shape(problem: Problem, direction: int, side: str, tables: dict[str, np.ndarray]) -> tuple:
    """The extreme plan of :func:`extreme_plan` as nested tuples (a leaf is its step ``n``, a merge
    node the tuple of its children; one entry per segment, noise side first): cheap to build and
    to compare, so that solvers build each distinct plan once. ``tables``: the six tables of
    ``direction`` alone (:meth:`ProblemTables.direction`)."""
    t = tables
    d = direction
    jump = np.ascontiguousarray(problem.jump[d]) if problem.jump is not None else np.zeros((1, 1))
    args = (
        np.ascontiguousarray(problem.step_values[d]), np.ascontiguousarray(problem.retention[d]),
        INIT_CODES[problem.model.init], jump,
        *(np.ascontiguousarray(t[name]) for name in _TABLE_NAMES),
    )

    def choose(kind, a, j, s):
        m, bits = find_choice(kind, s, a, j, *args)
        if m == -2:  # cannot happen: the extreme was computed by the same arithmetic
            raise RuntimeError("internal error: no choice attains the DP extreme")
        # a forest that is one tree (m = -1) keeps the extreme s of the forest
        return int(m), s if m < 0 else int(bits) & 1, (int(bits) >> 1) & 1

    return rebuild_shape(choose, problem.steps, problem.segments, 0 if side == "lo" else 1)


def rebuild_shape(choose, steps: int, segments: int, state) -> tuple:
    """The plan a dynamic program chose, as nested tuples (as :func:`extreme_shape` makes them).

    Parameters
    ----------
    choose : callable
        ``choose(kind, a, j, state) -> (m, first, rest)``: the choice made for the trees
        (``kind`` 0) or forests (1) over ``j -> a`` or the ``a`` segments (2) over ``j -> 0`` at
        ``state``: the split ``m`` and the states of the first part (a tree over ``j -> m``) and of
        the rest; a forest that is one tree has ``m < 0``, its tree the state ``first``.
    steps, segments : int
        ``N`` and ``M`` of the problem.
    state : object
        The state of the whole plan (its ``M`` segments over ``N -> 0``).

    Returns
    -------
    tuple
        One entry per segment, noise side first.
    """

    def tree(i, j, s):
        if j == i + 1:
            return j
        m, first, rest = choose(0, i, j, s)
        return (tree(m, j, first), *forest(i, m, rest))

    def forest(i, j, s):
        out = []
        while True:
            if j == i + 1:
                out.append(j)
                return out
            m, first, rest = choose(1, i, j, s)
            if m < 0:
                out.append(tree(i, j, first))
                return out
            out.append(tree(m, j, first))
            j, s = m, rest

    with deep_recursion(4 * steps + 16):
        shape = []
        k, j, s = segments, steps, state
        while k > 1:
            m, first, rest = choose(2, k, j, s)
            shape.append(tree(m, j, first))
            k, j, s = k - 1, m, rest
        shape.append(tree(0, j, s))
        return tuple(shape)


def plan_from_shape(shape: tuple) -> Plan:
    """The :class:`~opmerge.plans.Plan` of nested tuples made by :func:`extreme_shape`."""

    def tree(node):
        return node if isinstance(node, int) else MergeNode(tuple(tree(child) for child in node))

    with deep_recursion(4 * len(repr(shape))):
        return Plan(tuple(tree(segment) for segment in shape))


def retention_bound(problem: Problem, reduce) -> np.ndarray:
    """Elementwise ``reduce`` (``np.minimum`` or ``np.maximum``) of the retention over the possible merge counts."""
    if problem.model.budget != "total":
        return np.asarray(problem.retention)
    tables = [problem.retention_for(count) for count in _merge_count_range(problem)]
    out = tables[0]
    for t in tables[1:]:
        out = reduce(out, t)
    return out


class ProblemTables:
    r"""The range tables of one problem, built once and shared by every solver phase.

    The interval DP runs once per direction; the stacked layouts are made on first use: direction
    first (:attr:`by_direction`, the layout of :func:`range_tables`) or last
    (:meth:`direction_last`, what the search and Pareto kernels read).

    Parameters
    ----------
    problem : Problem
    by_direction : dict of str to ndarray, optional
        The output of :func:`range_tables` for ``problem`` (computed when omitted).
    budget : Budget, optional
        Told the progress (phase ``"tables"``) between directions
        (:class:`~opmerge.solvers._control.Budget`).

    Attributes
    ----------
    problem : Problem
    lo, hi : (d,) ndarray
        The achievable range (:func:`achievable_range`).
    """

    def __init__(self, problem: Problem, by_direction: dict[str, np.ndarray] | None = None, budget=None):
        self.problem = problem
        self._first = by_direction
        self._last: dict[str, np.ndarray] | None = None
        self._per: list[dict[str, np.ndarray]] | None = None
        self._problem_last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if by_direction is None and problem.model.budget != "total":
            self._per = _per_direction_tables(problem, None if budget is None else (lambda: budget.report("tables")))
        elif by_direction is None:
            self._first = _range_tables(problem)
        m, n = problem.segments, problem.steps
        if self._per is not None:
            self.lo = np.array([t["g_lo"][m, n] for t in self._per])
            self.hi = np.array([t["g_hi"][m, n] for t in self._per])
        else:
            self.lo, self.hi = _student_range(problem, self._first)

    @property
    def by_direction(self) -> dict[str, np.ndarray]:
        """The six tables with the direction axis first (the output of :func:`range_tables`); built once."""
        if self._first is None:
            self._first = _stack(self._per, 0)
        return self._first

    def direction(self, d: int) -> dict[str, np.ndarray]:
        """The six tables of direction ``d`` (C-contiguous)."""
        if self._per is not None:
            return self._per[d]
        return {name: np.ascontiguousarray(self.by_direction[name][d]) for name in _TABLE_NAMES}

    def problem_last(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, retention, jump)`` of the problem with the direction axis last, C-contiguous:
        ``(N + 1, d)``, ``(N + 1, d)`` and ``(N + 1, N + 1, d)`` (zeros ``(1, 1, d)`` unless ``init='ddim'``); built once."""
        if self._problem_last is None:
            p = self.problem
            jump = (np.ascontiguousarray(np.moveaxis(p.jump, 0, -1)) if p.jump is not None else np.zeros((1, 1, p.dim)))
            self._problem_last = (np.ascontiguousarray(p.step_values.T), np.ascontiguousarray(p.retention.T), jump)
        return self._problem_last

    def direction_last(self) -> dict[str, np.ndarray]:
        """The six tables with the direction axis last, C-contiguous (what the kernels read); built once."""
        if self._last is None:
            if self._per is not None:
                self._last = _stack(self._per, -1)
            else:
                self._last = {k: np.ascontiguousarray(np.moveaxis(self._first[k], 0, -1)) for k in TABLE_NAMES}
        return self._last
