r"""``opmerge validate <study> [options]``: the validation studies from the command line.

``opmerge.cli`` hands ``validate``'s arguments (without the word ``validate``) to :func:`main`.
Studies: ``exactness``, ``sgd``, ``ranking``, ``scot`` (see :mod:`experiments.studies` and
``docs/bridge.md``) and ``images`` (the digits study: :mod:`experiments.images.cli`, its own options,
``opmerge validate images --help``). Each of the first four writes ``<out>/<study>.json`` and the figure
``<out>/<study>-figure.*``, caches finished units in ``<out>/units/`` (a rerun resumes) and prints a
short report, or with ``--json`` one JSON object (configuration, predicted and measured values per
plan and direction, summary, provenance). An option that does not apply to the chosen study is a
usage error (exit status 2), as is any bad value (:class:`opmerge.errors.InputError`).

Options shared with the other commands come from :mod:`opmerge.cli_options`: the model group
(``--schedule``, ``--steps``, ``--segments``, ``--solver``, ``--target``, ``--eta-tau``, ``--init``,
``--input``, ``--lr``, ``--gd-steps``; ``--training`` is not used: each study fixes its optimiser)
and the data group (``--lam`` repeatable or ``--spectrum``). ``--lr`` and ``--gd-steps``
(alias ``--node-steps``) are the per-node step size and number of updates of the plan students.
"""

from __future__ import annotations

import sys

import argparse
from typing import Sequence


from opmerge.cli_options import (
    COMPILE_MODES,
    MAX_BATCH,
    MAX_DEPTH,
    MAX_HIDDEN,
    MAX_REPEATS,
    MAX_SAMPLES,
    MAX_THREADS,
    MAX_TRAIN_STEPS,
    ArgumentParser,
    UsageError,
    abbreviate_plan,
    option_message,
    add_direction_arguments,
    add_model_arguments,
    bounded_int,
    check_out_folder,
    emit_json,
    positive_float,
    run_main,
    seed_int,
    spectrum_from_args,
)

__all__ = ["main", "build_parser", "config_from_args"]

_OWN_SPECTRUM_PREFIXES = ("geom:", "logspace:", "lin:", "linspace:")


#: the study that lives in :mod:`experiments.images.cli` (its own parser)
IMAGES = "images"
#: the study with its own parser in :mod:`experiments.mixture_cli` (registered in :mod:`experiments.studies`)
MIXTURE = "mixture"


