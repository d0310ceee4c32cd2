"""Every validation study runs in --quick mode through the CLI, writes its JSON and figure, and resumes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from opmerge.experiments import cli  # noqa: E402
from scipy import stats  # noqa: E402

from opmerge.experiments.studies import EXACTNESS_BOUND, run_study  # noqa: E402
from opmerge.experiments.studies.sgd import SGD_COVERAGE_BOUND, coverage_summary  # noqa: E402

pytestmark = pytest.mark.bridge


def _run(study, tmp_path, capsys, *extra):
    out = tmp_path / study
    code = cli.main([study, "--quick", "--out", str(out), "--device", "cpu", "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert (out / f"{study}.json").is_file()
    for ext in ("png", "pdf", "json"):
        assert (out / f"{study}-figure.{ext}").is_file()
    stored = json.loads((out / f"{study}.json").read_text())
    assert stored["summary"] == result["summary"] and stored["config"]["quick"] is True
    # the result file is the result (not the figure's numbers) and says where it was computed
    assert stored["study"] == study and stored["provenance"]["device"] == "cpu"
    assert stored["provenance"]["config"] == stored["config"]
    assert json.loads((out / f"{study}-figure.json").read_text())["figure"] == f"{study}-figure"
    return result, out


def test_exactness_quick_meets_bound_and_resumes(tmp_path, capsys):
    result, out = _run("exactness", tmp_path, capsys)
    s = result["summary"]
    assert s["passed"] and s["max_rel_gap"] <= EXACTNESS_BOUND and s["cases"] == 15
    rows = [row for unit in result["units"].values() for row in unit["plans"]]
    assert {r["name"] for r in rows} == {"vanilla", "boot", "cd", "pd", "optimal"}
    assert any(unit["rotated"] for unit in result["units"].values())
    again = run_study("exactness", quick=True, out=str(out), device="cpu", progress=False)
    assert again["unit_cache"] == {"cached": 3, "computed": 0}
    assert again["summary"]["max_rel_gap"] == s["max_rel_gap"]


def test_sgd_quick_reports_coverage(tmp_path, capsys):
    result, _ = _run("sgd", tmp_path, capsys, "--lam", "0.4,2.5")
    s = result["summary"]
    assert result["config"]["lam"] == [0.4, 2.5]
    # recompute every interval and the coverage from the per-plan means and standard deviations
    n = s["repeats"]
    t_quant = stats.t.ppf(0.5 + 0.99 / 2, n - 1)
    assert s["t_quantile"] == pytest.approx(t_quant, rel=1e-12)
    covered = []
    for row in result["plans"]:
        se = np.asarray(row["sd"]) / math.sqrt(n)
        np.testing.assert_allclose(row["low"], np.asarray(row["mean"]) - t_quant * se, rtol=1e-12)
        np.testing.assert_allclose(row["high"], np.asarray(row["mean"]) + t_quant * se, rtol=1e-12)
        inside = (np.asarray(row["predicted"]) >= row["low"]) & (np.asarray(row["predicted"]) <= row["high"])
        assert list(inside) == row["covered"]
        if row["same_as"] is None:
            covered.extend(inside)
    assert s["cases"] == len(covered) == 2 * len({row["plan"] for row in result["plans"]})
    assert s["coverage"] == pytest.approx(np.mean(covered), abs=1e-15)
    assert s["coverage"] >= 0.95  # SGD is unbiased for the gd closed form; 99% intervals


@pytest.mark.parametrize("hits,cases,passed", [(19, 20, True), (20, 20, True), (18, 20, False), (94, 100, False)])
def test_sgd_pass_rule_is_coverage_at_least_the_bound(hits, cases, passed):
    rows = [{"relative_sd": [0.1], "predicted": [1.0], "same_as": None}]
    summary = coverage_summary(rows, [True] * hits + [False] * (cases - hits), [0.0], [0.1], 12, 3.1, 0.99)
    assert SGD_COVERAGE_BOUND == 0.95
    assert summary["coverage"] == hits / cases and summary["passed"] is passed


def test_ranking_quick_reports_correlations_and_crossover(tmp_path, capsys):
    result, _ = _run("ranking", tmp_path, capsys)
    s = result["summary"]
    # the rank correlations, recomputed with scipy from the measured and predicted W2 of every plan
    names = [row["name"] for row in result["plans"]]
    rhos, taus = [], []
    for k, entry in enumerate(result["per_lambda"]):
        measured = [row["w2_measured"][k] for row in result["plans"]]
        predicted = [row["w2_predicted"][k] for row in result["plans"]]
        rho, tau = stats.spearmanr(measured, predicted).statistic, stats.kendalltau(measured, predicted).statistic
        assert entry["spearman"] == pytest.approx(rho, abs=1e-12) and entry["kendall"] == pytest.approx(tau, abs=1e-12)
        assert entry["measured_best"] == names[int(np.argmin(measured))]
        rhos.append(rho)
        taus.append(tau)
    assert s["spearman_mean"] == pytest.approx(np.mean(rhos), abs=1e-12) and s["kendall_mean"] == pytest.approx(np.mean(taus), abs=1e-12)
    assert s["crossover_predicted"]  # the model has a BOOT/vanilla crossover in [0.1, 10]
    assert all(0.1 <= x <= 10 for x in s["crossover_predicted"])
    assert len(result["per_lambda"]) == 3 and {row["name"] for row in result["plans"]} >= {"vanilla", "boot", "optimal"}


def test_scot_quick_reads_back_students(tmp_path, capsys):
    result, _ = _run("scot", tmp_path, capsys, "--lam", "0.25,4")
    rows = result["students"]
    assert {(r["method"], r["sampling_steps"]) for r in rows} == {("scot", 1), ("scot", 2), ("traflow", 1), ("traflow", 2)}
    for r in rows:
        info = result["datasets"][r["dataset"]]
        norm = np.asarray(info["norm_noise"])
        # the distance to each plan's prediction, recomputed: sqrt(sum_i |v_i|^2 (g_i - S_i)^2)
        for name, pred in info["predictions"][str(r["sampling_steps"])].items():
            expected = math.sqrt(np.sum(norm**2 * (np.asarray(r["gain"]) - np.asarray(pred["student"])) ** 2))
            assert r["plan_distance"][name] == pytest.approx(expected, rel=1e-12)
        assert r["closest_plan"] == min(r["plan_distance"], key=r["plan_distance"].get)
        assert len(r["gain"]) == 2 and np.all(np.asarray(r["gain_low"]) < r["gain"]) and np.all(np.asarray(r["gain"]) < r["gain_high"])
        assert 0 < r["w2_teacher"] < 10 and math.isfinite(r["straightness"]) and math.isfinite(r["consistency"])


def test_cli_usage_errors(tmp_path, capsys):
    assert cli.main(["nosuch"]) == 2
    assert cli.main(["exactness", "--quick", "--out", str(tmp_path), "--plan", "(9 1)"]) == 2
    assert cli.main(["exactness", "--quick", "--out", str(tmp_path), "--lam", "-1"]) == 2
    if not torch.cuda.is_available():
        assert cli.main(["exactness", "--quick", "--out", str(tmp_path), "--device", "cuda"]) == 2
    # an option the study does not use is a usage error, not silently ignored
    assert cli.main(["exactness", "--quick", "--out", str(tmp_path), "--train-steps", "5"]) == 2
    assert cli.main(["sgd", "--quick", "--out", str(tmp_path), "--target", "data"]) == 2
    err = capsys.readouterr().err
    assert "opmerge: error:" in err and "--train-steps does not apply to the exactness study" in err
    assert "--target does not apply to the sgd study" in err


def test_validate_help_lists_all_six_studies(capsys):
    assert cli.main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "{exactness,sgd,ranking,scot,mixture,images}" in out
    assert "opmerge validate images --help" in out
    assert cli.main(["--quick", "images"]) == 2  # images takes its own options after the word images
    assert "the images study has its own options" in capsys.readouterr().err
