r"""Analysis on top of the opmerge core: plan families, phase sweeps, figures and the demo.

* :mod:`analysis.classify` — :func:`classify_plan` (family and shape of a plan) and
  :func:`family_of_solution` (which canonical family attains the optimum, by W2 value);
* :mod:`analysis.phase` — parallel, cached sweeps over :math:`\lambda`, :math:`\eta\tau`, ``N`` and
  two-direction spectra, with transitions located by bisection;
* :mod:`analysis.style`, :mod:`analysis.plots` — one shared matplotlib style (Agg) and the plots
  (imported on demand: the modules above need no matplotlib);
* :mod:`analysis.demo` — the built-in demo job; :mod:`analysis.cli` — ``opmerge phase`` / ``opmerge demo``.
"""

from .classify import FAMILIES, PlanShape, canonical_w2, classify_plan, describe_plan, family_from_values, family_of_solution, segment_family
from .phase import (
    GridSweep,
    LambdaSweep,
    PointSpec,
    locate_transition,
    run_points,
    solve_point,
    sweep_lambda,
    sweep_lambda_eta,
    sweep_lambda_steps,
    sweep_two_directions,
)

__all__ = [
    "FAMILIES",
    "PlanShape",
    "classify_plan",
    "segment_family",
    "canonical_w2",
    "describe_plan",
    "family_from_values",
    "family_of_solution",
    "PointSpec",
    "solve_point",
    "run_points",
    "LambdaSweep",
    "GridSweep",
    "locate_transition",
    "sweep_lambda",
    "sweep_lambda_eta",
    "sweep_lambda_steps",
    "sweep_two_directions",
]
