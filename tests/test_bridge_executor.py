"""Plan execution: exact-loss GD students equal the model's gd closed form; SGD matches it in expectation."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy import stats  # noqa: E402

from opmerge.objective import Problem, evaluate_plan  # noqa: E402
from opmerge.plans import CANONICAL_KINDS, MergeNode, canonical_plan, enumerate_plans, parse_plan  # noqa: E402
from opmerge.schedules import make_schedule  # noqa: E402
from opmerge.teacher import step_operators, teacher_composite  # noqa: E402
from opmerge.solvers import solve  # noqa: E402

from opmerge.experiments.executor import GaussianPlanExecutor, PlanExecutor, TrainConfig, core_model  # noqa: E402
from opmerge.experiments.gaussian import make_gaussian  # noqa: E402
from opmerge.experiments.students import build_student  # noqa: E402
from opmerge.experiments.teacher import GaussianTeacher, TeacherStep, eigen_gains, operator_matrix  # noqa: E402

pytestmark = pytest.mark.bridge

LAM = [0.1, 0.6, 2.5, 9.0]


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))))


@pytest.mark.parametrize("family,rotated", [("diagonal", False), ("full", False), ("full", True), ("diagonal", True)])
@pytest.mark.parametrize("init,inputs", [("warm", "forward"), ("ddim", "generated"), ("zero", "forward"), ("identity", "generated")])
def test_exact_gd_equals_closed_form(family, rotated, init, inputs):
    schedule = make_schedule("vp-cosine", 5)
    data = make_gaussian(LAM, rotated=rotated, seed=7)
    teacher = GaussianTeacher(schedule, data)
    cfg = TrainConfig(family=family, optimizer="exact-gd", lr=0.03, steps=12, init=init, input=inputs)
    problem = Problem(schedule, data.lam, model=core_model(cfg))
    executor = PlanExecutor(teacher, cfg)
    plans = [canonical_plan(kind, 5) for kind in CANONICAL_KINDS] + [solve(problem).plan, parse_plan("((5 4) 3 (2 1))")]
    for plan in plans:
        executed = executor.run(plan)
        evaluation = evaluate_plan(problem, plan)
        assert _rel(executed.gains(), evaluation.student) <= 1e-8
        nodes = executed.node_gains()
        for node, value in evaluation.node_values.items():
            assert _rel(nodes[str(node)], value) <= 1e-8
        assert executed.off_diagonal() < 1e-10


def test_exact_gd_two_segments_and_heun():
    schedule = make_schedule("edm", 6)
    data = make_gaussian([0.2, 1.5], rotated=True, seed=1)
    teacher = GaussianTeacher(schedule, data, "heun")
    cfg = TrainConfig(family="full", optimizer="exact-gd", lr=1e-4, steps=8)
    problem = Problem(schedule, data.lam, model=core_model(cfg), solver="heun", segments=2)
    executor = PlanExecutor(teacher, cfg)
    for plan in list(enumerate_plans(6, 2))[::7]:
        assert _rel(executor.run(plan).gains(), evaluate_plan(problem, plan).student) <= 1e-8


def test_bad_configurations_are_rejected():
    with pytest.raises(ValueError, match="exact-gd"):
        TrainConfig(family="mlp", optimizer="exact-gd")
    with pytest.raises(ValueError, match="family"):
        TrainConfig(family="cnn")
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1.0)
    teacher = GaussianTeacher(make_schedule("rf", 4), make_gaussian([1.0]))
    with pytest.raises(ValueError, match="N = 3"):
        PlanExecutor(teacher, TrainConfig()).run(parse_plan("(3 2 1)"))


def test_sgd_mean_gain_within_interval_of_prediction():
    schedule = make_schedule("vp-cosine", 3)
    data = make_gaussian([0.3, 2.0])
    teacher = GaussianTeacher(schedule, data)
    cfg = TrainConfig(family="diagonal", optimizer="sgd", lr=0.05, steps=10, batch=16)
    problem = Problem(schedule, data.lam, model=core_model(cfg))
    plan = canonical_plan("boot", 3)
    gains = np.array([PlanExecutor(teacher, cfg, seed=s).run(plan).gains() for s in range(40)])
    mean, se = gains.mean(0), gains.std(0, ddof=1) / math.sqrt(len(gains))
    assert np.all(se > 0)
    quant = stats.t.ppf(0.9995, len(gains) - 1)
    predicted = evaluate_plan(problem, plan).student
    assert np.all(np.abs(mean - predicted) <= quant * se)
    # the interval is informative: much narrower than the gap to another plan's prediction
    other = evaluate_plan(problem, canonical_plan("cd", 3)).student
    assert np.max(np.abs(other - predicted) / (quant * se)) > 5


def test_mlp_student_starts_as_exact_copy_and_trains():
    schedule = make_schedule("vp-cosine", 4)
    data = make_gaussian([0.5, 3.0], rotated=True, seed=4)
    teacher = GaussianTeacher(schedule, data)
    step = TeacherStep(teacher, 4)
    z = teacher.noise_sample(64, torch.Generator().manual_seed(0))
    for family in ("mlp", "mlp-separable"):
        student = build_student(family, step, data, dtype=torch.float64, device="cpu", generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            torch.testing.assert_close(student(z), step(z), rtol=0, atol=1e-14)
    cfg = TrainConfig(family="mlp", optimizer="adam", lr=3e-3, steps=40, batch=128, hidden=16)
    executed = PlanExecutor(teacher, cfg, seed=2).run(canonical_plan("pd", 4))
    assert all(r["loss_end"] < r["loss_start"] for r in executed.records)
    assert all(math.isfinite(r["loss_end"]) for r in executed.records)
    first = PlanExecutor(teacher, cfg, seed=2).run(canonical_plan("pd", 4))
    with torch.no_grad():
        torch.testing.assert_close(first(z), executed(z), rtol=0, atol=0)  # bit-for-bit reproducible
    with pytest.raises(ValueError, match="linear family"):
        executed.gains()


def test_operator_matrix_reads_a_linear_map():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(operator_matrix(lambda z: z @ a.T, 2), a)


@pytest.mark.parametrize("inputs", ["forward", "generated"])
def test_one_sgd_step_sees_the_second_moment_of_the_requested_inputs(inputs):
    r"""One SGD step of a diagonal student on a batch of B inputs: a_1 = a_0 - 2 eta q_hat (a_0 - P), q_hat the batch
    second moment per eigen-direction. Its expectation is the core's input variance: forward alpha_j^2 lam + sigma_j^2,
    generated T(N -> j)^2 (alpha_N^2 lam + sigma_N^2) (teacher_composite). B = 20000: relative error of q_hat about
    sqrt(2/B) = 1%, tolerance 5%; the two input laws differ by 11% to 380% here."""
    schedule = make_schedule("vp-cosine", 4)
    lam = np.array([0.3, 4.0, 20.0])
    data = make_gaussian(lam, rotated=True, seed=5)
    teacher = GaussianTeacher(schedule, data)
    cfg = TrainConfig(family="diagonal", optimizer="sgd", lr=0.01, steps=1, batch=20000, input=inputs)
    executor = GaussianPlanExecutor(teacher, cfg, seed=4)
    node = MergeNode((2, 1))
    student, record = executor.train_node(node, [TeacherStep(teacher, 2), TeacherStep(teacher, 1)])
    a0 = step_operators(schedule, lam)[:, 2]
    target = teacher_composite(schedule, lam, 2, 0)
    a1 = eigen_gains(operator_matrix(student, 3), data)
    q_hat = (a0 - a1) / (2 * cfg.lr * (a0 - target))
    forward = schedule.alpha[2] ** 2 * lam + schedule.sigma[2] ** 2
    generated = teacher_composite(schedule, lam, 4, 2) ** 2 * (schedule.alpha[4] ** 2 * lam + schedule.sigma[4] ** 2)
    expected = forward if inputs == "forward" else generated
    np.testing.assert_allclose(q_hat, expected, rtol=0.05)
    # the batch loss is the mean squared error of the warm start, sum_i q_hat_i (a0_i - P_i)^2
    assert record["loss_start"] == pytest.approx(float(np.sum(q_hat * (a0 - target) ** 2)), rel=1e-9)
    # the Adam path draws the same inputs: their covariance is the closed form in the original coordinates
    z = executor.draw_inputs(2, 20000, torch.Generator().manual_seed(8)).numpy()
    u = data.basis()
    np.testing.assert_allclose(np.diag(u.T @ np.cov(z, rowvar=False) @ u), expected, rtol=0.05)


@pytest.mark.parametrize("init,inputs", [("warm", "forward"), ("ddim", "generated")])
def test_image_case_with_the_gaussian_teacher_and_a_mean_equals_closed_form(init, inputs):
    """The image executor (affine students around alpha_j mu) against the one Gaussian teacher with a data mean:
    exact-gd gains (the linear part, read around alpha_N mu) equal the model's gd closed form."""
    from opmerge.experiments.images.distill import ImagePlanExecutor, ImageTrainConfig

    schedule = make_schedule("vp-cosine", 5)
    data = make_gaussian([0.2, 1.0, 4.0], rotated=True, seed=6)
    mean = np.array([1.0, -2.0, 0.5])
    rows = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + torch.as_tensor(mean)
    teacher = GaussianTeacher(schedule, data, mean=mean, train=rows)
    cfg = ImageTrainConfig(family="affine", optimizer="exact-gd", lr=0.05, steps=6, init=init, input=inputs)
    model = core_model(cfg)
    for text in ("(((5 4) 3) (2 1))", "(5 (4 3)) | (2 1)"):
        plan = parse_plan(text, 5)
        executed = ImagePlanExecutor(teacher, cfg, seed=0).run(plan)
        evaluation = evaluate_plan(Problem(schedule, data.lam, model=model, segments=plan.n_segments), plan)
        assert _rel(executed.gains(), evaluation.student) <= 1e-9
        assert executed.off_diagonal() < 1e-10
        nodes = executed.node_gains()
        assert set(nodes) == {str(node) for node in evaluation.node_values}
        for node, value in evaluation.node_values.items():
            assert _rel(nodes[str(node)], value) <= 1e-9


