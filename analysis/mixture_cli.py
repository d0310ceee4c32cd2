r"""``opmerge mixture <action>``: the Gaussian-mixture regime on the command line (docs/cli.md).

Five actions over the core of :mod:`opmerge.mixture` and the studies of
:mod:`opmerge.analysis.mixture`:

* ``plan`` — the planner's optimal plan (:func:`~opmerge.mixture.optimal_mixture_plan`) with its
  planner cost and its exact simulation (MSE, W2), beside the canonical plans;
* ``simulate PLAN...`` — the exact simulation (:func:`~opmerge.mixture.simulate_plan`) of given plans;
* ``merge-error`` — the approximation error of one merge against the number of merged steps, one
  curve per separation (:func:`~opmerge.analysis.mixture.merge_errors`); figure
  ``OUT/mixture-merge-error.{pdf,png,json}``;
* ``phase`` — a (separation, budget) grid of cells (:func:`~opmerge.analysis.mixture.run_cells`,
  cached in ``OUT/cache`` so that a rerun resumes): the exact optimum's shape, whether it is the
  linear regime's answer, the planner's pick and its regret; figure ``OUT/mixture-phase.*``;
* ``honesty`` — the same cells: Spearman correlation of planner cost and exact MSE over all plans
  and the regret per cell, and a scatter of one cell; figure ``OUT/mixture-honesty.*``.

Every option is checked once, here, before any work (a value out of range names the option and
its range); bad input ends with exit status 2 and one line on stderr, Ctrl-C with 130
(:func:`opmerge.cli_options.run_main`). ``--json`` prints one JSON object with the configuration and
a provenance block. matplotlib is imported only when a figure is drawn.

:func:`main` is what ``opmerge.cli`` calls with the arguments after ``opmerge mixture``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from opmerge._validate import echo
from opmerge.cli_options import (
    ArgumentParser,
    UsageError,
    abbreviate_plan,
    bounded_int,
    check_out_folder,
    emit_json,
    positive_float,
    run_main,
)
from opmerge.errors import InputError
from opmerge.io import provenance
from opmerge.mixture import FAMILIES, PRESETS
from opmerge.plans import CANONICAL_KINDS, Plan, PlanParseError, canonical_plan, count_plans, format_plan, parse_plan
from opmerge.schedules import SCHEDULE_NAMES

__all__ = ["main", "build_parser", "ACTIONS", "DEFAULT_OUT", "MAX_STEPS", "MERGE_ERROR_FLOOR", "cell_summary"]

#: action -> one-line description (the order of ``opmerge mixture --help``)
ACTIONS = {
    "plan": "the planner's optimal plan, its exact simulation, and the canonical plans beside it",
    "simulate": "exact simulation (MSE, W2) of given plans",
    "merge-error": "approximation error of a merge against the number of merged steps, per separation (figure)",
    "phase": "phase diagram over (separation, budget): exact optimum, linear regime's answer, planner's regret (figure)",
    "honesty": "planner cost against exact MSE: Spearman and regret per cell, scatter of one cell (figure)",
}
#: output folder of the actions that write figures
DEFAULT_OUT = "results/mixture"
#: most teacher steps of plan, simulate and merge-error (the planner's tables take O(N^4): N = 32 ~ 40 s)
MAX_STEPS = 64
#: most teacher steps of a phase / honesty cell (every plan is simulated; MixtureCell's limit)
MAX_CELL_STEPS = 8
#: Gauss-Hermite order range (MixtureCell's)
ORDER_RANGE = (2, 64)
#: largest separation (mixture_preset's)
MAX_SEPARATION = 1e6
#: most values of --separations and of --eta-taus
MAX_GRID_VALUES = 32
#: default lower clip of the merge-error figure: below it is rounding (the gated family holds every
#: single DDIM step, and every composite of a one-component mixture, exactly)
MERGE_ERROR_FLOOR = 1e-16
#: relative tolerance under which the exact optimum's MSE equals the linear answer's
LINEAR_RTOL = 1e-9


# ---------------------------------------------------------------------------------------------
# option types (argparse ``type=``: a ValueError-free one-line error naming the option)
# ---------------------------------------------------------------------------------------------


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {echo(text)!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {echo(text)!r}")
    return value


def separation_value(text: str) -> float:
    """argparse type: a separation in ``[0, 1e6]`` (component standard deviations)."""
    value = _number(text)
    if not 0.0 <= value <= MAX_SEPARATION:
        raise argparse.ArgumentTypeError(f"expected a separation in [0, 1e6], got {echo(text)}")
    return value


def _value_list(convert: Callable[[str], float], what: str) -> Callable[[str], list[float]]:
    """argparse type factory: 1 to MAX_GRID_VALUES comma-separated values, each ``convert``-ed, no repeats."""

    def parse(text: str) -> list[float]:
        parts = [part.strip() for part in text.split(",")]
        if any(part == "" for part in parts):
            raise argparse.ArgumentTypeError(f"expected {what} separated by commas, got {echo(text)!r}")
        if len(parts) > MAX_GRID_VALUES:
            raise argparse.ArgumentTypeError(f"expected at most {MAX_GRID_VALUES} values, got {len(parts)}")
        values = [convert(part) for part in parts]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise argparse.ArgumentTypeError(f"{repeated[0]:g} is given twice")
        return values

    parse.__name__ = f"list_of_{convert.__name__}"
    return parse


separation_list = _value_list(separation_value, "separations in [0, 1e6]")
eta_tau_list = _value_list(positive_float, "budgets eta*tau > 0")


def _pair(text: str) -> tuple[float, float]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected SEPARATION,ETA_TAU (two numbers), got {echo(text)!r}")
    return separation_value(parts[0]), positive_float(parts[1])


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)


def _add_mixture_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data (a Gaussian mixture)")
    g.add_argument("--preset", default="two-2d", choices=tuple(PRESETS), help="a mixture preset (default two-2d)")
    g.add_argument("--separation", type=separation_value, default=4.0, metavar="S",
                   help="the preset's separation in component standard deviations, in [0, 1e6] (default 4)")
    g.add_argument("--mixture", default=None, metavar="FILE",
                   help="a mixture from a JSON file or .npz archive (weights, means, covariances); overrides --preset/--separation")


def _add_grid_arguments(parser: argparse.ArgumentParser, *, budgets: bool) -> None:
    g = parser.add_argument_group("grid")
    g.add_argument("--preset", default="two-2d", choices=tuple(PRESETS), help="a mixture preset (default two-2d)")
    g.add_argument("--separations", type=separation_list, default=[0.0, 2.0, 4.0, 6.0], metavar="S[,S...]",
                   help=f"separations, each in [0, 1e6], at most {MAX_GRID_VALUES} (default 0,2,4,6)")
    if budgets:
        g.add_argument("--eta-taus", type=eta_tau_list, default=[0.1, 0.5, 2.0, 10.0], metavar="X[,X...]",
                       help=f"per-merge training budgets eta*tau > 0, at most {MAX_GRID_VALUES} (default 0.1,0.5,2,10)")


def _add_model_arguments(parser: argparse.ArgumentParser, *, steps: int | None, steps_range: tuple[int, int],
                         segments: bool, segments_default: int | None = None, eta_tau: bool) -> None:
    g = parser.add_argument_group("model (docs/mixture.md)")
    g.add_argument("--schedule", default="vp-cosine", choices=SCHEDULE_NAMES, help="noise schedule (default vp-cosine)")
    low, high = steps_range
    shown = f"default {steps}" if steps is not None else "default: from the plans, else 8"
    g.add_argument("--steps", type=bounded_int(low, high), default=steps, metavar="N",
                   help=f"teacher steps N in [{low}, {high}] ({shown})")
    if segments:
        shown = f"default {segments_default}" if segments_default is not None else "default 1; only for canonical names"
        g.add_argument("--segments", type=bounded_int(1, high), default=segments_default, metavar="M",
                       help=f"student steps M, 1 <= M <= N ({shown})")
    if eta_tau:
        g.add_argument("--eta-tau", type=positive_float, default=1.0, metavar="X",
                       help="per-merge training budget eta*tau > 0 (default 1)")
    g.add_argument("--family", default="gated", choices=FAMILIES,
                   help="student family: affine maps gated by the teacher's responsibilities, or plain affine (default gated)")
    g.add_argument("--order", type=bounded_int(*ORDER_RANGE), default=16, metavar="Q",
                   help=f"Gauss-Hermite nodes per dimension and component, in [{ORDER_RANGE[0]}, {ORDER_RANGE[1]}] (default 16)")


def _add_output_arguments(parser: argparse.ArgumentParser, *, folder: bool, cache: bool, progress_default: bool,
                          w2: bool = False) -> None:
    g = parser.add_argument_group("output")
    if w2:
        g.add_argument("--no-w2", action="store_true", help="skip the sample-based W2 (d >= 2: an assignment of 1000 samples per plan)")
    if folder:
        g.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder of the figure (default {DEFAULT_OUT})")
        g.add_argument("--no-plot", action="store_true", help="skip the figure")
    if cache:
        g.add_argument("--no-cache", action="store_true", help="do not read or write the cell cache in OUT/cache")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the text report")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=progress_default,
                   help=f"progress lines on stderr (default {'on' if progress_default else 'off'})")


_PLAN_NOTES = """\
Builds the planner's tables (node errors carried through the teacher), finds the plan with M
segments that minimises the planner cost (an exact interval dynamic program), and simulates it
exactly, beside the canonical plans vanilla, boot, cd and pd (uniform segments). MSE is
E||S(z_N) - T(z_N)||^2 against the teacher's own sampler; W2 is between the output distributions."""

