r"""Numba kernels of the Pareto dynamic program (:mod:`opmerge.solvers.pareto`). Private.

Every kernel here has a plain-Python reference in :mod:`opmerge.solvers._reference` (same
formulas, no tricks); the tests compare them. The mathematics (contexts, bounds, dominance) is
explained in the docstring of :mod:`opmerge.solvers.pareto`.

* :func:`context_bounds` — the top-down pass: bounds on the affine context
  :math:`S = \alpha + \beta x` of every position.
* :func:`combine_candidates` — the value vectors of one split, with their bounds.
* :func:`dominates`, :func:`merge_fronts` — the dominance test and the
  fronts it keeps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels import _init_value, node_value

__all__ = [
    "context_bounds",
    "combine_candidates",
    "position_coefficients",
    "dominates",
    "merge_fronts",
]


@njit(cache=True, inline="always")
def _excess_sq(lo, hi, s_lo, s_hi, goal, scale):
    r"""One direction's term of :math:`\mathrm{LB}^2`: ``scale`` times the squared distance from ``goal``
    to ``[lo, hi]`` clipped to ``[s_lo, s_hi]`` (0 when the clipped interval is empty)."""
    if lo < s_lo:
        lo = s_lo
    if hi > s_hi:
        hi = s_hi
    if lo <= hi:
        if goal < lo:
            return scale * (lo - goal) * (lo - goal)
        if goal > hi:
            return scale * (goal - hi) * (goal - hi)
    return 0.0


@njit(cache=True, inline="always")
def _node_map(ret_lo, ret_hi, o_lo, o_hi, init_code, jump_lo, jump_hi, i, j, of_first, la_lo, la_hi, lb_lo, lb_hi):
    """Local affine map ``la + lb x`` of a merge node over ``j -> i`` in one child ``x`` (in place, per
    slot): its first child (``of_first``; the rest in ``[o_lo, o_hi]``) or the product of the
    rest (the first child in ``[o_lo, o_hi]``), over every retention in ``[ret_lo, ret_hi]`` (one
    value per direction: ``ret_lo is ret_hi``; an interval per group of directions). Every term is
    monotone in ``r``, in the other part and in ``a0`` (all in ``[0, 1]`` or ``>= 0``), so the
    bounds are the corners. ``jump_lo, jump_hi`` are read only for ``init_code == 1``."""
    for c in range(ret_lo.shape[0]):
        rl = ret_lo[c]
        rh = ret_hi[c]
        if init_code == 0 and of_first:  # warm: a0 = c1 = x
            la_lo[c] = 0.0
            la_hi[c] = 0.0
            lb_lo[c] = min((1.0 - rl) * o_lo[c] + rl, (1.0 - rh) * o_lo[c] + rh)
            lb_hi[c] = max((1.0 - rl) * o_hi[c] + rl, (1.0 - rh) * o_hi[c] + rh)
            continue
        if init_code == 0:  # warm: a0 = c1, the other child
            la_lo[c] = rl * o_lo[c]
            la_hi[c] = rh * o_hi[c]
        else:
            a0_lo = jump_lo[i, j, c] if init_code == 1 else (0.0 if init_code == 2 else 1.0)
            a0_hi = jump_hi[i, j, c] if init_code == 1 else (0.0 if init_code == 2 else 1.0)
            la_lo[c] = rl * a0_lo
            la_hi[c] = rh * a0_hi
        lb_lo[c] = (1.0 - rh) * o_lo[c]
        lb_hi[c] = (1.0 - rl) * o_hi[c]


@njit(cache=True)
def _accumulate(ctx, reach, slot_i, slot_j, scratch, pa_lo, pa_hi, pb_lo, pb_hi, la_lo, la_hi, lb_lo, lb_hi,
                x_lo, x_hi, s_lo, s_hi, goal, scale, group_of, threshold):
    """Compose a parent context with a local affine map; merge into ``ctx[slot_i, slot_j]`` if viable.

    Contexts, maps and ranges are per slot (a direction, or a group of directions); the bound sums
    over the directions ``k`` with the slot ``group_of[k]`` (in that order; it stops once the sum
    reaches ``threshold``: the terms are ``>= 0``, so the decision is the one of the full sum)."""
    n_slots = scratch.shape[1]
    for g in range(n_slots):
        scratch[0, g] = pa_lo[g] + pb_lo[g] * la_lo[g]
        scratch[1, g] = pa_hi[g] + pb_hi[g] * la_hi[g]
        scratch[2, g] = pb_lo[g] * lb_lo[g]
        scratch[3, g] = pb_hi[g] * lb_hi[g]
    total = 0.0
    for k in range(goal.shape[0]):
        g = group_of[k]
        total += _excess_sq(scratch[0, g] + scratch[2, g] * x_lo[g], scratch[1, g] + scratch[3, g] * x_hi[g], s_lo[k],
                            s_hi[k], goal[k], scale[k])
        if total >= threshold:
            return
    if not reach[slot_i, slot_j]:
        reach[slot_i, slot_j] = True
        for k in range(n_slots):
            ctx[slot_i, slot_j, 0, k] = scratch[0, k]
            ctx[slot_i, slot_j, 1, k] = scratch[1, k]
            ctx[slot_i, slot_j, 2, k] = scratch[2, k]
            ctx[slot_i, slot_j, 3, k] = scratch[3, k]
    else:
        for k in range(n_slots):
            ctx[slot_i, slot_j, 0, k] = min(ctx[slot_i, slot_j, 0, k], scratch[0, k])
            ctx[slot_i, slot_j, 1, k] = max(ctx[slot_i, slot_j, 1, k], scratch[1, k])
            ctx[slot_i, slot_j, 2, k] = min(ctx[slot_i, slot_j, 2, k], scratch[2, k])
            ctx[slot_i, slot_j, 3, k] = max(ctx[slot_i, slot_j, 3, k], scratch[3, k])


@njit(cache=True)
def _from_parents(ctx, reach, i, j, pi, pj, of_first, o_lo, o_hi, x_lo, x_hi, ctx_v, reach_v, ctx_f, reach_f,
                  ret_lo, ret_hi, init_code, jump_lo, jump_hi, s_lo, s_hi, goal, scale, group_of, threshold, scratch,
                  zeros, la_lo, la_hi, lb_lo, lb_hi):
    """Contexts of the position over ``j -> i`` (into ``ctx[i, j]``) from its two kinds of parent over
    ``pj -> pi``: a merge node (the position is its first child with ``of_first``, else the product of
    its other children) and a forest (its first tree with ``of_first``, else the rest of the forest).
    The other part lies in ``[o_lo, o_hi]``; the position's values in ``[x_lo, x_hi]``."""
    if reach_v[pi, pj]:
        _node_map(ret_lo[pj], ret_hi[pj], o_lo, o_hi, init_code, jump_lo, jump_hi, pi, pj, of_first, la_lo, la_hi, lb_lo,
                  lb_hi)
        _accumulate(ctx, reach, i, j, scratch, ctx_v[pi, pj, 0], ctx_v[pi, pj, 1], ctx_v[pi, pj, 2], ctx_v[pi, pj, 3],
                    la_lo, la_hi, lb_lo, lb_hi, x_lo, x_hi, s_lo, s_hi, goal, scale, group_of, threshold)
    if reach_f[pi, pj]:
        _accumulate(ctx, reach, i, j, scratch, ctx_f[pi, pj, 0], ctx_f[pi, pj, 1], ctx_f[pi, pj, 2], ctx_f[pi, pj, 3],
                    zeros, zeros, o_lo, o_hi, x_lo, x_hi, s_lo, s_hi, goal, scale, group_of, threshold)


