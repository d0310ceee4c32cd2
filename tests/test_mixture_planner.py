"""The mixture planner (docs/mixture.md §5): its tables, its cost, its dynamic program, and the
exact simulation's K = 1 optimum against the linear regime's certified solver."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

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


def _train_by_hand(phi, w, target, theta0, eta_tau):
    """Gradient flow on the weighted least squares, by the matrix exponential (not the eigenbasis):
    Theta* + expm(-2 eta_tau G)(Theta0 - Theta*), G = Phi^T W Phi."""
    root_w = np.sqrt(w)[:, None]
    star = np.linalg.lstsq(phi * root_w, target * root_w, rcond=None)[0]
    gram = phi.T @ (phi * w[:, None])
    return star + scipy.linalg.expm(-2.0 * eta_tau * gram) @ (theta0 - star), star


def _lstsq(phi, w, target):
    return np.linalg.lstsq(phi * np.sqrt(w)[:, None], target * np.sqrt(w)[:, None], rcond=None)[0]


def _carried(teacher, out, i, reference, w):
    return float(w @ np.sum((teacher.composite(out, i, 0) - reference) ** 2, axis=1))


def test_node_table_is_the_node_of_the_best_chain_carried_through_the_teacher(tables_and_problem):
    """e[4, 1, 2] and r[4, 1, 2] rebuilt by hand: the chain (4 3) is fitted to T(4 -> 2) from the teacher
    step, the node ((4 3) 2) to T(2 -> 1) after the chain, from the chain; both carried by T(1 -> 0)."""
    tables, problem = tables_and_problem
    teacher, eta_tau = problem.teacher, problem.model.eta_tau
    j, i, k = 4, 1, 2
    z, w = problem.points(j, 0)
    phi = features(teacher, "gated", z, j)
    chain, _ = _train_by_hand(phi, w, teacher.composite(z, j, k), _lstsq(phi, w, teacher.composite(z, j, j - 1)), eta_tau)
    theta, _ = _train_by_hand(phi, w, teacher.composite(phi @ chain, k, i), chain, eta_tau)
    reference = teacher.composite(z, j, 0)
    assert tables.node[j, i, k] == pytest.approx(_carried(teacher, phi @ theta, i, reference, w), rel=1e-8)
    assert tables.best[j, i] == min(tables.node[j, i, 2], tables.node[j, i, 3])
    # the best fit of the teacher composite, carried
    best_fit = _lstsq(phi, w, teacher.composite(z, j, i))
    assert tables.carried[j, i] == pytest.approx(_carried(teacher, phi @ best_fit, i, reference, w), rel=1e-8)
    # the root table at j = N - 1: the node's amplitude on the teacher's step from the common inputs z_N
    z_n, w_n = problem.points(problem.steps, 0)
    final_n = teacher.composite(z_n, problem.steps, 0)
    seen = teacher.composite(z_n, problem.steps, j)
    expected_root = math.sqrt(_carried(teacher, features(teacher, "gated", seen, j) @ theta, i, final_n, w_n))
    assert tables.root[j, i, k] == pytest.approx(expected_root, rel=1e-8)


def test_root_amplitude_is_what_the_root_adds_after_the_best_first_segment(tables_and_problem):
    """root[3, 0, 1] by hand: the best (only) chain over 5 -> 3 is (5 4) fitted to T(5 -> 3) from the
    step; the node ((3 2) 1) (chain (3 2) fitted to T(3 -> 1)) applied to its outputs on z_5, carried to
    the data side, minus that chain's own carried error, in amplitude."""
    tables, problem = tables_and_problem
    teacher, eta_tau = problem.teacher, problem.model.eta_tau
    z5, w5 = problem.points(5, 0)
    phi5 = features(teacher, "gated", z5, 5)
    first, _ = _train_by_hand(phi5, w5, teacher.composite(z5, 5, 3), _lstsq(phi5, w5, teacher.composite(z5, 5, 4)), eta_tau)
    final = teacher.composite(z5, 5, 0)
    base = math.sqrt(_carried(teacher, phi5 @ first, 3, final, w5))
    assert tables.best[5, 3] == pytest.approx(base**2, rel=1e-8)
    z3, w3 = problem.points(3, 0)
    phi3 = features(teacher, "gated", z3, 3)
    chain, _ = _train_by_hand(phi3, w3, teacher.composite(z3, 3, 1), _lstsq(phi3, w3, teacher.composite(z3, 3, 2)), eta_tau)
    theta, _ = _train_by_hand(phi3, w3, teacher.composite(phi3 @ chain, 1, 0), chain, eta_tau)
    seen = features(teacher, "gated", phi5 @ first, 3)
    expected = math.sqrt(_carried(teacher, seen @ theta, 0, final, w5)) - base
    assert tables.root[3, 0, 1] == pytest.approx(expected, rel=1e-8)
    # a two-segment plan of best chains: its cost is its exact MSE
    plan = parse_plan("(5 4) | ((3 2) 1)", 5)
    assert plan_cost(tables, plan) == pytest.approx(simulate_plan(problem, plan, w2=False).mse, rel=1e-8)
    # over 5 -> 2 the best chain is (5 4 3) (first child ending at 4, not at 3): the second segment is
    # measured on its outputs
    assert tables.node[5, 2, 4] < tables.node[5, 2, 3]
    plan = parse_plan("(5 4 3) | (2 1)", 5)
    assert plan_cost(tables, plan) == pytest.approx(simulate_plan(problem, plan, w2=False).mse, rel=1e-8)


