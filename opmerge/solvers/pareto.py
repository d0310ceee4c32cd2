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
:math:`\alpha_i, \beta_i \ge 0`. A top-down pass (:func:`context_bounds`) bounds
:math:`\alpha_i \in [A^-_i, A^+_i]` and :math:`\beta_i \in [B^-_i, B^+_i]` over all contexts of
every position, composing the local affine maps of THEORY.md §4 with the exact value ranges of the
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
"""

from __future__ import annotations

import inspect
import math
import time

import numpy as np
from numba import njit

from .._util import deep_recursion
from ..objective import Problem, evaluate_plan
from ..plans import MergeNode, Plan
from . import exact as _exact

__all__ = [
    "solve_joint",
    "pareto_applicable",
    "per_direction_bound",
    "context_bounds",
    "combine_candidates",
    "dominance_filter",
    "merge_fronts",
    "dominates",
    "position_coefficients",
    "context_bounds_reference",
    "combine_candidates_reference",
    "dominance_filter_reference",
    "merge_fronts_reference",
    "dominates_reference",
    "PARETO_METHODS",
]

PARETO_METHODS = ("pareto", "search", "pareto+search")
#: share of ``time_budget`` given to the Pareto DP attempts before the branch and bound takes over
_PARETO_SHARE = 0.85
#: share of ``time_budget`` for the first attempt (threshold: incumbent - tol)
_FIRST_SHARE = 0.4
#: first bisection point between the certified bound and the incumbent (fraction of the gap in W2^2)
_BISECT_START = 0.25
_INIT_CODES = {"warm": 0, "ddim": 1, "zero": 2, "identity": 3}
#: candidate vectors generated per kernel call (bounds the memory of one interval's batch)
_BATCH = 32768
#: direction-terms of dominance tests per kernel call (about 0.1-0.5 s) before the clock is read again
_PAIR_WORK = 20_000_000


class _Abort(Exception):
    """The Pareto DP ran out of room (front size, candidate budget or time)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# =============================================================================================
# Numba kernels (each has a plain-Python reference below; tests compare them)
# =============================================================================================


@njit(cache=True)
def _accumulate(ctx, reach, slot_i, slot_j, scratch, pa_lo, pa_hi, pb_lo, pb_hi, la_lo, la_hi, lb_lo, lb_hi,
                x_lo, x_hi, s_lo, s_hi, goal, scale, threshold):
    """Compose a parent context with a local affine map; merge into ``ctx[slot_i, slot_j]`` if viable."""
    d = goal.shape[0]
    total = 0.0
    for k in range(d):
        a_lo = pa_lo[k] + pb_lo[k] * la_lo[k]
        a_hi = pa_hi[k] + pb_hi[k] * la_hi[k]
        b_lo = pb_lo[k] * lb_lo[k]
        b_hi = pb_hi[k] * lb_hi[k]
        scratch[0, k] = a_lo
        scratch[1, k] = a_hi
        scratch[2, k] = b_lo
        scratch[3, k] = b_hi
        lo = a_lo + b_lo * x_lo[k]
        hi = a_hi + b_hi * x_hi[k]
        if lo < s_lo[k]:
            lo = s_lo[k]
        if hi > s_hi[k]:
            hi = s_hi[k]
        if lo <= hi:
            g = goal[k]
            if g < lo:
                total += scale[k] * (lo - g) * (lo - g)
            elif g > hi:
                total += scale[k] * (g - hi) * (g - hi)
    if total >= threshold:
        return
    if not reach[slot_i, slot_j]:
        reach[slot_i, slot_j] = True
        for k in range(d):
            ctx[slot_i, slot_j, 0, k] = scratch[0, k]
            ctx[slot_i, slot_j, 1, k] = scratch[1, k]
            ctx[slot_i, slot_j, 2, k] = scratch[2, k]
            ctx[slot_i, slot_j, 3, k] = scratch[3, k]
    else:
        for k in range(d):
            ctx[slot_i, slot_j, 0, k] = min(ctx[slot_i, slot_j, 0, k], scratch[0, k])
            ctx[slot_i, slot_j, 1, k] = max(ctx[slot_i, slot_j, 1, k], scratch[1, k])
            ctx[slot_i, slot_j, 2, k] = min(ctx[slot_i, slot_j, 2, k], scratch[2, k])
            ctx[slot_i, slot_j, 3, k] = max(ctx[slot_i, slot_j, 3, k], scratch[3, k])


@njit(cache=True)
def _clip(ctx, reach, slot_i, slot_j, x_lo, s_hi):
    """Tighten a finished context: alpha <= S_hi and beta <= (S_hi - A_lo) / x_lo."""
    if not reach[slot_i, slot_j]:
        return
    d = s_hi.shape[0]
    for k in range(d):
        if ctx[slot_i, slot_j, 1, k] > s_hi[k]:
            ctx[slot_i, slot_j, 1, k] = s_hi[k]
        if x_lo[k] > 0.0:
            cap = (s_hi[k] - ctx[slot_i, slot_j, 0, k]) / x_lo[k]
            if cap >= ctx[slot_i, slot_j, 2, k] and cap < ctx[slot_i, slot_j, 3, k]:
                ctx[slot_i, slot_j, 3, k] = cap


