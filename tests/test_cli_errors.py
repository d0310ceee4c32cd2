"""The command line's errors by type, long values, random input and progress lines of long searches.

An :class:`~opmerge.errors.InputError` is the user's (exit 2, one line on stderr); every other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opmerge import canonical_plan, parse_plan
from opmerge.cli import main
from opmerge.errors import InputError, InputTypeError
from opmerge.cli_options import EXIT_USAGE, UsageError, run_main
from opmerge.io import to_jsonable

from _cli_helpers import REPO, assert_user_error, run, run_json  # noqa: E402


# ------------------------------------------------------------------------------------------
# errors by type: InputError is the user's, everything else is a bug
# ------------------------------------------------------------------------------------------


def test_run_main_decides_by_type_alone(capsys):
    def input_error(argv):
        raise InputError("lam must be >= 0, got -1")

    def input_type_error(argv):
        raise InputTypeError("weights must be a number or an array of numbers, got str")

    for fn in (input_error, input_type_error):
        assert run_main(fn, []) == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.startswith("opmerge: error: ") and err.count("\n") == 1

    # a plain TypeError raised by a ``raise`` statement inside opmerge (the JSON encoder refusing an
    # object) is a bug of the caller, not bad user input: it keeps its traceback
    def encoder_bug(argv):
        to_jsonable(object())

    with pytest.raises(TypeError, match="cannot convert"):
        run_main(encoder_bug, [])

    def plain_value_error(argv):
        raise ValueError("an internal inconsistency")

    with pytest.raises(ValueError, match="internal inconsistency"):
        run_main(plain_value_error, [])


def test_usage_error_is_an_input_error():
    assert issubclass(UsageError, InputError) and issubclass(UsageError, ValueError)


def test_internal_bug_in_a_command_keeps_its_traceback():
    """A ValueError from inside a command (not an InputError) ends with exit 1 and a traceback."""
    script = (
        "import sys\n"
        "import opmerge.cli as cli\n"
        "def broken(*args, **kwargs):\n"
        "    raise ValueError('planted internal bug')\n"
        "cli.solve = broken\n"
        "sys.exit(cli.main(['plan', '--steps', '4']))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("OPMERGE_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "planted internal bug" in proc.stderr
    assert "opmerge: error" not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["plan", "--lam", "-1"], ("lam", "[0, inf)")),
        (["plan", "--lam", "nan"], ("lam", "finite")),
        (["plan", "--steps", "4", "--segments", "5"], ("segments", "[1, 4]")),
        (["plan", "--schedule", "rf", "--solver", "heun"], ("Heun", "alpha")),
        (["plan", "--training", "gd", "--lr", "5", "--gd-steps", "3"], ("lr",)),
        (["plan", "--spectrum", "0.5,-2"], ("--spectrum", ">= 0")),
    ],
)
def test_library_checks_name_the_parameter(capsys, argv, names):
    code, out, err = run(capsys, *argv)
    assert_user_error(code, out, err)
    for name in names:
        assert name in err


def test_lam_is_checked_once_from_the_command_line_to_the_kernels(capsys, monkeypatch):
    """--lam is range-checked once, by Problem (it was checked six times on its way to the kernels)."""
    import opmerge.teacher as teacher

    calls = []
    original = teacher.nonnegative_array

    def counting(value, name):
        calls.append(name)
        return original(value, name)

    monkeypatch.setattr(teacher, "nonnegative_array", counting)
    for argv in (["plan", "--steps", "5", "--lam", "0.5,2"], ["plan", "--steps", "5", "--lam", "2", "--init", "ddim", "--input", "generated"]):
        calls.clear()
        code, _, err = run(capsys, *argv, "--json")
        assert code == 0, err
        assert calls == ["lam"]


def test_long_plan_is_not_echoed_whole(capsys):
    long_plan = "(" + " ".join(str(n) for n in range(2500, 0, -1)) + " x)"
    assert len(long_plan) > 10_000
    code, out, err = run(capsys, "evaluate", "--plan", long_plan)
    assert_user_error(code, out, err)
    assert len(err) < 400
    assert "non-integer token 'x'" in err
    valid = str(canonical_plan("vanilla", 3000))
    code, out, err = run(capsys, "evaluate", "--plan", valid, "--steps", "5")
    assert_user_error(code, out, err)
    assert len(err) < 400 and "N = 3000" in err


def test_json_outputs_carry_provenance(capsys):
    for argv in (["plan", "--steps", "4"], ["compare", "--steps", "4"], ["evaluate", "--plan", "(4 3 2 1)"]):
        out = run_json(capsys, *argv)
        block = out["provenance"]
        assert block["config"] == out["config"]
        for key in ("opmerge", "code", "python", "numpy", "date", "command"):
            assert key in block


def test_exact_means_certified_optimal_in_every_command(capsys):
    """plan, compare and evaluate: ``exact`` is "this plan is certified optimal"; evaluate's other notion has its own key."""
    plan = run_json(capsys, "plan", "--steps", "6", "--lam", "0.3")
    optimal = run_json(capsys, "evaluate", "--plan", plan["plan"], "--lam", "0.3")
    assert plan["exact"] is True and optimal["exact"] is True and optimal["attains_optimum"] is True
    worse = run_json(capsys, "evaluate", "--plan", "vanilla", "--steps", "6", "--lam", "0.3")
    assert worse["exact"] is False and worse["attains_optimum"] is False and worse["ratio"] > 1
    # a search stopped by its budget: the evaluated plan equals the best found but is not certified
    stopped = run_json(capsys, "evaluate", "--plan", "boot", "--steps", "12", "--lam", "0.3,3",
                       "--node-budget", "1", "--time-budget", "0.001")
    assert stopped["optimum"]["exact"] is False
    assert stopped["exact"] is False and stopped["attains_optimum"] is True
    assert stopped["lower_bound"] < stopped["w2"] - stopped["tolerance"]


