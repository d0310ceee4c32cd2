"""A table of bad invocations of every command: each is refused up front with ONE clear line.

Every row asserts: exit status 2, nothing on stdout, exactly one non-empty line on stderr that
starts with ``opmerge: error:`` and names the option or file (the row's needle), no traceback, and
no file or folder created in the working folder (the commands' default ``--out`` folders are
relative to it, so any leak shows there). The rows run in-process (``opmerge.cli.main``); a few
at the end run ``python -m opmerge`` in a real process.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from opmerge.cli import main
from opmerge.cli_options import EXIT_USAGE, MAX_BATCH, abbreviate_plan, run_main

from _cli_helpers import REPO, run

HAVE_TORCH = importlib.util.find_spec("torch") is not None

PLAN4 = "(4 3 2 1)"
BIG = "1000000000000"

# ------------------------------------------------------------------------------------------
# the table: (argv, needle that the error line must contain)
# ------------------------------------------------------------------------------------------

_MODEL_ROWS = [
    (["--steps", "0"], "--steps"),
    (["--steps", "abc"], "--steps"),
    (["--steps", "1.5"], "--steps"),
    (["--steps", "100000000"], "--steps"),
    (["--segments", "0"], "--segments"),
    (["--lam", "-inf"], "--lam must be finite"),
    (["--lam", "nan"], "--lam"),
    (["--lam", "-1"], "--lam"),
    (["--lam", "1,,2"], "--lam"),
    (["--lam", "0.5,x"], "--lam"),
    (["--lam", "-h"], "--lam"),
    (["--spectrum", "-1,2"], "--spectrum"),
    (["--spectrum", "missing-spectrum.npy"], "missing-spectrum.npy"),
    (["--bins", "3"], "--bins"),
    (["--spectrum", "1,2", "--bins", "0"], "--bins"),
    (["--lam", "1", "--spectrum", "1,2"], "--lam"),
    (["--eta-tau", "-1"], "--eta-tau"),
    (["--eta-tau", "inf"], "--eta-tau"),
    (["--schedule", "foo"], "--schedule"),
    (["--solver", "foo"], "--solver"),
    (["--target", "foo"], "--target"),
    (["--init", "foo"], "--init"),
    (["--input", "foo"], "--input"),
    (["--budget", "foo"], "--budget"),
    (["--training", "gd"], "--lr"),
    (["--lr", "0.1"], "--lr"),
    (["--training", "gd", "--lr", "0.1", "--gd-steps", "3", "--budget", "total"], "--budget"),
    (["--node-budget", "0"], "--node-budget"),
    (["--time-budget", "-1"], "--time-budget"),
    (["--stpes", "3"], "--stpes"),
    (["--progress=yes"], "--progress"),
]

CORE = []
for _command, _prefix in (("plan", []), ("compare", []), ("evaluate", ["--plan", PLAN4])):
    CORE += [([_command, *_prefix, *argv], needle) for argv, needle in _MODEL_ROWS]
CORE += [
    (["plan", "--steps", "4", "--segments", "5"], "--segments"),
    (["compare", "--steps", "4", "--segments", "5"], "--segments"),
    (["compare", "--no-draw"], "--no-draw"),
    (["evaluate"], "--plan"),
    (["evaluate", "--plan", "(4 3"], "--plan"),
    (["evaluate", "--plan", ""], "--plan"),
    (["evaluate", "--plan", "(4 3 x)"], "--plan"),
    (["evaluate", "--plan", "(3 2 1)", "--steps", "4"], "--steps"),
    (["evaluate", "--plan", PLAN4, "--segments", "2"], "--segments"),
    (["evaluate", "--plan", "vanilla", "--steps", "3", "--segments", "4"], "--segments"),
    (["evaluate", "--plan", "(" + " ".join(str(n) for n in range(3000, 0, -1)) + " x)"], "--plan"),
    (["derive", "--out", ""], "--out"),
    (["derive", "--out", "."], "--out"),
    (["derive", "--out", "no-such-folder/x.tex"], "--out"),
    (["derive", "--out", "afile/x.tex"], "--out"),
    (["derive", "--out"], "--out"),
    (["derive", "--outt", "x.tex"], "--outt"),
    (["phase", "--out", "afile"], "--out"),
    (["phase", "--out", ""], "--out"),
    (["phase", "--out", "afile/sub"], "--out"),
    (["phase", "--points", "0"], "--points"),
    (["phase", "--points", "1000000000"], "--points"),
    (["phase", "--lam-min", "-1"], "--lam-min"),
    (["phase", "--lam-min", "10", "--lam-max", "1"], "--lam-max"),
    (["phase", "--tol", "2"], "--tol"),
    (["phase", "--tol", "-1"], "--tol"),
    (["phase", "--workers", "0"], "--workers"),
    (["phase", "--workers", "99999"], "--workers"),
    (["phase", "--steps", "4", "--segments", "5"], "--segments"),
    (["phase", "--eta-tau", "-1"], "--eta-tau"),
    (["phase", "--training", "gd"], "--lr"),
    (["phase", "--schedule", "foo"], "--schedule"),
    (["phase", "--pionts", "3"], "--pionts"),
    (["phase", "--time-budget", "0"], "--time-budget"),
    (["phase", "--executor", "dask"], "--executor"),
    (["phase", "--ray-address", "auto"], "--ray-address is for --executor ray"),
    (["phase", "--executor", "process", "--unit-cpus", "2"], "--unit-cpus is for --executor ray"),
    (["phase", "--executor", "ray", "--ray-address", " "], "--ray-address must name a cluster"),
    (["phase", "--executor", "ray", "--unit-gpus", "-1"], "--unit-gpus"),
    (["phase", "--executor", "ray", "--unit-cpus", "0"], "--unit-cpus"),
    (["demo", "--unit-gpus", "0.5"], "--unit-gpus is for --executor ray"),
    (["demo", "--out", "afile"], "--out"),
    (["demo", "--out", ""], "--out"),
    (["demo", "--out", "afile/x"], "--out"),
    (["demo", "--bins", "-1"], "--bins"),
    (["demo", "--bins", "x"], "--bins"),
    (["demo", "--workers", "0"], "--workers"),
    (["demo", "--workers", "-3"], "--workers"),
    (["demo", "--quik"], "--quik"),
    (["demo", "--json=1"], "--json"),
    (["frobnicate"], "frobnicate"),
]

_V = ["validate"]
BRIDGE = [
    # validate, every study
    (_V, "study"),
    ([*_V, "nosuch"], "nosuch"),
    ([*_V, "sgd", "--repats", "2"], "--repats"),
    ([*_V, "exactness", "--quick", "--steps", "3", "--segments", "4"], "--segments"),
    ([*_V, "exactness", "--quick", "--segments", "5"], "--segments"),
    ([*_V, "exactness", "--family", ""], "--family"),
    ([*_V, "exactness", "--family", "mlp"], "--family"),
    ([*_V, "exactness", "--family", "diagonal,foo"], "--family"),
    ([*_V, "exactness", "--bins", "3"], "--bins"),
    ([*_V, "exactness", "--lam", "-inf"], "--lam"),
    ([*_V, "exactness", "--lam", "-1"], "--lam"),
    ([*_V, "exactness", "--spectrum", "-1,2"], "--spectrum"),
    ([*_V, "exactness", "--out", "afile"], "--out"),
    ([*_V, "exactness", "--out", ""], "--out"),
    ([*_V, "exactness", "--out", "afile/x"], "--out"),
    ([*_V, "exactness", "--train-steps", "5"], "--train-steps"),
    ([*_V, "exactness", "--batch", "10"], "--batch"),
    ([*_V, "exactness", "--plan", "(9 1)"], "--plan"),
    ([*_V, "exactness", "--plan", "(4 3"], "--plan"),
    ([*_V, "exactness", "--quick", "--plan", "(8 7 6 5 4 3 2 1)"], "--plan"),
    ([*_V, "exactness", "--quick", "--plan", "(4 3) | (2 1)"], "--plan"),
    ([*_V, "exactness", "--level", "1"], "--level"),
    ([*_V, "exactness", "--level", "0"], "--level"),
    ([*_V, "exactness", "--seed", "-1"], "--seed"),
    ([*_V, "exactness", "--threads", "0"], "--threads"),
    ([*_V, "exactness", "--device", "tpu"], "--device"),
    ([*_V, "exactness", "--steps", "5000"], "--steps"),
    ([*_V, "exactness", "--gd-steps", "0"], "--gd-steps"),
    ([*_V, "exactness", "--lr", "-1"], "--lr"),
    ([*_V, "exactness", "--budget", "total"], "--budget"),
    ([*_V, "exactness", "--solver", "foo"], "--solver"),
    ([*_V, "exactness", "--schedule", "foo"], "--schedule"),
    ([*_V, "exactness", "--init", "foo"], "--init"),
    ([*_V, "sgd", "--repeats", "1"], "--repeats"),
    ([*_V, "sgd", "--repeats", "0"], "--repeats"),
    ([*_V, "sgd", "--batch", BIG], "--batch"),
    ([*_V, "sgd", "--batch", "0"], "--batch"),
    ([*_V, "sgd", "--family", ""], "--family"),
    ([*_V, "sgd", "--family", "diagonal,full"], "--family"),
    ([*_V, "sgd", "--family", "mlp"], "--family"),
    ([*_V, "sgd", "--hidden", "5"], "--hidden"),
    ([*_V, "sgd", "--n-eval", "5"], "--n-eval"),
    ([*_V, "sgd", "--target", "data"], "--target"),
    ([*_V, "sgd", "--bins", "2"], "--bins"),
    ([*_V, "sgd", "--out", "afile"], "--out"),
    ([*_V, "sgd", "--lam", "-inf"], "--lam"),
    ([*_V, "sgd", "--rotated=yes"], "--rotated"),
    ([*_V, "sgd", "--quick", "--steps", "2", "--plan", "(3 2 1)"], "--plan"),
    ([*_V, "ranking", "--n-eval", "1"], "--n-eval"),
    ([*_V, "ranking", "--n-eval", "2"], "--n-eval"),
    ([*_V, "ranking", "--lam", "0,1"], "--lam"),
    ([*_V, "ranking", "--optimizer", "exact-gd", "--family", "mlp"], "--optimizer"),
    ([*_V, "ranking", "--optimizer", "foo"], "--optimizer"),
    ([*_V, "ranking", "--hidden", "0"], "--hidden"),
    ([*_V, "ranking", "--hidden", "100000"], "--hidden"),
    ([*_V, "ranking", "--depth", "0"], "--depth"),
    ([*_V, "ranking", "--depth", "1000"], "--depth"),
    ([*_V, "ranking", "--repeats", "1"], "--repeats"),
    ([*_V, "ranking", "--family", "foo"], "--family"),
    ([*_V, "ranking", "--target", "foo"], "--target"),
    ([*_V, "ranking", "--eta-tau", "-1"], "--eta-tau"),
    ([*_V, "ranking", "--train-steps", "5"], "--train-steps"),
    ([*_V, "ranking", "--out", ""], "--out"),
    ([*_V, "scot", "--plan", "boot"], "--plan"),
    ([*_V, "scot", "--segments", "2"], "--segments"),
    ([*_V, "scot", "--family", ""], "--family"),
    ([*_V, "scot", "--family", "foo"], "--family"),
    ([*_V, "scot", "--n-eval", "2"], "--n-eval"),
    ([*_V, "scot", "--train-steps", "0"], "--train-steps"),
    ([*_V, "scot", "--train-steps", BIG], "--train-steps"),
    ([*_V, "scot", "--repeats", "3"], "--repeats"),
    ([*_V, "scot", "--hidden", "0"], "--hidden"),
    ([*_V, "scot", "--batch", str(MAX_BATCH + 1)], "--batch"),
    ([*_V, "scot", "--out", "afile"], "--out"),
    ([*_V, "scot", "--bins", "4"], "--bins"),
    # validate images
    ([*_V, "images", "--out", "afile"], "--out"),
    ([*_V, "images", "--out", ""], "--out"),
    ([*_V, "images", "--checkpoint", "no-such.pt"], "--checkpoint"),
    ([*_V, "images", "--checkpoint", ""], "--checkpoint"),
    ([*_V, "images", "--segments", "0"], "--segments"),
    ([*_V, "images", "--executor", "threads"], "--executor"),
    ([*_V, "images", "--ray-address", "auto"], "--ray-address is for --executor ray"),
    ([*_V, "images", "--executor", "process", "--unit-gpus", "1"], "--unit-gpus is for --executor ray"),
    ([*_V, "images", "--workers", "0"], "--workers"),
    ([*_V, "images", "--segments", "x"], "--segments"),
    ([*_V, "images", "--random-plans", "-1"], "--random-plans"),
    ([*_V, "images", "--n-eval", "1"], "--n-eval"),
    ([*_V, "images", "--recipe", "foo"], "--recipe"),
    ([*_V, "images", "--trajectory", "foo"], "--trajectory"),
    ([*_V, "images", "--data", "missing.npy"], "missing.npy"),
    ([*_V, "images", "--data", "const.npy"], "const.npy"),
    ([*_V, "images", "--quick", "--plan", "(4 3"], "--plan"),
    ([*_V, "images", "--quick", "--plan", PLAN4], "--plan"),
    ([*_V, "images", "--quick", "--steps", "3", "--segments", "4"], "--segments"),
    ([*_V, "images", "--teacher", "foo"], "--teacher"),
    ([*_V, "images", "--steps", "0"], "--steps"),
    ([*_V, "images", "--seed", "-1"], "--seed"),
    ([*_V, "images", "--device", "tpu"], "--device"),
    ([*_V, "images", "--threads", "0"], "--threads"),
    ([*_V, "images", "--node-steps-linear", "0"], "--node-steps-linear"),
    ([*_V, "images", "--eta-tau", "-1"], "--eta-tau"),
    ([*_V, "images", "--init", "zero"], "--init"),
    ([*_V, "images", "--schedule", "edm"], "--schedule"),
    ([*_V, "images", "--nosuch"], "--nosuch"),
    # train-teacher
    (["train-teacher", "--out", "afile"], "--out"),
    (["train-teacher", "--out", ""], "--out"),
    (["train-teacher", "--out", "afile/x"], "--out"),
    (["train-teacher", "--batch-size", BIG], "--batch-size"),
    (["train-teacher", "--batch-size", "0"], "--batch-size"),
    (["train-teacher", "--n-eval", "1"], "--n-eval"),
    (["train-teacher", "--n-eval", "1000000000"], "--n-eval"),
    (["train-teacher", "--hidden", "0"], "--hidden"),
    (["train-teacher", "--hidden", "1000000"], "--hidden"),
    (["train-teacher", "--depth", "0"], "--depth"),
    (["train-teacher", "--train-steps", "0"], "--train-steps"),
    (["train-teacher", "--lr", "-1e-3"], "--lr"),
    (["train-teacher", "--lr", "nan"], "--lr"),
    (["train-teacher", "--lr", "-inf"], "--lr"),
    (["train-teacher", "--seed", "-1"], "--seed"),
    (["train-teacher", "--steps", "0"], "--steps"),
    (["train-teacher", "--steps", "100000"], "--steps"),
    (["train-teacher", "--data", "const.npy"], "const.npy"),
    (["train-teacher", "--data", "missing.npy"], "missing.npy"),
    (["train-teacher", "--prediction", "foo"], "--prediction"),
    (["train-teacher", "--schedule", "edm"], "--schedule"),
    (["train-teacher", "--device", "tpu"], "--device"),
    (["train-teacher", "--threads", "0"], "--threads"),
    (["train-teacher", "--no-such"], "--no-such"),
    (["train-teacher", "--quik"], "--quik"),
    # corrupted input files
    (["train-teacher", "--data", "garbage.npy"], "garbage.npy"),
    ([*_V, "images", "--quick", "--checkpoint", "garbage.pt"], "garbage.pt"),
]


def _files(root: Path) -> set[str]:
    return {os.fspath(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working folder with a plain file, a constant image array and two corrupted files; the commands run in it."""
    (tmp_path / "afile").write_text("not a folder\n")
    np.save(tmp_path / "const.npy", np.zeros((3, 3, 3)))
    (tmp_path / "garbage.npy").write_bytes(b"\x93NUMPY garbage that is not an array" * 3)
    (tmp_path / "garbage.pt").write_bytes(bytes(range(256)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPMERGE_DEBUG", raising=False)
    return tmp_path


def assert_refused(code: int, out: str, err: str, needle: str) -> None:
    """Exit 2, no stdout, ONE non-empty stderr line naming ``needle``, no traceback."""
    assert "Traceback" not in err, err
    assert code == EXIT_USAGE, (code, err)
    assert out == "", out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and err.count("\n") == 1, err
    assert lines[0].startswith("opmerge: error: "), err
    assert needle in lines[0], (needle, lines[0])


def _check_row(capsys, workdir: Path, argv: list, needle: str) -> None:
    before = _files(workdir)
    code, out, err = run(capsys, *argv)
    assert_refused(code, out, err, needle)
    assert _files(workdir) == before, f"{argv} left {sorted(_files(workdir) - before)}"


def test_the_table_is_large_and_covers_every_command():
    rows = CORE + BRIDGE
    assert len(rows) >= 150
    firsts = {argv[0] for argv, _ in rows}
    assert {"plan", "compare", "evaluate", "derive", "phase", "demo", "validate", "train-teacher"} <= firsts
    studies = {argv[1] for argv, _ in BRIDGE if argv[0] == "validate" and len(argv) > 1}
    assert {"exactness", "sgd", "ranking", "scot", "images"} <= studies


@pytest.mark.parametrize("argv, needle", CORE, ids=[" ".join(a)[:70] for a, _ in CORE])
def test_core_command_refuses_bad_input(capsys, workdir, argv, needle):
    _check_row(capsys, workdir, argv, needle)


@pytest.mark.bridge
@pytest.mark.skipif(not HAVE_TORCH, reason="the torch commands need the bridge extras")
@pytest.mark.parametrize("argv, needle", BRIDGE, ids=[" ".join(a)[:70] for a, _ in BRIDGE])
def test_torch_command_refuses_bad_input(capsys, workdir, argv, needle):
    _check_row(capsys, workdir, argv, needle)


# ------------------------------------------------------------------------------------------
# the items one by one
# ------------------------------------------------------------------------------------------


def test_values_starting_with_a_dash_reach_the_real_check(capsys):
    """``--lam -inf`` used to be "expected one argument"; now the value is checked."""
    _, _, err = run(capsys, "plan", "--lam", "-inf")
    assert "--lam must be finite" in err and "expected one argument" not in err
    _, _, err = run(capsys, "plan", "--spectrum", "-1,2")
    assert "--spectrum" in err and ">= 0" in err and "expected one argument" not in err
    _, _, err = run(capsys, "phase", "--lam-min", "-1e-3")
    assert "argument --lam-min: expected a finite number > 0, got -1e-3" in err
    # a known option after a value-taking option is still an option, not its value
    _, _, err = run(capsys, "plan", "--lam", "-h")
    assert "argument --lam: expected one argument" in err
    # and '--' still ends the options
    code, _, err = run(capsys, "plan", "--steps", "3", "--", "-1")
    assert code == EXIT_USAGE and "unrecognized arguments:" in err and "-1" in err and "did you mean" not in err


def test_negative_value_parses_like_the_equals_form(capsys):
    from opmerge.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):  # --eta-tau -inf is refused by its type, as --eta-tau=-inf is
        parser.parse_args(["plan", "--eta-tau", "-inf"])
    capsys.readouterr()
    joined = parser.parse_args(["plan", "--lam", "-1,2", "--steps", "3"])
    equals = parser.parse_args(["plan", "--lam=-1,2", "--steps", "3"])
    assert joined.lam == equals.lam == [[-1.0, 2.0]] and joined.steps == 3


def test_unknown_option_points_to_the_subcommand_help_with_the_closest_name(capsys):
    _, _, err = run(capsys, "plan", "--stpes", "3")
    assert "(see 'opmerge plan --help')" in err and "did you mean --steps?" in err
    _, _, err = run(capsys, "compare", "--node-budgte", "3")
    assert "(see 'opmerge compare --help')" in err and "did you mean --node-budget?" in err
    _, _, err = run(capsys, "phase", "--pionts", "3")
    assert "(see 'opmerge phase --help')" in err and "did you mean --points?" in err
    _, _, err = run(capsys, "plan", "--zzzzzz")
    assert "did you mean" not in err and "(see 'opmerge plan --help')" in err


@pytest.mark.parametrize("command, values", [(["demo"], ("afile", "", "   ", "afile/x")), (["phase"], ("afile", "", "   ", "afile/x")),
                                             (["derive"], ("", "   ", ".", "afile/x.tex"))])
def test_out_naming_an_existing_file_or_nothing_is_refused(capsys, workdir, command, values):
    """A folder option refuses a file and an empty name; derive's file option refuses a folder and an empty name."""
    for value in values:
        _check_row(capsys, workdir, [*command, "--out", value], "--out")


def _raiser(exc: BaseException):
    def fn(argv):
        raise exc

    return fn


def test_out_of_memory_is_one_line_saying_what_to_reduce(capsys):
    OutOfMemoryError = type("OutOfMemoryError", (RuntimeError,), {})  # torch.cuda.OutOfMemoryError, by name
    cases = [MemoryError("Unable to allocate 7.28 TiB for an array"), OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
             RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 24000000000000 bytes")]
    for exc in cases:
        assert run_main(_raiser(exc), [], memory_hint="reduce --batch") == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("opmerge: error: out of memory") and err.rstrip().endswith("reduce --batch")
    assert run_main(_raiser(MemoryError()), []) == EXIT_USAGE
    assert "reduce the size of the job" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="an unrelated bug"):  # other RuntimeErrors stay bugs
        run_main(_raiser(RuntimeError("an unrelated bug")), [])


def test_out_of_memory_inside_a_command_names_its_options(capsys, monkeypatch):
    import opmerge.cli as cli

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(cli, "solve", exhausted)
    code, out, err = run(capsys, "plan", "--steps", "3")
    assert code == EXIT_USAGE and out == "" and err.count("\n") == 1
    assert "out of memory" in err and "--steps" in err


def test_long_plans_are_abbreviated_in_text_and_whole_in_json(capsys):
    steps = 200
    code, out, err = run(capsys, "plan", "--steps", str(steps), "--time-budget", "20")
    assert code == 0, err
    json_code, json_out, _ = run(capsys, "plan", "--steps", str(steps), "--time-budget", "20", "--json")
    import json

    plan = json.loads(json_out)["plan"]
    assert json_code == 0 and len(plan) > 500  # the JSON keeps the whole plan
    assert plan not in out
    assert max(len(line) for line in out.splitlines()) < 300
    short = abbreviate_plan(plan)
    assert short in out and f"({steps} leaves)" in short and short.count("...") == 1
    assert short.startswith(plan[:60]) and short.split(" ... ")[1].startswith(plan[-60:])
    assert out.count(plan[:60]) == 1  # printed once, not again in the drawing's header


def test_abbreviate_plan_keeps_short_plans():
    assert abbreviate_plan("(4 3) | (2 1)") == "(4 3) | (2 1)"
    long_text = "(" + " ".join(str(n) for n in range(100, 0, -1)) + ")"
    assert abbreviate_plan(long_text) == f"{long_text[:60]} ... {long_text[-60:]} (100 leaves)"


@pytest.mark.bridge
@pytest.mark.skipif(not HAVE_TORCH, reason="needs torch")
def test_study_configurations_refuse_bad_fields_before_any_work(tmp_path):
    from opmerge.errors import InputError
    from opmerge.experiments.studies import run_study, study_config

    for study, values, needle in [("sgd", {"repeats": 1}, "repeats"), ("sgd", {"family": ""}, "family"),
                                  ("exactness", {"steps": 3, "segments": 4}, "segments"), ("ranking", {"n_eval": 1}, "n_eval"),
                                  ("scot", {"batch": 10**12}, "batch"), ("ranking", {"lam": (0.0, 1.0)}, "lam"),
                                  ("exactness", {"plans": ("(4 3",)}, "plans")]:
        with pytest.raises(InputError, match=needle):
            study_config(study, values)
    # the default steps of quick are filled in, then checked, before any unit runs
    with pytest.raises(InputError, match="segments"):
        run_study("exactness", quick=True, segments=5, out=str(tmp_path / "x"), progress=False, device="cpu")
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------
# a handful in a real process
# ------------------------------------------------------------------------------------------


def _process(argv: list, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("OPMERGE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "opmerge", *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("argv, needle", [(["plan", "--lam", "-inf"], "--lam must be finite"), (["demo", "--out", "afile"], "--out"),
                                          (["plan", "--stpes", "3"], "did you mean --steps?")])
def test_bad_invocation_in_a_real_process(workdir, argv, needle):
    before = _files(workdir)
    proc = _process(argv, workdir)
    assert_refused(proc.returncode, proc.stdout, proc.stderr, needle)
    assert _files(workdir) == before


@pytest.mark.slow
@pytest.mark.bridge
@pytest.mark.skipif(not HAVE_TORCH, reason="needs torch")
@pytest.mark.parametrize("argv, needle", [(["train-teacher", "--out", "afile"], "--out"), (["validate", "sgd", "--repeats", "1"], "--repeats")])
def test_torch_command_refused_in_a_real_process(workdir, argv, needle):
    before = _files(workdir)
    proc = _process(argv, workdir)
    assert_refused(proc.returncode, proc.stdout, proc.stderr, needle)
    assert _files(workdir) == before