@njit(cache=True)
def context_bounds(v_lo, v_hi, f_lo, f_hi, g_lo, g_hi, retention, init_code, jump, segments,
                   s_lo, s_hi, goal, scale, threshold):
    r"""Bounds on the affine context :math:`S = \alpha + \beta x` of every position (top-down pass).

    Parameters
    ----------
    v_lo, v_hi, f_lo, f_hi : float64[N + 1, N + 1, d]
        Exact value ranges of trees / forests over ``j -> i`` at ``[i, j]``.
    g_lo, g_hi : float64[M + 1, N + 1, d]
        Ranges of ``k`` segments covering ``j -> 0`` at ``[k, j]``.
    retention : float64[N + 1, d]; init_code : int; jump : float64[N + 1, N + 1, d] (``ddim``) or any
    segments : int
    s_lo, s_hi, goal, scale : float64[d]
        Achievable root range, goal and :math:`s_i = \omega_i\|v_{N,i}\|^2`.
    threshold : float
        Contexts whose bound :math:`\mathrm{LB}^2 \ge` ``threshold`` are left out (``inf``: keep all).

    Returns
    -------
    ctx_v, ctx_f : float64[N + 1, N + 1, 4, d]
        ``[i, j] = (A_lo, A_hi, B_lo, B_hi)`` for a tree / forest over ``j -> i``.
    reach_v, reach_f : bool[N + 1, N + 1]
        Whether any viable context exists.
    ctx_g : float64[M + 1, N + 1, 4, d]; reach_g : bool[M + 1, N + 1]
        The same for ``k`` segments covering ``j -> 0`` (``alpha = 0``).
    """
    n = v_lo.shape[0] - 1
    d = goal.shape[0]
    m_seg = segments
    ctx_v = np.zeros((n + 1, n + 1, 4, d))
    ctx_f = np.zeros((n + 1, n + 1, 4, d))
    reach_v = np.zeros((n + 1, n + 1), np.bool_)
    reach_f = np.zeros((n + 1, n + 1), np.bool_)
    scratch = np.zeros((4, d))
    zeros = np.zeros(d)
    ones = np.ones(d)
    la_lo = np.zeros(d)
    la_hi = np.zeros(d)
    lb_lo = np.zeros(d)
    lb_hi = np.zeros(d)
    # H[k, j]: range of the product of k trees covering N -> j (k = 0 only at j = N, value 1)
    h_lo = np.ones((m_seg, n + 1, d))
    h_hi = np.ones((m_seg, n + 1, d))
    h_ok = np.zeros((m_seg, n + 1), np.bool_)
    h_ok[0, n] = True
    for k in range(1, m_seg):
        for j in range(n - k, -1, -1):
            first = True
            for m in range(j + 1, n + 1):
                if not h_ok[k - 1, m]:
                    continue
                for c in range(d):
                    lo = h_lo[k - 1, m, c] * v_lo[j, m, c]
                    hi = h_hi[k - 1, m, c] * v_hi[j, m, c]
                    if first or lo < h_lo[k, j, c]:
                        h_lo[k, j, c] = lo
                    if first or hi > h_hi[k, j, c]:
                        h_hi[k, j, c] = hi
                first = False
            h_ok[k, j] = not first
    # G positions: k segments covering j -> 0 sit under M - k segments covering N -> j
    ctx_g = np.zeros((m_seg + 1, n + 1, 4, d))
    reach_g = np.zeros((m_seg + 1, n + 1), np.bool_)
    for k in range(1, m_seg + 1):
        for j in range(k, n + 1):
            if not h_ok[m_seg - k, j]:
                continue
            _accumulate(ctx_g, reach_g, k, j, scratch, zeros, zeros, ones, ones, zeros, zeros,
                        h_lo[m_seg - k, j], h_hi[m_seg - k, j], g_lo[k, j], g_hi[k, j], s_lo, s_hi, goal, scale, threshold)
    for length in range(n, 0, -1):
        for i in range(0, n - length + 1):
            j = i + length
            # ---- forest over j -> i
            for jp in range(j + 1, n + 1):
                # (e) rest of a node over jp -> i whose first child covers jp -> j
                if reach_v[i, jp]:
                    for c in range(d):
                        r = retention[jp, c]
                        if init_code == 0:
                            la_lo[c] = r * v_lo[j, jp, c]
                            la_hi[c] = r * v_hi[j, jp, c]
                        else:
                            a0 = jump[i, jp, c] if init_code == 1 else (0.0 if init_code == 2 else 1.0)
                            la_lo[c] = r * a0
                            la_hi[c] = r * a0
                        lb_lo[c] = (1.0 - r) * v_lo[j, jp, c]
                        lb_hi[c] = (1.0 - r) * v_hi[j, jp, c]
                    _accumulate(ctx_f, reach_f, i, j, scratch, ctx_v[i, jp, 0], ctx_v[i, jp, 1], ctx_v[i, jp, 2], ctx_v[i, jp, 3],
                                la_lo, la_hi, lb_lo, lb_hi, f_lo[i, j], f_hi[i, j], s_lo, s_hi, goal, scale, threshold)
                # (f) tail of a forest over jp -> i whose first tree covers jp -> j
                if reach_f[i, jp]:
                    _accumulate(ctx_f, reach_f, i, j, scratch, ctx_f[i, jp, 0], ctx_f[i, jp, 1], ctx_f[i, jp, 2], ctx_f[i, jp, 3],
                                zeros, zeros, v_lo[j, jp], v_hi[j, jp], f_lo[i, j], f_hi[i, j], s_lo, s_hi, goal, scale, threshold)
            _clip(ctx_f, reach_f, i, j, f_lo[i, j], s_hi)
            # ---- tree over j -> i
            # (a) a whole segment: k1 segments above (N -> j), k2 below (i -> 0)
            for k1 in range(0, m_seg):
                k2 = m_seg - 1 - k1
                if not h_ok[k1, j]:
                    continue
                if k2 == 0:
                    if i != 0:
                        continue
                    for c in range(d):
                        lb_lo[c] = h_lo[k1, j, c]
                        lb_hi[c] = h_hi[k1, j, c]
                else:
                    if i < k2:
                        continue
                    for c in range(d):
                        lb_lo[c] = h_lo[k1, j, c] * g_lo[k2, i, c]
                        lb_hi[c] = h_hi[k1, j, c] * g_hi[k2, i, c]
                _accumulate(ctx_v, reach_v, i, j, scratch, zeros, zeros, ones, ones, zeros, zeros, lb_lo, lb_hi,
                            v_lo[i, j], v_hi[i, j], s_lo, s_hi, goal, scale, threshold)
            # (b) the only tree of a forest
            if reach_f[i, j]:
                _accumulate(ctx_v, reach_v, i, j, scratch, ctx_f[i, j, 0], ctx_f[i, j, 1], ctx_f[i, j, 2], ctx_f[i, j, 3],
                            zeros, zeros, ones, ones, v_lo[i, j], v_hi[i, j], s_lo, s_hi, goal, scale, threshold)
            for ip in range(0, i):
                # (c) first child of a node over j -> ip, the rest a forest over i -> ip
                if reach_v[ip, j]:
                    for c in range(d):
                        r = retention[j, c]
                        if init_code == 0:
                            la_lo[c] = 0.0
                            la_hi[c] = 0.0
                            lb_lo[c] = (1.0 - r) * f_lo[ip, i, c] + r
                            lb_hi[c] = (1.0 - r) * f_hi[ip, i, c] + r
                        else:
                            a0 = jump[ip, j, c] if init_code == 1 else (0.0 if init_code == 2 else 1.0)
                            la_lo[c] = r * a0
                            la_hi[c] = r * a0
                            lb_lo[c] = (1.0 - r) * f_lo[ip, i, c]
                            lb_hi[c] = (1.0 - r) * f_hi[ip, i, c]
                    _accumulate(ctx_v, reach_v, i, j, scratch, ctx_v[ip, j, 0], ctx_v[ip, j, 1], ctx_v[ip, j, 2], ctx_v[ip, j, 3],
                                la_lo, la_hi, lb_lo, lb_hi, v_lo[i, j], v_hi[i, j], s_lo, s_hi, goal, scale, threshold)
                # (d) first tree of a forest over j -> ip
                if reach_f[ip, j]:
                    _accumulate(ctx_v, reach_v, i, j, scratch, ctx_f[ip, j, 0], ctx_f[ip, j, 1], ctx_f[ip, j, 2], ctx_f[ip, j, 3],
                                zeros, zeros, f_lo[ip, i], f_hi[ip, i], v_lo[i, j], v_hi[i, j], s_lo, s_hi, goal, scale, threshold)
            _clip(ctx_v, reach_v, i, j, v_lo[i, j], s_hi)
    return ctx_v, reach_v, ctx_f, reach_f, ctx_g, reach_g


