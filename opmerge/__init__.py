r"""opmerge: exact theory of diffusion trajectory distillation in the linear regime.

Layers (each imports only from the ones above it in this list):
``schedules`` -> ``teacher`` -> ``plans`` -> ``model`` -> ``objective`` -> ``solvers`` -> ``spectra``;
``symbolic`` (sympy) checks the formulas and is imported on demand.

Quick use::

    from opmerge import make_schedule, StudentModel, Problem, solve
    problem = Problem(make_schedule("vp-cosine", 16), lam=0.5, model=StudentModel(eta_tau=0.5))
    solution = solve(problem)
    print(solution.plan, solution.w2, solution.exact)

Bad input raises :class:`InputError` (a ``ValueError``) or :class:`InputTypeError` (also a
``TypeError``), with a message that names the parameter and its allowed range.
"""

from .errors import InputError, InputTypeError
from .model import StudentModel
from .objective import PlanEvaluation, Problem, evaluate_plan, w2_distance
from .plans import CANONICAL_KINDS, MergeNode, Plan, canonical_plan, count_plans, draw_plan, enumerate_plans, format_plan, parse_plan
from .schedules import SCHEDULE_NAMES, Schedule, custom_schedule, make_schedule
from .solvers import Solution, achievable_range, brute_force, extreme_plan, solve
from .teacher import ddim_jump, ddim_step, exact_flow, heun_step, step_operators, teacher_composite

__version__ = "0.1.0"

__all__ = [
    "InputError", "InputTypeError",
    "SCHEDULE_NAMES", "Schedule", "make_schedule", "custom_schedule",
    "ddim_step", "heun_step", "step_operators", "ddim_jump", "exact_flow", "teacher_composite",
    "CANONICAL_KINDS", "MergeNode", "Plan", "parse_plan", "format_plan", "canonical_plan", "draw_plan",
    "enumerate_plans", "count_plans",
    "StudentModel", "Problem", "PlanEvaluation", "evaluate_plan", "w2_distance",
    "Solution", "solve", "achievable_range", "extreme_plan", "brute_force",
]
