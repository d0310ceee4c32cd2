r"""Command-line entries of the image bridge (wired by ``opmerge.cli`` as ``opmerge train-teacher`` and
``opmerge validate images``).

* :func:`train_teacher_main` — train (or resume) the MLP diffusion teacher, then evaluate it
  (Fréchet distances to held-out images, classifier score) unless ``--no-evaluate``, writing the
  numbers with provenance to ``OUT/teacher_metrics.json``.
* :func:`validate_images_main` — the distillation study on digits (:func:`~experiments.images.study.run_images_study`).

Both return an exit status: 0, 2 for bad input (one ``opmerge: error:`` line), 130 on Ctrl-C,
143 on SIGTERM (a teacher checkpoint of the last whole step is written first; finished study units are kept). Both run torch on
:data:`DEFAULT_THREADS` CPU thread unless ``--threads`` says otherwise (``docs/images.md`` §7).
"""

from __future__ import annotations

import argparse
import re
from typing import Sequence

from opmerge.cli_options import (
    COMPILE_MODES,
    MAX_BATCH,
    MAX_DEPTH,
    MAX_HIDDEN,
    MAX_SAMPLES,
    MAX_THREADS,
    MAX_TORCH_STEPS,
    MAX_TRAIN_STEPS,
    ArgumentParser,
    UsageError,
    add_executor_arguments,
    bounded_int,
    check_out_folder,
    emit_json,
    executor_from_args,
    int_list,
    option_message,
    positive_float,
    run_main,
    seed_int,
)
from opmerge.errors import InputError
from opmerge.parallel import import_ray

__all__ = ["train_teacher_main", "validate_images_main", "build_train_teacher_parser", "build_validate_images_parser"]

DEFAULT_TEACHER_OUT = "results/teachers"
#: torch CPU threads unless --threads says otherwise (one thread is fastest for these small networks)
DEFAULT_THREADS = 1
#: most random plans per M of ``validate images --random-plans``
MAX_RANDOM_PLANS = 1_000
_TEACHER_MEMORY_HINT = "reduce --batch-size, --hidden, --depth or --n-eval"
_IMAGES_MEMORY_HINT = "reduce --n-eval, --steps, --segments or --random-plans"