_SIMULATE_NOTES = """\
Simulates each PLAN exactly: every merge node is fitted in the student family on the forward
marginal and trained for the budget, and the final map is compared with the teacher's. PLAN is the
text notation ('(6 5) | ((4 3) 2 1)') or a canonical name (vanilla, boot, cd, pd, built for
--steps and --segments). All plans must have the same N."""

_MERGE_ERROR_NOTES = """\
For each separation, the approximation error eps(m) of merging m teacher steps into one student
(the best fit in the family; no training budget involved), on the data side (m -> 0) and on the
noise side (N -> N - m). One step is exact in the gated family (eps ~ 1e-30, rounding): the
figure clips at --floor and says so."""

_PHASE_NOTES = """\
Evaluates every (separation, eta*tau) cell: all plans simulated exactly, the exact optimum, its
shape (opmerge.analysis.classify), the linear regime's optimum on the mixture's covariance
spectrum and whether the exact optimum equals it (MSE within 1e-9 relative), and the planner's
pick with its regret (its MSE over the optimum's, minus 1). Cells are cached in OUT/cache: a rerun
(or a run after Ctrl-C) resumes. 'opmerge mixture honesty' on the same grid reuses the cache."""

_HONESTY_NOTES = """\
The cells of 'opmerge mixture phase' (same options, same cache): per cell the Spearman correlation
of the planner cost and the exact MSE over all plans, and the planner's regret. The figure is the
scatter of planner cost against exact MSE for one cell (--scatter; default: the cell with the
lowest Spearman)."""


