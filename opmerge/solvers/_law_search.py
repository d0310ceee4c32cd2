r"""Range tables and branch and bound for the nonlinear training laws ``sign`` and ``adam``. Private.

A node trained by a nonlinear law ends at :math:`a = P + F(a_0 - P)` with :math:`P = c_1 R`
(docs/theory.md §9). For ``sign``, :math:`F(u) = u - \operatorname{clip}(u, -t, t)`, so

.. math:: a = a_0 - \operatorname{clip}(a_0 - P, -t, t)

is non-decreasing in :math:`a_0` and in :math:`P` separately (both :math:`F` and
:math:`u - F(u)` are non-decreasing). Over a box of children's values the node's range is therefore
enclosed by :math:`[a(P_{\min}, a_{0,\min}),\ a(P_{\max}, a_{0,\max})]`, where
:math:`[P_{\min}, P_{\max}]` is the range of the product :math:`c_1 R` (four corners). When every
value is non-negative both ends are attained by the same children (the smallest first child with
the smallest rest, and the largest with the largest), so the enclosure is exact; otherwise it is
valid and possibly wider. Either way the branch and bound below is certified: it prunes only on
valid bounds and scores complete plans exactly.

For ``adam`` the node's range is the ``sign`` range widened by :math:`c_j \eta\,\Delta_K`, the
largest gap between Adam and sign descent in units of the step (:func:`opmerge.laws.adam_sign_gap`,
tabulated with :math:`\epsilon = 0`); that envelope is numerical, not proved, so the solver reports
``exact = False`` for ``adam`` whatever its gap.

**Node floors.** With a model's ``node_floor`` (docs/theory.md §9.7) a plan's :math:`W_2^2` adds
:math:`\varphi(j, L) \ge 0` per merge node. Every partial plan carries the floors of its fixed
nodes plus the least floor any completion of its holes can add: a tree over ``j -> i`` has at
least its root (:math:`\varphi(j, j - i)` for ``j - i >= 2``, 0 for a leaf), a forest can be all
leaves (0), and ``k`` segments over ``j -> 0`` need :math:`\min_s [\varphi_V(s, j) + G_{k-1}(s)]`
(a small dynamic program). Adding that to the range bound keeps every bound valid.
"""

from __future__ import annotations

import time

import numpy as np

from ..laws import adam_sign_gap
from ..objective import Problem, node_start
from ._search import HOLE_F, HOLE_G, HOLE_V, NODE, PlanSearch, _Expr, _OutOfTime

__all__ = ["law_widening", "law_range_tables", "least_floors", "LawPlanSearch"]


def law_widening(problem: Problem) -> np.ndarray:
    r"""How far the node range of each direction and input time is widened beyond the ``sign`` law's: shape (d, N + 1).

    0 for ``sign``; :math:`s_{ij}\,\eta\,\Delta_K` for ``adam``.
    """
    law = problem.law
    if law.training == "sign":
        return np.zeros((problem.dim, problem.steps + 1))
    gap = adam_sign_gap(law.steps, law.beta1, law.beta2)
    return law.scale * (law.lr * gap)


def _init_range(problem: Problem, i: int, j: int, c1_lo, c1_hi):
    """Range of the start :math:`a_0` of a node over ``j -> i`` whose first child ranges over ``[c1_lo, c1_hi]``."""
    return node_start(problem, j, i, c1_lo), node_start(problem, j, i, c1_hi)


def node_enclosure(problem: Problem, travel: np.ndarray, widen: np.ndarray, i: int, j: int, c1_lo, c1_hi, r_lo, r_hi):
    r"""Enclosure of a node's value over ``j -> i`` for children ranges (see the module docstring)."""
    corners = (c1_lo * r_lo, c1_lo * r_hi, c1_hi * r_lo, c1_hi * r_hi)
    p_lo = np.minimum(np.minimum(corners[0], corners[1]), np.minimum(corners[2], corners[3]))
    p_hi = np.maximum(np.maximum(corners[0], corners[1]), np.maximum(corners[2], corners[3]))
    a_lo, a_hi = _init_range(problem, i, j, c1_lo, c1_hi)
    t = travel[:, j]
    lo = a_lo - np.clip(a_lo - p_lo, -t, t) - widen[:, j]
    hi = a_hi - np.clip(a_hi - p_hi, -t, t) + widen[:, j]
    return lo, hi


