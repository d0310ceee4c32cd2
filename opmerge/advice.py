r"""One question, one answer: which plan to distil, how good it will be, and how sure that is.

:func:`advise` solves the problem (the recommended plan), evaluates the canonical plans beside it,
and measures what the recommendation is sensitive to: the training budget, the quantity every
prediction leans on and the one a user knows least well. Every budget is scaled by factors
:math:`f` (default :math:`\tfrac12` and 2; :func:`scale_budget`):

* ``flow``: :math:`\eta\tau \to f\,\eta\tau`;
* ``gd``: :math:`K \to \mathrm{round}(f K)` (at least 1; the step size keeps gd stable);
* ``adam``, ``sign``: the step :math:`\eta \to f\eta` (a calibrated step scale is scaled instead);
* ``empirical``: :math:`r \to r^f` (what scaling a flow budget does to its retention).

For each factor the problem is solved again; the report gives that optimum, the W2 of the
recommended plan under the scaled budget, and the **regret** of keeping the recommendation,
:math:`W_2(\text{recommended}) / W_2^\star - 1`. The **interval** of the predicted quality is the
range of the recommended plan's W2 over the factors and 1. A calibrated cost model's W2 values came
within a factor 1.7 of measured students (median, docs/calibration.md §6), which a factor 2 on the
step scale covers.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from ._validate import real_number
from .errors import IndistinguishablePlansWarning, InputError, InputTypeError
from .laws import MeasuredTable
from .model import StudentModel
from .objective import Problem, evaluate_plan
from .plans import CANONICAL_KINDS, Plan, canonical_plan
from .solvers import solve

__all__ = ["Advice", "advise", "scale_budget", "DEFAULT_FACTORS"]

DEFAULT_FACTORS = (0.5, 2.0)


def scale_budget(model: StudentModel, factor: float) -> StudentModel:
    r"""``model`` with its training budget scaled by ``factor`` (see the module docstring).

    Parameters
    ----------
    model : StudentModel
    factor : float
        :math:`f > 0`.

    Returns
    -------
    StudentModel
    """
    if not isinstance(model, StudentModel):
        raise InputTypeError(f"model must be a StudentModel, got {type(model).__name__}")
    f = real_number(factor, "factor", low=0.0, low_open=True)
    if model.training == "flow":
        return replace(model, eta_tau=model.eta_tau * f)
    if model.training == "gd":
        return replace(model, gd_steps=max(1, int(round(model.gd_steps * f))))
    if model.training in ("adam", "sign"):
        if model.step_table is not None:
            t = model.step_table
            return replace(model, step_table=MeasuredTable(steps=t.steps, lam=t.lam, values=t.values * f, source=t.source,
                                                           quantity=t.quantity))
        return replace(model, lr=model.lr * f)
    t = model.retention_table  # empirical: r -> r^f (keeps the sign of a negative retention)
    values = np.sign(t.values) * np.abs(t.values) ** f
    return replace(model, retention_table=MeasuredTable(steps=t.steps, lam=t.lam, values=values, source=t.source, quantity=t.quantity))


@dataclass(frozen=True, eq=False)
class Advice:
    r"""The answer of :func:`advise`.

    Attributes
    ----------
    plan : Plan
        The recommended plan (the certified optimum of the problem, or the best found within the budget).
    w2 : float
        Its predicted W2.
    w2_interval : (float, float)
        Range of its W2 when the training budget is scaled by each factor (and 1).
    exact : bool
        Whether the solver certified the optimum.
    stopped : bool
        Whether the solver stopped at a budget before it finished (then ``plan`` is the best found).
    canonical : dict
        ``kind -> {"plan", "w2", "ratio"}`` for vanilla, BOOT, CD and PD (``ratio`` = W2 / W2 of the recommendation).
    sensitivity : list of dict
        Per factor: ``factor``, ``plan`` (the optimum at that budget), ``w2_optimal``, ``w2_recommended``,
        ``regret`` (:math:`W_2(\text{rec}) / W_2^\star - 1`, 0 when both are 0), ``same_plan``.
    warnings : list of str
        Messages of :class:`~opmerge.errors.IndistinguishablePlansWarning` met while solving.
    """

    plan: Plan
    w2: float
    w2_interval: tuple
    exact: bool
    canonical: dict
    sensitivity: list
    problem: Problem = field(repr=False)
    warnings: list = field(default_factory=list)
    stopped: bool = False

    @property
    def robust(self) -> bool:
        """True when the recommendation is the optimum under every scaled budget."""
        return all(row["same_plan"] for row in self.sensitivity)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"plan": str(self.plan), "w2": self.w2, "w2_interval": list(self.w2_interval), "exact": self.exact, "stopped": self.stopped,
                "canonical": self.canonical, "sensitivity": self.sensitivity, "robust": self.robust, "warnings": self.warnings}


def _ratio(w2: float, best: float) -> float:
    if best > 0:
        return w2 / best
    return 1.0 if w2 == 0 else math.inf


def advise(problem: Problem, factors=DEFAULT_FACTORS, **solve_kwargs) -> Advice:
    r"""The recommended plan for ``problem`` with its predicted quality, interval and sensitivity.

    Parameters
    ----------
    problem : Problem
    factors : sequence of float
        Budget factors :math:`f > 0` of the sensitivity analysis (default 0.5 and 2).
    **solve_kwargs
        Passed to :func:`opmerge.solvers.solve` (``time_budget``, ``node_budget``, ...).

    Returns
    -------
    Advice
    """
    if not isinstance(problem, Problem):
        raise InputTypeError(f"problem must be an opmerge Problem, got {type(problem).__name__}")
    try:
        factors = tuple(real_number(f, "factors", low=0.0, low_open=True) for f in factors)
    except TypeError:
        raise InputTypeError("factors must be a sequence of numbers > 0") from None
    if not factors:
        raise InputError("factors must hold at least one budget factor > 0")
    caught: list[str] = []

    def solved(p: Problem):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", IndistinguishablePlansWarning)
            solution = solve(p, **solve_kwargs)
        caught.extend(str(w.message) for w in seen if issubclass(w.category, IndistinguishablePlansWarning))
        return solution

    best = solved(problem)
    canonical = {}
    for kind in CANONICAL_KINDS:
        plan = canonical_plan(kind, problem.steps, problem.segments)
        w2 = evaluate_plan(problem, plan).w2
        canonical[kind] = {"plan": str(plan), "w2": w2, "ratio": _ratio(w2, best.w2)}
    rows, values = [], [best.w2]
    for f in factors:
        scaled = replace(problem, model=scale_budget(problem.model, f))
        other = solved(scaled)
        kept = evaluate_plan(scaled, best.plan).w2
        values.append(kept)
        regret = 0.0 if kept == other.w2 else _ratio(kept, other.w2) - 1.0
        rows.append({"factor": f, "plan": str(other.plan), "w2_optimal": other.w2, "w2_recommended": kept,
                     "regret": max(0.0, regret), "same_plan": str(other.plan) == str(best.plan) or kept - other.w2 <= other.tol})
    return Advice(plan=best.plan, w2=best.w2, w2_interval=(min(values), max(values)), exact=best.exact, canonical=canonical,
                  sensitivity=rows, problem=problem, warnings=caught, stopped=best.stopped)
