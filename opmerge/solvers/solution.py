r"""The result of a solver: the plan with its certificate (:class:`Solution`).

One meaning of ``exact`` everywhere: the plan is *certified optimal within the tolerance*,

.. math:: \texttt{exact} \iff \texttt{w2} - \texttt{lower\_bound} \le \texttt{tol},

where ``lower_bound`` is certified (no plan with ``M`` segments has a smaller :math:`W_2`) and
``tol`` is reported with it. :func:`certified_solution` computes ``exact`` from these numbers, so
every solver path sets it by the same definition, whichever path ran and whether or not a budget
stopped it: the floating-point expression ``w2 - lower_bound <= tol`` on the reported numbers,
nothing looser. ``tol`` is the tolerance used, never below 8 ulps of the first seed's
:math:`W_2` (:mod:`opmerge.solvers._control`), and the searches prune with 4 ulps less, so that a
completed search satisfies the inequality after rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..objective import PlanEvaluation, Problem
from ..plans import Plan

__all__ = ["Solution", "certified_solution", "METHODS"]

#: values of :attr:`Solution.method`
METHODS = ("extreme", "search", "pareto", "pareto+search", "seeds")


@dataclass(frozen=True, eq=False)
class Solution:
    r"""The optimal plan with its certificate.

    Attributes
    ----------
    plan : Plan
    evaluation : PlanEvaluation   (student values, ``S``, ``T``, ``E``, ``w2``)
    w2 : float                    W2 of ``plan``
    lower_bound : float           certified: no plan has W2 below it (``<= w2``)
    exact : bool                  ``w2 - lower_bound <= tol``: certified optimal within ``tol``
    tol : float                   the optimality tolerance used: ``atol + rtol * sqrt(sum_i s_i g_i^2)``, raised to
                                  8 ulps of the first seed's W2 when smaller
    method : str                  ``"extreme"`` (goal outside the range), ``"search"``, ``"pareto"``, ``"pareto+search"``
                                  or ``"seeds"`` (the time budget ran out while the range tables were built:
                                  the best canonical plan, ``lower_bound = 0``, ``student_range`` unknown,
                                  ``-inf`` to ``inf``)
    nodes : int                   branch-and-bound expansions (plus Pareto candidate vectors)
    student_range : (lo, hi)      achievable ``S`` per direction (see :func:`~opmerge.solvers.achievable_range`)
    elapsed : float               seconds
    problem : Problem
    stopped : bool                the search stopped before it finished (``node_budget``, ``time_budget``,
                                  or the memory of the one-direction search); ``exact`` may still hold:
                                  the gap left can be within ``tol``
    """

    plan: Plan
    evaluation: PlanEvaluation
    w2: float
    lower_bound: float
    exact: bool
    tol: float
    method: str
    nodes: int
    student_range: tuple
    elapsed: float
    problem: Problem = field(repr=False)
    stopped: bool = False

    @property
    def gap(self) -> float:
        """``w2 - lower_bound`` (0 when the bound is attained)."""
        return max(0.0, self.w2 - self.lower_bound)

    def to_dict(self) -> dict:
        """JSON-friendly summary (plan in text notation, per-direction lists, certificate, configuration)."""
        ev = self.evaluation
        return {
            "plan": str(self.plan),
            "student": ev.student.tolist(),
            "teacher": ev.teacher.tolist(),
            "exact_flow": ev.exact.tolist(),
            "w2": self.w2,
            "exact": self.exact,
            "lower_bound": self.lower_bound,
            "tolerance": self.tol,
            "method": self.method,
            "nodes": self.nodes,
            "student_range": {"min": self.student_range[0].tolist(), "max": self.student_range[1].tolist()},
            "seconds": self.elapsed,
            "stopped": self.stopped,
            "n_merges": self.plan.n_merges,
        }


def certified_solution(plan: Plan, evaluation: PlanEvaluation, lower_bound: float, tol: float, method: str,
                       nodes: int, student_range: tuple[np.ndarray, np.ndarray], elapsed: float,
                       problem: Problem, stopped: bool = False, certified: bool = True) -> Solution:
    r"""A :class:`Solution` whose ``exact`` is computed from its numbers.

    .. math:: \texttt{exact} = (\texttt{w2} - \texttt{lower\_bound} \le \texttt{tol}), \qquad
              \texttt{w2} = \texttt{evaluation.w2}

    (in floating point, on the numbers as given: no second rounding of the inequality).

    Parameters
    ----------
    plan : Plan
    evaluation : PlanEvaluation
        Of ``plan``.
    lower_bound : float
        Certified lower bound (the caller guarantees ``lower_bound <= w2``).
    tol : float
    method : str
    nodes : int
    student_range : (lo, hi)
    elapsed : float
    problem : Problem
    stopped : bool
        Whether a budget stopped the search before it finished.
    certified : bool
        False when ``lower_bound`` rests on a numerical envelope (training law ``adam``): then
        ``exact`` is false whatever the gap.

    Returns
    -------
    Solution
    """
    w2 = evaluation.w2
    exact = bool(w2 - lower_bound <= tol) and bool(certified)
    return Solution(plan=plan, evaluation=evaluation, w2=w2, lower_bound=lower_bound, exact=exact,
                    tol=tol, method=method, nodes=int(nodes), student_range=student_range, elapsed=elapsed, problem=problem,
                    stopped=bool(stopped))
