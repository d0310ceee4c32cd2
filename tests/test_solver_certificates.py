"""The certificate of a solution means what it says, in floating point.

``exact`` is ``w2 - lower_bound <= tol`` evaluated on the reported float numbers, every time, and
the tolerance used is never below 8 ulps of the W2 of the first seed plan, so that proven-optimal
results satisfy that inequality. Before, ``exact`` also accepted the second rounding
``lower_bound >= w2 - tol``: 38 of 300 random several-direction problems (seed 1 of
:func:`random_problem`) reported ``exact: true`` with ``w2 - lower_bound > tol`` (the Pareto
path's bound ``w2 - tol`` misses the inequality by an ulp), and with ``target="data"`` the
requested tolerance could be below one floating-point step of ``w2``.

The random test below solves a few hundred problems (schedules, ``N <= 8``, ``M``, 1 to 4
directions, every init, both targets and both training budgets). The acceptance run of 10,000
problems takes about 10 minutes on one core: it is run by hand
(``python -c "from tests.test_solver_certificates import check_many; print(check_many(10_000, 20240))"``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from opmerge.model import StudentModel
from opmerge.objective import Problem
from opmerge.schedules import make_schedule
from opmerge.solvers import brute_force, solve, solve_joint
from opmerge.solvers._control import MARGIN_ULPS, TOL_ULPS
from opmerge.solvers.solution import certified_solution

SCHEDULES = ("vp-cosine", "vp-linear", "rf", "edm")


def random_problem(rng: np.random.Generator) -> Problem:
    """A random small problem: schedule, N in [2, 8], M <= min(N, 4), 1-4 directions with
    log-uniform eigenvalues in [1e-3, 1e2], random weights, init, training budget and target."""
    n = int(rng.integers(2, 9))
    m = int(rng.integers(1, min(n, 4) + 1))
    d = int(rng.integers(1, 5))
    lam = np.exp(rng.uniform(np.log(1e-3), np.log(1e2), d))
    weights = rng.uniform(0.1, 2.0, d)
    model = StudentModel(init=str(rng.choice(["warm", "ddim", "zero", "identity"])),
                         budget=str(rng.choice(["per-merge", "total"])),
                         eta_tau=float(np.exp(rng.uniform(np.log(0.05), np.log(5.0)))))
    return Problem(make_schedule(str(rng.choice(SCHEDULES)), n), lam, weights=weights, model=model,
                   target=str(rng.choice(["teacher", "data"])), segments=m)


def check_one(sol) -> None:
    """The certificate of one solution: exact iff the float inequality holds; the tolerance is achievable."""
    assert sol.exact == (sol.w2 - sol.lower_bound <= sol.tol), (sol.w2, sol.lower_bound, sol.tol, sol.method)
    assert 0.0 <= sol.lower_bound <= sol.w2
    assert sol.tol >= TOL_ULPS * math.ulp(sol.w2)
    assert sol.to_dict()["tolerance"] == sol.tol


def check_many(count: int, seed: int) -> dict:
    """Solve ``count`` random problems; return how many were exact and how many broke the certificate."""
    rng = np.random.default_rng(seed)
    exact = broken = 0
    for _ in range(count):
        sol = solve(random_problem(rng))
        exact += sol.exact
        broken += sol.exact and not (sol.w2 - sol.lower_bound <= sol.tol)
    return {"problems": count, "exact": exact, "broken": broken}


def test_exact_holds_in_floating_point_on_random_problems():
    """300 problems (about 15 s): every solution is certified and says so on its own numbers."""
    rng = np.random.default_rng(1)
    exact = 0
    for _ in range(300):
        sol = solve(random_problem(rng))
        check_one(sol)
        exact += sol.exact
    assert exact == 300  # small problems: every search completes, and its bound meets the tolerance


def test_certified_bound_is_below_the_brute_force_optimum():
    """The tighter pruning keeps the bound honest: never above the true optimum (brute force)."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        problem = random_problem(rng)
        if problem.steps > 6:
            continue
        best = brute_force(problem)[0].w2
        sol = solve(problem)
        check_one(sol)
        assert sol.lower_bound <= best + sol.tol and best <= sol.w2 <= best + sol.tol


def test_requested_tolerance_below_an_ulp_is_raised_to_eight_ulps():
    """rtol = atol = 0 asks for the impossible (w2 - bound <= 0 after rounding): the tolerance used
    is 8 ulps of the first seed's W2, reported, and met."""
    problem = Problem(make_schedule("edm", 6), [0.05, 3.0, 40.0], weights=[1.0, 2.0, 0.5], segments=2, target="data")
    for solver in (solve, solve_joint):
        sol = solver(problem, rtol=0.0, atol=0.0)
        check_one(sol)
        assert sol.exact and sol.tol > 0.0
        assert sol.tol <= TOL_ULPS * math.ulp(4.0 * sol.w2 + 1.0) * 64  # a few ulps, not a loose tolerance
    one = solve(Problem(make_schedule("rf", 8), 1.0), rtol=0.0, atol=0.0)
    check_one(one)
    assert one.exact


def test_a_large_requested_tolerance_is_kept():
    problem = Problem(make_schedule("vp-cosine", 6), [0.3, 2.0])
    sol = solve(problem, atol=1e-3)
    assert sol.tol == pytest.approx(1e-3 + 64 * 6 * np.finfo(float).eps * math.sqrt(float(np.sum(problem.scale * problem.goal**2))),
                                    rel=1e-12)
    check_one(sol)


def test_certified_solution_has_no_rounding_loophole():
    """The second rounding ``lower_bound >= w2 - tol`` is not accepted: the numbers of the issue."""
    problem = Problem(make_schedule("edm", 4), [0.5, 2.0], segments=2)
    base = solve(problem)
    w2, bound, tol = 0.3332106924948831, 0.3332106924948449, 3.819167204710538e-14  # tol: 3.8e-14 in the issue
    assert bound >= w2 - tol and w2 - bound > tol  # the loophole case
    ev = base.evaluation
    fake = type(ev)(plan=ev.plan, node_values=ev.node_values, segment_values=ev.segment_values, student=ev.student,
                    teacher=ev.teacher, exact=ev.exact, w2=w2)
    sol = certified_solution(base.plan, fake, bound, tol, "pareto", 0, base.student_range, 0.0, problem)
    assert not sol.exact
    assert certified_solution(base.plan, fake, w2 - tol / 2, tol, "pareto", 0, base.student_range, 0.0, problem).exact


def test_margin_is_smaller_than_the_floor():
    # the searches prune with tol - MARGIN_ULPS ulps: at least half the tolerance is left
    assert 0 < MARGIN_ULPS <= TOL_ULPS / 2
