"""Calibration of a training law on pilots (opmerge.calibration, experiments.calibration, docs/calibration.md).

Independent routes: pilots synthesised from a known step scale (the fit must recover it), the cost
model's JSON round trip, and a quick calibrate -> plan -> measured chain with real torch students.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from opmerge import InputError, canonical_plan, evaluate_plan, make_schedule, parse_plan
from opmerge.calibration import CostModel, PilotNode, fit_step_scale, load_cost_model, pilot_plans
from opmerge.laws import MeasuredTable, adam_error, sign_error
from opmerge.model import StudentModel
from opmerge.objective import Problem
from opmerge.plans import CANONICAL_KINDS, MergeNode

from _cli_helpers import assert_user_error, run


def test_pilot_plans_cover_every_time_and_length_once_and_are_not_compared_plans():
    plans = pilot_plans(8, (2, 3))
    pairs = sorted((n.top, n.top - n.bottom) for p in plans for n in p.merge_nodes())
    assert pairs == [(4, 2), (4, 3), (8, 2), (8, 3)]
    for plan in plans:
        assert plan.steps == 8
        assert all(all(not isinstance(c, MergeNode) for c in n.children) for n in plan.merge_nodes())  # children: teacher steps
        for m in range(1, 9):
            for kind in CANONICAL_KINDS:
                assert str(plan) != str(canonical_plan(kind, 8, m)) or plan.n_segments not in (1, 2, 4)
    assert [str(p) for p in pilot_plans(4, (2, 3))] == ["(4 3) | 2 | 1", "(4 3 2) | 1"]  # N too small for two times


@pytest.mark.parametrize("steps, lengths, times, match", [
    (6, (2, 4), (6, 3), "does not fit|overlaps"),
    (6, (1,), None, "lengths"),
    (6, (2,), (3, 5), "strictly decreasing"),
    (2, (2,), None, "steps"),
])
def test_pilot_plans_refuse_bad_designs(steps, lengths, times, match):
    with pytest.raises(InputError, match=match):
        pilot_plans(steps, lengths, times)


def _synthetic(law: str, kappa_of, lr=3e-4, k=100, seeds=2, noise=0.0):
    rng = np.random.default_rng(0)
    nodes = []
    for j in (6, 3):
        for length, e0 in ((2, 0.05), (3, 0.6)):
            for lam in (0.1, 1.0, 10.0):
                kappa = kappa_of(j, lam)
                for s in range(seeds):
                    start = e0 * (1 + lam / 10)
                    if law == "sign":
                        end = float(sign_error(start, kappa * lr * k))
                    else:
                        end = float(kappa * adam_error(start / kappa, 1.0 * kappa**2, lr=lr, steps=k))
                    end += noise * rng.normal()
                    nodes.append(PilotNode(top=j, length=length, lam=lam, error_start=start, error_end=end, q=1.0, seed=s))
    return nodes


def test_fit_recovers_a_known_step_scale():
    truth = lambda j, lam: 4.0 + j * (1 + math.log10(lam) + 1)  # noqa: E731  in [4, 22]
    table, report = fit_step_scale(_synthetic("sign", truth), "sign", 3e-4, 100, 6)
    ratio = 10 ** (7 / 280)  # grid spacing
    for fit in report["fits"]:
        assert not fit["censored"]
        assert truth(fit["top"], fit["lam"]) / ratio <= fit["kappa"] <= truth(fit["top"], fit["lam"]) * ratio
    # interpolated linearly in j between the pilot times, constant beyond them
    at = table.at([0.1, 1.0, 10.0])
    np.testing.assert_allclose(at[:, 4], at[:, 3] + (at[:, 6] - at[:, 3]) / 3, rtol=1e-12)
    np.testing.assert_allclose(at[:, 2], at[:, 3])


def test_fit_of_adam_pilots_uses_the_sign_scale():
    """Adam pilots with a known scale: the sign-law fit lands within a factor 1.6 (Adam's deceleration)."""
    truth = lambda j, lam: 8.0  # noqa: E731
    _, report = fit_step_scale(_synthetic("adam", truth), "adam", 3e-4, 100, 6)
    for fit in report["fits"]:
        assert 8.0 / 1.6 <= fit["kappa"] <= 8.0 * 1.6, fit
        assert fit["misfit_law"] >= 0 and fit["misfit_sign"] >= 0


def test_censored_entries_are_lower_bounds_filled_from_other_lambdas():
    """At lambda = 10 every pilot converges (start errors below the travel): only a lower bound is measured."""
    nodes = []
    for j in (6, 3):
        for lam, e0 in ((0.1, 0.5), (1.0, 0.4), (10.0, 0.001)):
            for length in (2, 3):
                start = e0 * length / 2
                nodes.append(PilotNode(top=j, length=length, lam=lam, error_start=start,
                                       error_end=float(sign_error(start, 5.0 * 3e-4 * 100)), seed=0))
    _, report = fit_step_scale(nodes, "sign", 3e-4, 100, 6)
    by = {(f["top"], f["lam"]): f for f in report["fits"]}
    for j in (6, 3):
        assert by[(j, 10.0)]["censored"] and not by[(j, 1.0)]["censored"]
        assert by[(j, 10.0)]["kappa_bound"] <= 5.0 * 1.06
        assert by[(j, 10.0)]["kappa"] == pytest.approx(by[(j, 1.0)]["kappa"], rel=1e-12)


def test_cost_model_round_trips_and_builds_the_calibrated_law(tmp_path):
    values = np.full((7, 2), np.nan)
    values[2:] = [[2.0, 5.0]] * 5
    table = MeasuredTable(steps=6, lam=(0.1, 10.0), values=values, quantity="step_scale")
    cost = CostModel(law="adam", lr=1e-3, gd_steps=20, step_table=table, beta1=0.9, beta2=0.999, eps=1e-8, report={"x": 1})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cost.to_dict()))
    back = load_cost_model(path)
    model = back.student_model()
    assert model.training == "adam" and model.lr == 1e-3 and model.gd_steps == 20
    problem = Problem(make_schedule("vp-cosine", 6), [0.1, 10.0], model=model)
    np.testing.assert_allclose(problem.law.scale[:, 2:], [[2.0] * 5, [5.0] * 5])
    # kappa = 2 at lr is Adam at lr 2 * lr on a parameter scaled by 2: the node error written out
    from opmerge.model import input_variance

    e = np.array([0.3, -0.2])
    q_raw = input_variance(problem.schedule, problem.lam)[:, 4]
    expect = [k * float(adam_error(x / k, q * k**2, lr=1e-3, steps=20)) for x, q, k in zip(e, q_raw, (2.0, 5.0))]
    np.testing.assert_allclose(problem.law.error(e, 4), expect, rtol=1e-12)
    assert np.isfinite(evaluate_plan(problem, canonical_plan("pd", 6, 1)).w2)