@njit(cache=True)
def _clip(ctx, reach, slot_i, slot_j, x_lo, s_hi):
    """Tighten a finished context: alpha <= S_hi and beta <= (S_hi - A_lo) / x_lo (per slot; for a group,
    ``s_hi`` is the largest achievable value of its directions)."""
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
    group_of = np.arange(goal.shape[0])
    ctx_v, reach_v, ctx_f, reach_f, ctx_g, reach_g, h_lo, h_hi, h_ok = context_bounds_start(
        v_lo, v_hi, g_lo, g_hi, segments, s_lo, s_hi, goal, scale, group_of, threshold)
    context_bounds_levels(v_lo, v_hi, f_lo, f_hi, g_lo, g_hi, retention, retention, init_code, jump, jump, segments, s_lo,
                          s_hi, goal, scale, group_of, s_hi, threshold, ctx_v, reach_v, ctx_f, reach_f, h_lo, h_hi, h_ok,
                          v_lo.shape[0] - 1, 1)
    return ctx_v, reach_v, ctx_f, reach_f, ctx_g, reach_g


@njit(cache=True)
def context_bounds_start(v_lo, v_hi, g_lo, g_hi, segments, s_lo, s_hi, goal, scale, group_of, threshold):
    """First part of :func:`context_bounds`: empty tables, the ranges ``H`` of the trees above a
    position, and the contexts of the segment positions ``G``.

    The tables have one slot per group of directions (last axis; ``group_of[k]`` is the slot of
    direction ``k``; one direction per slot: ``group_of = arange(d)``); ``s_lo, s_hi, goal, scale``
    are per direction. Returns ``ctx_v, reach_v, ctx_f, reach_f, ctx_g, reach_g, h_lo, h_hi,
    h_ok``; the tree and forest contexts are then filled, longest intervals first, by
    :func:`context_bounds_levels`.
    """
    n = v_lo.shape[0] - 1
    d = v_lo.shape[2]
    m_seg = segments
    ctx_v = np.zeros((n + 1, n + 1, 4, d))
    ctx_f = np.zeros((n + 1, n + 1, 4, d))
    reach_v = np.zeros((n + 1, n + 1), np.bool_)
    reach_f = np.zeros((n + 1, n + 1), np.bool_)
    scratch = np.zeros((4, d))
    zeros = np.zeros(d)
    ones = np.ones(d)
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
                        h_lo[m_seg - k, j], h_hi[m_seg - k, j], g_lo[k, j], g_hi[k, j], s_lo, s_hi, goal, scale, group_of,
                        threshold)
    return ctx_v, reach_v, ctx_f, reach_f, ctx_g, reach_g, h_lo, h_hi, h_ok