def build_parser(prog: str = "opmerge mixture") -> argparse.ArgumentParser:
    """The parser of ``opmerge mixture`` with one subparser per action."""
    parser = ArgumentParser(
        prog=prog, formatter_class=_Formatter,
        description="The Gaussian-mixture regime: plans, exact simulation, merge errors, phase diagram, planner honesty.",
        epilog=("examples:\n"
                "  opmerge mixture plan\n"
                "  opmerge mixture simulate '(8 7 6) | ((((5 4) 3) 2) 1)' vanilla --segments 2\n"
                "  opmerge mixture merge-error --separations 0,2,4,6 --out results/mixture\n"
                "  opmerge mixture phase --steps 6 --out results/mixture\n"
                "  opmerge mixture honesty --steps 6 --out results/mixture"),
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)

    def action(name: str, notes: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=ACTIONS[name], formatter_class=_Formatter,
                              description=f"{ACTIONS[name][0].upper()}{ACTIONS[name][1:]}.\n\n{notes}")

    p = action("plan", _PLAN_NOTES)
    _add_mixture_arguments(p)
    _add_model_arguments(p, steps=8, steps_range=(1, MAX_STEPS), segments=True, segments_default=2, eta_tau=True)
    _add_output_arguments(p, folder=False, cache=False, progress_default=False, w2=True)
    p.set_defaults(handler=run_plan)

    p = action("simulate", _SIMULATE_NOTES)
    p.add_argument("plans", nargs="+", metavar="PLAN", help="plan text, e.g. '(6 5) | ((4 3) 2 1)', or vanilla, boot, cd, pd")
    _add_mixture_arguments(p)
    _add_model_arguments(p, steps=None, steps_range=(1, MAX_STEPS), segments=True, eta_tau=True)
    _add_output_arguments(p, folder=False, cache=False, progress_default=False, w2=True)
    p.set_defaults(handler=run_simulate)

    p = action("merge-error", _MERGE_ERROR_NOTES)
    _add_grid_arguments(p, budgets=False)
    _add_model_arguments(p, steps=8, steps_range=(2, MAX_STEPS), segments=False, eta_tau=False)
    _add_output_arguments(p, folder=True, cache=False, progress_default=True)
    p.add_argument("--floor", type=positive_float, default=MERGE_ERROR_FLOOR, metavar="EPS",
                   help=f"lower clip of the log axis; smaller values are drawn at it (default {MERGE_ERROR_FLOOR:g})")
    p.set_defaults(handler=run_merge_error)

    for name, notes, handler in (("phase", _PHASE_NOTES, None), ("honesty", _HONESTY_NOTES, None)):
        p = action(name, notes)
        _add_grid_arguments(p, budgets=True)
        _add_model_arguments(p, steps=6, steps_range=(2, MAX_CELL_STEPS), segments=True, segments_default=1, eta_tau=False)
        _add_output_arguments(p, folder=True, cache=True, progress_default=True)
        if name == "honesty":
            p.add_argument("--scatter", type=_pair, default=None, metavar="S,X",
                           help="the cell (separation, eta*tau) of the scatter figure (default: the lowest Spearman)")
        p.set_defaults(handler=run_phase if name == "phase" else run_honesty)
    return parser


# ---------------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------------


def _progress(args: argparse.Namespace, action: str) -> Callable[[str], None] | None:
    """One line on stderr per call, prefixed by the command, when ``--progress``."""
    if not args.progress:
        return None

    def say(message: str) -> None:
        sys.stderr.write(f"opmerge mixture {action}: {message}\n")
        sys.stderr.flush()

    return say


