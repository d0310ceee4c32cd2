"""Schedules (docs/theory.md §1): exact values, monotone SNR, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge.schedules import SCHEDULE_NAMES, Schedule, custom_schedule, make_schedule, signal_noise_norm_sq


# ---------------------------------------------------------------------------------------------
# exact values at small N, computed by hand from docs/theory.md §1
# ---------------------------------------------------------------------------------------------
def test_vp_cosine_n2_values():
    s = make_schedule("vp-cosine", 2)
    r = math.sqrt(0.5)
    np.testing.assert_allclose(s.alpha, [1.0, r, 0.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(s.sigma, [0.0, r, 1.0], rtol=1e-15, atol=0)


def test_vp_cosine_n3_values():
    s = make_schedule("vp-cosine", 3)
    np.testing.assert_allclose(s.alpha, [1.0, math.sqrt(3) / 2, 0.5, 0.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(s.sigma, [0.0, 0.5, math.sqrt(3) / 2, 1.0], rtol=1e-15, atol=0)


@pytest.mark.parametrize("n_steps", [1, 2, 3, 5, 8, 64])
def test_vp_cosine_endpoints_exactly_zero(n_steps):
    s = make_schedule("vp-cosine", n_steps)
    # exact zeros, not 6e-17
    assert s.alpha[-1] == 0.0
    assert s.sigma[0] == 0.0
    assert s.alpha[0] == 1.0
    assert s.sigma[-1] == 1.0
    n = np.arange(n_steps + 1)
    inner = slice(1, n_steps)
    np.testing.assert_allclose(s.alpha[inner], np.cos(np.pi * n[inner] / (2 * n_steps)), rtol=1e-15)
    np.testing.assert_allclose(s.sigma[inner], np.sin(np.pi * n[inner] / (2 * n_steps)), rtol=1e-15)


def _ddpm_alpha_bar(k):
    """alpha_bar(k) computed independently: cumprod of (1 - beta), alpha_bar(0) = 1."""
    betas = np.linspace(1e-4, 0.02, 1000)
    cum = np.cumprod(1.0 - betas)
    k = np.asarray(k)
    return np.where(k == 0, 1.0, cum[np.maximum(k, 1) - 1])


@pytest.mark.parametrize(
    "n_steps, ks",
    [
        (1, [0, 1000]),
        (2, [0, 500, 1000]),
        (3, [0, 333, 667, 1000]),
        (8, [0, 125, 250, 375, 500, 625, 750, 875, 1000]),
        # 62.5 n: halves round to even
        (16, [0, 62, 125, 188, 250, 312, 375, 438, 500, 562, 625, 688, 750, 812, 875, 938, 1000]),
    ],
)
def test_vp_linear_values(n_steps, ks):
    s = make_schedule("vp-linear", n_steps)
    ab = _ddpm_alpha_bar(np.array(ks))
    np.testing.assert_allclose(s.alpha, np.sqrt(ab), rtol=1e-14, atol=0)
    np.testing.assert_allclose(s.sigma, np.sqrt(1.0 - ab), rtol=1e-12, atol=0)
    assert s.alpha[0] == 1.0 and s.sigma[0] == 0.0


def test_vp_linear_first_beta_by_hand():
    # k_1 = 1 for N = 1000: alpha_bar(1) = 1 - 1e-4
    s = make_schedule("vp-linear", 1000)
    assert s.alpha[1] == pytest.approx(math.sqrt(1 - 1e-4), rel=1e-15)
    assert s.sigma[1] == pytest.approx(0.01, rel=1e-10)
    # k_2 = 2: (1 - 1e-4)(1 - beta_2), beta_2 = 1e-4 + (0.02 - 1e-4)/999
    beta2 = 1e-4 + (0.02 - 1e-4) / 999
    assert s.alpha[2] ** 2 == pytest.approx((1 - 1e-4) * (1 - beta2), rel=1e-14)


@pytest.mark.parametrize("n_steps", [1, 2, 4, 5])
def test_rf_values(n_steps):
    s = make_schedule("rf", n_steps)
    t = np.array([n / n_steps for n in range(n_steps + 1)])
    np.testing.assert_array_equal(s.alpha, 1.0 - t)
    np.testing.assert_array_equal(s.sigma, t)
    assert s.alpha[-1] == 0.0 and s.sigma[0] == 0.0


def test_rf_n4_by_hand():
    s = make_schedule("rf", 4)
    assert s.alpha.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert s.sigma.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_edm_n1():
    s = make_schedule("edm", 1)
    assert s.sigma.tolist() == [0.0, 80.0]
    assert s.alpha.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("n_steps", [2, 3, 7, 18, 64])
def test_edm_endpoints_and_formula(n_steps):
    s = make_schedule("edm", n_steps)
    assert s.sigma[0] == 0.0
    np.testing.assert_array_equal(s.alpha, np.ones(n_steps + 1))
    assert s.sigma[1] == pytest.approx(0.002, rel=1e-12)
    assert s.sigma[-1] == pytest.approx(80.0, rel=1e-12)
    rho = 7.0
    lo, hi = 0.002 ** (1 / rho), 80.0 ** (1 / rho)
    expected = [(hi + (n_steps - n) / (n_steps - 1) * (lo - hi)) ** rho for n in range(1, n_steps + 1)]
    np.testing.assert_allclose(s.sigma[1:], expected, rtol=1e-13)


def test_edm_n2_by_hand():
    s = make_schedule("edm", 2)
    np.testing.assert_allclose(s.sigma, [0.0, 0.002, 80.0], rtol=1e-12)


def test_edm_n3_midpoint_by_hand():
    s = make_schedule("edm", 3)
    mid = ((0.002 ** (1 / 7) + 80.0 ** (1 / 7)) / 2) ** 7
    assert s.sigma[2] == pytest.approx(mid, rel=1e-13)


def test_signal_noise_norm_sq():
    s = make_schedule("rf", 2)
    np.testing.assert_allclose(signal_noise_norm_sq(s, 3.0), [3.0, 0.25 * 3 + 0.25, 1.0])


def test_steps_property_and_equality():
    s = make_schedule("vp-cosine", 5)
    assert s.steps == 5
    assert s == make_schedule("vp-cosine", 5)
    assert hash(s) == hash(make_schedule("vp-cosine", 5))
    assert s != make_schedule("vp-cosine", 6)
    assert not s.alpha.flags.writeable


# ---------------------------------------------------------------------------------------------
# SNR strictly decreasing
# ---------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=200)
@given(name=st.sampled_from(SCHEDULE_NAMES), n_steps=st.integers(1, 64))
def test_snr_strictly_decreasing(name, n_steps):
    s = make_schedule(name, n_steps)
    assert s.steps == n_steps
    assert np.all(s.alpha >= 0)
    assert np.all(s.sigma[1:] > 0)
    with np.errstate(divide="ignore"):
        snr = np.where(s.sigma > 0, s.alpha / np.where(s.sigma > 0, s.sigma, 1.0), np.inf)
    assert np.all(np.diff(snr) < 0)
    # the class's own snr() agrees
    np.testing.assert_array_equal(s.snr(), snr)


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
def test_custom_ok():
    s = custom_schedule([1.0, 0.8, 0.3], [0.0, 0.5, 1.0])
    assert s.name == "custom" and s.steps == 2


def test_custom_non_monotone_snr():
    with pytest.raises(ValueError, match="signal-to-noise"):
        custom_schedule([1.0, 0.5, 0.6], [0.0, 0.5, 0.5])


def test_custom_constant_snr_rejected():
    # strictly decreasing: equal SNR at two points is an error
    with pytest.raises(ValueError, match="strictly decreasing"):
        custom_schedule([1.0, 0.5, 0.25], [0.1, 0.5, 0.25])


def test_custom_negative_alpha():
    with pytest.raises(ValueError, match="alpha"):
        custom_schedule([1.0, 0.5, -0.1], [0.0, 0.5, 1.0])


@pytest.mark.parametrize("bad", [0.0, -0.5])
def test_custom_sigma_not_positive(bad):
    with pytest.raises(ValueError, match="sigma"):
        custom_schedule([1.0, 0.5, 0.2], [0.0, bad, 1.0])


def test_custom_negative_sigma0():
    with pytest.raises(ValueError, match="sigma"):
        custom_schedule([1.0, 0.5], [-0.1, 1.0])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_custom_nan_inf(bad):
    with pytest.raises(ValueError, match="NaN"):
        custom_schedule([1.0, bad, 0.2], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        custom_schedule([1.0, 0.5, 0.2], [0.0, 0.5, bad])


def test_custom_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        custom_schedule([1.0, 0.5, 0.2], [0.0, 1.0])


def test_custom_too_short():
    with pytest.raises(ValueError, match="N >= 1"):
        custom_schedule([1.0], [0.0])


def test_custom_not_1d():
    with pytest.raises(ValueError, match="1-D"):
        custom_schedule([[1.0, 0.5]], [[0.0, 1.0]])


def test_custom_all_zero_data_point():
    with pytest.raises(ValueError, match="alpha\\[0\\] and sigma\\[0\\]"):
        custom_schedule([0.0, 0.0], [0.0, 1.0])


@pytest.mark.parametrize("n_steps", [0, -3])
def test_make_schedule_too_few_steps(n_steps):
    with pytest.raises(ValueError, match="steps must be >= 1"):
        make_schedule("rf", n_steps)


def test_make_schedule_unknown_name():
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        make_schedule("cosine", 4)


@pytest.mark.parametrize("steps", [2.0, "4", True, None])
def test_make_schedule_non_int_steps(steps):
    with pytest.raises(TypeError, match="steps must be an int"):
        make_schedule("rf", steps)


def test_make_schedule_numpy_int_ok():
    assert make_schedule("rf", np.int64(3)).steps == 3


def test_make_schedule_non_str_name():
    with pytest.raises(TypeError, match="name"):
        make_schedule(3, 4)


def test_schedule_direct_construction_validates():
    with pytest.raises(ValueError, match="signal-to-noise"):
        Schedule(alpha=np.array([1.0, 1.0]), sigma=np.array([1.0, 1.0]))