def test_derive_out_file_has_provenance(capsys, tmp_path):
    pytest.importorskip("sympy")
    target = tmp_path / "derive.tex"
    code, _, err = run(capsys, "derive", "--out", str(target))
    assert code == 0, err
    first, rest = target.read_text().split("\n", 1)
    assert first.startswith("% opmerge derive; provenance: ")
    assert json.loads(first.split("provenance: ", 1)[1])["config"] == {"command": "derive"}
    assert "\\" in rest or "$" in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["derive.tex"]


# ------------------------------------------------------------------------------------------
# progress of long searches
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["plan"], ["compare"], ["evaluate", "--plan", "boot"]])
def test_progress_option_reaches_solve(command, capsys, monkeypatch):
    import io

    import opmerge.cli as cli
    from opmerge.solvers import stderr_progress

    seen = []
    real_solve = cli.solve

    def spy(problem, **kwargs):
        seen.append(kwargs.get("progress", "missing"))
        return real_solve(problem, **kwargs)

    monkeypatch.setattr(cli, "solve", spy)
    argv = [*command, "--steps", "4", "--json"]
    for extra, expected in (([], None), (["--progress"], stderr_progress), (["--no-progress"], None)):
        seen.clear()
        assert main([*argv, *extra]) == 0
        capsys.readouterr()
        assert seen == [expected]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    for extra, expected in (([], stderr_progress), (["--no-progress"], None)):
        seen.clear()
        assert main([*argv, *extra]) == 0
        assert seen == [expected]  # default: on when stderr is a terminal


def test_progress_lines_of_a_long_search(capsys):
    # --budget total at N = 30 is a long branch and bound: it stops at the time budget
    argv = ["plan", "--steps", "30", "--lam", "0.3", "--budget", "total", "--time-budget", "1.2", "--json"]
    run(capsys, *argv)  # compiles the kernels first (a cold cache would spend the budget compiling)
    code, out, err = run(capsys, *argv, "--progress")
    assert code == 0 and json.loads(out)["exact"] is False
    lines = err.splitlines()
    assert len(lines) >= 2 and all(line.startswith("opmerge: ") for line in lines)
    assert lines[-1].startswith("opmerge: done") and "nodes" in lines[0] and "bound" in lines[0]
    code, out, err = run(capsys, *argv)
    assert code == 0 and err == ""


