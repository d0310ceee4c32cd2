"""Plain-Python references of the Numba kernels (for tests and for the benchmark's speed-up).

Same recursions as the kernels of :mod:`opmerge.solvers._kernels` (the interval DP) and
:mod:`opmerge.solvers._pareto_kernels` (the Pareto DP), written with Python floats and lists and
no tricks, so that a reader can check them line by line.
"""

from __future__ import annotations

import math

import numpy as np


def _init_value(init_code: int, c1: float, jump_ij: float) -> float:
    return (c1, jump_ij, 0.0, 1.0)[init_code]


def range_dp_reference(step_values, retention, init_code: int, jump, segments: int):
    """Min/max of tree (V), forest (F) and segment (G) values; returns numpy arrays ``v_lo, v_hi, f_lo, f_hi, g_lo, g_hi``."""
    a = [float(x) for x in step_values]
    ret = [float(x) for x in retention]
    n = len(a) - 1
    inf = math.inf
    v_lo = [[inf] * (n + 1) for _ in range(n + 1)]
    v_hi = [[-inf] * (n + 1) for _ in range(n + 1)]
    f_lo = [[inf] * (n + 1) for _ in range(n + 1)]
    f_hi = [[-inf] * (n + 1) for _ in range(n + 1)]
    for j in range(1, n + 1):
        v_lo[j - 1][j] = v_hi[j - 1][j] = f_lo[j - 1][j] = f_hi[j - 1][j] = a[j]
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length
            r = ret[j]
            jump_ij = float(jump[i][j]) if init_code == 1 else 0.0
            node_vals = []
            forest_vals = []
            for m in range(i + 1, j):
                for c1 in (v_lo[m][j], v_hi[m][j]):
                    for rest in (f_lo[i][m], f_hi[i][m]):
                        node_vals.append((1.0 - r) * (c1 * rest) + r * _init_value(init_code, c1, jump_ij))
                        forest_vals.append(c1 * rest)
            v_lo[i][j], v_hi[i][j] = min(node_vals), max(node_vals)
            f_lo[i][j] = min(forest_vals + [v_lo[i][j]])
            f_hi[i][j] = max(forest_vals + [v_hi[i][j]])
    g_lo = [[inf] * (n + 1) for _ in range(segments + 1)]
    g_hi = [[-inf] * (n + 1) for _ in range(segments + 1)]
    for j in range(1, n + 1):
        g_lo[1][j], g_hi[1][j] = v_lo[0][j], v_hi[0][j]
    for k in range(2, segments + 1):
        for j in range(k, n + 1):
            vals = [
                c1 * rest
                for m in range(k - 1, j)
                for c1 in (v_lo[m][j], v_hi[m][j])
                for rest in (g_lo[k - 1][m], g_hi[k - 1][m])
            ]
            g_lo[k][j], g_hi[k][j] = min(vals), max(vals)
    return tuple(np.array(x) for x in (v_lo, v_hi, f_lo, f_hi, g_lo, g_hi))


def closest_pair_reference(values_1, values_2, a: float, b: float, c: float, d: float, goal: float):
    """Brute force over all pairs: ``min |a h1 h2 + b h1 + c h2 + d - goal|``; returns ``(distance, i1, i2)``."""
    best = (math.inf, -1, -1)
    for i1, h1 in enumerate(values_1):
        for i2, h2 in enumerate(values_2):
            dist = abs(a * h1 * h2 + b * h1 + c * h2 + d - goal)
            if dist < best[0]:
                best = (dist, i1, i2)
    return best


# =============================================================================================
# The Pareto dynamic program (references of opmerge.solvers._pareto_kernels)
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

    def from_parents(table, key, pi, pj, of_first, o_lo, o_hi, x_lo, x_hi):
        # a parent node over pj -> pi (the position: its first child, or the product of the rest)
        # and a parent forest (its first tree, or the rest); the other part lies in [o_lo, o_hi]
        if (pi, pj) in ctx_v:
            r = [float(retention[pj, c]) for c in range(d)]
            if init_code == 0 and of_first:  # warm: a0 = c1 = x
                la = (zero, zero)
                lb = ([(1 - r[c]) * o_lo[c] + r[c] for c in range(d)], [(1 - r[c]) * o_hi[c] + r[c] for c in range(d)])
            else:
                if init_code == 0:
                    la = ([r[c] * o_lo[c] for c in range(d)], [r[c] * o_hi[c] for c in range(d)])
                else:
                    la = ([r[c] * a0_of(pi, pj, c) for c in range(d)],) * 2
                lb = ([(1 - r[c]) * o_lo[c] for c in range(d)], [(1 - r[c]) * o_hi[c] for c in range(d)])
            add(table, key, ctx_v[(pi, pj)], la, lb, x_lo, x_hi)
        if (pi, pj) in ctx_f:
            add(table, key, ctx_f[(pi, pj)], (zero, zero), (list(o_lo), list(o_hi)), x_lo, x_hi)

    for length in range(n, 0, -1):
        for i in range(n - length + 1):
            j = i + length
            for jp in range(j + 1, n + 1):
                from_parents(ctx_f, (i, j), i, jp, False, v_lo[j, jp], v_hi[j, jp], f_lo[i, j], f_hi[i, j])
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
                from_parents(ctx_v, (i, j), ip, j, True, f_lo[ip, i], f_hi[ip, i], v_lo[i, j], v_hi[i, j])
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