def test_compile_mode_is_checked_once():
    teacher = GaussianTeacher(make_schedule("vp-cosine", 2), make_gaussian([1.0]))
    with pytest.raises(ValueError, match="compile must be one of"):
        GaussianPlanExecutor(teacher, TrainConfig(), compile="fast")


@pytest.mark.slow
def test_compiled_plan_student_trains_as_the_eager_one():
    """torch.compile of the students' minibatch forward passes (mlp family, Adam): the same losses and
    the same trained student as eagerly, to rounding (compiled code may fuse and reorder), and dynamo
    compiled the frames instead of falling back to eager."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    teacher = GaussianTeacher(make_schedule("vp-cosine", 4), make_gaussian([0.3, 4.0, 20.0], rotated=True, seed=5))
    cfg = TrainConfig(family="mlp", optimizer="adam", lr=1e-3, steps=3, batch=64, hidden=16, depth=1)
    node = MergeNode((2, 1))
    out = {}
    for mode in ("off", "default"):
        executor = GaussianPlanExecutor(teacher, cfg, seed=4, compile=mode)
        student, record = executor.train_node(node, [TeacherStep(teacher, 2), TeacherStep(teacher, 1)])
        out[mode] = (record, [p.detach().clone() for p in student.parameters()])
    assert counters["frames"]["ok"] >= 1 and not counters["graph_break"]
    (eager, eager_params), (fast, fast_params) = out["off"], out["default"]
    assert fast["loss_start"] == pytest.approx(eager["loss_start"], rel=1e-12)
    assert fast["loss_end"] == pytest.approx(eager["loss_end"], rel=1e-12)
    for a, b in zip(eager_params, fast_params):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