@pytest.mark.parametrize("argv", [
    ["plan", "--schedule", "x" * 10_000],
    ["plan", "--frobnicate", "y" * 10_000],
    ["plan", "--spectrum", "1," * 5_000 + "z"],
])
def test_long_values_are_not_echoed_whole(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert_user_error(code, out, err)
    assert len(err) <= 700


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from("()| 0123456789x-"), min_size=1, max_size=25))
def test_random_plan_text_is_a_result_or_one_error_line(capsys, text):
    """Any --plan text ends with exit 0 or with exit 2 and one line: never a traceback."""
    code, out, err = run(capsys, "evaluate", "--plan", text, "--lam", "1", "--time-budget", "1", "--json")
    if code == 0:
        assert json.loads(out)["plan"] == str(parse_plan(text))
    else:
        assert_user_error(code, out, err)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=st.sampled_from("0123456789.,-+eainf "), min_size=1, max_size=12))
def test_random_lam_text_is_a_result_or_one_error_line(capsys, value):
    code, out, err = run(capsys, "plan", "--steps", "3", f"--lam={value}", "--json")
    if code == 0:
        lam = json.loads(out)["config"]["lam"]
        assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in lam)
    else:
        assert_user_error(code, out, err)


def test_spectrum_digits_imports_neither_sklearn_nor_torch():
    script = (
        "import sys\n"
        "from opmerge.cli import main\n"
        "assert main(['plan', '--spectrum', 'digits', '--bins', '4', '--steps', '4', '--json']) == 0\n"
        "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'torch', 'sympy', 'matplotlib'}))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.5])
def test_ctrl_c_during_start_up_is_one_line_and_exit_130(delay):
    """A Ctrl-C while ``python -m opmerge`` is still importing ends like one at any later point.

    (Before Python itself has started, about the first 50 ms, a Ctrl-C is Python's own business.)
    """
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("OPMERGE_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "opmerge", "plan", "--steps", "2000", "--time-budget", "30", "--no-draw"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO, env=env, text=True)
    try:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err
    assert proc.returncode == 130, (proc.returncode, err)
    assert err == "opmerge: interrupted\n"


def test_the_console_script_is_the_start_up_guard():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"opmerge": "opmerge._entry:main"}
    # importing the package loads none of the heavy modules: they come with the first use of a name
    script = "import sys, opmerge\nprint(sorted({'numpy', 'numba', 'scipy'} & set(sys.modules)))\nopmerge.solve\nprint('numba' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.stdout.split("\n")[:2] == ["[]", "True"], proc.stdout + proc.stderr


def test_a_ctrl_c_that_python_wrapped_is_still_a_ctrl_c(capsys):
    """A KeyboardInterrupt raised while a class is created (during an import, say) reaches
    run_main as a RuntimeError caused by it: still exit 130 and one line, not a traceback."""
    from opmerge._signals import Terminated

    def interrupted_import(_args):
        class Descriptor:
            def __set_name__(self, owner, name):
                raise KeyboardInterrupt

        class Owner:  # noqa: F841 (creating it is the point)
            attribute = Descriptor()

    def terminated_import(_args):
        try:
            raise Terminated()
        except Terminated as exc:
            raise RuntimeError("wrapped") from exc

    assert run_main(interrupted_import, []) == 130
    assert capsys.readouterr().err == "opmerge: interrupted\n"
    assert run_main(terminated_import, []) == 143
    assert capsys.readouterr().err == "opmerge: terminated\n"

    def plain_bug(_args):
        try:
            raise ValueError("first")
        except ValueError:
            raise RuntimeError("a bug") from None

    with pytest.raises(RuntimeError, match="a bug"):
        run_main(plain_bug, [])
