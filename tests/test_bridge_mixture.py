"""The mixture bridge: the torch mixture teacher equals the core's (float64, 1e-10), the MLP plan executor
trains what it should, and the ``mixture`` study runs, writes its files, resumes and reproduces itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from opmerge.errors import InputError, InputTypeError  # noqa: E402
from opmerge.mixture import GaussianMixture, MixtureTeacher, mixture_preset  # noqa: E402
from opmerge.plans import MergeNode, format_plan, parse_plan, tree_leaves  # noqa: E402
from opmerge.schedules import make_schedule  # noqa: E402

from opmerge.experiments._torch import make_generator  # noqa: E402
from opmerge.experiments.mixture_bridge import (  # noqa: E402
    MixturePlanExecutor,
    MixtureTrainConfig,
    affine_fit,
    measure_plan,
    node_loss,
)
from opmerge.experiments.mixture_teacher import MixtureComposite, TorchMixtureTeacher  # noqa: E402
from opmerge.experiments.teacher import TeacherSampler, TeacherStep  # noqa: E402

pytestmark = pytest.mark.bridge

TOL = 1e-10


def _single_component() -> GaussianMixture:
    """K = 1 in 3-D with a mean and a rotated covariance."""
    q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((3, 3)))
    cov = (q * np.array([2.0, 0.6, 0.05])) @ q.T
    return GaussianMixture(np.array([1.0]), np.array([[0.7, -1.2, 0.3]]), cov[None], name="one")


def _unequal_components() -> GaussianMixture:
    """K = 3 in 3-D with unequal weights and covariances of different determinants (the presets' components
    share one spectrum, so a wrong log-determinant term would cancel in their responsibilities)."""
    rng = np.random.default_rng(9)
    covs = []
    for spectrum in ([3.0, 1.0, 0.2], [0.5, 0.4, 0.1], [1.5, 0.05, 0.02]):
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        covs.append((q * np.array(spectrum)) @ q.T)
    means = np.array([[0.0, 0.0, 0.0], [2.5, -1.0, 0.5], [-1.0, 2.0, -2.0]])
    return GaussianMixture(np.array([0.5, 0.3, 0.2]), means, np.array(covs), name="unequal")


MIXTURES = {"two-2d": lambda: mixture_preset("two-2d"), "eight-2d": lambda: mixture_preset("eight-2d", 3.0),
            "mixture-16d": lambda: mixture_preset("mixture-16d"), "K=1": _single_component, "unequal": _unequal_components}
SOLVERS = [("ddim", "vp-cosine"), ("ddim", "edm"), ("heun", "vp-linear"), ("heun", "edm")]


def _points(core: MixtureTeacher, count: int = 200) -> np.ndarray:
    """Points spread over every noise level: draws of the data noised at several levels, and wide Gaussian points."""
    x0, _ = core.mixture.sample(count, seed=1)
    rng = np.random.default_rng(2)
    scale = np.sqrt(np.max(core.mixture.spectrum())) + np.abs(core.mixture.means).max()
    return np.concatenate([x0 + rng.standard_normal(x0.shape) * rng.uniform(0.05, 3.0, (count, 1)),
                           scale * rng.standard_normal((count // 2, core.dim))])


def _close(actual: torch.Tensor, expected: np.ndarray, what: str) -> None:
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=TOL, atol=TOL, err_msg=what)


@pytest.mark.parametrize("solver,schedule_name", SOLVERS)
@pytest.mark.parametrize("name", list(MIXTURES))
def test_torch_teacher_equals_core(name, solver, schedule_name):
    mixture = MIXTURES[name]()
    schedule = make_schedule(schedule_name, 6)
    core = MixtureTeacher(mixture, schedule, solver)
    torch_teacher = TorchMixtureTeacher(mixture, schedule, solver)
    assert torch_teacher.dtype == torch.float64
    z = _points(core)
    zt = torch.tensor(z)
    for n in range(1, schedule.steps + 1):
        _close(torch_teacher.denoise(zt, n), core.denoise(z, n), f"denoiser at n = {n}")
        _close(torch_teacher.responsibilities(zt, n), core.responsibilities(z, n), f"responsibilities at n = {n}")
        _close(torch_teacher.step(zt, n), core.step(z, n), f"step n = {n}")
        _close(TeacherStep(torch_teacher, n)(zt), core.step(z, n), f"TeacherStep n = {n}")
    for top, bottom in ((6, 0), (4, 1), (3, 2), (2, 2)):
        _close(torch_teacher.sample(zt, top, bottom), core.composite(z, top, bottom), f"composite {top} -> {bottom}")
        _close(torch_teacher.module(top, bottom)(zt), core.composite(z, top, bottom), f"MixtureComposite {top} -> {bottom}")
    for top, bottom in ((6, 0), (5, 2), (1, 0)):
        _close(torch_teacher.ddim_jump(zt, top, bottom), core.ddim_jump(z, top, bottom), f"DDIM jump {top} -> {bottom}")
    _close(TeacherSampler(torch_teacher)(zt), core.composite(z), "TeacherSampler")
    for a, b in zip(torch_teacher.trajectory(zt, 5, 1), core.trajectory(z, 5, 1)):
        _close(a, b, "trajectory")


def test_torch_teacher_float32_and_module():
    mixture, schedule = mixture_preset("two-2d"), make_schedule("vp-cosine", 4)
    core = MixtureTeacher(mixture, schedule)
    teacher = TorchMixtureTeacher(mixture, schedule, dtype=torch.float32)
    z = _points(core)
    out = teacher.sample(torch.tensor(z, dtype=torch.float32))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), core.composite(z), atol=1e-4)
    module = MixtureComposite(teacher, 3, 1)
    assert list(module.parameters()) == [] and "top=3, bottom=1" in repr(module)


def test_data_and_marginal_samples_have_the_mixture_moments():
    mixture = mixture_preset("mixture-16d")
    schedule = make_schedule("vp-cosine", 6)
    teacher = TorchMixtureTeacher(mixture, schedule)
    count = 100_000
    x0 = teacher.data_sample(count, make_generator(0)).numpy()
    sd = np.sqrt(np.diag(mixture.covariance()))
    assert np.all(np.abs(x0.mean(0) - mixture.mean()) < 5 * sd / np.sqrt(count))
    assert np.abs(np.cov(x0.T) - mixture.covariance()).max() < 0.05
    n = 2  # alpha_n != sigma_n
    a, s = float(schedule.alpha[n]), float(schedule.sigma[n])
    executor = MixturePlanExecutor(teacher, MixtureTrainConfig(), seed=0)
    for z in (teacher.marginal_sample(n, count, make_generator(1)).numpy(), executor.draw_inputs(n, count, make_generator(2)).numpy()):
        assert np.abs(np.cov(z.T) - (a * a * mixture.covariance() + s * s * np.eye(16))).max() < 0.05
        assert np.all(np.abs(z.mean(0) - a * mixture.mean()) < 5 * np.sqrt(a * a * sd**2 + s * s) / np.sqrt(count))
    # the same generator state gives the same draws
    np.testing.assert_array_equal(teacher.data_sample(10, make_generator(7)).numpy(), teacher.data_sample(10, make_generator(7)).numpy())


def test_torch_teacher_rejects_bad_input():
    mixture, schedule = mixture_preset("two-2d"), make_schedule("vp-cosine", 4)
    with pytest.raises(InputTypeError, match="mixture"):
        TorchMixtureTeacher("two-2d", schedule)
    with pytest.raises(InputTypeError, match="schedule"):
        TorchMixtureTeacher(mixture, "vp-cosine")
    with pytest.raises(InputError, match="solver"):
        TorchMixtureTeacher(mixture, schedule, "euler")
    with pytest.raises(InputError, match="Heun"):
        TorchMixtureTeacher(mixture, schedule, "heun")  # vp-cosine has alpha_N = 0
    with pytest.raises(InputTypeError, match="dtype"):
        TorchMixtureTeacher(mixture, schedule, dtype=torch.int64)
    teacher = TorchMixtureTeacher(mixture, schedule)
    z = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(InputError, match="^n must"):
        teacher.step(z, 0)
    with pytest.raises(InputError, match="^n must"):
        teacher.denoise(z, 5)
    with pytest.raises(InputError, match="bottom <= top"):
        teacher.sample(z, 1, 3)
    with pytest.raises(InputError, match="count"):
        teacher.data_sample(0, make_generator(0))


# ---- the executor ---------------------------------------------------------------------------------


def _small(n_steps: int = 3, **config) -> tuple[TorchMixtureTeacher, MixtureTrainConfig]:
    """Two-2d on N = ``n_steps`` and a small executor configuration (``config`` overrides)."""
    teacher = TorchMixtureTeacher(mixture_preset("two-2d"), make_schedule("vp-cosine", n_steps))
    values = {"hidden": 4, "depth": 1, "batch": 128, "prefit_steps": 30, "fit_samples": 2048, "lr": 5e-3, **config}
    return teacher, MixtureTrainConfig(**values)


def test_node_loss_falls_with_the_budget():
    """More Adam updates on the same node: a lower loss against the children's composite on fresh inputs
    of p_3, and the record's held-out loss is that loss."""
    losses = {}
    for steps in (3, 150):
        teacher, cfg = _small(4, steps=steps)
        executed = MixturePlanExecutor(teacher, cfg, seed=0).run("4 | (3 2 1)")
        (record,) = executed.records
        assert record["node"] == "(3 2 1)" and set(record) >= {"loss_start", "loss_end", "heldout_loss"}
        z = teacher.marginal_sample(3, 8192, make_generator(11))
        losses[steps] = node_loss(executed.nodes["(3 2 1)"], teacher.module(3, 0), z)
        assert record["heldout_loss"] == pytest.approx(losses[steps], rel=0.1)
    assert losses[150] < 0.5 * losses[3]