@njit(cache=True)
def context_bounds_levels(v_lo, v_hi, f_lo, f_hi, g_lo, g_hi, ret_lo, ret_hi, init_code, jump_lo, jump_hi, segments,
                          s_lo, s_hi, goal, scale, group_of, group_s_hi, threshold, ctx_v, reach_v, ctx_f, reach_f, h_lo,
                          h_hi, h_ok, length_hi, length_lo):
    """Second part of :func:`context_bounds`: the contexts of the trees and forests over intervals of
    ``length_hi`` down to ``length_lo`` steps (in place). Called for all lengths at once, or length
    by length with the clock read in between (:class:`~opmerge.solvers._pareto_dp.ParetoDP`): the
    same operations in the same order either way.

    Per slot (see :func:`context_bounds_start`): the ranges, the retention interval
    ``[ret_lo, ret_hi]`` (``float64[N + 1, slots]``), the DDIM jump interval and ``group_s_hi``
    (the largest achievable root value of the slot's directions); per direction: ``s_lo, s_hi,
    goal, scale``. One direction per slot with ``ret_lo is ret_hi`` is :func:`context_bounds`.
    """
    n = v_lo.shape[0] - 1
    d = v_lo.shape[2]
    m_seg = segments
    scratch = np.zeros((4, d))
    zeros = np.zeros(d)
    ones = np.ones(d)
    la_lo = np.zeros(d)
    la_hi = np.zeros(d)
    lb_lo = np.zeros(d)
    lb_hi = np.zeros(d)
    for length in range(length_hi, length_lo - 1, -1):
        for i in range(0, n - length + 1):
            j = i + length
            # ---- forest over j -> i
            for jp in range(j + 1, n + 1):
                # (e) rest of a node over jp -> i whose first child covers jp -> j,
                # (f) tail of a forest over jp -> i whose first tree covers jp -> j
                if reach_v[i, jp] or reach_f[i, jp]:  # (the slices below cost time)
                    _from_parents(ctx_f, reach_f, i, j, i, jp, False, v_lo[j, jp], v_hi[j, jp], f_lo[i, j],
                                  f_hi[i, j], ctx_v, reach_v, ctx_f, reach_f, ret_lo, ret_hi, init_code, jump_lo, jump_hi,
                                  s_lo, s_hi, goal, scale, group_of, threshold, scratch, zeros, la_lo, la_hi, lb_lo, lb_hi)
            _clip(ctx_f, reach_f, i, j, f_lo[i, j], group_s_hi)
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
                            v_lo[i, j], v_hi[i, j], s_lo, s_hi, goal, scale, group_of, threshold)
            # (b) the only tree of a forest
            if reach_f[i, j]:
                _accumulate(ctx_v, reach_v, i, j, scratch, ctx_f[i, j, 0], ctx_f[i, j, 1], ctx_f[i, j, 2], ctx_f[i, j, 3],
                            zeros, zeros, ones, ones, v_lo[i, j], v_hi[i, j], s_lo, s_hi, goal, scale, group_of, threshold)
            for ip in range(0, i):
                # (c) first child of a node over j -> ip, the rest a forest over i -> ip,
                # (d) first tree of a forest over j -> ip
                if reach_v[ip, j] or reach_f[ip, j]:
                    _from_parents(ctx_v, reach_v, i, j, ip, j, True, f_lo[ip, i], f_hi[ip, i], v_lo[i, j],
                                  v_hi[i, j], ctx_v, reach_v, ctx_f, reach_f, ret_lo, ret_hi, init_code, jump_lo, jump_hi,
                                  s_lo, s_hi, goal, scale, group_of, threshold, scratch, zeros, la_lo, la_hi, lb_lo, lb_hi)
            _clip(ctx_v, reach_v, i, j, v_lo[i, j], group_s_hi)


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
                if mode == 0:
                    init = first[a, k] if warm else a0[k]
                    val = node_value(retention[k], first[a, k], rest[b, k], init)
                else:
                    val = first[a, k] * rest[b, k]
                values[count, k] = val
                bound += _excess_sq(ctx[0, k] + ctx[2, k] * val, ctx[1, k] + ctx[3, k] * val, s_lo[k], s_hi[k],
                                    goal[k], scale[k])
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
    """Per-direction constants of the dominance test at one position.

    Parameters
    ----------
    ctx : float64[4, d]
        Context bounds ``(A_lo, A_hi, B_lo, B_hi)`` of the position (:func:`context_bounds`).
    s_lo, s_hi, goal, scale : float64[d]
        Achievable root range, goal and weights :math:`s_i`.

    Returns
    -------
    coef : float64[d, 8]
        Row ``k``: ``(s, A_lo - g, A_hi - g, B_lo, B_hi, S_hi - A_lo, 2 (S_lo - g), 2 (S_hi - g))``.
    """
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


@njit(cache=True, inline="always")
def _quadratic_range(b_lo, b_hi, both_lo, both_hi, c):
    """Range of ``q = b^2 w + 2 b c`` over ``b in [b_lo, b_hi]``, ``w in [both_lo, both_hi]`` (linear
    in ``w``, so the extremes lie at its ends; for fixed ``w`` at ``b``'s ends or the vertex)."""
    lo = np.inf
    hi = -np.inf
    for w in (both_lo, both_hi):
        for b in (b_lo, b_hi):
            q = b * b * w + 2.0 * b * c
            lo = min(lo, q)
            hi = max(hi, q)
        if w != 0.0:
            vertex = -c / w
            if b_lo < vertex < b_hi:
                q = vertex * vertex * w + 2.0 * vertex * c
                lo = min(lo, q)
                hi = max(hi, q)
    return lo, hi