@pytest.mark.parametrize("content, match", [
    ("{", "cannot read a cost model"),
    ('{"kind": "other"}', "not an opmerge cost model"),
    ('{"kind": "opmerge-cost-model", "law": "adam"}', "lr|gd_steps|step_scale"),
])
def test_load_cost_model_refuses_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        load_cost_model(path)


def test_plan_refuses_costs_with_a_training_option(capsys, tmp_path):
    code, out, err = run(capsys, "plan", "--costs", str(tmp_path / "x.json"), "--training", "gd", "--lr", "0.1", "--gd-steps", "2")
    assert_user_error(code, out, err)
    assert "--costs sets the training law" in err


def test_calibrate_then_plan_then_measure_quick(capsys, tmp_path):
    """The quick chain on CPU: pilots -> cost model -> plan with it -> real students rank as predicted."""
    pytest.importorskip("torch")
    path = tmp_path / "cost.json"
    code, out, err = run(capsys, "calibrate", "--quick", "--out", str(path), "--no-progress")
    assert code == 0, err
    cost = json.loads(path.read_text())
    assert cost["kind"] == "opmerge-cost-model" and cost["law"] == "adam"
    assert cost["provenance"]["config"]["train"]["optimizer"] == "adam"
    kappa = np.array([f["kappa"] for f in cost["report"]["fits"]])
    assert np.all((kappa > 1.0) & (kappa < 100.0))  # an MLP's gain moves faster than one parameter
    assert "(4 3) | 2 | 1" in cost["report"]["pilot_plans"]
    # --json prints the cost model it writes (the pilots come from the unit cache this time)
    code, out, err = run(capsys, "calibrate", "--quick", "--out", str(path), "--json")
    assert code == 0, err
    printed = json.loads(out)
    assert printed == json.loads(path.read_text()) and printed["step_scale"] == cost["step_scale"]
    code, out, err = run(capsys, "plan", "--costs", str(path), "--steps", "4", "--lam", "0.1,1,10", "--json")
    assert code == 0, err
    planned = json.loads(out)
    assert planned["config"]["model"]["training"] == "adam" and "step_table" in planned["config"]["model"]
    # the measured check: the quick ranking study, whose own pilots are seeded apart from its runs
    from opmerge.experiments.studies import run_study, study_config

    result = run_study("ranking", study_config("ranking", {"quick": True, "out": str(tmp_path / "rank"), "progress": False}))
    s = result["summary"]
    assert s["pilot_share"] <= 0.10
    # calibration brings the predicted W2 values to the measured ones (median error in decades)
    assert s["log10_error_adam_calibrated"] < 0.5 * min(s["log10_error_adam"], s["log10_error_flow"]), s
    # and the adam law ranks the plans better than gradient flow does
    assert s["spearman_adam_mean"] > s["spearman_mean"] + 0.2, s


