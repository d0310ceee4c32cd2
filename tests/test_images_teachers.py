"""Image teachers (Gaussian closed form, trained MLP, checkpoints), linearity readout, plan students, SCoT view."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from opmerge import Problem, StudentModel, evaluate_plan, make_schedule, parse_plan  # noqa: E402
from opmerge.teacher import step_operators, teacher_composite  # noqa: E402

from opmerge.experiments.images.data import load_digits_dataset  # noqa: E402
from opmerge.experiments.images.distill import (  # noqa: E402
    ImagePlanExecutor,
    ImageTrainConfig,
    TeacherStepModule,
)
from opmerge.experiments.images.linearity import read_linearity, step_gains, teacher_linearity  # noqa: E402
from opmerge.experiments.images.teachers import (  # noqa: E402
    DenoiserMLP,
    GaussianImageTeacher,
    TeacherConfig,
    gaussian_teacher_from_dataset,
    load_checkpoint,
    train_teacher,
)
from opmerge.experiments.teacher import GaussianTeacher  # noqa: E402
from opmerge.experiments.images.trajectory import CentredTeacherView  # noqa: E402

pytestmark = pytest.mark.bridge



@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


@pytest.fixture(scope="module")
def gauss(digits):
    return gaussian_teacher_from_dataset(digits, make_schedule("vp-cosine", 6))


def test_gaussian_teacher_equals_closed_form(digits, gauss):
    fit = gauss.fit
    mu, cov = np.array(fit.mean), np.array(fit.covariance)
    z = torch.tensor(np.random.default_rng(0).standard_normal((5, 64)))
    for n in (1, 3, 6):
        a, s = gauss.coef(n)
        # x0 = mu + a Sigma (a^2 Sigma + s^2 I)^{-1} (z - a mu), by a dense solve
        expected = mu + (a * cov @ np.linalg.solve(a * a * cov + s * s * np.eye(64), (z.numpy() - a * mu).T)).T
        np.testing.assert_allclose(gauss.denoise(z, n).numpy(), expected, atol=1e-10)
        a1, s1 = gauss.coef(n - 1)
        step = a1 * expected + s1 * (z.numpy() - a * expected) / s
        np.testing.assert_allclose(gauss.step(z, n).numpy(), step, atol=1e-10)
    # the affine denoiser module is the same map
    module = gauss.denoiser_module(*gauss.coef(4))
    np.testing.assert_allclose(module(z).detach().numpy(), gauss.denoise(z, 4).numpy(), atol=1e-12)
    # the former class name is a factory of the one Gaussian teacher, with the data mean
    for legacy in (GaussianImageTeacher.from_dataset(digits, gauss.schedule), GaussianImageTeacher(gauss.schedule, fit, gauss.train)):
        assert isinstance(legacy, GaussianTeacher) and legacy.kind == "gaussian" and not legacy.centred
        assert torch.equal(legacy.sample(z), gauss.sample(z))
    np.testing.assert_array_equal(gauss.mean.numpy(), mu)


def test_gaussian_linearity_readout_gives_the_composite(gauss):
    r = teacher_linearity(gauss, n=600, seed=1)
    composite = teacher_composite(gauss.schedule, np.array(gauss.fit.lam))
    np.testing.assert_allclose(r.gain, composite, atol=1e-10)
    assert np.all((r.gain_low - 1e-10 <= composite) & (composite <= r.gain_high + 1e-10))
    assert r.summary["within_ci"] == 1.0 and r.summary["linear_share"] == pytest.approx(1.0)
    assert r.summary["gaussian_teacher_share"] == pytest.approx(1.0)
    steps = step_gains(gauss, n=300, seed=2)
    np.testing.assert_allclose(steps["gain"], step_operators(gauss.schedule, np.array(gauss.fit.lam))[:, 1:], atol=1e-10)
    np.testing.assert_allclose(gauss.composite_gains(), composite, atol=1e-10)


def test_denoiser_mlp_preconditioning_and_eps_at_pure_noise(digits):
    fit = gaussian_teacher_from_dataset(digits, make_schedule("rf", 4)).fit
    mean = torch.tensor(np.array(fit.mean))
    s = 0.6
    net = DenoiserMLP(64, 16, 2, 8, "x0", mean, s, torch.Generator().manual_seed(0), torch.float64)
    z = torch.randn(7, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a, sig = 0.7, 0.4
    # untrained (zero output layer): the isotropic Gaussian denoiser around the mean
    expected = mean + a * s * s / (a * a * s * s + sig * sig) * (z - a * mean)
    torch.testing.assert_close(net(z, a, sig), expected, atol=1e-12, rtol=0)
    # the network sees only the SNR: rf and vp-cosine at equal SNR give the same x0 for z scaled accordingly
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, dtype=p.dtype, generator=torch.Generator().manual_seed(2)))
    x_vp = torch.tensor(np.cos(0.3)), torch.tensor(np.sin(0.3))
    scale = 1.0 / (x_vp[0] + x_vp[1])  # rf: alpha = 1 - t, sigma = t with t/(1 - t) = tan(0.3)
    a_rf, s_rf = x_vp[0] * scale, x_vp[1] * scale
    torch.testing.assert_close(net(z, x_vp[0], x_vp[1]), net(z * scale, a_rf, s_rf), atol=1e-10, rtol=0)
    eps_net = DenoiserMLP(64, 16, 2, 8, "eps", mean, s, torch.Generator().manual_seed(0), torch.float64)
    torch.testing.assert_close(eps_net(z, 6e-17, 1.0), mean.expand(7, 64))


def _tiny(**kw):
    base = dict(hidden=16, depth=2, emb_dim=8, train_steps=12, batch_size=16, lr=1e-3, checkpoint_every=4, dtype="float64")
    base.update(kw)
    return TeacherConfig(**base)


def test_checkpoint_resume_is_bit_for_bit(digits, tmp_path):
    cfg = _tiny()
    straight = train_teacher(cfg, tmp_path / "a", resume=False, progress=False, device="cpu", dataset=digits, log_every=5)
    part = train_teacher(cfg, tmp_path / "b", resume=False, progress=False, device="cpu", dataset=digits, log_every=5, stop_after=7)
    assert part.step == 7 and not part.finished
    resumed = train_teacher(cfg, tmp_path / "b", resume=True, progress=False, device="cpu", dataset=digits, log_every=5)
    assert resumed.step == straight.step == 12 and resumed.finished
    sa = torch.load(straight.path, weights_only=True)
    sb = torch.load(resumed.path, weights_only=True)
    for key in ("model", "ema"):
        for name in sa[key]:
            assert torch.equal(sa[key][name], sb[key][name]), (key, name)
    for k, v in sa["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg"], sb["optimizer"]["state"][k]["exp_avg"])
    assert torch.equal(sa["generator"], sb["generator"]) and sa["losses"] == sb["losses"]
    # a finished run returns at once; another configuration is refused; the teacher loads and samples
    assert train_teacher(cfg, tmp_path / "b", progress=False, device="cpu", dataset=digits).step == 12
    with pytest.raises(ValueError, match="hidden"):
        train_teacher(_tiny(hidden=32), tmp_path / "b", progress=False, device="cpu", dataset=digits)
    teacher, summary = load_checkpoint(tmp_path / "b", schedule=make_schedule("rf", 3), dataset=digits)
    assert summary.step == 12 and teacher.steps == 3
    # the loaded teacher samples with the stored EMA weights
    for name, value in teacher.net.state_dict().items():
        assert torch.equal(value, sb["ema"][name]), name
    # checkpoints and their summaries carry provenance (the device and the configuration)
    assert sb["provenance"]["device"] == "cpu" and sb["provenance"]["config"] == cfg.to_dict()
    assert summary.provenance == sb["provenance"]
    summary_json = json.loads((tmp_path / "b" / "teacher.json").read_text())
    assert summary_json["provenance"]["device"] == "cpu" and summary_json["step"] == 12
    from opmerge.errors import InputError

    with pytest.raises(InputError, match="schedule"):
        TeacherConfig(schedule="edm")
    with pytest.raises(InputError, match="hidden"):
        TeacherConfig(hidden=0)


@pytest.mark.parametrize("init,inputs", [("warm", "forward"), ("ddim", "generated")])
def test_affine_exact_gd_plan_students_match_the_model(gauss, init, inputs):
    cfg = ImageTrainConfig(family="affine", optimizer="exact-gd", lr=0.05, steps=6, init=init, input=inputs)
    model = StudentModel(training="gd", lr=0.05, gd_steps=6, init=init, input=inputs)
    u = torch.tensor(np.array(gauss.fit.basis))
    for text in ("(((6 5) 4) (3 2 1))", "(6 (5 4)) | ((3 2) 1)"):
        plan = parse_plan(text, 6)
        executor = ImagePlanExecutor(gauss, cfg, seed=0)
        executed = executor.run(plan)
        matrix, _ = executor._affine_exact(executed.sampler(), float(gauss.schedule.alpha[-1]) * gauss.mean)
        rotated = u.T @ matrix @ u
        predicted = evaluate_plan(Problem(gauss.schedule, np.array(gauss.fit.lam), model=model, segments=plan.n_segments), plan).student
        np.testing.assert_allclose(torch.diagonal(rotated).numpy(), predicted, atol=1e-10)
        assert float((rotated - torch.diag(torch.diagonal(rotated))).abs().max()) < 1e-10


def test_denoiser_students_start_as_the_first_child_and_learn(digits, gauss):
    from opmerge.plans import MergeNode

    cfg = ImageTrainConfig(family="denoiser", optimizer="adam", lr=1e-3, steps=30, batch=64)
    executor = ImagePlanExecutor(gauss, cfg, seed=0)
    node = MergeNode((6, 5, 4))
    z = executor.draw_inputs(6, 32, torch.Generator().manual_seed(0))
    student = executor._student(node, TeacherStepModule(gauss, 6), torch.Generator().manual_seed(0))
    torch.testing.assert_close(student(z).detach(), gauss.step(z, 6), atol=1e-10, rtol=0)
    trained, record = executor.train_node(node, [TeacherStepModule(gauss, n) for n in (6, 5, 4)])
    assert record["loss_end"] < record["loss_start"]
    ddim = ImagePlanExecutor(gauss, ImageTrainConfig(family="denoiser", init="ddim"))._student(node, TeacherStepModule(gauss, 6), None)
    torch.testing.assert_close(ddim(z).detach(), gauss.ddim_jump(z, 6, 3), atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="affine"):
        ImageTrainConfig(family="denoiser", optimizer="exact-gd")


def test_centred_view_is_exactly_conjugate(digits, tmp_path):
    cfg = _tiny(train_steps=3)
    summary = train_teacher(cfg, tmp_path, progress=False, device="cpu", dataset=digits)
    teacher = summary.load_teacher(schedule=make_schedule("vp-cosine", 4), dataset=digits)
    view = CentredTeacherView(teacher)
    z = teacher.noise_sample(9, torch.Generator().manual_seed(3))
    shift = lambda n: float(teacher.schedule.alpha[n]) * teacher.mean  # noqa: E731
    torch.testing.assert_close(view.sample(z - shift(4)) + shift(0), teacher.sample(z), atol=1e-12, rtol=0)
    torch.testing.assert_close(view.step(z - shift(4), 4) + shift(3), teacher.step(z, 4), atol=1e-12, rtol=0)
    # the view's data are training rows minus the mean, exactly
    x0 = view.data.sample(200, torch.Generator().manual_seed(4), teacher.dtype, "cpu")
    rows = {tuple(r) for r in (teacher.train - teacher.mean).numpy()}
    assert all(tuple(r) in rows for r in x0.numpy())


def test_untrained_network_teacher_reads_back_as_the_isotropic_gaussian(digits):
    """An x0 network with its zero output layer is the isotropic Gaussian denoiser of variance s^2: the linearity
    readout must find gain T_i(s^2) in every direction and a linear share of 1."""
    from opmerge.experiments.images.teachers import TrainedTeacher

    schedule = make_schedule("vp-cosine", 4)
    fit = gaussian_teacher_from_dataset(digits, schedule).fit
    s2 = float(np.sum(fit.lam)) / fit.dim
    net = DenoiserMLP(64, 16, 2, 8, "x0", torch.tensor(np.array(fit.mean)), np.sqrt(s2), torch.Generator().manual_seed(0), torch.float64)
    teacher = TrainedTeacher(net, schedule, fit, torch.tensor(np.array(digits.train)))
    r = read_linearity(teacher.sample, teacher, 400, torch.Generator().manual_seed(5))
    expected = teacher_composite(schedule, np.full(64, s2))
    keep = r.lam > 1e-4
    np.testing.assert_allclose(r.gain[keep], expected[keep], rtol=1e-8)
    assert r.summary["linear_share"] == pytest.approx(1.0, abs=1e-10)


def test_continuous_schedules_match_the_grids():
    from opmerge.experiments.images._schedule import alpha_sigma

    for name in ("rf", "vp-cosine"):
        grid = make_schedule(name, 7)
        alpha, sigma = alpha_sigma(name, np.arange(8) / 7)
        np.testing.assert_allclose(alpha, grid.alpha, atol=1e-15)
        np.testing.assert_allclose(sigma, grid.sigma, atol=1e-15)
        a_t, s_t = alpha_sigma(name, torch.tensor([0.25]))
        assert float(a_t) == pytest.approx(float(alpha_sigma(name, 0.25)[0]))
    with pytest.raises(ValueError, match="continuous"):
        alpha_sigma("edm", 0.5)


@pytest.mark.parametrize("part", ["optimizer", "generator"])
def test_resuming_a_checkpoint_with_a_tampered_training_state_is_one_error(digits, tmp_path, part):
    from opmerge.errors import InputError

    cfg = _tiny()
    train_teacher(cfg, tmp_path, resume=False, progress=False, device="cpu", dataset=digits, stop_after=4)
    path = tmp_path / "teacher.pt"
    state = torch.load(path, weights_only=True)
    if part == "optimizer":
        state["optimizer"] = {"state": {}, "param_groups": []}  # no parameter groups: torch refuses it
    else:
        state["generator"] = torch.zeros(3, dtype=torch.uint8)  # not a generator state
    torch.save(state, path)
    with pytest.raises(InputError, match="cannot be resumed") as info:
        train_teacher(cfg, tmp_path, resume=True, progress=False, device="cpu", dataset=digits)
    assert str(path) in str(info.value) and "--no-resume" in str(info.value)
