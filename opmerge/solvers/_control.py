r"""What every solver driver shares: the tolerance, the incumbent and the budget (private).

Tolerance
---------
Two plans whose :math:`W_2` agree within

.. math:: \mathrm{tol} = \mathrm{atol} + \mathrm{rtol} \sqrt{\textstyle\sum_i s_i g_i^2}

cannot be told apart by evaluating them, so a solver stops when its certified lower bound is within
``tol`` of its incumbent. The default ``rtol = 64 N eps`` is a safe multiple of the floating-point
resolution of :math:`S` itself (each of the :math:`\le N - 1` merge nodes adds a few roundings of
relative size ``eps``).

The tolerance used (and reported) is never below a few units in the last place of :math:`W_2`:

.. math:: \mathrm{tol}_{\text{used}} = \max\big(\mathrm{tol},\ 8\, \mathrm{ulp}(W_2^{\text{seed}})\big)

where :math:`W_2^{\text{seed}}` is the :math:`W_2` of the first seed plan (``vanilla``), an upper
bound of every later incumbent's. The searches prune with the slightly smaller
:math:`\mathrm{tol}_{\text{search}} = \mathrm{tol}_{\text{used}} - 4\, \mathrm{ulp}(W_2^{\text{seed}})`,
so that the bound of a completed search, computed in floating point (a square root of a squared
threshold), satisfies ``w2 - lower_bound <= tol`` as evaluated on the reported numbers
(:mod:`opmerge.solvers.solution`).

Incumbent and ties
------------------
:class:`Incumbent` holds the best plan met so far. Ties (plans whose W2 agree within ``tol``) go to
the first plan met, in this order: the canonical ``vanilla``, ``boot``, ``cd``, ``pd`` (uniform
segments), the DP's extreme plans (per direction, ``lo`` then ``hi``; :func:`seed_incumbent`),
then the search order: a later plan replaces the incumbent only when it is better by more than
``tol`` (the search tolerance, defined below).

Budget
------
One :class:`Budget` is made at the public entry (:func:`opmerge.solvers.solve`,
:func:`opmerge.solvers.solve_joint`) before any work, so its deadline covers everything: the
interval DP tables, the seed plans, the Pareto runs, the per-direction bounds and the branch and
bound. The drivers ask it :meth:`Budget.expired` between small units of work (a branch-and-bound
expansion, a slice of the Numba search, a batch of Pareto candidates, a seed plan) and report the
work done through :meth:`Budget.report`, which calls the user's progress callback at most every
:data:`~opmerge.solvers.progress.REPORT_INTERVAL` seconds.
"""

from __future__ import annotations

import math
import time
from typing import Iterator

import numpy as np

from ..objective import PlanEvaluation, Problem, evaluate_plan
from ..plans import CANONICAL_KINDS, Plan, canonical_plan
from .progress import REPORT_INTERVAL, Progress, ProgressCallback
from .tables import ProblemTables, extreme_shape, plan_from_shape, shape_key

__all__ = ["default_rtol", "optimality_tolerance", "pruning_threshold", "Incumbent", "seed_incumbent", "Budget"]


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


#: the tolerance used is at least this many ulps of the first seed's W2
TOL_ULPS = 8
#: the searches prune with the tolerance used less this many ulps of the first seed's W2
MARGIN_ULPS = 4


class Incumbent:
    """The best plan met so far, with the tie rule of the module docstring.

    Parameters
    ----------
    problem : Problem
    tol : float
        The requested optimality tolerance (:func:`optimality_tolerance`).

    Attributes
    ----------
    tol : float
        The tolerance used and reported: ``max(requested, 8 ulp(W2 of the first plan))``, fixed
        when the first plan is taken (the requested one before).
    search_tol : float
        The tolerance the searches prune and break ties with: ``tol - 4 ulp(W2 of the first plan)``
        (``>= tol / 2``).
    """

    def __init__(self, problem: Problem, tol: float):
        self.problem = problem
        self.requested_tol = float(tol)
        self.tol = self.search_tol = float(tol)
        self._scaled = False
        self.plan: Plan | None = None
        self.evaluation: PlanEvaluation | None = None
        self.sq = math.inf  # squared W2 of the incumbent

    def _fix_tolerance(self, w2: float) -> None:
        """Fix :attr:`tol` and :attr:`search_tol` from the W2 of the first plan taken."""
        if self._scaled or not math.isfinite(w2):
            return
        self._scaled = True
        ulp = math.ulp(w2)
        self.tol = max(self.requested_tol, TOL_ULPS * ulp)
        self.search_tol = self.tol - MARGIN_ULPS * ulp

    @property
    def w2(self) -> float:
        """:math:`W_2` of the incumbent (``inf`` before the first plan)."""
        return self.evaluation.w2 if self.evaluation is not None else math.inf

    def threshold(self) -> float:
        """The squared W2 a plan must beat to replace the incumbent (:func:`pruning_threshold` with :attr:`search_tol`)."""
        return pruning_threshold(self.sq, self.search_tol)

    def threshold_for(self, best_sq: float) -> float:
        """:func:`pruning_threshold` of a squared W2 ``best_sq`` with this incumbent's :attr:`search_tol`."""
        return pruning_threshold(best_sq, self.search_tol)

    def copy(self) -> "Incumbent":
        """An independent incumbent in the same state."""
        other = Incumbent(self.problem, self.requested_tol)
        other.tol, other.search_tol, other._scaled = self.tol, self.search_tol, self._scaled
        other.plan, other.evaluation, other.sq = self.plan, self.evaluation, self.sq
        return other

    def offer(self, plan: Plan, evaluation: PlanEvaluation | None = None) -> bool:
        """Take ``plan`` when it is the first or better than the incumbent by more than :attr:`search_tol`."""
        ev = evaluate_plan(self.problem, plan) if evaluation is None else evaluation
        if self.plan is None or ev.w2 * ev.w2 < self.threshold():
            self.take(plan, ev)
            return True
        return False

    def take(self, plan: Plan, evaluation: PlanEvaluation) -> None:
        """Replace the incumbent unconditionally (the caller has compared)."""
        self._fix_tolerance(evaluation.w2)
        self.plan, self.evaluation, self.sq = plan, evaluation, evaluation.w2 * evaluation.w2


