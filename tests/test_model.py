"""The student model of one merge node (docs/theory.md §4), checked against brute simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from opmerge.model import (
    BUDGETS,
    INITS,
    INPUTS,
    TRAININGS,
    StudentModel,
    input_variance,
    node_value,
    retention,
    retention_table,
)
from opmerge.schedules import SCHEDULE_NAMES, make_schedule
from opmerge.teacher import teacher_composite

NAMES = st.sampled_from(SCHEDULE_NAMES)
# lam = 0 exactly or lam >= 1e-12: subnormal lam (~1e-320) underflows E = sqrt(|v_i|^2 / |v_j|^2) to 0
# in teacher.exact_flow while T stays a (subnormal) positive number; that is floating point, not theory.
LAMS = st.one_of(st.just(0.0), st.floats(1e-12, 100.0, allow_nan=False, allow_infinity=False))


# ---------------------------------------------------------------------------------------------
# retention: closed forms against simulation
# ---------------------------------------------------------------------------------------------
def _simulate_flow(a0, target, q, eta, tau):
    """Integrate da/dtau = -eta d/da [q (a - P)^2] = -2 eta q (a - P) numerically."""
    sol = solve_ivp(
        lambda _t, a: -eta * 2.0 * q * (a - target),
        (0.0, tau),
        [a0],
        method="DOP853",
        rtol=1e-12,
        atol=1e-14,
    )
    assert sol.success
    return float(sol.y[0, -1])


def _simulate_gd(a0, target, q, lr, steps):
    a = a0
    for _ in range(steps):
        grad = 2.0 * q * (a - target)  # d/da [q (a - P)^2]
        a = a - lr * grad
    return a


@settings(deadline=None, max_examples=40)
@given(
    a0=st.floats(-2.0, 2.0),
    target=st.floats(-2.0, 2.0),
    q=st.floats(0.01, 10.0),
    eta=st.floats(0.05, 2.0),
    tau=st.floats(0.01, 2.0),
)
def test_flow_retention_matches_ode(a0, target, q, eta, tau):
    r = retention("flow", q, eta_tau=eta * tau)
    predicted = node_value([target], r, a0)
    simulated = _simulate_flow(a0, target, q, eta, tau)
    assert float(predicted) == pytest.approx(simulated, rel=1e-9, abs=1e-10)


@settings(deadline=None, max_examples=100)
@given(
    a0=st.floats(-2.0, 2.0),
    target=st.floats(-2.0, 2.0),
    q=st.floats(0.01, 10.0),
    frac=st.floats(0.0, 0.999),
    steps=st.integers(1, 60),
)
def test_gd_retention_matches_loop(a0, target, q, frac, steps):
    lr = frac / q  # 2 lr q < 2
    r = retention("gd", q, lr=lr, gd_steps=steps)
    assert float(r) == pytest.approx((1 - 2 * lr * q) ** steps, rel=1e-12, abs=1e-300)
    predicted = node_value([target], r, a0)
    simulated = _simulate_gd(a0, target, q, lr, steps)
    assert float(predicted) == pytest.approx(simulated, rel=1e-9, abs=1e-11)


def test_flow_retention_array_and_limits():
    q = np.array([0.0, 0.5, 2.0])
    np.testing.assert_allclose(retention("flow", q, eta_tau=0.5), np.exp(-q), rtol=1e-15)
    assert retention("flow", 0.0, eta_tau=3.0) == 1.0


def test_gd_overshoot_but_stable():
    # 1 < 2 lr q < 2: the factor is negative but |factor| < 1, so gd still converges
    r = retention("gd", 1.0, lr=0.8, gd_steps=3)
    assert float(r) == pytest.approx((-0.6) ** 3)


@pytest.mark.parametrize("lr, q", [(1.0, 1.0), (0.6, 2.0), (5.0, 1.0)])
def test_gd_divergent_raises(lr, q):
    with pytest.raises(ValueError, match="lr"):
        retention("gd", q, lr=lr, gd_steps=2)


def test_gd_divergent_raises_on_any_entry():
    with pytest.raises(ValueError, match="lr"):
        retention("gd", np.array([0.1, 0.2, 3.0]), lr=0.5, gd_steps=1)


def test_retention_table_gd_divergent_raises():
    s = make_schedule("edm", 5)  # |v_j|^2 up to 80^2 + lam
    model = StudentModel(training="gd", lr=0.01, gd_steps=3)
    with pytest.raises(ValueError, match="lr"):
        retention_table(s, 1.0, model)


def test_retention_unknown_training():
    with pytest.raises(ValueError, match="training"):
        retention("adam", 1.0, eta_tau=1.0)


# ---------------------------------------------------------------------------------------------
# StudentModel validation
# ---------------------------------------------------------------------------------------------
def test_student_model_defaults():
    m = StudentModel()
    assert (m.eta_tau, m.init, m.training, m.input, m.budget) == (0.5, "warm", "flow", "forward", "per-merge")
    assert m.to_dict()["init"] == "warm"
    assert set(INITS) == {"warm", "ddim", "zero", "identity"}
    assert set(TRAININGS) == {"flow", "gd", "adam", "sign", "empirical"}
    assert set(INPUTS) == {"forward", "generated"}
    assert set(BUDGETS) == {"per-merge", "total"}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"init": "cold"}, "init"),
        ({"training": "sgd"}, "training"),
        ({"input": "noise"}, "input"),
        ({"budget": "all"}, "budget"),
    ],
)
def test_student_model_bad_names(kwargs, field):
    with pytest.raises(ValueError, match=field):
        StudentModel(**kwargs)


@pytest.mark.parametrize("eta_tau", [0.0, -0.5, math.inf, math.nan])
def test_student_model_bad_eta_tau(eta_tau):
    with pytest.raises(ValueError, match="eta_tau"):
        StudentModel(eta_tau=eta_tau)


@pytest.mark.parametrize("eta_tau", ["0.5", None, True])
def test_student_model_eta_tau_type(eta_tau):
    with pytest.raises(TypeError, match="eta_tau"):
        StudentModel(eta_tau=eta_tau)


def test_student_model_gd_needs_lr_and_steps():
    with pytest.raises(ValueError, match="lr"):
        StudentModel(training="gd", gd_steps=3)
    with pytest.raises(ValueError, match="gd_steps"):
        StudentModel(training="gd", lr=0.1)


@pytest.mark.parametrize("lr", [0.0, -0.1, math.inf])
def test_student_model_gd_bad_lr(lr):
    with pytest.raises(ValueError, match="lr"):
        StudentModel(training="gd", lr=lr, gd_steps=3)


@pytest.mark.parametrize("steps, exc", [(0, ValueError), (-2, ValueError), (2.0, TypeError), (True, TypeError)])
def test_student_model_gd_bad_steps(steps, exc):
    with pytest.raises(exc, match="gd_steps"):
        StudentModel(training="gd", lr=0.1, gd_steps=steps)


def test_student_model_total_budget_with_gd():
    with pytest.raises(ValueError, match="total"):
        StudentModel(training="gd", lr=0.1, gd_steps=3, budget="total")


def test_student_model_gd_ok():
    m = StudentModel(training="gd", lr=1, gd_steps=np.int64(4))
    assert m.lr == 1.0 and isinstance(m.lr, float)
    assert m.gd_steps == 4 and isinstance(m.gd_steps, int)


def test_retention_table_total_budget():
    s = make_schedule("vp-cosine", 6)
    model = StudentModel(eta_tau=1.2, budget="total")
    with pytest.raises(ValueError, match="n_merges"):
        retention_table(s, 0.5, model)
    q = input_variance(s, 0.5)
    np.testing.assert_allclose(retention_table(s, 0.5, model, n_merges=3), np.exp(-2 * 0.4 * q), rtol=1e-14)
    np.testing.assert_allclose(
        retention_table(s, 0.5, StudentModel(eta_tau=1.2)), np.exp(-2 * 1.2 * q), rtol=1e-14
    )


# ---------------------------------------------------------------------------------------------
# node value: warm-init identity and monotonicity
# ---------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=200)
@given(children=st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=6), r=st.floats(0.0, 1.0))
def test_warm_init_identity_numeric(children, r):
    c1 = children[0]
    rest = float(np.prod(children[1:]))
    w = 1.0 - r
    value = float(node_value(children, r, c1))
    assert value == pytest.approx(c1 * (w * rest + 1 - w), rel=1e-12, abs=1e-12)


@settings(deadline=None, max_examples=200)
@given(
    children=st.lists(st.floats(0.0, 3.0), min_size=2, max_size=6),
    w=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_warm_node_value_increasing_in_every_child(children, w, data):
    r = 1.0 - w
    base = float(node_value(children, r, children[0]))
    index = data.draw(st.integers(0, len(children) - 1), label="child")
    bump = data.draw(st.floats(1e-3, 2.0), label="bump")
    bumped = list(children)
    bumped[index] += bump
    value = float(node_value(bumped, r, bumped[0]))
    assert value >= base - 1e-12 * (1 + abs(base))
    # the derivative along that child is >= 0 in closed form
    others = np.prod([c for k, c in enumerate(children) if k != index])
    if index == 0:
        deriv = w * float(np.prod(children[1:])) + 1 - w
    else:
        deriv = w * float(others)
    assert deriv >= 0.0


def test_node_value_arrays_and_inits():
    c = [np.array([0.5, 1.0]), np.array([0.8, 0.9]), np.array([1.1, 0.7])]
    target = c[0] * c[1] * c[2]
    np.testing.assert_allclose(node_value(c, 0.25, 0.0), target * 0.75, rtol=1e-15)  # zero init
    np.testing.assert_allclose(node_value(c, 0.25, 1.0), target + (1 - target) * 0.25, rtol=1e-15)  # identity
    np.testing.assert_allclose(node_value(c, 0.0, 7.0), target, rtol=1e-15)  # fully trained
    np.testing.assert_allclose(node_value(c, 1.0, 7.0), 7.0, rtol=1e-15)  # untrained


# ---------------------------------------------------------------------------------------------
# input variance
# ---------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=60)
@given(name=NAMES, n_steps=st.integers(1, 20), lam=LAMS)
def test_input_variance_forward_and_generated(name, n_steps, lam):
    s = make_schedule(name, n_steps)
    forward = input_variance(s, lam, "forward")
    generated = input_variance(s, lam, "generated")
    norm_sq = s.alpha**2 * lam + s.sigma**2
    np.testing.assert_allclose(forward, norm_sq, rtol=1e-15)
    assert generated[-1] == forward[-1]
    for j in range(n_steps + 1):
        t = teacher_composite(s, lam, top=n_steps, bottom=j)
        assert generated[j] == pytest.approx(norm_sq[-1] * t**2, rel=1e-12, abs=1e-300)


@settings(deadline=None, max_examples=30)
@given(name=st.sampled_from(("edm", "vp-linear")), n_steps=st.integers(1, 20), lam=st.floats(1e-3, 100.0))
def test_input_variance_generated_heun(name, n_steps, lam):
    s = make_schedule(name, n_steps)
    generated = input_variance(s, lam, "generated", solver="heun")
    assert generated[-1] == input_variance(s, lam, "forward")[-1]
    norm_sq_top = s.alpha[-1] ** 2 * lam + s.sigma[-1] ** 2
    for j in range(n_steps + 1):
        t = teacher_composite(s, lam, top=n_steps, bottom=j, solver="heun")
        assert generated[j] == pytest.approx(norm_sq_top * t**2, rel=1e-12, abs=1e-300)


def test_input_variance_generated_vp_unit_variance_shrinks():
    # vp, lam = 1: forward q_j = 1, generated q_j = T(N -> j)^2 < 1 for j < N (T < E = 1)
    s = make_schedule("vp-cosine", 6)
    generated = input_variance(s, 1.0, "generated")
    np.testing.assert_allclose(input_variance(s, 1.0, "forward"), 1.0, rtol=1e-15)
    assert np.all(generated[:-1] < 1.0)


def test_input_variance_array_lam_and_errors():
    s = make_schedule("rf", 4)
    out = input_variance(s, np.array([0.5, 2.0]), "generated")
    assert out.shape == (2, 5)
    with pytest.raises(ValueError, match="input"):
        input_variance(s, 1.0, "noise")
    with pytest.raises(ValueError, match="lam"):
        input_variance(s, -1.0)
