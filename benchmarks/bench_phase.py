"""Benchmark of the phase sweep (serial vs parallel) and of the digits joint plan.

Usage::

    python benchmarks/bench_phase.py [--quick] [--workers W] [--bins B] [--time-budget S]

1. A 200-point log-spaced lambda sweep (0.05 .. 100) at N = 64, vp-cosine, warm start,
   eta*tau = 0.5, thresholds located by bisection, no cache: once in-process (``workers=1``) and
   once with a process pool (``workers=W``, default all cores; the in-process shortcut for cheap
   sweeps is switched off), in the same run, after a JIT warm-up. Prints both times, the speed-up
   and whether the two results are identical.
2. The joint optimal plan (M = 1) of the digits spectrum (8x8 digits, 64 directions) at
   N = 16, 32, 64, unbinned and binned to ``B`` bins (default 16): solve time, exact flag and the
   certified gap ``w2 - lower_bound``.

Targets printed beside: sweep < 5 s; digits joint plan at N = 32 with certificate < 30 s.
``--quick``: 40 points at N = 16 and the digits plan at N = 16 only (a smoke run, not the
reported numbers). Nothing is asserted. Needs the package installed (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

import opmerge.analysis.runner as runner
from opmerge import Problem, StudentModel, make_schedule, solve
from opmerge.analysis import family_of_solution, sweep_lambda


def bench_sweep(points: int, steps: int, workers: int) -> None:
    lams = np.geomspace(0.05, 100.0, points)
    kwargs = dict(schedule="vp-cosine", steps=steps, model=StudentModel(eta_tau=0.5), progress=False, cache_dir=None)
    sweep_lambda(lams[:3], **kwargs, workers=1)  # JIT warm-up
    t0 = time.perf_counter()
    serial = sweep_lambda(lams, **kwargs, workers=1)
    t_serial = time.perf_counter() - t0
    saved = runner.PARALLEL_MIN_SECONDS
    runner.PARALLEL_MIN_SECONDS = 0.0
    try:
        t0 = time.perf_counter()
        parallel = sweep_lambda(lams, **kwargs, workers=workers)
        t_parallel = time.perf_counter() - t0
    finally:
        runner.PARALLEL_MIN_SECONDS = saved
    same = serial.to_dict() == parallel.to_dict()
    print(f"lambda sweep: {points} points, N = {steps}, thresholds: {[(round(t['lam'], 5), t['from'], t['to']) for t in serial.thresholds]}")
    print(f"  serial (1 process)        {t_serial:8.3f} s   target < 5 s: {'ok' if t_serial < 5 else 'MISSED'}")
    print(f"  parallel ({workers} workers)     {t_parallel:8.3f} s   target < 5 s: {'ok' if t_parallel < 5 else 'MISSED'}")
    print(f"  speed-up {t_serial / t_parallel:.2f}x, identical results: {same}, all exact: {bool(serial.exact.all())}")


def bench_digits(steps_list: list[int], bins: int, time_budget: float) -> None:
    from opmerge.spectra import bin_spectrum, digits_spectrum

    spectrum = digits_spectrum()
    binned = bin_spectrum(spectrum, bins)
    variants = [("unbinned", spectrum, None), (f"binned {bins}", binned.spectrum, binned.error)]
    model = StudentModel(eta_tau=0.5)
    print(f"digits joint plan (M = 1): {len(spectrum.lam)} directions, time budget {time_budget:g} s")
    print(f"  {'N':>3}  {'spectrum':<12} {'dirs':>4}  {'seconds':>8}  {'exact':>5}  {'gap':>9}  {'W2':>10}  family   target")
    for steps in steps_list:
        schedule = make_schedule("vp-cosine", steps)
        for label, spec, error in variants:
            problem = Problem(schedule, np.asarray(spec.lam), weights=np.asarray(spec.weights), model=model)
            t0 = time.perf_counter()
            solution = solve(problem, time_budget=time_budget)
            seconds = time.perf_counter() - t0
            target = ""
            if steps == 32:
                target = "< 30 s with certificate: " + ("ok" if solution.exact and seconds < 30 else "MISSED")
            extra = f" (bin error {error:.3g})" if isinstance(error, float) else ""
            print(
                f"  {steps:>3}  {label:<12} {problem.dim:>4}  {seconds:8.3f}  {str(solution.exact):>5}  {solution.gap:9.2e}  "
                f"{solution.w2:10.5f}  {family_of_solution(solution):<8} {target}{extra}"
            )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--bins", type=int, default=16)
    parser.add_argument("--time-budget", type=float, default=120.0)
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}")
    if hasattr(os, "getloadavg"):  # other jobs on the machine make the parallel timing meaningless; say so
        print("load average before the run: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    if args.quick:
        bench_sweep(40, 16, args.workers)
        bench_digits([16], args.bins, min(args.time_budget, 30.0))
    else:
        bench_sweep(200, 64, args.workers)
        bench_digits([16, 32, 64], args.bins, args.time_budget)
    return 0


if __name__ == "__main__":
    sys.exit(main())