@njit(cache=True)
def combine_candidates(first, rest, labels_first, labels_rest, mode, retention, a0, ctx, s_lo, s_hi, goal, scale,
                       threshold, label_rule, first_is_leaf):
    r"""Candidate vectors of one split, with their bounds; those with :math:`\mathrm{LB}^2 \ge` ``threshold`` are dropped.

    Parameters
    ----------
    first : float64[na, d]   values of the first part (a tree over ``j -> m``)
    rest : float64[nb, d]    values of the rest (a forest over ``m -> i``, or segments over ``m -> 0``)
    labels_first : int64[na, 2]; labels_rest : int64[nb, 2]
        Cost labels (see :mod:`opmerge.solvers.front`; all zero for :func:`solve_joint`).
    mode : int
        0: merge node :math:`(1 - r)(c_1 R) + r a_0`; 1: product :math:`c_1 R`.
    retention : float64[d]  :math:`r_j` of the node; a0 : float64[d] the constant init, or ``first`` itself
        when ``a0`` has length 0 (warm start).
    ctx : float64[4, d] context bounds of the position; s_lo, s_hi, goal, scale : float64[d]
    threshold : float
    label_rule : int
        0: labels stay zero; 1: merges (node adds 1); 2: peak leaf children (see ``front``).
    first_is_leaf : bool

    Returns
    -------
    values : float64[n, d]; idx_first, idx_rest : int64[n]; lb_sq : float64[n]; labels : int64[n, 2]
    min_pruned : float   smallest bound of a dropped candidate (``inf`` if none)
    """
    na = first.shape[0]
    nb = rest.shape[0]
    d = goal.shape[0]
    warm = a0.shape[0] == 0
    total = na * nb
    values = np.empty((total, d))
    idx_first = np.empty(total, np.int64)
    idx_rest = np.empty(total, np.int64)
    lb_sq = np.empty(total)
    labels = np.zeros((total, 2), np.int64)
    count = 0
    min_pruned = np.inf
    for a in range(na):
        for b in range(nb):
            bound = 0.0
            for k in range(d):
                prod = first[a, k] * rest[b, k]
                if mode == 0:
                    r = retention[k]
                    init = first[a, k] if warm else a0[k]
                    val = (1.0 - r) * prod + r * init
                else:
                    val = prod
                values[count, k] = val
                lo = ctx[0, k] + ctx[2, k] * val
                hi = ctx[1, k] + ctx[3, k] * val
                if lo < s_lo[k]:
                    lo = s_lo[k]
                if hi > s_hi[k]:
                    hi = s_hi[k]
                if lo <= hi:
                    g = goal[k]
                    if g < lo:
                        bound += scale[k] * (lo - g) * (lo - g)
                    elif g > hi:
                        bound += scale[k] * (g - hi) * (g - hi)
            if bound >= threshold:
                if bound < min_pruned:
                    min_pruned = bound
                continue
            idx_first[count] = a
            idx_rest[count] = b
            lb_sq[count] = bound
            if label_rule == 1:
                labels[count, 0] = labels_first[a, 0] + labels_rest[b, 0] + (1 if mode == 0 else 0)
            elif label_rule == 2:
                leaf = 1 if first_is_leaf else 0
                if mode == 0:
                    # node: its own leaf children = [first is a leaf] + leaf trees of the rest
                    own = leaf + labels_rest[b, 0]
                    peak = max(labels_first[a, 1], labels_rest[b, 1], own)
                    labels[count, 0] = 0
                    labels[count, 1] = peak
                else:
                    labels[count, 0] = leaf + labels_rest[b, 0]
                    labels[count, 1] = max(labels_first[a, 1], labels_rest[b, 1])
            count += 1
    return values[:count], idx_first[:count], idx_rest[:count], lb_sq[:count], labels[:count], min_pruned


@njit(cache=True)
def position_coefficients(ctx, s_lo, s_hi, goal, scale):
    """Per-direction constants of the dominance test at one position, rows ``k``:
    ``(s, A_lo - g, A_hi - g, B_lo, B_hi, S_hi - A_lo, 2 (S_lo - g), 2 (S_hi - g))``."""
    d = goal.shape[0]
    coef = np.empty((d, 8))
    for k in range(d):
        coef[k, 0] = scale[k]
        coef[k, 1] = ctx[0, k] - goal[k]
        coef[k, 2] = ctx[1, k] - goal[k]
        coef[k, 3] = ctx[2, k]
        coef[k, 4] = ctx[3, k]
        coef[k, 5] = s_hi[k] - ctx[0, k]
        coef[k, 6] = 2.0 * (s_lo[k] - goal[k])
        coef[k, 7] = 2.0 * (s_hi[k] - goal[k])
    return coef


@njit(cache=True, inline="always")
def _term_bound(u, v, coef, k):
    """Upper bound of direction k's change of W2^2 when the value v is replaced by u."""
    delta = u - v
    s = coef[k, 0]
    if delta == 0.0 or s == 0.0:
        return 0.0
    both = u + v
    big = u if u > v else v
    b_lo = coef[k, 3]
    b_hi = coef[k, 4]
    if big > 0.0:
        cap = coef[k, 5] / big
        if cap >= b_lo and cap < b_hi:
            b_hi = cap
    if delta > 0.0:
        c = coef[k, 2]
        q1 = b_lo * b_lo * both + 2.0 * b_lo * c
        q2 = b_hi * b_hi * both + 2.0 * b_hi * c
        box = s * delta * (q1 if q1 > q2 else q2)
        y = coef[k, 7]
        x = b_hi * delta if y >= 0.0 else b_lo * delta
    else:
        c = coef[k, 1]
        q1 = b_lo * b_lo * both + 2.0 * b_lo * c
        q2 = b_hi * b_hi * both + 2.0 * b_hi * c
        qm = q1 if q1 < q2 else q2
        if both > 0.0:
            vertex = -c / both
            if b_lo < vertex < b_hi:
                qv = vertex * vertex * both + 2.0 * vertex * c
                if qv < qm:
                    qm = qv
        box = s * delta * qm
        y = coef[k, 6]
        x = b_hi * delta if y <= 0.0 else b_lo * delta
    rng = x * y * s
    return box if box < rng else rng


@njit(cache=True)
def _dominates_coef(u, v, coef):
    total = 0.0
    for k in range(coef.shape[0]):
        total += _term_bound(u[k], v[k], coef, k)
    return total <= 0.0


@njit(cache=True)
def _term_magnitudes(coef, x_lo, x_hi):
    """Largest |term| of each direction over all value pairs in [x_lo, x_hi] (for early exits)."""
    d = coef.shape[0]
    out = np.empty(d)
    for k in range(d):
        spread = x_hi[k] - x_lo[k]
        b_hi = coef[k, 4]
        y = max(abs(coef[k, 6]), abs(coef[k, 7]))
        c = max(abs(coef[k, 1]), abs(coef[k, 2]))
        out[k] = coef[k, 0] * spread * max(b_hi * y, b_hi * b_hi * 2.0 * x_hi[k] + 2.0 * b_hi * c)
    return out


@njit(cache=True)
def _dominates_ordered(u, v, coef, order, suffix):
    """``_dominates_coef`` visiting directions by decreasing magnitude, leaving early when the rest
    cannot change the sign (``suffix[t]`` bounds the sum of |term| over ``order[t:]``)."""
    total = 0.0
    d = order.shape[0]
    for t in range(d):
        k = order[t]
        total += _term_bound(u[k], v[k], coef, k)
        if total > suffix[t + 1]:
            return False
        if total <= -suffix[t + 1]:
            return True
    return total <= 0.0


@njit(cache=True)
def dominates(u, v, ctx, s_lo, s_hi, goal, scale):
    r"""True when replacing the value vector ``v`` by ``u`` (same position) never increases :math:`W_2`.

    Sufficient test :math:`\sum_i \min(\text{box}_i, \text{range}_i) \le 0` (module docstring).
    """
    return _dominates_coef(u, v, position_coefficients(ctx, s_lo, s_hi, goal, scale))