@njit(cache=True, inline="always")
def _capped_range(b_lo, b_hi, cap_top, x_lo, x_hi):
    """Range of the ``b`` of :func:`_term_bound` (``B_hi``, lowered to ``cap = cap_top / max(u, v)``
    when ``B_lo <= cap < B_hi``) over ``max(u, v) in [x_lo, x_hi]``; ``cap`` is monotone in it."""
    if x_lo <= 0.0 or not (b_lo < b_hi):
        if b_lo < b_hi:
            return b_lo, b_hi  # some max(u, v) <= 0 (no cap) beside positive ones: the whole box
        return b_hi, b_hi  # the cap can never apply
    c_a = cap_top / x_hi
    c_b = cap_top / x_lo
    c_min = min(c_a, c_b)
    c_max = max(c_a, c_b)
    lo = np.inf
    hi = -np.inf
    inside_lo = max(c_min, b_lo)
    inside_hi = min(c_max, b_hi)
    if inside_lo <= inside_hi:  # caps that apply
        lo = inside_lo
        hi = inside_hi
    if c_min < b_lo or c_max >= b_hi:  # some cap does not apply: B_hi itself
        lo = min(lo, b_hi)
        hi = max(hi, b_hi)
    return lo, hi


@njit(cache=True)
def _term_slopes(coef, x_lo, x_hi):
    r"""Per direction k, the slopes of direction k's term over ``delta = u_k - v_k`` for all values in
    ``[x_lo, x_hi]``: ``out[k] = (p_lo, p_hi, n_lo, n_hi)`` with ``term / delta`` in ``[p_lo, p_hi]``
    when ``delta > 0`` and in ``[n_lo, n_hi]`` when ``delta < 0`` (the term is 0 at ``delta = 0``).

    :func:`_term_bound` is ``s delta rho`` with, for ``delta > 0``, ``rho = min(Q, b_sel y_hi)``,
    ``Q = max(q(B_lo), q(b))``, and for ``delta < 0``, ``rho = max(m, b_sel y_lo)``, ``m = min(q(B_lo),
    q(b), q(vertex))``, where ``q(beta) = beta^2 (u + v) + 2 beta c``, ``b`` is ``B_hi`` or the cap
    ``(S_hi - A_lo) / max(u, v)`` (:func:`_capped_range`), the vertex lies in ``[B_lo, b]`` and
    ``u + v in [2 x_lo, 2 x_hi]``. Interval arithmetic on each piece bounds ``rho`` for either sign,
    and ``term / delta = s rho``. Far tighter than bounding every piece by its largest magnitude:
    in a direction where the goal is met, the box term (``~ B_lo^2``) is what counts, not the range
    term (``~ B_hi |y|``)."""
    d = coef.shape[0]
    out = np.empty((d, 4))
    for k in range(d):
        s = coef[k, 0]
        b_lo = coef[k, 3]
        e_lo, e_hi = _capped_range(b_lo, coef[k, 4], coef[k, 5], x_lo[k], x_hi[k])
        h_lo = min(b_lo, e_lo)
        h_hi = max(b_lo, e_hi)
        w_lo = 2.0 * x_lo[k]
        w_hi = 2.0 * x_hi[k]
        # delta > 0: Q = max(q(B_lo), q(b))
        q1_lo, q1_hi = _quadratic_range(b_lo, b_lo, w_lo, w_hi, coef[k, 2])
        q2_lo, q2_hi = _quadratic_range(e_lo, e_hi, w_lo, w_hi, coef[k, 2])
        big_lo = max(q1_lo, q2_lo)
        big_hi = max(q1_hi, q2_hi)
        y = coef[k, 7]
        r_lo = min(e_lo * y, e_hi * y) if y >= 0.0 else b_lo * y
        r_hi = max(e_lo * y, e_hi * y) if y >= 0.0 else b_lo * y
        if s >= 0.0:  # s delta >= 0: the minimum of the two
            up_lo = min(big_lo, r_lo)
            up_hi = min(big_hi, r_hi)
        else:
            up_lo = max(big_lo, r_lo)
            up_hi = max(big_hi, r_hi)
        # delta < 0: m = min(q(B_lo), q(b), q(vertex))
        q1_lo, q1_hi = _quadratic_range(b_lo, b_lo, w_lo, w_hi, coef[k, 1])
        q2_lo, q2_hi = _quadratic_range(e_lo, e_hi, w_lo, w_hi, coef[k, 1])
        all_lo, all_hi = _quadratic_range(h_lo, h_hi, w_lo, w_hi, coef[k, 1])
        small_lo = all_lo
        small_hi = min(q1_hi, q2_hi)
        y = coef[k, 6]
        r_lo = min(e_lo * y, e_hi * y) if y <= 0.0 else b_lo * y
        r_hi = max(e_lo * y, e_hi * y) if y <= 0.0 else b_lo * y
        if s >= 0.0:  # s delta <= 0: the maximum of the two
            down_lo = max(small_lo, r_lo)
            down_hi = max(small_hi, r_hi)
        else:
            down_lo = min(small_lo, r_lo)
            down_hi = min(small_hi, r_hi)
        _store_slopes(out, k, 0, s * up_lo, s * up_hi)
        _store_slopes(out, k, 2, s * down_lo, s * down_hi)
    return out


