"""Plain-Python references of the Numba kernels (for tests and for the benchmark's speed-up).

Same recursion as :func:`opmerge.solvers._kernels.range_dp`, written with Python floats and
lists and no tricks, so that a reader can check it line by line.
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