@njit(cache=True, inline="always")
def _label_ok(labels_u, u, labels_v, v):
    return labels_u[u, 0] <= labels_v[v, 0] and labels_u[u, 1] <= labels_v[v, 1]


@njit(cache=True)
def merge_fronts(old_values, old_labels, new_values, new_lb, new_labels, ctx, s_lo, s_hi, goal, scale, x_lo, x_hi):
    """Merge new candidates into a front (a set in which no vector dominates another).

    ``x_lo, x_hi`` enclose every value of the position (the interval DP's range); they only
    bound the terms for early exits, so the kept sets equal those of :func:`merge_fronts_reference`.

    1. New candidates, by increasing bound ``new_lb`` (ties: index order), are dropped when a
       vector of the old front or an already kept new one dominates them (with labels ``<=``);
    2. old vectors are dropped when a kept new one dominates them.

    Every dropped vector is dominated by a kept one (the relation is transitive). The last
    successful dominator is tried first. Returns ``(old_keep, new_keep)`` (index arrays).
    """
    coef = position_coefficients(ctx, s_lo, s_hi, goal, scale)
    magnitude = _term_magnitudes(coef, x_lo, x_hi)
    dir_order = np.argsort(-magnitude, kind="mergesort")
    suffix = np.zeros(dir_order.shape[0] + 1)
    for t in range(dir_order.shape[0] - 1, -1, -1):
        suffix[t] = suffix[t + 1] + magnitude[dir_order[t]]
    # make the early exits safe against rounding in the partial sums
    for t in range(suffix.shape[0]):
        suffix[t] = suffix[t] * (1.0 + 1e-12) + 1e-300
    n_old = old_values.shape[0]
    n_new = new_values.shape[0]
    order = np.argsort(new_lb, kind="mergesort")
    new_keep = np.empty(n_new, np.int64)
    n_kept = 0
    last_old = -1
    last_new = -1
    for t in range(n_new):
        idx = order[t]
        dominated = False
        if last_old >= 0 and _label_ok(old_labels, last_old, new_labels, idx):
            dominated = _dominates_ordered(old_values[last_old], new_values[idx], coef, dir_order, suffix)
        if not dominated and last_new >= 0 and _label_ok(new_labels, last_new, new_labels, idx):
            dominated = _dominates_ordered(new_values[last_new], new_values[idx], coef, dir_order, suffix)
        if not dominated:
            for q in range(n_old):
                if q != last_old and _label_ok(old_labels, q, new_labels, idx):
                    if _dominates_ordered(old_values[q], new_values[idx], coef, dir_order, suffix):
                        dominated = True
                        last_old = q
                        break
        if not dominated:
            for q in range(n_kept):
                k = new_keep[q]
                if k != last_new and _label_ok(new_labels, k, new_labels, idx):
                    if _dominates_ordered(new_values[k], new_values[idx], coef, dir_order, suffix):
                        dominated = True
                        last_new = k
                        break
        if not dominated:
            new_keep[n_kept] = idx
            n_kept += 1
    old_keep = np.empty(n_old, np.int64)
    n_old_kept = 0
    last_new = -1
    for q in range(n_old):
        dominated = False
        if last_new >= 0 and _label_ok(new_labels, last_new, old_labels, q):
            dominated = _dominates_ordered(new_values[last_new], old_values[q], coef, dir_order, suffix)
        if not dominated:
            for t in range(n_kept):
                k = new_keep[t]
                if k != last_new and _label_ok(new_labels, k, old_labels, q):
                    if _dominates_ordered(new_values[k], old_values[q], coef, dir_order, suffix):
                        dominated = True
                        last_new = k
                        break
        if not dominated:
            old_keep[n_old_kept] = q
            n_old_kept += 1
    return old_keep[:n_old_kept], new_keep[:n_kept]


