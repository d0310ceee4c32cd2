r"""Shared option helpers of the ``opmerge`` command line (argparse only; no sympy, matplotlib or torch).

``opmerge.cli``, ``opmerge.analysis.cli`` and ``opmerge.experiments.cli`` build their parsers from
these pieces so that every subcommand spells an option the same way and fails the same way:

* :func:`add_model_arguments`, :func:`add_direction_arguments`, :func:`add_search_arguments` add
  option groups; :func:`model_from_args`, :func:`schedule_from_args`, :func:`spectrum_from_args`,
  :func:`problem_from_args`, :func:`search_budgets_from_args` turn the parsed options into core
  objects (the core's constructors check the values, once);
* :class:`ArgumentParser` is :class:`argparse.ArgumentParser` whose errors are one line on stderr;
* :class:`UsageError` (an :class:`~opmerge.errors.InputError`) marks bad command-line input, and
  :func:`run_main` turns every :class:`~opmerge.errors.InputError` (raised by the CLI or by the
  library's checks of user input), a missing file and Ctrl-C into one stderr line and an exit
  status, while any other exception is a bug and keeps its traceback;
* :func:`emit_json` prints one strict JSON document through :mod:`opmerge.io` (files are written
  with :func:`opmerge.io.write_json`).

The error handling (:class:`ArgumentParser`, :class:`UsageError`, :func:`run_main` and the exit
statuses) is implemented in the private module ``opmerge._cli_errors``; import it from here.

The reference of every command and option, with the exit statuses, is ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from . import io as _io
from ._cli_errors import (  # noqa: F401 (MAX_ERROR_LENGTH: re-exported)
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_OK,
    EXIT_USAGE,
    MAX_ERROR_LENGTH,
    PROG,
    DEFAULT_MEMORY_HINT,
    is_out_of_memory,
    ArgumentParser,
    UsageError,
    _message_of,
    run_main,
)
from ._validate import echo
from .errors import InputError
from .model import BUDGETS, INITS, INPUT_SCALINGS, INPUTS, STEP_LAWS, TRAININGS, StudentModel
from ._spectra_binning import MAX_BINS  # spectrum bins (--bins): the library's limit
from .objective import TARGETS, Problem
from .schedules import SCHEDULE_NAMES, Schedule, make_schedule
from .teacher import SOLVERS

__all__ = [
    "PROG",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "DEFAULT_STEPS",
    "DEFAULT_LAM",
    "UsageError",
    "ArgumentParser",
    "run_main",
    "positive_int",
    "positive_float",
    "float_list",
    "bounded_int",
    "nonnegative_int",
    "seed_int",
    "check_out_folder",
    "check_out_file",
    "abbreviate_plan",
    "option_message",
    "PLAN_ECHO_LIMIT",
    "MAX_BATCH",
    "MAX_SAMPLES",
    "MAX_HIDDEN",
    "MAX_DEPTH",
    "MAX_REPEATS",
    "MAX_TRAIN_STEPS",
    "MAX_TORCH_STEPS",
    "MAX_THREADS",
    "COMPILE_MODES",
    "MAX_WORKERS",
    "MAX_BINS",
    "MAX_SEED",
    "add_model_arguments",
    "add_direction_arguments",
    "add_search_arguments",
    "Directions",
    "model_from_args",
    "int_list",
    "schedule_from_args",
    "spectrum_from_args",
    "problem_from_args",
    "search_budgets_from_args",
    "emit_json",
]

DEFAULT_STEPS = 16
DEFAULT_LAM = 0.5

# documented maxima of the size options (docs/cli.md, "Limits"): a larger value is refused up front,
# by name, instead of failing minutes later in an allocation
#: minibatch size (``validate --batch``, ``train-teacher --batch-size``)
MAX_BATCH = 65_536
#: numbers of samples or fresh inputs (``--n-eval``)
MAX_SAMPLES = 1_048_576
#: network width (``--hidden``) and hidden layers (``--depth``)
MAX_HIDDEN = 8_192
MAX_DEPTH = 64
#: independent seeds (``validate --repeats``)
MAX_REPEATS = 10_000
#: training updates (``--train-steps``, ``--node-steps``, ``--gd-steps`` of the torch studies)
MAX_TRAIN_STEPS = 100_000_000
#: teacher steps N of the torch commands (``validate``, ``train-teacher``): every step is a network evaluation
MAX_TORCH_STEPS = 4_096
#: torch CPU threads and worker processes
MAX_THREADS = 1_024
MAX_WORKERS = 1_024
#: how the bridge's training steps run (``--compile``): eagerly, or through torch.compile in one of its modes
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
#: largest seed (seeds are 64-bit)
MAX_SEED = 2**63 - 1

# the classes of the error handling present themselves (repr, pickle, docs) under this public module
UsageError.__module__ = ArgumentParser.__module__ = __name__


# ---------------------------------------------------------------------------------------------
# option value types (argparse ``type=`` callables: they raise ArgumentTypeError, a one-line usage error)
# ---------------------------------------------------------------------------------------------


def _converted(text: str, convert: Callable[[str], Any], expected: str) -> Any:
    """``convert(text)``; a ``ValueError`` becomes the usage error ``expected <expected>, got '<text>'``."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: an integer ``>= 1``.

    Parameters
    ----------
    text : str
        The option's value as typed.

    Returns
    -------
    int

    Raises
    ------
    argparse.ArgumentTypeError
        For a malformed value (argparse turns it into a one-line usage error).
    """
    value = _converted(text, int, "an integer >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number ``> 0``.

    Parameters
    ----------
    text : str
        The option's value as typed.

    Returns
    -------
    float

    Raises
    ------
    argparse.ArgumentTypeError
        For a malformed value (argparse turns it into a one-line usage error).
    """
    value = _converted(text, float, "a number > 0")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number ``>= 0`` (see :func:`positive_float`)."""
    value = _converted(text, float, "a number >= 0")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """argparse type factory: an integer in ``[low, high]`` (a documented maximum, refused up front).

    Parameters
    ----------
    low, high : int
        The allowed range, both ends included.

    Returns
    -------
    callable
        ``str -> int``, raising :class:`argparse.ArgumentTypeError` (a one-line usage error naming
        the option) for a malformed or out-of-range value: ``expected an integer in [1, 65536], got 10**12``.
    """
    expected = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"

    def convert(text: str) -> int:
        value = _converted(text, int, expected)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {echo(text)}")
        return value

    convert.__name__ = f"int_{low}_{high}"
    return convert


def nonnegative_int(text: str) -> int:
    """argparse type: an integer ``>= 0``.

    Parameters
    ----------
    text : str
        The option's value as typed.

    Returns
    -------
    int
    """
    value = _converted(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


#: argparse type of ``--seed``: an integer in ``[0, 2**63 - 1]``
seed_int = bounded_int(0, MAX_SEED)


def int_list(low: int, high: int) -> Callable[[str], tuple]:
    """argparse type factory: a comma list of integers, each in ``[low, high]``, at least one.

    Returns
    -------
    callable
        ``str -> tuple of int``, raising :class:`argparse.ArgumentTypeError` for a malformed list
        (``expected integers separated by commas, got 'x'``) or an empty one or a value out of range
        (``expected integers in [1, 4096] separated by commas, got '0'``).
    """

    def convert(text: str) -> tuple:
        try:
            values = tuple(int(p) for p in text.split(",") if p.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
        if not values or any(not low <= v <= high for v in values):
            raise argparse.ArgumentTypeError(f"expected integers in [{low}, {high}] separated by commas, got {text!r}")
        return values

    convert.__name__ = f"int_list_{low}_{high}"
    return convert


def float_list(text: str) -> list[float]:
    """argparse type: a comma-separated list of numbers (``--lam 0.1,1,10``).

    Only the syntax is checked here; the range of the values (eigenvalues: finite, ``>= 0``) is
    checked once, by the core object they go into (:class:`~opmerge.objective.Problem`).

    Parameters
    ----------
    text : str
        The option's value as typed.

    Returns
    -------
    list of float

    Raises
    ------
    argparse.ArgumentTypeError
        For a malformed value (argparse turns it into a one-line usage error).
    """
    parts = [part.strip() for part in text.split(",")]
    if not parts or any(part == "" for part in parts):
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {echo(text)!r}")
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {echo(part)!r}") from None
    return values


# ---------------------------------------------------------------------------------------------
# output paths and long plans
# ---------------------------------------------------------------------------------------------


def _blocking_ancestor(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a folder (then ``path`` cannot be created)."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None


def check_out_folder(value: str | os.PathLike | None, option: str = "--out") -> Path | None:
    """Check an output folder option before any work starts; ``None`` (the command's default) passes.

    Refused: an empty name (it would write into the current folder), an existing file, and a path
    below an existing file (it cannot be created).

    Parameters
    ----------
    value : str, path-like or None
        The option's value.
    option : str
        The option's name, used in the message.

    Returns
    -------
    pathlib.Path or None

    Raises
    ------
    UsageError
        Naming ``option`` and the path.
    """
    if value is None:
        return None
    text = os.fspath(value)
    if not text.strip():
        raise UsageError(f"{option} must name a folder, got an empty path (write '{option} .' for the current folder)")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {echo(text)!r} exists and is not a folder; name a folder (new or existing)")
    blocker = _blocking_ancestor(path)
    if blocker is not None:
        raise UsageError(f"{option} {echo(text)!r} cannot be created: {echo(os.fspath(blocker))!r} is a file, not a folder")
    return path


def check_out_file(value: str | os.PathLike | None, option: str = "--out") -> Path | None:
    """Check an output file option before any work starts; ``None`` (stdout) passes.

    Refused: an empty name, an existing folder, and a file whose folder does not exist.

    Parameters
    ----------
    value : str, path-like or None
    option : str
        The option's name, used in the message.

    Returns
    -------
    pathlib.Path or None

    Raises
    ------
    UsageError
    """
    if value is None:
        return None
    text = os.fspath(value)
    if not text.strip():
        raise UsageError(f"{option} must name a file, got an empty path")
    path = Path(text)
    if path.is_dir():
        raise UsageError(f"{option} {echo(text)!r} is a folder; name a file")
    folder = path.parent
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"{option} {echo(text)!r}: the folder {echo(os.fspath(folder))!r} {what}")
    return path


#: plan texts longer than this are abbreviated in printed output and messages (the JSON keeps them whole)
PLAN_ECHO_LIMIT = 160
#: characters kept at each end of an abbreviated plan
PLAN_ECHO_KEEP = 60


def abbreviate_plan(text: object, leaves: int | None = None) -> str:
    """A plan text short enough for one line: its first and last 60 characters around ``...``, with the leaf count.

    Texts up to :data:`PLAN_ECHO_LIMIT` characters are returned unchanged. ``leaves`` defaults to
    the number of integer tokens of the text (the teacher steps of a plan).

    Parameters
    ----------
    text : object
        A plan or its text notation.
    leaves : int, optional

    Returns
    -------
    str
        E.g. ``((((2000 1999 ... 3) 2) 1) (2000 leaves)``.
    """
    text = str(text)
    if len(text) <= PLAN_ECHO_LIMIT:
        return text
    if leaves is None:
        leaves = len(re.findall(r"\d+", text))
    return f"{text[:PLAN_ECHO_KEEP]} ... {text[-PLAN_ECHO_KEEP:]} ({leaves} leaves)"


def option_message(message: str, options: Mapping[str, str]) -> str:
    """A configuration's error message told in terms of the command line: its first word, a
    field's name, replaced by that field's option (``n_eval must ...`` -> ``--n-eval must ...``).

    Parameters
    ----------
    message : str
        The message of an :class:`~opmerge.errors.InputError` raised by a configuration.
    options : mapping
        Field name -> option text (``{"n_eval": "--n-eval"}``); a field not in it is left as is.

    Returns
    -------
    str
    """
    match = re.match(r"(\w+)\b", message)
    flag = options.get(match.group(1)) if match else None
    return flag + message[len(match.group(1)):] if flag else message


# ---------------------------------------------------------------------------------------------
# option groups
# ---------------------------------------------------------------------------------------------


def add_model_arguments(
    parser: argparse.ArgumentParser,
    *,
    steps_default: int | None = DEFAULT_STEPS,
    segments_default: int | None = 1,
) -> None:
    """Add the "model" group: schedule, steps, segments, solver, target and the student model.

    Options (defaults in brackets): ``--schedule`` [vp-cosine], ``--steps N`` [16],
    ``--segments M`` [1], ``--solver`` [ddim], ``--target`` [teacher], ``--eta-tau`` [0.5],
    ``--init`` [warm], ``--training`` [flow], ``--input`` [forward], ``--budget`` [per-merge],
    ``--lr`` and ``--gd-steps`` (both required by ``--training gd``).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    steps_default, segments_default : int or None
        Defaults of ``--steps`` and ``--segments``; ``None`` lets a command tell "not given" apart
        (``opmerge evaluate`` takes ``N`` and ``M`` from the plan).
    """
    g = parser.add_argument_group("model (docs/theory.md sections 1-4)")
    steps_help = f"teacher steps N (default {steps_default})" if steps_default is not None else "teacher steps N (default: set by the command)"
    segments_help = (
        f"student steps M, 1 <= M <= N (default {segments_default})" if segments_default is not None
        else "student steps M, 1 <= M <= N (default: set by the command)"
    )
    g.add_argument("--schedule", default="vp-cosine", choices=SCHEDULE_NAMES, help="noise schedule (default vp-cosine)")
    g.add_argument("--steps", type=positive_int, default=steps_default, metavar="N", help=steps_help)
    g.add_argument("--segments", type=positive_int, default=segments_default, metavar="M", help=segments_help)
    g.add_argument("--solver", default="ddim", choices=SOLVERS, help="teacher sampler whose steps are merged (default ddim)")
    g.add_argument("--target", default="teacher", choices=TARGETS, help="W2 to the teacher's output or to the data (default teacher)")
    g.add_argument("--eta-tau", type=positive_float, default=0.5, metavar="X", help="training budget eta*tau > 0 (default 0.5)")
    g.add_argument("--init", default="warm", choices=INITS, help="student initialisation a_0 (default warm)")
    g.add_argument("--training", default="flow", choices=TRAININGS,
                   help="training law of a node: gradient flow, K steps of gd / adam / sign descent, or a measured "
                        "retention table (--retention FILE) (default flow)")
    g.add_argument("--input", default="forward", choices=INPUTS, help="input variance q_j: data-driven or teacher-generated (default forward)")
    g.add_argument("--input-scaling", default="raw", choices=INPUT_SCALINGS,
                   help="raw inputs or EDM's c_in (preconditioned; makes a budget mean the same on every schedule) (default raw)")
    g.add_argument("--sigma-data", type=positive_float, default=None, metavar="S",
                   help="sigma_d of --input-scaling preconditioned (default: sqrt of the mean eigenvalue)")
    g.add_argument("--budget", default="per-merge", choices=BUDGETS, help="eta*tau per merge node or in total (default per-merge)")
    g.add_argument("--lr", type=positive_float, default=None, metavar="ETA", help="step size of --training gd, adam or sign")
    g.add_argument("--gd-steps", type=positive_int, default=None, metavar="K", help="updates per node of --training gd, adam or sign")
    g.add_argument("--retention", default=None, metavar="FILE",
                   help="JSON retention table r(j, lambda) of --training empirical")
    g.add_argument("--costs", default=None, metavar="FILE",
                   help="a cost model from 'opmerge calibrate': its calibrated law replaces --training, --lr, --gd-steps")


def add_direction_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the "data" group: ``--lam`` (repeatable, comma lists) or ``--spectrum``, and ``--bins``.

    Without either, one direction ``lambda = 0.5``. Several ``lambda`` values are one joint
    problem with weights 1. ``--spectrum SPEC`` is a comma list, a ``.npy``/``.txt`` file or a named
    spectrum (``digits``), read by ``opmerge.spectra.load_spectrum``; ``--bins B`` bins it to
    ``B`` directions with ``opmerge.spectra.bin_spectrum``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser (or subparser) to extend.
    """
    g = parser.add_argument_group("data (eigenvalues of the covariance)")
    exclusive = g.add_mutually_exclusive_group()
    exclusive.add_argument(
        "--lam", type=float_list, action="append", metavar="L[,L...]",
        help=f"data variance lambda >= 0 of a direction; repeat or separate by commas for a joint plan (default {DEFAULT_LAM})",
    )
    exclusive.add_argument("--spectrum", metavar="SPEC", help="a spectrum: comma list '0.5,2,10', a .npy/.txt file, or 'digits'")
    g.add_argument("--bins", type=positive_int, default=None, metavar="B", help="bin the --spectrum into B directions")


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the "search" group: ``--node-budget`` and ``--time-budget`` of :func:`opmerge.solvers.solve`.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser (or subparser) to extend.
    """
    from .solvers import DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET

    g = parser.add_argument_group("exact search")
    g.add_argument("--node-budget", type=positive_int, default=DEFAULT_NODE_BUDGET, metavar="K",
                   help=f"most branch-and-bound expansions (default {DEFAULT_NODE_BUDGET:_})")
    g.add_argument("--time-budget", type=positive_float, default=DEFAULT_TIME_BUDGET, metavar="SEC",
                   help=f"most seconds of search; past it the best plan comes with a certified lower bound (default {DEFAULT_TIME_BUDGET:g})")


def add_executor_arguments(parser: argparse.ArgumentParser, *, default: str = "local", workers: bool = True) -> None:
    """Add the "executor" group: ``--executor``, ``--ray-address``, ``--unit-cpus``, ``--unit-gpus`` (and ``--workers``).

    Turned into an :class:`opmerge.parallel.ExecutorConfig` by :func:`executor_from_args`.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser (or subparser) to extend.
    default : str
        The engine when ``--executor`` is not given.
    workers : bool
        Also add ``--workers`` (leave it out where the parser has its own).
    """
    from .parallel import EXECUTOR_NAMES

    g = parser.add_argument_group("executor (independent units)")
    g.add_argument("--executor", choices=EXECUTOR_NAMES, default=None,
                   help=f"what runs the independent units: local (this process), process (a pool of local processes) or ray "
                        f"(a Ray cluster; pip install \"opmerge[cluster]\") (default {default})")
    if workers:
        g.add_argument("--workers", type=bounded_int(1, MAX_WORKERS), default=None, metavar="W",
                       help="process: worker processes; ray: CPUs of the local instance it starts (default: all cores)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="ray: the address of a running cluster ('auto', 'ray://head:10001'); default: start a local instance for the run")
    g.add_argument("--unit-cpus", type=positive_float, default=None, metavar="C", help="ray: CPUs reserved per unit (default 1)")
    g.add_argument("--unit-gpus", type=nonnegative_float, default=None, metavar="G",
                   help="ray: GPUs reserved per unit, a fraction to share one (default 0)")
    parser.set_defaults(_executor_default=default)


def executor_from_args(args: argparse.Namespace) -> Any:
    """The :class:`opmerge.parallel.ExecutorConfig` of the options of :func:`add_executor_arguments`.

    Raises
    ------
    UsageError
        For ``--ray-address``, ``--unit-cpus`` or ``--unit-gpus`` without ``--executor ray``, or an
        empty address.
    """
    from .parallel import ExecutorConfig

    kind = args.executor or getattr(args, "_executor_default", "local")
    ray_only = {"--ray-address": args.ray_address, "--unit-cpus": args.unit_cpus, "--unit-gpus": args.unit_gpus}
    if kind != "ray":
        given = [name for name, value in ray_only.items() if value is not None]
        if given:
            raise UsageError(f"{given[0]} is for --executor ray (got --executor {kind})")
    if args.ray_address is not None and not args.ray_address.strip():
        raise UsageError("--ray-address must name a cluster ('auto', 'ray://head:10001'), got an empty string")
    fields = {"kind": kind, "workers": getattr(args, "workers", None), "address": args.ray_address}
    if args.unit_cpus is not None:
        fields["cpus_per_unit"] = args.unit_cpus
    if args.unit_gpus is not None:
        fields["gpus_per_unit"] = args.unit_gpus
    return ExecutorConfig(**fields)


# ---------------------------------------------------------------------------------------------
# parsed options -> core objects
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Directions:
    """The eigen-directions chosen on the command line (same ``lam``/``weights``/``name`` as ``opmerge.spectra.Spectrum``).

    Attributes
    ----------
    lam : (d,) float64 array of eigenvalues
    weights : (d,) float64 array of multiplicities
    name : str
        ``"lam"`` for ``--lam``, else the spectrum's name.
    source : {"lam", "spectrum"}
    bins : int or None
    binning_error : dict or None
        ``BinnedSpectrum.error`` when ``--bins`` was used.
    """

    lam: np.ndarray
    weights: np.ndarray
    name: str
    source: str
    bins: int | None = None
    binning_error: dict | None = field(default=None)

    def to_dict(self) -> dict:
        """JSON-friendly description (without the arrays, which ``Problem.config()`` already holds)."""
        out: dict = {"source": self.source, "name": self.name, "directions": int(self.lam.shape[0])}
        if self.bins is not None:
            out["bins"] = self.bins
            out["binning_error"] = self.binning_error
        return out


def _arg(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(args, name, default)


def schedule_from_args(args: argparse.Namespace, steps: int | None = None) -> Schedule:
    """``make_schedule(args.schedule, N)`` with ``N = steps`` if given, else ``args.steps`` (else 16).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options (``schedule``, ``steps``).
    steps : int, optional
        Overrides ``args.steps``.

    Returns
    -------
    Schedule
    """
    if steps is None:
        steps = _arg(args, "steps") or DEFAULT_STEPS
    return make_schedule(_arg(args, "schedule", "vp-cosine"), steps)


def model_from_args(args: argparse.Namespace) -> StudentModel:
    r"""The :class:`~opmerge.model.StudentModel` of the parsed options (docs/theory.md §4).

    ``--training gd`` needs ``--lr`` and ``--gd-steps``; ``--lr``/``--gd-steps`` without it and
    ``--budget total`` with it are usage errors (reported with the options' names; the values
    themselves are checked by :class:`~opmerge.model.StudentModel`).

    Parameters
    ----------
    args : argparse.Namespace
        From a parser with :func:`add_model_arguments`.

    Returns
    -------
    StudentModel
    """
    costs = _arg(args, "costs")
    if costs is not None:
        clashes = [flag for flag, name, default in (("--training", "training", "flow"), ("--lr", "lr", None), ("--gd-steps", "gd_steps", None),
                                                  ("--retention", "retention", None), ("--input-scaling", "input_scaling", "raw"),
                                                  ("--sigma-data", "sigma_data", None), ("--budget", "budget", "per-merge"))
                   if _arg(args, name, default) != default]
        if clashes:
            raise UsageError(f"--costs sets the training law; leave out {', '.join(clashes)}")
        from .calibration import load_cost_model

        return load_cost_model(costs).student_model(init=_arg(args, "init", "warm"), input=_arg(args, "input", "forward"))
    training = _arg(args, "training", "flow")
    lr, gd_steps = _arg(args, "lr"), _arg(args, "gd_steps")
    retention_file = _arg(args, "retention")
    scaling, sigma_data = _arg(args, "input_scaling", "raw"), _arg(args, "sigma_data")
    if training in STEP_LAWS:
        missing = [flag for flag, value in (("--lr", lr), ("--gd-steps", gd_steps)) if value is None]
        if missing:
            raise UsageError(f"--training {training} needs {' and '.join(missing)} (the step size eta and the number of steps K)")
    elif lr is not None or gd_steps is not None:
        raise UsageError("--lr and --gd-steps only apply to --training gd, adam or sign")
    if training != "flow" and _arg(args, "budget", "per-merge") == "total":
        raise UsageError(f"--budget total is only defined for --training flow ({training} has a fixed step count or table per node)")
    if training == "empirical" and retention_file is None:
        raise UsageError("--training empirical needs --retention FILE (a retention table r(j, lambda))")
    if training != "empirical" and retention_file is not None:
        raise UsageError("--retention only applies to --training empirical")
    if sigma_data is not None and scaling != "preconditioned":
        raise UsageError("--sigma-data only applies to --input-scaling preconditioned")
    table = None
    if retention_file is not None:
        from .laws import load_retention

        table = load_retention(retention_file)
    return StudentModel(
        eta_tau=_arg(args, "eta_tau", 0.5),
        init=_arg(args, "init", "warm"),
        training=training,
        input=_arg(args, "input", "forward"),
        budget=_arg(args, "budget", "per-merge"),
        lr=lr,
        gd_steps=gd_steps,
        input_scaling=scaling,
        sigma_data=sigma_data,
        retention_table=table,
    )


def spectrum_from_args(args: argparse.Namespace) -> Directions:
    """The directions of ``--lam`` (flattened, weights 1) or ``--spectrum`` (optionally ``--bins``).

    ``opmerge.spectra`` is imported only when ``--spectrum`` is used. The ``--lam`` values are not
    range-checked here: :class:`~opmerge.objective.Problem` checks them, once.

    Parameters
    ----------
    args : argparse.Namespace
        From a parser with :func:`add_direction_arguments`.

    Returns
    -------
    Directions
    """
    spec = _arg(args, "spectrum")
    bins = _arg(args, "bins")
    lam_groups = _arg(args, "lam")
    if spec is not None and lam_groups:
        raise UsageError("--lam and --spectrum are mutually exclusive")
    if spec is None:
        if bins is not None:
            raise UsageError("--bins applies to --spectrum only")
        values = [v for group in lam_groups for v in group] if lam_groups else [DEFAULT_LAM]
        lam = np.asarray(values, dtype=np.float64)
        return Directions(lam=lam, weights=np.ones_like(lam), name="lam", source="lam")
    spectra = importlib.import_module("opmerge.spectra")
    try:
        spectrum = spectra.load_spectrum(spec)
        error = None
        if bins is not None:
            binned = spectra.bin_spectrum(spectrum, bins)
            spectrum, error = binned.spectrum, dict(binned.error)
    except InputError as exc:  # name the option (the type says it is the user's input)
        raise UsageError(f"--spectrum: {_message_of(exc)}") from exc
    lam = np.asarray(spectrum.lam, dtype=np.float64).reshape(-1)
    weights = np.asarray(spectrum.weights, dtype=np.float64).reshape(-1)
    return Directions(lam=lam, weights=weights, name=str(getattr(spectrum, "name", spec)), source="spectrum", bins=bins, binning_error=error)


def problem_from_args(
    args: argparse.Namespace,
    *,
    steps: int | None = None,
    segments: int | None = None,
    directions: Directions | None = None,
) -> Problem:
    """The :class:`~opmerge.objective.Problem` of the parsed options.

    Parameters
    ----------
    args : argparse.Namespace
        From a parser with :func:`add_model_arguments` and :func:`add_direction_arguments`.
    steps, segments : int, optional
        Override ``args.steps`` / ``args.segments`` (``opmerge evaluate`` takes them from the plan).
    directions : Directions, optional
        Already computed by :func:`spectrum_from_args` (else computed here).

    Returns
    -------
    Problem
        Its constructor is the one place where ``lambda``, the weights and ``M <= N`` are checked.
    """
    directions = spectrum_from_args(args) if directions is None else directions
    try:
        schedule = schedule_from_args(args, steps)
        if segments is None:
            segments = _arg(args, "segments") or 1
        model = model_from_args(args)
        return Problem(
            schedule,
            directions.lam,
            weights=directions.weights,
            model=model,
            solver=_arg(args, "solver", "ddim"),
            target=_arg(args, "target", "teacher"),
            segments=segments,
        )
    except InputError as exc:
        raise _named_after_option(exc, source=directions.source) from exc


#: parameters of the core whose command-line option is ``--`` + the name with ``-`` for ``_``
_OPTION_PARAMETERS = ("lam", "segments", "steps", "eta_tau", "lr", "gd_steps")


def _named_after_option(exc: InputError, *, source: str = "lam") -> InputError:
    """``exc`` with the core's parameter name replaced by the option's (``lam must be ...`` -> ``--lam must be ...``)."""
    message = _message_of(exc)
    match = re.match(r"(\w+) must\b", message)
    if match and match.group(1) in _OPTION_PARAMETERS:
        name = match.group(1)
        option = "--spectrum" if name == "lam" and source == "spectrum" else "--" + name.replace("_", "-")
        return type(exc)(option + message[len(name):]) if isinstance(exc, UsageError) else UsageError(option + message[len(name):])
    return exc


def search_budgets_from_args(args: argparse.Namespace) -> dict:
    """``{"node_budget": ..., "time_budget": ...}`` for :func:`opmerge.solvers.solve` (defaults when absent).

    Parameters
    ----------
    args : argparse.Namespace
        From a parser with :func:`add_search_arguments`.

    Returns
    -------
    dict
    """
    from .solvers import DEFAULT_NODE_BUDGET, DEFAULT_TIME_BUDGET

    return {
        "node_budget": int(_arg(args, "node_budget") or DEFAULT_NODE_BUDGET),
        "time_budget": float(_arg(args, "time_budget") or DEFAULT_TIME_BUDGET),
    }


# ---------------------------------------------------------------------------------------------
# JSON (through opmerge.io)
# ---------------------------------------------------------------------------------------------


def emit_json(obj: Any, *, indent: int | None = 1, stream=None) -> None:
    """Print ``obj`` as ONE strict JSON document on stdout (:func:`opmerge.io.dumps`; NaN/inf -> null).

    Parameters
    ----------
    obj : Any
        Converted by :func:`opmerge.io.to_jsonable`.
    indent : int or None
        JSON indentation.
    stream : text stream, optional
        Default ``sys.stdout``.
    """
    stream = sys.stdout if stream is None else stream
    stream.write(_io.dumps(obj, indent=indent, strict=True) + "\n")
    stream.flush()

