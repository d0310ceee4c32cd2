r"""``opmerge calibrate [options]``: calibrate a training law on pilot distillations and write a cost model.

Runs the pilots of :func:`opmerge.calibration.pilot_plans` (single merges of a few lengths at a few
input times, never a plan one compares) with the given student recipe against the given teacher,
fits the step scale :math:`\kappa(j, \lambda)` of the ``adam`` (or ``sign``) law
(:func:`opmerge.calibration.fit_step_scale`) and writes the cost model as JSON, with its fit report,
pilot plans and provenance, atomically to ``--out`` (default ``results/calibrate/cost-model.json``).
``opmerge plan --costs FILE`` (and ``compare``, ``evaluate``) plan with it. Pilot units are cached
next to the file (``<out>.units/``): an interrupted run resumes.

Teachers: ``gaussian`` (the spectrum of ``--lam``/``--spectrum`` under ``--schedule``, ``--steps``)
with the MLP recipes of the Gaussian bridge; ``checkpoint`` (a trained image teacher, e.g. the
digits teacher of ``opmerge train-teacher``) with the image study's network recipe (a copy of the
teacher's denoiser per node, Adam); ``mixture`` (the exact teacher of a Gaussian-mixture preset)
with the mixture study's residual-MLP recipe. The two nonlinear teachers take their grid and recipe
defaults from their study's configuration; their pilots are single merges (``--pilot-lengths`` at
each of ``--pilot-times``), and the cost model also holds the node floors :math:`\varphi(j, L)`
(docs/calibration.md §4).
"""

from __future__ import annotations

import time
from pathlib import Path
from functools import partial
from typing import Sequence

from opmerge.cli_options import (
    MAX_BATCH,
    MAX_DEPTH,
    MAX_HIDDEN,
    MAX_REPEATS,
    MAX_SAMPLES,
    MAX_THREADS,
    MAX_TORCH_STEPS,
    MAX_TRAIN_STEPS,
    ArgumentParser,
    UsageError,
    add_direction_arguments,
    add_executor_arguments,
    bounded_int,
    emit_json,
    executor_from_args,
    int_list,
    positive_float,
    run_main,
    seed_int,
    spectrum_from_args,
)
from opmerge.mixture import PRESETS as MIXTURE_PRESETS
from opmerge.schedules import SCHEDULE_NAMES

__all__ = ["build_calibrate_parser", "calibrate_main", "DEFAULT_COST_MODEL"]

DEFAULT_COST_MODEL = "results/calibrate/cost-model.json"
_MEMORY_HINT = "reduce --batch, --n-eval, --hidden or the number of directions"