def _check_segments(args: argparse.Namespace, steps: int) -> None:
    if args.segments is not None and args.segments > steps:
        raise UsageError(f"--segments ({args.segments}) must be <= --steps ({steps})")


def _mixture(args: argparse.Namespace):
    """The mixture of ``--mixture FILE`` (when given) or of ``--preset`` / ``--separation``, and its source."""
    from opmerge.mixture import load_mixture, mixture_preset

    if args.mixture is not None:
        if not str(args.mixture).strip():
            raise UsageError("--mixture must name a file, got an empty path")
        try:
            mixture = load_mixture(args.mixture)
        except InputError as exc:
            raise UsageError(f"--mixture: {exc}") from exc
        return mixture, {"source": "file", "file": os.fspath(args.mixture)}
    return mixture_preset(args.preset, args.separation), {"source": "preset", "preset": args.preset, "separation": args.separation}


def _problem(args: argparse.Namespace, mixture, steps: int):
    """The :class:`~opmerge.mixture.MixtureProblem` of the options (quadrature when it fits, else Monte Carlo)."""
    from opmerge import StudentModel, make_schedule
    from opmerge.mixture import Expectation, MixtureProblem

    return MixtureProblem(mixture, make_schedule(args.schedule, steps), StudentModel(eta_tau=args.eta_tau),
                          family=args.family, expectation=Expectation("auto", order=args.order))


def _expectation_text(problem) -> str:
    e = problem.expectation
    if e.resolve(problem.mixture) == "quadrature":
        return f"quadrature order {e.order}"
    return f"Monte Carlo ({e.samples} draws, seed {e.seed})"


def _head(action: str, problem, source: dict, segments: int | None) -> list[str]:
    m = problem.mixture
    data = f"{m.name}, K = {m.components}, d = {m.dim}"
    if source["source"] == "file":
        data += f" (from {source['file']}; overrides --preset/--separation)"
    seg = f", M = {segments}" if segments is not None else ""
    return [f"opmerge mixture {action}: {data}",
            f"schedule {problem.schedule.name}, N = {problem.steps}{seg}; family {problem.family}, teacher {problem.solver}; "
            f"init {problem.model.init}, training {problem.model.training}, eta*tau {problem.model.eta_tau:g} per merge; "
            f"{_expectation_text(problem)}", ""]


def _config(problem, source: dict, **extra) -> dict:
    config = dict(problem.to_dict(), data=source)
    config.update(extra)
    return config


def _table(header: list[str], rows: list[list[str]], right: Sequence[int] = ()) -> list[str]:
    right = set(right)
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(row[c].rjust(widths[c]) if c in right else row[c].ljust(widths[c]) for c in range(len(header))).rstrip()

    return [fmt(header), "  ".join("-" * w for w in widths), *(fmt(row) for row in rows)]


