"""Readout (THEORY.md §7): effective gains with intervals, residual shares, Gaussian and sample W2."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from opmerge.schedules import make_schedule  # noqa: E402

from opmerge.experiments.gaussian import make_gaussian  # noqa: E402
from opmerge.experiments.readout import gain_regression, gaussian_w2, read_out, sample_w2  # noqa: E402
from opmerge.experiments.teacher import GaussianTeacher  # noqa: E402

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
