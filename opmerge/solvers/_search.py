r"""Branch and bound over merge plans with certified lower bounds. Private: use :func:`opmerge.solvers.solve`.

A partial plan is an expression whose unexpanded parts are *holes*: ``V(i, j)`` (any tree over
``j -> i``), ``F(i, j)`` (any sequence of >= 1 trees) and ``G(k, j)`` (any ``k`` segments over
``j -> 0``). Every expression node carries the exact per-direction range of values of its
completions (holes take their range from the interval dynamic program; a merge node combines
its children's ranges at the corners of its bilinear value function). The lower bound of a
partial plan is

.. math:: \mathrm{LB}^2 = \sum_i s_i\, \mathrm{dist}(g_i, [\ell_i, h_i])^2 ,

with :math:`s_i = \omega_i\|v_{N,i}\|^2` and :math:`g_i` the goal of direction ``i``; a complete
plan has :math:`\ell_i = h_i = S_i`. Depth-first search, best bound first, prunes every partial
plan whose bound cannot beat the incumbent by more than the tolerance.
"""

from __future__ import annotations

import time

import numpy as np

from ..plans import MergeNode, Plan

LEAF, HOLE_V, HOLE_F, HOLE_G, NODE, PROD = range(6)


class _Expr:
    __slots__ = ("kind", "i", "j", "first", "rest", "lo", "hi", "holes", "merges")

    def __init__(self, kind, i, j, first, rest, lo, hi, holes, merges):
        self.kind = kind
        self.i = i
        self.j = j
        self.first = first
        self.rest = rest
        self.lo = lo
        self.hi = hi
        self.holes = holes
        self.merges = merges


