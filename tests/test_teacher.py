"""Teacher operators (docs/theory.md §2): every stated fact as a test, checked independently."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge import symbolic
from opmerge.schedules import SCHEDULE_NAMES, custom_schedule, make_schedule
from opmerge.teacher import (
    composite_table,
    ddim_jump,
    ddim_step,
    exact_flow,
    heun_step,
    step_operators,
    teacher_composite,
)

# lam = 0 exactly or lam >= 1e-12: subnormal lam (~1e-320) underflows E = sqrt(|v_i|^2 / |v_j|^2) to 0
# in teacher.exact_flow while T stays a (subnormal) positive number; that is floating point, not theory.
LAMS = st.one_of(st.just(0.0), st.floats(1e-12, 100.0, allow_nan=False, allow_infinity=False))
POS_LAMS = st.floats(1e-3, 100.0, allow_nan=False, allow_infinity=False)
NAMES = st.sampled_from(SCHEDULE_NAMES)
HEUN_NAMES = st.sampled_from(("edm", "vp-linear"))  # alpha_n > 0 everywhere


@st.composite
def custom_schedules(draw, positive_alpha: bool = False, max_steps: int = 12):
    """Random valid schedules: alpha non-increasing, sigma strictly increasing (so SNR decreases).

    ``sigma_0`` is 0 (final step into s = 0) or positive; with ``positive_alpha=False`` the
    noise end may have ``alpha_N = 0``.
    """
    n_steps = draw(st.integers(1, max_steps))
    alpha0 = draw(st.floats(0.2, 3.0))
    factors = draw(st.lists(st.floats(0.3, 1.0), min_size=n_steps, max_size=n_steps))
    alpha = alpha0 * np.cumprod([1.0] + factors)
    if not positive_alpha and draw(st.booleans()):
        alpha[-1] = 0.0
    sigma0 = draw(st.one_of(st.just(0.0), st.floats(0.01, 1.0)))
    increments = draw(st.lists(st.floats(0.05, 2.0), min_size=n_steps, max_size=n_steps))
    sigma = sigma0 + np.concatenate([[0.0], np.cumsum(increments)])
    return custom_schedule(alpha, sigma)


def _v(schedule, lam, n):
    """Signal-noise vector v_n = (alpha_n sqrt(lam), sigma_n)."""
    return np.array([schedule.alpha[n] * np.sqrt(lam), schedule.sigma[n]])


# ---------------------------------------------------------------------------------------------
# DDIM: projection geometry
# ---------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=150)
@given(name=NAMES, n_steps=st.integers(1, 40), lam=LAMS)
def test_ddim_step_is_projection(name, n_steps, lam):
    s = make_schedule(name, n_steps)
    a = ddim_step(s, lam)
    assert a.shape == (n_steps + 1,)
    assert a[0] == 1.0
    for n in range(1, n_steps + 1):
        v_prev, v_cur = _v(s, lam, n - 1), _v(s, lam, n)
        norm_prev, norm_cur = np.linalg.norm(v_prev), np.linalg.norm(v_cur)
        if norm_prev == 0.0:
            expected = 0.0
        else:
            theta = np.arccos(np.clip(np.dot(v_prev, v_cur) / (norm_prev * norm_cur), -1.0, 1.0))
            assert 0.0 <= theta <= np.pi / 2 + 1e-12  # both vectors lie in the closed first quadrant
            expected = norm_prev / norm_cur * np.cos(theta)
        assert a[n] == pytest.approx(expected, rel=1e-9, abs=1e-12 * (norm_prev / norm_cur + 1))
        # adjacent single jump is the same step
        assert ddim_jump(s, lam, n, n - 1) == pytest.approx(a[n], rel=1e-13, abs=1e-300)


@settings(deadline=None, max_examples=50)
@given(schedule=custom_schedules(), lam=LAMS)
def test_ddim_step_projection_custom(schedule, lam):
    a = ddim_step(schedule, lam)
    for n in range(1, schedule.steps + 1):
        v_prev, v_cur = _v(schedule, lam, n - 1), _v(schedule, lam, n)
        assert a[n] == pytest.approx(np.dot(v_prev, v_cur) / np.dot(v_cur, v_cur), rel=1e-12, abs=1e-300)


def test_ddim_step_array_lam_shape():
    s = make_schedule("vp-cosine", 5)
    lam = np.array([[0.1, 1.0, 10.0], [0.0, 2.0, 3.0]])
    out = ddim_step(s, lam)
    assert out.shape == (2, 3, 6)
    for idx in np.ndindex(lam.shape):
        np.testing.assert_array_equal(out[idx], ddim_step(s, float(lam[idx])))


# ---------------------------------------------------------------------------------------------
# DDIM = one Euler step of the probability-flow ODE (rf in t, edm in sigma)
# ---------------------------------------------------------------------------------------------
def _rf_velocity(z, t, lam):
    r"""PF-ODE velocity of rf: z_t = (1-t) x0 + t eps, dz/dt = eps_hat - x0_hat = (z - x0_hat)/t."""
    x0_hat = (1 - t) * lam / ((1 - t) ** 2 * lam + t**2) * z
    eps_hat = (z - (1 - t) * x0_hat) / t
    return eps_hat - x0_hat


@settings(deadline=None, max_examples=50)
@given(t=st.floats(0.01, 0.99), lam=LAMS, z=st.floats(-3, 3))
def test_rf_velocity_matches_general_pf_drift(t, lam, z):
    """The rf velocity is the generic PF-ODE drift f = (a'/a) z - (s s' - s^2 a'/a) score, a' = -1, s' = 1."""
    alpha, sigma, d_alpha, d_sigma = 1 - t, t, -1.0, 1.0
    score = -z / (alpha**2 * lam + sigma**2)
    drift = d_alpha / alpha * z - (sigma * d_sigma - sigma**2 * d_alpha / alpha) * score
    assert _rf_velocity(z, t, lam) == pytest.approx(drift, rel=1e-10, abs=1e-12)


@settings(deadline=None, max_examples=100)
@given(n_steps=st.integers(1, 40), lam=LAMS)
def test_ddim_is_euler_rf(n_steps, lam):
    s = make_schedule("rf", n_steps)
    a = ddim_step(s, lam)
    for n in range(1, n_steps + 1):
        t_cur, t_prev = n / n_steps, (n - 1) / n_steps
        z = 1.0
        z_euler = z - (t_cur - t_prev) * _rf_velocity(z, t_cur, lam)
        assert a[n] == pytest.approx(z_euler, rel=1e-12, abs=1e-14)


@settings(deadline=None, max_examples=100)
@given(n_steps=st.integers(1, 40), lam=LAMS)
def test_ddim_is_euler_edm(n_steps, lam):
    s = make_schedule("edm", n_steps)
    a = ddim_step(s, lam)
    for n in range(1, n_steps + 1):
        sig, sig_prev = s.sigma[n], s.sigma[n - 1]
        z = 1.0
        denoised = lam / (lam + sig**2) * z
        z_euler = z + (sig_prev - sig) * (z - denoised) / sig  # dz/dsigma = (z - D(z))/sigma
        assert a[n] == pytest.approx(z_euler, rel=1e-12, abs=1e-14)


# ---------------------------------------------------------------------------------------------
# T <= E, splitting never lowers T
# ---------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=200)
@given(name=NAMES, n_steps=st.integers(1, 40), lam=LAMS, data=st.data())
def test_composite_at_most_exact_flow(name, n_steps, lam, data):
    s = make_schedule(name, n_steps)
    t_full, e_full = teacher_composite(s, lam), exact_flow(s, lam)
    assert 0.0 <= t_full <= e_full * (1 + 1e-12)
    top = data.draw(st.integers(0, n_steps), label="top")
    bottom = data.draw(st.integers(0, top), label="bottom")
    t_sub = teacher_composite(s, lam, top=top, bottom=bottom)
    norm = lambda n: np.linalg.norm(_v(s, lam, n))  # noqa: E731
    if norm(top) == 0.0:
        # top = bottom = 0 with lam = 0: v_0 = 0, see test_exact_flow_empty_span_lam_zero
        assert top == bottom == 0 and t_sub == 1.0
        return
    e_sub = exact_flow(s, lam, top=top, bottom=bottom)
    assert 0.0 <= t_sub <= e_sub * (1 + 1e-12)
    # E(j -> i) = |v_i| / |v_j| computed directly
    assert e_sub == pytest.approx(norm(bottom) / norm(top), rel=1e-12)
    # T(j -> i) = product of the steps
    assert t_sub == pytest.approx(np.prod(ddim_step(s, lam)[bottom + 1 : top + 1]), rel=1e-12, abs=1e-300)


def test_exact_flow_empty_span():
    s = make_schedule("vp-cosine", 4)
    for n in range(5):
        assert exact_flow(s, 0.7, top=n, bottom=n) == 1.0
        assert teacher_composite(s, 0.7, top=n, bottom=n) == 1.0


def test_exact_flow_empty_span_lam_zero():
    s = make_schedule("vp-cosine", 4)
    with np.errstate(invalid="ignore"):
        assert exact_flow(s, 0.0, top=0, bottom=0) == 1.0


def test_ddim_jump_empty_span_lam_zero():
    s = make_schedule("rf", 4)
    with np.errstate(invalid="ignore"):
        assert ddim_jump(s, 0.0, 0, 0) == 1.0


@settings(deadline=None, max_examples=200)
@given(name=NAMES, n_steps=st.integers(1, 40), lam=LAMS, data=st.data())
def test_splitting_never_lowers_composite(name, n_steps, lam, data):
    s = make_schedule(name, n_steps)
    top = data.draw(st.integers(1, n_steps), label="top")
    bottom = data.draw(st.integers(0, top - 1), label="bottom")
    coarse = ddim_jump(s, lam, top, bottom)
    if top - bottom >= 2:
        mid = data.draw(st.integers(bottom + 1, top - 1), label="mid")
        split = ddim_jump(s, lam, top, mid) * ddim_jump(s, lam, mid, bottom)
    else:
        split = coarse  # a single step: the jump is the step
        assert coarse == pytest.approx(ddim_step(s, lam)[top], rel=1e-13, abs=1e-300)
    finest = teacher_composite(s, lam, top=top, bottom=bottom)
    tol = 1e-12 * exact_flow(s, lam, top=top, bottom=bottom) + 1e-300
    assert coarse <= split + tol
    assert split <= finest + tol
    # the single jump is D(j -> i) = <v_i, v_j>/|v_j|^2
    v_i, v_j = _v(s, lam, bottom), _v(s, lam, top)
    assert coarse == pytest.approx(np.dot(v_i, v_j) / np.dot(v_j, v_j), rel=1e-12, abs=1e-300)


@settings(deadline=None, max_examples=50)
@given(schedule=custom_schedules(), lam=LAMS)
def test_t_le_e_and_splitting_custom(schedule, lam):
    n_steps = schedule.steps
    for top in range(1, n_steps + 1):
        for bottom in range(top + 1):
            e = exact_flow(schedule, lam, top=top, bottom=bottom)
            t = teacher_composite(schedule, lam, top=top, bottom=bottom)
            assert t <= e * (1 + 1e-12) + 1e-300
            assert ddim_jump(schedule, lam, top, bottom) <= t * (1 + 1e-12) + 1e-300


# ---------------------------------------------------------------------------------------------
# vp schedules with lam = 1
# ---------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=100)
@given(name=st.sampled_from(("vp-cosine", "vp-linear")), n_steps=st.integers(1, 64), data=st.data())
def test_vp_unit_variance(name, n_steps, data):
    s = make_schedule(name, n_steps)
    a = ddim_step(s, 1.0)
    assert np.all(a[1:] < 1.0)
    assert np.all(a[1:] >= 0.0)
    assert exact_flow(s, 1.0) == pytest.approx(1.0, abs=1e-14)
    top = data.draw(st.integers(0, n_steps))
    bottom = data.draw(st.integers(0, top))
    assert exact_flow(s, 1.0, top=top, bottom=bottom) == pytest.approx(1.0, abs=1e-14)
    if top > bottom:
        assert teacher_composite(s, 1.0, top=top, bottom=bottom) < 1.0


# ---------------------------------------------------------------------------------------------
# order of accuracy by regression
# ---------------------------------------------------------------------------------------------
def _order(name, solver, lam, steps, bottom=0):
    """Slope of log|T_solver(N -> bottom) - E(N -> bottom)| against log N."""
    errors = []
    for n_steps in steps:
        s = make_schedule(name, n_steps)
        errors.append(abs(teacher_composite(s, lam, bottom=bottom, solver=solver) - exact_flow(s, lam, bottom=bottom)))
    errors = np.array(errors)
    assert np.all(errors > 0)
    return np.polyfit(np.log(steps), np.log(errors), 1)[0]


# E(N -> 0) does not depend on N for these schedules, so the absolute error is the right measure.
DDIM_STEPS = [8, 16, 32, 64, 128, 256]


@pytest.mark.parametrize("name", ["edm", "vp-linear"])
@pytest.mark.parametrize("lam", [1.0, 4.0, 25.0])
def test_ddim_first_order(name, lam):
    # measured slopes: edm -0.989/-0.992/-0.997, vp-linear -0.970/-0.975/-0.974
    assert _order(name, "ddim", lam, DDIM_STEPS) == pytest.approx(-1.0, abs=0.15)


@pytest.mark.parametrize("lam", [1.0, 4.0, 25.0])
def test_heun_second_order_edm(lam):
    # EDM's grid is a smooth map of n / N, so Heun is second order. N starts at 16 (N = 8 is
    # pre-asymptotic). The last step sigma_1 = 0.002 -> 0 is a plain Euler step whose relative
    # error ~ sigma_min^2 / (2 lam) = 2e-6 / lam does not shrink with N; for lam >= 1 it stays far
    # below the N <= 256 errors (>= 9e-5). Measured slopes: -2.087 / -2.081 / -2.076.
    assert _order("edm", "heun", lam, [16, 32, 64, 128, 256]) == pytest.approx(-2.0, abs=0.25)


# N that divide 1000, so the DDPM grid k_n = 1000 n / N needs no rounding
VP_LINEAR_STEPS = [10, 20, 40, 50, 100, 200, 250, 500, 1000]


@pytest.mark.parametrize("lam", [0.1, 1.0, 4.0, 100.0])
def test_heun_second_order_vp_linear_without_last_step(lam):
    # Heun's own steps on vp-linear are second order (measured N -> 1 slopes -1.87/-2.02/-2.03/-2.04) ...
    assert _order("vp-linear", "heun", lam, VP_LINEAR_STEPS, bottom=1) == pytest.approx(-2.0, abs=0.25)


def test_heun_vp_linear_last_euler_step_is_first_order():
    # ... but N -> 0 is only first order asymptotically, for a genuine reason: in EDM's variable
    # s = sigma / alpha the DDPM schedule starts like s_1^2 = (1 - abar(k_1)) / abar(k_1) ~ 1e-4 * 1000 / N,
    # i.e. s_1 ~ N^(-1/2), and the final plain Euler step into s = 0 has error ~ s_1^2 / (2 lam) ~ 1 / N.
    # Measured slope over N = 200..1000 at lam = 1: -1.04.
    slope = _order("vp-linear", "heun", 1.0, [200, 250, 500, 1000])
    assert slope == pytest.approx(-1.0, abs=0.15)
    # and that error is the last step's: Euler from s_1 to 0 against the exact flow
    s = make_schedule("vp-linear", 1000)
    s1 = s.sigma[1] / s.alpha[1]
    last_step_rel_err = 1 - np.sqrt(1.0 / (1.0 + s1**2))
    total = abs(teacher_composite(s, 1.0, solver="heun") - exact_flow(s, 1.0)) / exact_flow(s, 1.0)
    assert total == pytest.approx(last_step_rel_err, rel=0.15)


# ---------------------------------------------------------------------------------------------
# Heun: predictor = DDIM, sympy derivation = numeric code, last step = Euler
# ---------------------------------------------------------------------------------------------
def test_heun_predictor_equals_ddim_symbolically():
    diff = symbolic.heun_predictor_expression().result - symbolic.ddim_step_expression().result
    assert sympy.simplify(diff) == 0


@settings(deadline=None, max_examples=50)
@given(schedule=custom_schedules(positive_alpha=True), lam=LAMS)
def test_heun_predictor_expression_equals_numeric_ddim(schedule, lam):
    predictor = sympy.lambdify(symbolic.step_symbols(), symbolic.heun_predictor_expression().result, "numpy")
    a, sig = schedule.alpha, schedule.sigma
    expected = ddim_step(schedule, lam)[1:]
    got = np.array([predictor(a[n - 1], a[n], sig[n - 1], sig[n], lam) for n in range(1, schedule.steps + 1)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)


def _heun_from_sympy(schedule, lam):
    general, final = symbolic.lambdify_heun(False), symbolic.lambdify_heun(True)
    a, sig = schedule.alpha, schedule.sigma
    out = [1.0]
    for n in range(1, schedule.steps + 1):
        fn = final if sig[n - 1] == 0 else general
        out.append(fn(a[n - 1], a[n], sig[n - 1], sig[n], lam))
    return np.array(out, dtype=float)


@settings(deadline=None, max_examples=100)
@given(schedule=custom_schedules(positive_alpha=True), lam=POS_LAMS)
def test_heun_sympy_equals_numeric_custom(schedule, lam):
    np.testing.assert_allclose(heun_step(schedule, lam), _heun_from_sympy(schedule, lam), rtol=1e-11, atol=1e-300)


@settings(deadline=None, max_examples=50)
@given(name=HEUN_NAMES, n_steps=st.integers(1, 40), lam=POS_LAMS)
def test_heun_sympy_equals_numeric_named(name, n_steps, lam):
    s = make_schedule(name, n_steps)
    np.testing.assert_allclose(heun_step(s, lam), _heun_from_sympy(s, lam), rtol=1e-11, atol=1e-300)


@settings(deadline=None, max_examples=50)
@given(schedule=custom_schedules(), lam=LAMS)
def test_ddim_sympy_equals_numeric(schedule, lam):
    fn = symbolic.lambdify_ddim()
    a, sig = schedule.alpha, schedule.sigma
    got = np.array([fn(a[n - 1], a[n], sig[n - 1], sig[n], lam) for n in range(1, schedule.steps + 1)])
    np.testing.assert_allclose(ddim_step(schedule, lam)[1:], got, rtol=1e-12, atol=1e-300)


@settings(deadline=None, max_examples=50)
@given(name=HEUN_NAMES, n_steps=st.integers(1, 40), lam=LAMS)
def test_heun_last_step_is_euler(name, n_steps, lam):
    # sigma_0 = 0 for edm and vp-linear: the last Heun step is the plain Euler step = DDIM's step
    s = make_schedule(name, n_steps)
    with np.errstate(divide="ignore", invalid="ignore"):  # lam = 0: see test_heun_lam_zero_no_warning
        h = heun_step(s, lam)
    assert h[1] == pytest.approx(ddim_step(s, lam)[1], rel=1e-13, abs=1e-300)


def test_heun_lam_zero_is_exact():
    # lam = 0: z = sigma eps, the flow is z -> sigma'/sigma z and Heun reproduces it exactly
    s = make_schedule("edm", 6)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = heun_step(s, 0.0)
    expected = np.concatenate([[1.0], s.sigma[:-1] / s.sigma[1:]])
    np.testing.assert_allclose(h, expected, rtol=1e-13, atol=1e-300)


def test_heun_lam_zero_no_warning():
    s = make_schedule("edm", 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        heun_step(s, 0.0)


def test_step_operators_dispatch_and_composite_table():
    s = make_schedule("edm", 7)
    lam = np.array([0.5, 3.0])
    np.testing.assert_array_equal(step_operators(s, lam, "ddim"), ddim_step(s, lam))
    np.testing.assert_array_equal(step_operators(s, lam, "heun"), heun_step(s, lam))
    for solver in ("ddim", "heun"):
        table = composite_table(step_operators(s, lam, solver))
        for j in range(8):
            np.testing.assert_allclose(table[..., j], teacher_composite(s, lam, top=7, bottom=j, solver=solver), rtol=1e-13)
    with pytest.raises(ValueError, match="solver"):
        step_operators(s, 1.0, "euler")


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vp-cosine", "rf"])
def test_heun_rejects_alpha_zero(name):
    s = make_schedule(name, 5)
    with pytest.raises(ValueError, match="alpha"):
        heun_step(s, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        teacher_composite(s, 1.0, solver="heun")


def test_heun_rejects_alpha_zero_custom():
    s = custom_schedule([1.0, 0.5, 0.0], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="alpha"):
        heun_step(s, 1.0)


_LAM_FUNCS = [
    lambda s, lam: ddim_step(s, lam),
    lambda s, lam: heun_step(s, lam),
    lambda s, lam: exact_flow(s, lam),
    lambda s, lam: teacher_composite(s, lam),
    lambda s, lam: ddim_jump(s, lam, 3, 1),
]


@pytest.mark.parametrize("func", _LAM_FUNCS)
@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf, -np.inf, [1.0, -0.5], [1.0, np.nan]])
def test_bad_lam_value(func, bad):
    s = make_schedule("edm", 4)
    with pytest.raises(ValueError, match="lam"):
        func(s, bad)


@pytest.mark.parametrize("func", _LAM_FUNCS)
@pytest.mark.parametrize("bad", ["1.0", "abc", None])
def test_bad_lam_type(func, bad):
    s = make_schedule("edm", 4)
    with pytest.raises(TypeError, match="lam"):
        func(s, bad)


def test_bad_span():
    s = make_schedule("edm", 4)
    with pytest.raises(ValueError, match="bottom <= top"):
        ddim_jump(s, 1.0, 1, 3)
    with pytest.raises(ValueError, match="N = 4"):
        exact_flow(s, 1.0, top=5)
    with pytest.raises(TypeError, match="top"):
        teacher_composite(s, 1.0, top=2.0)


def test_bad_schedule_type():
    with pytest.raises(TypeError, match="Schedule"):
        ddim_step("edm", 1.0)
