"""The torch teacher equals the core's operators (float64, 1e-12), on diagonal and rotated data."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from opmerge.model import ddim_jump_table  # noqa: E402
from opmerge.schedules import make_schedule  # noqa: E402
from opmerge.teacher import exact_flow, step_operators, teacher_composite  # noqa: E402

from opmerge.experiments.gaussian import make_gaussian, parse_spectrum, random_rotation  # noqa: E402
from opmerge.experiments.teacher import GaussianTeacher, eigen_gains  # noqa: E402

pytestmark = pytest.mark.bridge

LAM = [0.0, 0.05, 0.7, 3.0, 120.0]


@pytest.mark.parametrize("rotated", [False, True])
@pytest.mark.parametrize("name,solver", [("vp-cosine", "ddim"), ("vp-linear", "ddim"), ("vp-linear", "heun"),
                                         ("rf", "ddim"), ("edm", "ddim"), ("edm", "heun")])
def test_torch_steps_and_composite_equal_core(name, solver, rotated):
    schedule = make_schedule(name, 7)
    data = make_gaussian(LAM, rotated=rotated, seed=11)
    teacher = GaussianTeacher(schedule, data, solver)
    assert teacher.dtype == torch.float64
    np.testing.assert_allclose(teacher.step_gains(), step_operators(schedule, data.lam, solver), rtol=0, atol=1e-12)
    np.testing.assert_allclose(teacher.composite_gains(), teacher_composite(schedule, data.lam, solver=solver), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(teacher.composite_gains(5, 2), teacher_composite(schedule, data.lam, 5, 2, solver=solver), rtol=1e-12, atol=1e-12)
    flow = eigen_gains(teacher.matrix(lambda z: teacher.exact_flow(z, 6, 1)), data)
    np.testing.assert_allclose(flow, exact_flow(schedule, data.lam, 6, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rotated", [False, True])
def test_ddim_jump_and_linear_map_is_diagonal_in_eigenbasis(rotated):
    schedule = make_schedule("vp-cosine", 6)
    data = make_gaussian(LAM[1:], rotated=rotated, seed=3)
    teacher = GaussianTeacher(schedule, data)
    table = ddim_jump_table(schedule, data.lam)
    for top, bottom in [(6, 0), (5, 2), (3, 2)]:
        gains = eigen_gains(teacher.matrix(lambda z: teacher.ddim_jump(z, top, bottom)), data)
        np.testing.assert_allclose(gains, table[:, bottom, top], rtol=1e-12, atol=1e-12)
    u = torch.as_tensor(data.basis())
    rotated_matrix = u.T @ teacher.matrix(lambda z: teacher.sample(z)) @ u
    off = rotated_matrix - torch.diag(torch.diagonal(rotated_matrix))
    assert float(off.abs().max()) < 1e-12


def test_heun_rejects_alpha_zero_and_bad_inputs():
    data = make_gaussian([1.0])
    with pytest.raises(ValueError, match="alpha_n > 0"):
        GaussianTeacher(make_schedule("vp-cosine", 4), data, "heun")
    with pytest.raises(ValueError, match="solver"):
        GaussianTeacher(make_schedule("rf", 4), data, "euler")
    with pytest.raises(ValueError, match=">= 0"):
        make_gaussian([-1.0])
    teacher = GaussianTeacher(make_schedule("rf", 4), data)
    with pytest.raises(ValueError, match="step n"):
        teacher.step(torch.zeros(1, 1, dtype=torch.float64), 0)


def test_rotation_is_orthogonal_and_seeded():
    u = random_rotation(6, 5)
    np.testing.assert_allclose(u.T @ u, np.eye(6), atol=1e-13)
    np.testing.assert_array_equal(u, random_rotation(6, 5))
    assert not np.allclose(u, random_rotation(6, 6))


def test_forward_samples_have_the_forward_covariance():
    schedule = make_schedule("vp-cosine", 8)
    data = make_gaussian([0.3, 2.0, 5.0], rotated=True, seed=2)
    teacher = GaussianTeacher(schedule, data)
    gen = torch.Generator().manual_seed(0)
    z = data.forward_sample(schedule, 3, 200_000, gen)
    expected = teacher.covariance_at(3).numpy()
    np.testing.assert_allclose(np.cov(z.numpy(), rowvar=False), expected, atol=0.05)


def test_parse_spectrum_forms(tmp_path):
    np.testing.assert_allclose(parse_spectrum("0.5, 2,10"), [0.5, 2.0, 10.0])
    np.testing.assert_allclose(parse_spectrum("geom:0.1:10:3"), [0.1, 1.0, 10.0])
    np.testing.assert_allclose(parse_spectrum("lin:0:1:3"), [0.0, 0.5, 1.0])
    path = tmp_path / "spec.npy"
    np.save(path, np.array([1.0, 3.0]))
    np.testing.assert_allclose(parse_spectrum(str(path)), [1.0, 3.0])
    for bad in ("geom:0:1:3", "a,b", "geom:1:2"):
        with pytest.raises(ValueError):
            parse_spectrum(bad)


# ---- the teacher with a data mean (one Gaussian teacher for synthetic and image data) ----------


def _numpy_posterior_mean(z, mean, cov, alpha, sigma):
    """Independent route: mu + alpha Sigma (alpha^2 Sigma + sigma^2 I)^{-1} (z - alpha mu), by a linear solve."""
    d = cov.shape[0]
    m = alpha**2 * cov + sigma**2 * np.eye(d)
    return mean + (alpha * cov @ np.linalg.solve(m, (z - alpha * mean).T)).T


@pytest.mark.parametrize("solver,name", [("ddim", "vp-cosine"), ("heun", "edm")])
def test_teacher_with_mean_matches_closed_forms(solver, name):
    schedule = make_schedule(name, 5)
    data = make_gaussian([0.2, 1.0, 4.0], rotated=True, seed=4)
    mean = np.array([0.7, -1.3, 2.1])
    teacher = GaussianTeacher(schedule, data, solver, mean=mean)
    centred = GaussianTeacher(schedule, data, solver)
    assert not teacher.centred and centred.centred
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 3)) * 3
    zt = torch.as_tensor(z)
    for n in (1, 3, 5):
        a, s = teacher.coef(n)
        np.testing.assert_allclose(teacher.denoise(zt, n).numpy(), _numpy_posterior_mean(z, mean, data.covariance(), a, s),
                                   rtol=1e-12, atol=1e-12)
        # conjugation by the shift z_n -> z_n - alpha_n mu: a step with a mean is the centred step
        shifted = teacher.step(zt + a * torch.as_tensor(mean), n) - teacher.coef(n - 1)[0] * torch.as_tensor(mean)
        np.testing.assert_allclose(shifted.numpy(), centred.step(zt, n).numpy(), rtol=1e-11, atol=1e-11)
    # gains of the linear part are those of the core, whatever the mean
    np.testing.assert_allclose(teacher.composite_gains(), teacher_composite(schedule, data.lam, solver=solver), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(teacher.step_gains(), step_operators(schedule, data.lam, solver), atol=1e-11)
    # the sampler maps the mean of z_N to the mean of the data (affine maps commute with the mean)
    a_n = teacher.coef(schedule.steps)[0]
    top = torch.as_tensor(a_n * mean).reshape(1, -1)
    np.testing.assert_allclose(teacher.exact_flow(top).numpy()[0], mean, atol=1e-12)


def test_teacher_with_mean_exact_flow_transports_the_forward_marginals():
    """E(j -> i) maps N(alpha_j mu, C_j) onto N(alpha_i mu, C_i): mean and covariance in closed form."""
    schedule = make_schedule("vp-cosine", 6)
    data = make_gaussian([0.3, 2.0], rotated=True, seed=9)
    mean = np.array([1.5, -0.5])
    teacher = GaussianTeacher(schedule, data, mean=mean)
    j, i = 5, 2
    a_j, a_i = teacher.coef(j)[0], teacher.coef(i)[0]
    shift = torch.as_tensor(a_j * mean)
    m = teacher.matrix(lambda z: teacher.exact_flow(z, j, i), shift).numpy()
    np.testing.assert_allclose(teacher.exact_flow(shift.reshape(1, -1), j, i).numpy()[0], a_i * mean, atol=1e-12)
    np.testing.assert_allclose(m @ teacher.covariance_at(j).numpy() @ m.T, teacher.covariance_at(i).numpy(), atol=1e-12)


def test_teacher_with_mean_inputs_and_denoiser_module():
    schedule = make_schedule("rf", 4)
    data = make_gaussian([0.5, 2.0])
    mean = np.array([3.0, -2.0])
    rows = torch.tensor([[1.0, 1.0], [5.0, -5.0]], dtype=torch.float64)
    teacher = GaussianTeacher(schedule, data, mean=mean, train=rows)
    gen = torch.Generator().manual_seed(1)
    x0 = teacher.data_sample(400, gen)
    assert set(map(tuple, x0.numpy().tolist())) == {(1.0, 1.0), (5.0, -5.0)}
    free = GaussianTeacher(schedule, data, mean=mean)
    draws = free.data_sample(100_000, torch.Generator().manual_seed(2)).numpy()
    # mean within 5 standard errors (sd <= sqrt(2), n = 1e5: se <= 0.0045)
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), data.covariance(), atol=0.05)
    module = teacher.denoiser_module(*teacher.coef(2))
    z = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    np.testing.assert_allclose(module(z).detach().numpy(), teacher.denoise(z, 2).numpy(), atol=1e-13)
    other = teacher.with_schedule(make_schedule("vp-cosine", 3))
    assert other.steps == 3 and not other.centred and torch.equal(other.train, rows)
    with pytest.raises(ValueError, match="mean"):
        GaussianTeacher(schedule, data, mean=[1.0])
