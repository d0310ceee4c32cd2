"""Solvers: the interval dynamic program (Numba), exact branch and bound, and brute force.

Public entry points: :func:`solve` (optimal plan with certificate), :func:`achievable_range`,
:func:`extreme_plan`, :func:`range_tables`, :func:`brute_force`.
"""
from .brute import brute_force
from .exact import DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET, Solution, achievable_range, extreme_plan, range_tables, solve

__all__ = [
    "Solution",
    "solve",
    "achievable_range",
    "extreme_plan",
    "range_tables",
    "brute_force",
    "DEFAULT_NODE_BUDGET",
    "DEFAULT_TIME_BUDGET",
]
