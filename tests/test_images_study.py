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


def test_cli_rejects_bad_input(tmp_path, capsys):
    assert validate_images_main(["--segments", "0"]) == 2
    assert validate_images_main(["--quick", "--data", "mnist", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "torchvision" in err or "MNIST files not found" in err
    assert validate_images_main(["--quick", "--steps", "2", "--out", str(tmp_path)]) == 2
    assert "segments must be <= steps" in capsys.readouterr().err
    assert train_teacher_main(["--data", "nope.npy", "--out", str(tmp_path)]) == 2
    assert train_teacher_main(["--schedule", "edm"]) == 2


def test_train_teacher_cli_quick_and_resume(tmp_path, capsys):
    args = ["--quick", "--train-steps", "30", "--hidden", "16", "--device", "cpu", "--out", str(tmp_path), "--no-progress",
            "--n-eval", "200"]
    assert train_teacher_main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"]["step"] == 30 and result["checkpoint"]["finished"]
    assert {"fd_pixels_test", "fd_features_test", "classifier_score"} <= set(result["evaluation"])
    assert (tmp_path / "teacher.pt").is_file() and (tmp_path / "teacher.json").is_file()
    assert train_teacher_main(args + ["--no-evaluate"]) == 0
    assert "step 30/30" in capsys.readouterr().out
    assert train_teacher_main([*args[:-2], "--hidden", "32", "--no-evaluate"]) == 2
    assert "trained with hidden" in capsys.readouterr().err


def test_random_plans_and_config_validation():
    rng = np.random.default_rng(0)
    plans = [random_plan(8, m, rng) for m in (1, 2, 4) for _ in range(5)]
    assert all(p.steps == 8 for p in plans) and {p.n_segments for p in plans} == {1, 2, 4}
    with pytest.raises(ValueError, match="teachers"):
        ImagesStudyConfig(teachers=("nope",))
    with pytest.raises(ValueError, match="schedule"):
        ImagesStudyConfig(schedule="edm")
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