def _g(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def _fixed(value: float, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _percent(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    return "0" if value == 0 else f"{100 * value:.2g}%"


def _w2_note(simulations) -> str:
    methods = {s.w2_method for s in simulations}
    if methods == {"skipped"}:
        return "W2: skipped (--no-w2)"
    method = sorted(methods)[0]
    if method == "exact-1d":
        return "W2: exact between the weighted point sets (d = 1)"
    count = method.split("-")[-1]
    return f"W2: a sample estimate (optimal assignment between {count} samples of each output); the exact W2^2 is at most the MSE"


def _print(lines: list[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _emit(out: dict, config: dict) -> None:
    out["config"] = config
    out["provenance"] = provenance(config=config)
    emit_json(out)


def _describe(plan: Plan) -> str:
    from opmerge.analysis.classify import describe_plan

    return describe_plan(plan)


# ---------------------------------------------------------------------------------------------
# plan
# ---------------------------------------------------------------------------------------------


def run_plan(args: argparse.Namespace) -> int:
    """``opmerge mixture plan``: the planner's plan, its exact simulation, and the canonical plans."""
    from opmerge.mixture import optimal_mixture_plan, plan_cost, simulate_plan

    _check_segments(args, args.steps)
    mixture, source = _mixture(args)
    problem = _problem(args, mixture, args.steps)
    say = _progress(args, "plan")
    report = (lambda done, total: say(f"planner tables {done}/{total}")) if say else None
    start = time.perf_counter()
    picked = optimal_mixture_plan(problem, args.segments, progress=report)
    entries = {"planner": picked.plan}
    for kind in CANONICAL_KINDS:
        entries[kind] = canonical_plan(kind, args.steps, args.segments)
    sims, costs = {}, {}
    for index, (name, plan) in enumerate(entries.items()):
        sims[name] = simulate_plan(problem, plan, w2=not args.no_w2)
        costs[name] = picked.cost if name == "planner" else plan_cost(picked.tables, plan)
        if say:
            say(f"simulated {index + 1}/{len(entries)} ({name})")
    elapsed = time.perf_counter() - start
    lowest = min(s.mse for s in sims.values())
    best = [name for name, s in sims.items() if s.mse <= lowest * (1 + 1e-12)]  # ties (equal plans) all count
    if args.json:
        out = {
            "command": "mixture plan",
            "planner": {"plan": format_plan(picked.plan), "description": _describe(picked.plan), "cost": picked.cost,
                        "table_seconds": picked.tables.seconds, "simulation": sims["planner"].to_dict()},
            "canonical": {kind: {"plan": format_plan(entries[kind]), "planner_cost": costs[kind], "simulation": sims[kind].to_dict()}
                          for kind in CANONICAL_KINDS},
            "best_by_mse": best,  # the strategies with the lowest exact MSE (ties all listed)
            "seconds": elapsed,
        }
        _emit(out, _config(problem, source, segments=args.segments))
        return 0
    lines = _head("plan", problem, source, args.segments)
    lines.append(f"planner's plan: {abbreviate_plan(format_plan(picked.plan), args.steps)}   ({_describe(picked.plan)})")
    lines.append(f"planner cost {picked.cost:.4g}; exact MSE {sims['planner'].mse:.4g}, W2 {_g(sims['planner'].w2)}")
    lines.append("")
    rows = []
    for name, plan in entries.items():
        s = sims[name]
        mse = f"{s.mse:.4g}" + (f" ± {s.mse_half_width:.2g}" if s.mse_half_width > 0 else "")
        rows.append([name, abbreviate_plan(format_plan(plan), args.steps), f"{costs[name]:.4g}", mse, _g(s.w2),
                     f"{s.mse / lowest:.3f}" if lowest > 0 else "-", "*" if name in best else ""])
    lines += _table(["strategy", "plan", "planner cost", "exact MSE", "W2", "MSE/best", "best"], rows, right=range(2, 6))
    lines += ["", _w2_note(sims.values()), f"planner tables {picked.tables.seconds:.2f} s; {elapsed:.1f} s in all"]
    _print(lines)
    return 0


# ---------------------------------------------------------------------------------------------
# simulate
# ---------------------------------------------------------------------------------------------


def _parse_plans(args: argparse.Namespace) -> list[Plan]:
    """The plans of the positional arguments; all with the same N (--steps, when given, must agree)."""
    plans, named = [], []
    for index, text in enumerate(args.plans):
        text = text.strip()
        if text in CANONICAL_KINDS:
            named.append(index)
            plans.append(text)
            continue
        try:
            plans.append(parse_plan(text))
        except PlanParseError as exc:
            raise UsageError(f"PLAN {index + 1}: {exc.problem}, in {echo(exc.text, exc.position)!r}") from exc
    parsed = [p for p in plans if isinstance(p, Plan)]
    steps = {p.steps for p in parsed}
    if len(steps) > 1:
        raise UsageError(f"the plans have different numbers of teacher steps ({', '.join(map(str, sorted(steps)))}); simulate plans of one N at a time")
    n = steps.pop() if steps else (args.steps if args.steps is not None else 8)
    if args.steps is not None and args.steps != n:
        raise UsageError(f"the plans have N = {n} teacher steps but --steps is {args.steps}; leave out --steps or make them agree")
    if n > MAX_STEPS:
        raise UsageError(f"the plans have N = {n} teacher steps; at most {MAX_STEPS}")
    if args.segments is not None and not named:
        raise UsageError("--segments only applies to canonical names (a plan text has its own segments)")
    segments = args.segments if args.segments is not None else 1
    if named and segments > n:
        raise UsageError(f"--segments ({segments}) must be <= N ({n})")
    return [canonical_plan(p, n, segments) if isinstance(p, str) else p for p in plans]


def run_simulate(args: argparse.Namespace) -> int:
    """``opmerge mixture simulate PLAN...``: the exact simulation of each plan."""
    from opmerge.mixture import simulate_plan

    plans = _parse_plans(args)
    steps = plans[0].steps
    mixture, source = _mixture(args)
    problem = _problem(args, mixture, steps)
    say = _progress(args, "simulate")
    start = time.perf_counter()
    sims = []
    for index, plan in enumerate(plans):
        sims.append(simulate_plan(problem, plan, w2=not args.no_w2))
        if say:
            say(f"simulated {index + 1}/{len(plans)}")
    elapsed = time.perf_counter() - start
    if args.json:
        out = {"command": "mixture simulate",
               "simulations": [dict(s.to_dict(), description=_describe(s.plan), n_merges=s.plan.n_merges) for s in sims],
               "seconds": elapsed}
        _emit(out, _config(problem, source))
        return 0
    lines = _head("simulate", problem, source, None)
    rows = []
    for s in sims:
        mse = f"{s.mse:.6g}" + (f" ± {s.mse_half_width:.2g}" if s.mse_half_width > 0 else "")
        rows.append([abbreviate_plan(format_plan(s.plan), steps), _describe(s.plan), str(s.plan.n_merges), mse, _g(s.w2, 6), _g(s.gaussian_w2, 6)])
    lines += _table(["plan", "shape", "merges", "exact MSE", "W2", "Gaussian W2"], rows, right=range(2, 6))
    lines += ["", _w2_note(sims) + "; Gaussian W2: between Gaussians with the outputs' means and covariances",
              f"{elapsed:.1f} s"]
    _print(lines)
    return 0


# ---------------------------------------------------------------------------------------------
# merge-error
# ---------------------------------------------------------------------------------------------


def _check_grid_data(args: argparse.Namespace) -> None:
    """The preset with this order fits a quadrature rule (the grid studies use quadrature, not Monte Carlo)."""
    from opmerge.mixture import Expectation, mixture_preset

    mixture = mixture_preset(args.preset, args.separations[0])

    def fits(order: int) -> bool:
        try:
            Expectation("quadrature", order=order).resolve(mixture)
        except InputError:
            return False
        return True

    if not fits(args.order):
        remedy = "lower --order" if fits(ORDER_RANGE[0]) else "no --order fits: use a 2-D preset"
        raise UsageError(f"--preset {args.preset} (K = {mixture.components}, d = {mixture.dim}) needs too many quadrature points "
                         f"(K * order^d) for --order {args.order}; merge-error, phase and honesty use quadrature: {remedy}")


def run_merge_error(args: argparse.Namespace) -> int:
    """``opmerge mixture merge-error``: eps(m) per separation, data and noise side; figure ``OUT/mixture-merge-error``."""
    from opmerge.analysis.mixture import merge_errors

    out = check_out_folder(args.out)
    _check_grid_data(args)
    say = _progress(args, "merge-error")
    start = time.perf_counter()
    curves = []
    for index, sep in enumerate(args.separations):
        result = merge_errors(args.preset, [sep], steps=args.steps, schedule=args.schedule, order=args.order, family=args.family)
        curves += result["curves"]
        if say:
            say(f"separation {sep:g} done ({index + 1}/{len(args.separations)})")
    result = dict(result, curves=curves)
    config = {"preset": args.preset, "separations": args.separations, "steps": args.steps, "schedule": args.schedule,
              "order": args.order, "family": args.family, "floor": args.floor}
    files = []
    if not args.no_plot:
        from .mixture_plots import plot_merge_errors
        from .style import save_figure

        fig, data = plot_merge_errors(result, floor=args.floor)
        files = [os.fspath(p) for p in save_figure(fig, out / "mixture-merge-error", data, config=config, close=True).values()]
    elapsed = time.perf_counter() - start
    if args.json:
        _emit({"command": "mixture merge-error", "merged_steps": result["merged_steps"], "curves": curves,
               "floor": args.floor, "below_floor": _below_floor(curves, args.floor), "files": files, "seconds": elapsed}, config)
        return 0
    lines = [f"opmerge mixture merge-error: {args.preset}, schedule {args.schedule}, N = {args.steps}, family {args.family}, "
             f"quadrature order {args.order}",
             "approximation error eps(m) of merging m teacher steps into one student (best fit in the family)", ""]
    header = ["m"] + [f"s = {c['separation']:g}" for c in curves]
    for side, label in (("data_side", "data side (m -> 0)"), ("noise_side", f"noise side ({args.steps} -> {args.steps} - m)")):
        lines.append(label)
        rows = [[str(m)] + [f"{c[side][k]:.2e}" for c in curves] for k, m in enumerate(result["merged_steps"])]
        lines += _table(header, rows, right=range(len(header))) + [""]
    lines.append(f"values below {args.floor:g} are rounding (zero in exact arithmetic); the figure draws them at the floor {args.floor:g}")
    lines.append(f"{elapsed:.1f} s" + (f"; wrote {', '.join(files)}" if files else ""))
    _print(lines)
    return 0


def _below_floor(curves: list[dict], floor: float) -> list[dict]:
    return [{"separation": c["separation"], "side": side, "merged_steps": k + 1, "value": v}
            for c in curves for side in ("data_side", "noise_side") for k, v in enumerate(c[side]) if not v >= floor]


# ---------------------------------------------------------------------------------------------
# phase and honesty: the cells
# ---------------------------------------------------------------------------------------------


def _cells(args: argparse.Namespace) -> list:
    """The grid's cells, budget-major (one row of the figure per eta*tau), checked before any work."""
    from opmerge.analysis.mixture import CELL_PLAN_LIMIT, MixtureCell

    _check_segments(args, args.steps)
    plans = count_plans(args.steps, args.segments)
    if plans > CELL_PLAN_LIMIT:
        raise UsageError(f"--steps {args.steps} --segments {args.segments} has {plans} plans; a cell simulates every plan "
                         f"(at most {CELL_PLAN_LIMIT}): lower --steps")
    _check_grid_data(args)
    return [MixtureCell(preset=args.preset, separation=sep, eta_tau=eta, steps=args.steps, segments=args.segments,
                        schedule=args.schedule, order=args.order, family=args.family)
            for eta in args.eta_taus for sep in args.separations]


def _count_entries(folder: Path | None) -> int:
    if folder is None or not folder.is_dir():
        return 0
    return sum(1 for _ in folder.rglob("*.json"))


def _run_cells(args: argparse.Namespace, action: str, out: Path) -> tuple[list[dict], dict]:
    """Every cell through the cache in ``OUT/cache`` (a rerun resumes); the records and ``{computed, cached}``."""
    from opmerge.analysis.mixture import run_cells

    cells = _cells(args)
    cache = None if args.no_cache else out / "cache"
    say = _progress(args, action)
    state = {"entries": _count_entries(cache), "computed": 0, "cached": 0, "clock": time.perf_counter()}

    def progress(done: int, total: int) -> None:
        entries = _count_entries(cache)
        fresh = cache is None or entries > state["entries"]
        state["entries"] = entries
        state["computed" if fresh else "cached"] += 1
        now = time.perf_counter()
        if say:
            cell = cells[done - 1]
            how = f"computed in {now - state['clock']:.1f} s" if fresh else "from the cache"
            say(f"cell {done}/{total} (separation {cell.separation:g}, eta*tau {cell.eta_tau:g}) {how}")
        state["clock"] = now

    records = run_cells(cells, cache_dir=cache, progress=progress)
    return records, {"computed": state["computed"], "cached": state["cached"],
                     "folder": None if cache is None else os.fspath(cache)}


def cell_summary(record: dict) -> dict:
    """The numbers of one cell record of :func:`~opmerge.analysis.mixture.evaluate_cell` that phase and honesty report.

    ``equals_linear``: the exact optimum's MSE equals that of the linear regime's optimal plan within
    1e-9 relative (plans can tie, so MSEs are compared, not plan texts).
    """
    from opmerge.analysis.classify import classify_plan

    optimal = parse_plan(record["optimal_plan"])
    best, linear = record["optimal_mse"], record["linear_mse"]
    cell = record["cell"]
    return {
        "separation": cell["separation"],
        "eta_tau": cell["eta_tau"],
        "plans": record["plans"],
        "optimal_plan": record["optimal_plan"],
        "optimal_mse": best,
        "optimal_family": classify_plan(optimal).family,
        "optimal_shape": _describe(optimal),
        "linear_plan": record["linear_plan"],
        "linear_mse": linear,
        "linear_regret": record["linear_regret"],
        "equals_linear": bool(abs(linear - best) <= LINEAR_RTOL * abs(best)),
        "planner_plan": record["planner_plan"],
        "planner_cost": record["planner_cost"],
        "planner_mse": record["planner_mse"],
        "regret": record["regret"],
        "spearman": record["spearman"],
    }


def _grid_config(args: argparse.Namespace) -> dict:
    return {"preset": args.preset, "separations": args.separations, "eta_taus": args.eta_taus, "steps": args.steps,
            "segments": args.segments, "schedule": args.schedule, "order": args.order, "family": args.family,
            "solver": "ddim", "init": "warm", "training": "flow", "budget": "per-merge", "expectation": "quadrature"}


def _grid_head(action: str, args: argparse.Namespace) -> str:
    return (f"opmerge mixture {action}: {args.preset}, separations {', '.join(f'{s:g}' for s in args.separations)}; "
            f"eta*tau {', '.join(f'{e:g}' for e in args.eta_taus)}; schedule {args.schedule}, N = {args.steps}, "
            f"M = {args.segments}, family {args.family}, quadrature order {args.order}")


def _cache_line(stats: dict, files: list[str]) -> str:
    line = f"{stats['computed']} cell(s) computed, {stats['cached']} from the cache"
    if stats["folder"] is not None:
        line += f" ({stats['folder']})"
    return line + (f"; wrote {', '.join(files)}" if files else "")


def run_phase(args: argparse.Namespace) -> int:
    """``opmerge mixture phase``: the (separation, budget) phase diagram; figure ``OUT/mixture-phase``."""
    out = check_out_folder(args.out)
    records, stats = _run_cells(args, "phase", out)
    rows = [cell_summary(r) for r in records]
    config = _grid_config(args)
    files = []
    if not args.no_plot:
        from .mixture_plots import plot_mixture_phase
        from .style import save_figure

        fig, data = plot_mixture_phase(rows, title=f"{args.preset}, {args.schedule}, N = {args.steps}, M = {args.segments}, family {args.family}")
        files = [os.fspath(p) for p in save_figure(fig, out / "mixture-phase", data, config=config, close=True).values()]
    differ = sum(not r["equals_linear"] for r in rows)
    regrets = sorted(r["regret"] for r in rows)
    summary = {"cells": len(rows), "differs_from_linear": differ, "planner_exact": sum(r["regret"] == 0 for r in rows),
               "median_regret": regrets[len(regrets) // 2], "max_regret": regrets[-1]}
    if args.json:
        _emit({"command": "mixture phase", "cells": rows, "summary": summary, "cache": stats, "files": files}, config)
        return 0
    table = [[f"{r['separation']:g}", f"{r['eta_tau']:g}", r["optimal_plan"], r["optimal_shape"], f"{r['optimal_mse']:.4g}",
              "same" if r["equals_linear"] else f"{r['linear_plan']} (+{_percent(r['linear_regret'])})",
              r["planner_plan"], _percent(r["regret"])] for r in rows]
    lines = [_grid_head("phase", args), ""]
    lines += _table(["separation", "eta*tau", "exact optimum", "shape", "MSE", "linear regime's answer", "planner's pick", "regret"],
                    table, right=(0, 1, 4, 7))
    lines += ["",
              f"{len(rows)} cells: the exact optimum differs from the linear regime's answer in {differ}; "
              f"the planner picks the optimum in {summary['planner_exact']}, regret median {_percent(summary['median_regret'])}, "
              f"max {_percent(summary['max_regret'])}",
              _cache_line(stats, files)]
    _print(lines)
    return 0


def run_honesty(args: argparse.Namespace) -> int:
    """``opmerge mixture honesty``: Spearman and regret per cell; figure ``OUT/mixture-honesty`` (one cell's scatter)."""
    if args.scatter is not None:
        sep, eta = args.scatter
        if sep not in args.separations or eta not in args.eta_taus:
            raise UsageError(f"--scatter {sep:g},{eta:g} is not a cell of the grid (--separations and --eta-taus)")
    out = check_out_folder(args.out)
    records, stats = _run_cells(args, "honesty", out)
    rows = [cell_summary(r) for r in records]
    if args.scatter is not None:
        chosen = next(k for k, r in enumerate(rows) if (r["separation"], r["eta_tau"]) == args.scatter)
        reason = "--scatter"
    else:
        # the least honest cell (nan Spearman — every plan ties — counts as the least)
        chosen = min(range(len(rows)), key=lambda k: (-math.inf if math.isnan(rows[k]["spearman"]) else rows[k]["spearman"], k))
        reason = "lowest Spearman"
    config = dict(_grid_config(args), scatter=[rows[chosen]["separation"], rows[chosen]["eta_tau"]])
    files = []
    if not args.no_plot:
        from .mixture_plots import plot_honesty_scatter
        from .style import save_figure

        fig, data = plot_honesty_scatter(records[chosen], canonical=_canonical_texts(args.steps, args.segments),
                                         title=f"{args.preset}, separation {rows[chosen]['separation']:g}, "
                                               + r"$\eta\tau$" + f" = {rows[chosen]['eta_tau']:g}, N = {args.steps}, M = {args.segments}")
        files = [os.fspath(p) for p in save_figure(fig, out / "mixture-honesty", data, config=config, close=True).values()]
    if args.json:
        _emit({"command": "mixture honesty",
               "cells": [{k: r[k] for k in ("separation", "eta_tau", "plans", "spearman", "regret", "planner_plan", "planner_cost",
                                            "planner_mse", "optimal_plan", "optimal_mse")} for r in rows],
               "scatter": {"separation": rows[chosen]["separation"], "eta_tau": rows[chosen]["eta_tau"], "chosen_by": reason,
                           "rows": [{"plan": p, "mse": m, "planner_cost": c} for p, m, c in records[chosen]["rows"]]},
               "cache": stats, "files": files}, config)
        return 0
    table = [[f"{r['separation']:g}", f"{r['eta_tau']:g}", str(r["plans"]), _fixed(r["spearman"]), _percent(r["regret"]),
              r["planner_plan"], r["optimal_plan"]] for r in rows]
    lines = [_grid_head("honesty", args), ""]
    lines += _table(["separation", "eta*tau", "plans", "Spearman", "regret", "planner's pick", "exact optimum"], table, right=(0, 1, 2, 3, 4))
    finite = sorted(r["spearman"] for r in rows if not math.isnan(r["spearman"]))
    spear = f"Spearman min {finite[0]:.3f}, median {finite[len(finite) // 2]:.3f}" if finite else "Spearman undefined (every plan ties)"
    lines += ["", f"{len(rows)} cells: {spear}; regret zero in {sum(r['regret'] == 0 for r in rows)}, max {_percent(max(r['regret'] for r in rows))}",
              f"scatter: separation {rows[chosen]['separation']:g}, eta*tau {rows[chosen]['eta_tau']:g} ({reason})",
              _cache_line(stats, files)]
    _print(lines)
    return 0


def _canonical_texts(steps: int, segments: int) -> dict[str, str]:
    return {kind: format_plan(canonical_plan(kind, steps, segments)) for kind in CANONICAL_KINDS}


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``main(["plan", ...])``; returns the exit status.

    Bad input raises :class:`~opmerge.errors.InputError` (the caller, ``opmerge.cli``, turns it into
    exit status 2 and one line); argparse errors exit with status 2 themselves.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:  # like 'opmerge' alone: the help, exit status 0
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_main(main))
