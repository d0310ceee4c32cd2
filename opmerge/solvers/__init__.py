"""Solvers: the interval dynamic program (Numba), exact branch and bound, the joint Pareto dynamic
program, the fidelity-cost front and brute force.

Public entry points: :func:`solve` (optimal plan with certificate), :func:`solve_joint` (several
directions), :func:`fidelity_cost_front`, :func:`achievable_range`, :func:`extreme_plan`,
:func:`range_tables`, :func:`brute_force`. Bad arguments raise
:class:`~opmerge.errors.InputError` (or :class:`~opmerge.errors.InputTypeError`).

Progress of long searches: ``solve(problem, progress=stderr_progress)`` (:class:`Progress`).

Modules (each imports only those listed before it; docs/solver.md has the map): ``tables``
(range tables, ``achievable_range``, ``extreme_plan``), ``progress``, ``solution`` (``Solution``,
the one definition of ``exact``), ``exact`` (the branch-and-bound driver), ``pareto``
(``solve_joint``), ``dispatch`` (``solve``), ``front`` (fidelity versus cost), ``brute`` (the test
oracle); private: ``_kernels`` / ``_pareto_kernels`` / ``_line_kernel`` (Numba), ``_reference``
(their plain-Python references), ``_search`` / ``_line`` / ``_pareto_dp`` (search engines),
``_control`` (tolerance, incumbent, seeds, budget), ``_checks`` (input checks).
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