def test_warm_start_copies_the_prefitted_step_and_the_prefit_fits_it():
    teacher, cfg = _small(prefit_steps=200)
    executor = MixturePlanExecutor(teacher, cfg, seed=0)
    z = teacher.marginal_sample(2, 4096, make_generator(5))
    start = executor.start_student(MergeNode((2, 1)), TeacherStep(teacher, 2), make_generator(1))
    prefit = executor.prefit(2, 1)
    assert start is not prefit and all(p.requires_grad for p in start.parameters())
    assert not any(p.requires_grad for p in prefit.parameters())
    torch.testing.assert_close(start(z), prefit(z), rtol=0, atol=0)
    # the pre-fit beats its own affine start on the (nonlinear) teacher step
    matrix, bias = affine_fit(z, teacher.step(z, 2))
    affine = node_loss(lambda x: x @ matrix.T + bias, TeacherStep(teacher, 2), z)
    assert node_loss(prefit, TeacherStep(teacher, 2), z) < 0.8 * affine
    # a trained child is copied, not shared
    executed = executor.run("((3 2) 1)")
    child = executed.nodes["(3 2)"]
    copy = executor.start_student(parse_plan("((3 2) 1)", 3).segments[0], child, make_generator(1))
    z = teacher.marginal_sample(3, 512, make_generator(6))
    assert copy is not child
    torch.testing.assert_close(copy(z), child(z), rtol=0, atol=0)