class PlanSearch:
    """Branch and bound for one :class:`~opmerge.objective.Problem`.

    Parameters
    ----------
    tables : dict
        ``v_lo, v_hi, f_lo, f_hi`` of shape ``(N + 1, N + 1, d)`` and ``g_lo, g_hi`` of shape
        ``(M + 1, N + 1, d)``: exact (or, for ``budget='total'``, enclosing) value ranges.
    step_values : (d, N + 1); r_lo, r_hi : (d, N + 1) retention bounds per input time;
    init_code : int; jump : (d, N + 1, N + 1) or None; goal, scale : (d,); data_target : bool.
    """

    def __init__(self, tables, step_values, r_lo, r_hi, init_code, jump, goal, scale, data_target, segments):
        self.t = tables
        self.steps_t = np.ascontiguousarray(step_values.T)  # (N + 1, d)
        self.r_lo = np.ascontiguousarray(r_lo.T)
        self.r_hi = np.ascontiguousarray(r_hi.T)
        self.same_r = bool(np.array_equal(r_lo, r_hi))
        self.init_code = init_code
        self.jump = None if jump is None else np.ascontiguousarray(np.moveaxis(jump, 0, -1))  # (N+1, N+1, d)
        self.goal = goal
        self.scale = scale
        self.data_target = data_target
        self.segments = segments
        self.n = step_values.shape[1] - 1
        self.dim = step_values.shape[0]
        self.zeros = np.zeros(self.dim)
        self.ones = np.ones(self.dim)

    # -- expression constructors (each computes its range in O(d)) -------------------------
    def leaf(self, n):
        value = self.steps_t[n]
        return _Expr(LEAF, n - 1, n, None, None, value, value, 0, 0)

    def hole_v(self, i, j):
        if j == i + 1:
            return self.leaf(j)
        return _Expr(HOLE_V, i, j, None, None, self.t["v_lo"][i, j], self.t["v_hi"][i, j], 1, 0)

    def hole_f(self, i, j):
        if j == i + 1:
            return self.leaf(j)
        return _Expr(HOLE_F, i, j, None, None, self.t["f_lo"][i, j], self.t["f_hi"][i, j], 1, 0)

    def hole_g(self, k, j):
        if k == 1:
            return self.hole_v(0, j)
        return _Expr(HOLE_G, k, j, None, None, self.t["g_lo"][k, j], self.t["g_hi"][k, j], 1, 0)

    def prod(self, first, rest):
        if first.holes == 0 and rest.holes == 0:
            value = first.lo * rest.lo
            lo = hi = value
        else:
            c = (first.lo * rest.lo, first.lo * rest.hi, first.hi * rest.lo, first.hi * rest.hi)
            lo = np.minimum(np.minimum(c[0], c[1]), np.minimum(c[2], c[3]))
            hi = np.maximum(np.maximum(c[0], c[1]), np.maximum(c[2], c[3]))
        return _Expr(PROD, rest.i, first.j, first, rest, lo, hi, first.holes + rest.holes, first.merges + rest.merges)

    def node(self, i, j, first, rest):
        init = self.init_code
        if init == 1:
            a0_const = self.jump[i, j]
        elif init == 2:
            a0_const = self.zeros
        else:
            a0_const = self.ones
        holes = first.holes + rest.holes
        if holes == 0 and self.same_r:
            r = self.r_lo[j]
            a0 = first.lo if init == 0 else a0_const
            value = (1.0 - r) * (first.lo * rest.lo) + r * a0
            lo = hi = value
        else:
            corners = []
            rs = (self.r_lo[j],) if self.same_r else (self.r_lo[j], self.r_hi[j])
            for c1 in (first.lo, first.hi):
                a0 = c1 if init == 0 else a0_const
                for rv in (rest.lo, rest.hi):
                    p = c1 * rv
                    for r in rs:
                        corners.append((1.0 - r) * p + r * a0)
            lo = corners[0]
            hi = corners[0]
            for c in corners[1:]:
                lo = np.minimum(lo, c)
                hi = np.maximum(hi, c)
        return _Expr(NODE, i, j, first, rest, lo, hi, holes, first.merges + rest.merges + 1)

    def root(self):
        return self.hole_g(self.segments, self.n)

    # -- bounds ---------------------------------------------------------------------------
    def bound_sq(self, expr) -> float:
        lo, hi = expr.lo, expr.hi
        if self.data_target:
            alo = np.where(lo >= 0, lo, np.where(hi <= 0, -hi, 0.0))
            ahi = np.maximum(np.abs(lo), np.abs(hi))
            lo, hi = alo, ahi
        dist = np.maximum(0.0, np.maximum(lo - self.goal, self.goal - hi))
        return float(np.sum(self.scale * dist * dist))

    # -- expansion of the first hole in pre-order ----------------------------------------
    def expand(self, expr):
        kind = expr.kind
        if kind == HOLE_V:
            i, j = expr.i, expr.j
            return [self.node(i, j, self.hole_v(m, j), self.hole_f(i, m)) for m in range(i + 1, j)]
        if kind == HOLE_F:
            i, j = expr.i, expr.j
            out = [self.hole_v(i, j)]
            out.extend(self.prod(self.hole_v(m, j), self.hole_f(i, m)) for m in range(i + 1, j))
            return out
        if kind == HOLE_G:
            k, j = expr.i, expr.j
            return [self.prod(self.hole_v(m, j), self.hole_g(k - 1, m)) for m in range(k - 1, j)]
        if expr.first.holes:
            variants = self.expand(expr.first)
            if kind == NODE:
                return [self.node(expr.i, expr.j, v, expr.rest) for v in variants]
            return [self.prod(v, expr.rest) for v in variants]
        variants = self.expand(expr.rest)
        if kind == NODE:
            return [self.node(expr.i, expr.j, expr.first, v) for v in variants]
        return [self.prod(expr.first, v) for v in variants]

    # -- plan reconstruction ---------------------------------------------------------------
    def to_plan(self, expr) -> Plan:
        def tree(e):
            if e.kind == LEAF:
                return e.j
            if e.kind == NODE:
                return MergeNode((tree(e.first), *forest(e.rest)))
            raise ValueError("expression is not a tree")

        def forest(e):
            out = []
            while e.kind == PROD:
                out.append(tree(e.first))
                e = e.rest
            out.append(tree(e))
            return out

        return Plan(tuple(forest(expr)))

    # -- the search ------------------------------------------------------------------------
    def run(self, best_sq: float, tol_sq_fn, evaluate_exact, node_budget: int, time_budget: float):
        """Depth-first branch and bound.

        ``tol_sq_fn(best_sq)`` gives the prune threshold ``(sqrt(best_sq) - tol)^2``;
        ``evaluate_exact(expr) -> (w2_sq, plan)`` scores a complete plan exactly.
        Returns ``(best_sq, best_plan or None, lower_bound_sq, nodes, complete)``; the lower bound
        is the smallest bound of everything pruned or left open, so it is certified.
        """
        start = time.perf_counter()
        root = self.root()
        stack = [(self.bound_sq(root), root)]
        best_plan = None
        nodes = 0
        min_pruned = np.inf
        threshold = tol_sq_fn(best_sq)
        while stack:
            bound, expr = stack.pop()
            if bound >= threshold:
                min_pruned = min(min_pruned, bound)
                continue
            if expr.holes == 0:
                value_sq, plan = evaluate_exact(expr)
                if value_sq < threshold:
                    best_sq, best_plan = value_sq, plan
                    threshold = tol_sq_fn(best_sq)
                else:
                    min_pruned = min(min_pruned, value_sq)
                continue
            nodes += 1
            if nodes > node_budget or (nodes & 255 == 0 and time.perf_counter() - start > time_budget):
                stack.append((bound, expr))
                lower = min([best_sq, min_pruned] + [b for b, _ in stack])
                return best_sq, best_plan, lower, nodes, False
            children = []
            for child in self.expand(expr):
                child_bound = self.bound_sq(child)
                if child_bound < threshold:
                    children.append((child_bound, child))
                else:
                    min_pruned = min(min_pruned, child_bound)
            children.sort(key=lambda bc: -bc[0])
            stack.extend(children)
        return best_sq, best_plan, min(best_sq, min_pruned), nodes, True