def _device_check(name: str) -> None:
    from .._torch import resolve_device

    try:
        resolve_device(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _load_data_or_usage(spec: str):
    from .data import load_dataset

    try:
        dataset = load_dataset(spec)
    except ModuleNotFoundError as exc:  # torchvision missing for mnist / cifar10
        raise UsageError(f"--data {spec}: {exc}") from exc
    except InputError as exc:
        raise UsageError(f"--data: {exc}") from exc
    return dataset


# =============================================================================================
# train-teacher
# =============================================================================================


def build_train_teacher_parser() -> ArgumentParser:
    """The parser of ``opmerge train-teacher``."""
    p = ArgumentParser(prog="opmerge train-teacher",
                       description="Train (or resume) the small MLP diffusion teacher on image data; checkpoints are written atomically.")
    p.add_argument("--data", default="digits", help="digits (default), mnist, cifar10 (files on disk, torchvision) or a .npy file")
    p.add_argument("--schedule", default="rf", choices=("rf", "vp-cosine"), help="training noise levels and default sampling grid (default rf)")
    p.add_argument("--steps", type=bounded_int(1, MAX_TORCH_STEPS), default=16,
                   help=f"sampling steps N of the default grid, at most {MAX_TORCH_STEPS} (default 16)")
    p.add_argument("--train-steps", type=bounded_int(1, MAX_TRAIN_STEPS), help="Adam updates in total (default 20000; --quick 2000)")
    p.add_argument("--batch-size", type=bounded_int(1, MAX_BATCH), help=f"minibatch size, at most {MAX_BATCH:_} (default 256; --quick 128)")
    p.add_argument("--lr", type=positive_float, help="Adam step size (default 1e-3; --quick 2e-3), cosine-decayed to a tenth")
    p.add_argument("--hidden", type=bounded_int(1, MAX_HIDDEN), help=f"network width, at most {MAX_HIDDEN:_} (default 384; --quick 128)")
    p.add_argument("--depth", type=bounded_int(1, MAX_DEPTH), help=f"hidden layers, at most {MAX_DEPTH} (default 3)")
    p.add_argument("--prediction", choices=("x0", "eps"), default="x0", help="network output: x0 (default) or eps")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the weights and every batch, >= 0 (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device (default auto)")
    p.add_argument("--out", default=None, help=f"checkpoint folder (default {DEFAULT_TEACHER_OUT}/<data>-<schedule>[-quick])")
    p.add_argument("--resume", dest="resume", action="store_true", default=True, help="continue from OUT/teacher.pt if present (default)")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="start over, overwriting OUT/teacher.pt")
    p.add_argument("--quick", action="store_true", help="small preset (CPU, seconds)")
    p.add_argument("--no-evaluate", action="store_true", help="skip the sample-quality evaluation after training")
    p.add_argument("--n-eval", type=bounded_int(2, MAX_SAMPLES), default=2000,
                   help=f"samples for the evaluation, 2 to {MAX_SAMPLES:_} (default 2000)")
    p.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=None,
                   help=f"torch CPU threads (default {DEFAULT_THREADS}: faster than torch's default for these small networks)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    return p


def _set_threads(threads: int | None) -> None:
    """Set torch's CPU threads: ``threads``, or :data:`DEFAULT_THREADS` when not given.

    One thread is the default: these networks are small, and on a 2-core machine torch's default
    thread count ran ``train-teacher --quick`` 18x slower with the same loss (``docs/images.md`` §7).
    """
    import torch

    torch.set_num_threads(DEFAULT_THREADS if threads is None else int(threads))


def _train_teacher(argv: list[str]) -> int:
    args = build_train_teacher_parser().parse_args(argv)
    check_out_folder(args.out)
    _device_check(args.device)
    _set_threads(args.threads)
    from .teacher_quality import evaluate_teacher_quality
    from .teachers import TeacherConfig, train_teacher

    dataset = _load_data_or_usage(args.data)
    overrides = {k: v for k, v in (("train_steps", args.train_steps), ("batch_size", args.batch_size), ("lr", args.lr),
                                   ("hidden", args.hidden), ("depth", args.depth)) if v is not None}
    preset = TeacherConfig.quick if args.quick else TeacherConfig
    config = preset(data=args.data, schedule=args.schedule, steps=args.steps, prediction=args.prediction, seed=args.seed, **overrides)
    if args.out is None:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset.name.replace("npy:", ""))
        out = f"{DEFAULT_TEACHER_OUT}/{stem}-{args.schedule}" + ("-quick" if args.quick else "")
    else:
        out = args.out
    check_out_folder(out)
    summary = train_teacher(config, out, resume=args.resume, progress=not (args.no_progress or args.json), device=args.device,
                            dataset=dataset)
    result = {"checkpoint": summary.to_dict()}
    if not args.no_evaluate:
        quality = evaluate_teacher_quality(summary, dataset, n_eval=args.n_eval, seed=args.seed, device=args.device,
                                           cache_dir=f"{out}/cache")
        if quality["classifier"] is not None:
            result["classifier"] = quality["classifier"]
        for key in ("evaluation", "data_reference", "metrics_file"):
            result[key] = quality[key]
    if args.json:
        emit_json(result)
        return 0
    c = summary
    last = f"{c.losses[-1]:.4f}" if c.losses else "n/a"
    print(f"opmerge train-teacher: {c.path} (step {c.step}/{c.config.train_steps}, last mean loss {last}, {c.elapsed:.1f} s of training)")
    if "evaluation" in result:
        e, d = result["evaluation"], result["data_reference"]
        line = f"  {args.n_eval} samples, {config.steps} DDIM steps: Frechet distance to held-out images: pixels {e['fd_pixels_test']:.3f}"
        if "fd_features_test" in e:
            line += (f", classifier features {e['fd_features_test']:.3f}; classifier score {e['classifier_score']:.2f}, coverage {e['coverage']:.0%}"
                     f"  (training images: {d['fd_pixels_test']:.3f}, {d['fd_features_test']:.3f}, {d['classifier_score']:.2f})")
        print(line)
        mem = e["memorization"]
        print(f"  memorisation: {mem['fraction']:.1%} of samples closer to a training image than to a test image by a factor {mem['factor']:g}"
              f" (median ratio {mem['median_ratio']:.3f}, held-out images {mem['baseline_median_ratio']:.3f})")
        print(f"  metrics written to {result['metrics_file']}")
    return 0