def seed_plans(problem: Problem, tables: ProblemTables | None, budget: "Budget | None" = None, *,
               canonical: bool = True) -> Iterator[Plan]:
    """The canonical plans (vanilla, boot, cd, pd), then, while the budget lasts, the extreme plans of
    every direction (``lo`` then ``hi``), each distinct plan once (a repeated plan cannot replace
    the incumbent: it is not better than itself). ``tables=None``: the canonical plans only;
    ``canonical=False``: the extreme plans only."""
    if canonical:
        for kind in CANONICAL_KINDS:
            yield canonical_plan(kind, problem.steps, problem.segments)
    if problem.model.budget == "total" or tables is None or not problem.model.linear:
        return
    seen: set[tuple] = set()
    for d in range(problem.dim):
        for side in ("lo", "hi"):
            if budget is not None:
                if budget.expired():
                    return  # fewer seeds: the incumbent is still a valid plan
                budget.report("seeds")
            shape = extreme_shape(problem, d, side, tables.direction(d))
            key = shape_key(shape)
            if key not in seen:
                seen.add(key)
                yield plan_from_shape(shape)


def seed_incumbent(problem: Problem, tables: ProblemTables | None, tol: float, budget: "Budget | None" = None,
                   start: Incumbent | None = None) -> Incumbent:
    """The incumbent after the seed plans of :func:`seed_plans`, met in that order.

    ``start``: an incumbent already offered the canonical plans (:func:`seed_incumbent` with
    ``tables=None``, run before the tables are built, so that a budget that runs out while they
    are built still has its answer); it is continued with the extreme plans, in place.
    """
    incumbent = Incumbent(problem, tol) if start is None else start
    for plan in seed_plans(problem, tables, budget, canonical=start is None):
        incumbent.offer(plan)
        if budget is not None:
            budget.note(incumbent=incumbent.w2)
    return incumbent


class Budget:
    r"""Deadline, node budget and progress reporting of one solver call.

    Parameters
    ----------
    time_budget : float
        Seconds from now (validated: ``> 0``; ``inf`` for no limit).
    node_budget : int
        Largest number of branch-and-bound expansions or Pareto candidates (validated: ``>= 1``).
    progress : callable or None
        Called with a :class:`~opmerge.solvers.progress.Progress` (see :meth:`report`).
    start : float, optional
        ``time.perf_counter()`` value the budget counts from (default: now).
    """

    def __init__(self, time_budget: float, node_budget: int, progress: ProgressCallback | None = None,
                 start: float | None = None):
        self.start = time.perf_counter() if start is None else float(start)
        self.time_budget = float(time_budget)
        self.deadline = self.start + self.time_budget
        self.node_budget = int(node_budget)
        self.progress = progress
        self._next_report = self.start + REPORT_INTERVAL
        self.reported = False
        self.nodes = 0  # work of finished phases (added by the drivers)
        self.incumbent = math.inf
        self.bound = 0.0

    # -- the clock ------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds since :attr:`start`."""
        return time.perf_counter() - self.start

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.deadline - time.perf_counter()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.perf_counter() > self.deadline

    def share(self, fraction: float) -> float:
        """The ``perf_counter`` value at ``fraction`` of the budget (capped by the deadline)."""
        return min(self.deadline, self.start + fraction * self.time_budget)

    # -- progress -------------------------------------------------------------------------------
    def note(self, incumbent: float | None = None, bound: float | None = None) -> None:
        """Record a better incumbent :math:`W_2` or a higher certified bound (for the reports)."""
        if incumbent is not None and incumbent < self.incumbent:
            self.incumbent = float(incumbent)
        if bound is not None and bound > self.bound:
            self.bound = float(bound)

    def report(self, phase: str, nodes: int = 0) -> None:
        """Call the progress callback if one is set and :data:`REPORT_INTERVAL` seconds have passed.

        ``nodes`` is the work of the running phase so far (added to :attr:`nodes`, the work of the
        finished ones).
        """
        if self.progress is None:
            return
        now = time.perf_counter()
        if now < self._next_report:
            return
        self._next_report = now + REPORT_INTERVAL
        self.reported = True
        self.progress(Progress(phase, now - self.start, self.nodes + int(nodes), self.incumbent,
                               min(self.bound, self.incumbent)))

    def finish(self, w2: float, lower_bound: float, nodes: int) -> None:
        """The last report (``phase="done"``), sent when an earlier one was or the call was long.

        A call that lasted :data:`REPORT_INTERVAL` seconds or more always ends with this report,
        even when its time went into a step that cannot report (the first compilation of the
        kernels, one long slice of the range tables).
        """
        if self.progress is None or not (self.reported or self.elapsed() >= REPORT_INTERVAL):
            return
        self.progress(Progress("done", self.elapsed(), int(nodes), float(w2), float(lower_bound)))