@njit(cache=True, inline="always")
def _store_slopes(out, k, col, x_a, x_b):
    """``out[k, col:col + 2]`` = the interval of ``x_a, x_b``, widened against rounding in the terms."""
    lo = min(x_a, x_b)
    hi = max(x_a, x_b)
    out[k, col] = lo - 1e-12 * abs(lo)
    out[k, col + 1] = hi + 1e-12 * abs(hi)


#: directions between two checkpoints of the per-vector tail bounds (:func:`_tail_bounds`)
_STRIDE = 64


@njit(cache=True)
def _tail_lines(slopes):
    """``lines[k, w, f, side]``: the slope of ``low`` (``f = 0``) / ``high`` (``f = 1``) of direction
    ``k`` in variant ``w`` for ``delta >= 0`` (``side = 0``) / ``delta < 0`` (:func:`_tail_bounds`)."""
    d = slopes.shape[0]
    lines = np.empty((d, 2, 2, 2))
    for k in range(d):
        p_lo, p_hi, n_lo, n_hi = slopes[k, 0], slopes[k, 1], slopes[k, 2], slopes[k, 3]
        lines[k, 0, 0, 0] = min(p_lo, n_hi)
        lines[k, 0, 0, 1] = n_hi
        lines[k, 0, 1, 0] = max(p_hi, n_lo)
        lines[k, 0, 1, 1] = n_lo
        lines[k, 1, 0, 0] = p_lo
        lines[k, 1, 0, 1] = max(n_hi, p_lo)
        lines[k, 1, 1, 0] = p_hi
        lines[k, 1, 1, 1] = min(n_lo, p_hi)
    return lines


@njit(cache=True)
def _tail_bounds(values, lines, dir_order, center):
    r"""Bounds of the remaining terms of every dominance test with a vector of ``values``, at every
    checkpoint ``c`` (directions ``dir_order[c * _STRIDE:]``).

    The term of direction k lies between ``low_k(delta)`` and ``high_k(delta)``, piecewise linear
    through 0 with the slopes of :func:`_term_slopes` (``lines``: :func:`_tail_lines`). If ``low`` is concave (a positively
    homogeneous function, so superadditive) then, with ``delta = (u - z) + (z - v)`` for the
    centre ``z``,

    .. math:: \sum_k \mathrm{low}_k(u_k - v_k) \ge \sum_k \mathrm{low}_k(u_k - z_k) + \sum_k \mathrm{low}_k(z_k - v_k),

    and for a convex ``high`` the same with ``<=``: each vector's share is summed once, here.
    Where ``low`` is convex it is replaced by a line below it (a slope between its two), and where
    ``high`` is concave by a line above it; a line splits exactly. Two variants choose those lines:
    variant 0 the slope of ``delta < 0`` (exact for tests where ``u`` lies below ``v``), variant 1
    that of ``delta > 0``; a test takes the better of the two.

    ``out[a, w, 0 / 1, c]``: low / high sums of vector ``a`` as the dominator ``u``, variant ``w``;
    ``out[a, w, 2 / 3, c]``: as the target ``v``. Close vectors (near ties) get small bounds."""
    d = dir_order.shape[0]
    n_chk = (d + _STRIDE - 1) // _STRIDE
    out = np.zeros((values.shape[0], 2, 4, n_chk + 1))
    acc = np.zeros((2, 4))
    for a in range(values.shape[0]):
        acc[:] = 0.0
        size = 0.0
        for t in range(d - 1, -1, -1):
            k = dir_order[t]
            delta = values[a, k] - center[k]
            side_u = 0 if delta >= 0.0 else 1  # the dominator's share: delta = u - z
            side_v = 1 - side_u if delta != 0.0 else 0  # the target's share: -delta = z - v
            for w in range(2):
                for f in range(2):
                    share_u = lines[k, w, f, side_u] * delta
                    share_v = -lines[k, w, f, side_v] * delta
                    acc[w, f] += share_u
                    acc[w, 2 + f] += share_v
                    size += abs(share_u) + abs(share_v)
            if t % _STRIDE == 0:
                margin = size * 1e-9 + 1e-300  # against rounding in the partial sums
                c = t // _STRIDE
                for w in range(2):
                    out[a, w, 0, c] = acc[w, 0] - margin
                    out[a, w, 1, c] = acc[w, 1] + margin
                    out[a, w, 2, c] = acc[w, 2] - margin
                    out[a, w, 3, c] = acc[w, 3] + margin
    return out


@njit(cache=True)
def _value_span(old_values, new_values):
    """Per direction, the smallest interval holding every value of ``old_values`` and ``new_values``:
    every pair one merge tests lies in it, so it bounds their terms (:func:`_term_slopes`) far
    more tightly than the position's whole range (earlier exits, the same decisions)."""
    d = new_values.shape[1]
    lo = np.empty(d)
    hi = np.empty(d)
    for k in range(d):
        lo[k] = np.inf
        hi[k] = -np.inf
    for values in (old_values, new_values):
        for a in range(values.shape[0]):
            for k in range(d):
                v = values[a, k]
                if v < lo[k]:
                    lo[k] = v
                if v > hi[k]:
                    hi[k] = v
    for k in range(d):
        if hi[k] < lo[k]:  # no vectors at all
            lo[k] = hi[k] = 0.0
    return lo, hi