def train_teacher_main(argv: Sequence[str] | None = None) -> int:
    """``opmerge train-teacher [options]``.

    Parameters
    ----------
    argv : sequence of str, optional
        The options (default ``sys.argv[1:]``); ``--help`` lists them.

    Returns
    -------
    int
        Exit status: 0, 2 for bad input, 130 on Ctrl-C, 143 on SIGTERM.
    """
    return run_main(_train_teacher, argv, memory_hint=_TEACHER_MEMORY_HINT)


# =============================================================================================
# validate images
# =============================================================================================


def _csv(text: str, allowed: tuple | None = None, label: str = "value") -> tuple:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if allowed is not None:
        bad = [p for p in parts if p not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{label} must be drawn from {', '.join(allowed)}, got {', '.join(bad)}")
    return parts


def build_validate_images_parser() -> ArgumentParser:
    """The parser of ``opmerge validate images``."""
    from .study import DEFAULT_OUT

    p = ArgumentParser(prog="opmerge validate images",
                       description="Distil plan students and SCoT/TraFlow students on digits and compare them with the model's predictions.")
    p.add_argument("--data", default="digits", help="digits (default) or a .npy file")
    p.add_argument("--teacher", default="both", choices=("gaussian", "trained", "both"), help="teacher(s) to distil from (default both)")
    p.add_argument("--checkpoint", default=None, help="trained teacher checkpoint (file or folder; default: train one into OUT/teacher)")
    p.add_argument("--schedule", default="rf", choices=("rf", "vp-cosine"), help="sampling grid (default rf)")
    p.add_argument("--steps", type=bounded_int(1, MAX_TORCH_STEPS), default=None, help=f"teacher steps N, at most {MAX_TORCH_STEPS} (default 16; --quick 8)")
    p.add_argument("--segments", type=int_list(1, MAX_TORCH_STEPS), default=(1, 2, 4), help="student steps M, comma list (default 1,2,4)")
    p.add_argument("--plan", action="append", metavar="PLAN", help="vanilla, boot, cd, pd, optimal or a plan text; repeatable")
    p.add_argument("--random-plans", type=bounded_int(0, MAX_RANDOM_PLANS), default=None,
                   help=f"random plans per M, 0 to {MAX_RANDOM_PLANS} (default 2; --quick 0)")
    p.add_argument("--recipe", type=lambda t: _csv(t, ("linear", "network"), "--recipe"), default=None,
                   help="student recipes: linear (affine, SGD), network (denoiser copy, Adam); comma list (default both)")
    p.add_argument("--trajectory", type=lambda t: () if t.strip() == "none" else _csv(t, ("scot", "traflow"), "--trajectory"),
                   default=("scot", "traflow"), help="trajectory students: scot,traflow (default) or none")
    p.add_argument("--node-steps-linear", type=bounded_int(1, MAX_TRAIN_STEPS), default=None, help="SGD updates per merge node, linear recipe")
    p.add_argument("--node-steps-network", type=bounded_int(1, MAX_TRAIN_STEPS), default=None, help="Adam updates per merge node, network recipe")
    p.add_argument("--train-steps", type=bounded_int(1, MAX_TRAIN_STEPS), default=None, help="SCoT/TraFlow updates")
    p.add_argument("--init", default="warm", choices=("warm", "ddim"), help="student init (default warm)")
    p.add_argument("--input", default="forward", choices=("forward", "generated"), help="node inputs (default forward)")
    p.add_argument("--eta-tau", type=positive_float, default=0.5, help="model budget for the network recipe (default 0.5)")
    p.add_argument("--costs", default=None, metavar="FILE",
                   help="cost model from 'opmerge calibrate --teacher checkpoint': predict the network recipe's plans with it "
                        "and measure its recommended plan per M")
    p.add_argument("--n-eval", type=bounded_int(2, MAX_SAMPLES), default=None,
                   help=f"fixed inputs per teacher and student, 2 to {MAX_SAMPLES:_} (default 2000; --quick 512)")
    p.add_argument("--seed", type=seed_int, default=0, help="base seed, >= 0 (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device (default auto)")
    p.add_argument("--compile", default="off", choices=COMPILE_MODES,
                   help="torch.compile the students' training steps in this mode (default off; reduce-overhead: CUDA graphs)")
    p.add_argument("--quick", action="store_true", help="small size (CPU, under two minutes including the teacher's training)")
    p.add_argument("--out", default=None, help=f"results folder (default {DEFAULT_OUT})")
    p.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=None,
                   help=f"torch CPU threads (default {DEFAULT_THREADS}: faster than torch's default for these small networks)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    add_executor_arguments(p)
    return p


def _fmt(value, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _report(result: dict) -> str:
    s = result["summary"]
    lines = [f"opmerge validate images: results in {result['result_file']} ({result['elapsed_s']:.1f} s;"
             f" units {result['unit_cache']['computed']} computed, {result['unit_cache']['cached']} from cache)"]
    d = s["data_reference"]
    lines.append(f"  training images vs held-out: FD pixels {_fmt(d['fd_pixels_test'])}, FD features {_fmt(d['fd_features_test'])},"
                 f" classifier score {_fmt(d['classifier_score'], '.2f')}")
    for kind, t in s["teachers"].items():
        lines.append(f"  {kind} teacher: FD pixels {_fmt(t['fd_pixels_test'])}, FD features {_fmt(t['fd_features_test'])}, classifier score"
                     f" {_fmt(t['classifier_score'], '.2f')}, coverage {_fmt(t['coverage'], '.0%')}, memorised {_fmt(t['memorized_fraction'], '.1%')};"
                     f" linear share {_fmt(t['linear_share'])}, Gaussian-teacher share {_fmt(t['gaussian_teacher_share'])}")
    lines.append("  rank correlation of plans, model W2 vs measured W2 (covariance part), Spearman / winner agrees:")
    for key, r in s["rank_correlation"].items():
        lines.append(f"    {key:26s} {_fmt(r['spearman_w2_cov'], '+.2f'):>6s}  {'yes' if r['winner_agrees'] else 'no ':3s}  ({r['plans']} plans)")
    lines.append("  students (teacher recipe M plan: predicted W2 -> measured W2; FD features to held-out):")
    for st in s["students"]:
        pred = _fmt(st["w2_predicted"]) if st["w2_predicted"] is not None else "  -  "
        extra = f" closest plan {st['closest_plan']}" if st.get("closest_plan") else ""
        lines.append(f"    {st['teacher']:8s} {st['recipe']:7s} M={st['segments']} {st['name']:8s} {pred} -> {_fmt(st['w2_cov'])};"
                     f" FD features {_fmt(st['fd_features_test'], '.2f')}{extra}")
    lines.append("  median relative error of the teacher-normalised gains (model S/T vs measured g/g_teacher):")
    for b in s["breakdown"]:
        bins = ", ".join(f"{k} {_fmt(v, '.3f')}" for k, v in b["by_lambda"].items())
        lines.append(f"    {b['teacher']:8s} {b['recipe']:7s} M={b['segments']}: {_fmt(b['median_relative_gain_error'])}  (by lambda: {bins})")
    for key, value in s["calibrated_eta_tau"].items():
        lines.append(f"  calibrated eta*tau ({key}): {value}")
    for key, c in s.get("calibrated_prediction", {}).items():
        lines.append(f"  cost model ({key}, {c['law']} law{' + node floors' if c['floors'] else ''}; pilots {_fmt(c['pilot_cost_share'], '.1%')}"
                     f" of the node trainings): Spearman pooled {_fmt(c['spearman_pooled'], '+.2f')}")
        for m, e in c["by_segments"].items():
            rec = e.get("recommended")
            where = f"recommended {rec['plan']}: measured {rec['measured']:.3f}, rank {rec['rank']} of {rec['of']}" if rec else ""
            lines.append(f"    M={m}: Spearman {_fmt(e['spearman'], '+.2f')}; {where}")
    return "\n".join(lines)


def _validate_images(argv: list[str]) -> int:
    args = build_validate_images_parser().parse_args(argv)
    check_out_folder(args.out)
    if args.checkpoint is not None:
        from pathlib import Path

        if not args.checkpoint.strip():
            raise UsageError("--checkpoint must name a teacher checkpoint (a file or folder), got an empty path")
        if not Path(args.checkpoint).exists():
            raise UsageError(f"--checkpoint {args.checkpoint!r}: no such file or folder (train one with opmerge train-teacher)")
    _device_check(args.device)
    executor = executor_from_args(args)
    if executor.kind == "ray":
        import_ray()
    _set_threads(args.threads)
    from .study import ImagesStudyConfig, run_images_study

    values = {
        "quick": args.quick, "data": args.data, "teachers": ("gaussian", "trained") if args.teacher == "both" else (args.teacher,),
        "checkpoint": args.checkpoint, "schedule": args.schedule, "steps": args.steps, "segments": args.segments,
        "plans": tuple(args.plan) if args.plan else None, "random_plans": args.random_plans, "trajectory": args.trajectory,
        "node_steps_linear": args.node_steps_linear, "node_steps_network": args.node_steps_network, "traj_steps": args.train_steps,
        "init": args.init, "input": args.input, "eta_tau": args.eta_tau, "costs": args.costs, "n_eval": args.n_eval, "seed": args.seed, "device": args.device,
        "compile": args.compile, "out": args.out, "progress": not (args.no_progress or args.json),
    }
    if args.recipe is not None:
        values["recipes"] = args.recipe
        values["recipes_by_teacher"] = None if not args.quick else tuple(
            (t, r) for t in values["teachers"] for r in args.recipe)
    _load_data_or_usage(args.data)
    try:
        config = ImagesStudyConfig(**values).resolved()
    except InputError as exc:
        raise UsageError(_images_option_message(str(exc))) from exc
    _check_plan_texts(config)
    if config.costs is not None:
        from .prediction import read_costs

        if ("trained", "network") not in config.recipes_by_teacher:
            raise UsageError("--costs predicts the network recipe of the trained teacher: use --teacher trained (or both) and --recipe network")
        try:
            read_costs(config.costs, config.steps)
        except InputError as exc:
            raise UsageError(f"--costs: {exc}") from exc
    check_out_folder(config.out)
    result = run_images_study(config, executor=executor)
    if args.json:
        emit_json(result)
    else:
        print(_report(result))
    return 0


def _check_plan_texts(config) -> None:
    """Every ``--plan`` text parses, has ``N = --steps`` leaves and one of the ``--segments`` (checked before any training)."""
    from ..studies._common import check_plan_name

    for text in config.plans or ():
        try:
            check_plan_name(text, config.steps, tuple(config.segments))
        except InputError as exc:
            raise UsageError(_images_option_message(str(exc))) from exc


_IMAGES_FLAGS = {"traj_steps": "--train-steps", "teachers": "--teacher", "plans": "--plan", "recipes": "--recipe", "recipes_by_teacher": "--recipe"}


def _images_option_message(message: str) -> str:
    """The configuration's message with a field's name replaced by its option (``n_eval must ...`` -> ``--n-eval must ...``)."""
    options = {a.dest: a.option_strings[0] for a in build_validate_images_parser()._actions if a.option_strings}
    return option_message(message, {**options, **_IMAGES_FLAGS})


def validate_images_main(argv: Sequence[str] | None = None) -> int:
    """``opmerge validate images [options]``.

    Parameters
    ----------
    argv : sequence of str, optional
        The options (default ``sys.argv[1:]``); ``--help`` lists them.

    Returns
    -------
    int
        Exit status: 0, 2 for bad input, 130 on Ctrl-C, 143 on SIGTERM.
    """
    return run_main(_validate_images, argv, memory_hint=_IMAGES_MEMORY_HINT)
