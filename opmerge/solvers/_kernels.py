r"""Numba kernels of the interval (range) dynamic program. Private: use :mod:`opmerge.solvers`.

For one eigen-direction, let ``V[i, j]`` be the set of student values of all trees over the
steps ``j -> i`` and ``F[i, j]`` the set of products of all sequences of >= 1 trees partitioning
``j -> i``. A merge node over ``j -> i`` with first child on ``j -> m`` (value ``c1``) and the
rest a forest on ``m -> i`` (product ``R``) has value

.. math:: f(c_1, R) = (1 - r_j)\, c_1 R + r_j\, a_0, \qquad a_0 = c_1 \ (\text{warm}) \text{ or a constant},

bilinear in ``(c1, R)``, and ``F`` combines trees by products (bilinear too). Children are
independent, so the extremes of every set are attained at corners of the children's extremes:
the recursion below is exact for ``min`` and ``max``. Cost :math:`O(N^3)` time, :math:`O(N^2)` memory.

Arrays are indexed ``[i, j]`` with ``i < j`` (grid indices, 0 = data side). Choice arrays keep,
for backtracking, the split ``m`` (``-1``: the forest is a single tree) and two corner bits
(bit 0: ``c1`` at its max, bit 1: ``R`` at its max).
"""

from __future__ import annotations

import numpy as np
from numba import njit

INIT_WARM, INIT_DDIM, INIT_ZERO, INIT_IDENTITY = 0, 1, 2, 3


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
def range_dp(step_values, retention, init_code, jump, segments):
    """Exact min/max of tree, forest and M-segment values with backtracking choices.

    Parameters
    ----------
    step_values : float64[N + 1]   teacher steps, entry n = A_n
    retention : float64[N + 1]     r_j for a node with input time j
    init_code : int                0 warm, 1 ddim, 2 zero, 3 identity
    jump : float64[N + 1, N + 1]   D(j -> i) at [i, j] (read only for ddim; may be 1x1 otherwise)
    segments : int                 M

    Returns
    -------
    v_lo, v_hi, f_lo, f_hi : float64[N + 1, N + 1]
    v_lo_m, v_hi_m, f_lo_m, f_hi_m : int32[N + 1, N + 1]    split points (-1 = single tree for F)
    v_lo_b, v_hi_b, f_lo_b, f_hi_b : int8[N + 1, N + 1]     corner bits
    g_lo, g_hi : float64[M + 1, N + 1]                      k trees covering j -> 0
    g_lo_m, g_hi_m : int32[M + 1, N + 1]; g_lo_b, g_hi_b : int8[M + 1, N + 1]
    """
    n = step_values.shape[0] - 1
    v_lo = np.full((n + 1, n + 1), np.inf)
    v_hi = np.full((n + 1, n + 1), -np.inf)
    f_lo = np.full((n + 1, n + 1), np.inf)
    f_hi = np.full((n + 1, n + 1), -np.inf)
    v_lo_m = np.full((n + 1, n + 1), -1, np.int32)
    v_hi_m = np.full((n + 1, n + 1), -1, np.int32)
    f_lo_m = np.full((n + 1, n + 1), -1, np.int32)
    f_hi_m = np.full((n + 1, n + 1), -1, np.int32)
    v_lo_b = np.zeros((n + 1, n + 1), np.int8)
    v_hi_b = np.zeros((n + 1, n + 1), np.int8)
    f_lo_b = np.zeros((n + 1, n + 1), np.int8)
    f_hi_b = np.zeros((n + 1, n + 1), np.int8)
    # transposed copies of V so that the inner loop over m reads contiguous memory
    vt_lo = np.empty((n + 1, n + 1))
    vt_hi = np.empty((n + 1, n + 1))
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
            w = 1.0 - r
            jump_ij = jump[i, j] if init_code == 1 else 0.0
            best_lo = np.inf
            best_hi = -np.inf
            blo_m = -1
            bhi_m = -1
            blo_b = 0
            bhi_b = 0
            flo = np.inf
            fhi = -np.inf
            flo_m = -1
            fhi_m = -1
            flo_b = 0
            fhi_b = 0
            for m in range(i + 1, j):
                c_lo = vt_lo[j, m]
                c_hi = vt_hi[j, m]
                r_lo = f_lo[i, m]
                r_hi = f_hi[i, m]
                for bits in range(4):
                    c1 = c_hi if (bits & 1) else c_lo
                    rest = r_hi if (bits & 2) else r_lo
                    prod = c1 * rest
                    val = w * prod + r * _init_value(init_code, c1, jump_ij)
                    if val < best_lo:
                        best_lo = val
                        blo_m = m
                        blo_b = bits
                    if val > best_hi:
                        best_hi = val
                        bhi_m = m
                        bhi_b = bits
                    if prod < flo:
                        flo = prod
                        flo_m = m
                        flo_b = bits
                    if prod > fhi:
                        fhi = prod
                        fhi_m = m
                        fhi_b = bits
            v_lo[i, j] = best_lo
            v_hi[i, j] = best_hi
            vt_lo[j, i] = best_lo
            vt_hi[j, i] = best_hi
            v_lo_m[i, j] = blo_m
            v_hi_m[i, j] = bhi_m
            v_lo_b[i, j] = blo_b
            v_hi_b[i, j] = bhi_b
            # forest: a single tree, or a first tree on j -> m times a forest on m -> i
            if best_lo <= flo:
                flo = best_lo
                flo_m = -1
                flo_b = 0
            if best_hi >= fhi:
                fhi = best_hi
                fhi_m = -1
                fhi_b = 0
            f_lo[i, j] = flo
            f_hi[i, j] = fhi
            f_lo_m[i, j] = flo_m
            f_hi_m[i, j] = fhi_m
            f_lo_b[i, j] = flo_b
            f_hi_b[i, j] = fhi_b
    # segments: G[k, j] = k trees covering j -> 0
    g_lo = np.full((segments + 1, n + 1), np.inf)
    g_hi = np.full((segments + 1, n + 1), -np.inf)
    g_lo_m = np.full((segments + 1, n + 1), -1, np.int32)
    g_hi_m = np.full((segments + 1, n + 1), -1, np.int32)
    g_lo_b = np.zeros((segments + 1, n + 1), np.int8)
    g_hi_b = np.zeros((segments + 1, n + 1), np.int8)
    for j in range(1, n + 1):
        g_lo[1, j] = v_lo[0, j]
        g_hi[1, j] = v_hi[0, j]
    for k in range(2, segments + 1):
        for j in range(k, n + 1):
            lo = np.inf
            hi = -np.inf
            for m in range(k - 1, j):
                c_lo = v_lo[m, j]
                c_hi = v_hi[m, j]
                r_lo = g_lo[k - 1, m]
                r_hi = g_hi[k - 1, m]
                for bits in range(4):
                    c1 = c_hi if (bits & 1) else c_lo
                    rest = r_hi if (bits & 2) else r_lo
                    val = c1 * rest
                    if val < lo:
                        lo = val
                        g_lo_m[k, j] = m
                        g_lo_b[k, j] = bits
                    if val > hi:
                        hi = val
                        g_hi_m[k, j] = m
                        g_hi_b[k, j] = bits
            g_lo[k, j] = lo
            g_hi[k, j] = hi
    return (
        v_lo, v_hi, f_lo, f_hi,
        v_lo_m, v_hi_m, f_lo_m, f_hi_m,
        v_lo_b, v_hi_b, f_lo_b, f_hi_b,
        g_lo, g_hi, g_lo_m, g_hi_m, g_lo_b, g_hi_b,
    )


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
