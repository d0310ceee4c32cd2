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

import importlib

from .errors import InputError, InputTypeError

# the public names and the module that defines each; they are imported on first use (PEP 562), so
# that ``import opmerge`` (and the command line's start-up, during which a Ctrl-C must still end
# cleanly) does not load numpy, scipy and the Numba kernels before they are needed
_LAZY = {
    "StudentModel": "model",
    "PlanEvaluation": "objective", "Problem": "objective", "evaluate_plan": "objective", "w2_distance": "objective",
    "CANONICAL_KINDS": "plans", "MergeNode": "plans", "Plan": "plans", "canonical_plan": "plans",
    "count_plans": "plans", "draw_plan": "plans", "enumerate_plans": "plans", "format_plan": "plans",
    "parse_plan": "plans",
    "SCHEDULE_NAMES": "schedules", "Schedule": "schedules", "custom_schedule": "schedules", "make_schedule": "schedules",
    "Solution": "solvers", "achievable_range": "solvers", "brute_force": "solvers", "extreme_plan": "solvers",
    "solve": "solvers",
    "ddim_jump": "teacher", "ddim_step": "teacher", "exact_flow": "teacher", "heun_step": "teacher",
    "step_operators": "teacher", "teacher_composite": "teacher",
}


def __getattr__(name: str):
    """The public name ``name``, imported from its module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'opmerge' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