def build_parser() -> ArgumentParser:
    """The parser of ``opmerge validate`` (its study choices list all five studies)."""
    from .studies import DEFAULT_OUT, STUDIES

    parser = ArgumentParser(prog="opmerge validate", description="Train real torch students and compare them with the model's predictions.")
    parser.add_argument("study", choices=STUDIES + (IMAGES,),
                        help=f"which validation study to run: {', '.join(s for s in STUDIES if s != MIXTURE)}, {MIXTURE} (Gaussian-mixture data, "
                             f"with its own options: opmerge validate {MIXTURE} --help), or {IMAGES} (the digits study, with its own options: "
                             f"opmerge validate {IMAGES} --help)")
    add_model_arguments(parser, steps_default=None, segments_default=None)
    parser.set_defaults(schedule=None, eta_tau=None)
    for flag, text in (("--schedule", "noise schedule (default vp-cosine; rf for scot)"),
                       ("--eta-tau", "model budget eta*tau of the flow predictions (ranking, scot; default 0.5, or lr*K with --optimizer sgd)"),
                       ("--training", "not used by the studies (each fixes its optimiser; see --optimizer)"),
                       ("--target", "W2 target of the ranking study (default teacher)")):
        parser._option_string_actions[flag].help = text  # the shared group's defaults do not apply here
    add_direction_arguments(parser)
    g = parser.add_argument_group("bridge")
    g.add_argument("--plan", action="append", metavar="PLAN",
                   help="plan to run: vanilla, boot, cd, pd, optimal or text notation; repeatable (default: the four canonical plans and the optimum)")
    g.add_argument("--node-steps", dest="gd_steps", type=bounded_int(1, MAX_TRAIN_STEPS), metavar="K", help="updates per merge node (same as --gd-steps)")
    g.add_argument("--family", help="student family: diagonal, full, mlp, mlp-separable (comma list for exactness; scot: scot,traflow)")
    g.add_argument("--optimizer", choices=("exact-gd", "sgd", "adam"), help="optimiser of the ranking study's plan students (default adam)")
    g.add_argument("--batch", type=bounded_int(1, MAX_BATCH), help=f"minibatch size, at most {MAX_BATCH:_}")
    g.add_argument("--repeats", type=bounded_int(2, MAX_REPEATS),
                   help=f"independent seeds (sgd, ranking), 2 to {MAX_REPEATS:_}: an interval of the mean needs two")
    g.add_argument("--pilot-repeats", type=bounded_int(0, MAX_REPEATS),
                   help="seeds of the calibration pilots of the ranking study with Adam (0 skips them; default 1)")
    g.add_argument("--hidden", type=bounded_int(1, MAX_HIDDEN), help=f"MLP width, at most {MAX_HIDDEN:_}")
    g.add_argument("--depth", type=bounded_int(1, MAX_DEPTH), help=f"MLP hidden layers, at most {MAX_DEPTH}")
    g.add_argument("--train-steps", type=bounded_int(1, MAX_TRAIN_STEPS), help="SCoT/TraFlow training updates")
    g.add_argument("--n-eval", type=bounded_int(3, MAX_SAMPLES), help=f"fresh inputs per readout, 3 to {MAX_SAMPLES:_}")
    g.add_argument("--level", type=positive_float, default=0.99, help="confidence level of the intervals (default 0.99)")
    g.add_argument("--rotated", action="store_true", default=None, help="rotate the data covariance by a random orthogonal matrix")
    g.add_argument("--seed", type=seed_int, default=0, help="base seed, >= 0 (default 0)")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device (default auto: cuda if available)")
    g.add_argument("--compile", default="off", choices=COMPILE_MODES,
                   help="torch.compile the students' training steps in this mode (default off; reduce-overhead: CUDA graphs)")
    g.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=None, help="torch CPU threads during the study (default 1)")
    g.add_argument("--quick", action="store_true", help="small size (tests; seconds on a CPU)")
    g.add_argument("--out", default=None, help=f"results folder (default {DEFAULT_OUT}/<study>)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    return parser


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None):
    """The study's configuration (a :class:`~experiments.studies.StudyConfig`) of the parsed options.

    Options left at their parser default are dropped when the study has no such field; an option
    given for a study that does not use it is a ``UsageError``, as is any bad value.
    """
    import numpy as np

    from opmerge.errors import InputError

    from .gaussian import parse_spectrum
    from .studies import CONFIGS, study_config

    if getattr(args, "budget", "per-merge") == "total":
        raise UsageError("--budget total does not apply to the bridge: every merge node is trained with its own budget (--lr, --gd-steps)")
    if not 0.0 < args.level < 1.0:
        raise UsageError(f"--level must be in (0, 1), got {args.level}")
    if args.bins is not None and args.spectrum is None:
        raise UsageError("--bins applies to --spectrum only")
    check_out_folder(args.out)
    lam = None
    if args.spectrum is not None and args.spectrum.strip().lower().startswith(_OWN_SPECTRUM_PREFIXES):
        if args.bins is not None:
            raise UsageError("--bins applies to named or file spectra, not to 'geom:'/'lin:' ranges")
        try:
            lam = tuple(parse_spectrum(args.spectrum).tolist())
        except ValueError as exc:
            raise UsageError(f"--spectrum: {exc}") from exc
    elif args.spectrum is not None or args.lam:
        directions = spectrum_from_args(args)
        if not np.all(directions.weights == 1.0):
            raise UsageError("the bridge samples every eigen-direction once: use a spectrum without multiplicities (or --lam)")
        lam = tuple(directions.lam.tolist())
    values = {
        "study": args.study, "quick": bool(args.quick), "schedule": args.schedule, "steps": args.steps, "segments": args.segments,
        "solver": args.solver, "lam": lam, "plans": tuple(args.plan) if args.plan else None, "init": args.init, "input": args.input,
        "target": args.target, "eta_tau": args.eta_tau, "lr": args.lr, "node_steps": args.gd_steps, "batch": args.batch,
        "repeats": args.repeats, "pilot_repeats": args.pilot_repeats, "family": args.family, "optimizer": args.optimizer, "hidden": args.hidden, "depth": args.depth,
        "train_steps": args.train_steps, "n_eval": args.n_eval, "level": args.level, "rotated": args.rotated, "seed": args.seed,
        "device": args.device, "compile": args.compile, "threads": args.threads, "out": args.out, "progress": not (args.no_progress or args.json),
    }
    parser = parser or build_parser()
    flags = {"node_steps": "--gd-steps/--node-steps", "n_eval": "--n-eval", "eta_tau": "--eta-tau", "train_steps": "--train-steps",
             "plans": "--plan", "lam": "--lam/--spectrum" if args.spectrum is None else "--spectrum", "progress": "--no-progress"}
    dests = {"node_steps": "gd_steps", "plans": "plan", "progress": "no_progress"}
    known = set(CONFIGS[args.study].field_names())
    for key in [k for k in values if k != "study" and k not in known]:
        value = values.pop(key)
        default = parser.get_default(dests.get(key, key))
        if value is not None and value != default:
            raise UsageError(f"{flags.get(key, '--' + key.replace('_', '-'))} does not apply to the {args.study} study")
    try:
        config = study_config(args.study, values).resolved()  # every field checked now, defaults included, before any work
    except InputError as exc:
        raise UsageError(option_message(str(exc), {**{n: "--" + n.replace("_", "-") for n in _FIELD_OPTIONS}, **flags})) from exc
    check_out_folder(config.out)
    return config


