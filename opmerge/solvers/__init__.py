"""Solvers: the interval dynamic program (Numba), exact branch and bound, and brute force.

Public entry points: :func:`solve` (optimal plan with certificate), :func:`achievable_range`,
:func:`extreme_plan`, :func:`range_tables`, :func:`brute_force`.
"""
from .brute import brute_force
from .front import FrontPoint, fidelity_cost_front
from .pareto import solve_joint
from .exact import DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET, Solution, achievable_range, extreme_plan, range_tables, solve

__all__ = [
    "Solution",
    "solve",
    "achievable_range",
    "extreme_plan",
    "range_tables",
    "brute_force",
    "solve_joint",
    "fidelity_cost_front",
    "FrontPoint",
    "DEFAULT_NODE_BUDGET",
    "DEFAULT_TIME_BUDGET",
]
