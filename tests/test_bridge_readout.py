"""Readout (docs/theory.md §7, docs/bridge.md §3): effective gains with intervals, residual shares, Gaussian and sample W2."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from opmerge.schedules import make_schedule  # noqa: E402

from opmerge.experiments.gaussian import make_gaussian  # noqa: E402
from opmerge.experiments.readout import gain_regression, gaussian_w2, read_out, sample_w2  # noqa: E402
from opmerge.experiments.teacher import GaussianTeacher  # noqa: E402
from scipy import stats  # noqa: E402

pytestmark = pytest.mark.bridge

def _teacher(rotated=True):
    return GaussianTeacher(make_schedule("vp-cosine", 4), make_gaussian([0.2, 1.0, 4.0], rotated=rotated, seed=9))


def test_gain_of_known_linear_map_within_interval():
    teacher = _teacher()
    u = torch.as_tensor(teacher.data.basis())
    # a linear map with cross-direction leakage: y = z A^T, A = U (D + C) U^T
    inner = torch.tensor([[0.7, 0.2, -0.1], [0.05, 1.3, 0.3], [-0.2, 0.1, 0.4]], dtype=torch.float64)
    a = u @ inner @ u.T
    readout = read_out(lambda z: z @ a.T, teacher, 20000, torch.Generator().manual_seed(3), level=0.999, n_ot=0)
    truth = torch.diagonal(inner).numpy()
    assert np.all(readout.gain_low <= truth) and np.all(truth <= readout.gain_high)
    assert np.all(readout.gain_high - readout.gain_low < 0.05)
    assert np.all(readout.residual > 0.001)  # leakage from other directions is not explained by g_i z_i
    np.testing.assert_allclose(readout.nonlinear_residual, 0.0, atol=1e-12)  # but it is linear


def test_residual_zero_for_diagonal_linear_and_positive_for_tanh():
    teacher = _teacher()
    data = teacher.data
    gains = torch.tensor([0.5, 1.5, -0.8], dtype=torch.float64)
    linear = lambda z: data.from_eigen(data.to_eigen(z) * gains)  # noqa: E731
    readout = read_out(linear, teacher, 4000, torch.Generator().manual_seed(1), n_ot=64)
    np.testing.assert_allclose(readout.gain, gains.numpy(), rtol=1e-12)
    np.testing.assert_allclose(readout.residual, 0.0, atol=1e-12)
    np.testing.assert_allclose(readout.gain_se, 0.0, atol=1e-12)
    nonlinear = lambda z: data.from_eigen(torch.tanh(2.0 * data.to_eigen(z)))  # noqa: E731
    readout = read_out(nonlinear, teacher, 20000, torch.Generator().manual_seed(2), n_ot=0)
    assert np.all(readout.residual > 0.02) and np.all(readout.nonlinear_residual > 0.02)
    # its gain is E[c tanh(2c)] / E[c^2] (Monte Carlo reference with an independent sample)
    c = np.random.default_rng(0).standard_normal(2_000_000)
    for i, sd in enumerate(np.sqrt(data.lam * 0 + 1.0)):  # z_N of vp-cosine is pure noise: unit variance
        reference = np.mean(sd * c * np.tanh(2 * sd * c)) / sd**2
        assert readout.gain_low[i] - 0.01 <= reference <= readout.gain_high[i] + 0.01


def test_interval_coverage_for_noisy_linear_map():
    teacher = _teacher(rotated=False)
    hits = 0
    for seed in range(60):
        gen = torch.Generator().manual_seed(100 + seed)
        noise_gen = torch.Generator().manual_seed(1000 + seed)
        f = lambda z: 0.9 * z + 0.5 * torch.randn(z.shape, generator=noise_gen, dtype=z.dtype)  # noqa: E731
        r = read_out(f, teacher, 500, gen, level=0.9, n_ot=0)
        hits += int(np.sum((r.gain_low <= 0.9) & (0.9 <= r.gain_high)))
    assert 0.8 <= hits / 180 <= 0.97  # nominal 0.9


def test_gaussian_w2_closed_forms():
    assert gaussian_w2([0.0], [[4.0]], [0.0], [[1.0]]) == pytest.approx(1.0, abs=1e-14)
    assert gaussian_w2([1.0], [[1.0]], [4.0], [[1.0]]) == pytest.approx(3.0, abs=1e-14)
    a, b = np.array([0.5, 2.0, 9.0]), np.array([1.0, 1.0, 4.0])
    expected = np.sqrt(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    u = make_gaussian([1, 1, 1], rotated=True, seed=2).basis()
    assert gaussian_w2(np.zeros(3), u @ np.diag(a) @ u.T, np.zeros(3), u @ np.diag(b) @ u.T) == pytest.approx(expected, rel=1e-10)
    assert gaussian_w2(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2)) == pytest.approx(0.0, abs=1e-7)


def test_sample_w2_exact_transport():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    assert sample_w2(x, x[::-1].copy()) == pytest.approx(0.0, abs=1e-7)
    shift = np.array([0.3, -0.4, 0.0])
    assert sample_w2(x, x + shift) == pytest.approx(0.5, abs=1e-10)
    # 1-D: optimal transport pairs the order statistics
    a, b = rng.standard_normal(300), 2.0 * rng.standard_normal(300)
    assert sample_w2(a, b) == pytest.approx(np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2)), rel=1e-12)


def test_readout_w2_teacher_zero_for_teacher_and_gain_regression_checks():
    teacher = _teacher()
    r = read_out(lambda z: teacher.sample(z), teacher, 3000, torch.Generator().manual_seed(0), predicted=teacher.composite_gains(), n_ot=128)
    assert r.w2_gaussian["teacher"] < 1e-6 and r.w2_sample["teacher"] < 1e-7 and r.w2_gaussian["predicted"] < 1e-6  # sqrt of rounding
    assert r.w2_gaussian["data"] > 0.01
    with pytest.raises(ValueError, match="level"):
        gain_regression(np.zeros((5, 1)), np.zeros((5, 1)), level=1.5)


def _hc1_slope_se(c, y):
    """Independent route: White/HC1 sandwich of OLS y = b0 + b1 c in matrix form, (X'X)^-1 X' diag(e^2) X (X'X)^-1 n/(n-k)."""
    n = c.size
    x = np.column_stack([np.ones(n), c])
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    e = y - x @ beta
    meat = x.T @ (x * e[:, None] ** 2)
    cov = xtx_inv @ meat @ xtx_inv * n / (n - 2)
    return beta[1], np.sqrt(cov[1, 1])


@pytest.mark.parametrize("level", [0.8, 0.99])
def test_gain_interval_is_hc1_sandwich_with_the_two_sided_normal_quantile(level):
    """Small n (12), heteroskedastic noise: the HC1 factor n/(n-2) = 1.2 and the quantile are visible."""
    rng = np.random.default_rng(5)
    n = 12
    c = rng.standard_normal((n, 2))
    y = 0.7 * c + rng.standard_normal((n, 2)) * (0.1 + np.abs(c))
    stats_ = gain_regression(c, y, level)
    quant = stats.norm.ppf(0.5 + level / 2)
    for i in range(2):
        slope, se = _hc1_slope_se(c[:, i], y[:, i])
        assert stats_["gain"][i] == pytest.approx(slope, rel=1e-12)
        assert stats_["gain_se"][i] == pytest.approx(se, rel=1e-10)
        assert stats_["gain_low"][i] == pytest.approx(slope - quant * se, rel=1e-10)
        assert stats_["gain_high"][i] == pytest.approx(slope + quant * se, rel=1e-10)


def test_per_direction_w2_to_the_data_is_a_difference_of_standard_deviations():
    """A sampler that returns k * x0 with x0 ~ N(0, Sigma): the 1-D W2 to the data is |k - 1| sqrt(lam_i).

    Monte Carlo: the sample sd of n = 40000 draws has relative error about 1/sqrt(2n) = 0.35%,
    so the tolerance 0.02 sqrt(lam_i) is about 6 standard errors; a dropped square root would give
    |k sqrt(lam) - lam|, off by 0.25..6 here."""
    teacher = GaussianTeacher(make_schedule("vp-cosine", 4), make_gaussian([0.25, 4.0, 9.0], rotated=True, seed=3))
    data = teacher.data
    for k in (1.0, 1.5):
        gen = torch.Generator().manual_seed(11)
        sampler = lambda z: k * teacher.exact_flow(z)  # noqa: E731  exact flow: N(0, Sigma) from z_N
        r = read_out(sampler, teacher, 40000, gen, n_ot=0)
        error = np.abs(np.asarray(r.w2_direction["data"]) - abs(k - 1.0) * np.sqrt(data.lam))
        assert np.all(error <= 0.02 * np.sqrt(data.lam)), error
        # and the full Gaussian W2 to the data: |k - 1| sqrt(tr Sigma), same tolerance scale
        assert r.w2_gaussian["data"] == pytest.approx(abs(k - 1.0) * np.sqrt(data.lam.sum()), abs=0.03 * np.sqrt(data.lam.sum()))
