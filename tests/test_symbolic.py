"""Symbolic derivations (opmerge.symbolic): closed forms, LaTeX, and agreement with the numeric model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge import symbolic
from opmerge.model import node_value, retention

alpha_prev, alpha, sigma_prev, sigma, lam = symbolic.step_symbols()


def _is_zero(expr) -> bool:
    return sympy.simplify(expr) == 0


def test_step_symbols_positive():
    assert [s.name for s in symbolic.step_symbols()] == ["alpha_prev", "alpha", "sigma_prev", "sigma", "lam"]
    assert all(s.is_positive for s in symbolic.step_symbols())


def test_ddim_closed_form():
    d = symbolic.ddim_step_expression()
    assert _is_zero(d.result - (alpha_prev * alpha * lam + sigma_prev * sigma) / (alpha**2 * lam + sigma**2))
    # the projection form <v', v> / |v|^2
    v_prev = sympy.Matrix([alpha_prev * sympy.sqrt(lam), sigma_prev])
    v_cur = sympy.Matrix([alpha * sympy.sqrt(lam), sigma])
    assert _is_zero(d.result - v_prev.dot(v_cur) / v_cur.dot(v_cur))


def test_ddim_geometric_form():
    # A = |v'|/|v| cos(theta), cos(theta) = <v', v>/(|v'| |v|)
    d = symbolic.ddim_step_expression()
    norm_prev = sympy.sqrt(alpha_prev**2 * lam + sigma_prev**2)
    norm_cur = sympy.sqrt(alpha**2 * lam + sigma**2)
    cos_theta = (alpha_prev * alpha * lam + sigma_prev * sigma) / (norm_prev * norm_cur)
    assert _is_zero(d.result - norm_prev / norm_cur * cos_theta)


def test_heun_predictor_is_ddim():
    diff = symbolic.heun_predictor_expression().result - symbolic.ddim_step_expression().result
    assert sympy.simplify(diff) == 0


def test_heun_closed_form():
    d = symbolic.heun_step_expression()
    s, sp = sigma / alpha, sigma_prev / alpha_prev
    e = (lam + s * sp) / (lam + s**2)
    closed = alpha_prev / alpha * (1 + (sp - s) / 2 * (s / (lam + s**2) + e * sp / (lam + sp**2)))
    assert _is_zero(d.result - closed)
    assert d.result.free_symbols == {alpha_prev, alpha, sigma_prev, sigma, lam}


def test_heun_final_step_closed_form():
    d = symbolic.heun_step_expression(final_step=True)
    assert _is_zero(d.result - alpha_prev / alpha * lam / (lam + (sigma / alpha) ** 2))
    assert sigma_prev not in d.result.free_symbols
    # the general Heun step does not reduce to it at sigma' = 0 (the corrector would divide by s' = 0
    # in EDM; the formula's limit is a different number), which is why EDM uses Euler there
    general_at_zero = symbolic.heun_step_expression().result.subs(sigma_prev, 0)
    assert not _is_zero(general_at_zero - d.result)
    # the final Euler step is DDIM's step into sigma' = 0
    assert _is_zero(d.result - symbolic.ddim_step_expression().result.subs(sigma_prev, 0))


def test_heun_is_second_order_locally():
    # Taylor check in one step on a smooth schedule: alpha = 1 (EDM), s' = s - h. The exact flow
    # is sqrt(lam + s'^2)/sqrt(lam + s^2); Heun's local error is O(h^3), Euler's O(h^2).
    h, s = sympy.symbols("h s", positive=True)
    sub = {alpha: 1, alpha_prev: 1, sigma: s, sigma_prev: s - h}
    exact = sympy.sqrt(lam + (s - h) ** 2) / sympy.sqrt(lam + s**2)
    heun_err = sympy.series(symbolic.heun_step_expression().result.subs(sub) - exact, h, 0, 3).removeO()
    euler_err = sympy.series(symbolic.ddim_step_expression().result.subs(sub) - exact, h, 0, 3).removeO()
    assert sympy.simplify(heun_err) == 0
    assert sympy.simplify(euler_err) != 0


def test_exact_flow_result_and_residual():
    d = symbolic.exact_flow_expression()
    labels = [label for label, _ in d.steps]
    residual = dict(d.steps)["dz/dt - f(z(t), t)"]
    assert residual == 0
    assert "PF-ODE drift f(z, t)" in labels
    # E(t0 -> t) = |v(t)| / |v(t0)|, equal to 1 at t = t0
    t, t0 = symbolic.T, symbolic.T0
    assert sympy.simplify(d.result.subs(t, t0) - 1) == 0
    a, s = sympy.Function("alpha"), sympy.Function("sigma")
    expected = sympy.sqrt(a(t) ** 2 * lam + s(t) ** 2) / sympy.sqrt(a(t0) ** 2 * lam + s(t0) ** 2)
    assert _is_zero(d.result - expected)


def test_exact_flow_concrete_schedule():
    # re-check the PF-ODE claim on a concrete schedule (vp-cosine in continuous time)
    t, c = sympy.symbols("t c", positive=True)
    a, s = sympy.cos(sympy.pi * t / 2), sympy.sin(sympy.pi * t / 2)
    z = c * sympy.sqrt(a**2 * lam + s**2)
    score = -z / (a**2 * lam + s**2)
    drift = sympy.diff(a, t) / a * z - (s * sympy.diff(s, t) - s**2 * sympy.diff(a, t) / a) * score
    assert sympy.simplify(sympy.diff(z, t) - drift) == 0


def test_student_flow_closed_form():
    d = symbolic.student_flow_expression()
    closed = symbolic.P + (symbolic.A0 - symbolic.P) * sympy.exp(-2 * symbolic.ETA * symbolic.Q * symbolic.TAU)
    assert _is_zero(d.result - closed)
    # it solves the ODE with the initial condition
    a = d.result
    rhs = -symbolic.ETA * 2 * symbolic.Q * (a - symbolic.P)
    assert _is_zero(sympy.diff(a, symbolic.TAU) - rhs)
    assert _is_zero(a.subs(symbolic.TAU, 0) - symbolic.A0)


def test_student_gd_closed_form():
    d = symbolic.student_gd_expression()
    closed = symbolic.P + (symbolic.A0 - symbolic.P) * (1 - 2 * symbolic.ETA * symbolic.Q) ** symbolic.K
    assert _is_zero(d.result - closed)
    a = d.result
    assert _is_zero(a.subs(symbolic.K, 0) - symbolic.A0)
    step = a - symbolic.ETA * 2 * symbolic.Q * (a - symbolic.P)
    assert _is_zero(a.subs(symbolic.K, symbolic.K + 1) - step)


def test_warm_init_identity():
    d = symbolic.warm_init_identity()
    closed = symbolic.C1 * (symbolic.W * symbolic.P_REST + 1 - symbolic.W)
    assert sympy.expand(d.result - closed) == 0
    general = symbolic.P + (symbolic.A0 - symbolic.P) * symbolic.R
    substituted = general.subs({symbolic.A0: symbolic.C1, symbolic.P: symbolic.C1 * symbolic.P_REST, symbolic.R: 1 - symbolic.W})
    assert sympy.expand(substituted - d.result) == 0


def test_derive_all_order_and_types():
    derivations = symbolic.derive_all()
    names = [d.name for d in derivations]
    assert names == [
        "DDIM step",
        "Heun predictor (Euler)",
        "Heun step",
        "Heun final step (Euler into s' = 0)",
        "Exact probability flow",
        "Student gradient flow",
        "Student gradient descent",
        "Warm-init node value",
    ]
    for d in derivations:
        assert isinstance(d, symbolic.Derivation)
        assert isinstance(d.result, sympy.Expr)
        assert isinstance(d.steps, tuple) and d.steps
        for label, expr in d.steps:
            assert isinstance(label, str) and isinstance(expr, sympy.Basic)
    # frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        derivations[0].name = "x"
    # cached: the same objects come back
    assert symbolic.derive_all()[0] is derivations[0]


def test_render_latex():
    text = symbolic.render_latex(symbolic.derive_all())
    assert r"\frac" in text
    assert text.count(r"\begin{align*}") == len(symbolic.derive_all())
    assert text.count(r"\end{align*}") == len(symbolic.derive_all())
    assert r"\lambda" in text and r"\alpha'" in text
    assert symbolic.render_latex() == text
    block = symbolic.ddim_step_expression().latex()
    assert block.startswith(r"\paragraph{DDIM step}")
    assert r"\text{result} &: \frac" in block
    # every step is a "label: expr" row
    assert block.count("&:") == len(symbolic.ddim_step_expression().steps) + 1


def test_latex_text_escapes_specials():
    d = symbolic.Derivation(name="a_b & c", statement="|v|^2 < 1", steps=(("x_1", sympy.Integer(1)),), result=sympy.Integer(2))
    out = d.latex()
    assert r"a\_b \& c" in out and r"\textbar{}" in out and r"\textasciicircum{}" in out and r"x\_1" in out


# ---------------------------------------------------------------------------------------------
# numeric agreement with opmerge.model
# ---------------------------------------------------------------------------------------------
_flow_fn = None
_gd_fn = None


def _flow():
    global _flow_fn
    if _flow_fn is None:
        args = (symbolic.P, symbolic.A0, symbolic.ETA, symbolic.Q, symbolic.TAU)
        _flow_fn = sympy.lambdify(args, symbolic.student_flow_expression().result, "numpy")
    return _flow_fn


def _gd():
    global _gd_fn
    if _gd_fn is None:
        args = (symbolic.P, symbolic.A0, symbolic.ETA, symbolic.Q, symbolic.K)
        _gd_fn = sympy.lambdify(args, symbolic.student_gd_expression().result, "numpy")
    return _gd_fn


@settings(deadline=None, max_examples=100)
@given(
    children=st.lists(st.floats(0.0, 2.0), min_size=2, max_size=5),
    a0=st.floats(-2.0, 2.0),
    eta=st.floats(0.01, 2.0),
    tau=st.floats(0.0, 3.0),
    q=st.floats(0.01, 10.0),
)
def test_student_flow_matches_model(children, a0, eta, tau, q):
    target = float(np.prod(children))
    r = retention("flow", q, eta_tau=eta * tau)
    assert float(r) == pytest.approx(np.exp(-2 * eta * tau * q), rel=1e-13)
    expected = _flow()(target, a0, eta, q, tau)
    assert float(node_value(children, r, a0)) == pytest.approx(expected, rel=1e-11, abs=1e-12)


@settings(deadline=None, max_examples=100)
@given(
    children=st.lists(st.floats(0.0, 2.0), min_size=2, max_size=5),
    a0=st.floats(-2.0, 2.0),
    q=st.floats(0.01, 10.0),
    frac=st.floats(0.0, 0.99),
    steps=st.integers(1, 50),
)
def test_student_gd_matches_model(children, a0, q, frac, steps):
    lr = frac / q  # 2 lr q = 2 frac < 2: stable
    target = float(np.prod(children))
    r = retention("gd", q, lr=lr, gd_steps=steps)
    expected = _gd()(target, a0, lr, q, steps)
    assert float(node_value(children, r, a0)) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@settings(deadline=None, max_examples=100)
@given(children=st.lists(st.floats(0.0, 3.0), min_size=2, max_size=5), r=st.floats(0.0, 1.0))
def test_warm_identity_matches_model(children, r):
    fn = sympy.lambdify((symbolic.C1, symbolic.P_REST, symbolic.W), symbolic.warm_init_identity().result, "numpy")
    c1, rest = children[0], float(np.prod(children[1:]))
    assert float(node_value(children, r, c1)) == pytest.approx(fn(c1, rest, 1 - r), rel=1e-12, abs=1e-12)


def test_lambdify_helpers_match_step_expressions():
    point = (0.9, 0.7, 0.3, 0.8, 1.7)
    subs = dict(zip(symbolic.step_symbols(), point))
    assert symbolic.lambdify_ddim()(*point) == pytest.approx(float(symbolic.ddim_step_expression().result.subs(subs)), rel=1e-14)
    assert symbolic.lambdify_heun()(*point) == pytest.approx(float(symbolic.heun_step_expression().result.subs(subs)), rel=1e-14)
    assert symbolic.lambdify_heun(True)(*point) == pytest.approx(
        float(symbolic.heun_step_expression(True).result.subs(subs)), rel=1e-14
    )