def test_calibrate_on_a_mixture_teacher(capsys, tmp_path):
    """--teacher mixture: single-merge pilots against the exact mixture teacher, kappa and node floors
    in the cost model, and the planner reads it; the gain part of W2 is 0 for the teacher itself."""
    torch = pytest.importorskip("torch")
    from opmerge.experiments.calibration import gain_w2, mixture_basis
    from opmerge.experiments.mixture_teacher import TorchMixtureTeacher
    from opmerge.mixture import mixture_preset

    path = tmp_path / "mix.json"
    code, out, err = run(capsys, "calibrate", "--teacher", "mixture", "--preset", "mixture-16d", "--quick", "--steps", "6",
                         "--out", str(path), "--no-progress")
    assert code == 0, err
    cost = load_cost_model(path)
    assert cost.law == "sign" and cost.floor_table is not None and cost.floor_table.steps == 6
    assert [(f["top"], f["length"]) for f in cost.report["floors"]] == [(6, 2), (6, 4), (3, 2)]
    for f in cost.report["floors"]:
        assert f["floor"] == pytest.approx(max(f["w2"] ** 2 - f["w2_gain"] ** 2, 0.0), rel=1e-12, abs=1e-15)
    assert cost.provenance["config"]["teacher"]["preset"] == "mixture-16d"
    mixture = mixture_preset("mixture-16d", 4.0)
    lam = np.linalg.eigvalsh(mixture.covariance())
    code, out, err = run(capsys, "plan", "--costs", str(path), "--steps", "6", "--segments", "2", "--lam", ",".join(map(str, lam)), "--json")
    assert code == 0, err
    assert "node_floor" in json.loads(out)["config"]["model"]
    teacher = TorchMixtureTeacher(mixture, make_schedule("vp-cosine", 6), dtype=torch.float64)
    z = teacher.noise_sample(4096, torch.Generator().manual_seed(0))
    basis = mixture_basis(teacher)
    assert gain_w2(teacher.sample, teacher, basis, z) == pytest.approx(0.0, abs=1e-12)
    # the basis diagonalises the data: eigen-coordinates of x_0 have covariance diag(lam) and mean 0 (Monte Carlo)
    c = basis.coords(teacher.marginal_sample(0, 200_000, torch.Generator().manual_seed(1)), 0)
    cov = np.cov(c, rowvar=False)
    scale = np.sqrt(np.outer(basis.lam, basis.lam)) + 1e-12
    assert np.max(np.abs(cov - np.diag(basis.lam)) / scale) < 0.03 and np.max(np.abs(c.mean(0)) / np.sqrt(basis.lam + 1e-12)) < 0.03