@njit(cache=True)
def _dominates_ordered(u, v, coef, order, suffix, tail_u, tail_v):
    """``_dominates_coef`` visiting directions by decreasing magnitude, leaving early when the rest
    cannot change the sign. The rest after ``order[:t]`` lies in ``[-suffix[t], suffix[t]]`` (the
    sum of the directions' magnitudes) and, for this pair, in ``[tail_u[w, 0, c] + tail_v[w, 2, c] - gap,
    tail_u[w, 1, c] + tail_v[w, 3, c] + gap]`` for either variant ``w`` and the next checkpoint
    ``c * _STRIDE >= t`` (:func:`_tail_bounds`), ``gap`` the magnitudes of the directions before it."""
    total = 0.0
    d = order.shape[0]
    chunk = -1
    low_c = -np.inf
    high_c = np.inf
    tail_rest = 0.0
    for t in range(d):
        k = order[t]
        total += _term_bound(u[k], v[k], coef, k)
        rest = suffix[t + 1]
        # the pair's bounds hold from the next checkpoint on; the directions before it add at
        # most their magnitudes (signed sums over a larger set bound nothing)
        c = (t + _STRIDE) // _STRIDE
        if c != chunk:
            chunk = c
            tail_rest = suffix[c * _STRIDE if c * _STRIDE < d else d]
            low_c = max(tail_u[0, 0, c] + tail_v[0, 2, c], tail_u[1, 0, c] + tail_v[1, 2, c])
            high_c = min(tail_u[0, 1, c] + tail_v[0, 3, c], tail_u[1, 1, c] + tail_v[1, 3, c])
        gap = rest - tail_rest + 1e-12 * rest
        low = low_c - gap
        high = high_c + gap
        least = low if low > -rest else -rest  # the rest of the sum lies in [least, most]
        most = high if high < rest else rest
        if total + least > 0.0:
            return False
        if total + most <= 0.0:
            return True
    return total <= 0.0


@njit(cache=True)
def dominates(u, v, ctx, s_lo, s_hi, goal, scale):
    r"""True when replacing the value vector ``v`` by ``u`` (same position) never increases :math:`W_2`.

    Sufficient test :math:`\sum_i \min(\text{box}_i, \text{range}_i) \le 0` (docstring of
    :mod:`opmerge.solvers.pareto`).

    Parameters
    ----------
    u, v : float64[d]
        Two value vectors of the same position.
    ctx : float64[4, d]
        Context bounds of the position.
    s_lo, s_hi, goal, scale : float64[d]

    Returns
    -------
    bool
    """
    return _dominates_coef(u, v, position_coefficients(ctx, s_lo, s_hi, goal, scale))


@njit(cache=True, inline="always")
def _label_ok(labels_u, u, labels_v, v):
    return labels_u[u, 0] <= labels_v[v, 0] and labels_u[u, 1] <= labels_v[v, 1]


@njit(cache=True, inline="always")
def _dominates_at(values, labels, tails, q, target, target_labels, target_tails, t, coef, order, suffix):
    """Whether vector ``q`` (none when ``q < 0``) dominates ``target[t]``, its labels ``<=`` too."""
    return (q >= 0 and _label_ok(labels, q, target_labels, t)
            and _dominates_ordered(values[q], target[t], coef, order, suffix, tails[q], target_tails[t]))


@njit(cache=True, inline="always")
def _first_dominator(values, labels, tails, members, count, skip, target, target_labels, target_tails, t, coef, order,
                     suffix):
    """First ``q`` in ``members[:count]``, other than ``skip``, that dominates ``target[t]`` (-1: none)."""
    for p in range(count):
        q = members[p]
        if q != skip and _dominates_at(values, labels, tails, q, target, target_labels, target_tails, t, coef, order,
                                       suffix):
            return q
    return -1


@njit(cache=True)
def _sift(values, labels, tails, order, fixed_values, fixed_labels, fixed_tails, fixed_members, n_fixed, grow, coef,
          dir_order, suffix):
    """Indices, in ``order``, of the vectors of ``values`` dominated by no vector ``fixed_members[:n_fixed]``
    of ``fixed_values`` nor, with ``grow``, by one kept before them. Tried first: the last successful
    dominator of each kind; then the fixed vectors, then the kept ones."""
    keep = np.empty(order.shape[0], np.int64)
    n_kept = 0
    last_fixed = -1
    last_kept = -1
    for t in range(order.shape[0]):
        idx = order[t]
        if (_dominates_at(fixed_values, fixed_labels, fixed_tails, last_fixed, values, labels, tails, idx, coef,
                          dir_order, suffix)
                or _dominates_at(values, labels, tails, last_kept, values, labels, tails, idx, coef, dir_order,
                                 suffix)):
            continue
        q = _first_dominator(fixed_values, fixed_labels, fixed_tails, fixed_members, n_fixed, last_fixed, values,
                             labels, tails, idx, coef, dir_order, suffix)
        if q >= 0:
            last_fixed = q
            continue
        if grow:
            q = _first_dominator(values, labels, tails, keep, n_kept, last_kept, values, labels, tails, idx, coef,
                                 dir_order, suffix)
            if q >= 0:
                last_kept = q
                continue
        keep[n_kept] = idx
        n_kept += 1
    return keep[:n_kept]