def dominance_filter(values, lb_sq, labels, ctx, s_lo, s_hi, goal, scale) -> np.ndarray:
    """Indices of a front of ``values`` (visited by increasing ``lb_sq``): :func:`merge_fronts` into an empty front."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    d = values.shape[1]
    x_lo = values.min(axis=0) if len(values) else np.zeros(d)
    x_hi = values.max(axis=0) if len(values) else np.zeros(d)
    _, keep = merge_fronts(np.empty((0, d)), np.zeros((0, 2), np.int64), values,
                           np.ascontiguousarray(lb_sq, dtype=np.float64), np.ascontiguousarray(labels, dtype=np.int64),
                           ctx, s_lo, s_hi, goal, scale, x_lo, x_hi)
    return keep


# =============================================================================================
# Plain-Python references (same formulas, no tricks)
# =============================================================================================


def _lb_sq_reference(a_lo, a_hi, b_lo, b_hi, x_lo, x_hi, s_lo, s_hi, goal, scale) -> float:
    total = 0.0
    for k in range(len(goal)):
        lo = max(a_lo[k] + b_lo[k] * x_lo[k], s_lo[k])
        hi = min(a_hi[k] + b_hi[k] * x_hi[k], s_hi[k])
        if lo <= hi:
            dist = max(0.0, lo - goal[k], goal[k] - hi)
            total += scale[k] * dist * dist
    return total


def context_bounds_reference(v_lo, v_hi, f_lo, f_hi, g_lo, g_hi, retention, init_code, jump, segments,
                             s_lo, s_hi, goal, scale, threshold):
    """Plain-Python :func:`context_bounds`: the same contributions, as lists of (alpha, beta) boxes."""
    n = v_lo.shape[0] - 1
    d = len(goal)
    m_seg = segments
    ctx_v: dict = {}
    ctx_f: dict = {}
    ctx_g: dict = {}

    def add(table, key, parent, loc_a, loc_b, x_lo, x_hi):
        pa_lo, pa_hi, pb_lo, pb_hi = parent
        box = (
            [pa_lo[k] + pb_lo[k] * loc_a[0][k] for k in range(d)],
            [pa_hi[k] + pb_hi[k] * loc_a[1][k] for k in range(d)],
            [pb_lo[k] * loc_b[0][k] for k in range(d)],
            [pb_hi[k] * loc_b[1][k] for k in range(d)],
        )
        if _lb_sq_reference(*box, x_lo, x_hi, s_lo, s_hi, goal, scale) >= threshold:
            return
        if key not in table:
            table[key] = [list(row) for row in box]
        else:
            old = table[key]
            old[0] = [min(a, b) for a, b in zip(old[0], box[0])]
            old[1] = [max(a, b) for a, b in zip(old[1], box[1])]
            old[2] = [min(a, b) for a, b in zip(old[2], box[2])]
            old[3] = [max(a, b) for a, b in zip(old[3], box[3])]

    def clip(table, key, x_lo):
        if key not in table:
            return
        box = table[key]
        for k in range(d):
            box[1][k] = min(box[1][k], s_hi[k])
            if x_lo[k] > 0:
                cap = (s_hi[k] - box[0][k]) / x_lo[k]
                if box[2][k] <= cap < box[3][k]:
                    box[3][k] = cap

    zero = [0.0] * d
    one = [1.0] * d
    root = (zero, zero, one, one)
    # products of k trees covering N -> j
    h: dict = {(0, n): (one, one)}
    for k in range(1, m_seg):
        for j in range(n - k, -1, -1):
            options = [(h[(k - 1, m)], m) for m in range(j + 1, n + 1) if (k - 1, m) in h]
            if options:
                lo = [min(hh[0][c] * v_lo[j, m, c] for hh, m in options) for c in range(d)]
                hi = [max(hh[1][c] * v_hi[j, m, c] for hh, m in options) for c in range(d)]
                h[(k, j)] = (lo, hi)
    for k in range(1, m_seg + 1):
        for j in range(k, n + 1):
            if (m_seg - k, j) in h:
                add(ctx_g, (k, j), root, (zero, zero), h[(m_seg - k, j)], g_lo[k, j], g_hi[k, j])

    def a0_of(i, j, c):
        return float(jump[i, j, c]) if init_code == 1 else (0.0 if init_code == 2 else 1.0)

    for length in range(n, 0, -1):
        for i in range(n - length + 1):
            j = i + length
            for jp in range(j + 1, n + 1):
                if (i, jp) in ctx_v:
                    r = [float(retention[jp, c]) for c in range(d)]
                    if init_code == 0:
                        la = ([r[c] * v_lo[j, jp, c] for c in range(d)], [r[c] * v_hi[j, jp, c] for c in range(d)])
                    else:
                        la = ([r[c] * a0_of(i, jp, c) for c in range(d)],) * 2
                    lb = ([(1 - r[c]) * v_lo[j, jp, c] for c in range(d)], [(1 - r[c]) * v_hi[j, jp, c] for c in range(d)])
                    add(ctx_f, (i, j), ctx_v[(i, jp)], la, lb, f_lo[i, j], f_hi[i, j])
                if (i, jp) in ctx_f:
                    add(ctx_f, (i, j), ctx_f[(i, jp)], (zero, zero), (list(v_lo[j, jp]), list(v_hi[j, jp])), f_lo[i, j], f_hi[i, j])
            clip(ctx_f, (i, j), f_lo[i, j])
            for k1 in range(m_seg):
                k2 = m_seg - 1 - k1
                if (k1, j) not in h:
                    continue
                hl, hh = h[(k1, j)]
                if k2 == 0:
                    if i != 0:
                        continue
                    lb = (hl, hh)
                else:
                    if i < k2:
                        continue
                    lb = ([hl[c] * g_lo[k2, i, c] for c in range(d)], [hh[c] * g_hi[k2, i, c] for c in range(d)])
                add(ctx_v, (i, j), root, (zero, zero), lb, v_lo[i, j], v_hi[i, j])
            if (i, j) in ctx_f:
                add(ctx_v, (i, j), ctx_f[(i, j)], (zero, zero), (one, one), v_lo[i, j], v_hi[i, j])
            for ip in range(i):
                if (ip, j) in ctx_v:
                    r = [float(retention[j, c]) for c in range(d)]
                    if init_code == 0:
                        la = (zero, zero)
                        lb = ([(1 - r[c]) * f_lo[ip, i, c] + r[c] for c in range(d)], [(1 - r[c]) * f_hi[ip, i, c] + r[c] for c in range(d)])
                    else:
                        la = ([r[c] * a0_of(ip, j, c) for c in range(d)],) * 2
                        lb = ([(1 - r[c]) * f_lo[ip, i, c] for c in range(d)], [(1 - r[c]) * f_hi[ip, i, c] for c in range(d)])
                    add(ctx_v, (i, j), ctx_v[(ip, j)], la, lb, v_lo[i, j], v_hi[i, j])
                if (ip, j) in ctx_f:
                    add(ctx_v, (i, j), ctx_f[(ip, j)], (zero, zero), (list(f_lo[ip, i]), list(f_hi[ip, i])), v_lo[i, j], v_hi[i, j])
            clip(ctx_v, (i, j), v_lo[i, j])

    def to_arrays(table, shape):
        ctx = np.zeros(shape + (4, d))
        reach = np.zeros(shape, dtype=bool)
        for key, box in table.items():
            ctx[key] = np.array(box)
            reach[key] = True
        return ctx, reach

    return (*to_arrays(ctx_v, (n + 1, n + 1)), *to_arrays(ctx_f, (n + 1, n + 1)), *to_arrays(ctx_g, (m_seg + 1, n + 1)))


def combine_candidates_reference(first, rest, labels_first, labels_rest, mode, retention, a0, ctx, s_lo, s_hi, goal,
                                 scale, threshold, label_rule, first_is_leaf):
    """Plain-Python :func:`combine_candidates`."""
    d = len(goal)
    out_v, out_a, out_b, out_lb, out_lab = [], [], [], [], []
    min_pruned = math.inf
    for a in range(len(first)):
        for b in range(len(rest)):
            vec = []
            for k in range(d):
                prod = first[a][k] * rest[b][k]
                if mode == 0:
                    init = first[a][k] if len(a0) == 0 else a0[k]
                    vec.append((1.0 - retention[k]) * prod + retention[k] * init)
                else:
                    vec.append(prod)
            bound = _lb_sq_reference(ctx[0], ctx[1], ctx[2], ctx[3], vec, vec, s_lo, s_hi, goal, scale)
            if bound >= threshold:
                min_pruned = min(min_pruned, bound)
                continue
            if label_rule == 1:
                lab = [labels_first[a][0] + labels_rest[b][0] + (1 if mode == 0 else 0), 0]
            elif label_rule == 2:
                leaf = 1 if first_is_leaf else 0
                if mode == 0:
                    lab = [0, max(labels_first[a][1], labels_rest[b][1], leaf + labels_rest[b][0])]
                else:
                    lab = [leaf + labels_rest[b][0], max(labels_first[a][1], labels_rest[b][1])]
            else:
                lab = [0, 0]
            out_v.append(vec)
            out_a.append(a)
            out_b.append(b)
            out_lb.append(bound)
            out_lab.append(lab)
    return (
        np.array(out_v, dtype=np.float64).reshape(len(out_v), d),
        np.array(out_a, dtype=np.int64),
        np.array(out_b, dtype=np.int64),
        np.array(out_lb, dtype=np.float64),
        np.array(out_lab, dtype=np.int64).reshape(len(out_v), 2),
        min_pruned,
    )


def dominates_reference(u, v, ctx, s_lo, s_hi, goal, scale) -> bool:
    """Plain-Python :func:`dominates`: the box bound by calculus, the range bound over all four corners."""
    total = 0.0
    for k in range(len(goal)):
        delta = u[k] - v[k]
        if delta == 0.0 or scale[k] == 0.0:
            continue
        a_lo, a_hi, b_lo, b_hi = ctx[0][k], ctx[1][k], ctx[2][k], ctx[3][k]
        g = goal[k]
        big = max(u[k], v[k])
        if big > 0:
            cap = (s_hi[k] - a_lo) / big
            if b_lo <= cap < b_hi:
                b_hi = cap
        both = u[k] + v[k]

        def q(beta, alpha):
            return beta * beta * both + 2.0 * beta * (alpha - g)

        if delta > 0:
            box = scale[k] * delta * max(q(b_lo, a_hi), q(b_hi, a_hi))
        else:
            options = [q(b_lo, a_lo), q(b_hi, a_lo)]
            if both > 0:
                vertex = -(a_lo - g) / both
                if b_lo < vertex < b_hi:
                    options.append(q(vertex, a_lo))
            box = scale[k] * delta * min(options)
        corners = [x * y * scale[k] for x in (b_lo * delta, b_hi * delta) for y in (2.0 * (s_lo[k] - g), 2.0 * (s_hi[k] - g))]
        total += min(box, max(corners))
    return total <= 0.0


def merge_fronts_reference(old_values, old_labels, new_values, new_lb, new_labels, ctx, s_lo, s_hi, goal, scale,
                           x_lo=None, x_hi=None):
    """Plain-Python :func:`merge_fronts` (same visiting order, so the same kept sets)."""

    def ok(lab_u, u_vals, u, lab_v, v_vals, v):
        return (lab_u[u][0] <= lab_v[v][0] and lab_u[u][1] <= lab_v[v][1]
                and dominates_reference(u_vals[u], v_vals[v], ctx, s_lo, s_hi, goal, scale))

    order = sorted(range(len(new_values)), key=lambda t: (new_lb[t], t))
    new_keep: list[int] = []
    last_old = last_new = -1
    for idx in order:
        dominated = last_old >= 0 and ok(old_labels, old_values, last_old, new_labels, new_values, idx)
        if not dominated and last_new >= 0:
            dominated = ok(new_labels, new_values, last_new, new_labels, new_values, idx)
        if not dominated:
            for q in range(len(old_values)):
                if q != last_old and ok(old_labels, old_values, q, new_labels, new_values, idx):
                    dominated, last_old = True, q
                    break
        if not dominated:
            for k in new_keep:
                if k != last_new and ok(new_labels, new_values, k, new_labels, new_values, idx):
                    dominated, last_new = True, k
                    break
        if not dominated:
            new_keep.append(idx)
    old_keep: list[int] = []
    last_new = -1
    for q in range(len(old_values)):
        dominated = last_new >= 0 and ok(new_labels, new_values, last_new, old_labels, old_values, q)
        if not dominated:
            for k in new_keep:
                if k != last_new and ok(new_labels, new_values, k, old_labels, old_values, q):
                    dominated, last_new = True, k
                    break
        if not dominated:
            old_keep.append(q)
    return np.array(old_keep, dtype=np.int64), np.array(new_keep, dtype=np.int64)


def dominance_filter_reference(values, lb_sq, labels, ctx, s_lo, s_hi, goal, scale):
    """Plain-Python :func:`dominance_filter`."""
    return merge_fronts_reference(np.empty((0, len(goal))), np.zeros((0, 2), np.int64), values, lb_sq, labels, ctx,
                                  s_lo, s_hi, goal, scale)[1]


# =============================================================================================
# The dynamic program over fronts
# =============================================================================================


def pareto_applicable(problem: Problem) -> tuple[bool, str]:
    r"""Whether the Pareto path is exact for ``problem``, and why not when it is not.

    Requires ``budget='per-merge'`` (the retention of a node must not depend on the whole plan),
    every teacher step :math:`A_n \ge 0`, every retention :math:`r_j \in [0, 1]` and, for the
    ``ddim`` init, every jump :math:`D(j \to i) \ge 0`: then every value is :math:`\ge 0` and every
    node value is non-decreasing in each child (THEORY.md §4), which the bounds rely on.
    """
    if problem.model.budget == "total":
        return False, "budget='total' ties each node's retention to the plan's merge count"
    if not np.all(problem.step_values[:, 1:] >= 0):
        return False, "some teacher step operator is negative"
    if problem.steps >= 2 and not np.all((problem.retention[:, 2:] >= 0) & (problem.retention[:, 2:] <= 1)):
        return False, "some retention lies outside [0, 1]"
    if problem.model.init == "ddim" and not np.all(np.triu(problem.jump, 1) >= 0):
        return False, "some DDIM jump D(j -> i) is negative"
    return True, ""


class _Front:
    """Front of one position: values (K, d), bounds (K,), labels (K, 2), back-pointers."""

    __slots__ = ("values", "lb", "labels", "split", "ia", "ib")

    def __init__(self, values, lb, labels, split, ia, ib):
        self.values = values
        self.lb = lb
        self.labels = labels
        self.split = split
        self.ia = ia
        self.ib = ib

    def __len__(self) -> int:
        return self.values.shape[0]


def _empty_front(d: int) -> _Front:
    return _Front(np.empty((0, d)), np.empty(0), np.zeros((0, 2), np.int64), np.empty(0, np.int64),
                  np.empty(0, np.int64), np.empty(0, np.int64))


class ParetoDP:
    r"""The front dynamic program of :func:`solve_joint` (and, with cost labels, of
    :func:`opmerge.solvers.front.fidelity_cost_front`).

    Parameters
    ----------
    problem : Problem (the Pareto path must apply: :func:`pareto_applicable`)
    threshold : float
        Prune candidates with :math:`\mathrm{LB}^2 \ge` ``threshold`` (``inf``: none).
    label_rule : int
        0 none, 1 merge count, 2 peak leaf children (see :mod:`opmerge.solvers.front`).
    max_front, node_budget : int; deadline : float (``time.perf_counter`` value)
    """

    def __init__(self, problem: Problem, threshold: float, *, label_rule: int = 0, max_front: int = 20000,
                 node_budget: int = 10**12, deadline: float = math.inf, tables: dict | None = None,
                 beam: int | None = None):
        self.problem = problem
        self.beam = beam
        self.truncated = False
        self.threshold = float(threshold)
        self.label_rule = label_rule
        self.max_front = max_front
        self.node_budget = node_budget
        self.deadline = deadline
        self.n = problem.steps
        self.m_seg = problem.segments
        self.d = problem.dim
        tables = _exact.range_tables(problem) if tables is None else tables
        move = lambda name: np.ascontiguousarray(np.moveaxis(tables[name], 0, -1))  # noqa: E731
        self.v_lo, self.v_hi, self.f_lo, self.f_hi = (move(k) for k in ("v_lo", "v_hi", "f_lo", "f_hi"))
        self.g_lo, self.g_hi = move("g_lo"), move("g_hi")
        self.s_lo = np.ascontiguousarray(self.g_lo[self.m_seg, self.n])
        self.s_hi = np.ascontiguousarray(self.g_hi[self.m_seg, self.n])
        self.goal = np.ascontiguousarray(problem.goal, dtype=np.float64)
        self.scale = np.ascontiguousarray(problem.scale, dtype=np.float64)
        self.steps_t = np.ascontiguousarray(problem.step_values.T)  # (N + 1, d)
        self.retention_t = np.ascontiguousarray(problem.retention.T)  # (N + 1, d)
        self.init_code = _INIT_CODES[problem.model.init]
        self.jump_t = (np.ascontiguousarray(np.moveaxis(problem.jump, 0, -1)) if problem.jump is not None
                       else np.zeros((1, 1, self.d)))
        self.candidates = 0
        self.min_pruned = math.inf
        self.largest_front = 0

    # ----------------------------------------------------------------------------------------
    def _a0(self, i: int, j: int) -> np.ndarray:
        if self.init_code == 0:
            return np.empty(0)
        if self.init_code == 1:
            return np.ascontiguousarray(self.jump_t[i, j])
        return np.full(self.d, 0.0 if self.init_code == 2 else 1.0)

    def _check(self) -> None:
        if self.candidates > self.node_budget:
            raise _Abort("node_budget")
        if time.perf_counter() > self.deadline:
            raise _Abort("time_budget")

    def _merge(self, front: _Front, values, lb, labels, split, ia, ib, ctx, x_range) -> _Front:
        """Front of (front ∪ new candidates), sorted by bound."""
        if values.shape[0] == 0:
            return front
        old_keep, new_keep = merge_fronts(front.values, front.labels, values, lb, labels, ctx,
                                          self.s_lo, self.s_hi, self.goal, self.scale, x_range[0], x_range[1])
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
            raise _Abort("max_front")
        return out

    def _combine_into(self, front: _Front, first: _Front, rest: _Front, mode: int, split: int, r, a0, ctx,
                      first_is_leaf: bool, x_range) -> _Front:
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
            front = self._merge(front, vals, lb, labels, np.full(len(ia), split, np.int64), ia + start, ib, ctx, x_range)
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
    def run(self):
        """Fill the fronts bottom-up; returns the root front (raises ``_Abort`` when out of room)."""
        n, d, m_seg = self.n, self.d, self.m_seg
        self.ctx_v, self.reach_v, self.ctx_f, self.reach_f, self.ctx_g, self.reach_g = context_bounds(
            self.v_lo, self.v_hi, self.f_lo, self.f_hi, self.g_lo, self.g_hi, self.retention_t, self.init_code,
            self.jump_t, m_seg, self.s_lo, self.s_hi, self.goal, self.scale, self.threshold,
        )
        self.V: dict = {}
        self.F: dict = {}
        leaf_labels = self.label_rule == 2
        for length in range(1, n + 1):
            for i in range(0, n - length + 1):
                j = i + length
                if length == 1:
                    self.V[i, j] = self._leaf_front(j, self.ctx_v[i, j]) if self.reach_v[i, j] else _empty_front(d)
                    front = self._leaf_front(j, self.ctx_f[i, j]) if self.reach_f[i, j] else _empty_front(d)
                    if leaf_labels and len(front):
                        front.labels[:, 0] = 1  # a forest made of one leaf holds one leaf tree
                    self.F[i, j] = front
                    continue
                # trees over j -> i
                front = _empty_front(d)
                if self.reach_v[i, j]:
                    r = np.ascontiguousarray(self.retention_t[j])
                    a0 = self._a0(i, j)
                    ctx = self.ctx_v[i, j]
                    for m in range(j - 1, i, -1):
                        front = self._combine_into(front, self.V[m, j], self.F[i, m], 0, m, r, a0, ctx, j - m == 1,
                                                   (self.v_lo[i, j], self.v_hi[i, j]))
                self.V[i, j] = front
                self.largest_front = max(self.largest_front, len(front))
                # forests over j -> i
                front = _empty_front(d)
                if self.reach_f[i, j]:
                    ctx = self.ctx_f[i, j]
                    tree = self.V[i, j]
                    if len(tree):
                        lab = tree.labels.copy()
                        if self.label_rule == 2:
                            lab[:, 0] = 0  # one tree, which is not a leaf (length >= 2)
                        lb = _position_lb(tree.values, ctx, self.s_lo, self.s_hi, self.goal, self.scale)
                        keep = lb < self.threshold
                        idx = np.nonzero(keep)[0]
                        front = self._merge(front, np.ascontiguousarray(tree.values[idx]), lb[idx], np.ascontiguousarray(lab[idx]),
                                            np.full(len(idx), -1, np.int64), idx.astype(np.int64), np.zeros(len(idx), np.int64), ctx,
                                            (self.f_lo[i, j], self.f_hi[i, j]))
                    for m in range(j - 1, i, -1):
                        front = self._combine_into(front, self.V[m, j], self.F[i, m], 1, m, np.empty(0), np.empty(0), ctx, j - m == 1,
                                                   (self.f_lo[i, j], self.f_hi[i, j]))
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
                    ctx = self.ctx_g[k, j]
                    for m in range(j - 1, k - 2, -1):
                        if (k - 1, m) in self.G:
                            # a segment is not a child of a node: no leaf-child count (label rule 2)
                            front = self._combine_into(front, self.V[m, j], self.G[k - 1, m], 1, m, np.empty(0), np.empty(0), ctx,
                                                       False, (self.g_lo[k, j], self.g_hi[k, j]))
                self.G[k, j] = front
        return self.G[m_seg, n]

    # ----------------------------------------------------------------------------------------
    def plan_of(self, index: int) -> Plan:
        """Rebuild the plan of entry ``index`` of the root front from the back-pointers."""

        def tree(i, j, idx):
            if j == i + 1:
                return j
            entry = self.V[i, j]
            m, a, b = int(entry.split[idx]), int(entry.ia[idx]), int(entry.ib[idx])
            return MergeNode((tree(m, j, a), *forest(i, m, b)))

        def forest(i, j, idx):
            out = []
            while True:
                if j == i + 1:
                    out.append(j)
                    return out
                entry = self.F[i, j]
                m, a, b = int(entry.split[idx]), int(entry.ia[idx]), int(entry.ib[idx])
                if m < 0:
                    out.append(tree(i, j, a))
                    return out
                out.append(tree(m, j, a))
                j, idx = m, b

        with deep_recursion(4 * self.n + 16):
            if self.m_seg == 1:
                return Plan((tree(0, self.n, index),))
            segments = []
            k, j, idx = self.m_seg, self.n, index
            while k > 1:
                entry = self.G[k, j]
                m, a, b = int(entry.split[idx]), int(entry.ia[idx]), int(entry.ib[idx])
                segments.append(tree(m, j, a))
                k, j, idx = k - 1, m, b
            segments.append(tree(0, j, idx))
            return Plan(tuple(segments))


def _position_lb(values, ctx, s_lo, s_hi, goal, scale) -> np.ndarray:
    """Vectorised bound of value vectors at a position (same formula as the kernels)."""
    lo = np.maximum(ctx[0] + ctx[2] * values, s_lo)
    hi = np.minimum(ctx[1] + ctx[3] * values, s_hi)
    dist = np.where(goal < lo, lo - goal, np.where(goal > hi, goal - hi, 0.0))
    dist = np.where(lo <= hi, dist, 0.0)
    return np.ascontiguousarray(np.sum(scale * dist * dist, axis=1))


def root_objective(problem: Problem, values: np.ndarray) -> np.ndarray:
    r""":math:`W_2^2` of root value vectors (rows), as :func:`~opmerge.objective.w2_distance` computes it."""
    v = np.abs(values) if problem.target == "data" else values
    return np.sum(problem.scale * (v - problem.goal) ** 2, axis=1)


# =============================================================================================
# Public solver
# =============================================================================================


def per_direction_bound(problem: Problem, tables: dict | None = None, *, time_budget: float = 2.0) -> tuple[float, np.ndarray]:
    r"""Certified lower bound :math:`\sqrt{\sum_i (W_{2,i}^\star)^2}` from the directions alone.

    :math:`W_{2,i}^\star` is the optimum of direction ``i`` alone (a one-direction problem with
    weight :math:`\omega_i`); since the joint objective is the sum of the per-direction terms,
    :math:`\sum_i (W_{2,i}^\star)^2 \le (W_2^\star)^2`. For a direction whose goal lies outside its
    achievable range the optimum is the distance to the nearest end (exact, closed form); for a
    straddling direction the one-direction :func:`~opmerge.solvers.exact.solve` gives it (its
    certified ``lower_bound``), one direction after the other while ``time_budget`` seconds last
    (a one-direction search has a start-up cost and may overrun its share); directions not reached
    keep the valid bound 0.

    Returns
    -------
    bound : float
    per_direction : (d,) the per-direction lower bounds :math:`W_{2,i}`
    """
    tables = _exact.range_tables(problem) if tables is None else tables
    lo, hi = _exact.achievable_range(problem, tables)
    if problem.target == "data":
        a_lo = np.where(lo >= 0, lo, np.where(hi <= 0, -hi, 0.0))
        a_hi = np.maximum(np.abs(lo), np.abs(hi))
        lo, hi = a_lo, a_hi
    dist = np.maximum(0.0, np.maximum(lo - problem.goal, problem.goal - hi))
    per = np.sqrt(problem.scale) * dist
    straddle = np.nonzero((dist == 0.0) & (problem.scale > 0))[0]
    deadline = time.perf_counter() + float(time_budget)
    for k in straddle:
        left = deadline - time.perf_counter()
        if left <= 0:
            break  # the bound 0 stays valid for the directions not solved
        one = Problem(
            problem.schedule, lam=[float(problem.lam[k])], weights=[float(problem.weights[k])], model=problem.model,
            solver=problem.solver, target=problem.target, segments=problem.segments,
        )
        per[k] = _exact.solve(one, time_budget=left, list_length=6).lower_bound
    return float(math.sqrt(float(np.sum(per**2)))), per


def _branch_and_bound(problem: Problem, **kwargs) -> "_exact.Solution":
    """:func:`~opmerge.solvers.exact.solve` restricted to its branch and bound.

    When ``solve`` dispatches problems with several directions to :func:`solve_joint`, it takes a
    ``joint`` switch; passing ``joint=False`` here avoids the recursion.
    """
    if "joint" in inspect.signature(_exact.solve).parameters:
        kwargs["joint"] = False
    return _exact.solve(problem, **kwargs)


def _tolerance(problem: Problem, rtol: float | None, atol: float) -> float:
    if rtol is None:
        rtol = 64.0 * problem.steps * np.finfo(np.float64).eps
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol and atol must be >= 0, got rtol = {rtol!r}, atol = {atol!r}")
    return atol + rtol * math.sqrt(float(np.sum(problem.scale * problem.goal**2)))


def solve_joint(
    problem: Problem,
    *,
    max_front: int = 20000,
    node_budget: int = _exact.DEFAULT_NODE_BUDGET,
    time_budget: float = _exact.DEFAULT_TIME_BUDGET,
    rtol: float | None = None,
    atol: float = 0.0,
) -> "_exact.Solution":
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
        Largest front (value vectors kept for one interval) before the DP gives up.
    node_budget : int
        Largest number of candidate vectors the DP may generate; also the branch-and-bound budget.
    time_budget : float
        Seconds (the DP checks the clock between batches of candidates).
    rtol, atol : float
        ``tol = atol + rtol * sqrt(sum_i s_i g_i^2)``; ``rtol=None`` is ``64 N eps`` as in
        :func:`~opmerge.solvers.exact.solve`.

    Returns
    -------
    Solution
        ``nodes`` counts candidate vectors generated by the DP (plus branch-and-bound expansions).
    """
    if isinstance(max_front, bool) or not isinstance(max_front, (int, np.integer)) or max_front < 1:
        raise ValueError(f"max_front must be an int >= 1, got {max_front!r}")
    for label, value in (("node_budget", node_budget), ("time_budget", time_budget)):
        if isinstance(value, bool) or not (isinstance(value, (int, float, np.integer, np.floating)) and value > 0):
            raise ValueError(f"{label} must be > 0, got {value!r}")
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an opmerge Problem, got {type(problem).__name__}")
    start = time.perf_counter()
    tol = _tolerance(problem, rtol, atol)
    tables = _exact.range_tables(problem)
    lo, hi = _exact.achievable_range(problem, tables)

    def tol_sq(best_sq: float) -> float:
        root = math.sqrt(best_sq) - tol
        return root * root if root > 0 else 0.0

    # incumbent: the seeds of solve() in the same order and with the same tie rule
    best_plan, best_eval, best_sq = None, None, math.inf
    for plan in _exact._seed_plans(problem, tables):
        ev = evaluate_plan(problem, plan)
        if best_plan is None or ev.w2 * ev.w2 < tol_sq(best_sq):
            best_plan, best_eval, best_sq = plan, ev, ev.w2 * ev.w2

    applicable, _why = pareto_applicable(problem)
    nodes = 0
    lower_sq = 0.0  # certified: no plan has W2^2 below it
    direction_bound = None
    if applicable:
        budget = float(time_budget)
        phase_end = start + _PARETO_SHARE * budget
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
            deadline = start + _FIRST_SHARE * budget if first else now + 0.5 * (phase_end - now)
            dp = ParetoDP(problem, theta, max_front=int(max_front), node_budget=int(node_budget) - nodes,
                          deadline=min(deadline, phase_end), tables=tables)
            try:
                root = dp.run()
            except _Abort:
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
                return _exact.Solution(
                    plan=best_plan, evaluation=best_eval, w2=best_eval.w2, lower_bound=lower, exact=True, tol=tol,
                    method="pareto", nodes=nodes, student_range=(lo, hi), elapsed=time.perf_counter() - start, problem=problem,
                )
            if root is not None and full:
                # no plan beats the incumbent by more than tol
                w2 = best_eval.w2
                return _exact.Solution(
                    plan=best_plan, evaluation=best_eval, w2=w2, lower_bound=min(max(w2 - tol, 0.0), w2), exact=True, tol=tol,
                    method="pareto", nodes=nodes, student_range=(lo, hi), elapsed=time.perf_counter() - start, problem=problem,
                )
            if first:
                # the full threshold was too hard: bisect between a certified bound and the incumbent
                direction_bound, _ = per_direction_bound(problem, tables, time_budget=min(1.0, 0.05 * budget))
                lower_sq = max(lower_sq, direction_bound * direction_bound)
                fraction = _BISECT_START
                first = False
                continue
            if root is not None:
                lower_sq = max(lower_sq, theta)  # completed with nothing below theta
                fraction = min(1.0, 2.0 * fraction)
            else:
                fraction /= 4.0
                if fraction < 1e-4:
                    break
    # fallback: branch and bound with the rest of the time
    if direction_bound is None:
        direction_bound, _ = per_direction_bound(problem, tables, time_budget=min(1.0, 0.05 * float(time_budget)))
    remaining = max(float(time_budget) - (time.perf_counter() - start), 0.15 * float(time_budget))
    search = _branch_and_bound(problem, node_budget=node_budget, time_budget=remaining, rtol=rtol, atol=atol)
    if search.w2 * search.w2 < tol_sq(best_sq):
        best_plan, best_eval = search.plan, search.evaluation
    w2 = best_eval.w2
    lower = min(max(search.lower_bound, direction_bound, math.sqrt(lower_sq)), w2)
    return _exact.Solution(
        plan=best_plan, evaluation=best_eval, w2=w2, lower_bound=lower, exact=bool(w2 - lower <= tol), tol=tol,
        method="pareto+search" if applicable else "search", nodes=nodes + search.nodes, student_range=(lo, hi),
        elapsed=time.perf_counter() - start, problem=problem,
    )
