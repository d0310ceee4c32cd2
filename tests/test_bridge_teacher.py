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
