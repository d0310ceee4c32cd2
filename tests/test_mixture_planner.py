"""The mixture planner (docs/mixture.md §5): its tables, its cost, its dynamic program, and the
exact simulation's K = 1 optimum against the linear regime's certified solver."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opmerge import Problem, StudentModel, canonical_plan, enumerate_plans, evaluate_plan, make_schedule, parse_plan, solve
from opmerge.errors import InputError
from opmerge.mixture import (Expectation, GaussianMixture, MixtureProblem, mixture_preset, optimal_mixture_plan,
                             plan_cost, planner_tables, simulate_plan)
from opmerge.mixture._family import features, least_squares, train_parameters
from opmerge.mixture._planner import plan_amplitude


def _problem(preset="two-2d", separation=4.0, steps=5, eta_tau=0.7, **model):
    return MixtureProblem(mixture_preset(preset, separation), make_schedule("vp-cosine", steps),
                          StudentModel(eta_tau=eta_tau, **model), expectation=Expectation("quadrature", order=10))


@pytest.fixture(scope="module")
def tables_and_problem():
    problem = _problem()
    return planner_tables(problem), problem


def test_one_step_merge_has_no_approximation_error_and_longer_merges_do(tables_and_problem):
    tables, problem = tables_and_problem
    n = problem.steps
    scale = max(tables.approximation[j, 0] for j in range(2, n + 1))
    for j in range(1, n + 1):
        assert tables.approximation[j, j - 1] <= 1e-20 * max(scale, 1.0)
    # merging more steps (the data side) never fits better
    data_side = [tables.approximation[m, 0] for m in range(1, n + 1)]
    assert all(b >= a - 1e-15 for a, b in zip(data_side, data_side[1:]))
    assert data_side[-1] > 1e-3


def test_node_table_is_the_trained_node_carried_through_the_teacher(tables_and_problem):
    """e[j, i, k] rebuilt by hand: fit T(j->i) and T(j->k) on p_j, train, apply T(i->0)."""
    tables, problem = tables_and_problem
    teacher, model = problem.teacher, problem.model
    j, i, k = 4, 1, 2  # j < N: the points of p_j, not the common inputs at N
    z, w = problem.points(j, 0)
    phi = features(teacher, "gated", z, j)
    fit_ji = least_squares(phi, w, teacher.composite(z, j, i))
    fit_jk = least_squares(phi, w, teacher.composite(z, j, k))
    theta = train_parameters(fit_ji, fit_jk.theta, "flow", model.eta_tau, None, None)
    out = teacher.composite(phi @ theta, i, 0)
    expected = float(w @ np.sum((out - teacher.composite(z, j, 0)) ** 2, axis=1))
    assert tables.node[j, i, k] == pytest.approx(expected, rel=1e-10)
    best = teacher.composite(phi @ fit_ji.theta, i, 0)
    assert tables.carried[j, i] == pytest.approx(float(w @ np.sum((best - teacher.composite(z, j, 0)) ** 2, axis=1)), rel=1e-10)


def test_cost_adds_root_amplitudes_and_inner_training_amplitudes(tables_and_problem):
    tables, _ = tables_and_problem
    plan = parse_plan("((5 4) 3) | (2 1)", 5)
    root1 = math.sqrt(tables.node[5, 2, 3])
    inner = max(math.sqrt(tables.node[5, 3, 4]) - math.sqrt(tables.carried[5, 3]), 0.0)
    root2 = math.sqrt(tables.node[2, 0, 1])
    assert plan_cost(tables, plan) == pytest.approx((root1 + inner + root2) ** 2, rel=1e-14)
    # one-leaf segments are the teacher's own steps: they cost nothing
    assert plan_cost(tables, parse_plan("5 | 4 | 3 | 2 | 1", 5)) == 0.0


def test_lag_share_is_the_projection_of_the_later_childs_lag_on_the_parents_family(tables_and_problem):
    """s[p, m, i, k] rebuilt by hand with numpy's lstsq: the child's lag (trained minus best fit, fitted
    on p_m) evaluated at T(p -> m)(z_p), projected on the features at p under the weights of p_p."""
    tables, problem = tables_and_problem
    teacher, model = problem.teacher, problem.model
    p, m, i, k = 5, 3, 1, 2
    zm, wm = problem.points(m, 0)
    phi_m = features(teacher, "gated", zm, m)
    fit_mi = least_squares(phi_m, wm, teacher.composite(zm, m, i))
    fit_mk = least_squares(phi_m, wm, teacher.composite(zm, m, k))
    lag = train_parameters(fit_mi, fit_mk.theta, "flow", model.eta_tau, None, None) - fit_mi.theta
    zp, wp = problem.points(p, 0)
    delta = features(teacher, "gated", teacher.composite(zp, p, m), m) @ lag
    phi_p = features(teacher, "gated", zp, p)
    root_w = np.sqrt(wp)[:, None]
    coef = np.linalg.lstsq(phi_p * root_w, delta * root_w, rcond=None)[0]
    projected = phi_p @ coef
    expected = math.sqrt(float(wp @ np.sum(projected**2, axis=1)) / float(wp @ np.sum(delta**2, axis=1)))
    assert tables.share[p, m, i, k] == pytest.approx(expected, rel=1e-8)
    assert 0.0 < expected < 1.0
    shares = tables.share[~np.isnan(tables.share)]
    assert shares.size > 0 and np.all((shares >= 0.0) & (shares <= 1.0))


def test_later_children_are_weighted_by_their_lag_share(tables_and_problem):
    tables, _ = tables_and_problem
    plan = parse_plan("(5 (4 3) 2) | 1", 5)
    root = math.sqrt(tables.node[5, 1, 4])
    later = tables.share[5, 4, 2, 3] * max(math.sqrt(tables.node[4, 2, 3]) - math.sqrt(tables.carried[4, 2]), 0.0)
    assert later > 0.0
    assert plan_cost(tables, plan) == pytest.approx((root + later) ** 2, rel=1e-14)


@pytest.mark.parametrize("segments", [1, 2, 3])
def test_dynamic_program_finds_the_brute_force_minimum(tables_and_problem, segments):
    tables, problem = tables_and_problem
    costs = {str(p): plan_cost(tables, p) for p in enumerate_plans(problem.steps, segments)}
    picked = optimal_mixture_plan(problem, segments, tables=tables)
    assert picked.cost == pytest.approx(min(costs.values()), rel=1e-12, abs=1e-300)
    assert costs[str(picked.plan)] == pytest.approx(picked.cost, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_dynamic_program_is_exact_on_random_tables(tables_and_problem, seed):
    """Random node, carried and share tables (every term of the cost matters): the program's pick and
    cost equal brute force over all plans of N = 5 with M = 1, 2, 3."""
    import dataclasses

    tables, problem = tables_and_problem
    rng = np.random.default_rng(seed)
    node = np.where(np.isnan(tables.node), np.nan, rng.uniform(0.0, 1.0, tables.node.shape))
    carried = np.where(np.isnan(tables.carried), np.nan, rng.uniform(0.0, 0.5, tables.carried.shape))
    share = np.where(np.isnan(tables.share), np.nan, rng.uniform(0.0, 1.0, tables.share.shape))
    fake = dataclasses.replace(tables, node=node, carried=carried, share=share)
    for segments in (1, 2, 3):
        costs = {str(p): plan_cost(fake, p) for p in enumerate_plans(problem.steps, segments)}
        picked = optimal_mixture_plan(problem, segments, tables=fake)
        best = min(costs.values())
        assert picked.cost == pytest.approx(best, rel=1e-12)
        assert costs[str(picked.plan)] == pytest.approx(best, rel=1e-12)


def test_non_warm_inits_make_the_node_cost_independent_of_the_first_child():
    tables = planner_tables(_problem(steps=4, init="ddim"))
    for j in range(2, 5):
        for i in range(0, j - 1):
            values = tables.node[j, i, i + 1:j]
            assert np.all(values == values[0])


def test_total_budget_is_refused_with_a_reason():
    with pytest.raises(InputError, match="per-merge"):
        planner_tables(_problem(budget="total"))


def test_planner_tracks_exact_simulation_on_a_small_cell():
    """Quick honesty check (the full grid is in docs/mixture.md): N = 5, M = 1, all 45 plans."""
    from scipy.stats import spearmanr

    problem = _problem(separation=4.0, eta_tau=0.5)
    tables = planner_tables(problem)
    plans = list(enumerate_plans(5, 1))
    mse = np.array([simulate_plan(problem, p, w2=False).mse for p in plans])
    cost = np.array([plan_cost(tables, p) for p in plans])
    assert spearmanr(cost, mse)[0] >= 0.9
    pick = optimal_mixture_plan(problem, 1, tables=tables).plan
    assert mse[plans.index(pick)] <= 1.05 * mse.min()


@pytest.mark.parametrize("lam, eta_tau, segments", [((0.3,), 0.5, 1), ((0.05, 1.0, 3.0), 0.5, 2), ((1.5,), 0.5, 1)])
def test_single_gaussian_exact_simulation_optimum_is_the_linear_regimes(lam, eta_tau, segments):
    """K = 1: brute force over the exact simulation finds the certified linear optimum's W2 (to 1e-10)."""
    lam = np.array(lam)
    schedule = make_schedule("vp-cosine", 6)
    model = StudentModel(eta_tau=eta_tau)
    mixture = GaussianMixture([1.0], [np.zeros(lam.size)], [np.diag(lam)])
    problem = MixtureProblem(mixture, schedule, model, expectation=Expectation("quadrature", order=3))
    linear = solve(Problem(schedule, lam=lam, model=model, segments=segments))
    assert linear.exact
    best = min(math.sqrt(simulate_plan(problem, p, w2=False).mse) for p in enumerate_plans(6, segments))
    assert best == pytest.approx(linear.w2, abs=1e-10)
    assert math.sqrt(simulate_plan(problem, linear.plan, w2=False).mse) == pytest.approx(linear.w2, abs=1e-10)


