r"""Numba kernels of the interval (range) dynamic program. Private: use :mod:`opmerge.solvers`.

For one eigen-direction, let ``V[i, j]`` be the set of student values of all trees over the
steps ``j -> i`` and ``F[i, j]`` the set of products of all sequences of >= 1 trees partitioning
``j -> i``. A merge node over ``j -> i`` with first child on ``j -> m`` (value ``c1``) and the
rest a forest on ``m -> i`` (product ``R``) has value

.. math:: f(c_1, R) = (1 - r_j)\, c_1 R + r_j\, a_0, \qquad a_0 = c_1 \ (\text{warm}) \text{ or a constant},

bilinear in ``(c1, R)``, and ``F`` combines trees by products (bilinear too). Children are
independent, so the extremes of every set are attained at corners of the children's extremes:
the recursion below is exact for ``min`` and ``max``. Cost :math:`O(N^3)` time, :math:`O(N^2)` memory.

Arrays are indexed ``[i, j]`` with ``i < j`` (grid indices, 0 = data side). The choices that
attain the extremes are not stored: :func:`find_choice` recomputes them on demand for the
``O(N)`` nodes of one plan (same arithmetic, so equality is exact).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit

INIT_WARM, INIT_DDIM, INIT_ZERO, INIT_IDENTITY = 0, 1, 2, 3
#: code of each ``StudentModel.init`` in the kernels
INIT_CODES = {"warm": INIT_WARM, "ddim": INIT_DDIM, "zero": INIT_ZERO, "identity": INIT_IDENTITY}


@njit(cache=True, inline="always")
def node_value(r, c1, rest, a0):
    r"""Value of a merge node: :math:`(1 - r)\,(c_1 R) + r\, a_0` (docs/theory.md §4).

    The one place the Numba kernels compute it, in the association that plan evaluation uses
    (:func:`opmerge.objective.merge_value`), so that every kernel agrees with it to the last bit.
    ``r``: retention of the node; ``c1``: value of its first child; ``rest``: product ``R`` of the
    other children; ``a0``: the init value (:func:`_init_value`).
    """
    return (1.0 - r) * (c1 * rest) + r * a0


@njit(cache=True, inline="always")
def _init_value(init_code, c1, jump_ij):
    if init_code == 0:
        return c1
    if init_code == 1:
        return jump_ij
    if init_code == 2:
        return 0.0
    return 1.0


@njit(cache=True)
def _is_monotone(step_values, retention, init_code, jump):
    """True when every value is >= 0 and every node value is non-decreasing in its children.

    Then the minimum (maximum) of each table is attained at the children's minima (maxima),
    one corner instead of four (floating-point rounding is monotone too, so this is exact).
    """
    n = step_values.shape[0] - 1
    for j in range(1, n + 1):
        if not step_values[j] >= 0.0:
            return False
    for j in range(2, n + 1):
        if not (0.0 <= retention[j] <= 1.0):
            return False
    if init_code == 1:
        for i in range(n + 1):
            for j in range(i + 2, n + 1):
                if not jump[i, j] >= 0.0:
                    return False
    return True


#: stages of :func:`range_dp_run`'s resumable state: start a direction, the V/F tables, the G table
_STAGE_START, _STAGE_VF, _STAGE_G = 0, 1, 2


@njit(cache=True)
def range_dp_run(step_values, retention, init_code, jump, segments, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi, vt_lo, vt_hi,
                 state, work_limit):
    """Resumable interval DP: fill the tables of several directions, at most about ``work_limit`` steps per call.

    Exact min/max of tree (V), forest (F) and M-segment (G) values of every direction (the
    recursion of the module docstring). The work is cut into calls so that Python regains
    control often (to check a deadline and let a pending Ctrl-C surface); the caller allocates
    every array and calls again until ``state[0] == d`` (the number of directions). Nothing is
    allocated or returned here: a kernel returning new arrays calls back into Python when it
    boxes them, where a pending signal raised ``SystemError`` or crashed the process.

    Parameters
    ----------
    step_values : float64[d, N + 1]   teacher steps, entry n = A_n
    retention : float64[d, N + 1]     r_j for a node with input time j
    init_code : int                   0 warm, 1 ddim, 2 zero, 3 identity
    jump : float64[d, N + 1, N + 1]   D(j -> i) at [., i, j] (read only for ddim; may be 1x1x1 otherwise)
    segments : int                    M
    v_lo, v_hi, f_lo, f_hi : float64[d, N + 1, N + 1]   outputs, filled with +inf (lo) / -inf (hi)
    g_lo, g_hi : float64[d, M + 1, N + 1]               outputs, filled likewise
    vt_lo, vt_hi : float64[N + 1, N + 1]                scratch (transposed V of the running direction)
    state : int64[5]                  (direction, stage, a, b, monotone), zeros to start; updated
    work_limit : int                  inner steps (one corner scan of one split) before returning
    """
    n = step_values.shape[1] - 1
    n_dir = step_values.shape[0]
    d = state[0]
    stage = state[1]
    a = state[2]
    b = state[3]
    monotone = state[4] != 0
    work = 0
    while d < n_dir:
        sv = step_values[d]
        jd = jump[d] if init_code == 1 else jump[0]
        vl = v_lo[d]
        vh = v_hi[d]
        fl = f_lo[d]
        fh = f_hi[d]
        if stage == _STAGE_START:
            monotone = _is_monotone(sv, retention[d], init_code, jd)
            for j in range(1, n + 1):
                x = sv[j]
                vl[j - 1, j] = x
                vh[j - 1, j] = x
                vt_lo[j, j - 1] = x
                vt_hi[j, j - 1] = x
                fl[j - 1, j] = x
                fh[j - 1, j] = x
            work += n + 1 if init_code != 1 else (n + 1) * (n + 1)
            stage, a, b = _STAGE_VF, 2, 0
        if stage == _STAGE_VF:
            rd = retention[d]
            while a <= n:
                length = a
                while b <= n - length:
                    if work >= work_limit:
                        state[0], state[1], state[2], state[3], state[4] = d, stage, a, b, monotone
                        return
                    i = b
                    j = i + length
                    r = rd[j]
                    jump_ij = jd[i, j] if init_code == 1 else 0.0
                    node_lo = np.inf
                    node_hi = -np.inf
                    prod_lo = np.inf
                    prod_hi = -np.inf
                    if monotone:
                        for m in range(i + 1, j):
                            p_lo = vt_lo[j, m] * fl[i, m]
                            p_hi = vt_hi[j, m] * fh[i, m]
                            prod_lo = min(prod_lo, p_lo)
                            prod_hi = max(prod_hi, p_hi)
                            node_lo = min(node_lo, node_value(r, vt_lo[j, m], fl[i, m], _init_value(init_code, vt_lo[j, m], jump_ij)))
                            node_hi = max(node_hi, node_value(r, vt_hi[j, m], fh[i, m], _init_value(init_code, vt_hi[j, m], jump_ij)))
                        work += length
                    else:
                        for m in range(i + 1, j):
                            for bits in range(4):
                                c1 = vt_hi[j, m] if (bits & 1) else vt_lo[j, m]
                                rest = fh[i, m] if (bits & 2) else fl[i, m]
                                prod = c1 * rest
                                val = node_value(r, c1, rest, _init_value(init_code, c1, jump_ij))
                                node_lo = min(node_lo, val)
                                node_hi = max(node_hi, val)
                                prod_lo = min(prod_lo, prod)
                                prod_hi = max(prod_hi, prod)
                        work += 4 * length
                    vl[i, j] = node_lo
                    vh[i, j] = node_hi
                    vt_lo[j, i] = node_lo
                    vt_hi[j, i] = node_hi
                    # forest: a single tree, or a first tree on j -> m times a forest on m -> i
                    fl[i, j] = min(node_lo, prod_lo)
                    fh[i, j] = max(node_hi, prod_hi)
                    b += 1
                a += 1
                b = 0
            gl = g_lo[d]
            gh = g_hi[d]
            for j in range(1, n + 1):
                gl[1, j] = vl[0, j]
                gh[1, j] = vh[0, j]
            stage, a, b = _STAGE_G, 2, 2
        if stage == _STAGE_G:
            gl = g_lo[d]
            gh = g_hi[d]
            while a <= segments:
                k = a
                if b < k:
                    b = k
                while b <= n:
                    if work >= work_limit:
                        state[0], state[1], state[2], state[3], state[4] = d, stage, a, b, monotone
                        return
                    j = b
                    lo = np.inf
                    hi = -np.inf
                    for m in range(k - 1, j):
                        for bits in range(4):
                            c1 = vh[m, j] if (bits & 1) else vl[m, j]
                            rest = gh[k - 1, m] if (bits & 2) else gl[k - 1, m]
                            val = c1 * rest
                            lo = min(lo, val)
                            hi = max(hi, val)
                    gl[k, j] = lo
                    gh[k, j] = hi
                    work += 4 * (j - k + 2)
                    b += 1
                a += 1
                b = a
        d += 1
        stage, a, b = _STAGE_START, 0, 0
    state[0], state[1], state[2], state[3], state[4] = d, stage, a, b, monotone


def range_dp(step_values, retention, init_code, jump, segments):
    """Exact min/max of tree (V), forest (F) and M-segment (G) values of one direction, in one go.

    :func:`range_dp_run` for one direction without a work limit (the solvers call that kernel
    in slices through :func:`opmerge.solvers.tables.range_tables`).

    Parameters
    ----------
    step_values : float64[N + 1]   teacher steps, entry n = A_n
    retention : float64[N + 1]     r_j for a node with input time j
    init_code : int                0 warm, 1 ddim, 2 zero, 3 identity
    jump : float64[N + 1, N + 1]   D(j -> i) at [i, j] (read only for ddim; may be 1x1 otherwise)
    segments : int                 M

    Returns
    -------
    v_lo, v_hi, f_lo, f_hi : float64[N + 1, N + 1]   (entries [i, j], i < j)
    g_lo, g_hi : float64[M + 1, N + 1]               k trees covering j -> 0
    The plans that attain them are recovered by :func:`find_choice`.
    """
    steps = np.ascontiguousarray(step_values, dtype=np.float64)[None, :]
    n = steps.shape[1] - 1
    tables = new_tables(1, n, int(segments))
    vt_lo, vt_hi = np.empty((n + 1, n + 1)), np.empty((n + 1, n + 1))
    state = np.zeros(5, dtype=np.int64)
    range_dp_run(steps, np.ascontiguousarray(retention, dtype=np.float64)[None, :], int(init_code),
                 np.ascontiguousarray(jump, dtype=np.float64)[None, :, :], int(segments), *tables, vt_lo, vt_hi,
                 state, np.iinfo(np.int64).max)
    return tuple(t[0] for t in tables)


#: elements set per block when the tables are initialised (16 MB): large tables take seconds to touch
FILL_BLOCK = 2_000_000


def new_tables(dim: int, steps: int, segments: int, after_block: Callable[[], None] | None = None) -> tuple:
    """The six output arrays of :func:`range_dp_run` for ``dim`` directions: ``v_lo, v_hi, f_lo, f_hi``
    of shape ``(dim, N + 1, N + 1)`` and ``g_lo, g_hi`` of shape ``(dim, M + 1, N + 1)``, filled with
    ``+inf`` (lows) and ``-inf`` (highs), :data:`FILL_BLOCK` elements at a time.

    ``after_block`` (optional) is called after each block: the solvers check their deadline there
    (and a pending Ctrl-C surfaces) while gigabytes are touched."""
    out = []
    for k, rows in enumerate((steps + 1,) * 4 + (segments + 1,) * 2):
        table = np.empty((dim, rows, steps + 1))
        flat = table.reshape(-1)
        value = np.inf if k % 2 == 0 else -np.inf
        for begin in range(0, flat.size, FILL_BLOCK):
            flat[begin:begin + FILL_BLOCK] = value
            if after_block is not None:
                after_block()
        out.append(table)
    return tuple(out)


@njit(cache=True)
def find_choice(table, side, k_or_i, j, step_values, retention, init_code, jump, v_lo, v_hi, f_lo, f_hi, g_lo, g_hi):
    """Recover the choice that attains an extreme of ``range_dp`` (exact equality, first in scan order).

    ``table``: 0 = V[i, j], 1 = F[i, j], 2 = G[k, j]; ``side``: 0 = min, 1 = max.
    Returns ``(m, bits)``: the split (``-1``: the forest is a single tree) and the corner bits
    (bit 0: first child at its max, bit 1: the rest at its max).
    """
    if table == 0:
        i = k_or_i
        target = v_hi[i, j] if side else v_lo[i, j]
        r = retention[j]
        jump_ij = jump[i, j] if init_code == 1 else 0.0
        for m in range(i + 1, j):
            for bits in range(4):
                c1 = v_hi[m, j] if (bits & 1) else v_lo[m, j]
                rest = f_hi[i, m] if (bits & 2) else f_lo[i, m]
                if node_value(r, c1, rest, _init_value(init_code, c1, jump_ij)) == target:
                    return m, bits
        return -2, 0
    if table == 1:
        i = k_or_i
        target = f_hi[i, j] if side else f_lo[i, j]
        if (v_hi[i, j] if side else v_lo[i, j]) == target:
            return -1, side * 3
        for m in range(i + 1, j):
            for bits in range(4):
                c1 = v_hi[m, j] if (bits & 1) else v_lo[m, j]
                rest = f_hi[i, m] if (bits & 2) else f_lo[i, m]
                if c1 * rest == target:
                    return m, bits
        return -2, 0
    k = k_or_i
    target = g_hi[k, j] if side else g_lo[k, j]
    for m in range(k - 1, j):
        for bits in range(4):
            c1 = v_hi[m, j] if (bits & 1) else v_lo[m, j]
            rest = g_hi[k - 1, m] if (bits & 2) else g_lo[k - 1, m]
            if c1 * rest == target:
                return m, bits
    return -2, 0


@njit(cache=True)
def closest_pair(values_1, values_2, a, b, c, d, goal):
    r"""Closest value to ``goal`` of :math:`S = a h_1 h_2 + b h_1 + c h_2 + d` over sorted lists.

    For each :math:`h_1` (``values_1``) the value is affine in :math:`h_2`, so the best
    :math:`h_2` is a neighbour of the root in the sorted ``values_2`` (binary search):
    :math:`O(n_1 \log n_2)`. Returns ``(distance, index_1, index_2)``.
    """
    best = np.inf
    best_1 = -1
    best_2 = -1
    n2 = values_2.shape[0]
    for i1 in range(values_1.shape[0]):
        h1 = values_1[i1]
        slope = a * h1 + c
        intercept = b * h1 + d
        if slope == 0.0:
            dist = abs(intercept - goal)
            if dist < best:
                best = dist
                best_1 = i1
                best_2 = 0
            continue
        root = (goal - intercept) / slope
        pos = np.searchsorted(values_2, root)
        for i2 in (pos - 1, pos):
            if 0 <= i2 < n2:
                dist = abs(slope * values_2[i2] + intercept - goal)
                if dist < best:
                    best = dist
                    best_1 = i1
                    best_2 = i2
    return best, best_1, best_2