def law_range_tables(problem: Problem, between=None) -> tuple[np.ndarray, ...]:
    r"""The six range tables ``v_lo, v_hi, f_lo, f_hi, g_lo, g_hi`` (direction axis first) of a
    ``sign``/``adam`` problem: enclosures of the values of every tree ``V``, forest ``F`` and
    segment sequence ``G`` (exact for ``sign`` with non-negative values). :math:`O(N^3 d)`;
    ``between()`` (optional) is called before each interval length (the caller's deadline check).
    """
    n, m, d = problem.steps, problem.segments, problem.dim
    travel = problem.law.travel()
    widen = law_widening(problem)
    v_lo = np.full((n + 1, n + 1, d), np.inf)
    v_hi = np.full((n + 1, n + 1, d), -np.inf)
    f_lo, f_hi = v_lo.copy(), v_hi.copy()
    steps = problem.step_values
    for j in range(1, n + 1):
        v_lo[j - 1, j] = v_hi[j - 1, j] = f_lo[j - 1, j] = f_hi[j - 1, j] = steps[:, j]
    for length in range(2, n + 1):
        if between is not None:
            between()
        for i in range(0, n - length + 1):
            j = i + length
            node_lo, node_hi = np.full(d, np.inf), np.full(d, -np.inf)
            prod_lo, prod_hi = np.full(d, np.inf), np.full(d, -np.inf)
            for k in range(i + 1, j):
                lo, hi = node_enclosure(problem, travel, widen, i, j, v_lo[k, j], v_hi[k, j], f_lo[i, k], f_hi[i, k])
                np.minimum(node_lo, lo, out=node_lo)
                np.maximum(node_hi, hi, out=node_hi)
                c = (v_lo[k, j] * f_lo[i, k], v_lo[k, j] * f_hi[i, k], v_hi[k, j] * f_lo[i, k], v_hi[k, j] * f_hi[i, k])
                for x in c:
                    np.minimum(prod_lo, x, out=prod_lo)
                    np.maximum(prod_hi, x, out=prod_hi)
            v_lo[i, j], v_hi[i, j] = node_lo, node_hi
            f_lo[i, j], f_hi[i, j] = np.minimum(node_lo, prod_lo), np.maximum(node_hi, prod_hi)
    g_lo = np.full((m + 1, n + 1, d), np.inf)
    g_hi = np.full((m + 1, n + 1, d), -np.inf)
    for j in range(1, n + 1):
        g_lo[1, j], g_hi[1, j] = v_lo[0, j], v_hi[0, j]
    for k in range(2, m + 1):
        for j in range(k, n + 1):
            lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
            for s in range(k - 1, j):
                c = (v_lo[s, j] * g_lo[k - 1, s], v_lo[s, j] * g_hi[k - 1, s], v_hi[s, j] * g_lo[k - 1, s], v_hi[s, j] * g_hi[k - 1, s])
                for x in c:
                    np.minimum(lo, x, out=lo)
                    np.maximum(hi, x, out=hi)
            g_lo[k, j], g_hi[k, j] = lo, hi
    return tuple(np.ascontiguousarray(np.moveaxis(t, -1, 0)) for t in (v_lo, v_hi, f_lo, f_hi, g_lo, g_hi))


class LawPlanSearch(PlanSearch):
    """:class:`~opmerge.solvers._search.PlanSearch` whose merge nodes follow a nonlinear law.

    A node with holes below it gets the enclosure of :func:`node_enclosure`; a complete node its
    exact value :math:`P + F(a_0 - P)` (the arithmetic of plan evaluation).
    """

    def __init__(self, problem: Problem, **kwargs):
        super().__init__(**kwargs)
        self.problem = problem
        self.travel = problem.law.travel()
        self.widen = law_widening(problem)
        self.floor = problem.floor
        if self.floor is not None:
            self.least_floor = least_floors(self.floor, problem.segments)

    def hole(self, kind, a, j):
        expr = super().hole(kind, a, j)
        if self.floor is not None:
            expr.extra = self.least_floor[kind][a, j]
        return expr

    def prod(self, first, rest):
        expr = super().prod(first, rest)
        expr.extra = first.extra + rest.extra
        return expr

    def bound_sq(self, expr) -> float:
        return super().bound_sq(expr) + expr.extra

    def node(self, i, j, first, rest):
        if time.perf_counter() > self.deadline:
            raise _OutOfTime
        holes = first.holes + rest.holes
        if holes == 0:
            product = first.lo * rest.lo
            a0, _ = _init_range(self.problem, i, j, first.lo, first.lo)
            value = product + self.problem.law.error(a0 - product, j)
            lo = hi = value
        else:
            lo, hi = node_enclosure(self.problem, self.travel, self.widen, i, j, first.lo, first.hi, rest.lo, rest.hi)
        extra = first.extra + rest.extra + (0.0 if self.floor is None else self.floor[i, j])
        return _Expr(NODE, i, j, first, rest, lo, hi, holes, first.merges + rest.merges + 1, extra)


def least_floors(floor: np.ndarray, segments: int) -> dict:
    r"""The least node-floor sum of any completion of a hole (module docstring): ``{HOLE_V: (N + 1, N + 1)
    [i, j], HOLE_F: zeros, HOLE_G: (M + 1, N + 1) [k, j]}`` from ``floor[i, j]`` (0 where ``j - i < 2``)."""
    n = floor.shape[0] - 1
    tree = np.array(floor, dtype=np.float64)
    seq = np.full((segments + 1, n + 1), np.inf)
    seq[1] = tree[0]
    for k in range(2, segments + 1):
        for j in range(k, n + 1):
            seq[k, j] = min(tree[s, j] + seq[k - 1, s] for s in range(k - 1, j))
    return {HOLE_V: tree, HOLE_F: np.zeros_like(tree), HOLE_G: seq}
