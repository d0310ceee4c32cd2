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

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._util import deep_recursion
from ..plans import MergeNode, Plan
from ._kernels import closest_pair

LEAF, HOLE_V, HOLE_F, HOLE_G, NODE, PROD = range(6)


def node_value(r, c1, rest, a0):
    r"""Value of a merge node, :math:`(1 - r)\,(c_1 R) + r\, a_0` (floats or numpy arrays).

    The one place the Python searches compute it, in the association of plan evaluation; the Numba
    kernels use :func:`opmerge.solvers._kernels.node_value`, the same expression.
    """
    return (1.0 - r) * (c1 * rest) + r * a0


@dataclass(slots=True, eq=False)
class _Expr:
    """A node of a partial plan: a leaf, a hole or a merge node / product, with its value range."""

    kind: int
    i: int
    j: int
    first: _Expr | None
    rest: _Expr | None
    lo: Any
    hi: Any
    holes: int
    merges: int
    extra: float = 0.0  # a node-additive term of W2^2 (node floors) of the completions: exact, or its minimum over holes


class _OutOfTime(Exception):
    """The deadline passed in the middle of an expansion (:meth:`PlanSearch.run` puts the node back)."""


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
        # what the constructors read: (d,) rows here, plain floats in LineSearch1D
        self.leaf_values = self.steps_t
        self.ranges = {kind: (tables[f"{name}_lo"], tables[f"{name}_hi"])
                       for kind, name in ((HOLE_V, "v"), (HOLE_F, "f"), (HOLE_G, "g"))}

    # -- expression constructors (each computes its range in O(d)) -------------------------
    def leaf(self, n):
        value = self.leaf_values[n]
        return _Expr(LEAF, n - 1, n, None, None, value, value, 0, 0)

    def hole(self, kind, a, j):
        """A hole of ``kind`` over ``j -> a`` (for ``HOLE_G``: ``a`` segments over ``j -> 0``) with its table range."""
        lo, hi = self.ranges[kind]
        return _Expr(kind, a, j, None, None, lo[a][j], hi[a][j], 1, 0)

    def hole_v(self, i, j):
        return self.leaf(j) if j == i + 1 else self.hole(HOLE_V, i, j)

    def hole_f(self, i, j):
        return self.leaf(j) if j == i + 1 else self.hole(HOLE_F, i, j)

    def hole_g(self, k, j):
        return self.hole_v(0, j) if k == 1 else self.hole(HOLE_G, k, j)

    def prod(self, first, rest):
        if first.holes == 0 and rest.holes == 0 and self.same_r:
            value = first.lo * rest.lo
            lo = hi = value
        else:
            c = (first.lo * rest.lo, first.lo * rest.hi, first.hi * rest.lo, first.hi * rest.hi)
            lo = np.minimum(np.minimum(c[0], c[1]), np.minimum(c[2], c[3]))
            hi = np.maximum(np.maximum(c[0], c[1]), np.maximum(c[2], c[3]))
        return _Expr(PROD, rest.i, first.j, first, rest, lo, hi, first.holes + rest.holes, first.merges + rest.merges)

    #: ``time.perf_counter()`` value after which :meth:`node` stops an expansion (set by :meth:`run`)
    deadline = math.inf

    def node(self, i, j, first, rest):
        # one expansion of a long hole makes O(N) nodes of O(d) numpy work each: check the clock here
        if time.perf_counter() > self.deadline:
            raise _OutOfTime
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
            value = node_value(r, first.lo, rest.lo, a0)
            lo = hi = value
        else:
            corners = []
            rs = (self.r_lo[j],) if self.same_r else (self.r_lo[j], self.r_hi[j])
            for c1 in (first.lo, first.hi):
                a0 = c1 if init == 0 else a0_const
                for rv in (rest.lo, rest.hi):
                    for r in rs:
                        corners.append(node_value(r, c1, rv, a0))
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

    def centrality(self, expr) -> float:
        """Search-order heuristic: how far the goal sits from the middle of the range, in half-widths."""
        width = np.maximum(expr.hi - expr.lo, 1e-300)
        return float(np.sum(np.abs(0.5 * (expr.lo + expr.hi) - self.goal) / width))

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
    def to_plan(self, expr, fill=None) -> Plan:
        """The plan of a complete expression; ``fill`` maps ``id(hole)`` to a tree (V hole) or a list of trees (F hole)."""
        fill = fill or {}

        def tree(e):
            if e.kind == LEAF:
                return e.j
            if e.kind == NODE:
                return MergeNode((tree(e.first), *forest(e.rest)))
            if e.kind == HOLE_V:
                return fill[id(e)]
            raise ValueError("expression is not a tree")

        def forest(e):
            out = []
            while e.kind == PROD:
                out.append(tree(e.first))
                e = e.rest
            if e.kind == HOLE_F:
                out.extend(fill[id(e)])
            else:
                out.append(tree(e))
            return out

        with deep_recursion(4 * self.n):
            return Plan(tuple(forest(expr)))

    # -- the search ------------------------------------------------------------------------
    #: how far an estimate from :meth:`resolve` may sit above the exact W2 (rounding); 0 when exact
    estimate_slack = 0.0

    def resolve(self, expr):
        """Best completion of ``expr`` as ``(estimated w2_sq, callable returning its plan)``, or ``None``.

        Here only complete plans are resolved; :class:`LineSearch1D` also resolves up to two holes.
        """
        if expr.holes == 0:
            return self.bound_sq(expr), lambda: self.to_plan(expr)
        return None

    def run(self, best_sq: float, tol_sq_fn, evaluate_exact, node_budget: int, budget):
        """Depth-first branch and bound.

        ``tol_sq_fn(best_sq)`` gives the prune threshold ``(sqrt(best_sq) - tol)^2``;
        ``evaluate_exact(plan) -> (w2_sq, plan)`` scores a complete plan exactly; ``budget``
        (:class:`~opmerge.solvers._control.Budget`) is asked for the deadline before every
        expansion and told the progress.
        Returns ``(best_sq, best_plan or None, lower_bound_sq, nodes, complete)``; the lower bound
        is the smallest bound of everything pruned or left open, so it is certified.
        """
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
            resolved = self.resolve(expr)
            if resolved is not None:
                estimate_sq, make_plan = resolved
                near = math.sqrt(estimate_sq) - self.estimate_slack
                if estimate_sq < threshold or near * near <= min_pruned:
                    value_sq, plan = evaluate_exact(make_plan())
                    if value_sq < threshold:
                        best_sq, best_plan = value_sq, plan
                        threshold = tol_sq_fn(best_sq)
                        budget.note(incumbent=math.sqrt(best_sq))
                    else:
                        min_pruned = min(min_pruned, value_sq)
                else:
                    # far from the incumbent: the rounding slack cannot matter, keep the estimate's bound
                    min_pruned = min(min_pruned, max(0.0, near) ** 2)
                continue
            nodes += 1
            # one expansion costs O(N d) numpy work (milliseconds at N = 128): read the clock every time
            if nodes > node_budget or budget.expired():
                stack.append((bound, expr))
                lower = min([best_sq, min_pruned] + [b for b, _ in stack])
                return best_sq, best_plan, lower, nodes, False
            budget.report("search", nodes)
            children = []
            self.deadline = budget.deadline
            try:
                expanded = self.expand(expr)
            except _OutOfTime:
                stack.append((bound, expr))
                lower = min([best_sq, min_pruned] + [b for b, _ in stack])
                return best_sq, best_plan, lower, nodes, False
            finally:
                self.deadline = math.inf
            for child in expanded:
                child_bound = self.bound_sq(child)
                if child_bound < threshold:
                    children.append((child_bound, self.centrality(child), child))
                else:
                    min_pruned = min(min_pruned, child_bound)
            children.sort(key=lambda bc: (-bc[0], -bc[1]))
            stack.extend((b, c) for b, _, c in children)
        return best_sq, best_plan, min(best_sq, min_pruned), nodes, True


