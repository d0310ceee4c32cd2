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


@njit(cache=True)
def range_dp(step_values, retention, init_code, jump, segments):
    """Exact min/max of tree (V), forest (F) and M-segment (G) values.

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
    n = step_values.shape[0] - 1
    monotone = _is_monotone(step_values, retention, init_code, jump)
    v_lo = np.full((n + 1, n + 1), np.inf)
    v_hi = np.full((n + 1, n + 1), -np.inf)
    f_lo = np.full((n + 1, n + 1), np.inf)
    f_hi = np.full((n + 1, n + 1), -np.inf)
    # transposed copies of V so that the inner loop over m reads contiguous memory
    vt_lo = np.full((n + 1, n + 1), np.inf)
    vt_hi = np.full((n + 1, n + 1), -np.inf)
    for j in range(1, n + 1):
        a = step_values[j]
        v_lo[j - 1, j] = a
        v_hi[j - 1, j] = a
        vt_lo[j, j - 1] = a
        vt_hi[j, j - 1] = a
        f_lo[j - 1, j] = a
        f_hi[j - 1, j] = a
    for length in range(2, n + 1):
        for i in range(0, n - length + 1):
            j = i + length
            r = retention[j]
            jump_ij = jump[i, j] if init_code == 1 else 0.0
            node_lo = np.inf
            node_hi = -np.inf
            prod_lo = np.inf
            prod_hi = -np.inf
            if monotone:
                for m in range(i + 1, j):
                    p_lo = vt_lo[j, m] * f_lo[i, m]
                    p_hi = vt_hi[j, m] * f_hi[i, m]
                    prod_lo = min(prod_lo, p_lo)
                    prod_hi = max(prod_hi, p_hi)
                    node_lo = min(node_lo, node_value(r, vt_lo[j, m], f_lo[i, m], _init_value(init_code, vt_lo[j, m], jump_ij)))
                    node_hi = max(node_hi, node_value(r, vt_hi[j, m], f_hi[i, m], _init_value(init_code, vt_hi[j, m], jump_ij)))
            else:
                for m in range(i + 1, j):
                    for bits in range(4):
                        c1 = vt_hi[j, m] if (bits & 1) else vt_lo[j, m]
                        rest = f_hi[i, m] if (bits & 2) else f_lo[i, m]
                        prod = c1 * rest
                        val = node_value(r, c1, rest, _init_value(init_code, c1, jump_ij))
                        node_lo = min(node_lo, val)
                        node_hi = max(node_hi, val)
                        prod_lo = min(prod_lo, prod)
                        prod_hi = max(prod_hi, prod)
            v_lo[i, j] = node_lo
            v_hi[i, j] = node_hi
            vt_lo[j, i] = node_lo
            vt_hi[j, i] = node_hi
            # forest: a single tree, or a first tree on j -> m times a forest on m -> i
            f_lo[i, j] = min(node_lo, prod_lo)
            f_hi[i, j] = max(node_hi, prod_hi)
    g_lo = np.full((segments + 1, n + 1), np.inf)
    g_hi = np.full((segments + 1, n + 1), -np.inf)
    for j in range(1, n + 1):
        g_lo[1, j] = v_lo[0, j]
        g_hi[1, j] = v_hi[0, j]
    for k in range(2, segments + 1):
        for j in range(k, n + 1):
            lo = np.inf
            hi = -np.inf
            for m in range(k - 1, j):
                for bits in range(4):
                    c1 = v_hi[m, j] if (bits & 1) else v_lo[m, j]
                    rest = g_hi[k - 1, m] if (bits & 2) else g_lo[k - 1, m]
                    val = c1 * rest
                    lo = min(lo, val)
                    hi = max(hi, val)
            g_lo[k, j] = lo
            g_hi[k, j] = hi
    return v_lo, v_hi, f_lo, f_hi, g_lo, g_hi


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
