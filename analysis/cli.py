r"""Command-line faces of the analysis: ``opmerge phase`` and ``opmerge demo``.

``opmerge phase`` sweeps :math:`\lambda` on a log grid for one direction, locates every change of
the optimal family by bisection and prints a compact table (or, with ``--json``, one JSON object
with the lists ``lam``, ``family``, ``w2``, the ``thresholds`` and the configuration). Results go to
``--out`` (default ``results/phase``): ``phase.json`` (with its ``provenance`` block), the figure
``phase_w2.{pdf,png,json}`` and a point cache ``cache/`` that makes a rerun (or a run after
Ctrl-C) resume instead of recompute.

``opmerge demo`` runs :func:`opmerge.analysis.demo.run_demo` on its built-in default (the digits spectrum)
and writes everything to ``--out`` (default ``opmerge-results/``).

:func:`main` is what ``opmerge.cli`` calls: ``main(["phase", ...])`` / ``main(["demo", ...])``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from .points import MAX_POINTS
from opmerge.cli_options import (
    MAX_BINS,
    MAX_WORKERS,
    ArgumentParser,
    add_executor_arguments,
    add_model_arguments,
    bounded_int,
    check_out_folder,
    add_search_arguments,
    emit_json,
    executor_from_args,
    model_from_args,
    positive_float,
    run_main,
    schedule_from_args,
    search_budgets_from_args,
)
from opmerge.errors import InputError
from opmerge.parallel import import_ray
from opmerge.io import provenance, write_json

__all__ = ["main", "build_parser", "run_phase", "run_demo_command"]

PHASE_DEFAULT_OUT = "results/phase"
DEMO_DEFAULT_OUT = "opmerge-results"


def add_phase_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``opmerge phase`` (the model options come from ``add_model_arguments``; ``--steps`` defaults to 16)."""
    add_model_arguments(parser, steps_default=16)
    add_search_arguments(parser)
    g = parser.add_argument_group("sweep")
    g.add_argument("--lam-min", type=positive_float, default=0.05, metavar="LAM", help="smallest data variance lambda (default 0.05)")
    g.add_argument("--lam-max", type=positive_float, default=100.0, metavar="LAM", help="largest data variance lambda (default 100)")
    g.add_argument("--points", type=bounded_int(1, MAX_POINTS), default=60, metavar="K",
                   help=f"number of log-spaced lambda values, at most {MAX_POINTS:_} (default 60)")
    g.add_argument("--tol", type=positive_float, default=1e-3, metavar="REL", help="relative bisection tolerance of the thresholds, < 1 (default 1e-3)")
    g.add_argument("--workers", type=bounded_int(1, MAX_WORKERS), default=None, metavar="W",
                   help=f"worker processes, at most {MAX_WORKERS} (default: all CPU cores)")
    g.add_argument("--out", default=PHASE_DEFAULT_OUT, metavar="DIR", help=f"output folder (default {PHASE_DEFAULT_OUT})")
    g.add_argument("--no-plot", action="store_true", help="skip the figure")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the point cache in OUT/cache")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    add_executor_arguments(parser, default="process", workers=False)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``opmerge demo``."""
    parser.add_argument("--out", default=DEMO_DEFAULT_OUT, metavar="DIR", help=f"output folder (default {DEMO_DEFAULT_OUT}/)")
    parser.add_argument("--bins", type=bounded_int(0, MAX_BINS), default=None, metavar="B",
                        help="bin the spectrum to B directions for the joint solves; 0 = the full spectrum (default: see docs/analysis.md)")
    parser.add_argument("--workers", type=bounded_int(1, MAX_WORKERS), default=None, metavar="W",
                        help=f"worker processes, at most {MAX_WORKERS} (default: all CPU cores)")
    parser.add_argument("--quick", action="store_true", help="smaller grids (for tests)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_executor_arguments(parser, default="process", workers=False)


def build_parser(prog: str = "opmerge") -> argparse.ArgumentParser:
    """Parser with the ``phase`` and ``demo`` subcommands."""
    parser = ArgumentParser(prog=prog, description="Phase sweeps and the demo of the opmerge analysis.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_phase_arguments(sub.add_parser("phase", help="optimal plan family along a lambda sweep, with thresholds"))
    add_demo_arguments(sub.add_parser("demo", help="digits spectrum: joint optimal plans, comparison, phase diagram"))
    return parser


def _executor(args: argparse.Namespace):
    """The sweep's engine: ``--executor`` (``None`` for the runner's default, a fork-started pool of ``--workers``)."""
    config = executor_from_args(args)
    if config.kind == "ray":
        import_ray()
    return None if config.kind == "process" else config


def run_phase(args: argparse.Namespace) -> int:
    """Run ``opmerge phase`` from parsed arguments; returns the exit status."""
    from .sweeps import lambda_grid, sweep_lambda

    if args.lam_max <= args.lam_min:
        raise InputError(f"--lam-max ({args.lam_max}) must be larger than --lam-min ({args.lam_min})")
    if not 0 < args.tol < 1:
        raise InputError(f"--tol must be in (0, 1), got {args.tol}")
    if args.segments > args.steps:
        raise InputError(f"--segments ({args.segments}) must be <= --steps ({args.steps})")
    schedule = schedule_from_args(args)
    model = model_from_args(args)
    out = check_out_folder(args.out)
    lams = lambda_grid(args.lam_min, args.lam_max, args.points)
    sweep = sweep_lambda(
        lams,
        schedule=schedule,
        model=model,
        solver=args.solver,
        target=args.target,
        segments=args.segments,
        tol=args.tol,
        workers=args.workers,
        executor=_executor(args),
        cache_dir=None if args.no_cache else out / "cache",
        progress=not args.no_progress,
        **search_budgets_from_args(args),
    )
    result = dict(sweep.to_dict(), provenance=provenance())
    written = [write_json(out / "phase.json", result)]
    if not args.no_plot:
        from .plots import plot_w2_vs_lambda
        from .style import save_figure

        fig, data = plot_w2_vs_lambda(sweep, title=f"{schedule.name}, N = {schedule.steps}, M = {args.segments}, init = {model.init}, " + r"$\eta\tau$" + f" = {model.eta_tau:g}")
        paths = save_figure(fig, out / "phase_w2", data, config=sweep.config, close=True)
        written += list(paths.values())
    if args.json:
        emit_json(result)
        return 0
    print(f"phase sweep: {schedule.name}, N = {schedule.steps}, M = {args.segments}, solver = {args.solver}, target = {args.target}, "
          f"init = {model.init}, eta*tau = {model.eta_tau:g}, {len(lams)} lambda values in [{args.lam_min:g}, {args.lam_max:g}]")
    print(sweep.summary())
    st = sweep.stats
    print(f"\n{st['computed']} point(s) solved, {st['cached']} from cache; wrote {', '.join(os.fspath(p) for p in written)}")
    return 0


def run_demo_command(args: argparse.Namespace) -> int:
    """Run ``opmerge demo`` from parsed arguments; returns the exit status."""
    check_out_folder(args.out)
    from .demo import format_summary, run_demo

    summary = run_demo(args.out, bins=args.bins, workers=args.workers, executor=_executor(args), quick=args.quick,
                       progress=not args.no_progress)
    if args.json:
        emit_json(summary)
    else:
        print(format_summary(summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``main(["phase", ...])`` or ``main(["demo", ...])``; returns the exit status.

    Bad input raises :class:`~opmerge.errors.InputError` (the caller, ``opmerge.cli``, turns it into
    exit status 2) and argparse errors exit with status 2 themselves.
    """
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "phase":
        return run_phase(args)
    return run_demo_command(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_main(main))
