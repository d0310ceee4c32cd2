"""``opmerge mixture``: every action against the library, the figures, the cache, and user errors.

Commands run in-process (``opmerge.cli.main`` with ``capsys``) with tiny settings (N <= 5,
Gauss-Hermite order 8); one subprocess test checks that plan and simulate import neither
matplotlib nor torch. The numbers printed are compared with the library's own
(:mod:`opmerge.mixture`, :mod:`opmerge.analysis.mixture`), so a command that computes something
else fails.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from opmerge import StudentModel, canonical_plan, format_plan, make_schedule
from opmerge.cli_options import EXIT_INTERRUPTED
from opmerge.mixture import (Expectation, MixtureProblem, mixture_preset, optimal_mixture_plan, plan_cost,
                             simulate_plan)

from _cli_helpers import REPO, assert_user_error, run, run_json  # noqa: E402

pytest.importorskip("matplotlib")

TINY = ("--order", "8")
GRID = ("--separations", "0,3", "--eta-taus", "0.5,5", "--steps", "5", *TINY)


def tiny_problem(steps: int, separation: float = 4.0, eta_tau: float = 1.0, preset: str = "two-2d") -> MixtureProblem:
    return MixtureProblem(mixture_preset(preset, separation), make_schedule("vp-cosine", steps), StudentModel(eta_tau=eta_tau),
                          expectation=Expectation("auto", order=8))


def figure_files(folder, stem: str) -> dict:
    paths = {ext: folder / f"{stem}.{ext}" for ext in ("pdf", "png", "json")}
    for ext, path in paths.items():
        assert path.is_file() and path.stat().st_size > 0, f"{path.name} missing"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"
    return json.loads(paths["json"].read_text())


def cache_entries(folder) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted((folder / "cache").rglob("*.json"))}


# ------------------------------------------------------------------------------------------
# plan and simulate
# ------------------------------------------------------------------------------------------


def test_plan_json_is_the_library_answer(capsys):
    out = run_json(capsys, "mixture", "plan", "--steps", "4", "--segments", "2", "--separation", "3", *TINY)
    problem = tiny_problem(4, separation=3.0)
    picked = optimal_mixture_plan(problem, 2)
    assert out["command"] == "mixture plan"
    assert out["planner"]["plan"] == format_plan(picked.plan)
    assert out["planner"]["cost"] == pytest.approx(picked.cost, rel=1e-12)
    sim = simulate_plan(problem, picked.plan)
    assert out["planner"]["simulation"]["mse"] == pytest.approx(sim.mse, rel=1e-12)
    assert out["planner"]["simulation"]["w2"] == pytest.approx(sim.w2, rel=1e-9)
    assert set(out["canonical"]) == {"vanilla", "boot", "cd", "pd"}
    for kind, entry in out["canonical"].items():
        plan = canonical_plan(kind, 4, 2)
        assert entry["plan"] == format_plan(plan)
        assert entry["planner_cost"] == pytest.approx(plan_cost(picked.tables, plan), rel=1e-12)
        assert entry["simulation"]["mse"] == pytest.approx(simulate_plan(problem, plan, w2=False).mse, rel=1e-12)
    mses = {"planner": out["planner"]["simulation"]["mse"], **{k: v["simulation"]["mse"] for k, v in out["canonical"].items()}}
    assert out["best_by_mse"] == [k for k, v in mses.items() if v == min(mses.values())]
    config = out["config"]
    assert config["schedule"]["steps"] == 4 and config["segments"] == 2 and config["family"] == "gated"
    assert config["data"] == {"source": "preset", "preset": "two-2d", "separation": 3.0}
    assert config["mixture"]["means"] == problem.mixture.to_dict()["means"]
    assert config["expectation"]["order"] == 8
    assert out["provenance"]["config"] == config


def test_plan_text_report(capsys):
    code, out, err = run(capsys, "mixture", "plan", "--steps", "3", "--segments", "1", "--no-w2", *TINY)
    assert code == 0 and err == ""
    picked = optimal_mixture_plan(tiny_problem(3), 1)
    assert f"planner's plan: {format_plan(picked.plan)}" in out
    for name in ("planner", "vanilla", "boot", "cd", "pd"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "W2: skipped (--no-w2)" in out
    problem = tiny_problem(3)
    plans = {"planner": picked.plan, **{kind: canonical_plan(kind, 3, 1) for kind in ("vanilla", "boot", "cd", "pd")}}
    mse = {name: simulate_plan(problem, plan, w2=False).mse for name, plan in plans.items()}
    starred = [line.split()[0] for line in out.splitlines() if line.endswith("*")]
    assert starred == [name for name in plans if mse[name] == min(mse.values())]
    assert len(starred) >= 2  # N = 3: PD is the BOOT chain (a tie), every tied row is starred


def test_plan_progress_lines(capsys):
    code, _, err = run(capsys, "mixture", "plan", "--steps", "2", "--segments", "1", "--no-w2", "--progress", *TINY)
    assert code == 0
    lines = err.splitlines()
    assert lines and all(line.startswith("opmerge mixture plan: ") for line in lines)
    assert "planner tables 2/2" in err and "simulated 5/5" in err


@pytest.mark.parametrize("suffix", ["json", "npz"])
def test_mixture_file_overrides_the_preset(capsys, tmp_path, suffix):
    mixture = mixture_preset("two-2d", 2.5)
    path = tmp_path / f"mix.{suffix}"
    if suffix == "json":
        path.write_text(json.dumps(mixture.to_dict()))
    else:
        np.savez(path, weights=mixture.weights, means=mixture.means, covariances=mixture.covariances)
    out = run_json(capsys, "mixture", "simulate", "((3 2) 1)", "--mixture", str(path), "--preset", "eight-2d", "--no-w2", *TINY)
    assert out["config"]["data"] == {"source": "file", "file": str(path)}
    assert out["config"]["mixture"]["means"] == mixture.means.tolist()
    expected = simulate_plan(tiny_problem(3, separation=2.5), "((3 2) 1)", w2=False).mse
    assert out["simulations"][0]["mse"] == pytest.approx(expected, rel=1e-12)


def test_simulate_plans_and_canonical_names(capsys):
    out = run_json(capsys, "mixture", "simulate", "(4 3) | (2 1)", "boot", "--segments", "2",
                   "--eta-tau", "2", *TINY)
    problem = tiny_problem(4, eta_tau=2.0)
    sims = out["simulations"]
    assert [s["plan"] for s in sims] == ["(4 3) | (2 1)", format_plan(canonical_plan("boot", 4, 2))]
    for s in sims:
        exact = simulate_plan(problem, s["plan"])
        assert s["mse"] == pytest.approx(exact.mse, rel=1e-12)
        assert s["w2"] == pytest.approx(exact.w2, rel=1e-9) and s["w2_method"] == exact.w2_method
        assert s["n_merges"] == 2 and s["nodes"]
    assert out["config"]["model"]["eta_tau"] == 2.0 and out["config"]["schedule"]["steps"] == 4
    code, text, err = run(capsys, "mixture", "simulate", "(4 3) | (2 1)", "--no-w2", *TINY)
    assert code == 0 and err == "" and "(4 3) | (2 1)" in text and "vanilla 4..3 | vanilla 2..1" in text


def test_plan_and_simulate_import_neither_matplotlib_nor_torch():
    script = (
        "import sys\n"
        "from opmerge.cli import main\n"
        "assert main(['mixture', 'plan', '--steps', '2', '--segments', '1', '--order', '8', '--no-w2', '--json']) == 0\n"
        "assert main(['mixture', 'simulate', '(2 1)', '--order', '8', '--no-w2']) == 0\n"
        "assert main(['mixture', 'merge-error', '--steps', '2', '--separations', '1', '--order', '8', '--no-plot', '--out', sys.argv[1]]) == 0\n"
        "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'torch'}))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), OPENBLAS_NUM_THREADS="1")
    out_dir = REPO / "tests" / ".mixture-no-plot"  # not written: --no-plot
    proc = subprocess.run([sys.executable, "-c", script, str(out_dir)], capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    assert not out_dir.exists()


# ------------------------------------------------------------------------------------------
# merge-error
# ------------------------------------------------------------------------------------------


def test_merge_error_figure_and_json(capsys, tmp_path):
    from opmerge.analysis.mixture import merge_errors

    out = run_json(capsys, "mixture", "merge-error", "--separations", "0,3", "--steps", "4", "--out", str(tmp_path), *TINY)
    expected = merge_errors("two-2d", [0.0, 3.0], steps=4, order=8)
    assert out["merged_steps"] == [1, 2, 3, 4]
    assert [c["separation"] for c in out["curves"]] == [0.0, 3.0]
    for got, want in zip(out["curves"], expected["curves"]):
        np.testing.assert_allclose(got["data_side"], want["data_side"], rtol=1e-12, atol=1e-25)
        np.testing.assert_allclose(got["noise_side"], want["noise_side"], rtol=1e-12, atol=1e-25)
    # one step is exact in the gated family (rounding), so is every merge at separation 0; the rest is not
    below = {(b["separation"], b["side"], b["merged_steps"]) for b in out["below_floor"]}
    assert (3.0, "data_side", 1) in below and (3.0, "noise_side", 1) in below
    assert all((0.0, side, m) in below for side in ("data_side", "noise_side") for m in range(1, 5))
    assert not any(sep == 3.0 and m > 1 for sep, _, m in below)
    fig = figure_files(tmp_path, "mixture-merge-error")
    assert fig["data"]["floor"] == out["floor"] == 1e-16 and "floor" in fig["data"]["caption"]
    assert fig["config"]["separations"] == [0.0, 3.0] and fig["config"]["steps"] == 4
    assert out["files"] == [str(tmp_path / f"mixture-merge-error.{ext}") for ext in ("pdf", "png", "json")]
    assert out["provenance"]["config"] == out["config"]


def test_merge_error_text(capsys, tmp_path):
    code, out, err = run(capsys, "mixture", "merge-error", "--separations", "2", "--steps", "3", "--no-plot", "--no-progress",
                         "--floor", "1e-20", "--out", str(tmp_path / "x"), *TINY)
    assert code == 0 and err == ""
    assert "data side (m -> 0)" in out and "noise side (3 -> 3 - m)" in out and "s = 2" in out and "1e-20" in out
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------
# phase and honesty: the cells and their cache
# ------------------------------------------------------------------------------------------


def test_phase_figure_json_and_resume(capsys, tmp_path):
    from opmerge.analysis.classify import classify_plan
    from opmerge.analysis.mixture import MixtureCell, evaluate_cell
    from opmerge.plans import parse_plan

    code, text, err = run(capsys, "mixture", "phase", *GRID, "--out", str(tmp_path), "--json")
    assert code == 0, err
    first = json.loads(text)
    progress = err.splitlines()
    assert len(progress) == 4 and all("computed in" in line for line in progress)
    assert first["cache"]["computed"] == 4 and first["cache"]["cached"] == 0
    entries = cache_entries(tmp_path)
    assert len(entries) == 4
    cells = first["cells"]
    assert [(c["separation"], c["eta_tau"]) for c in cells] == [(0.0, 0.5), (3.0, 0.5), (0.0, 5.0), (3.0, 5.0)]
    record = evaluate_cell(MixtureCell("two-2d", 3.0, 5.0, steps=5, segments=1, order=8))
    cell = cells[3]
    for key in ("optimal_plan", "planner_plan", "linear_plan", "plans"):
        assert cell[key] == record[key]
    assert cell["regret"] == pytest.approx(record["regret"], rel=1e-9, abs=1e-15)
    for c in cells:
        assert c["optimal_family"] == classify_plan(parse_plan(c["optimal_plan"])).family
        assert c["equals_linear"] == (abs(c["linear_mse"] - c["optimal_mse"]) <= 1e-9 * abs(c["optimal_mse"]))
        assert c["regret"] >= 0 and c["planner_mse"] >= c["optimal_mse"]
    assert first["summary"]["differs_from_linear"] == sum(not c["equals_linear"] for c in cells)
    fig = figure_files(tmp_path, "mixture-phase")
    assert fig["data"]["separations"] == [0.0, 3.0] and fig["data"]["eta_taus"] == [0.5, 5.0]
    for key in ("equals_linear", "regret", "optimal_plan", "linear_plan", "planner_plan"):  # rows: eta*tau; columns: separation
        assert fig["data"][key] == [[c[key] for c in cells[:2]], [c[key] for c in cells[2:]]], key
    assert fig["data"]["family"] == [[c["optimal_family"] for c in cells[:2]], [c["optimal_family"] for c in cells[2:]]]

    # the rerun resumes: same numbers, every cell from the cache, no entry rewritten
    code, text, err = run(capsys, "mixture", "phase", *GRID, "--out", str(tmp_path), "--json")
    assert code == 0, err
    second = json.loads(text)
    assert second["cells"] == first["cells"]
    assert second["cache"]["computed"] == 0 and second["cache"]["cached"] == 4
    assert all(line.endswith("from the cache") for line in err.splitlines())
    assert cache_entries(tmp_path) == entries

    # honesty on the same grid reuses the cache
    code, text, err = run(capsys, "mixture", "honesty", *GRID, "--out", str(tmp_path), "--scatter", "3,5", "--json")
    assert code == 0, err
    honesty = json.loads(text)
    assert honesty["cache"]["computed"] == 0 and cache_entries(tmp_path) == entries
    assert [c["spearman"] for c in honesty["cells"]] == pytest.approx([r for r in _spearmans(tmp_path, cells)], nan_ok=True)
    assert [c["regret"] for c in honesty["cells"]] == [c["regret"] for c in cells]
    scatter = honesty["scatter"]
    assert (scatter["separation"], scatter["eta_tau"], scatter["chosen_by"]) == (3.0, 5.0, "--scatter")
    assert [(r["plan"], r["mse"], r["planner_cost"]) for r in scatter["rows"]] == [tuple(r) for r in record["rows"]]
    fig = figure_files(tmp_path, "mixture-honesty")
    assert fig["data"]["plans"] == [r[0] for r in record["rows"]]
    assert fig["data"]["marked"]["planner"] == record["planner_plan"] and fig["data"]["marked"]["optimum"] == record["optimal_plan"]


def _spearmans(folder, cells):
    """The Spearman of each cell as stored in the cache (the numbers honesty must report)."""
    stored = {}
    for path in (folder / "cache").rglob("*.json"):
        result = json.loads(path.read_text())["result"]
        stored[(result["cell"]["separation"], result["cell"]["eta_tau"])] = result["spearman"]
    return [stored[(c["separation"], c["eta_tau"])] for c in cells]


def test_honesty_text_and_default_scatter(capsys, tmp_path):
    code, out, err = run(capsys, "mixture", "honesty", "--separations", "4", "--eta-taus", "1", "--steps", "3", "--no-progress",
                         "--out", str(tmp_path), *TINY)
    assert code == 0 and err == ""
    from opmerge.analysis.mixture import MixtureCell, evaluate_cell

    record = evaluate_cell(MixtureCell("two-2d", 4.0, 1.0, steps=3, segments=1, order=8))
    row = next(line for line in out.splitlines() if line.split()[:2] == ["4", "1"])
    assert row.split()[2] == str(record["plans"]) and f"{record['spearman']:.3f}" in row
    assert "scatter: separation 4, eta*tau 1 (lowest Spearman)" in out and "1 cell(s) computed, 0 from the cache" in out
    figure_files(tmp_path, "mixture-honesty")


def test_phase_text_without_plot_or_cache(capsys, tmp_path):
    code, out, err = run(capsys, "mixture", "phase", "--separations", "4", "--eta-taus", "1", "--steps", "3", "--no-plot",
                         "--no-cache", "--no-progress", "--out", str(tmp_path), *TINY)
    assert code == 0 and err == ""
    assert "exact optimum" in out and "linear regime's answer" in out and "1 cell(s) computed, 0 from the cache" in out
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_a_cell_is_exit_130(capsys, tmp_path, monkeypatch):
    import opmerge.analysis.mixture as study

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "evaluate_cell", interrupted)
    code, out, err = run(capsys, "mixture", "phase", *GRID, "--out", str(tmp_path))
    assert code == EXIT_INTERRUPTED and out == ""
    assert err.splitlines() == ["opmerge: interrupted"]


# ------------------------------------------------------------------------------------------
# the plotting functions on made-up cells (cases the tiny grids above do not reach)
# ------------------------------------------------------------------------------------------


def test_phase_plot_orientation_and_marks():
    import matplotlib.pyplot as plt

    from opmerge.analysis.mixture_plots import DIFFERS_HATCH, plot_mixture_phase

    rows = []
    for eta in (10.0, 0.1):  # given out of order: the figure sorts
        for sep in (4.0, 0.0, 2.0):
            rows.append({"separation": sep, "eta_tau": eta, "optimal_plan": "(3 2 1)" if sep else "((3 2) 1)",
                         "optimal_family": "vanilla" if sep else "boot", "equals_linear": sep != 4.0 or eta != 10.0,
                         "regret": 0.01 * sep * eta, "linear_plan": "((3 2) 1)", "planner_plan": "(3 (2 1))"})
    fig, data = plot_mixture_phase(rows)
    assert data["separations"] == [0.0, 2.0, 4.0] and data["eta_taus"] == [0.1, 10.0]
    assert data["family"] == [["boot", "vanilla", "vanilla"]] * 2
    assert data["equals_linear"] == [[True, True, True], [True, True, False]]
    assert data["regret"][1] == pytest.approx([0.0, 0.2, 0.4])
    hatched = [p for p in fig.axes[0].patches if p.get_hatch() == DIFFERS_HATCH]
    assert len(hatched) == 1 and hatched[0].get_x() == 3.0 and hatched[0].get_y() == pytest.approx(1.0)  # the (4, 10) cell: from the midpoints 3 and sqrt(0.1 * 10)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "(3 2 1)\nplanner regret 40%" in texts and "((3 2) 1)\nplanner regret 0" in texts
    plt.close(fig)


def test_honesty_scatter_marks_pick_and_optimum():
    import matplotlib.pyplot as plt

    from opmerge.analysis.mixture_plots import plot_honesty_scatter

    record = {"rows": [["(3 2 1)", 0.2, 0.25], ["((3 2) 1)", 0.1, 0.3], ["(3 (2 1))", 0.4, 0.2]], "spearman": -0.5,
              "regret": 3.0, "planner_plan": "(3 (2 1))", "optimal_plan": "((3 2) 1)"}
    fig, data = plot_honesty_scatter(record, canonical={"vanilla": "(3 2 1)", "cd": "(3 (2 1))"})
    assert data["marked"] == {"vanilla": "(3 2 1)", "cd": "(3 (2 1))", "planner": "(3 (2 1))", "optimum": "((3 2) 1)"}
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert tuple(lines["planner's pick"].get_xydata()[0]) == (0.2, 0.4)
    assert tuple(lines["exact optimum"].get_xydata()[0]) == (0.3, 0.1)
    assert data["mse"] == [0.2, 0.1, 0.4] and data["planner_cost"] == [0.25, 0.3, 0.2] and data["log_axes"] is False
    plt.close(fig)


def test_sample_panels_share_one_window_unless_asked():
    import matplotlib.pyplot as plt

    from opmerge.analysis.mixture_plots import plot_samples

    small, large = np.zeros((3, 2)) + [[0, 0], [1, 1], [0, 1]], 10 * np.ones((2, 3)) * [[1, 1, 1], [-1, -1, -1]]
    fig, data = plot_samples({"a": small, "b": large}, labels={"a": np.array([0, 1, 1])})
    assert [ax.get_xlim() for ax in fig.axes][0] == fig.axes[1].get_xlim() and fig.axes[0].get_xlim()[1] > 10
    assert data["a"]["labels"] == [0, 1, 1] and data["b"]["points"] == [[10, 10], [-10, -10]]
    plt.close(fig)
    fig, _ = plot_samples({"a": small, "b": large}, share=False)
    assert fig.axes[0].get_xlim()[1] < 2 < fig.axes[1].get_xlim()[1]
    plt.close(fig)
    with pytest.raises(ValueError, match="shape"):
        plot_samples({"a": np.zeros(3)})


# ------------------------------------------------------------------------------------------
# bad input: exit 2, one line, no traceback
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, needle", [
    (["plan", "--preset", "four-3d"], "--preset"),
    (["plan", "--separation", "-1"], "--separation"),
    (["plan", "--separation", "nan"], "--separation"),
    (["plan", "--steps", "0"], "--steps"),
    (["plan", "--steps", "3", "--segments", "4"], "--segments"),
    (["plan", "--order", "1"], "--order"),
    (["plan", "--eta-tau", "-2"], "--eta-tau"),
    (["plan", "--mixture", "no-such-file.json"], "--mixture"),
    (["simulate", "(4 3"], "PLAN 1"),
    (["simulate", "(4 3) (2 1)"], "PLAN 1"),
    (["simulate", "(2 1)", "(3 2 1)"], "different numbers"),
    (["simulate", "(2 1)", "--steps", "3"], "--steps"),
    (["simulate"], "PLAN"),
    (["merge-error", "--separations", "1,-2"], "--separations"),
    (["merge-error", "--separations", "1,1"], "--separations"),
    (["merge-error", "--preset", "mixture-16d"], "--preset"),
    (["phase", "--eta-taus", "0"], "--eta-taus"),
    (["phase", "--steps", "9"], "--steps"),
    (["honesty", "--scatter", "5,5"], "--scatter"),
    (["nonsense"], "ACTION"),
])
def test_bad_input_is_one_line(capsys, argv, needle):
    code, out, err = run(capsys, "mixture", *argv)
    assert_user_error(code, out, err)
    assert needle in err


def test_out_that_is_a_file_is_refused_before_work(capsys, tmp_path, monkeypatch):
    import opmerge.analysis.mixture as study

    monkeypatch.setattr(study, "evaluate_cell", lambda cell: pytest.fail("a cell was computed"))
    monkeypatch.setattr(study, "merge_errors", lambda *a, **k: pytest.fail("merge errors were computed"))
    target = tmp_path / "taken"
    target.write_text("x")
    for action in ("merge-error", "phase", "honesty"):
        code, out, err = run(capsys, "mixture", action, "--out", str(target))
        assert_user_error(code, out, err)
        assert "--out" in err and "not a folder" in err


def test_mixture_file_with_bad_content(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"weights": [0.5, 0.5], "means": [[0, 0], [1, 1]], "covariances": [[[1, 0], [0, -1]]] * 2}))
    code, out, err = run(capsys, "mixture", "plan", "--mixture", str(path))
    assert_user_error(code, out, err)
    assert "--mixture" in err and "positive definite" in err


def test_help_and_no_action(capsys):
    code, out, _ = run(capsys, "mixture")
    assert code == 0 and "usage: opmerge mixture" in out
    for action in ("plan", "simulate", "merge-error", "phase", "honesty"):
        assert action in out
        code, text, _ = run(capsys, "mixture", action, "--help")
        assert code == 0 and f"usage: opmerge mixture {action}" in text
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "mixture" in out


def test_json_is_strict_with_nan(capsys):
    """--no-w2 leaves W2 undefined: strict JSON writes null, never NaN."""
    code, out, err = run(capsys, "mixture", "plan", "--steps", "2", "--segments", "1", "--no-w2", "--json", *TINY)
    assert code == 0, err
    assert "NaN" not in out
    assert json.loads(out)["planner"]["simulation"]["w2"] is None
    assert math.isfinite(json.loads(out)["planner"]["simulation"]["mse"])
