r"""The ``opmerge`` command line: a thin face over the core, ``analysis`` and ``experiments``.

Subcommands (``opmerge <command> --help`` for the options of each; reference: ``docs/cli.md``):

* ``plan`` — the optimal merge plan (:func:`opmerge.solvers.solve`) with its certificate;
* ``compare`` — the canonical plans (vanilla, boot, cd, pd) against the optimum;
* ``evaluate`` — one given plan, and whether it is optimal;
* ``derive`` — the symbolic derivations (sympy) as LaTeX;
* ``phase``, ``demo`` — delegated to ``analysis.cli``; ``validate`` — delegated to ``experiments.cli``;
* ``mixture`` — the Gaussian-mixture regime, delegated to ``analysis.mixture_cli``.

Only ``argparse`` and the opmerge core (numpy, scipy, numba) are imported at start; sympy,
matplotlib, torch, ``analysis`` and ``experiments`` are imported inside the subcommands that use
them. Bad input ends with exit status 2 and one line ``opmerge: error: ...`` on stderr, Ctrl-C
with 130 (:func:`opmerge.cli_options.run_main`).

Every ``--json`` document and every ``--out`` file is written through :mod:`opmerge.io` (strict
JSON, atomic files) and carries a ``"provenance"`` block (:func:`opmerge.io.provenance`). In the
JSON of ``plan``, ``compare`` and ``evaluate`` the key ``exact`` has one meaning: the reported
plan is certified optimal (its W2 is within the tolerance of the certified lower bound).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

import numpy as np

from . import __version__
from .cli_options import (
    DEFAULT_STEPS,
    PLAN_ECHO_LIMIT,
    ArgumentParser,
    Directions,
    UsageError,
    abbreviate_plan,
    check_out_file,
    add_direction_arguments,
    add_model_arguments,
    add_search_arguments,
    emit_json,
    problem_from_args,
    run_main,
    search_budgets_from_args,
    spectrum_from_args,
)
from .objective import PlanEvaluation, Problem, evaluate_plan
from ._validate import echo
from .plans import CANONICAL_KINDS, Plan, PlanParseError, canonical_plan, draw_plan, parse_plan
from .solvers import Solution, solve, stderr_progress

__all__ = ["main", "build_parser", "COMMANDS", "DELEGATED"]

#: subcommand -> one-line description (the order of ``opmerge --help``)
COMMANDS = {
    "plan": "optimal merge plan for a schedule, student model and spectrum, with its certificate",
    "compare": "canonical plans (vanilla, boot, cd, pd) side by side with the optimum",
    "evaluate": "W2 of one given plan, and whether it is optimal",
    "derive": "symbolic derivations of the teacher and student formulas, as LaTeX",
    "phase": "optimal plan family along a lambda sweep, with located thresholds (analysis)",
    "demo": "the built-in demo job: digits spectrum, joint plans, phase diagram (analysis)",
    "validate": "train real torch students and compare them with the model's predictions (experiments; studies exactness, sgd, ranking, scot, mixture, images)",
    "train-teacher": "train (or resume) a diffusion teacher on image data such as the 8x8 digits (experiments)",
    "mixture": "Gaussian-mixture regime: plan, simulate, merge-error, phase, honesty (analysis)",
    "calibrate": "calibrate a training law on pilot distillations with your teacher and recipe; write a cost model (experiments)",
    "advise": "the recommended plan with its predicted quality and interval, the canonical plans beside it, and its sensitivity to the budget",
}
#: subcommands handled by another package's ``main``
DELEGATED = ("phase", "demo", "validate", "train-teacher", "mixture", "calibrate")

_PLAN_WIDTH = 36  # plan text column of the compare table
_MAX_TABLE_ROWS = 32  # directions shown in full; more are elided (all are in --json)


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    """The ``opmerge`` parser with every subcommand (the delegated ones take their options verbatim)."""
    parser = ArgumentParser(
        prog="opmerge",
        formatter_class=_Formatter,
        description=(
            "Optimal step-merging plans for diffusion trajectory distillation in the linear regime:\n"
            "which merge plan a distilled student should follow, where the optimum changes family\n"
            "(phase transitions), and how a distillation strategy fares before training it."
        ),
        epilog=(
            "examples:\n"
            "  opmerge plan --steps 8 --lam 0.3\n"
            "  opmerge compare --steps 6 --lam 0.3\n"
            "  opmerge evaluate --plan '(4 (3 (2 1)))' --lam 2\n"
            "  opmerge derive\n"
            "  opmerge demo\n\n"
            "'opmerge COMMAND --help' shows the options of a command; docs/cli.md is the reference."
        ),
    )
    parser.add_argument("--version", action="version", version=f"opmerge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    _add_problem_command(sub, "plan", _PLAN_NOTES, run_plan, drawing=True)
    _add_problem_command(sub, "compare", _COMPARE_NOTES, run_compare, drawing=False)
    _add_problem_command(sub, "evaluate", _EVALUATE_NOTES, run_evaluate, drawing=True, plan_option=True)
    _add_problem_command(sub, "advise", _ADVISE_NOTES, run_advise, drawing=True, spread_option=True)

    p = sub.add_parser("derive", help=COMMANDS["derive"], description=_describe("derive", _DERIVE_NOTES), formatter_class=_Formatter)
    p.add_argument("--out", metavar="FILE", default=None, help="write the LaTeX to FILE instead of stdout")
    p.set_defaults(handler=run_derive)

    for name in DELEGATED:
        p = sub.add_parser(name, help=COMMANDS[name], add_help=False, description=COMMANDS[name])
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(handler=None)
    return parser


_PLAN_NOTES = """\
Solves min over all merge plans with M segments of W2 (docs/theory.md section 5) and prints the
plan, its drawing, S / T / E per direction, W2, whether it is proven optimal and the certified
lower bound. Several --lam values (or a --spectrum) give one joint plan for all directions."""

_COMPARE_NOTES = """\
Evaluates the canonical plans (uniform segments) and the optimal plan. The ratio column is
W2 / W2_opt ("1.000" for a tie within the solver's tolerance, "inf" when W2_opt = 0 < W2);
'*' marks the rows that attain the optimum."""

_EVALUATE_NOTES = """\
Evaluates one plan and solves the same problem to tell whether the plan is optimal. N and M are
taken from the plan unless --steps/--segments are given (they must then agree with it)."""

_ADVISE_NOTES = """\
One question, one answer: the plan to distil (the solver's optimum) with its predicted W2, an
interval (its W2 when the training budget is scaled by 1/F and F), the canonical plans beside it,
and whether the recommendation changes under those budgets (regret of keeping it). With
--costs FILE (from 'opmerge calibrate') the prediction uses the law calibrated on your teacher."""

_DERIVE_NOTES = """\
Derives with sympy the DDIM step, Heun's step, the exact flow and the student model's formulas
(docs/theory.md sections 2 and 4), checks them, and prints them as LaTeX."""


def _describe(name: str, notes: str) -> str:
    return f"{COMMANDS[name][0].upper()}{COMMANDS[name][1:]}.\n\n{notes}"


def _add_problem_command(sub: argparse._SubParsersAction, name: str, notes: str, handler: Callable[[argparse.Namespace], int],
                         *, drawing: bool, plan_option: bool = False, spread_option: bool = False) -> None:
    """A subcommand that solves one problem: the model, data, search and output options; with ``plan_option``
    (``evaluate``) first ``--plan``, and ``--steps``/``--segments`` then default to the plan's ``N`` and ``M``."""
    p = sub.add_parser(name, help=COMMANDS[name], description=_describe(name, notes), formatter_class=_Formatter)
    if plan_option:
        p.add_argument("--plan", required=True, metavar="TEXT",
                       help="the plan in text notation, e.g. '(4 (3 (2 1)))' or '(4 3) | (2 1)', or a canonical name: " + ", ".join(CANONICAL_KINDS))
        add_model_arguments(p, steps_default=None, segments_default=None)
    else:
        add_model_arguments(p)
    add_direction_arguments(p)
    add_search_arguments(p)
    if spread_option:
        p.add_argument("--spread", type=_spread_factor, default=2.0, metavar="F",
                       help="budget factor of the sensitivity analysis and the interval: 1/F and F, F > 1 (default 2)")
    _add_output_arguments(p, drawing=drawing)
    p.set_defaults(handler=handler)


def _spread_factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 1, got {text!r}") from None
    if not (value > 1.0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 1, got {text!r}")
    return value


def _add_output_arguments(parser: argparse.ArgumentParser, *, drawing: bool) -> None:
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the text report")
    if drawing:
        g.add_argument("--no-draw", action="store_true", help="leave out the ASCII drawing of the plan")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="status line of a long search on stderr (phase, time, nodes, best W2, bound); "
                        "default: on when stderr is a terminal")


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``opmerge`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    0 success, 2 bad input (one line on stderr), 130 Ctrl-C; see :func:`opmerge.cli_options.run_main`.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``opmerge``.

    Returns
    -------
    int
        The exit status.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    return run_main(_dispatch, args, memory_hint=_MEMORY_HINTS.get(args[0] if args else "", None))


#: what to reduce after running out of memory, per command (the delegated ones name their own options)
_MEMORY_HINTS = {
    "plan": "reduce --steps, --segments or the number of directions (--lam, --spectrum with --bins)",
    "compare": "reduce --steps, --segments or the number of directions (--lam, --spectrum with --bins)",
    "evaluate": "reduce the plan's size or the number of directions (--lam, --spectrum with --bins)",
    "phase": "reduce --points, --steps or --workers",
    "demo": "use --quick, --bins or fewer --workers",
    "validate": "reduce --batch, --n-eval, --hidden, --repeats or the number of directions (--lam, --spectrum)",
    "train-teacher": "reduce --batch-size, --hidden, --depth or --n-eval",
    "mixture": "reduce --steps, --order, or the number of --separations / --eta-taus",
    "calibrate": "reduce --batch, --n-eval, --hidden or the number of directions",
}


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command is None:  # only global options such as --version (which exits) were given
        parser.print_help()
        return 0
    if args.command in DELEGATED:
        return _delegate(args.command, list(args.rest))
    return int(args.handler(args) or 0)


#: optional modules -> the install that brings them
_EXTRAS = {
    "torch": "pip install 'opmerge[bridge]'",
    "sklearn": "pip install 'opmerge[bridge]'",
    "matplotlib": "pip install 'opmerge[plot]'",
    "tqdm": "pip install tqdm",
}


def _delegate(command: str, rest: list[str]) -> int:
    """``opmerge phase|demo ...`` -> ``analysis.cli.main``; ``opmerge validate ...`` -> ``experiments.cli.main``."""
    try:
        if command == "train-teacher":
            from opmerge.experiments.images.cli import train_teacher_main

            return int(train_teacher_main(rest) or 0)
        if command == "validate":
            from opmerge.experiments.cli import main as experiments_main

            return int(experiments_main(rest) or 0)
        if command == "calibrate":
            from opmerge.experiments.calibrate_cli import calibrate_main

            return int(calibrate_main(rest) or 0)
        if command == "mixture":
            from opmerge.analysis.mixture_cli import main as mixture_main

            return int(mixture_main(rest) or 0)
        from opmerge.analysis.cli import main as analysis_main

        return int(analysis_main([command, *rest]) or 0)
    except ModuleNotFoundError as exc:
        name = exc.name or ""
        top = name.split(".")[0]
        if top in _EXTRAS:
            extra = "the bridge extras" if "bridge" in _EXTRAS[top] else f"the module {top}"
            raise UsageError(f"opmerge {command} needs {extra}: {_EXTRAS[top]}") from exc
        if name.startswith(("opmerge.analysis", "opmerge.experiments")):
            raise UsageError(
                f"opmerge {command} needs the module {name}, which this installation lacks "
                f"(it ships with the opmerge repository: pip install -e . from a checkout)"
            ) from exc
        raise


# ---------------------------------------------------------------------------------------------
# helpers shared by the commands
# ---------------------------------------------------------------------------------------------


def _setup(args: argparse.Namespace, **problem_kwargs) -> tuple[Directions, Problem, dict]:
    """The directions, the problem (``problem_kwargs`` as for :func:`problem_from_args`) and the search budgets of ``args``."""
    directions = spectrum_from_args(args)
    problem = problem_from_args(args, directions=directions, **problem_kwargs)
    return directions, problem, search_budgets_from_args(args)


def _emit(out: dict, problem: Problem, budgets: dict, directions: Directions) -> None:
    """Print a command's JSON document ``out``, with ``"config"`` and ``"provenance"`` (the configuration inside it) added last."""
    from .io import provenance

    out["config"] = config = problem.config()
    config.update(budgets)
    config["directions"] = directions.to_dict()
    out["provenance"] = provenance(config=config)
    emit_json(out)


def _report_head(command: str, problem: Problem, directions: Directions) -> list[str]:
    """The first lines of a command's text report: ``opmerge <command>:``, the problem, a blank line."""
    m = problem.model
    model = f"init {m.init}, training {m.training}"
    if m.training in ("gd", "adam", "sign"):
        model += f" (lr {m.lr:g}, {m.gd_steps} steps)"
    elif m.training == "flow":
        model += f", eta*tau {m.eta_tau:g}"
    model += f", input {m.input}, budget {m.budget}"
    if m.input_scaling != "raw":
        model += f", input scaling {m.input_scaling}"
    lines = [
        f"opmerge {command}: schedule {problem.schedule.name}, N = {problem.steps}, M = {problem.segments}, "
        f"solver {problem.solver}, target {problem.target}; {model}"
    ]
    if directions.source == "lam":
        lines.append("lambda = " + ", ".join(f"{v:g}" for v in problem.lam))
    else:
        binned = f", binned to {directions.bins}" if directions.bins is not None else ""
        lines.append(f"spectrum {directions.name}: {problem.dim} direction(s){binned}, total weight {float(np.sum(problem.weights)):g}")
    return lines + [""]


def _plan_lines(args: argparse.Namespace, label: str, plan: Plan, problem: Problem, evaluation: PlanEvaluation) -> list[str]:
    """``<label>: <plan>``, its drawing (unless ``--no-draw``), a blank line, then S / T / E (:func:`_direction_lines`)."""
    text = str(plan)
    lines = [f"{label}: {abbreviate_plan(text, plan.steps)}"]
    if not args.no_draw:
        if len(text) <= PLAN_ECHO_LIMIT:
            lines.append(draw_plan(plan))
        else:  # thousands of lines, and its header would repeat the plan: left out (--json has the plan)
            lines.append(f"(drawing left out: {plan.steps} leaves, {plan.n_segments} segment(s), {plan.n_merges} merges; --json has the full plan)")
    return [*lines, "", *_direction_lines(problem, evaluation)]


def _direction_lines(problem: Problem, evaluation: PlanEvaluation) -> list[str]:
    """S / T / E of each direction: one line for one direction, a table for several."""
    s, t, e = evaluation.student, evaluation.teacher, evaluation.exact
    goal = []
    if problem.target == "data":
        goal = ["target data: |S| should reach sqrt(lambda) / ||v_N|| = " + ", ".join(f"{g:.10g}" for g in problem.goal[:_MAX_TABLE_ROWS])
                + (" …" if problem.dim > _MAX_TABLE_ROWS and _unicode_ok() else "")]
    if problem.dim == 1:
        return [f"S = {s[0]:.10g}   T = {t[0]:.10g}   E = {e[0]:.10g}   (student, teacher, exact flow; S - T = {s[0] - t[0]:+.3e})", *goal]
    rows = [[str(i), f"{problem.lam[i]:.6g}", f"{problem.weights[i]:.6g}", f"{s[i]:.10g}", f"{t[i]:.10g}", f"{e[i]:.10g}", f"{s[i] - t[i]:+.3e}"]
            for i in range(problem.dim)]
    elided = 0
    if len(rows) > _MAX_TABLE_ROWS:
        half = _MAX_TABLE_ROWS // 2
        elided = len(rows) - 2 * half
        rows = rows[:half] + [["…" if _unicode_ok() else "..."] + [""] * 6] + rows[-half:]
    lines = _table(["dir", "lambda", "weight", "S (student)", "T (teacher)", "E (exact flow)", "S - T"], rows, right=range(1, 7))
    if elided:
        lines.append(f"({elided} directions not shown; --json lists all)")
    return lines + goal


def _certificate_lines(solution: Solution) -> list[str]:
    if solution.exact:
        status = "exact: yes, proven optimal over all plans with these N and M"
    elif not solution.stopped and solution.problem.model.training == "adam":
        status = ("exact: NO, training adam: the lower bound rests on a tabulated Adam/sign envelope, not a proof "
                  f"(the search finished; gap {solution.gap:.3e})")
    else:
        status = (f"exact: NO, the search stopped at its budget ({solution.nodes} nodes, {solution.elapsed:.2f} s); "
                  f"no plan has W2 below the lower bound, gap {solution.gap:.3e}")
    return [
        f"W2 = {solution.w2:.10g}",
        status,
        f"lower bound = {solution.lower_bound:.10g}   (tolerance {solution.tol:.2e})",
        f"method {solution.method}, {solution.nodes} search node(s), {solution.elapsed:.3f} s",
    ]


def _table(header: list[str], rows: list[list[str]], right: Sequence[int] = ()) -> list[str]:
    right = set(right)
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [row[c].rjust(widths[c]) if c in right else row[c].ljust(widths[c]) for c in range(len(header))]
        return "  ".join(cells).rstrip()

    return [fmt(header), "  ".join("-" * w for w in widths), *(fmt(row) for row in rows)]


def _unicode_ok() -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "…".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _truncate(text: str, width: int = _PLAN_WIDTH) -> str:
    if len(text) <= width:
        return text
    mark = "…" if _unicode_ok() else "..."
    return text[: width - len(mark)] + mark


def _print(lines: list[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")


def _progress_callback(args: argparse.Namespace):
    """:func:`opmerge.solvers.stderr_progress` when ``--progress`` (or, by default, when stderr is a terminal), else ``None``."""
    wanted = getattr(args, "progress", None)
    if wanted is None:
        wanted = bool(getattr(sys.stderr, "isatty", lambda: False)())
    return stderr_progress if wanted else None


def _solve(problem: Problem, budgets: dict, args: argparse.Namespace) -> Solution:
    """:func:`~opmerge.solvers.solve`, its :class:`~opmerge.errors.IndistinguishablePlansWarning` as one stderr line."""
    import warnings

    from .errors import IndistinguishablePlansWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IndistinguishablePlansWarning)
        solution = solve(problem, **budgets, progress=_progress_callback(args))
    for item in caught:
        if issubclass(item.category, IndistinguishablePlansWarning):
            sys.stderr.write(f"opmerge: warning: {item.message}\n")
        else:  # pragma: no cover - other warnings pass through unchanged
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return solution


def _attains(w2: float, solution: Solution) -> bool:
    """True when ``w2`` is the optimum's within the solver's tolerance."""
    return bool(abs(w2 - solution.w2) <= solution.tol)


def _ratio(w2: float, solution: Solution) -> float:
    """``W2 / W2_opt``: exactly 1 for a tie within ``tol``, ``inf`` when ``W2_opt = 0 < W2``."""
    if _attains(w2, solution):
        return 1.0
    if solution.w2 <= 0.0:
        return float("inf")
    return w2 / solution.w2


def _format_ratio(ratio: float) -> str:
    if ratio == float("inf"):
        return "inf"
    return f"{ratio:.3f}" if ratio < 1e4 else f"{ratio:.3e}"


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


def run_plan(args: argparse.Namespace) -> int:
    """``opmerge plan``: solve for the optimal plan and report it.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of the command.

    Returns
    -------
    int
        The exit status (0).
    """
    directions, problem, budgets = _setup(args)
    solution = _solve(problem, budgets, args)
    if args.json:
        out = solution.to_dict()  # "exact": the plan is certified optimal
        out["command"] = "plan"
        _emit(out, problem, budgets, directions)
        return 0
    lines = _report_head("plan", problem, directions)
    lines += _plan_lines(args, "optimal plan", solution.plan, problem, solution.evaluation)
    lines += _certificate_lines(solution)
    _print(lines)
    return 0


def run_advise(args: argparse.Namespace) -> int:
    """``opmerge advise``: the recommended plan, its predicted quality and interval, the canonical plans, the sensitivity.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of the command.

    Returns
    -------
    int
        The exit status (0).
    """
    from .advice import advise

    directions, problem, budgets = _setup(args)
    progress = _progress_callback(args)
    advice = advise(problem, factors=(1.0 / args.spread, args.spread), **budgets, progress=progress)
    for message in dict.fromkeys(advice.warnings):
        sys.stderr.write(f"opmerge: warning: {message}\n")
    if args.json:
        out = advice.to_dict()
        out["command"] = "advise"
        out["spread"] = args.spread
        _emit(out, problem, budgets, directions)
        return 0
    lines = _report_head("advise", problem, directions)
    lo, hi = advice.w2_interval
    if advice.exact:
        certified = "certified optimal"
    elif not advice.stopped and problem.model.training == "adam":
        certified = "the search finished; adam's bound is a tabulated envelope, not a proof"
    else:
        certified = "best found within the search budget, not certified"
    lines.append(f"recommended: {abbreviate_plan(str(advice.plan), advice.plan.steps)}  ({certified})")
    lines.append(f"predicted W2 = {advice.w2:.6g}, interval [{lo:.6g}, {hi:.6g}] for budgets x{1 / args.spread:g} .. x{args.spread:g}")
    lines.append("")
    rows = [[kind, _truncate(entry["plan"]), f"{entry['w2']:.6g}", _format_ratio(entry["ratio"])] for kind, entry in advice.canonical.items()]
    rows.append(["recommended", _truncate(str(advice.plan)), f"{advice.w2:.6g}", "1.000"])
    lines += _table(["plan", "text", "W2", "W2/W2_rec"], rows, right=(2, 3))
    lines.append("")
    lines.append("sensitivity to the training budget:")
    for row in advice.sensitivity:
        verdict = "still optimal" if row["same_plan"] else f"optimum becomes {_truncate(row['plan'], 48)}, regret {row['regret']:.1%}"
        lines.append(f"  budget x{row['factor']:g}: W2 of the recommendation {row['w2_recommended']:.6g}"
                     f" (optimum {row['w2_optimal']:.6g}); {verdict}")
    if advice.robust:
        lines.append("robust: the recommendation is optimal at every budget tried")
    elif getattr(args, "costs", None):
        lines.append("not robust: a budget off by the factor above changes the optimum; the law is calibrated, but check the "
                     "recommendation against the runner-up in a short run before committing (docs/calibration.md section 7)")
    else:
        lines.append("not robust: a budget off by the factor above changes the optimum; calibrate the law (opmerge calibrate) before training")
    if not args.no_draw and len(str(advice.plan)) <= PLAN_ECHO_LIMIT:
        lines += ["", draw_plan(advice.plan)]
    _print(lines)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """``opmerge compare``: the canonical plans and the optimum side by side.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of the command.

    Returns
    -------
    int
        The exit status (0).
    """
    directions, problem, budgets = _setup(args)
    solution = _solve(problem, budgets, args)
    entries: dict[str, tuple[Plan, PlanEvaluation]] = {}
    for kind in CANONICAL_KINDS:
        plan = canonical_plan(kind, problem.steps, problem.segments)
        entries[kind] = (plan, evaluate_plan(problem, plan))
    entries["optimal"] = (solution.plan, solution.evaluation)
    if args.json:
        out = solution.to_dict()
        out["command"] = "compare"
        out["strategies"] = {
            name: {
                "plan": str(plan),
                "student": ev.student.tolist(),
                "w2": ev.w2,
                "ratio": _ratio(ev.w2, solution),
                "attains_optimum": _attains(ev.w2, solution),
            }
            for name, (plan, ev) in entries.items()
        }
        _emit(out, problem, budgets, directions)
        return 0
    one = problem.dim == 1
    header = ["strategy", "plan", *(["S"] if one else []), "W2", "W2/W2_opt", "opt"]
    rows = []
    for name, (plan, ev) in entries.items():
        row = [name, _truncate(str(plan))]
        if one:
            row.append(f"{ev.student[0]:.10g}")
        row += [f"{ev.w2:.10g}", _format_ratio(_ratio(ev.w2, solution)), "*" if _attains(ev.w2, solution) else ""]
        rows.append(row)
    right = range(2, len(header) - 1)
    lines = _report_head("compare", problem, directions)
    lines += _table(header, rows, right=right)
    lines.append("")
    if one:
        lines.append(f"T = {problem.teacher[0]:.10g} (teacher)   E = {problem.exact[0]:.10g} (exact flow)")
    winners = [name for name, (_, ev) in entries.items() if name != "optimal" and _attains(ev.w2, solution)]
    if winners:
        lines.append("optimal: " + ", ".join(winners) + (" (tie)" if len(winners) > 1 else ""))
    else:
        lines.append(f"optimal: no canonical plan; the optimum is {abbreviate_plan(solution.plan, solution.plan.steps)}")
    lines += _certificate_lines(solution)[1:]
    _print(lines)
    return 0


def _plan_from_text(args: argparse.Namespace) -> Plan:
    text = args.plan.strip()
    if text in CANONICAL_KINDS:
        steps = args.steps if args.steps is not None else DEFAULT_STEPS
        segments = args.segments if args.segments is not None else 1
        if segments > steps:
            raise UsageError(f"--segments ({segments}) must be <= --steps ({steps})")
        return canonical_plan(text, steps, segments)
    try:
        plan = parse_plan(text)
    except PlanParseError as exc:
        raise UsageError(f"--plan: {exc.problem}, in {echo(exc.text, exc.position)!r}") from exc
    shown = echo(text)
    if args.steps is not None and args.steps != plan.steps:
        raise UsageError(f"--plan {shown!r} has N = {plan.steps} teacher steps but --steps is {args.steps}; leave out --steps or make them agree")
    if args.segments is not None and args.segments != plan.n_segments:
        raise UsageError(f"--plan {shown!r} has M = {plan.n_segments} segment(s) but --segments is {args.segments}; leave out --segments or make them agree")
    return plan


def run_evaluate(args: argparse.Namespace) -> int:
    """``opmerge evaluate``: one plan, its W2 and whether it is optimal.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of the command.

    Returns
    -------
    int
        The exit status (0).
    """
    plan = _plan_from_text(args)
    directions, problem, budgets = _setup(args, steps=plan.steps, segments=plan.n_segments)
    evaluation = evaluate_plan(problem, plan)
    solution = _solve(problem, budgets, args)
    # one meaning of "exact" everywhere: this plan is certified optimal (W2 within tol of the certified lower bound)
    exact = bool(evaluation.w2 - solution.lower_bound <= solution.tol)
    ratio = _ratio(evaluation.w2, solution)
    if args.json:
        _emit({
            "command": "evaluate",
            "plan": str(plan),
            "student": evaluation.student.tolist(),
            "teacher": evaluation.teacher.tolist(),
            "exact_flow": evaluation.exact.tolist(),
            "segment_values": evaluation.segment_values.tolist(),
            "w2": evaluation.w2,
            "exact": exact,
            "attains_optimum": _attains(evaluation.w2, solution),
            "lower_bound": solution.lower_bound,
            "tolerance": solution.tol,
            "ratio": ratio,
            "n_merges": plan.n_merges,
            "optimum": {"plan": str(solution.plan), "w2": solution.w2, "exact": solution.exact, "lower_bound": solution.lower_bound},
        }, problem, budgets, directions)
        return 0
    lines = _report_head("evaluate", problem, directions)
    lines += _plan_lines(args, "plan", plan, problem, evaluation)
    lines.append(f"W2 = {evaluation.w2:.10g}")
    if exact:
        lines.append("optimal: yes, proven (W2 equals the certified lower bound within tolerance)")
    elif _attains(evaluation.w2, solution):
        lines.append(f"optimal: as good as the best plan found, but not proven (lower bound {solution.lower_bound:.10g})")
    else:
        lines.append(f"optimal: no; W2 / W2_opt = {_format_ratio(ratio)}")
    lines.append(f"optimum: {abbreviate_plan(solution.plan, solution.plan.steps)}  W2 = {solution.w2:.10g}, lower bound = {solution.lower_bound:.10g}"
                 + ("" if solution.exact else " (not proven optimal within the search budget)"))
    _print(lines)
    return 0


def run_derive(args: argparse.Namespace) -> int:
    """``opmerge derive``: the sympy derivations as LaTeX.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of the command.

    Returns
    -------
    int
        The exit status (0).
    """
    path = check_out_file(args.out)  # before the (slow) derivation
    from .symbolic import derive_all, render_latex

    text = render_latex(derive_all())
    if path is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    import json

    from .io import provenance, to_jsonable, write_text

    block = json.dumps(to_jsonable(provenance(config={"command": "derive"})), allow_nan=False)
    write_text(path, f"% opmerge derive; provenance: {block}\n{text}")
    sys.stderr.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
