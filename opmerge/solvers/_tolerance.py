r"""The optimality tolerance shared by every solver (private).

Two plans whose :math:`W_2` agree within

.. math:: \mathrm{tol} = \mathrm{atol} + \mathrm{rtol} \sqrt{\textstyle\sum_i s_i g_i^2}

cannot be told apart by evaluating them, so a solver stops when its certified lower bound is within
``tol`` of its incumbent, and a later plan replaces the incumbent only when it is better by more
than ``tol`` (the tie rule of :mod:`opmerge.solvers.exact`). The default
``rtol = 64 N eps`` is a safe multiple of the floating-point resolution of :math:`S` itself (each
of the :math:`\le N - 1` merge nodes adds a few roundings of relative size ``eps``).
"""

from __future__ import annotations

import math

import numpy as np

from ..objective import Problem

__all__ = ["default_rtol", "optimality_tolerance", "pruning_threshold"]


def default_rtol(steps: int) -> float:
    r"""The default relative tolerance :math:`64\, N\, \varepsilon` (``eps`` of float64).

    Parameters
    ----------
    steps : int
        Number of teacher steps ``N``.

    Returns
    -------
    float
    """
    return 64.0 * steps * np.finfo(np.float64).eps


def optimality_tolerance(problem: Problem, rtol: float | None, atol: float) -> float:
    r"""``tol`` of the module docstring for validated ``rtol`` (``None``: :func:`default_rtol`) and ``atol``.

    Parameters
    ----------
    problem : Problem
    rtol : float or None
    atol : float

    Returns
    -------
    float
    """
    if rtol is None:
        rtol = default_rtol(problem.steps)
    return atol + rtol * math.sqrt(float(np.sum(problem.scale * problem.goal**2)))


def pruning_threshold(best_sq: float, tol: float) -> float:
    r"""The squared W2 a plan must beat to replace an incumbent of squared W2 ``best_sq``.

    .. math:: \theta = \big(\max(\sqrt{\mathrm{best\_sq}} - \mathrm{tol},\ 0)\big)^2

    Parameters
    ----------
    best_sq : float
        Squared W2 of the incumbent (``inf`` when there is none).
    tol : float

    Returns
    -------
    float
    """
    root = math.sqrt(best_sq) - tol
    return root * root if root > 0 else 0.0