@njit(cache=True)
def merge_fronts(old_values, old_labels, new_values, new_lb, new_labels, ctx, s_lo, s_hi, goal, scale):
    """Merge new candidates into a front (a set in which no vector dominates another).

    The dominance tests visit the directions by decreasing bound on their term over the values of
    this merge and leave once the rest cannot change the sign (:func:`_dominates_ordered`, with
    the per-pair bounds of :func:`_tail_bounds`), so the kept sets equal those of
    :func:`~opmerge.solvers._reference.merge_fronts_reference`.

    1. New candidates, by increasing bound ``new_lb`` (ties: index order), are dropped when a
       vector of the old front or an already kept new one dominates them (with labels ``<=``);
    2. old vectors are dropped when a kept new one dominates them.

    Every dropped vector is dominated by a kept one (the relation is transitive). The last
    successful dominator is tried first.

    Parameters
    ----------
    old_values : float64[n_old, d]; old_labels : int64[n_old, 2]
        The front so far.
    new_values : float64[n_new, d]; new_lb : float64[n_new]; new_labels : int64[n_new, 2]
        Candidates with their bounds and cost labels.
    ctx : float64[4, d]; s_lo, s_hi, goal, scale : float64[d]

    Returns
    -------
    old_keep, new_keep : int64 arrays
        Indices of the kept old vectors and of the kept candidates.
    """
    coef = position_coefficients(ctx, s_lo, s_hi, goal, scale)
    seen_lo, seen_hi = _value_span(old_values, new_values)
    slopes = _term_slopes(coef, seen_lo, seen_hi)
    magnitude = np.empty(coef.shape[0])
    for k in range(coef.shape[0]):
        steepest = max(abs(slopes[k, 0]), abs(slopes[k, 1]), abs(slopes[k, 2]), abs(slopes[k, 3]))
        magnitude[k] = steepest * (seen_hi[k] - seen_lo[k])
    dir_order = np.argsort(-magnitude, kind="mergesort")
    suffix = np.zeros(dir_order.shape[0] + 1)
    for t in range(dir_order.shape[0] - 1, -1, -1):
        suffix[t] = suffix[t + 1] + magnitude[dir_order[t]]
    # make the early exits safe against rounding in the partial sums
    for t in range(suffix.shape[0]):
        suffix[t] = suffix[t] * (1.0 + 1e-9) + 1e-300
    n_old = old_values.shape[0]
    n_new = new_values.shape[0]
    center = np.zeros(coef.shape[0])
    for values in (old_values, new_values):
        for a in range(values.shape[0]):
            center += values[a]
    center /= max(n_old + n_new, 1)
    lines = _tail_lines(slopes)
    old_tails = _tail_bounds(old_values, lines, dir_order, center)
    new_tails = _tail_bounds(new_values, lines, dir_order, center)
    new_keep = _sift(new_values, new_labels, new_tails, np.argsort(new_lb, kind="mergesort"), old_values, old_labels,
                     old_tails, np.arange(n_old), n_old, True, coef, dir_order, suffix)
    old_keep = _sift(old_values, old_labels, old_tails, np.arange(n_old), new_values, new_labels, new_tails, new_keep,
                     new_keep.shape[0], False, coef, dir_order, suffix)
    return old_keep, new_keep


@njit(cache=True)
def _greedy_position(ctx, slot_of, identity, s_lo, s_hi, goal, scale):
    """Per-direction context ``(4, d)`` and dominance coefficients of one position."""
    d = goal.shape[0]
    full = np.empty((4, d))
    for k in range(d):
        c = k if identity else slot_of[k]
        for r in range(4):
            full[r, k] = ctx[r, c]
    return full, position_coefficients(full, s_lo, s_hi, goal, scale)


@njit(cache=True)
def _greedy_offer(mode, first, rest, retention, init_code, jump, ctx, coef, s_lo, s_hi, goal, scale, cand, best,
                  best_bound, has_best):
    """Build one candidate in ``cand``; copy it to ``best`` when it beats it (as a front of one
    vector would keep it: not dominated by ``best`` and either dominating it or of smaller bound).
    Returns the bound of ``best`` afterwards and whether ``cand`` was taken."""
    bound = 0.0
    for k in range(goal.shape[0]):
        if mode == 0:
            init = _init_value(init_code, first[k], jump[k] if init_code == 1 else 0.0)
            val = node_value(retention[k], first[k], rest[k], init)
        else:
            val = first[k] * rest[k]
        cand[k] = val
        bound += _excess_sq(ctx[0, k] + ctx[2, k] * val, ctx[1, k] + ctx[3, k] * val, s_lo[k], s_hi[k], goal[k], scale[k])
    take = not has_best
    if has_best and not _dominates_coef(best, cand, coef):
        take = bound < best_bound or _dominates_coef(cand, best, coef)
    if take:
        best[:] = cand
        return bound, True
    return best_bound, False


