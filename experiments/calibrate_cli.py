r"""``opmerge calibrate [options]``: calibrate a training law on pilot distillations and write a cost model.

Runs the pilots of :func:`opmerge.calibration.pilot_plans` (single merges of a few lengths at a few
input times, never a plan one compares) with the given student recipe against the given teacher,
fits the step scale :math:`\kappa(j, \lambda)` of the ``adam`` (or ``sign``) law
(:func:`opmerge.calibration.fit_step_scale`) and writes the cost model as JSON, with its fit report,
pilot plans and provenance, atomically to ``--out`` (default ``results/calibrate/cost-model.json``).
``opmerge plan --costs FILE`` (and ``compare``, ``evaluate``) plan with it. Pilot units are cached
next to the file (``<out>.units/``): an interrupted run resumes.

Teachers: ``gaussian`` (the spectrum of ``--lam``/``--spectrum`` under ``--schedule``, ``--steps``).
Mixture and trained-checkpoint teachers are not calibrated yet (docs/calibration.md).
"""

from __future__ import annotations

import time
from pathlib import Path
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
    bounded_int,
    emit_json,
    int_list,
    positive_float,
    run_main,
    seed_int,
    spectrum_from_args,
)
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
    g.add_argument("--teacher", default="gaussian", choices=("gaussian",), help="teacher kind (default gaussian: the spectrum below)")
    g.add_argument("--schedule", default="vp-cosine", choices=SCHEDULE_NAMES, help="noise schedule (default vp-cosine)")
    g.add_argument("--steps", type=bounded_int(3, 4096), default=None, metavar="N", help="teacher steps N (default 6, quick 4)")
    add_direction_arguments(p)
    p._option_string_actions["--lam"].help = ("data variance lambda > 0 of a direction; repeat or separate by commas "
                                              "(default 9 values log-spaced in [0.1, 10]; quick 0.1, 1, 10)")
    r = p.add_argument_group("student recipe")
    r.add_argument("--law", default="adam", choices=("adam", "sign"), help="training law to calibrate (default adam)")
    r.add_argument("--family", default=None, help="student family: diagonal, full, mlp, mlp-separable (default mlp-separable)")
    r.add_argument("--lr", type=positive_float, default=None, metavar="ETA", help="Adam step size (default 3e-4, quick 1e-3)")
    r.add_argument("--node-steps", type=bounded_int(1, MAX_TRAIN_STEPS), default=None, metavar="K",
                   help="updates per merge node (default 100, quick 30)")
    r.add_argument("--batch", type=bounded_int(1, MAX_BATCH), default=256, help="minibatch size (default 256)")
    r.add_argument("--hidden", type=bounded_int(1, MAX_HIDDEN), default=None, help="MLP width (default 32, quick 16)")
    r.add_argument("--depth", type=bounded_int(1, MAX_DEPTH), default=2, help="MLP hidden layers (default 2)")
    c = p.add_argument_group("pilots")
    c.add_argument("--pilot-lengths", type=int_list(1, MAX_TORCH_STEPS), default=(2, 3), metavar="L[,L...]", help="merge lengths of the pilots (default 2,3)")
    c.add_argument("--pilot-times", type=int_list(1, MAX_TORCH_STEPS), default=None, metavar="J[,J...]",
                   help="decreasing input times of the pilots (default N and ceil(N/2))")
    c.add_argument("--repeats", type=bounded_int(1, MAX_REPEATS), default=1, help="pilot seeds (default 1)")
    c.add_argument("--n-eval", type=bounded_int(3, MAX_SAMPLES), default=16384, help="node inputs of each gain regression (default 16384)")
    c.add_argument("--seed", type=seed_int, default=0, help="base seed (pilot seeds are derived from it; default 0)")
    c.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device (default auto)")
    c.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=1, help="torch CPU threads (default 1)")
    c.add_argument("--quick", action="store_true", help="small size (tests; seconds on a CPU)")
    c.add_argument("--out", default=DEFAULT_COST_MODEL, metavar="FILE", help=f"cost model to write (default {DEFAULT_COST_MODEL})")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.add_argument("--json", action="store_true", help="print the cost model as one JSON object instead of the report")
    return p