@pytest.mark.parametrize("plan_text", ["(((6 5) 4) 3) | (2 1)", "(6 (5 (4 3))) | (2 1)", "6 | ((5 4) (3 2 1))"])
def test_single_gaussian_simulation_gives_the_linear_student_and_teacher_operators(plan_text):
    """K = 1, mu = 0, diagonal covariance: the simulated final map is diag(S) and the teacher's diag(T)."""
    lam = np.array([0.2, 1.0, 4.0])
    schedule = make_schedule("vp-cosine", 6)
    model = StudentModel(eta_tau=0.4)
    problem = MixtureProblem(GaussianMixture([1.0], [np.zeros(3)], [np.diag(lam)]), schedule, model,
                             expectation=Expectation("quadrature", order=3))
    plan = parse_plan(plan_text, 6)
    sim = simulate_plan(problem, plan, w2=False)
    linear = evaluate_plan(Problem(schedule, lam=lam, model=model, segments=2), plan)
    student = np.eye(3)
    for segment in plan.segments:
        if isinstance(segment, int):
            student = problem.teacher.step(student, segment)
        else:
            theta = sim.nodes[segment].theta
            assert np.max(np.abs(theta[3])) <= 1e-12  # no offset
            student = student @ theta[:3]
    assert np.max(np.abs(student - np.diag(linear.student))) <= 1e-10
    teacher = problem.teacher.composite(np.eye(3), 6, 0)
    assert np.max(np.abs(teacher - np.diag(linear.teacher))) <= 1e-10