class ValueLists:
    """Sorted lists of *all* values of trees ``V(i, j)`` and forests ``F(i, j)`` over short intervals (1-D).

    Entry ``k`` of a list carries back-pointers so that its plan can be rebuilt: for ``V`` the split
    ``m`` and the indices into ``V(m, j)`` and ``F(i, m)``; for ``F`` either ``m = -1`` and the index
    into ``V(i, j)`` (a single tree) or ``m`` and the indices into ``V(m, j)`` and ``F(i, m)``.
    Lists are built on demand and kept (sizes: little and large Schröder numbers).
    """

    def __init__(self, step_values, retention, init_code, jump):
        self.steps = step_values
        self.retention = retention
        self.init_code = init_code
        self.jump = jump
        self.cache = {}

    def get(self, kind: str, i: int, j: int):
        key = (kind, i, j)
        hit = self.cache.get(key)
        if hit is None:
            hit = self._build(kind, i, j)
            self.cache[key] = hit
        return hit

    def _build(self, kind, i, j):
        if j == i + 1:
            value = np.array([self.steps[j]])
            marker = np.array([-2 if kind == "V" else -1], dtype=np.int64)
            return value, marker, np.zeros(1, np.int64), np.zeros(1, np.int64)
        values, splits, first_idx, rest_idx = [], [], [], []
        if kind == "F":
            v_vals = self.get("V", i, j)[0]
            values.append(v_vals)
            splits.append(np.full(v_vals.shape[0], -1, np.int64))
            first_idx.append(np.arange(v_vals.shape[0], dtype=np.int64))
            rest_idx.append(np.zeros(v_vals.shape[0], np.int64))
        r = self.retention[j]
        for m in range(i + 1, j):
            a_vals = self.get("V", m, j)[0]
            b_vals = self.get("F", i, m)[0]
            prod = np.multiply.outer(a_vals, b_vals)
            if kind == "V":
                if self.init_code == 0:
                    a0 = a_vals[:, None]
                elif self.init_code == 1:
                    a0 = self.jump[i, j]
                else:
                    a0 = 0.0 if self.init_code == 2 else 1.0
                vals = node_value(r, a_vals[:, None], b_vals[None, :], a0)
            else:
                vals = prod
            values.append(np.ravel(vals))
            splits.append(np.full(prod.size, m, np.int64))
            first_idx.append(np.repeat(np.arange(a_vals.shape[0], dtype=np.int64), b_vals.shape[0]))
            rest_idx.append(np.tile(np.arange(b_vals.shape[0], dtype=np.int64), a_vals.shape[0]))
        values = np.concatenate(values)
        order = np.argsort(values, kind="stable")
        return (
            np.ascontiguousarray(values[order]),
            np.concatenate(splits)[order],
            np.concatenate(first_idx)[order],
            np.concatenate(rest_idx)[order],
        )

    def tree(self, i, j, index):
        """The tree of entry ``index`` of ``V(i, j)``."""
        if j == i + 1:
            return j
        _, splits, first_idx, rest_idx = self.get("V", i, j)
        m = int(splits[index])
        return MergeNode((self.tree(m, j, int(first_idx[index])), *self.forest(i, m, int(rest_idx[index]))))

    def forest(self, i, j, index):
        """The list of trees of entry ``index`` of ``F(i, j)``."""
        out = []
        while j > i + 1:
            _, splits, first_idx, rest_idx = self.get("F", i, j)
            m = int(splits[index])
            if m < 0:
                out.append(self.tree(i, j, int(first_idx[index])))
                return out
            out.append(self.tree(m, j, int(first_idx[index])))
            j, index = m, int(rest_idx[index])
        out.append(j)
        return out