def test_measure_plan_is_zero_for_the_teacher_and_matches_a_direct_computation():
    teacher, cfg = _small(steps=20)
    inputs = teacher.noise_sample(500, make_generator(3))
    target = teacher.sample(inputs)
    executor = MixturePlanExecutor(teacher, cfg, seed=0)
    exact, out = measure_plan(executor.run("3 | 2 | 1"), inputs, target, 200)
    assert exact.mse == 0.0 and exact.w2 == 0.0 and exact.w2_points == 200
    trained, out = measure_plan(executor.run("(3 2) | 1"), inputs, target, 200)
    sq = (out - target).pow(2).sum(1)
    assert trained.mse == pytest.approx(float(sq.mean()), rel=1e-12)
    assert trained.mse_se == pytest.approx(float(sq.std() / np.sqrt(500)), rel=1e-9)
    assert 0 < trained.w2 <= np.sqrt(float((out[:200] - target[:200]).pow(2).sum(1).mean())) + 1e-12
    with pytest.raises(InputError, match="w2_points"):
        measure_plan(executor.run("3 | 2 | 1"), inputs, target, 1)


def test_train_config_rejects_what_the_mixture_cannot_do():
    with pytest.raises(InputError, match="family"):
        MixtureTrainConfig(family="diagonal")
    with pytest.raises(InputError, match="exact-gd"):
        MixtureTrainConfig(optimizer="exact-gd")
    with pytest.raises(InputError, match="prefit_steps"):
        MixtureTrainConfig(prefit_steps=-1)
    with pytest.raises(InputError, match="fit_samples"):
        MixtureTrainConfig(fit_samples=1)
    teacher, cfg = _small()
    with pytest.raises(InputTypeError, match="teacher"):
        MixturePlanExecutor("teacher", cfg)
    with pytest.raises(InputError, match="N=4"):
        MixturePlanExecutor(teacher, cfg).run("(4 3 2 1)")


# ---- the study ------------------------------------------------------------------------------------


def test_random_plans_are_valid_reproducible_and_mixed():
    from opmerge.experiments.studies.mixture import random_plan

    plans = [random_plan(6, np.random.default_rng(s)) for s in range(40)]
    assert all(tuple(leaf for seg in p.segments for leaf in (tree_leaves(seg) if isinstance(seg, MergeNode) else (seg,)))
               == (6, 5, 4, 3, 2, 1) for p in plans)
    assert {p.n_segments for p in plans} == {1, 2, 3, 4}
    assert len({format_plan(p) for p in plans}) > 20
    assert format_plan(random_plan(6, np.random.default_rng(3))) == format_plan(plans[3])


QUICK = {"quick": True, "plans": ("vanilla", "boot"), "segment_counts": (1, 2), "random_plans": 2, "device": "cpu", "progress": False}