#: configuration fields that have an option of the same name (``--`` and ``-`` for ``_``)
_FIELD_OPTIONS = ("schedule", "steps", "segments", "solver", "init", "input", "target", "lr", "batch", "repeats", "pilot_repeats", "family", "optimizer",
                  "hidden", "depth", "level", "rotated", "seed", "device", "compile", "threads", "out", "quick")


def _report(result: dict) -> str:
    """A short human-readable report of a study result."""
    study, s = result["study"], result["summary"]
    lines = [f"opmerge validate {study}: results in {result['result_file']}"]
    if study == "exactness":
        lines.append(f"  max relative gap (model gd closed form vs exact-loss GD students, roots and nodes): {s['max_rel_gap']:.3e}"
                     f"  (bound {s['bound']:.0e}: {'PASS' if s['passed'] else 'FAIL'}; {s['cases']} plan runs, {s['dtype']})")
        lines.append(f"  largest off-diagonal of the students in the eigenbasis: {s['max_off_diagonal']:.3e}")
        for label, unit in result["units"].items():
            for row in unit["plans"]:
                lines.append(f"  {label:22s} {row['name']:8s} {abbreviate_plan(row['plan']):28s} gap {max(row['rel_gap'], row['node_rel_gap']):.2e}  W2 {row['w2_measured']:.6f}")
    elif study == "sgd":
        lines.append(f"  coverage of the prediction by the {s['level']:.0%} interval of the mean gain: {s['coverage']:.1%} of {s['cases']} (plan, direction) cases"
                     f" over {s['repeats']} seeds ({'PASS' if s['passed'] else 'FAIL'}, bound {s['bound']:.0%}); max |z| = {s['max_abs_z']:.2f}")
        lines.append(f"  mean relative half-width {s['mean_relative_halfwidth']:.2e}; smallest relative gap between two plans' predictions {s['min_relative_separation']:.2e}")
    elif study == "ranking":
        lines.append(f"  rank correlation measured vs predicted (mean over lambda): Spearman {s['spearman_mean']:.3f}, Kendall {s['kendall_mean']:.3f};"
                     f" winner agrees at {s['winner_agreement']:.0%} of the lambda values")
        if "spearman_adam_mean" in s:
            pairs = lambda key: f"{s[key]['agree']}/{s[key]['pairs']}"  # noqa: E731
            lines.append(f"  with the adam law (docs/theory.md section 9): Spearman {s['spearman_adam_mean']:.3f},"
                         f" median |log10 W2 pred/meas| {s['log10_error_adam']:.2f} (flow: {s['log10_error_flow']:.2f}),"
                         f" significant pairs ordered {pairs('significant_pairs_adam')} (flow: {pairs('significant_pairs_flow')})")
            if "spearman_adam_calibrated_mean" in s:
                lines.append(f"  adam calibrated on pilots (held out, {s['pilot_share']:.1%} of the study's node trainings):"
                             f" Spearman {s['spearman_adam_calibrated_mean']:.3f}, |log10| {s['log10_error_adam_calibrated']:.2f},"
                             f" significant pairs {pairs('significant_pairs_adam_calibrated')}")
        lines.append(f"  BOOT-vs-vanilla crossover lambda: predicted {s['crossover_predicted']}, measured {s['crossover_measured']}"
                     f" (interval {s['crossover_interval']}); calibrated eta*tau {s['eta_tau_calibrated']:.4g}: predicted {s['crossover_calibrated']}")
    elif study == "scot":
        for row in result["students"]:
            lines.append(f"  {row['dataset']:4s} {row['method']:8s} {row['sampling_steps']}-step: W2 teacher {row['w2_teacher']:.4f}, data {row['w2_data']:.4f},"
                         f" straightness {row['straightness']:.2e}, consistency {row['consistency']:.2e}, closest plan {row['closest_plan']}"
                         f" ({row['closest_plan_text']}), closest canonical {row['closest_canonical']}")
    lines.append(f"  units: {result['unit_cache']['computed']} computed, {result['unit_cache']['cached']} from cache; {result['elapsed_s']:.1f} s")
    return "\n".join(lines)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.study in (IMAGES, MIXTURE):
        raise UsageError(f"the {args.study} study has its own options: write them after it, opmerge validate {args.study} [options]")
    config = config_from_args(args, parser)
    from ._torch import resolve_device
    from .studies import run_study

    try:
        resolve_device(config.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    result = run_study(args.study, config)
    if args.json:
        emit_json(result)
    else:
        print(_report(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``opmerge validate``: ``main([study, options...])`` -> exit status (2 on bad input).

    ``images`` (the digits study) lives in :mod:`experiments.images.cli` and has its own options.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == IMAGES:
        from .images.cli import validate_images_main

        return validate_images_main(argv[1:])
    if argv and argv[0] == MIXTURE:
        from .mixture_cli import validate_mixture_main

        return validate_mixture_main(argv[1:])
    return run_main(_main, argv, memory_hint="reduce --batch, --n-eval, --hidden, --repeats or the number of directions (--lam, --spectrum)")
