"""The ``opmerge`` command line: outputs against the library, acceptance cases, user errors.

Commands run in-process (``opmerge.cli.main(argv)`` with ``capsys``); two subprocess tests check
the real process: exit status 2 with one stderr line for a malformed plan, and that ``opmerge
plan`` imports none of sympy, matplotlib, torch, ``analysis``, ``experiments``. Errors by type,
progress lines and random input are in ``test_cli_errors.py``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from opmerge import Problem, StudentModel, canonical_plan, evaluate_plan, make_schedule, parse_plan, solve
from opmerge.plans import draw_plan
from opmerge.cli import COMMANDS, main
from opmerge.errors import InputError
from opmerge.cli_options import EXIT_INTERRUPTED, EXIT_USAGE, UsageError, emit_json, run_main
from opmerge.io import to_jsonable, write_json

from _cli_helpers import REPO, assert_user_error, run, run_json  # noqa: E402


# ------------------------------------------------------------------------------------------
# plan
# ------------------------------------------------------------------------------------------


def test_plan_defaults_json(capsys):
    out = run_json(capsys, "plan")
    for key in ("plan", "student", "teacher", "exact_flow", "w2", "exact", "lower_bound", "config"):
        assert key in out
    assert math.isfinite(out["w2"]) and out["exact"] is True
    assert out["lower_bound"] <= out["w2"] + out["tolerance"]
    config = out["config"]
    assert config["schedule"]["name"] == "vp-cosine" and config["schedule"]["steps"] == 16
    assert config["lam"] == [0.5] and config["segments"] == 1 and config["solver"] == "ddim" and config["target"] == "teacher"
    assert config["model"] == StudentModel().to_dict()
    assert config["time_budget"] > 0 and config["node_budget"] > 0
    # the same numbers as the library
    solution = solve(Problem(make_schedule("vp-cosine", 16), 0.5))
    assert out["plan"] == str(solution.plan)
    assert out["w2"] == solution.w2
    assert out["student"] == solution.evaluation.student.tolist()


def test_plan_text_report(capsys):
    code, out, err = run(capsys, "plan", "--steps", "6", "--lam", "0.3")
    assert code == 0 and err == ""
    assert "optimal plan: (((((6 5) 4) 3) 2) 1)" in out
    assert "segment 1/1: z_6 -> z_0" in out  # the drawing
    assert "W2 = " in out and "exact: yes" in out and "lower bound = " in out and "method " in out


@pytest.mark.parametrize("command, label, extra", [("plan", "optimal plan", []), ("evaluate", "plan", ["--plan", "boot"])])
@pytest.mark.parametrize("draw", [True, False])
def test_text_report_starts_with_the_problem_then_the_plan(capsys, command, label, extra, draw):
    code, out, err = run(capsys, command, "--steps", "6", "--lam", "0.3", *extra, *([] if draw else ["--no-draw"]))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == (f"opmerge {command}: schedule vp-cosine, N = 6, M = 1, solver ddim, target teacher; "
                        "init warm, training flow, eta*tau 0.5, input forward, budget per-merge")
    assert lines[1:4] == ["lambda = 0.3", "", f"{label}: (((((6 5) 4) 3) 2) 1)"]
    rest = lines[4:]
    if draw:
        drawing = draw_plan(parse_plan("(((((6 5) 4) 3) 2) 1)")).splitlines()
        assert rest[: len(drawing)] == drawing
        rest = rest[len(drawing):]
    assert rest[0] == "" and rest[1].startswith("S = ") and "(student, teacher, exact flow" in rest[1]


def test_several_lambdas_are_one_joint_problem(capsys):
    repeated = run_json(capsys, "plan", "--steps", "5", "--lam", "0.3", "--lam", "3")
    listed = run_json(capsys, "plan", "--steps", "5", "--lam", "0.3,3")
    assert repeated["plan"] == listed["plan"] and repeated["w2"] == listed["w2"]
    assert len(listed["student"]) == 2 and listed["config"]["weights"] == [1.0, 1.0]
    solution = solve(Problem(make_schedule("vp-cosine", 5), [0.3, 3.0]))
    assert listed["w2"] == solution.w2
    code, out, _ = run(capsys, "plan", "--steps", "5", "--lam", "0.3,3", "--no-draw")
    assert code == 0 and "S (student)" in out  # a table for several directions


def test_spectrum_option(capsys):
    try:
        import opmerge.spectra  # noqa: F401
    except ModuleNotFoundError:
        assert_user_error(*run(capsys, "plan", "--spectrum", "0.5,2,10"))
        return
    out = run_json(capsys, "plan", "--steps", "5", "--spectrum", "0.5,2,10")
    assert sorted(out["config"]["lam"]) == [0.5, 2.0, 10.0]
    assert out["config"]["directions"]["source"] == "spectrum"


def test_spectrum_wiring_with_a_stand_in_module(capsys, monkeypatch):
    """--spectrum/--bins call opmerge.spectra.load_spectrum / bin_spectrum and use their lam and weights."""
    from collections import namedtuple

    Spectrum = namedtuple("Spectrum", "lam weights name")
    Binned = namedtuple("Binned", "spectrum error")
    calls = []

    def load_spectrum(spec):
        calls.append(("load", spec))
        return Spectrum(np.array([0.5, 2.0, 10.0]), np.array([1.0, 2.0, 3.0]), "stand-in")

    def bin_spectrum(spectrum, bins):
        calls.append(("bin", bins))
        return Binned(Spectrum(np.array([1.0, 10.0]), np.array([3.0, 3.0]), "stand-in/2"), {"w2_bound": 0.25})

    fake = types.ModuleType("opmerge.spectra")
    fake.load_spectrum, fake.bin_spectrum = load_spectrum, bin_spectrum
    monkeypatch.setitem(sys.modules, "opmerge.spectra", fake)
    out = run_json(capsys, "plan", "--steps", "5", "--spectrum", "whatever", "--bins", "2")
    assert calls == [("load", "whatever"), ("bin", 2)]
    assert out["config"]["lam"] == [1.0, 10.0] and out["config"]["weights"] == [3.0, 3.0]
    assert out["config"]["directions"] == {"source": "spectrum", "name": "stand-in/2", "directions": 2, "bins": 2, "binning_error": {"w2_bound": 0.25}}
    solution = solve(Problem(make_schedule("vp-cosine", 5), [1.0, 10.0], weights=[3.0, 3.0]))
    assert out["w2"] == solution.w2

    def rejects(spec):
        raise InputError("no such spectrum")

    fake.load_spectrum = rejects
    code, o, err = run(capsys, "plan", "--spectrum", "nope")
    assert_user_error(code, o, err)
    assert "--spectrum: no such spectrum" in err


# ------------------------------------------------------------------------------------------
# compare: the acceptance cases of docs/theory.md section 6
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lam", "init", "winner"),
    [("0.3", "warm", "boot"), ("10", "warm", "vanilla"), ("0.3", "ddim", "vanilla"), ("10", "ddim", "vanilla")],
)
def test_compare_acceptance(capsys, lam, init, winner):
    out = run_json(capsys, "compare", "--steps", "6", "--lam", lam, "--init", init)
    strategies = out["strategies"]
    assert set(strategies) == {"vanilla", "boot", "cd", "pd", "optimal"}
    assert out["exact"] is True
    optimum = strategies["optimal"]["w2"]
    assert optimum == out["w2"]
    # the winner ties the optimum (W2 values, not plan strings)
    assert abs(strategies[winner]["w2"] - optimum) <= out["tolerance"]
    assert strategies[winner]["attains_optimum"] is True and strategies[winner]["ratio"] == 1.0
    assert strategies[winner]["plan"] == str(canonical_plan(winner, 6))
    if (lam, init) == ("0.3", "warm"):  # BOOT is the unique optimum
        assert [k for k in ("vanilla", "boot", "cd", "pd") if strategies[k]["attains_optimum"]] == ["boot"]
    for entry in strategies.values():
        assert entry["ratio"] >= 1.0
    # the text table marks the same row
    code, text, _ = run(capsys, "compare", "--steps", "6", "--lam", lam, "--init", init)
    assert code == 0
    row = next(line for line in text.splitlines() if line.startswith(winner + " "))
    assert row.rstrip().endswith("*") and "1.000" in row
    assert f"optimal: {winner}" in text


def test_compare_several_directions_and_truncation(capsys):
    code, out, _ = run(capsys, "compare", "--steps", "16", "--lam", "0.3,3")
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("strategy"))
    assert "  S  " not in header and "W2/W2_opt" in header
    assert "…" in out or "..." in out  # 16-step plans are longer than the plan column
    data = run_json(capsys, "compare", "--steps", "16", "--lam", "0.3,3")
    assert data["strategies"]["boot"]["plan"] == str(canonical_plan("boot", 16))  # JSON keeps the full text


# ------------------------------------------------------------------------------------------
# evaluate
# ------------------------------------------------------------------------------------------


def test_evaluate_matches_library(capsys):
    out = run_json(capsys, "evaluate", "--plan", "(4 (3 (2 1)))", "--lam", "2")
    problem = Problem(make_schedule("vp-cosine", 4), 2.0)
    ev = evaluate_plan(problem, parse_plan("(4 (3 (2 1)))"))
    solution = solve(problem)
    assert out["plan"] == "(4 (3 (2 1)))"
    assert out["config"]["schedule"]["steps"] == 4  # N from the plan
    assert out["student"] == ev.student.tolist() and out["teacher"] == ev.teacher.tolist() and out["exact_flow"] == ev.exact.tolist()
    assert out["w2"] == ev.w2
    assert out["lower_bound"] == solution.lower_bound
    assert out["exact"] is bool(ev.w2 - solution.lower_bound <= solution.tol)
    assert out["exact"] is False and out["ratio"] > 1  # CD is not optimal here


def test_evaluate_optimal_plan_and_canonical_name(capsys):
    out = run_json(capsys, "evaluate", "--plan", "(((((6 5) 4) 3) 2) 1)", "--lam", "0.3")
    assert out["exact"] is True and out["ratio"] == 1.0
    by_name = run_json(capsys, "evaluate", "--plan", "boot", "--steps", "6", "--lam", "0.3")
    assert by_name["plan"] == out["plan"] and by_name["w2"] == out["w2"]
    two = run_json(capsys, "evaluate", "--plan", "(4 3) | (2 1)", "--lam", "1")
    assert two["config"]["segments"] == 2


# ------------------------------------------------------------------------------------------
# user errors: exit 2, one line on stderr, no traceback
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--lam", "-1"],
        ["plan", "--lam=-0.5"],
        ["plan", "--lam", "nan"],
        ["plan", "--lam", "1,,2"],
        ["plan", "--steps", "0"],
        ["plan", "--steps", "4", "--segments", "5"],
        ["plan", "--eta-tau", "0"],
        ["plan", "--training", "gd", "--lr", "5", "--gd-steps", "3"],
        ["plan", "--training", "gd"],
        ["plan", "--lr", "0.1"],
        ["plan", "--schedule", "cosine"],
        ["plan", "--schedule", "rf", "--solver", "heun"],
        ["plan", "--bins", "3"],
        ["plan", "--lam", "1", "--spectrum", "0.5,2"],
        ["compare", "--steps", "three"],
        ["evaluate", "--plan", "(4 (3 (2 1)"],
        ["evaluate", "--plan", "(4 3 x)"],
        ["evaluate", "--plan", "(3 2 1)", "--steps", "4"],
        ["evaluate", "--plan", "(4 3) | (2 1)", "--segments", "1"],
        ["evaluate"],
        ["frobnicate"],
    ],
)
def test_user_errors(capsys, argv):
    assert_user_error(*run(capsys, *argv))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plan", "--steps", "three"], "argument --steps: expected an integer >= 1, got 'three'"),
        (["plan", "--steps", "1.5"], "argument --steps: expected an integer >= 1, got '1.5'"),
        (["plan", "--steps", "0"], "argument --steps: expected an integer >= 1, got 0"),
        (["plan", "--eta-tau", "abc"], "argument --eta-tau: expected a number > 0, got 'abc'"),
        (["plan", "--eta-tau", "nan"], "argument --eta-tau: expected a finite number > 0, got nan"),
        (["plan", "--eta-tau", "-2"], "argument --eta-tau: expected a finite number > 0, got -2"),
        (["plan", "--lam", "1,,2"], "argument --lam: expected numbers separated by commas, got '1,,2'"),
        (["plan", "--lam", "1,x"], "argument --lam: expected a number, got 'x'"),
    ],
)
def test_option_values_are_refused_with_what_was_expected(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert_user_error(code, out, err)
    assert message in err


def test_steps_disagreeing_with_plan_says_so(capsys):
    _, _, err = run(capsys, "evaluate", "--plan", "(3 2 1)", "--steps", "4")
    assert "N = 3" in err and "--steps" in err


def test_missing_spectrum_file(capsys, tmp_path):
    try:
        import opmerge.spectra  # noqa: F401
    except ModuleNotFoundError:
        pytest.skip("opmerge.spectra is not there yet")
    assert_user_error(*run(capsys, "plan", "--spectrum", str(tmp_path / "missing.npy")))


def test_malformed_plan_in_a_real_process():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-m", "opmerge", "evaluate", "--plan", "(4 (3 2"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == EXIT_USAGE
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("opmerge: error: --plan: ")


def test_plan_imports_only_the_core():
    script = (
        "import sys\n"
        "from opmerge.cli import main\n"
        "assert main(['plan', '--steps', '6', '--json']) == 0\n"
        "heavy = sorted({'.'.join(m.split('.')[:2]) if m.startswith('opmerge.') else m.split('.')[0] for m in sys.modules}\n"
        "               & {'sympy', 'matplotlib', 'torch', 'opmerge.analysis', 'opmerge.experiments'})\n"
        "print('HEAVY', heavy)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


# ------------------------------------------------------------------------------------------
# run_main: user errors versus bugs
# ------------------------------------------------------------------------------------------


def test_run_main_exit_codes(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    assert run_main(interrupted, []) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "opmerge: interrupted\n"

    def usage(argv):
        raise UsageError("bad\nthing")

    assert run_main(usage, []) == EXIT_USAGE
    assert capsys.readouterr().err == "opmerge: error: bad thing\n"

    def library_rejects(argv):  # the library's check of user input raises InputError: a user error
        StudentModel(eta_tau=-1.0)

    assert run_main(library_rejects, []) == EXIT_USAGE
    assert "eta_tau" in capsys.readouterr().err

    def missing_file(argv):
        open(REPO / "no-such-file.txt")

    assert run_main(missing_file, []) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-file.txt" in err

    assert run_main(lambda argv: None, []) == 0
    assert run_main(lambda argv: 3, []) == 3


def test_run_main_lets_bugs_raise():
    def bug(argv):
        return None + 1  # a TypeError that no ``raise`` statement chose

    with pytest.raises(TypeError):
        run_main(bug, [])

    def numpy_bug(argv):
        return np.ones(2) @ np.ones(3)  # ValueError raised inside numpy

    with pytest.raises(ValueError):
        run_main(numpy_bug, [])


# ------------------------------------------------------------------------------------------
# JSON helpers, help, derive, delegation
# ------------------------------------------------------------------------------------------


def test_json_helpers(capsys, tmp_path):
    obj = {"a": np.float64(np.nan), "b": np.arange(3), "c": (np.int64(2), np.bool_(True)), "d": float("inf"), "plan": parse_plan("(2 1)")}
    emit_json(obj)
    parsed = json.loads(capsys.readouterr().out)
    assert parsed == {"a": None, "b": [0, 1, 2], "c": [2, True], "d": None, "plan": "(2 1)"}
    path = write_json(tmp_path / "sub" / "x.json", obj)
    assert json.loads(path.read_text()) == parsed
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary file left
    with pytest.raises(TypeError):
        to_jsonable(object())


def test_help_lists_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in COMMANDS:
        assert name in out
    for name in ("plan", "compare", "evaluate", "derive"):
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and "usage: opmerge " + name in out


def test_derive_prints_latex(capsys):
    pytest.importorskip("sympy")
    try:
        import opmerge.symbolic  # noqa: F401
    except ImportError:
        pytest.skip("opmerge.symbolic is not there")
    code, out, _ = run(capsys, "derive")
    assert code == 0 and "\\frac" in out


def test_delegation_reports_missing_extras(capsys, monkeypatch):
    fake = types.ModuleType("opmerge.experiments.cli")

    def needs_torch(argv):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    fake.main = needs_torch
    monkeypatch.setitem(sys.modules, "opmerge.experiments.cli", fake)
    code, out, err = run(capsys, "validate")
    assert_user_error(code, out, err)
    assert "pip install 'opmerge[bridge]'" in err

    monkeypatch.setitem(sys.modules, "opmerge.experiments.cli", None)  # the module cannot be imported
    assert_user_error(*run(capsys, "validate", "--help"))


def test_delegation_passes_arguments(capsys, monkeypatch):
    seen = {}
    fake = types.ModuleType("opmerge.analysis.cli")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "opmerge.analysis.cli", fake)
    assert main(["phase", "--steps", "6", "--json"]) == 0
    assert seen["argv"] == ["phase", "--steps", "6", "--json"]


@pytest.mark.parametrize("argv", [["validate", "images", "--help"], ["train-teacher", "--help"]])
def test_image_commands_are_wired(argv, capsys):
    pytest.importorskip("torch")
    from opmerge.cli import main

    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    assert code == 0
    assert "usage: opmerge" in capsys.readouterr().out