def build_calibrate_parser() -> ArgumentParser:
    """The parser of ``opmerge calibrate``."""
    p = ArgumentParser(prog="opmerge calibrate",
                       description="Calibrate a training law on pilot distillations with your teacher and student recipe; "
                                   "write a cost model for 'opmerge plan --costs FILE'.")
    g = p.add_argument_group("teacher")
    g.add_argument("--teacher", default="gaussian", choices=("gaussian", "checkpoint", "mixture"),
                   help="teacher kind: gaussian (the spectrum below), checkpoint (a trained image teacher, --checkpoint) or mixture "
                        "(the exact teacher of a Gaussian mixture, --preset) (default gaussian)")
    g.add_argument("--checkpoint", default=None, metavar="PATH", help="trained teacher checkpoint (file or folder) of --teacher checkpoint")
    g.add_argument("--data", default="digits", help="the checkpoint's data: digits (default) or a .npy file")
    g.add_argument("--preset", default=None, choices=tuple(MIXTURE_PRESETS), help="the mixture of --teacher mixture (default two-2d)")
    g.add_argument("--separation", type=positive_float, default=None,
                   help="--teacher mixture: the preset's separation in component standard deviations (default 4)")
    g.add_argument("--schedule", default=None, choices=SCHEDULE_NAMES, help="noise schedule (default vp-cosine; checkpoint: rf)")
    g.add_argument("--steps", type=bounded_int(3, 4096), default=None, metavar="N",
                   help="teacher steps N (default 6, quick 4; checkpoint: 16, quick 8)")
    add_direction_arguments(p)
    p._option_string_actions["--lam"].help = ("data variance lambda > 0 of a direction; repeat or separate by commas "
                                              "(default 9 values log-spaced in [0.1, 10]; quick 0.1, 1, 10)")
    r = p.add_argument_group("student recipe")
    r.add_argument("--law", default=None, choices=("adam", "sign"),
                   help="training law to calibrate (default adam; checkpoint: sign, docs/calibration.md section 4)")
    r.add_argument("--family", default=None,
                   help="student family: diagonal, full, mlp, mlp-separable (default mlp-separable); checkpoint: denoiser; mixture: mlp")
    r.add_argument("--lr", type=positive_float, default=None, metavar="ETA",
                   help="Adam step size (default 3e-4, quick 1e-3; checkpoint: 1e-3; mixture: 2e-3)")
    r.add_argument("--node-steps", type=bounded_int(1, MAX_TRAIN_STEPS), default=None, metavar="K",
                   help="updates per merge node (default 100, quick 30; checkpoint: 200, quick 15; mixture: 1000, quick 20)")
    r.add_argument("--batch", type=bounded_int(1, MAX_BATCH), default=None, help="minibatch size (default 256; quick checkpoint 128, quick mixture 64)")
    r.add_argument("--hidden", type=bounded_int(1, MAX_HIDDEN), default=None, help="MLP width (default 32, quick 16; mixture: 4 in 2-D, else 32, quick 8)")
    r.add_argument("--depth", type=bounded_int(1, MAX_DEPTH), default=None, help="MLP hidden layers (default 2; mixture: 1 in 2-D)")
    c = p.add_argument_group("pilots")
    c.add_argument("--pilot-lengths", type=int_list(1, MAX_TORCH_STEPS), default=None, metavar="L[,L...]",
                   help="merge lengths of the pilots (default 2,3; checkpoint: 2, 4, 8, 12 up to 3N/4)")
    c.add_argument("--pilot-times", type=int_list(1, MAX_TORCH_STEPS), default=None, metavar="J[,J...]",
                   help="decreasing input times of the pilots (default N and ceil(N/2))")
    c.add_argument("--repeats", type=bounded_int(1, MAX_REPEATS), default=1, help="pilot seeds (default 1)")
    c.add_argument("--n-eval", type=bounded_int(3, MAX_SAMPLES), default=None,
                   help="node inputs of each gain regression (default 16384; checkpoint: 4096, and 2000 inputs, quick 512, for W2)")
    c.add_argument("--seed", type=seed_int, default=0, help="base seed (pilot seeds are derived from it; default 0)")
    c.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device (default auto)")
    c.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=1, help="torch CPU threads (default 1)")
    c.add_argument("--quick", action="store_true", help="small size (tests; seconds on a CPU)")
    c.add_argument("--out", default=DEFAULT_COST_MODEL, metavar="FILE", help=f"cost model to write (default {DEFAULT_COST_MODEL})")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_executor_arguments(p)
    c.add_argument("--json", action="store_true", help="print the cost model as one JSON object instead of the report")
    return p


def _main(argv: list[str]) -> int:
    args = build_calibrate_parser().parse_args(argv)
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give the cost model's file name")
    if args.teacher != "mixture" and (args.preset is not None or args.separation is not None):
        raise UsageError("--preset/--separation apply to --teacher mixture")
    if args.teacher in ("checkpoint", "mixture"):
        return _calibrate_nonlinear(args, out)
    if args.checkpoint is not None:
        raise UsageError("--checkpoint applies to --teacher checkpoint")
    args.law = args.law or "adam"
    return _calibrate_gaussian(args, out)


def _check_design(steps: int, lengths, times, single: bool) -> None:
    """Refuse a pilot design that does not fit ``N`` as a usage error naming the options."""
    from opmerge.calibration import pilot_plans, single_merge_plans
    from opmerge.errors import InputError

    try:
        single_merge_plans(steps, lengths, times) if single else pilot_plans(steps, lengths, times)
    except InputError as exc:
        raise UsageError(f"--pilot-lengths {','.join(map(str, lengths))} / --pilot-times "
                         f"{'default' if times is None else ','.join(map(str, times))} with N = {steps}: {exc}") from exc


def _adam_betas(law: str) -> dict:
    """Adam's hyper-parameters of the recipe (torch's defaults) for an ``adam`` cost model, else none."""
    return dict(beta1=0.9, beta2=0.999, eps=1e-8) if law == "adam" else {}


def _write(out: Path, cost, as_json: bool) -> bool:
    """Write the cost model atomically; with ``--json`` also print it (then the report is skipped: True)."""
    from opmerge.io import write_json

    write_json(out, cost.to_dict())
    if as_json:
        emit_json(cost.to_dict())
    return as_json