def _numbers(result: dict) -> dict:
    """What must not change between two runs: every plan's measured and predicted numbers, records and points, and the summary."""
    keep = ("names", "plan", "mse_measured", "mse_se", "w2_measured", "predicted", "records", "points")
    return {"plans": [{k: row[k] for k in keep} for row in result["plans"]], "summary": result["summary"],
            "teacher_points": result["teacher_points"]}


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    from opmerge.experiments import run_study

    out = tmp_path_factory.mktemp("mixture")
    first = run_study("mixture", QUICK, out=str(out / "a"))
    return out, first


def test_quick_study_output(quick_study):
    out, result = quick_study
    s = result["summary"]
    assert result["study"] == "mixture" and result["config"]["budget"] == "long"
    texts = [row["plan"] for row in result["plans"]]
    assert len(texts) == len(set(texts)) == 5  # vanilla/boot at M = 1, the shared M = 2 plan once, two random plans
    shared = next(row for row in result["plans"] if row["plan"] == "(4 3) | (2 1)")
    assert shared["names"] == ["vanilla M=2", "boot M=2"]
    for row in result["plans"]:
        assert row["mse_measured"] > 0 and row["w2_measured"] > 0 and len(row["points"]) > 0
        assert set(row["predicted"]) == {format(e, "g") for e in result["config"]["eta_taus"]}
        for pred in row["predicted"].values():
            assert pred["mse"] > 0 and pred["plan_cost"] >= 0
        assert len(row["records"]) == parse_plan(row["plan"], 4).n_merges
    assert s["plans"] == 5 and s["eta_tau"] == result["config"]["eta_taus"][0]
    assert -1 <= s["spearman_mse"] <= 1 and -1 <= s["spearman_plan_cost"] <= 1
    assert s["measured_best"] in texts and s["predicted_worst"] in texts
    written = json.loads((out / "a" / "mixture.json").read_text())
    assert written["summary"]["spearman_mse"] == s["spearman_mse"]
    for ext in ("pdf", "png", "json"):
        assert (out / "a" / f"mixture-figure.{ext}").stat().st_size > 0
    figure = json.loads((out / "a" / "mixture-figure.json").read_text())["data"]
    assert figure["measured_mse"] == [row["mse_measured"] for row in result["plans"]]


def test_quick_study_reproduces_and_resumes(quick_study):
    from opmerge.experiments import run_study

    out, first = quick_study
    again = run_study("mixture", QUICK, out=str(out / "b"))  # a fresh folder: everything computed again
    assert again["unit_cache"]["cached"] == 0
    assert _numbers(again) == _numbers(first)
    resumed = run_study("mixture", QUICK, out=str(out / "a"))  # the first folder: every unit from the cache
    assert resumed["unit_cache"] == {"cached": first["unit_cache"]["computed"], "computed": 0}
    assert _numbers(resumed) == _numbers(first)


def test_validate_mixture_command(tmp_path, capsys):
    from opmerge.experiments import cli

    code = cli.main(["mixture", "--quick", "--plan", "vanilla", "--segments", "1,2", "--random-plans", "1", "--budget", "short",
                     "--device", "cpu", "--out", str(tmp_path), "--json"])
    assert code == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "plan 1/" not in captured.err  # --json: no progress lines
    assert result["config"]["budget"] == "short" and result["config"]["node_steps"] == 5 and result["summary"]["plans"] == 3
    code = cli.main(["mixture", "--quick", "--plan", "vanilla", "--segments", "1", "--random-plans", "2", "--device", "cpu",
                     "--out", str(tmp_path / "report")])
    captured = capsys.readouterr()
    assert code == 0 and "Spearman MSE" in captured.out and "plan 3/3" in captured.err
    for argv, message in ((["--w2-samples", "300"], "--w2-samples must be at most n_eval"), (["--plan", "(9 1)"], "--plan"),
                          (["--plan", "optimal2"], "--plan"), (["--segments", "7"], "--segments"), (["--eta-tau", "0"], "--eta-tau")):
        assert cli.main(["mixture", "--quick", "--out", str(tmp_path / "bad"), *argv]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["--quick", "mixture"]) == 2
    assert "the mixture study has its own options" in capsys.readouterr().err


def test_study_config_errors_name_the_field():
    from opmerge.experiments.studies import study_config

    for values, field in (({"preset": "ring"}, "preset"), ({"budget": "medium"}, "budget"), ({"init": "zero", "separation": -1}, "separation"),
                          ({"random_plans": 101}, "random_plans"), ({"eta_taus": (1.0, -2.0)}, "eta_taus"),
                          ({"segment_counts": "1,2"}, "segment_counts"), ({"w2_samples": 5000}, "w2_samples")):
        with pytest.raises((InputError, InputTypeError), match=f"^{field}"):
            study_config("mixture", values)