def test_adam_fit_uses_the_same_scale_as_sign():
    nodes = _synthetic("adam", lambda j, lam: 6.0, noise=1e-4)
    _, adam_report = fit_step_scale(nodes, "adam", 3e-4, 100, 6)
    _, sign_report = fit_step_scale(nodes, "sign", 3e-4, 100, 6)
    assert [f["kappa"] for f in adam_report["fits"]] == [f["kappa"] for f in sign_report["fits"]]


def test_step_table_takes_the_fitted_values_at_pilot_times():
    truth = lambda j, lam: 3.0 if j == 3 else 12.0  # noqa: E731
    table, report = fit_step_scale(_synthetic("sign", truth), "sign", 3e-4, 100, 6)
    at = table.at([0.1, 1.0, 10.0])
    for fit in report["fits"]:
        column = [0.1, 1.0, 10.0].index(fit["lam"])
        assert at[column, fit["top"]] == fit["kappa"]
    assert np.all(at[:, 6] > 3 * at[:, 3])
    np.testing.assert_allclose(at[:, 5], at[:, 3] + 2 * (at[:, 6] - at[:, 3]) / 3, rtol=1e-12)


def test_pilots_of_a_diagonal_student_give_a_unit_step_scale(tmp_path):
    """One scalar parameter per direction (the diagonal family) trained by Adam is the adam law itself:
    the whole pipeline (pilot plans, exact start errors, gain regression, fit) must find kappa = 1."""
    torch = pytest.importorskip("torch")
    from opmerge.io import ResultCache
    from opmerge.experiments.calibration import run_gaussian_pilots
    from opmerge.experiments.executor import TrainConfig
    from opmerge.experiments.gaussian import make_gaussian
    from opmerge.experiments.teacher import GaussianTeacher

    schedule = make_schedule("vp-cosine", 6)
    lam = np.array([0.1, 0.5])
    teacher = GaussianTeacher(schedule, make_gaussian(lam, rotated=False, seed=0), "ddim", dtype=torch.float64, device="cpu")
    train = TrainConfig(family="diagonal", optimizer="adam", lr=2e-3, steps=40, batch=4096, init="warm", input="forward")
    nodes, plans = run_gaussian_pilots(teacher, train, schedule, lam, repeats=1, seed=3, cache=ResultCache(None, "t"),
                                       unit_base={}, n_eval=20000)
    assert plans == ["(6 5) | 4 | (3 2 1)", "(6 5 4) | (3 2) | 1"]
    steps = Problem(schedule, lam).step_values
    node = next(n for n in nodes if n.top == 6 and n.length == 3 and n.lam == 0.1)
    assert node.error_start == pytest.approx(steps[0, 6] - steps[0, 6] * steps[0, 5] * steps[0, 4], rel=1e-12)
    _, report = fit_step_scale(nodes, "sign", 2e-3, 40, 6)
    kappas = [f["kappa"] for f in report["fits"] if not f["censored"]]
    assert kappas and all(0.7 <= k <= 1.3 for k in kappas), report["fits"]


