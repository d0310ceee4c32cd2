r"""Numba branch and bound for one eigen-direction. Private: used by :func:`opmerge.solvers.solve`.

Same algorithm as :class:`opmerge.solvers._search.LineSearch1D` (its plain-Python reference):
partial plans are expressions with holes ``V(i, j)``, ``F(i, j)``, ``G(k, j)``; long holes are
expanded first (longest first), then the shortest until at most two short holes remain, whose
best completion comes from sorted value lists by binary search (:func:`closest_pair`).

Memory: expressions live in a node pool with path copying. The search is depth first, so the pool
is a stack too: popping a stack entry frees everything allocated after its siblings were made.
The state (pool, stack, incumbent) lives in arrays owned by the caller, so the search runs in
slices of ``max_nodes`` expansions and Python checks the clock between slices.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels import _init_value, closest_pair, node_value

LEAF, HOLE_V, HOLE_F, HOLE_G, NODE, PROD = 0, 1, 2, 3, 4, 5
# int columns of the pool
C_KIND, C_I, C_J, C_FIRST, C_REST, C_HOLES = 0, 1, 2, 3, 4, 5
LONG = 1 << 30


@njit(cache=True, inline="always")
def _new(pool_int, pool_f, top, kind, i, j, first, rest, lo, hi, holes):
    k = top[0]
    if k >= pool_int.shape[0]:
        return -1
    pool_int[k, C_KIND] = kind
    pool_int[k, C_I] = i
    pool_int[k, C_J] = j
    pool_int[k, C_FIRST] = first
    pool_int[k, C_REST] = rest
    pool_int[k, C_HOLES] = holes
    pool_f[k, 0] = lo
    pool_f[k, 1] = hi
    top[0] = k + 1
    return k


@njit(cache=True)
def _leaf(pool_int, pool_f, top, steps, n):
    return _new(pool_int, pool_f, top, LEAF, n - 1, n, -1, -1, steps[n], steps[n], 0)


@njit(cache=True)
def _hole(pool_int, pool_f, top, steps, kind, i, j, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi):
    if kind == HOLE_G:
        if i != 1:
            return _new(pool_int, pool_f, top, HOLE_G, i, j, -1, -1, g_lo[i, j], g_hi[i, j], 1)
        kind = HOLE_V  # one segment left: any tree over j -> 0
        i = 0
    if j == i + 1:
        return _leaf(pool_int, pool_f, top, steps, j)
    if kind == HOLE_V:
        return _new(pool_int, pool_f, top, HOLE_V, i, j, -1, -1, v_lo[i, j], v_hi[i, j], 1)
    return _new(pool_int, pool_f, top, HOLE_F, i, j, -1, -1, f_lo[i, j], f_hi[i, j], 1)


@njit(cache=True)
def _prod(pool_int, pool_f, top, first, rest):
    if first < 0 or rest < 0:
        return -1
    a_lo, a_hi = pool_f[first, 0], pool_f[first, 1]
    b_lo, b_hi = pool_f[rest, 0], pool_f[rest, 1]
    c0, c1, c2, c3 = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    lo = min(min(c0, c1), min(c2, c3))
    hi = max(max(c0, c1), max(c2, c3))
    holes = pool_int[first, C_HOLES] + pool_int[rest, C_HOLES]
    return _new(pool_int, pool_f, top, PROD, pool_int[rest, C_I], pool_int[first, C_J], first, rest, lo, hi, holes)


@njit(cache=True)
def _a0(init_code, c1, jump, i, j):
    """The init value of a node over ``j -> i`` (``jump`` is read only for the ddim init)."""
    return _init_value(init_code, c1, jump[i, j] if init_code == 1 else 0.0)


@njit(cache=True)
def _node(pool_int, pool_f, top, i, j, first, rest, retention, init_code, jump):
    if first < 0 or rest < 0:
        return -1
    r = retention[j]
    a_lo, a_hi = pool_f[first, 0], pool_f[first, 1]
    b_lo, b_hi = pool_f[rest, 0], pool_f[rest, 1]
    v0 = node_value(r, a_lo, b_lo, _a0(init_code, a_lo, jump, i, j))
    v1 = node_value(r, a_lo, b_hi, _a0(init_code, a_lo, jump, i, j))
    v2 = node_value(r, a_hi, b_lo, _a0(init_code, a_hi, jump, i, j))
    v3 = node_value(r, a_hi, b_hi, _a0(init_code, a_hi, jump, i, j))
    lo = min(min(v0, v1), min(v2, v3))
    hi = max(max(v0, v1), max(v2, v3))
    holes = pool_int[first, C_HOLES] + pool_int[rest, C_HOLES]
    return _new(pool_int, pool_f, top, NODE, i, j, first, rest, lo, hi, holes)


@njit(cache=True)
def _bound_sq(lo, hi, goal, scale, data_target):
    if data_target:
        if lo >= 0.0:
            pass
        elif hi <= 0.0:
            lo, hi = -hi, -lo
        else:
            hi = max(-lo, hi)
            lo = 0.0
    dist = max(0.0, max(lo - goal, goal - hi))
    return scale * dist * dist


@njit(cache=True)
def _centrality(lo, hi, goal):
    width = max(hi - lo, 1e-300)
    return abs(0.5 * (lo + hi) - goal) / width


@njit(cache=True)
def _walk(pool_int, root, walk_node, walk_parent, walk_dir):
    """Breadth-first list of the expression's nodes (with parents); returns the count."""
    walk_node[0] = root
    walk_parent[0] = -1
    walk_dir[0] = 0
    count = 1
    head = 0
    while head < count:
        e = walk_node[head]
        kind = pool_int[e, C_KIND]
        if kind == NODE or kind == PROD:
            for d in range(2):
                child = pool_int[e, C_FIRST + d]
                walk_node[count] = child
                walk_parent[count] = head
                walk_dir[count] = d
                count += 1
        head += 1
    return count


