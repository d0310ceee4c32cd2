"""Solvers: the interval dynamic program (Numba), exact branch and bound, the joint Pareto dynamic
program, the fidelity-cost front and brute force.

Public entry points: :func:`solve` (optimal plan with certificate), :func:`solve_joint` (several
directions), :func:`fidelity_cost_front`, :func:`achievable_range`, :func:`extreme_plan`,
:func:`range_tables`, :func:`brute_force`. Bad arguments raise
:class:`~opmerge.errors.InputError` (or :class:`~opmerge.errors.InputTypeError`).

Modules: ``exact`` (``solve``, ranges, extreme plans), ``pareto`` (``solve_joint``), ``front``
(fidelity versus cost), ``brute`` (the test oracle); private: ``_kernels`` (interval DP),
``_search`` / ``_line`` / ``_line_kernel`` (branch and bound), ``_pareto_dp`` /
``_pareto_kernels`` (the front DP), ``_reference`` (plain-Python references of every kernel),
``_tolerance`` (the optimality tolerance), ``_checks`` (input checks).
"""
from .brute import brute_force
from .dispatch import solve
from .exact import DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET
from .front import FrontPoint, fidelity_cost_front
from .pareto import solve_joint
from .progress import Progress, stderr_progress
from .solution import Solution
from .tables import achievable_range, extreme_plan, range_tables

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
    "Progress",
    "stderr_progress",
]