def test_cost_adds_roots_first_child_excess_and_later_child_lags(tables_and_problem):
    tables, _ = tables_and_problem
    plan = parse_plan("(((5 4) 3) 2 1)", 5)
    root = tables.root[5, 0, 2]
    assert root == pytest.approx(math.sqrt(tables.node[5, 0, 2]), rel=1e-14)   # a root at N: its own error
    first = math.sqrt(tables.node[5, 2, 3]) - math.sqrt(min(tables.node[5, 2, 3], tables.node[5, 2, 4]))
    # (5 4) is the only chain over 5 -> 3: it loses nothing against the best
    assert plan_cost(tables, plan) == pytest.approx((root + first) ** 2, rel=1e-14)
    plan = parse_plan("(5 (4 3) 2) | 1", 5)
    later = tables.share[5, 4, 2, 3] * max(math.sqrt(tables.node[4, 2, 3]) - math.sqrt(tables.carried[4, 2]), 0.0)
    assert later > 0.0
    assert plan_cost(tables, plan) == pytest.approx((tables.root[5, 1, 4] + later) ** 2, rel=1e-14)
    # one-leaf segments are the teacher's own steps: they cost nothing
    assert plan_cost(tables, parse_plan("5 | 4 | 3 | 2 | 1", 5)) == 0.0


def test_lag_share_is_what_the_parent_learns_of_the_later_childs_lag(tables_and_problem):
    """s[5, 3, 1, 2] rebuilt by hand: the child (3 2) (fitted to T(3 -> 1) from the teacher step) minus
    the best fit, seen at T(5 -> 3)(z_5), projected on the features at 5 and trained from zero for the
    budget (matrix exponential of the Gram matrix at 5)."""
    tables, problem = tables_and_problem
    teacher, eta_tau = problem.teacher, problem.model.eta_tau
    p, m, i, k = 5, 3, 1, 2
    zm, wm = problem.points(m, 0)
    phi_m = features(teacher, "gated", zm, m)
    theta, star = _train_by_hand(phi_m, wm, teacher.composite(zm, m, i),
                                 _lstsq(phi_m, wm, teacher.composite(zm, m, k)), eta_tau)
    zp, wp = problem.points(p, 0)
    delta = features(teacher, "gated", teacher.composite(zp, p, m), m) @ (theta - star)
    phi_p = features(teacher, "gated", zp, p)
    learned, _ = _train_by_hand(phi_p, wp, delta, np.zeros((phi_p.shape[1], delta.shape[1])), eta_tau)
    out = phi_p @ learned
    expected = math.sqrt(float(wp @ np.sum(out**2, axis=1)) / float(wp @ np.sum(delta**2, axis=1)))
    assert tables.share[p, m, i, k] == pytest.approx(expected, rel=1e-6)
    assert 0.0 < expected < 1.0
    shares = tables.share[~np.isnan(tables.share)]
    assert shares.size > 0 and np.all((shares >= 0.0) & (shares <= 1.0))


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


def test_non_warm_inits_start_every_node_from_the_fixed_start():
    """init = 'ddim': the node (3 2 1) over 3 -> 0 with a leaf first child starts from the DDIM jump 3 -> 0,
    not from the teacher step."""
    problem = _problem(steps=4, init="ddim")
    tables = planner_tables(problem)
    teacher, eta_tau = problem.teacher, problem.model.eta_tau
    z, w = problem.points(3, 0)
    phi = features(teacher, "gated", z, 3)
    jump = _lstsq(phi, w, teacher.ddim_jump(z, 3, 0))
    theta, _ = _train_by_hand(phi, w, teacher.composite(z, 3, 0), jump, eta_tau)
    assert tables.node[3, 0, 2] == pytest.approx(_carried(teacher, phi @ theta, 0, teacher.composite(z, 3, 0), w), rel=1e-8)


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


@pytest.mark.parametrize("eta_tau", [0.1, 2.0])
def test_one_segment_pick_costs_exactly_its_simulated_mse(eta_tau):
    """With one segment the pick is a chain of best chains with teacher steps as later children: the
    planner fits its nodes as the simulation does, so its cost is the pick's exact MSE (quadrature)."""
    problem = _problem(eta_tau=eta_tau)
    picked = optimal_mixture_plan(problem, 1)
    assert picked.cost == pytest.approx(simulate_plan(problem, picked.plan, w2=False).mse, rel=1e-10)
    assert "(" in str(picked.plan)