@njit(cache=True)
def _hole_length(pool_int, e):
    if pool_int[e, C_KIND] == HOLE_G:
        return LONG
    return pool_int[e, C_J] - pool_int[e, C_I]


@njit(cache=True)
def _evaluate(pool_int, pool_f, order, count, values, h1, x1, h2, x2, retention, init_code, jump):
    """Value of the expression (nodes ``order[:count]`` sorted by pool index) with holes set to ``x1``, ``x2``."""
    for t in range(count):
        e = order[t]
        kind = pool_int[e, C_KIND]
        if kind == LEAF:
            values[e] = pool_f[e, 0]
        elif e == h1:
            values[e] = x1
        elif e == h2:
            values[e] = x2
        elif kind == PROD:
            values[e] = values[pool_int[e, C_FIRST]] * values[pool_int[e, C_REST]]
        else:
            i, j = pool_int[e, C_I], pool_int[e, C_J]
            r = retention[j]
            c1 = values[pool_int[e, C_FIRST]]
            values[e] = node_value(r, c1, values[pool_int[e, C_REST]], _a0(init_code, c1, jump, i, j))
    return values[order[count - 1]]


@njit(cache=True)
def _serialize(pool_int, root, out, hole_index_1, hole_index_2, h1, h2):
    """Pre-order (kind, i, j, list index) rows of an expression; returns the number of rows."""
    stack = np.empty(4 * out.shape[0] + 8, np.int64)
    stack[0] = root
    size = 1
    rows = 0
    while size > 0:
        size -= 1
        e = stack[size]
        out[rows, 0] = pool_int[e, C_KIND]
        out[rows, 1] = pool_int[e, C_I]
        out[rows, 2] = pool_int[e, C_J]
        out[rows, 3] = hole_index_1 if e == h1 else (hole_index_2 if e == h2 else -1)
        rows += 1
        kind = pool_int[e, C_KIND]
        if kind == NODE or kind == PROD:
            stack[size] = pool_int[e, C_REST]
            stack[size + 1] = pool_int[e, C_FIRST]
            size += 2
    return rows


