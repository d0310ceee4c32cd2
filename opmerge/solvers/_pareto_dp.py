r"""The dynamic program over fronts of value vectors (:mod:`opmerge.solvers.pareto`). Private.

:class:`ParetoDP` fills, bottom-up over the intervals ``j -> i``, the front of every position
(trees ``V``, forests ``F``, segment sequences ``G``) from the fronts of its parts, with the
kernels of :mod:`opmerge.solvers._pareto_kernels`: a candidate is dropped when its bound reaches
the threshold or when another vector of the same position dominates it. Back-pointers rebuild
the plan of any root vector (:meth:`ParetoDP.plan_of`). Used by
:func:`opmerge.solvers.pareto.solve_joint` (no labels) and by
:func:`opmerge.solvers.front.fidelity_cost_front` (cost labels).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..objective import Problem
from ..plans import Plan
from ._checks import check_problem
from ._kernels import INIT_CODES
from ._pareto_kernels import (combine_candidates, context_bounds_levels, context_bounds_start, greedy_fronts,
                              merge_fronts)
from .tables import ProblemTables, plan_from_shape, rebuild_shape

__all__ = ["ParetoDP", "ParetoAbort", "pareto_applicable", "root_objective"]

#: candidate vectors generated per kernel call (bounds the memory of one interval's batch)
_BATCH = 32768
#: direction-terms of dominance tests per kernel call (about 0.1-0.5 s) before the clock is read again
_PAIR_WORK = 20_000_000


class ParetoAbort(Exception):
    """The Pareto DP ran out of room; ``reason`` is ``"max_front"``, ``"node_budget"`` or ``"time_budget"``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def pareto_applicable(problem: Problem) -> tuple[bool, str]:
    r"""Whether the Pareto path is exact for ``problem``, and why not when it is not.

    Requires ``budget='per-merge'`` (the retention of a node must not depend on the whole plan),
    every teacher step :math:`A_n \ge 0`, every retention :math:`r_j \in [0, 1]` and, for the
    ``ddim`` init, every jump :math:`D(j \to i) \ge 0`: then every value is :math:`\ge 0` and every
    node value is non-decreasing in each child (``docs/theory.md`` §4), which the bounds rely on.

    Parameters
    ----------
    problem : Problem

    Returns
    -------
    applicable : bool
    reason : str
        Why the path does not apply (``""`` when it does).
    """
    check_problem(problem)
    if problem.model.budget == "total":
        return False, "budget='total' ties each node's retention to the plan's merge count"
    if not np.all(problem.step_values[:, 1:] >= 0):
        return False, "some teacher step operator is negative"
    if problem.steps >= 2 and not np.all((problem.retention[:, 2:] >= 0) & (problem.retention[:, 2:] <= 1)):
        return False, "some retention lies outside [0, 1]"
    if problem.model.init == "ddim" and not np.all(np.triu(problem.jump, 1) >= 0):
        return False, "some DDIM jump D(j -> i) is negative"
    return True, ""


@dataclass(slots=True, eq=False)
class _Front:
    """Front of one position: values (K, d), bounds (K,), labels (K, 2), back-pointers."""

    values: np.ndarray
    lb: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    ia: np.ndarray
    ib: np.ndarray

    def __len__(self) -> int:
        return self.values.shape[0]


def _empty_front(d: int) -> _Front:
    return _Front(np.empty((0, d)), np.empty(0), np.zeros((0, 2), np.int64), np.empty(0, np.int64),
                  np.empty(0, np.int64), np.empty(0, np.int64))


