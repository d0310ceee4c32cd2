"""Training laws of a node (opmerge.laws, docs/theory.md §9): adam, sign, empirical, input scaling.

Independent routes: torch's Adam (adam), plain sign descent (sign), the flow closed form read back
through an empirical table, EDM's c_in written out by hand, brute force over every plan (solver).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge import InputError, InputTypeError, canonical_plan, enumerate_plans, evaluate_plan, make_schedule, solve
from opmerge.errors import IndistinguishablePlansWarning
from opmerge.laws import (LAWS, MeasuredTable, adam_error, adam_error_reference, adam_sign_gap, load_retention,
                          sign_error)
from opmerge.model import StudentModel, effective_input_variance, input_scale, input_variance, retention_table
from opmerge.objective import Problem
from opmerge.plans import MergeNode
from opmerge.solvers import brute_force

from _cli_helpers import assert_user_error, run

SCHEDULE_NAMES = ("vp-cosine", "vp-linear", "rf", "edm")


# ---------------------------------------------------------------------------------------------
# adam: the recursion against torch
# ---------------------------------------------------------------------------------------------
def _torch_adam(error0: np.ndarray, q: np.ndarray, lr: float, steps: int, betas=(0.9, 0.999), eps=1e-8) -> np.ndarray:
    """torch.optim.Adam on the exact loss sum_i q_i (a_i - P_i)^2 of a diagonal student, float64; returns a_K - P."""
    torch = pytest.importorskip("torch")
    target = torch.tensor(np.linspace(-0.7, 1.3, error0.size), dtype=torch.float64)
    param = torch.nn.Parameter(target + torch.tensor(error0, dtype=torch.float64))
    qt = torch.tensor(q, dtype=torch.float64)
    opt = torch.optim.Adam([param], lr=lr, betas=betas, eps=eps)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.sum(qt * (param - target) ** 2)
        loss.backward()
        opt.step()
    return (param.detach() - target).numpy()


@pytest.mark.parametrize("lr, steps, betas, eps", [
    (1e-2, 50, (0.9, 0.999), 1e-8),
    (3e-3, 200, (0.9, 0.999), 1e-8),
    (5e-2, 30, (0.5, 0.9), 1e-6),
    (1e-3, 7, (0.0, 0.99), 0.0),
])
def test_adam_equals_torch_adam_on_exact_loss_diagonal_students(lr, steps, betas, eps):
    rng = np.random.default_rng(3)
    error0 = rng.normal(size=12) * np.array([1e-3, 1e-2, 0.1, 1, 3, 10] * 2)
    q = rng.uniform(0.01, 20.0, size=12)
    ours = adam_error(error0, q, lr=lr, steps=steps, beta1=betas[0], beta2=betas[1], eps=eps)
    theirs = _torch_adam(error0, q, lr, steps, betas, eps)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)
    # the kernel against its plain-Python reference
    ref = [adam_error_reference(e, qq, lr, steps, betas[0], betas[1], eps) for e, qq in zip(error0, q)]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-13)


def test_adam_plan_equals_torch_adam_students_node_by_node():
    """Every node of a plan trained by torch Adam on the exact loss, warm-started from its first child."""
    torch = pytest.importorskip("torch")
    schedule = make_schedule("vp-cosine", 6)
    lam = np.array([0.05, 0.4, 2.0, 9.0])
    model = StudentModel(training="adam", lr=0.02, gd_steps=40)
    problem = Problem(schedule, lam, model=model)
    plan = canonical_plan("pd", 6, 1)
    q = input_variance(schedule, lam)  # forward inputs, raw scaling: q_j = |v_j|^2
    values = {}

    def value(tree):
        return values[tree] if isinstance(tree, MergeNode) else problem.step_values[:, tree]

    for node in plan.merge_nodes():
        children = [value(c) for c in node.children]
        target = np.prod(children, axis=0)
        param = torch.nn.Parameter(torch.tensor(children[0], dtype=torch.float64))  # warm start
        opt = torch.optim.Adam([param], lr=0.02)
        qt = torch.tensor(q[:, node.top], dtype=torch.float64)
        tt = torch.tensor(target, dtype=torch.float64)
        for _ in range(40):
            opt.zero_grad()
            torch.sum(qt * (param - tt) ** 2).backward()
            opt.step()
        values[node] = param.detach().numpy()
    ev = evaluate_plan(problem, plan)
    for node in plan.merge_nodes():
        np.testing.assert_allclose(ev.node_values[node], values[node], rtol=0, atol=1e-10)


def test_adam_is_scale_covariant_without_eps():
    """eps = 0: F(c e; c lr) = c F(e; lr), and q drops out (the basis of adam_sign_gap's one table)."""
    e = np.linspace(-5, 5, 41)
    base = adam_error(e, 1.0, lr=0.1, steps=30, eps=0.0)
    np.testing.assert_allclose(adam_error(4 * e, 1.0, lr=0.4, steps=30, eps=0.0), 4 * base, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(adam_error(e, 37.0, lr=0.1, steps=30, eps=0.0), base, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# sign: the soft threshold and Adam's small-step limit
# ---------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.floats(-10, 10), st.floats(1e-3, 0.5), st.integers(1, 50))
def test_sign_law_is_sign_descent_until_it_reaches_the_target(e0, lr, steps):
    """Plain sign descent e <- e - lr sign(e) travels lr per step; the law is that travel, stopped at 0."""
    e = e0
    for _ in range(steps):
        if abs(e) <= lr:  # one more step would cross the target: the law stops there (sign descent oscillates)
            e = 0.0
            break
        e = e - lr * math.copysign(1.0, e)
    assert sign_error(e0, lr * steps) == pytest.approx(e, abs=1e-9)


def test_sign_is_adams_small_step_limit():
    """At fixed K and initial errors, |F_adam - F_sign| / (lr K) -> 0 as lr -> 0 (measured)."""
    e0 = np.array([-2.5, -1.0, -0.3, 0.3, 1.0, 2.5])
    gaps = []
    for lr in (1e-3, 1e-4, 1e-5, 1e-6):
        travel = lr * 100
        gaps.append(float(np.max(np.abs(adam_error(e0, 0.7, lr=lr, steps=100) - sign_error(e0, travel)))) / travel)
    assert all(b < a for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 5e-3 and gaps[0] > 5e-2, gaps


def test_adam_sign_gap_bounds_adam_against_sign():
    rng = np.random.default_rng(0)
    for steps in (5, 40, 150):
        gap = adam_sign_gap(steps)
        worst = 0.0
        for lr in (1e-3, 1e-2, 0.1):
            e0 = rng.normal(size=400) * lr * steps * rng.choice([0.1, 1, 3, 30], size=400)
            q = 10 ** rng.uniform(-1, 2, size=400)
            diff = np.abs(adam_error(e0, q, lr=lr, steps=steps) - sign_error(e0, lr * steps))
            assert np.all(diff <= gap * lr), (steps, float(np.max(diff / lr)), gap)
            worst = max(worst, float(np.max(diff / lr)))
        assert worst > 0.5 * gap  # not a vacuous envelope


# ---------------------------------------------------------------------------------------------
# monotonicity claims
# ---------------------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(st.floats(-5, 5), st.floats(-5, 5), st.floats(0, 3))
def test_sign_error_map_is_nondecreasing_with_slope_at_most_one(u1, u2, travel):
    u1, u2 = min(u1, u2), max(u1, u2)
    f1, f2 = float(sign_error(u1, travel)), float(sign_error(u2, travel))
    assert -1e-12 <= f2 - f1 <= (u2 - u1) + 1e-12


def test_adam_error_map_is_not_monotone():
    """The law that LAWS says is not monotone has a decreasing stretch (Adam's momentum overshoots)."""
    assert LAWS["adam"].monotone == "no" and not LAWS["adam"].exact_solver
    u = np.linspace(0, 3, 3001)
    f = adam_error(u, 1.0, lr=0.1, steps=10)
    assert np.min(np.diff(f)) < -1e-3


@pytest.mark.parametrize("training", ["flow", "sign"])
def test_node_value_is_nondecreasing_in_every_child(training):
    """For the laws that LAWS calls monotone, raising any child value never lowers the node (values >= 0)."""
    assert LAWS[training].monotone == "always"
    rng = np.random.default_rng(1)
    kw = dict(lr=0.01, gd_steps=30) if training == "sign" else {}
    problem = Problem(make_schedule("vp-cosine", 8), [0.1, 1.0, 10.0], model=StudentModel(training=training, **kw))
    from opmerge.objective import merge_value

    for _ in range(300):
        k = int(rng.integers(2, 5))
        children = [rng.uniform(0, 2, size=3) for _ in range(k)]
        base = merge_value(problem, problem.retention, 8, 0, children)
        for c in range(k):
            bumped = [x.copy() for x in children]
            bumped[c] = bumped[c] + rng.uniform(0, 0.5, size=3)
            assert np.all(merge_value(problem, problem.retention, 8, 0, bumped) >= base - 1e-12)


# ---------------------------------------------------------------------------------------------
# the solver against brute force, every law
# ---------------------------------------------------------------------------------------------
def _empirical_table(steps: int, seed: int, low: float = 0.0, high: float = 1.0) -> MeasuredTable:
    rng = np.random.default_rng(seed)
    values = rng.uniform(low, high, size=(steps + 1, 3))
    values[:2] = np.nan
    return MeasuredTable(steps=steps, lam=(0.1, 1.0, 10.0), values=values, source="test")


LAW_MODELS = {
    "sign": lambda n: StudentModel(training="sign", lr=0.004, gd_steps=50),
    "sign-ddim-init": lambda n: StudentModel(training="sign", lr=0.01, gd_steps=20, init="ddim"),
    "sign-preconditioned": lambda n: StudentModel(training="sign", lr=0.004, gd_steps=50, input_scaling="preconditioned"),
    "adam": lambda n: StudentModel(training="adam", lr=0.004, gd_steps=50),
    "adam-long": lambda n: StudentModel(training="adam", lr=0.02, gd_steps=30),
    "empirical": lambda n: StudentModel(training="empirical", retention_table=_empirical_table(n, 0)),
    "empirical-not-monotone": lambda n: StudentModel(training="empirical", retention_table=_empirical_table(n, 1, -0.5, 1.4)),
    "flow-preconditioned": lambda n: StudentModel(input_scaling="preconditioned", eta_tau=0.3),
}


@pytest.mark.parametrize("name", sorted(LAW_MODELS))
@pytest.mark.parametrize("schedule_name, steps, segments, lam", [
    ("vp-cosine", 6, 1, [0.3]),
    ("rf", 7, 2, [0.05, 1.0, 8.0]),
    ("edm", 6, 2, [0.5]),
    ("vp-linear", 8, 3, [0.2, 4.0]),
])
def test_solver_equals_brute_force_for_every_law(name, schedule_name, steps, segments, lam):
    model = LAW_MODELS[name](steps)
    problem = Problem(make_schedule(schedule_name, steps), lam, model=model, segments=segments)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IndistinguishablePlansWarning)
        solution = solve(problem, time_budget=math.inf)
    best = brute_force(problem)[0]
    tol = solution.tol
    assert solution.w2 <= best.w2 + tol, (str(solution.plan), solution.w2, str(best.plan), best.w2)
    assert solution.lower_bound <= best.w2 + tol
    assert not solution.stopped
    if LAWS[model.training].exact_solver:
        assert solution.exact
    else:
        assert not solution.exact  # adam: the bound rests on a tabulated envelope


# ---------------------------------------------------------------------------------------------
# empirical tables and input scaling
# ---------------------------------------------------------------------------------------------
def test_empirical_table_of_flow_retention_reproduces_flow():
    schedule = make_schedule("vp-cosine", 7)
    grid = np.array([0.05, 0.2, 1.0, 5.0])
    r = np.exp(-2 * 0.5 * input_variance(schedule, grid)).T  # (N + 1, len(grid))
    table = MeasuredTable(steps=7, lam=grid, values=r)
    for kind in ("vanilla", "boot", "cd", "pd"):
        plan = canonical_plan(kind, 7, 1)
        flow = evaluate_plan(Problem(schedule, grid, model=StudentModel(eta_tau=0.5)), plan)
        emp = evaluate_plan(Problem(schedule, grid, model=StudentModel(training="empirical", retention_table=table)), plan)
        np.testing.assert_allclose(emp.student, flow.student, rtol=1e-14)


def test_empirical_table_interpolates_in_log_lambda_and_clamps():
    values = np.full((4, 2), np.nan)
    values[2:] = [[0.2, 0.6], [0.1, 0.9]]
    table = MeasuredTable(steps=3, lam=(0.1, 10.0), values=values)
    out = table.at([0.01, 0.1, 1.0, 10.0, 100.0])
    np.testing.assert_allclose(out[:, 2], [0.2, 0.2, 0.4, 0.6, 0.6])
    np.testing.assert_allclose(out[:, 3], [0.1, 0.1, 0.5, 0.9, 0.9])
    assert np.all(out[:, :2] == 1.0)


def test_empirical_table_round_trips_through_json(tmp_path):
    table = _empirical_table(5, 2)
    path = tmp_path / "r.json"
    import json

    path.write_text(json.dumps({"retention": table.to_dict()}))
    back = load_retention(path)
    np.testing.assert_array_equal(back.values[2:], table.values[2:])
    assert back.lam == table.lam and back.steps == 5


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_preconditioned_input_variance_is_one_when_sigma_data_matches(name):
    """c_in = 1/sqrt(sigma^2 + alpha^2 sigma_d^2) written out; with sigma_d^2 = lambda, q_eff = 1 at every time."""
    schedule = make_schedule(name, 10)
    for lam in (0.07, 1.0, 13.0):
        model = StudentModel(input_scaling="preconditioned", sigma_data=math.sqrt(lam))
        q = effective_input_variance(schedule, lam, model)
        np.testing.assert_allclose(q[1:], 1.0, rtol=1e-12)
        c_in = 1.0 / np.sqrt(schedule.sigma**2 + schedule.alpha**2 * lam)
        np.testing.assert_allclose(input_scale(schedule, model), c_in, rtol=1e-15)
        raw = input_variance(schedule, lam)
        np.testing.assert_allclose(q, raw * c_in**2, rtol=1e-14)


def test_preconditioned_sign_travel_is_scaled_by_c_in():
    schedule = make_schedule("edm", 6)
    model = StudentModel(training="sign", lr=0.01, gd_steps=10, input_scaling="preconditioned", sigma_data=0.5)
    problem = Problem(schedule, [0.25, 4.0], model=model)
    c_in = 1.0 / np.sqrt(schedule.sigma**2 + schedule.alpha**2 * 0.25)
    e = np.array([0.05, -3.0])
    for j in range(2, 7):
        np.testing.assert_allclose(problem.law.error(e, j), sign_error(e, c_in[j] * 0.1), rtol=1e-15)


def test_preconditioned_adam_node_equals_torch_adam_on_the_scaled_parameter():
    """The student's parameter b sees c_in z: a = c_in b, loss q (c_in b - P)^2, Adam on b (torch)."""
    torch = pytest.importorskip("torch")
    schedule = make_schedule("vp-linear", 6)
    lam = np.array([0.2, 3.0])
    model = StudentModel(training="adam", lr=0.05, gd_steps=25, input_scaling="preconditioned", sigma_data=0.8)
    problem = Problem(schedule, lam, model=model)
    q_raw = input_variance(schedule, lam)
    c_in = 1.0 / np.sqrt(schedule.sigma**2 + schedule.alpha**2 * 0.64)
    a0, target = np.array([0.9, 1.4]), np.array([0.3, 1.1])
    for j in (2, 4, 6):
        c = float(c_in[j])
        b = torch.nn.Parameter(torch.tensor(a0 / c, dtype=torch.float64))
        opt = torch.optim.Adam([b], lr=0.05)
        qt, pt = torch.tensor(q_raw[:, j], dtype=torch.float64), torch.tensor(target, dtype=torch.float64)
        for _ in range(25):
            opt.zero_grad()
            torch.sum(qt * (c * b - pt) ** 2).backward()
            opt.step()
        np.testing.assert_allclose(problem.law.error(a0 - target, j), c * b.detach().numpy() - target, rtol=0, atol=1e-10)


def test_default_sigma_data_is_the_weighted_mean_eigenvalue():
    problem = Problem(make_schedule("vp-cosine", 4), [1.0, 9.0], weights=[3.0, 1.0],
                      model=StudentModel(input_scaling="preconditioned"))
    assert problem.sigma_data_sq == pytest.approx(3.0)


def test_edm_budget_means_the_same_as_vp_when_preconditioned():
    """Raw edm inputs (q_j up to sigma_max^2) make every node converge; preconditioned ones do not."""
    lam = [0.5]
    raw_edm = Problem(make_schedule("edm", 16), lam)
    pre_edm = Problem(make_schedule("edm", 16), lam, model=StudentModel(input_scaling="preconditioned"))
    pre_vp = Problem(make_schedule("vp-cosine", 16), lam, model=StudentModel(input_scaling="preconditioned"))
    raw_vp = Problem(make_schedule("vp-cosine", 16), lam)
    assert np.min(raw_edm.retention[0, 2:]) == 0.0  # exp(-2 eta tau sigma_j^2) underflows at high noise
    assert np.ptp(raw_edm.retention[0, 2:]) > 0.6
    assert 0.35 < np.min(raw_vp.retention[0, 2:]) and np.max(raw_vp.retention[0, 2:]) < 0.6
    # one direction, sigma_d^2 = lambda: q_eff = 1 at every time on both schedules, r = exp(-2 eta tau)
    np.testing.assert_allclose(pre_edm.retention[0, 2:], math.exp(-1.0), rtol=1e-12)
    np.testing.assert_allclose(pre_vp.retention[0, 2:], math.exp(-1.0), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# the warning when plans cannot be told apart
# ---------------------------------------------------------------------------------------------
def test_solve_warns_when_plans_cannot_be_told_apart():
    with pytest.warns(IndistinguishablePlansWarning, match="cannot be told apart"):
        solve(Problem(make_schedule("edm", 16), [0.5]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndistinguishablePlansWarning)
        solve(Problem(make_schedule("edm", 16), [0.5], model=StudentModel(input_scaling="preconditioned")))
        solve(Problem(make_schedule("vp-cosine", 16), [0.5]))


def test_solve_warns_when_every_plan_has_the_same_w2():
    """All nodes converged (huge budget) and the data target: S = T for every plan, W2 > 0 for all."""
    problem = Problem(make_schedule("vp-cosine", 6), [0.5, 2.0], model=StudentModel(eta_tau=1e4), target="data")
    with pytest.warns(IndistinguishablePlansWarning, match="every plan has W2"):
        solution = solve(problem)
    assert solution.w2 > 1e-3


def test_cli_prints_one_warning_line(capsys):
    code, _, err = run(capsys, "compare", "--schedule", "edm", "--steps", "8")
    assert code == 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("opmerge: warning: plans cannot be told apart"), err
    code, _, err = run(capsys, "compare", "--schedule", "edm", "--steps", "8", "--input-scaling", "preconditioned")
    assert code == 0 and err.strip() == ""


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(training="adam"), "needs lr"),
    (dict(training="sign", lr=0.1), "gd_steps missing"),
    (dict(training="adam", lr=0.1, gd_steps=3, beta1=1.0), "beta1 must be in"),
    (dict(training="adam", lr=0.1, gd_steps=3, eps=-1.0), "eps"),
    (dict(training="sign", lr=0.1, gd_steps=3, beta2=0.9), "only apply to training='adam'"),
    (dict(sigma_data=0.5), "sigma_data only applies"),
    (dict(input_scaling="preconditioned", sigma_data=0.0), "sigma_data"),
    (dict(input_scaling="cin"), "input_scaling"),
    (dict(training="empirical"), "needs retention_table"),
    (dict(training="empirical", retention_table={"steps": 3}), "must be an opmerge.laws.MeasuredTable"),
    (dict(retention_table=None, training="empirical", lr=0.1), "only apply"),
    (dict(training="adam", lr=0.1, gd_steps=3, budget="total"), "only defined for training='flow'"),
])
def test_student_model_refuses_bad_law_settings(kwargs, match):
    with pytest.raises(InputError, match=match):
        StudentModel(**kwargs)


def test_empirical_table_for_other_steps_is_refused():
    model = StudentModel(training="empirical", retention_table=_empirical_table(5, 0))
    with pytest.raises(InputError, match="measured for N = 5"):
        Problem(make_schedule("vp-cosine", 6), 0.5, model=model)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(steps=3, lam=(1.0, 0.5), values=np.zeros((4, 2))), InputError, "strictly increasing"),
    (dict(steps=3, lam=(0.5, 1.0), values=np.zeros((3, 2))), InputError, "shape"),
    (dict(steps=3, lam=(0.5, 1.0), values=np.full((4, 2), np.nan)), InputError, "finite in rows 2"),
    (dict(steps=3, lam=(0.5, 1.0), values=np.zeros((4, 2)), source=3), InputTypeError, "source"),
])
def test_empirical_retention_refuses_bad_tables(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MeasuredTable(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(error=np.nan, q=1.0, lr=0.1, steps=3), "error must be finite"),
    (dict(error=1.0, q=-1.0, lr=0.1, steps=3), "q"),
    (dict(error=1.0, q=1.0, lr=0.0, steps=3), "lr"),
    (dict(error=1.0, q=1.0, lr=0.1, steps=0), "steps"),
    (dict(error=[1.0, 2.0], q=[1.0, 2.0, 3.0], lr=0.1, steps=2), "broadcast"),
])
def test_adam_error_refuses_bad_input(kwargs, match):
    error, q = kwargs.pop("error"), kwargs.pop("q")
    with pytest.raises(InputError, match=match):
        adam_error(error, q, **kwargs)


def test_retention_table_needs_a_linear_law():
    with pytest.raises(InputError, match="linear law"):
        retention_table(make_schedule("vp-cosine", 4), 0.5, StudentModel(training="sign", lr=0.1, gd_steps=2))


@pytest.mark.parametrize("argv, match", [
    (["plan", "--training", "adam"], "--training adam needs --lr and --gd-steps"),
    (["plan", "--retention", "x.json"], "--retention only applies to --training empirical"),
    (["plan", "--training", "empirical"], "needs --retention FILE"),
    (["plan", "--sigma-data", "0.5"], "--sigma-data only applies"),
    (["plan", "--training", "sign", "--lr", "0.1", "--gd-steps", "3", "--budget", "total"], "--budget total"),
    (["plan", "--training", "empirical", "--retention", "missing.json"], "cannot read a retention table"),
])
def test_cli_refuses_bad_law_options(capsys, argv, match):
    code, out, err = run(capsys, *argv)
    assert_user_error(code, out, err)
    assert match in err, err