def merge_fronts_reference(old_values, old_labels, new_values, new_lb, new_labels, ctx, s_lo, s_hi, goal, scale):
    """Plain-Python :func:`merge_fronts` (same visiting order, so the same kept sets)."""

    def ok(lab_u, u_vals, u, lab_v, v_vals, v):
        return (lab_u[u][0] <= lab_v[v][0] and lab_u[u][1] <= lab_v[v][1]
                and dominates_reference(u_vals[u], v_vals[v], ctx, s_lo, s_hi, goal, scale))

    def sift(candidates, values, labels, fixed, fixed_values, fixed_labels, grow):
        # candidates dominated by no fixed vector nor (grow) a candidate kept before them;
        # the last successful dominator of each kind is tried first
        keep: list[int] = []
        last_fixed = last_kept = -1
        for idx in candidates:
            if ((last_fixed >= 0 and ok(fixed_labels, fixed_values, last_fixed, labels, values, idx))
                    or (last_kept >= 0 and ok(labels, values, last_kept, labels, values, idx))):
                continue
            q = next((q for q in fixed if q != last_fixed and ok(fixed_labels, fixed_values, q, labels, values, idx)), -1)
            if q >= 0:
                last_fixed = q
                continue
            k = next((k for k in keep if k != last_kept and ok(labels, values, k, labels, values, idx)), -1) if grow else -1
            if k >= 0:
                last_kept = k
                continue
            keep.append(idx)
        return keep

    order = sorted(range(len(new_values)), key=lambda t: (new_lb[t], t))
    new_keep = sift(order, new_values, new_labels, range(len(old_values)), old_values, old_labels, True)
    old_keep = sift(range(len(old_values)), old_values, old_labels, new_keep, new_values, new_labels, False)
    return np.array(old_keep, dtype=np.int64), np.array(new_keep, dtype=np.int64)


def greedy_fronts_reference(steps_t, retention_t, jump_t, init_code: int, segments: int, ctx_v, reach_v, ctx_f, reach_f,
                            ctx_g, reach_g, slot_of, s_lo, s_hi, goal, scale):
    """Plain-Python :func:`~opmerge.solvers._pareto_kernels.greedy_fronts`: one vector per position,
    replaced by a candidate it does not dominate that dominates it or has a smaller bound.
    Returns the splits ``v_split, f_split, g_split`` (``-1`` leaf or single part, ``-2`` none)."""
    n = len(steps_t) - 1
    d = len(goal)

    def context(table, a, j):
        return np.array([[float(table[a][j][r][slot_of[k]]) for k in range(d)] for r in range(4)])

    def offer(kept, candidate, ctx):
        """The vector a front of one vector keeps: ``kept`` (value, bound) or the candidate."""
        value = list(candidate)
        bound = _lb_sq_reference(ctx[0], ctx[1], ctx[2], ctx[3], value, value, s_lo, s_hi, goal, scale)
        if kept is None:
            return (value, bound), True
        if dominates_reference(np.array(kept[0]), np.array(value), ctx, s_lo, s_hi, goal, scale):
            return kept, False
        if bound < kept[1] or dominates_reference(np.array(value), np.array(kept[0]), ctx, s_lo, s_hi, goal, scale):
            return (value, bound), True
        return kept, False

    tree, forest, seg = {}, {}, {}
    v_split = np.full((n + 1, n + 1), -2, np.int64)
    f_split = np.full((n + 1, n + 1), -2, np.int64)
    g_split = np.full((segments + 1, n + 1), -2, np.int64)
    for length in range(1, n + 1):
        for i in range(n - length + 1):
            j = i + length
            if length == 1:
                if reach_v[i][j]:
                    tree[i, j], v_split[i, j] = [float(x) for x in steps_t[j]], -1
                if reach_f[i][j]:
                    forest[i, j], f_split[i, j] = [float(x) for x in steps_t[j]], -1
                continue
            if reach_v[i][j]:
                ctx, kept = context(ctx_v, i, j), None
                for m in range(j - 1, i, -1):
                    if (m, j) not in tree or (i, m) not in forest:
                        continue
                    first, rest = tree[m, j], forest[i, m]
                    cand = [(1.0 - retention_t[j][k]) * (first[k] * rest[k])
                            + retention_t[j][k] * _init_value(init_code, first[k], jump_t[i][j][k] if init_code == 1 else 0.0)
                            for k in range(d)]
                    kept, taken = offer(kept, cand, ctx)
                    if taken:
                        v_split[i, j] = m
                if kept is not None:
                    tree[i, j] = kept[0]
            if reach_f[i][j]:
                ctx, kept = context(ctx_f, i, j), None
                if (i, j) in tree:
                    kept, _ = offer(None, tree[i, j], ctx)
                    f_split[i, j] = -1
                for m in range(j - 1, i, -1):
                    if (m, j) not in tree or (i, m) not in forest:
                        continue
                    kept, taken = offer(kept, [tree[m, j][k] * forest[i, m][k] for k in range(d)], ctx)
                    if taken:
                        f_split[i, j] = m
                if kept is not None:
                    forest[i, j] = kept[0]
    if segments == 1:
        return v_split, f_split, g_split
    for j in range(1, n + 1):
        if reach_g[1][j] and (0, j) in tree:
            seg[1, j], g_split[1, j] = tree[0, j], -1
    for k in range(2, segments + 1):
        for j in range(k, n + 1):
            if not reach_g[k][j]:
                continue
            ctx, kept = context(ctx_g, k, j), None
            for m in range(j - 1, k - 2, -1):
                if (m, j) not in tree or (k - 1, m) not in seg:
                    continue
                kept, taken = offer(kept, [tree[m, j][c] * seg[k - 1, m][c] for c in range(d)], ctx)
                if taken:
                    g_split[k, j] = m
            if kept is not None:
                seg[k, j] = kept[0]
    return v_split, f_split, g_split
