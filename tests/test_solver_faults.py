"""Regression tests for faults that the rest of the solver suite let through.

Each test here was checked by planting the fault it names in the solver code and watching the
test fail (see the report of the change that added this file). Brute force over every plan
(:func:`opmerge.solvers.brute_force`) is the independent judge throughout.

* negative retention (gradient descent with ``2 lr q > 1``) must disable the monotone fast path of
  the interval DP: one corner per extreme is wrong when a node is not monotone in its children;
* the data target compares ``|S|`` with the goal: when every value of a partial plan is negative,
  the interval of ``|S|`` is ``[-hi, -lo]``;
* the default tolerance is the documented ``tol = atol + 64 N eps sqrt(sum_i s_i g_i^2)``;
* ties (plans within ``tol``) go to the canonical plans in the order vanilla, boot, cd, pd.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from opmerge.model import StudentModel, input_variance
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import canonical_plan
from opmerge.schedules import make_schedule
from opmerge.solvers import achievable_range, brute_force, range_tables, solve

EPS = np.finfo(np.float64).eps


def gd_problem(schedule_name, steps, lam, factor, *, init="warm", target="teacher", gd_steps=1, segments=1):
    """Gradient-descent training with ``2 lr q_max = 2 factor`` (``factor > 0.5``: negative retention)."""
    schedule = make_schedule(schedule_name, steps)
    q = input_variance(schedule, lam, "forward", "ddim")
    lr = factor / float(np.max(q[..., 2:]))
    model = StudentModel(training="gd", lr=lr, gd_steps=gd_steps, init=init)
    return Problem(schedule, lam, model=model, target=target, segments=segments)


def assert_optimal(problem, **kwargs):
    """``solve`` returns the brute-force optimum (within tol), says so, and its bound is honest."""
    best = brute_force(problem)[0].w2
    sol = solve(problem, **kwargs)
    assert sol.exact
    assert best <= sol.w2 <= best + sol.tol, (str(sol.plan), sol.w2, best)
    assert sol.lower_bound <= best + sol.tol
    return sol


# ---------------------------------------------------------------------------------------------
# (a) negative retention: the interval DP must take all four corners
# ---------------------------------------------------------------------------------------------
NEGATIVE_RETENTION = [
    # (schedule, N, lam, factor, init, target)
    ("vp-cosine", 4, 0.01, 0.7, "warm", "teacher"),
    ("vp-cosine", 5, 0.1, 0.9, "warm", "teacher"),
    ("vp-linear", 5, 0.1, 0.7, "identity", "teacher"),
    ("rf", 5, 1.0, 0.8, "zero", "teacher"),
]


@pytest.mark.parametrize("case", NEGATIVE_RETENTION, ids=lambda c: "-".join(map(str, c)))
def test_negative_retention_range_and_optimum_match_brute_force(case):
    """vp-cosine, N = 4, lam = 0.01, gd with lr = 0.7 / q_max (K = 1): r_j < 0 for some j.

    With the fast path wrongly taken, solve() reported W2 0.096 as exact where the optimum is 0.051.
    """
    name, steps, lam, factor, init, target = case
    problem = gd_problem(name, steps, lam, factor, init=init, target=target)
    assert np.any(problem.retention[:, 2:] < 0)  # the premise: the fast path must not apply
    ranked = brute_force(problem)
    values = np.array([ev.student[0] for ev in ranked])
    lo, hi = achievable_range(problem)
    assert lo[0] == values.min() and hi[0] == values.max()
    assert_optimal(problem)


def test_negative_retention_worked_example():
    """The case of the issue: the optimum is 0.05066, not the 0.096 of the extreme plan."""
    problem = gd_problem("vp-cosine", 4, 0.01, 0.7)
    sol = assert_optimal(problem)
    assert sol.w2 == pytest.approx(0.0506640, abs=1e-7)


# ---------------------------------------------------------------------------------------------
# (b) data target with negative student values: |S| lies in [-hi, -lo]
# ---------------------------------------------------------------------------------------------
NEGATIVE_DATA = [
    # (schedule, N, lam, factor, init): every student value < 0 and the goal inside the range of |S|
    ("vp-linear", 4, 0.1, 0.7, "identity"),
    ("vp-linear", 5, 0.1, 0.7, "warm"),
    ("vp-cosine", 6, 0.1, 0.9, "identity"),
    ("rf", 5, 0.1, 0.9, "identity"),
]


@pytest.mark.parametrize("engine", ["numba", "python"])
@pytest.mark.parametrize("case", NEGATIVE_DATA, ids=lambda c: "-".join(map(str, c)))
def test_data_target_with_negative_values_matches_brute_force(case, engine):
    """With a wrong negative branch, solve() reported e.g. W2 0.088 as exact where the optimum is 0.0044."""
    name, steps, lam, factor, init = case
    problem = gd_problem(name, steps, lam, factor, init=init, target="data")
    lo, hi = achievable_range(problem)
    assert hi[0] < 0 and -hi[0] < problem.goal[0] < -lo[0]  # the premise: a straddle on the negative side
    assert_optimal(problem, engine=engine)


def test_data_target_with_negative_values_several_directions():
    """The branch and bound of several directions (Pareto does not apply: negative retention)."""
    schedule = make_schedule("vp-linear", 5)
    lam = np.array([0.1, 0.12])
    q = input_variance(schedule, lam, "forward", "ddim")
    model = StudentModel(training="gd", lr=0.7 / float(np.max(q[..., 2:])), gd_steps=1)
    problem = Problem(schedule, lam, weights=[1.0, 0.5], model=model, target="data")
    lo, hi = achievable_range(problem)
    assert np.all(hi < 0)
    assert_optimal(problem)


# ---------------------------------------------------------------------------------------------
# (c) the documented default tolerance
# ---------------------------------------------------------------------------------------------
TOLERANCE_PROBLEMS = [
    Problem(make_schedule("vp-cosine", 6), 0.5),  # goal outside the range: "extreme"
    Problem(make_schedule("rf", 7), 1.0),  # straddle: the one-direction search
    Problem(make_schedule("vp-cosine", 5), [0.3, 2.0], weights=[1.0, 0.5]),  # several directions: Pareto
    Problem(make_schedule("rf", 5), [0.3, 2.0], model=StudentModel(budget="total")),  # several, branch and bound
]


@pytest.mark.parametrize("problem", TOLERANCE_PROBLEMS, ids=["extreme", "search", "pareto", "total"])
def test_default_tolerance_is_64_n_eps_of_the_goal_scale(problem):
    scale = math.sqrt(float(np.sum(problem.scale * problem.goal**2)))
    default = solve(problem)
    assert default.tol == 0.0 + 64.0 * problem.steps * EPS * scale
    assert solve(problem, atol=1e-9).tol == 1e-9 + 64.0 * problem.steps * EPS * scale
    assert solve(problem, rtol=1e-6, atol=1e-9).tol == 1e-9 + 1e-6 * scale
    assert default.to_dict()["tolerance"] == default.tol


CLOSE_PLANS = [
    # (schedule, N, lam, eta_tau): vanilla (met first) is worse than the optimum by 6.7 tol and 24 tol
    ("edm", 4, 30.0, 0.2),
    ("edm", 4, 3.0, 2.0),
]


@pytest.mark.parametrize("case", CLOSE_PLANS, ids=lambda c: "-".join(map(str, c)))
def test_default_tolerance_separates_close_plans(case):
    """Data target, warm init: vanilla is worse than the optimum (CD) by a few default tolerances.

    solve() must return the better plan; a tolerance 10 (or 10^6) times larger would call the two a
    tie and keep vanilla, the plan met first.
    """
    name, steps, lam, eta_tau = case
    problem = Problem(make_schedule(name, steps), lam, model=StudentModel(eta_tau=eta_tau), target="data")
    best = brute_force(problem)[0].w2
    vanilla = evaluate_plan(problem, canonical_plan("vanilla", steps, 1)).w2
    sol = solve(problem)
    assert sol.tol < vanilla - best < 30 * sol.tol  # the premise of the case
    assert sol.plan == canonical_plan("cd", steps, 1)
    assert sol.w2 <= best + sol.tol < vanilla and sol.exact


# ---------------------------------------------------------------------------------------------
# (d) ties go to vanilla, boot, cd, pd (in that order)
# ---------------------------------------------------------------------------------------------
KINDS = ("vanilla", "boot", "cd", "pd")


def _canonical_w2(problem):
    return {kind: evaluate_plan(problem, canonical_plan(kind, problem.steps, problem.segments)).w2 for kind in KINDS}


def test_everything_tied_gives_vanilla():
    """Weights 0: every plan has W2 = 0; the first seed, vanilla, is returned (one and several directions)."""
    for lam, weights in ((0.5, [0.0]), ([0.3, 2.0], [0.0, 0.0])):
        problem = Problem(make_schedule("vp-cosine", 6), lam, weights=weights)
        sol = solve(problem)
        assert sol.w2 == 0.0 and sol.exact
        assert sol.plan == canonical_plan("vanilla", 6, 1)


TIES = [
    # (schedule, N, lam, init, eta_tau, target, the tied optimal canonical plans, expected)
    ("edm", 6, 1.0, "warm", 0.5, "teacher", ("vanilla", "boot"), "vanilla"),  # W2 = 0 for both
    ("vp-cosine", 4, 1.0, "identity", 0.5, "data", ("boot", "cd"), "boot"),
    ("vp-cosine", 6, 1.0, "identity", 0.5, "data", ("boot", "cd"), "boot"),
    ("edm", 4, 0.3, "identity", 0.5, "data", ("cd", "pd"), "cd"),
]


@pytest.mark.parametrize("case", TIES, ids=lambda c: f"{c[0]}-N{c[1]}-lam{c[2]}-{c[3]}-{c[5]}-{c[6][0]}-{c[6][1]}")
def test_ties_go_to_the_canonical_plans_in_order(case):
    """Two canonical plans tie (within tol) at the optimum and every earlier one is worse: the earlier
    of the two in the order vanilla, boot, cd, pd is returned (one direction and, duplicated, two)."""
    name, steps, lam, init, eta_tau, target, tied, expected = case
    model = StudentModel(eta_tau=eta_tau, init=init)
    problem = Problem(make_schedule(name, steps), lam, model=model, target=target)
    w2 = _canonical_w2(problem)
    best = brute_force(problem)[0].w2
    sol = solve(problem)
    # the premise: the two tie with the optimum, every plan before them in the order does not
    assert all(abs(w2[kind] - best) <= sol.tol for kind in tied)
    assert all(w2[kind] - best > sol.tol for kind in KINDS[: KINDS.index(tied[0])])
    assert sol.plan == canonical_plan(expected, steps, 1), (str(sol.plan), w2)
    assert sol.exact
    # the same through the joint solver: two identical directions
    joint = Problem(problem.schedule, [lam, lam], weights=[1.0, 1.0], model=model, target=target)
    assert solve(joint).plan == canonical_plan(expected, steps, 1)


def test_a_tie_within_atol_keeps_the_earlier_plan():
    """vp-cosine, N = 6, lam = 0.3: BOOT is optimal (0.159) and vanilla (0.198) comes first; with
    atol = 0.05 the two tie and vanilla is kept, with atol = 0.03 BOOT replaces it."""
    problem = Problem(make_schedule("vp-cosine", 6), 0.3)
    w2 = _canonical_w2(problem)
    assert 0.03 < w2["vanilla"] - w2["boot"] < 0.05
    assert solve(problem, atol=0.05).plan == canonical_plan("vanilla", 6, 1)
    assert solve(problem, atol=0.03).plan == canonical_plan("boot", 6, 1)