class ParetoDP:
    r"""The front dynamic program of :func:`~opmerge.solvers.pareto.solve_joint` (and, with cost
    labels, of :func:`opmerge.solvers.front.fidelity_cost_front`). Internal: takes validated input.

    Parameters
    ----------
    problem : Problem
        The Pareto path must apply (:func:`pareto_applicable`).
    threshold : float
        Prune candidates with :math:`\mathrm{LB}^2 \ge` ``threshold`` (``inf``: none).
    label_rule : int
        0 none, 1 merge count, 2 peak leaf children (see :mod:`opmerge.solvers.front`).
    max_front : int
        :meth:`run` raises :class:`ParetoAbort` when a front grows beyond it.
    node_budget : int
        Same, when more candidate vectors than this have been generated.
    deadline : float
        Same, when ``time.perf_counter()`` passes it.
    tables : ProblemTables, optional
        The range tables of ``problem`` (built when omitted).
    budget : Budget, optional
        Told the number of candidates after every batch, for progress reports
        (:class:`~opmerge.solvers._control.Budget`).
    beam : int, optional
        Keep only the ``beam`` vectors of smallest bound of every front (sets ``truncated``).

    Attributes
    ----------
    candidates : int
        Candidate vectors generated so far.
    largest_front : int
    truncated : bool
        Whether the beam dropped vectors (the fronts are then not exact).
    """

    def __init__(self, problem: Problem, threshold: float, *, label_rule: int = 0, max_front: int = 20000,
                 node_budget: int = 10**12, deadline: float = math.inf, tables: ProblemTables | None = None,
                 beam: int | None = None, budget=None):
        self.problem = problem
        self.beam = beam
        self.truncated = False
        self.threshold = float(threshold)
        self.label_rule = label_rule
        self.max_front = max_front
        self.node_budget = node_budget
        self.deadline = deadline
        self.budget = budget
        self.n = problem.steps
        self.m_seg = problem.segments
        self.d = problem.dim
        tables = ProblemTables(problem) if tables is None else tables
        # bounds (ranges, retention, DDIM jump) per slot: one direction each, or a group of directions
        slots = tables.slot_bounds()
        self.v_lo, self.v_hi, self.f_lo, self.f_hi = (slots.tables[k] for k in ("v_lo", "v_hi", "f_lo", "f_hi"))
        self.g_lo, self.g_hi = slots.tables["g_lo"], slots.tables["g_hi"]
        self.slots = slots
        self.s_lo = np.ascontiguousarray(tables.lo, dtype=np.float64)
        self.s_hi = np.ascontiguousarray(tables.hi, dtype=np.float64)
        self.goal = np.ascontiguousarray(problem.goal, dtype=np.float64)
        self.scale = np.ascontiguousarray(problem.scale, dtype=np.float64)
        # exact per-direction operators of the candidates: (N + 1, d), (N + 1, d), (N + 1, N + 1, d)
        self.steps_t, self.retention_t, self.jump_t = tables.problem_last()
        self.init_code = INIT_CODES[problem.model.init]
        self.candidates = 0
        self.min_pruned = math.inf
        self.largest_front = 0

    # ----------------------------------------------------------------------------------------
    def _at(self, table: np.ndarray, a: int, j: int) -> np.ndarray:
        """The context bounds ``(4, d)`` of position ``[a, j]`` per direction (a group's bounds hold
        for each of its directions)."""
        if self.slots.identity:
            return table[a, j]
        return np.ascontiguousarray(table[a, j][:, self.slots.group_of])

    def _a0(self, i: int, j: int) -> np.ndarray:
        if self.init_code == 0:
            return np.empty(0)
        if self.init_code == 1:
            return np.ascontiguousarray(self.jump_t[i, j])
        return np.full(self.d, 0.0 if self.init_code == 2 else 1.0)

    def _check(self) -> None:
        if self.budget is not None:
            self.budget.report("pareto", self.candidates)
        if self.candidates > self.node_budget:
            raise ParetoAbort("node_budget")
        if time.perf_counter() > self.deadline:
            raise ParetoAbort("time_budget")

    def _merge(self, front: _Front, values, lb, labels, split, ia, ib, ctx) -> _Front:
        """Front of (front ∪ new candidates), sorted by bound."""
        if values.shape[0] == 0:
            return front
        old_keep, new_keep = merge_fronts(front.values, front.labels, values, lb, labels, ctx,
                                          self.s_lo, self.s_hi, self.goal, self.scale)
        if len(new_keep) == 0:
            return front
        pick = lambda old, new: np.concatenate([old[old_keep], new[new_keep]])  # noqa: E731
        all_lb = pick(front.lb, lb)
        order = np.argsort(all_lb, kind="stable")
        out = _Front(np.ascontiguousarray(pick(front.values, values)[order]), all_lb[order],
                     np.ascontiguousarray(pick(front.labels, labels)[order]), pick(front.split, split)[order],
                     pick(front.ia, ia)[order], pick(front.ib, ib)[order])
        if self.beam is not None and len(out) > self.beam:
            self.truncated = True
            keep = slice(0, self.beam)
            out = _Front(out.values[keep], out.lb[keep], out.labels[keep], out.split[keep], out.ia[keep], out.ib[keep])
        if len(out) > self.max_front:
            raise ParetoAbort("max_front")
        return out

    def _combine_into(self, front: _Front, first: _Front, rest: _Front, mode: int, split: int, r, a0, ctx,
                      first_is_leaf: bool) -> _Front:
        if len(first) == 0 or len(rest) == 0:
            return front
        # keep one kernel call short (about _PAIR_WORK direction-terms) so the clock is read often
        per_candidate = max(len(front), 64) * self.d
        batch = int(min(_BATCH, max(16, _PAIR_WORK // per_candidate)))
        block = max(1, batch // len(rest))
        for start in range(0, len(first), block):
            stop = min(len(first), start + block)
            vals, ia, ib, lb, labels, min_pruned = combine_candidates(
                first.values[start:stop], rest.values, first.labels[start:stop], rest.labels, mode, r, a0, ctx,
                self.s_lo, self.s_hi, self.goal, self.scale, self.threshold, self.label_rule, first_is_leaf,
            )
            self.candidates += (stop - start) * len(rest)
            self.min_pruned = min(self.min_pruned, min_pruned)
            front = self._merge(front, vals, lb, labels, np.full(len(ia), split, np.int64), ia + start, ib, ctx)
            self._check()
        return front

    def _leaf_front(self, j: int, ctx) -> _Front:
        value = np.ascontiguousarray(self.steps_t[j][None, :])
        one = np.ones((1, self.d))
        zero_lab = np.zeros((1, 2), np.int64)
        vals, _ia, _ib, lb, _lab, min_pruned = combine_candidates(
            value, one, zero_lab, zero_lab, 1, np.empty(0), np.empty(0), ctx, self.s_lo, self.s_hi, self.goal,
            self.scale, self.threshold, 0, False,
        )
        self.min_pruned = min(self.min_pruned, min_pruned)
        n_kept = vals.shape[0]
        return _Front(vals, lb, np.zeros((n_kept, 2), np.int64), np.full(n_kept, -1, np.int64),
                      np.zeros(n_kept, np.int64), np.zeros(n_kept, np.int64))

    # ----------------------------------------------------------------------------------------
    def _contexts(self) -> None:
        """The context bounds and reachability of every position (longest intervals first)."""
        (self.ctx_v, self.reach_v, self.ctx_f, self.reach_f, self.ctx_g, self.reach_g,
         h_lo, h_hi, h_ok) = context_bounds_start(self.v_lo, self.v_hi, self.g_lo, self.g_hi, self.m_seg, self.s_lo,
                                                  self.s_hi, self.goal, self.scale, self.slots.group_of, self.threshold)
        for length in range(self.n, 0, -1):  # one length per kernel call: the clock is read in between
            context_bounds_levels(
                self.v_lo, self.v_hi, self.f_lo, self.f_hi, self.g_lo, self.g_hi, self.slots.ret_lo, self.slots.ret_hi,
                self.init_code, self.slots.jump_lo, self.slots.jump_hi, self.m_seg, self.s_lo, self.s_hi, self.goal,
                self.scale, self.slots.group_of, self.slots.s_hi, self.threshold,
                self.ctx_v, self.reach_v, self.ctx_f, self.reach_f, h_lo, h_hi, h_ok, length, length,
            )
            self._check()

    def greedy_plan(self) -> Plan | None:
        """A good plan, fast: the DP keeping one vector per position, replaced by a candidate that it
        does not dominate and that dominates it or has a smaller bound
        (:func:`~opmerge.solvers._pareto_kernels.greedy_fronts`); ``None`` when no plan is left
        below the threshold. Not claimed optimal: it seeds the exact runs."""
        self._contexts()
        splits = greedy_fronts(self.steps_t, self.retention_t, self.jump_t, self.init_code, self.m_seg, self.ctx_v,
                               self.reach_v, self.ctx_f, self.reach_f, self.ctx_g, self.reach_g, self.slots.group_of,
                               self.slots.identity, self.s_lo, self.s_hi, self.goal, self.scale)
        root = splits[0][0, self.n] if self.m_seg == 1 else splits[2][self.m_seg, self.n]
        if root == -2:
            return None

        def choose(kind, a, j, _state):
            return int(splits[kind][a, j]), 0, 0

        return plan_from_shape(rebuild_shape(choose, self.n, self.m_seg, 0))

    def run(self) -> _Front:
        """Fill the fronts bottom-up; returns the root front (``values``, ``lb``, ``labels`` per vector).

        Raises
        ------
        ParetoAbort
            When a front exceeds ``max_front``, the candidates ``node_budget`` or the clock ``deadline``.
        """
        n, d, m_seg = self.n, self.d, self.m_seg
        self._contexts()
        self.V: dict = {}
        self.F: dict = {}
        leaf_labels = self.label_rule == 2
        for length in range(1, n + 1):
            for i in range(0, n - length + 1):
                j = i + length
                if length == 1:
                    self.V[i, j] = self._leaf_front(j, self._at(self.ctx_v, i, j)) if self.reach_v[i, j] else _empty_front(d)
                    front = self._leaf_front(j, self._at(self.ctx_f, i, j)) if self.reach_f[i, j] else _empty_front(d)
                    if leaf_labels and len(front):
                        front.labels[:, 0] = 1  # a forest made of one leaf holds one leaf tree
                    self.F[i, j] = front
                    continue
                # trees over j -> i
                front = _empty_front(d)
                if self.reach_v[i, j]:
                    r = np.ascontiguousarray(self.retention_t[j])
                    a0 = self._a0(i, j)
                    ctx = self._at(self.ctx_v, i, j)
                    for m in range(j - 1, i, -1):
                        front = self._combine_into(front, self.V[m, j], self.F[i, m], 0, m, r, a0, ctx, j - m == 1)
                self.V[i, j] = front
                self.largest_front = max(self.largest_front, len(front))
                # forests over j -> i
                front = _empty_front(d)
                if self.reach_f[i, j]:
                    ctx = self._at(self.ctx_f, i, j)
                    tree = self.V[i, j]
                    if len(tree):
                        lab = tree.labels.copy()
                        if self.label_rule == 2:
                            lab[:, 0] = 0  # one tree, which is not a leaf (length >= 2)
                        lb = _position_lb(tree.values, ctx, self.s_lo, self.s_hi, self.goal, self.scale)
                        keep = lb < self.threshold
                        idx = np.nonzero(keep)[0]
                        front = self._merge(front, np.ascontiguousarray(tree.values[idx]), lb[idx], np.ascontiguousarray(lab[idx]),
                                            np.full(len(idx), -1, np.int64), idx.astype(np.int64), np.zeros(len(idx), np.int64), ctx)
                    for m in range(j - 1, i, -1):
                        front = self._combine_into(front, self.V[m, j], self.F[i, m], 1, m, np.empty(0), np.empty(0), ctx, j - m == 1)
                self.F[i, j] = front
                self.largest_front = max(self.largest_front, len(front))
        # segments: G[k][j] = k trees covering j -> 0
        self.G: dict = {}
        if m_seg == 1:
            return self.V[0, n]
        for j in range(1, n + 1):
            self.G[1, j] = self.V[0, j] if self.reach_g[1, j] else _empty_front(d)
        for k in range(2, m_seg + 1):
            for j in range(k, n + 1):
                front = _empty_front(d)
                if self.reach_g[k, j]:
                    ctx = self._at(self.ctx_g, k, j)
                    for m in range(j - 1, k - 2, -1):
                        if (k - 1, m) in self.G:
                            # a segment is not a child of a node: no leaf-child count (label rule 2)
                            front = self._combine_into(front, self.V[m, j], self.G[k - 1, m], 1, m, np.empty(0), np.empty(0), ctx,
                                                       False)
                self.G[k, j] = front
        return self.G[m_seg, n]

    # ----------------------------------------------------------------------------------------
    def plan_of(self, index: int) -> Plan:
        """Rebuild the plan of entry ``index`` of the root front from the back-pointers."""

        def choose(kind, a, j, idx):
            entry = (self.V, self.F, self.G)[kind][a, j]
            return int(entry.split[idx]), int(entry.ia[idx]), int(entry.ib[idx])

        return plan_from_shape(rebuild_shape(choose, self.n, self.m_seg, index))


def _position_lb(values, ctx, s_lo, s_hi, goal, scale) -> np.ndarray:
    """Vectorised bound of value vectors at a position (same formula as the kernels)."""
    lo = np.maximum(ctx[0] + ctx[2] * values, s_lo)
    hi = np.minimum(ctx[1] + ctx[3] * values, s_hi)
    dist = np.where(goal < lo, lo - goal, np.where(goal > hi, goal - hi, 0.0))
    dist = np.where(lo <= hi, dist, 0.0)
    return np.ascontiguousarray(np.sum(scale * dist * dist, axis=1))


def root_objective(problem: Problem, values: np.ndarray) -> np.ndarray:
    r""":math:`W_2^2` of root value vectors (rows), as :func:`~opmerge.objective.w2_distance` computes it.

    .. math:: W_2^2 = \sum_i s_i\, (\tilde S_i - g_i)^2, \qquad
              \tilde S_i = |S_i| \text{ (target ``data``) or } S_i \text{ (``teacher``)}

    Parameters
    ----------
    problem : Problem
    values : (K, d) ndarray
        Student values of ``K`` plans, one row each.

    Returns
    -------
    (K,) ndarray
    """
    v = np.abs(values) if problem.target == "data" else values
    return np.sum(problem.scale * (v - problem.goal) ** 2, axis=1)