@njit(cache=True)
def greedy_fronts(steps_t, retention_t, jump_t, init_code, segments, ctx_v, reach_v, ctx_f, reach_f, ctx_g, reach_g,
                  slot_of, identity, s_lo, s_hi, goal, scale):
    r"""The Pareto DP with a front of one vector per position (a beam of width 1): a good plan, fast.

    Every position keeps one vector: its candidates (built as in
    :class:`~opmerge.solvers._pareto_dp.ParetoDP` from the kept vectors of its parts, splits from
    ``j - 1`` down) replace the kept one when it does not dominate them and they either dominate
    it or have a smaller bound :math:`\mathrm{LB}^2` in the position's context: what a front
    truncated to its first vector keeps. No optimality is claimed: the plan seeds the exact runs.
    :math:`O(N^3 d)` operations.

    Parameters
    ----------
    steps_t, retention_t : float64[N + 1, d]; jump_t : float64[N + 1, N + 1, d] (or ``(1, 1, d)``)
        Exact per-direction operators, direction axis last.
    init_code : int
    segments : int
    ctx_v, ctx_f : float64[N + 1, N + 1, 4, slots]; ctx_g : float64[M + 1, N + 1, 4, slots]
    reach_v, reach_f : bool[N + 1, N + 1]; reach_g : bool[M + 1, N + 1]
        Contexts and reachability of the positions (:func:`context_bounds`).
    slot_of : int64[d]; identity : bool
        The slot of every direction (one per direction when ``identity``).
    s_lo, s_hi, goal, scale : float64[d]

    Returns
    -------
    v_split, f_split : int64[N + 1, N + 1]; g_split : int64[M + 1, N + 1]
        The split chosen at every position (``-1``: a leaf, a forest that is one tree or one
        segment; ``-2``: no vector).
    """
    n = steps_t.shape[0] - 1
    d = goal.shape[0]
    m_seg = segments
    tree = np.zeros((n + 1, n + 1, d))
    forest = np.zeros((n + 1, n + 1, d))
    v_split = np.full((n + 1, n + 1), -2, np.int64)
    f_split = np.full((n + 1, n + 1), -2, np.int64)
    cand = np.empty(d)
    empty = np.zeros(d)
    ones = np.ones(d)
    for length in range(1, n + 1):
        for i in range(0, n - length + 1):
            j = i + length
            if length == 1:
                if reach_v[i, j]:
                    tree[i, j] = steps_t[j]
                    v_split[i, j] = -1
                if reach_f[i, j]:
                    forest[i, j] = steps_t[j]
                    f_split[i, j] = -1
                continue
            if reach_v[i, j]:
                ctx, coef = _greedy_position(ctx_v[i, j], slot_of, identity, s_lo, s_hi, goal, scale)
                jump = jump_t[i, j] if init_code == 1 else empty
                bound = np.inf
                for m in range(j - 1, i, -1):
                    if v_split[m, j] == -2 or f_split[i, m] == -2:
                        continue
                    bound, taken = _greedy_offer(0, tree[m, j], forest[i, m], retention_t[j], init_code, jump, ctx, coef,
                                                 s_lo, s_hi, goal, scale, cand, tree[i, j], bound, v_split[i, j] != -2)
                    if taken:
                        v_split[i, j] = m
            if reach_f[i, j]:
                ctx, coef = _greedy_position(ctx_f[i, j], slot_of, identity, s_lo, s_hi, goal, scale)
                bound = np.inf
                if v_split[i, j] != -2:
                    bound, taken = _greedy_offer(1, tree[i, j], ones, empty, init_code, empty, ctx, coef, s_lo, s_hi, goal,
                                                 scale, cand, forest[i, j], bound, False)
                    f_split[i, j] = -1
                for m in range(j - 1, i, -1):
                    if v_split[m, j] == -2 or f_split[i, m] == -2:
                        continue
                    bound, taken = _greedy_offer(1, tree[m, j], forest[i, m], empty, init_code, empty, ctx, coef, s_lo, s_hi,
                                                 goal, scale, cand, forest[i, j], bound, f_split[i, j] != -2)
                    if taken:
                        f_split[i, j] = m
    g_split = np.full((m_seg + 1, n + 1), -2, np.int64)
    if m_seg == 1:
        return v_split, f_split, g_split
    seg = np.zeros((m_seg + 1, n + 1, d))
    for j in range(1, n + 1):
        if reach_g[1, j] and v_split[0, j] != -2:
            seg[1, j] = tree[0, j]
            g_split[1, j] = -1
    for k in range(2, m_seg + 1):
        for j in range(k, n + 1):
            if not reach_g[k, j]:
                continue
            ctx, coef = _greedy_position(ctx_g[k, j], slot_of, identity, s_lo, s_hi, goal, scale)
            bound = np.inf
            for m in range(j - 1, k - 2, -1):
                if v_split[m, j] == -2 or g_split[k - 1, m] == -2:
                    continue
                bound, taken = _greedy_offer(1, tree[m, j], seg[k - 1, m], empty, init_code, empty, ctx, coef, s_lo, s_hi,
                                             goal, scale, cand, seg[k, j], bound, g_split[k, j] != -2)
                if taken:
                    g_split[k, j] = m
    return v_split, f_split, g_split
