r"""``opmerge validate mixture [options]``: the mixture bridge study from the command line.

The study (:mod:`experiments.studies.mixture`, ``docs/bridge_mixture.md``) has its own options, so
:mod:`experiments.cli` hands it everything after the word ``mixture`` (as it does for ``images``):
``--budget`` here is the training budget of the students (``short`` or ``long``), not the model
group's ``--budget per-merge|total``. The run writes ``<out>/mixture.json`` and the figure
``<out>/mixture-figure.{pdf,png,json}`` (default ``results/validate/mixture/<preset>-<budget>``),
caches finished units in ``<out>/units/`` (a rerun resumes), prints progress lines on stderr and a
short report, or with ``--json`` one JSON object. Bad input is one ``opmerge: error:`` line and exit
status 2.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from opmerge.cli_options import (
    MAX_BATCH,
    MAX_DEPTH,
    MAX_HIDDEN,
    MAX_SAMPLES,
    MAX_THREADS,
    MAX_TORCH_STEPS,
    MAX_TRAIN_STEPS,
    ArgumentParser,
    UsageError,
    abbreviate_plan,
    bounded_int,
    check_out_folder,
    emit_json,
    int_list,
    option_message,
    positive_float,
    run_main,
    seed_int,
)
from opmerge.errors import InputError

__all__ = ["build_validate_mixture_parser", "validate_mixture_main"]

_MEMORY_HINT = "reduce --n-eval, --batch, --hidden or --w2-samples"


def _float_list(text: str) -> tuple:
    values = tuple(positive_float(p.strip()) for p in text.split(",") if p.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers > 0 separated by commas, got {text!r}")
    return values


def build_validate_mixture_parser() -> ArgumentParser:
    """The parser of ``opmerge validate mixture``."""
    from opmerge.mixture import PRESETS
    from opmerge.schedules import SCHEDULE_NAMES
    from opmerge.teacher import SOLVERS

    from .mixture_bridge import MIXTURE_INITS
    from .studies.mixture import BUDGETS, MAX_RANDOM_PLANS

    p = ArgumentParser(prog="opmerge validate mixture",
                       description="Execute merge plans with MLP students on Gaussian-mixture data and compare them with the core's predictions.")
    p.add_argument("--preset", default="two-2d", choices=tuple(PRESETS), help="the mixture (default two-2d)")
    p.add_argument("--separation", type=positive_float, default=4.0, help="the preset's separation in component standard deviations (default 4)")
    p.add_argument("--budget", default="long", choices=BUDGETS,
                   help="Adam updates per merge node: short (25; --quick 5) or long (1000; --quick 20) (default long)")
    p.add_argument("--schedule", default=None, choices=SCHEDULE_NAMES, help="noise schedule (default vp-cosine)")
    p.add_argument("--steps", type=bounded_int(1, MAX_TORCH_STEPS), default=None, help="teacher steps N (default 6; --quick 4)")
    p.add_argument("--solver", default="ddim", choices=SOLVERS, help="teacher sampler whose steps are merged (default ddim)")
    p.add_argument("--segments", type=int_list(1, MAX_TORCH_STEPS), default=None, help="student steps M of the canonical plans, comma list (default 1,2,3; --quick 1,2)")
    p.add_argument("--plan", action="append", metavar="PLAN",
                   help="vanilla, boot, cd, pd (at every --segments), optimal (the planner's optimum at every --segments) or a plan text; "
                        "repeatable (default: the four canonical kinds)")
    p.add_argument("--random-plans", type=bounded_int(0, MAX_RANDOM_PLANS), default=None,
                   help=f"seeded random plans (random M from 1 to 4, boundaries and trees), 0 to {MAX_RANDOM_PLANS} (default 5; --quick 1)")
    p.add_argument("--eta-tau", type=_float_list, default=None, metavar="X[,X...]",
                   help="model budgets eta*tau of the predictions, comma list; the first is the headline (default lr*K of the budget, then 1e4)")
    p.add_argument("--lr", type=positive_float, default=None, help="Adam step size of the students and the pre-fits (default 2e-3)")
    p.add_argument("--node-steps", type=bounded_int(1, MAX_TRAIN_STEPS), default=None, help="Adam updates per merge node (overrides --budget's)")
    p.add_argument("--prefit-steps", type=bounded_int(0, MAX_TRAIN_STEPS), default=None,
                   help="Adam updates of the pre-fit of a teacher step, the warm start from a leaf (default 1000; --quick 20)")
    p.add_argument("--batch", type=bounded_int(1, MAX_BATCH), default=None, help="fresh draws of p_j per update (default 256; --quick 64)")
    p.add_argument("--hidden", type=bounded_int(1, MAX_HIDDEN), default=None, help="MLP width (default 4 in 2-D, 32 otherwise)")
    p.add_argument("--depth", type=bounded_int(1, MAX_DEPTH), default=None, help="MLP hidden layers (default 1 in 2-D, 2 otherwise)")
    p.add_argument("--init", default="warm", choices=MIXTURE_INITS, help="student start (default warm: the first child)")
    p.add_argument("--input", default="forward", choices=("forward", "generated"), help="node inputs (default forward: fresh draws of p_j)")
    p.add_argument("--n-eval", type=bounded_int(3, MAX_SAMPLES), default=None, help="common inputs z_N of the measured MSE (default 4096; --quick 256)")
    p.add_argument("--w2-samples", type=bounded_int(2, 4000), default=None, help="points of the sample W2, at most 4000 and --n-eval (default 1000)")
    p.add_argument("--expectation-samples", type=bounded_int(100, 10**7), default=None,
                   help="Monte Carlo draws of the core's expectations where it does not use quadrature (default 10000)")
    p.add_argument("--level", type=positive_float, default=0.99, help="confidence level of the MSE intervals (default 0.99)")
    p.add_argument("--seed", type=seed_int, default=0, help="base seed, >= 0 (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device (default auto: cuda if available)")
    p.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=None, help="torch CPU threads during the study (default 1)")
    p.add_argument("--quick", action="store_true", help="small size (tests; seconds on a CPU)")
    p.add_argument("--out", default=None, help="results folder (default results/validate/mixture/<preset>-<budget>)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    return p


#: configuration fields whose option is not ``--`` + the field's name with ``-`` for ``_``
_FLAGS = {"segment_counts": "--segments", "eta_taus": "--eta-tau", "plans": "--plan", "progress": "--no-progress"}


def _option_message(message: str) -> str:
    options = {a.dest: a.option_strings[0] for a in build_validate_mixture_parser()._actions if a.option_strings}
    return option_message(message, {**options, **_FLAGS})


def config_from_args(args: argparse.Namespace):
    """The :class:`~experiments.studies.mixture.MixtureConfig` of the parsed options (every field checked, defaults resolved)."""
    from .studies import study_config

    check_out_folder(args.out)
    values = {"quick": bool(args.quick), "preset": args.preset, "separation": args.separation, "budget": args.budget,
              "schedule": args.schedule, "steps": args.steps, "solver": args.solver, "segment_counts": args.segments,
              "plans": tuple(args.plan) if args.plan else None, "random_plans": args.random_plans, "eta_taus": args.eta_tau,
              "lr": args.lr, "node_steps": args.node_steps, "prefit_steps": args.prefit_steps, "batch": args.batch, "hidden": args.hidden,
              "depth": args.depth, "init": args.init, "input": args.input, "n_eval": args.n_eval, "w2_samples": args.w2_samples,
              "expectation_samples": args.expectation_samples, "level": args.level, "seed": args.seed, "device": args.device,
              "threads": args.threads, "out": args.out, "progress": not (args.no_progress or args.json)}
    try:
        config = study_config("mixture", values).resolved()
    except InputError as exc:
        raise UsageError(_option_message(str(exc))) from exc
    check_out_folder(config.out)
    return config


def _fmt(value, spec: str = "+.3f") -> str:
    """``value`` formatted, or ``n/a`` for a missing (``None``/NaN) number (a correlation over fewer than 3 plans, or ties)."""
    return "n/a" if value is None or value != value else format(value, spec)


def _report(result: dict) -> str:
    s = result["summary"]
    lines = [f"opmerge validate mixture: results in {result['result_file']} ({s['preset']}, {s['budget']} budget: {s['node_steps']} Adam updates per node)"]
    for eta, corr in s["correlations"].items():
        lines.append(f"  predicted vs measured over {s['plans']} plans at eta*tau = {eta}: Spearman MSE {_fmt(corr['mse']['spearman'])}"
                     f" (Kendall {_fmt(corr['mse']['kendall'])}), W2 {_fmt(corr['w2']['spearman'])},"
                     f" planner cost vs measured MSE {_fmt(corr['plan_cost']['spearman'])}")
    head = format(s["eta_tau"], "g")
    lines.append(f"  plan                               measured MSE (se)        W2     predicted MSE   planner cost   (eta*tau = {head})")
    for row in sorted(result["plans"], key=lambda r: r["mse_measured"]):
        pred = row["predicted"][head]
        lines.append(f"  {abbreviate_plan(row['plan']):32s} {row['mse_measured']:11.4g} ({row['mse_se']:.2g})  {row['w2_measured']:8.4g}"
                     f"  {pred['mse']:13.4g}  {pred['plan_cost']:13.4g}   {', '.join(row['names'])}")
    lines.append(f"  units: {result['unit_cache']['computed']} computed, {result['unit_cache']['cached']} from cache; {result['elapsed_s']:.1f} s")
    return "\n".join(lines)


def _validate_mixture(argv: list[str]) -> int:
    args = build_validate_mixture_parser().parse_args(argv)
    config = config_from_args(args)
    from ._torch import resolve_device
    from .studies import run_study

    try:
        resolve_device(config.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    result = run_study("mixture", config)
    if args.json:
        emit_json(result)
    else:
        print(_report(result))
    return 0


def validate_mixture_main(argv: Sequence[str] | None = None) -> int:
    """``opmerge validate mixture [options]``.

    Parameters
    ----------
    argv : sequence of str, optional
        The options (default ``sys.argv[1:]``); ``--help`` lists them.

    Returns
    -------
    int
        Exit status: 0, 2 for bad input, 130 on Ctrl-C, 143 on SIGTERM.
    """
    return run_main(_validate_mixture, argv, memory_hint=_MEMORY_HINT)
