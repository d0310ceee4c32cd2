"""Every validation study runs in --quick mode through the CLI, writes its JSON and figure, and resumes."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from opmerge.experiments import cli  # noqa: E402
from opmerge.experiments.studies import EXACTNESS_BOUND, run_study  # noqa: E402

pytestmark = pytest.mark.bridge



def _run(study, tmp_path, capsys, *extra):
    out = tmp_path / study
    code = cli.main([study, "--quick", "--out", str(out), "--device", "cpu", "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert (out / f"{study}.json").is_file()
    for ext in ("png", "pdf", "json"):
        assert (out / f"{study}.{ext}").is_file()
    stored = json.loads((out / f"{study}.json").read_text())
    assert stored["summary"] == result["summary"] and stored["config"]["quick"] is True
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
    assert s["cases"] >= 8 and 0.0 <= s["coverage"] <= 1.0
    assert s["passed"] == (s["coverage"] >= 0.95)
    assert s["coverage"] >= 0.95  # SGD is unbiased for the gd closed form; 99% intervals
    assert result["config"]["lam"] == [0.4, 2.5]


def test_ranking_quick_reports_correlations_and_crossover(tmp_path, capsys):
    result, _ = _run("ranking", tmp_path, capsys)
    s = result["summary"]
    assert -1.0 <= s["spearman_mean"] <= 1.0 and -1.0 <= s["kendall_mean"] <= 1.0
    assert s["crossover_predicted"]  # the model has a BOOT/vanilla crossover in [0.1, 10]
    assert all(0.1 <= x <= 10 for x in s["crossover_predicted"])
    assert len(result["per_lambda"]) == 3 and {row["name"] for row in result["plans"]} >= {"vanilla", "boot", "optimal"}


def test_scot_quick_reads_back_students(tmp_path, capsys):
    result, _ = _run("scot", tmp_path, capsys, "--lam", "0.25,4")
    rows = result["students"]
    assert {(r["method"], r["sampling_steps"]) for r in rows} == {("scot", 1), ("scot", 2), ("traflow", 1), ("traflow", 2)}
    for r in rows:
        assert len(r["gain"]) == 2 and r["closest_plan"] in ("vanilla", "boot", "cd", "pd", "optimal")
        assert r["straightness"] >= 0 and r["consistency"] >= 0 and r["w2_teacher"] >= 0


def test_cli_usage_errors(tmp_path, capsys):
    assert cli.main(["nosuch"]) == 2
    assert cli.main(["exactness", "--quick", "--out", str(tmp_path), "--plan", "(9 1)"]) == 2
    assert cli.main(["exactness", "--quick", "--out", str(tmp_path), "--lam", "-1"]) == 2
    if not torch.cuda.is_available():
        assert cli.main(["exactness", "--quick", "--out", str(tmp_path), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "opmerge: error:" in err