class LineSearch1D(PlanSearch):
    """Branch and bound for one direction that resolves the last one or two short holes exactly.

    Holes longer than ``list_length`` steps are expanded first (longest first). Once every hole is
    short, the shortest are expanded until at most two remain; then :math:`S` is affine (one hole)
    or bilinear (two holes) in the holes' values, and the best completion is found by binary
    search in the holes' sorted value lists (:func:`~opmerge.solvers._kernels.closest_pair`) instead
    of enumerating up to ``|V| x |F|`` completions one by one.
    """

    def __init__(self, *args, list_length: int = 9, **kwargs):
        super().__init__(*args, **kwargs)
        if self.dim != 1 or not self.same_r:
            raise ValueError("LineSearch1D needs one direction and a per-merge budget")
        self.list_length = list_length
        jump = None if self.jump is None else self.jump[:, :, 0]
        self.lists = ValueLists(self.steps_t[:, 0], self.r_lo[:, 0], self.init_code, jump)
        self.goal0 = float(self.goal[0])
        self.scale0 = float(self.scale[0])
        self._one = np.ones(1)
        # the affine/bilinear read-out of a resolved completion rounds differently from plan evaluation
        eps = np.finfo(np.float64).eps
        self.estimate_slack = 8.0 * self.n * eps * math.sqrt(self.scale0) * (abs(self.goal0) + 1.0)
        # plain floats: with one direction, numpy scalars only add overhead
        self.leaf_values = [float(x) for x in self.steps_t[:, 0]]
        self.ranges = {kind: (lo[..., 0].tolist(), hi[..., 0].tolist()) for kind, (lo, hi) in self.ranges.items()}
        self.ret_f = [float(x) for x in self.r_lo[:, 0]]
        self.jump_f = None if jump is None else jump.tolist()

    # float versions of the constructors (leaf and hole read the float tables above) ----------
    def prod(self, first, rest):
        a, b, c, d = first.lo * rest.lo, first.lo * rest.hi, first.hi * rest.lo, first.hi * rest.hi
        return _Expr(PROD, rest.i, first.j, first, rest, min(a, b, c, d), max(a, b, c, d),
                     first.holes + rest.holes, first.merges + rest.merges)

    def node(self, i, j, first, rest):
        r = self.ret_f[j]
        init = self.init_code
        if init == 0:
            vals = (node_value(r, first.lo, rest.lo, first.lo), node_value(r, first.lo, rest.hi, first.lo),
                    node_value(r, first.hi, rest.lo, first.hi), node_value(r, first.hi, rest.hi, first.hi))
        else:
            a0 = self.jump_f[i][j] if init == 1 else (0.0 if init == 2 else 1.0)
            vals = (node_value(r, first.lo, rest.lo, a0), node_value(r, first.lo, rest.hi, a0),
                    node_value(r, first.hi, rest.lo, a0), node_value(r, first.hi, rest.hi, a0))
        return _Expr(NODE, i, j, first, rest, min(vals), max(vals), first.holes + rest.holes,
                     first.merges + rest.merges + 1)

    def bound_sq(self, expr) -> float:
        lo, hi = expr.lo, expr.hi
        if self.data_target:
            lo, hi = (lo, hi) if lo >= 0 else ((-hi, -lo) if hi <= 0 else (0.0, max(-lo, hi)))
        dist = max(0.0, lo - self.goal0, self.goal0 - hi)
        return self.scale0 * dist * dist

    def centrality(self, expr) -> float:
        width = max(expr.hi - expr.lo, 1e-300)
        return abs(0.5 * (expr.lo + expr.hi) - self.goal0) / width

    def _holes(self, expr, path, out):
        if expr.kind in (HOLE_V, HOLE_F, HOLE_G):
            length = 1 << 30 if expr.kind == HOLE_G else expr.j - expr.i
            out.append((length, path, expr))
        elif expr.holes:
            if expr.first.holes:
                self._holes(expr.first, path + (0,), out)
            if expr.rest.holes:
                self._holes(expr.rest, path + (1,), out)
        return out

    def _rebuild(self, expr, path, variants):
        if not path:
            return variants
        if path[0] == 0:
            subs = self._rebuild(expr.first, path[1:], variants)
            make = (lambda v: self.node(expr.i, expr.j, v, expr.rest)) if expr.kind == NODE else (lambda v: self.prod(v, expr.rest))
        else:
            subs = self._rebuild(expr.rest, path[1:], variants)
            make = (lambda v: self.node(expr.i, expr.j, expr.first, v)) if expr.kind == NODE else (lambda v: self.prod(expr.first, v))
        return [make(v) for v in subs]

    def expand(self, expr):
        holes = self._holes(expr, (), [])
        long_holes = [h for h in holes if h[0] > self.list_length]
        if long_holes:
            _, path, hole = max(long_holes, key=lambda h: h[0])
        else:
            _, path, hole = min(holes, key=lambda h: h[0])
        return self._rebuild(expr, path, PlanSearch.expand(self, hole))

    def _value(self, expr, subs):
        kind = expr.kind
        if kind == LEAF:
            return expr.lo
        if kind in (HOLE_V, HOLE_F):
            return subs[id(expr)]
        first = self._value(expr.first, subs)
        rest = self._value(expr.rest, subs)
        if kind == PROD:
            return first * rest
        r = self.ret_f[expr.j]
        if self.init_code == 0:
            a0 = first
        elif self.init_code == 1:
            a0 = self.jump_f[expr.i][expr.j]
        else:
            a0 = 0.0 if self.init_code == 2 else 1.0
        return node_value(r, first, rest, a0)

    def _fill(self, hole, index):
        kind = "V" if hole.kind == HOLE_V else "F"
        if kind == "V":
            return self.lists.tree(hole.i, hole.j, index)
        return self.lists.forest(hole.i, hole.j, index)

    def resolve(self, expr):
        if expr.holes == 0:
            return self.bound_sq(expr), lambda: self.to_plan(expr)
        holes = self._holes(expr, (), [])
        if len(holes) > 2 or any(h[0] > self.list_length for h in holes):
            return None
        goals = (self.goal0, -self.goal0) if self.data_target else (self.goal0,)
        if len(holes) == 1:
            hole = holes[0][2]
            values = self.lists.get("V" if hole.kind == HOLE_V else "F", hole.i, hole.j)[0]
            s0 = self._value(expr, {id(hole): 0.0})
            s1 = self._value(expr, {id(hole): 1.0})
            best = min(closest_pair(self._one, values, 0.0, 0.0, s1 - s0, s0, goal) for goal in goals)
            return self.scale0 * best[0] ** 2, lambda: self.to_plan(expr, {id(hole): self._fill(hole, int(best[2]))})
        hole_1, hole_2 = holes[0][2], holes[1][2]
        values_1 = self.lists.get("V" if hole_1.kind == HOLE_V else "F", hole_1.i, hole_1.j)[0]
        values_2 = self.lists.get("V" if hole_2.kind == HOLE_V else "F", hole_2.i, hole_2.j)[0]
        s00 = self._value(expr, {id(hole_1): 0.0, id(hole_2): 0.0})
        s10 = self._value(expr, {id(hole_1): 1.0, id(hole_2): 0.0})
        s01 = self._value(expr, {id(hole_1): 0.0, id(hole_2): 1.0})
        s11 = self._value(expr, {id(hole_1): 1.0, id(hole_2): 1.0})
        coef_a, coef_b, coef_c = s11 - s10 - s01 + s00, s10 - s00, s01 - s00
        swap = values_1.shape[0] > values_2.shape[0]
        if swap:  # iterate over the shorter list
            values_1, values_2, coef_b, coef_c = values_2, values_1, coef_c, coef_b
        best = min(closest_pair(values_1, values_2, coef_a, coef_b, coef_c, s00, goal) for goal in goals)
        index_1, index_2 = (int(best[2]), int(best[1])) if swap else (int(best[1]), int(best[2]))

        def make_plan():
            return self.to_plan(expr, {id(hole_1): self._fill(hole_1, index_1), id(hole_2): self._fill(hole_2, index_2)})

        return self.scale0 * best[0] ** 2, make_plan