@njit(cache=True)
def line_search(
    steps, retention, init_code, jump, goal, scale, data_target,
    v_lo, v_hi, f_lo, f_hi, g_lo, g_hi,
    list_vals, list_off, list_len, list_length,
    pool_int, pool_f, pool_top,
    stack_expr, stack_bound, stack_mark, stack_size,
    state, best_rows, max_nodes,
):
    """Run (or resume) the search for at most ``max_nodes`` expansions.

    ``state`` (float64[5]): best_sq, threshold slack ``tol_half``, estimate slack per unit of ``|S|``,
    min_pruned, nodes.
    ``best_rows`` (int64[R, 4]) receives the serialised incumbent; ``state`` is updated in place.
    Returns 0 when the search is complete, 1 when ``max_nodes`` ran out, 2 when the pool or the
    stack overflowed (the caller then reports a non-exact result with the bound it has).
    """
    best_sq = state[0]
    tol_half = state[1]
    slack = state[2]
    min_pruned = state[3]
    nodes = 0
    cap = 8 * (steps.shape[0] + 4)
    walk_node = np.empty(cap, np.int64)
    walk_parent = np.empty(cap, np.int64)
    walk_dir = np.empty(cap, np.int64)
    order = np.empty(cap, np.int64)
    values = np.zeros(pool_int.shape[0])
    child_idx = np.empty(steps.shape[0] + 2, np.int64)
    child_bound = np.empty(steps.shape[0] + 2)
    child_cent = np.empty(steps.shape[0] + 2)
    goals = np.array([goal, -goal]) if data_target else np.array([goal])
    status = 0
    root_threshold = 0.0

    while stack_size[0] > 0:
        root_threshold = max(0.0, np.sqrt(best_sq) - tol_half) ** 2
        stack_size[0] -= 1
        top_entry = stack_size[0]
        expr = stack_expr[top_entry]
        bound = stack_bound[top_entry]
        mark = stack_mark[top_entry]
        # everything above the mark belongs to finished descendants of later siblings
        pool_top[0] = mark
        if bound >= root_threshold:
            min_pruned = min(min_pruned, bound)
            continue
        count = _walk(pool_int, expr, walk_node, walk_parent, walk_dir)
        # holes of the expression
        n_holes = 0
        n_long = 0
        pick = -1
        pick_len = -1
        short_pick = -1
        short_len = LONG + 1
        h_first = -1
        h_second = -1
        for t in range(count):
            e = walk_node[t]
            kind = pool_int[e, C_KIND]
            if kind == HOLE_V or kind == HOLE_F or kind == HOLE_G:
                length = _hole_length(pool_int, e)
                n_holes += 1
                if h_first < 0:
                    h_first = t
                elif h_second < 0:
                    h_second = t
                if length > list_length:
                    n_long += 1
                    if length > pick_len:
                        pick_len = length
                        pick = t
                if length < short_len:
                    short_len = length
                    short_pick = t
        if n_holes <= 2 and n_long == 0:
            # resolve: S is affine / bilinear in the (at most two) hole values
            for t in range(count):
                order[t] = walk_node[t]
            order[:count] = np.sort(order[:count])
            h1 = walk_node[h_first] if h_first >= 0 else -1
            h2 = walk_node[h_second] if h_second >= 0 else -1
            s00 = _evaluate(pool_int, pool_f, order, count, values, h1, 0.0, h2, 0.0, retention, init_code, jump)
            best_dist = np.inf
            i1 = -1
            i2 = -1
            if n_holes == 0:
                for gi in range(goals.shape[0]):
                    d = abs(s00 - goals[gi])
                    if d < best_dist:
                        best_dist = d
            elif n_holes == 1:
                s10 = _evaluate(pool_int, pool_f, order, count, values, h1, 1.0, h2, 0.0, retention, init_code, jump)
                kind1 = 0 if pool_int[h1, C_KIND] == HOLE_V else 1
                off = list_off[kind1, pool_int[h1, C_I], pool_int[h1, C_J]]
                ln = list_len[kind1, pool_int[h1, C_I], pool_int[h1, C_J]]
                one = np.ones(1)
                for gi in range(goals.shape[0]):
                    res = closest_pair(one, list_vals[off:off + ln], 0.0, 0.0, s10 - s00, s00, goals[gi])
                    if res[0] < best_dist:
                        best_dist = res[0]
                        i1 = res[2]
            else:
                s10 = _evaluate(pool_int, pool_f, order, count, values, h1, 1.0, h2, 0.0, retention, init_code, jump)
                s01 = _evaluate(pool_int, pool_f, order, count, values, h1, 0.0, h2, 1.0, retention, init_code, jump)
                s11 = _evaluate(pool_int, pool_f, order, count, values, h1, 1.0, h2, 1.0, retention, init_code, jump)
                k1 = 0 if pool_int[h1, C_KIND] == HOLE_V else 1
                k2 = 0 if pool_int[h2, C_KIND] == HOLE_V else 1
                off1 = list_off[k1, pool_int[h1, C_I], pool_int[h1, C_J]]
                ln1 = list_len[k1, pool_int[h1, C_I], pool_int[h1, C_J]]
                off2 = list_off[k2, pool_int[h2, C_I], pool_int[h2, C_J]]
                ln2 = list_len[k2, pool_int[h2, C_I], pool_int[h2, C_J]]
                a = s11 - s10 - s01 + s00
                b = s10 - s00
                c = s01 - s00
                swap = ln1 > ln2
                for gi in range(goals.shape[0]):
                    if swap:
                        res = closest_pair(list_vals[off2:off2 + ln2], list_vals[off1:off1 + ln1], a, c, b, s00, goals[gi])
                        if res[0] < best_dist:
                            best_dist = res[0]
                            i1 = res[2]
                            i2 = res[1]
                    else:
                        res = closest_pair(list_vals[off1:off1 + ln1], list_vals[off2:off2 + ln2], a, b, c, s00, goals[gi])
                        if res[0] < best_dist:
                            best_dist = res[0]
                            i1 = res[1]
                            i2 = res[2]
            if n_holes >= 1:
                # exact value of the chosen completion: list values are bit-identical to plan evaluation
                k1 = 0 if pool_int[h1, C_KIND] == HOLE_V else 1
                x1 = list_vals[list_off[k1, pool_int[h1, C_I], pool_int[h1, C_J]] + i1]
                x2 = 0.0
                if n_holes == 2:
                    k2 = 0 if pool_int[h2, C_KIND] == HOLE_V else 1
                    x2 = list_vals[list_off[k2, pool_int[h2, C_I], pool_int[h2, C_J]] + i2]
                exact_s = _evaluate(pool_int, pool_f, order, count, values, h1, x1, h2, x2, retention, init_code, jump)
                best_dist = np.inf
                for gi in range(goals.shape[0]):
                    best_dist = min(best_dist, abs(exact_s - goals[gi]))
            else:
                exact_s = s00
            value_sq = scale * best_dist * best_dist
            if value_sq < root_threshold:
                best_sq = value_sq
                rows = _serialize(pool_int, expr, best_rows, i1, i2, h1, h2)
                best_rows[rows:, 0] = -1
            else:
                # another completion may be closer by the rounding of the bilinear read-out
                near = max(0.0, np.sqrt(value_sq) - slack * abs(exact_s))
                min_pruned = min(min_pruned, near * near)
            continue
        if nodes >= max_nodes:
            stack_size[0] += 1  # put it back: it is expanded by the next slice (not counted here)
            status = 1
            break
        nodes += 1
        # choose the hole to expand
        chosen = pick if n_long > 0 else short_pick
        hole = walk_node[chosen]
        hk = pool_int[hole, C_KIND]
        hi_ = pool_int[hole, C_I]
        hj = pool_int[hole, C_J]
        n_children = 0
        overflow = False
        if hk == HOLE_V:
            m_start, m_stop = hi_ + 1, hj
        elif hk == HOLE_F:
            m_start, m_stop = hi_, hj  # m = hi_ encodes "a single tree"
        else:
            m_start, m_stop = hi_ - 1, hj
        for m in range(m_start, m_stop):
            if hk == HOLE_V:
                first = _hole(pool_int, pool_f, pool_top, steps, HOLE_V, m, hj, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi)
                rest = _hole(pool_int, pool_f, pool_top, steps, HOLE_F, hi_, m, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi)
                new = _node(pool_int, pool_f, pool_top, hi_, hj, first, rest, retention, init_code, jump)
            elif hk == HOLE_F:
                if m == hi_:
                    new = _hole(pool_int, pool_f, pool_top, steps, HOLE_V, hi_, hj, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi)
                else:
                    first = _hole(pool_int, pool_f, pool_top, steps, HOLE_V, m, hj, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi)
                    rest = _hole(pool_int, pool_f, pool_top, steps, HOLE_F, hi_, m, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi)
                    new = _prod(pool_int, pool_f, pool_top, first, rest)
            else:
                first = _hole(pool_int, pool_f, pool_top, steps, HOLE_V, m, hj, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi)
                rest = _hole(pool_int, pool_f, pool_top, steps, HOLE_G, hi_ - 1, m, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi)
                new = _prod(pool_int, pool_f, pool_top, first, rest)
            # path copy up to the root
            t = chosen
            while new >= 0 and walk_parent[t] >= 0:
                parent = walk_node[walk_parent[t]]
                pk = pool_int[parent, C_KIND]
                if walk_dir[t] == 0:
                    if pk == NODE:
                        new = _node(pool_int, pool_f, pool_top, pool_int[parent, C_I], pool_int[parent, C_J], new,
                                    pool_int[parent, C_REST], retention, init_code, jump)
                    else:
                        new = _prod(pool_int, pool_f, pool_top, new, pool_int[parent, C_REST])
                else:
                    if pk == NODE:
                        new = _node(pool_int, pool_f, pool_top, pool_int[parent, C_I], pool_int[parent, C_J],
                                    pool_int[parent, C_FIRST], new, retention, init_code, jump)
                    else:
                        new = _prod(pool_int, pool_f, pool_top, pool_int[parent, C_FIRST], new)
                t = walk_parent[t]
            if new < 0:
                overflow = True
                break
            b = _bound_sq(pool_f[new, 0], pool_f[new, 1], goal, scale, data_target)
            if b < root_threshold:
                child_idx[n_children] = new
                child_bound[n_children] = b
                child_cent[n_children] = _centrality(pool_f[new, 0], pool_f[new, 1], goal)
                n_children += 1
            else:
                min_pruned = min(min_pruned, b)
        if overflow or stack_size[0] + n_children >= stack_expr.shape[0]:
            stack_size[0] += 1
            stack_mark[stack_size[0] - 1] = mark
            status = 2
            break
        # push worst first so that the best (lowest bound, then most central) is popped first
        for a in range(1, n_children):
            ci, cb, cc = child_idx[a], child_bound[a], child_cent[a]
            p = a - 1
            while p >= 0 and (child_bound[p] < cb or (child_bound[p] == cb and child_cent[p] < cc)):
                child_idx[p + 1] = child_idx[p]
                child_bound[p + 1] = child_bound[p]
                child_cent[p + 1] = child_cent[p]
                p -= 1
            child_idx[p + 1] = ci
            child_bound[p + 1] = cb
            child_cent[p + 1] = cc
        new_mark = pool_top[0]
        for a in range(n_children):
            s = stack_size[0]
            stack_expr[s] = child_idx[a]
            stack_bound[s] = child_bound[a]
            stack_mark[s] = new_mark
            stack_size[0] = s + 1
    state[0] = best_sq
    state[3] = min_pruned
    state[4] += nodes
    return status


@njit(cache=True)
def start_search(steps, segments, n, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi, goal, scale, data_target,
                 pool_int, pool_f, pool_top, stack_expr, stack_bound, stack_mark, stack_size):
    """Put the root hole ``G(M, N)`` on an empty stack."""
    pool_top[0] = 0
    root = _hole(pool_int, pool_f, pool_top, steps, HOLE_G, segments, n, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi)
    stack_expr[0] = root
    stack_bound[0] = _bound_sq(pool_f[root, 0], pool_f[root, 1], goal, scale, data_target)
    stack_mark[0] = pool_top[0]
    stack_size[0] = 1