def _main(argv: list[str]) -> int:
    args = build_calibrate_parser().parse_args(argv)
    import numpy as np
    import torch

    from opmerge.calibration import CostModel, fit_step_scale, pilot_plans
    from opmerge.errors import InputError
    from opmerge.io import ResultCache, provenance, write_json
    from opmerge.schedules import make_schedule

    from ._torch import resolve_device
    from .calibration import run_gaussian_pilots
    from .executor import TrainConfig
    from .gaussian import make_gaussian
    from .studies._common import progress
    from .teacher import GaussianTeacher

    quick = bool(args.quick)
    steps = args.steps if args.steps is not None else (4 if quick else 6)
    lr = args.lr if args.lr is not None else (1e-3 if quick else 3e-4)
    node_steps = args.node_steps if args.node_steps is not None else (30 if quick else 100)
    hidden = args.hidden if args.hidden is not None else (16 if quick else 32)
    lam = (np.asarray((0.1, 1.0, 10.0)) if quick else np.geomspace(0.1, 10.0, 9)) if not (args.lam or args.spectrum) else None
    if lam is None:
        directions = spectrum_from_args(args)
        if not np.all(directions.weights == 1.0):
            raise UsageError("the pilots sample every eigen-direction once: use a spectrum without multiplicities (or --lam)")
        lam = np.asarray(directions.lam, dtype=np.float64)
    if np.any(lam <= 0):
        raise UsageError("--lam values must be > 0 for the calibration (its table is interpolated in log lambda)")
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give the cost model's file name")
    try:
        pilot_plans(steps, args.pilot_lengths, args.pilot_times)  # checks the design before any work
    except InputError as exc:
        raise UsageError(f"--pilot-lengths {','.join(map(str, args.pilot_lengths))} / --pilot-times "
                         f"{'default' if args.pilot_times is None else ','.join(map(str, args.pilot_times))} with N = {steps}: {exc}") from exc
    try:
        device = resolve_device(args.device)
        schedule = make_schedule(args.schedule, steps)
        train = TrainConfig(family=args.family or "mlp-separable", optimizer="adam", lr=lr, steps=node_steps, batch=args.batch,
                            init="warm", input="forward", hidden=hidden, depth=args.depth)
    except (InputError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    torch.set_num_threads(args.threads)
    dtype = torch.float64
    data = make_gaussian(lam, rotated=False, seed=0)
    teacher = GaussianTeacher(schedule, data, "ddim", dtype=dtype, device=device)
    cache = ResultCache(out.parent / (out.name + ".units"), "calibrate-pilot", packages=("opmerge.experiments",))
    base = {"teacher": "gaussian", "schedule": args.schedule, "steps": steps, "lam": lam.tolist(), "train": train.to_dict(),
            "lengths": list(args.pilot_lengths), "times": None if args.pilot_times is None else list(args.pilot_times),
            "dtype": str(dtype), "device": device.type}
    began = time.perf_counter()
    show = not (args.no_progress or args.json)
    nodes, texts = run_gaussian_pilots(teacher, train, schedule, lam, repeats=args.repeats, seed=args.seed, cache=cache, unit_base=base,
                                       lengths=args.pilot_lengths, times=args.pilot_times, n_eval=args.n_eval,
                                       progress=lambda units: progress(units, show, "calibration pilots"))
    table, report = fit_step_scale(nodes, args.law, lr, node_steps, steps, source=f"opmerge calibrate ({args.teacher} teacher)")
    config = {**base, "law": args.law, "repeats": args.repeats, "seed": args.seed, "n_eval": args.n_eval}
    extra = dict(beta1=0.9, beta2=0.999, eps=1e-8) if args.law == "adam" else {}
    cost = CostModel(law=args.law, lr=lr, gd_steps=node_steps, step_table=table,
                     report={**report, "pilot_plans": texts, "pilot_repeats": args.repeats, "seconds": time.perf_counter() - began},
                     provenance=provenance(device=str(device), config=config), **extra)
    write_json(out, cost.to_dict())
    if args.json:
        emit_json(cost.to_dict())
        return 0
    print(f"opmerge calibrate: cost model in {out} ({args.law} law, lr {lr:g}, {node_steps} updates per node)")
    print(f"  pilots: {len(texts)} plan(s) x {args.repeats} seed(s): {'; '.join(texts)}; {time.perf_counter() - began:.1f} s")
    for fit in report["fits"]:
        note = " (censored: every pilot converged; a lower bound" + (
            f" {fit['kappa_bound']:.3g}, filled from the other lambdas)" if "kappa_bound" in fit else ")") if fit["censored"] else ""
        print(f"  j = {fit['top']:3d}  lambda = {fit['lam']:.4g}:  kappa = {fit['kappa']:.3g}{note}")
    return 0


def calibrate_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``opmerge calibrate``: ``calibrate_main([options...])`` -> exit status (2 on bad input)."""
    return run_main(_main, list(argv or []), memory_hint=_MEMORY_HINT)
