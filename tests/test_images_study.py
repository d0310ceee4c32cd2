"""The quick image study end to end (through the CLI), its cache, and the CLI entries' error handling."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from opmerge.experiments.images.cli import train_teacher_main, validate_images_main  # noqa: E402
from opmerge.experiments.images.study import ImagesStudyConfig, random_plan  # noqa: E402
from opmerge.plans import parse_plan  # noqa: E402

pytestmark = pytest.mark.bridge



@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("images")
    code = validate_images_main(["--quick", "--device", "cpu", "--out", str(out), "--no-progress", "--json", "--threads", "1"])
    torch.set_num_threads(old)
    return code, out


@pytest.mark.slow
def test_quick_study_writes_json_and_figures(quick_study, capsys):
    code, out = quick_study
    assert code == 0
    result = json.loads((out / "images.json").read_text())
    assert result["config"]["quick"] and result["config"]["steps"] == 8 and result["config"]["segments"] == [1, 2, 4]
    assert result["classifier"]["test_accuracy"] > 0.95
    for stem in ("images_grids_gaussian", "images_grids_trained", "images_gains_gaussian", "images_gains_trained",
                 "images_predicted_vs_measured", "images_linearity"):
        for ext in ("pdf", "png", "json"):
            assert (out / f"{stem}.{ext}").stat().st_size > 0, stem
    # provenance with the device; no figure file takes the result file's name; units in the code-keyed cache
    assert result["provenance"]["device"] == "cpu" and result["provenance"]["config"] == result["config"]
    figure_files = {p for paths in result["figures"].values() for p in paths.values()}
    assert result["result_file"] == str(out / "images.json") and result["result_file"] not in figure_files
    entries = sorted((out / "units").rglob("*.json"))
    assert result["unit_cache"] == {"cached": 0, "computed": len(entries), "executor": "local"} and len(entries) == 20
    assert {json.loads(p.read_text())["namespace"] for p in entries} == {"images-unit"}
    s = result["summary"]
    assert set(s["teachers"]) == {"gaussian", "trained"}
    assert s["teachers"]["gaussian"]["linear_share"] == pytest.approx(1.0)
    # plan students at M = 1, 2, 4 from both teachers; SCoT and TraFlow too
    students = {(r["teacher"], r["recipe"], r["segments"]) for r in s["students"]}
    for m in (1, 2, 4):
        assert ("gaussian", "linear", m) in students and ("trained", "network", m) in students
        assert ("trained", "scot", m) in students and ("gaussian", "traflow", m) in students
    # linear students against the Gaussian teacher follow the model: measured W2 close to predicted, same ranking
    lin = [r for r in result["plan_students"] if r["teacher"] == "gaussian" and r["recipe"] == "linear"]
    for r in lin:
        assert r["w2"]["w2_cov"] == pytest.approx(r["w2_predicted"], rel=0.1)
        assert r["relative_gain_error"]["median"] < 0.05
    pooled = next(e for e in result["rankings"] if e["teacher"] == "gaussian" and e["segments"] == "all")
    assert pooled["w2_cov"]["spearman"] > 0.9
    for r in result["plan_students"] + result["trajectory_students"]:
        assert np.all(np.isfinite(r["gain"])) and len(r["samples"]) == 36
    assert result["teachers"]["trained"]["training"]["step"] == 2000


@pytest.mark.slow
def test_quick_study_rerun_uses_the_cache(quick_study, capsys):
    code, out = quick_study
    assert code == 0
    capsys.readouterr()
    assert validate_images_main(["--quick", "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "0 computed" in text and "rank correlation" in text and "trained teacher" in text


@pytest.mark.slow
def test_calibrate_on_the_trained_teacher_then_predict_and_measure(quick_study, capsys):
    """calibrate --teacher checkpoint -> validate images --costs: pilots held out, floors in the cost model,
    the recommended plan per M trained and ranked against the study's plans (docs/calibration.md §4 and §7)."""
    from opmerge.calibration import load_cost_model
    from opmerge.experiments.calibrate_cli import calibrate_main
    from opmerge.experiments.images.prediction import score_result

    code, out = quick_study
    assert code == 0
    cost_file = out / "cost.json"
    assert calibrate_main(["--teacher", "checkpoint", "--checkpoint", str(out / "teacher"), "--quick", "--law", "sign",
                           "--device", "cpu", "--out", str(cost_file), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "floor" in text and "kappa" in text
    cost = load_cost_model(cost_file)
    assert cost.floor_table is not None and cost.floor_table.steps == 8
    pilots = cost.report["pilot_plans"]
    assert len(pilots) == 4 and all(parse_plan(t, 8).n_merges == 1 for t in pilots)
    # the floor is the part of each pilot's measured W2 that its gains do not carry
    for f in cost.report["floors"]:
        assert 0.0 < f["w2_gain"] and f["floor"] == pytest.approx(max(f["w2"] ** 2 - f["w2_gain"] ** 2, 0.0), rel=1e-12, abs=1e-15)
        assert cost.floor_table.values[f["top"], f["length"]] == pytest.approx(f["floor"], rel=1e-9, abs=1e-15)
    assert validate_images_main(["--quick", "--device", "cpu", "--out", str(out), "--no-progress", "--json", "--threads", "1",
                                 "--teacher", "trained", "--recipe", "network", "--trajectory", "none",
                                 "--costs", str(cost_file)]) == 0
    result = json.loads((out / "images.json").read_text())
    pred = result["calibrated_prediction"]["trained-network"]
    assert pred["shared_with_pilots"] == [] and 0 < pred["pilot_cost_share"] <= 0.25
    for m in ("1", "2", "4"):
        entry = pred["by_segments"][m]
        rec = entry["recommended"]
        assert rec["plan"] == pred["recommendations"][m]["plan"] and 1 <= rec["rank"] <= rec["of"]
        assert rec["of"] == len(entry["plans"]) + (0 if rec["in_study"] else 1)
        assert len(entry["plans"]) == len(set(entry["plans"])) and "recommended" not in entry["names"]
    for ext in ("pdf", "png", "json"):
        assert (out / f"images_calibrated_trained-network.{ext}").stat().st_size > 0
    # the gain part of W2 by hand: 0 for the teacher itself; a sampler that scales the output about the
    # data mean by 1.1 has gains 1.1 g^T, so W2_gain = 0.1 sqrt(sum |v_N|^2 (g^T)^2)
    from opmerge.experiments.calibration import gain_w2, image_basis
    from opmerge.experiments.images.linearity import read_linearity
    from opmerge.experiments.images.teachers import load_checkpoint

    teacher, _ = load_checkpoint(out / "teacher", device="cpu")
    basis = image_basis(teacher)
    z = teacher.noise_sample(512, torch.Generator().manual_seed(3))
    mean = torch.tensor(np.array(teacher.fit.mean), dtype=z.dtype)
    assert gain_w2(teacher.sample, teacher, basis, z) == pytest.approx(0.0, abs=1e-12)
    g = read_linearity(teacher.sample, teacher, inputs=z)  # the study's readout: the same gains
    norm = np.sqrt(float(teacher.schedule.alpha[-1]) ** 2 * g.lam + float(teacher.schedule.sigma[-1]) ** 2)
    by_hand = 0.1 * np.sqrt(np.sum(((norm * g.gain) ** 2)[g.lam > 1e-4]))
    assert gain_w2(lambda x: mean + 1.1 * (teacher.sample(x) - mean), teacher, basis, z) == pytest.approx(by_hand, rel=1e-6)
    # the study's own comparisons still use its own plans only
    assert all("recommended" not in e["names"] for e in result["rankings"])
    # scoring the written result again gives the same numbers
    again = score_result(result, cost)
    assert again["pooled"] == pred["pooled"]
    assert again["by_segments"]["2"]["predicted"] == pred["by_segments"]["2"]["predicted"]


def test_cli_rejects_bad_input(tmp_path, capsys):
    assert validate_images_main(["--segments", "0"]) == 2
    assert validate_images_main(["--quick", "--data", "mnist", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "torchvision" in err or "MNIST files not found" in err
    assert validate_images_main(["--quick", "--steps", "2", "--out", str(tmp_path)]) == 2
    assert "segments must be <= steps" in capsys.readouterr().err
    assert train_teacher_main(["--data", "nope.npy", "--out", str(tmp_path)]) == 2
    assert train_teacher_main(["--schedule", "edm"]) == 2
    capsys.readouterr()
    assert validate_images_main(["--quick", "--out", str(tmp_path), "--costs", str(tmp_path / "none.json")]) == 2
    assert "--costs: cannot read a cost model" in capsys.readouterr().err
    assert validate_images_main(["--quick", "--out", str(tmp_path), "--teacher", "gaussian", "--costs", "c.json"]) == 2
    assert "--costs predicts the network recipe of the trained teacher" in capsys.readouterr().err
    assert not (tmp_path / "images.json").exists()


def _psd_sqrt(c):
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _fd_reference(x, y):
    """Fréchet distance by the symmetric route tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2) (not the code's sqrtm(C1 C2))."""
    c1, c2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    r1 = _psd_sqrt(c1)
    return float(np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(_psd_sqrt(r1 @ c2 @ r1)))


def test_train_teacher_cli_quick_and_resume(tmp_path, capsys):
    from opmerge.experiments.images.data import load_digits_dataset
    from opmerge.experiments.images.metrics import load_or_train_classifier
    from opmerge.experiments.images.teachers import load_checkpoint

    args = ["--quick", "--train-steps", "30", "--hidden", "16", "--device", "cpu", "--out", str(tmp_path), "--no-progress",
            "--n-eval", "200"]
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert train_teacher_main(args + ["--json"]) == 0
        assert torch.get_num_threads() == 1  # the default without --threads
    finally:
        torch.set_num_threads(old)
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"]["step"] == 30 and result["checkpoint"]["finished"]
    assert (tmp_path / "teacher.pt").is_file() and (tmp_path / "teacher.json").is_file()
    # the printed metrics are written, with provenance, beside the checkpoint
    saved = json.loads((tmp_path / "teacher_metrics.json").read_text())
    assert result["metrics_file"] == str(tmp_path / "teacher_metrics.json")
    assert saved["evaluation"] == result["evaluation"] and saved["data_reference"] == result["data_reference"]
    assert saved["provenance"]["device"] == "cpu" and saved["provenance"]["config"]["n_eval"] == 200
    assert saved["provenance"]["config"]["teacher"]["train_steps"] == 30
    # ... and they are the right numbers: the teacher's 200 samples (seed 0) measured by an independent route
    digits = load_digits_dataset()
    teacher, _ = load_checkpoint(tmp_path, device="cpu", dataset=digits)
    x = teacher.sample_images(200, torch.Generator().manual_seed(0)).double().numpy()
    e = result["evaluation"]
    assert e["n"] == 200 and e["fd_pixels_test"] == pytest.approx(_fd_reference(x, digits.test), rel=1e-6)
    model, info = load_or_train_classifier(digits, tmp_path / "cache")
    assert info["cached"]
    with torch.no_grad():
        t = torch.tensor(x, dtype=torch.float32)
        feats = model.body(t).double().numpy()
        probs = torch.softmax(model.head(model.body(t)).double(), dim=1).numpy()
        test_feats = model.body(torch.tensor(digits.test, dtype=torch.float32)).double().numpy()
    assert e["fd_features_test"] == pytest.approx(_fd_reference(feats, test_feats), rel=1e-6)
    marginal = probs.mean(0)
    kl = np.sum(np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1.0) / marginal), 0.0), axis=1)
    assert e["classifier_score"] == pytest.approx(float(np.exp(kl.mean())), rel=1e-9)
    assert result["data_reference"]["fd_pixels_test"] == pytest.approx(_fd_reference(digits.train, digits.test), rel=1e-6)
    assert train_teacher_main(args + ["--no-evaluate"]) == 0
    assert "step 30/30" in capsys.readouterr().out
    assert train_teacher_main([*args[:-2], "--hidden", "32", "--no-evaluate"]) == 2
    assert "trained with hidden" in capsys.readouterr().err


def test_random_plans_and_config_validation():
    rng = np.random.default_rng(0)
    plans = [random_plan(8, m, rng) for m in (1, 2, 4) for _ in range(5)]
    assert all(p.steps == 8 for p in plans) and {p.n_segments for p in plans} == {1, 2, 4}
    from opmerge.errors import InputError, InputTypeError
    from opmerge.experiments.images.teacher_quality import evaluate_teacher_quality

    with pytest.raises(InputError, match="teachers"):
        ImagesStudyConfig(teachers=("nope",))
    with pytest.raises(InputError, match="schedule"):
        ImagesStudyConfig(schedule="edm")
    with pytest.raises(InputTypeError, match="TeacherCheckpoint"):
        evaluate_teacher_quality("teacher.pt", None)
    cfg = ImagesStudyConfig(quick=True).resolved()
    assert cfg.steps == 8 and cfg.recipes_by_teacher == (("gaussian", "linear"), ("trained", "network"))


def test_calibration_recovers_a_known_eta_tau():
    from opmerge import Problem, StudentModel, canonical_plan, evaluate_plan, make_schedule

    from opmerge.experiments.images.comparison import calibrate_eta_tau

    schedule = make_schedule("rf", 6)
    lam = np.geomspace(1e-3, 3.0, 12)
    cfg = ImagesStudyConfig().resolved()
    rows = []
    for m in (1, 2):
        problem = Problem(schedule, lam, model=StudentModel(eta_tau=1.0), segments=m)
        for kind in ("vanilla", "boot", "cd"):
            plan = canonical_plan(kind, 6, m)
            rows.append({"segments": m, "plan": str(plan), "gain": evaluate_plan(problem, plan).student})
    cal = calibrate_eta_tau(schedule, lam, cfg, rows, np.ones(12))
    assert cal["eta_tau"] == pytest.approx(1.0) and cal["sse"] < 1e-20 and not cal["at_grid_edge"]


def _without_run_details(result: dict) -> dict:
    """The study's numbers: the result less paths, timings, provenance and the executor's name."""
    drop = {"provenance", "figures", "result_file", "elapsed_s", "unit_cache", "config", "classifier"}
    out = {k: v for k, v in result.items() if k not in drop}

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("train_seconds", "wall_seconds_this_run")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(out)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "ray"])
def test_study_units_on_other_executors_give_the_local_numbers_bit_for_bit(quick_study, tmp_path, executor):
    if executor == "ray":
        pytest.importorskip("ray")
    code, out = quick_study
    assert code == 0
    args = ["--quick", "--teacher", "trained", "--recipe", "network", "--segments", "1,2", "--trajectory", "scot", "--device", "cpu",
            "--checkpoint", str(out / "teacher"), "--no-progress", "--json", "--threads", "1"]
    results = {}
    for name, extra in (("local", []), (executor, ["--executor", executor, "--workers", "2"])):
        assert validate_images_main(args + ["--out", str(tmp_path / name)] + extra) == 0
        results[name] = json.loads((tmp_path / name / "images.json").read_text())
    assert results[executor]["unit_cache"] == {"cached": 0, "computed": 7, "executor": executor}
    assert results["local"]["unit_cache"]["executor"] == "local"
    local, other = _without_run_details(results["local"]), _without_run_details(results[executor])
    assert other == local
    assert len(local["plan_students"]) == 6 and len(local["trajectory_students"]) == 2