def _print_fits(report: dict) -> None:
    for fit in report["fits"]:
        note = " (censored: every pilot converged; a lower bound" + (
            f" {fit['kappa_bound']:.3g}, filled from the other lambdas)" if "kappa_bound" in fit else ")") if fit["censored"] else ""
        print(f"  j = {fit['top']:3d}  lambda = {fit['lam']:.4g}:  kappa = {fit['kappa']:.3g}{note}")


def _executor(args):
    """The pilots' engine (``--executor``), Ray's presence checked before any work."""
    from opmerge.parallel import import_ray

    config = executor_from_args(args)
    if config.kind == "ray":
        import_ray()
    return config


def _calibrate_gaussian(args, out: Path) -> int:
    executor = _executor(args)
    import numpy as np
    import torch

    from opmerge.calibration import CostModel, fit_step_scale
    from opmerge.errors import InputError
    from opmerge.io import ResultCache, provenance
    from opmerge.schedules import make_schedule

    from ._torch import resolve_device
    from .calibration import run_gaussian_pilots
    from .executor import TrainConfig
    from .gaussian import make_gaussian
    from .teacher import GaussianTeacher

    quick = bool(args.quick)
    schedule_name = args.schedule or "vp-cosine"
    steps = args.steps if args.steps is not None else (4 if quick else 6)
    lr = args.lr if args.lr is not None else (1e-3 if quick else 3e-4)
    node_steps = args.node_steps if args.node_steps is not None else (30 if quick else 100)
    hidden = args.hidden if args.hidden is not None else (16 if quick else 32)
    lengths = args.pilot_lengths or (2, 3)
    n_eval = args.n_eval or 16384
    lam = (np.asarray((0.1, 1.0, 10.0)) if quick else np.geomspace(0.1, 10.0, 9)) if not (args.lam or args.spectrum) else None
    if lam is None:
        directions = spectrum_from_args(args)
        if not np.all(directions.weights == 1.0):
            raise UsageError("the pilots sample every eigen-direction once: use a spectrum without multiplicities (or --lam)")
        lam = np.asarray(directions.lam, dtype=np.float64)
    if np.any(lam <= 0):
        raise UsageError("--lam values must be > 0 for the calibration (its table is interpolated in log lambda)")
    _check_design(steps, lengths, args.pilot_times, single=False)
    try:
        device = resolve_device(args.device)
        schedule = make_schedule(schedule_name, steps)
        train = TrainConfig(family=args.family or "mlp-separable", optimizer="adam", lr=lr, steps=node_steps, batch=args.batch or 256,
                            init="warm", input="forward", hidden=hidden, depth=args.depth or 2)
    except (InputError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    torch.set_num_threads(args.threads)
    dtype = torch.float64
    data = make_gaussian(lam, rotated=False, seed=0)
    teacher = GaussianTeacher(schedule, data, "ddim", dtype=dtype, device=device)
    cache = ResultCache(out.parent / (out.name + ".units"), "calibrate-pilot", packages=("opmerge.experiments",))
    base = {"teacher": "gaussian", "schedule": schedule_name, "steps": steps, "lam": lam.tolist(), "train": train.to_dict(),
            "lengths": list(lengths), "times": None if args.pilot_times is None else list(args.pilot_times),
            "dtype": str(dtype), "device": device.type}
    began = time.perf_counter()
    show = not (args.no_progress or args.json)
    nodes, texts = run_gaussian_pilots(teacher, train, schedule, lam, repeats=args.repeats, seed=args.seed, cache=cache, unit_base=base,
                                       lengths=lengths, times=args.pilot_times, n_eval=n_eval, progress=show, executor=executor)
    table, report = fit_step_scale(nodes, args.law, lr, node_steps, steps, source=f"opmerge calibrate ({args.teacher} teacher)")
    config = {**base, "law": args.law, "repeats": args.repeats, "seed": args.seed, "n_eval": n_eval}
    cost = CostModel(law=args.law, lr=lr, gd_steps=node_steps, step_table=table,
                     report={**report, "pilot_plans": texts, "pilot_repeats": args.repeats, "seconds": time.perf_counter() - began},
                     provenance=provenance(device=str(device), config=config), **_adam_betas(args.law))
    if _write(out, cost, args.json):
        return 0
    print(f"opmerge calibrate: cost model in {out} ({args.law} law, lr {lr:g}, {node_steps} updates per node)")
    print(f"  pilots: {len(texts)} plan(s) x {args.repeats} seed(s): {'; '.join(texts)}; {time.perf_counter() - began:.1f} s")
    _print_fits(report)
    return 0


def _study_recipe(args, quick: bool):
    """The recipe and grid of the study that a nonlinear teacher's plans are compared in: the image study's network
    recipe (checkpoint) or the mixture study's (``long`` budget); calibrating with another recipe than the study's
    would calibrate something else."""
    if args.teacher == "checkpoint":
        from .images.study_config import ImagesStudyConfig

        cfg = ImagesStudyConfig(quick=quick).resolved()
        return cfg, {"steps": cfg.steps, "schedule": cfg.schedule, "lr": cfg.lr_network, "node_steps": cfg.node_steps_network,
                     "batch": cfg.batch}
    from .studies.mixture import MixtureConfig

    args.preset = args.preset or "two-2d"
    args.separation = 4.0 if args.separation is None else args.separation
    cfg = MixtureConfig(quick=quick, preset=args.preset, separation=args.separation, budget="long").resolved()
    return cfg, {"steps": cfg.steps, "schedule": cfg.schedule, "lr": cfg.lr, "node_steps": cfg.node_steps, "batch": cfg.batch,
                 "hidden": cfg.hidden, "depth": cfg.depth, "prefit_steps": cfg.prefit_steps}


def _nonlinear_teacher(args, device, recipe: dict, steps: int):
    """The teacher, its recipe, eigenbasis, executor factory and unit identity of --teacher checkpoint|mixture."""
    from opmerge.schedules import make_schedule

    from .calibration import image_basis, mixture_basis

    schedule = make_schedule(args.schedule or recipe["schedule"], steps)
    lr, node_steps, batch = args.lr or recipe["lr"], args.node_steps or recipe["node_steps"], args.batch or recipe["batch"]
    if args.teacher == "checkpoint":
        from .images.data import load_dataset
        from .images.distill import ImagePlanExecutor, ImageTrainConfig
        from .images.study_units import teacher_identity
        from .images.teachers import load_checkpoint

        train = ImageTrainConfig(family=args.family or "denoiser", optimizer="adam", lr=lr, steps=node_steps, batch=batch,
                                 init="warm", input="forward")
        dataset = load_dataset(args.data, seed=0)
        teacher, summary = load_checkpoint(args.checkpoint, device=device, schedule=schedule, dataset=dataset)
        identity = teacher_identity(teacher, dataset, summary)
        return teacher, train, image_basis(teacher), partial(ImagePlanExecutor, teacher, train), identity
    from opmerge.mixture import mixture_preset

    from ._torch import default_dtype, derive_seed
    from .mixture_bridge import MixturePlanExecutor, MixtureTrainConfig
    from .mixture_teacher import TorchMixtureTeacher

    mixture = mixture_preset(args.preset, args.separation)
    train = MixtureTrainConfig(family=args.family or "mlp", lr=lr, steps=node_steps, batch=batch, hidden=args.hidden or recipe["hidden"],
                               depth=args.depth or recipe["depth"], prefit_steps=recipe["prefit_steps"], init="warm", input="forward")
    teacher = TorchMixtureTeacher(mixture, schedule, "ddim", dtype=default_dtype(device), device=device)
    # one pre-fit per teacher step, from one seed, shared by every pilot (common random numbers),
    # so a pilot's students do not depend on which pilot ran first or in which process
    prefit_seed = derive_seed(args.seed, "pilot-prefit")
    identity = {"kind": "mixture", "preset": args.preset, "separation": args.separation, "mixture": mixture.to_dict(),
                "schedule": schedule.name, "steps": steps}
    return (teacher, train, mixture_basis(teacher),
            partial(MixturePlanExecutor, teacher, train, prefits={}, prefit_seed=prefit_seed), identity)


def _calibrate_nonlinear(args, out: Path) -> int:
    executor = _executor(args)
    import numpy as np
    import torch

    from opmerge.calibration import CostModel, fit_step_scale, floor_points, floor_table
    from opmerge.errors import InputError
    from opmerge.io import ResultCache, provenance
    from opmerge.model import StudentModel
    from opmerge.objective import Problem

    from ._torch import resolve_device
    from .calibration import pilot_nodes, run_single_merge_pilots

    kind = args.teacher
    if kind == "checkpoint" and args.checkpoint is None:
        raise UsageError("--teacher checkpoint needs --checkpoint PATH (a trained teacher: 'opmerge train-teacher')")
    if kind == "mixture" and args.checkpoint is not None:
        raise UsageError("--checkpoint applies to --teacher checkpoint")
    if args.lam or args.spectrum:
        raise UsageError(f"--lam/--spectrum apply to --teacher gaussian (a {kind}'s directions are its data's eigenvectors)")
    if args.repeats != 1:
        raise UsageError(f"--repeats applies to --teacher gaussian ({kind} pilots run once each)")
    if kind == "checkpoint" and (args.hidden is not None or args.depth is not None):
        raise UsageError("--hidden/--depth set an MLP student; a checkpoint's students are copies of its denoiser")
    args.law = args.law or "sign"
    quick = bool(args.quick)
    _, recipe = _study_recipe(args, quick)
    steps = args.steps if args.steps is not None else recipe["steps"]
    lengths = args.pilot_lengths or tuple(length for length in (2, 4, 8, 12) if length <= max(2, (3 * steps) // 4))
    times = args.pilot_times or tuple(sorted({steps, (steps + 1) // 2}, reverse=True))
    n_gain = args.n_eval or 4096
    n_eval = 512 if quick else 2000
    _check_design(steps, lengths, times, single=True)  # before the teacher is read
    try:
        device = resolve_device(args.device)
        teacher, train, basis, make_executor, identity = _nonlinear_teacher(args, device, recipe, steps)
    except (InputError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    schedule, lr, node_steps = teacher.schedule, train.lr, train.steps
    torch.set_num_threads(args.threads)
    lam = np.asarray(basis.lam, dtype=np.float64)
    cache = ResultCache(out.parent / (out.name + ".units"), "calibrate-pilot", packages=("opmerge.experiments",))
    base = {"teacher": identity, "train": train.to_dict(), "device": device.type}
    began = time.perf_counter()
    show = not (args.no_progress or args.json)
    records = run_single_merge_pilots(teacher, make_executor, basis, lengths=lengths, times=times, seed=args.seed, cache=cache,
                                      unit_base=base, n_gain=n_gain, n_eval=n_eval, progress=show, executor=executor)
    q = Problem(schedule, lam, model=StudentModel(init="warm")).law.q
    source = f"opmerge calibrate ({kind} teacher, {args.data if kind == 'checkpoint' else args.preset})"
    table, report = fit_step_scale(pilot_nodes(records, lam, q), args.law, lr, node_steps, steps, source=source)
    floors = floor_points(steps, [(r["plan"], r["w2_cov"], r["w2_gain"]) for r in records])
    config = {**base, "schedule": schedule.name, "steps": steps, "law": args.law,
              "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
              "lengths": list(lengths), "times": list(times), "seed": args.seed, "n_gain": n_gain, "n_eval": n_eval}
    cost = CostModel(law=args.law, lr=lr, gd_steps=node_steps, step_table=table,
                     floor_table=floor_table([(f["top"], f["length"], f["floor"]) for f in floors], steps, source=source),
                     report={**report, "pilot_plans": [r["plan"] for r in records], "pilot_repeats": 1, "floors": floors,
                             "pilot_train_seconds": sum(r["train_seconds"] for r in records), "seconds": time.perf_counter() - began},
                     provenance=provenance(device=str(device), config=config), **_adam_betas(args.law))
    if _write(out, cost, args.json):
        return 0
    print(f"opmerge calibrate: cost model in {out} ({args.law} law, lr {lr:g}, {node_steps} updates per node, node floors)")
    print(f"  pilots: {len(records)} single merges (lengths {','.join(map(str, lengths))} at times "
          f"{','.join(map(str, times))}); {time.perf_counter() - began:.1f} s")
    kappas = {}
    for fit in report["fits"]:
        kappas.setdefault(fit["top"], []).append(fit["kappa"])
    for j, values in kappas.items():
        print(f"  j = {j:3d}: kappa median {float(np.median(values)):.3g} over {len(values)} directions")
    for f in floors:
        print(f"  merge of {f['length']:2d} at j = {f['top']:2d}: W2 {f['w2']:.4f}, of it in the gains {f['w2_gain']:.4f}; "
              f"floor {f['floor']:.3g}")
    return 0


def calibrate_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``opmerge calibrate``: ``calibrate_main([options...])`` -> exit status (2 on bad input)."""
    return run_main(_main, list(argv or []), memory_hint=_MEMORY_HINT)
