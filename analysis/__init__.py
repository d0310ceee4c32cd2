r"""Analysis on top of the opmerge core: plan families, phase sweeps, figures and the demo.

* :mod:`~opmerge.analysis.classify` — :func:`classify_plan` (family and shape of a plan) and
  :func:`family_of_solution` (which canonical family attains the optimum, by W2 value);
* :mod:`~opmerge.analysis.points` — one sweep point (:class:`PointSpec`, :func:`solve_point`) and
  its code-keyed cache; :mod:`~opmerge.analysis.runner` — batches of points, cached and in
  parallel (:class:`PointRunner`, :func:`run_points`);
* :mod:`~opmerge.analysis.bisection` — the one bisection driver behind :func:`locate_transition`
  and the sweeps' thresholds;
* :mod:`~opmerge.analysis.sweeps` — sweeps over :math:`\lambda`, :math:`\eta\tau`, ``N`` and
  two-direction spectra, and every direction of a spectrum alone (:func:`direction_families`);
  :mod:`~opmerge.analysis.results` — their results
  (:class:`LambdaSweep`, :class:`GridSweep`);
* :mod:`~opmerge.analysis.style`, :mod:`~opmerge.analysis.plots` — one shared matplotlib style
  (Agg) and the plots (imported on demand: the modules above need no matplotlib);
* :mod:`~opmerge.analysis.demo` — the built-in demo job; :mod:`~opmerge.analysis.cli` —
  ``opmerge phase`` / ``opmerge demo``.
"""

from .bisection import locate_transition
from .classify import FAMILIES, PlanShape, canonical_w2, classify_plan, describe_plan, family_from_values, family_of_solution, segment_family
from .points import PointSpec, solve_point
from .results import GridSweep, LambdaSweep
from .runner import PointRunner, run_points
from .sweeps import direction_families, sweep_lambda, sweep_lambda_eta, sweep_lambda_steps, sweep_two_directions

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
    "PointRunner",
    "run_points",
    "LambdaSweep",
    "GridSweep",
    "locate_transition",
    "sweep_lambda",
    "sweep_lambda_eta",
    "sweep_lambda_steps",
    "sweep_two_directions",
    "direction_families",
]