def test_pair_agreement_counts_only_pairs_the_measurement_separates():
    pytest.importorskip("torch")
    from opmerge.experiments.studies.ranking import _pair_agreement

    measured = np.array([[1.0, 0.10], [2.0, 0.11], [3.0, 0.50]])
    se = np.array([[0.1, 0.05], [0.1, 0.05], [0.1, 0.05]])
    texts = [["a", "a"], ["b", "b"], ["c", "a"]]  # plan c is plan a in direction 1: that pair does not count
    predicted = np.array([[0.5, 1.0], [0.7, 2.0], [0.6, 3.0]])
    # direction 0: pairs (a,b), (a,c), (b,c) separated; predicted order a < c < b gets (a,b), (a,c) right, (b,c) wrong
    # direction 1: (a,b) not separated (0.01 < 2 * 0.07), (b,c) separated and right, (a,c) same plan
    assert _pair_agreement(measured, se, predicted, texts) == {"agree": 3, "pairs": 4}


@pytest.mark.parametrize("argv, match", [
    (["--pilot-times", "3,5"], "--pilot-times 3,5 with N = 4"),
    (["--pilot-lengths", "1"], "--pilot-lengths 1"),
    (["--steps", "6", "--pilot-lengths", "2,4", "--pilot-times", "6,3"], "does not fit"),
    (["--lam", "-1"], "--lam values must be > 0"),
    (["--lr", "0"], "--lr"),
    (["--pilot-times", "x"], "--pilot-times"),
    (["--law", "flow"], "--law"),
    (["--teacher", "checkpoint"], "needs --checkpoint"),
    (["--checkpoint", "x.pt"], "--checkpoint applies to --teacher checkpoint"),
    (["--teacher", "checkpoint", "--checkpoint", "x.pt", "--lam", "1"], "--lam/--spectrum apply to --teacher gaussian"),
    (["--teacher", "checkpoint", "--checkpoint", "x.pt", "--repeats", "2"], "--repeats applies to --teacher gaussian"),
    (["--teacher", "checkpoint", "--checkpoint", "x.pt", "--pilot-lengths", "9"], "no merge length"),
    (["--teacher", "checkpoint", "--checkpoint", "no-such-teacher.pt"], "no-such-teacher.pt"),
    (["--preset", "eight-2d"], "--preset/--separation apply to --teacher mixture"),
    (["--teacher", "checkpoint", "--checkpoint", "x.pt", "--hidden", "8"], "--hidden/--depth set an MLP student"),
    (["--teacher", "mixture", "--checkpoint", "x.pt"], "--checkpoint applies to --teacher checkpoint"),
    (["--teacher", "mixture", "--separation", "0"], "--separation"),
    (["--ray-address", "auto"], "--ray-address is for --executor ray"),
    (["--teacher", "mixture", "--unit-cpus", "2"], "--unit-cpus is for --executor ray"),
])
def test_calibrate_refuses_bad_options(capsys, tmp_path, argv, match):
    pytest.importorskip("torch")
    code, out, err = run(capsys, "calibrate", "--quick", "--out", str(tmp_path / "c.json"), *argv)
    assert_user_error(code, out, err)
    assert match in err, err
    assert not (tmp_path / "c.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["process", "ray"])
def test_calibration_pilots_give_the_same_cost_model_on_every_engine(capsys, tmp_path, engine):
    """The pilots of a mixture and of a Gaussian teacher run through another executor: same kappa and floors, bit for bit."""
    pytest.importorskip("torch")
    if engine == "ray":
        pytest.importorskip("ray")
    for teacher in (["--teacher", "mixture", "--preset", "two-2d", "--steps", "6"], ["--teacher", "gaussian", "--steps", "6", "--lam", "0.3,3"]):
        models = {}
        for name in ("local", engine):
            path = tmp_path / f"{teacher[1]}-{name}.json"
            extra = [] if name == "local" else ["--executor", engine, "--workers", "2"]
            code, out, err = run(capsys, "calibrate", *teacher, "--quick", "--out", str(path), "--no-progress", *extra)
            assert code == 0, err
            models[name] = json.loads(path.read_text())
        local, other = models["local"], models[engine]
        assert other["step_scale"] == local["step_scale"]
        assert other.get("node_floor") == local.get("node_floor")
        assert other["report"]["fits"] == local["report"]["fits"]
