"""Benchmark of certified joint plans at image-latent scale: the grouped Pareto DP against one slot per direction.

Usage::

    python benchmarks/bench_joint_scale.py [--quick] [--budget SECONDS] [--json FILE]

Measures, in one run, ``solve_joint(problem, time_budget=B, groups=...)`` at ``N = 64`` steps
(vp-cosine, warm start, flow, ``eta_tau = 0.5``, ``M = 1``) on four spectra of ``d`` directions:

* ``power-1``: :math:`\\lambda_i = i^{-1}` (a slowly decaying power law);
* ``uniform``: :math:`\\lambda_i` drawn uniformly in ``[1e-3, 10]`` (seed 0);
* ``geometric``: :math:`\\lambda_i` log-spaced over ``[1e-3, 10]``;
* ``power-2``: :math:`\\lambda_i = 10\\, i^{-2}` (a steep power law: a few large, thousands of tiny);

for ``d = 3072`` (CIFAR-10 pixels) with ``groups="auto"`` and ``groups=None`` (the ungrouped DP),
and ``d = 16384`` (a Stable Diffusion latent) with ``groups="auto"`` only (ungrouped, its tables
alone need about 9 GiB). Each case runs in its own process after a JIT warm-up, so the peak
resident memory (``ru_maxrss``) is that case's. Reported per case: wall seconds of the call,
``exact`` (certified within ``tol``), the relative gap ``(w2 - lower_bound) / w2``, candidates and
peak MiB. Targets (printed): certified, under 5 s for ``d = 3072`` and under 30 s for
``d = 16384``, under 2 GiB. ``--quick`` runs ``d = 3072`` with ``groups="auto"`` only.
Nothing here is asserted; no test times anything.
"""

from __future__ import annotations

import os

os.environ["NUMBA_NUM_THREADS"] = "1"  # one core: must be set before numba is imported

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

SPECTRA = ("power-1", "uniform", "geometric", "power-2")
STEPS = 64


def spectrum(name: str, d: int):
    import numpy as np

    i = np.arange(1, d + 1, dtype=float)
    if name == "power-1":
        return i**-1.0
    if name == "power-2":
        return 10.0 * i**-2.0
    if name == "uniform":
        return np.random.default_rng(0).uniform(1e-3, 10.0, d)
    if name == "geometric":
        return np.geomspace(1e-3, 10.0, d)
    raise ValueError(f"unknown spectrum {name!r}")


def run_case(name: str, d: int, groups: str, budget: float) -> dict:
    """One case, in this process (called in a child process by :func:`main`)."""
    import resource
    import time

    from opmerge.objective import Problem
    from opmerge.schedules import make_schedule
    from opmerge.solvers import solve_joint

    warm = Problem(make_schedule("vp-cosine", 8), spectrum(name, 40))
    solve_joint(warm, groups=None)
    solve_joint(warm, groups=4)
    problem = Problem(make_schedule("vp-cosine", STEPS), spectrum(name, d))
    began = time.perf_counter()
    solution = solve_joint(problem, time_budget=budget, groups=None if groups == "none" else "auto")
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"spectrum": name, "d": d, "steps": STEPS, "groups": groups, "seconds": seconds, "exact": bool(solution.exact),
            "w2": solution.w2, "lower_bound": solution.lower_bound,
            "gap": (solution.w2 - solution.lower_bound) / solution.w2 if solution.w2 > 0 else 0.0,
            "candidates": int(solution.nodes), "peak_mib": peak}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", type=float, default=60.0, help="time_budget of each call (seconds)")
    parser.add_argument("--json", help="write the measurements here")
    parser.add_argument("--case", nargs=4, metavar=("SPECTRUM", "D", "GROUPS", "BUDGET"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        name, d, groups, budget = args.case
        print(json.dumps(run_case(name, int(d), groups, float(budget))))
        return 0
    cases = [(name, 3072, "auto") for name in SPECTRA]
    if not args.quick:
        cases += [(name, 3072, "none") for name in SPECTRA] + [(name, 16384, "auto") for name in SPECTRA]
    rows = []
    print(f"certified joint plans, N = {STEPS}, time_budget = {args.budget:g} s, one process per case")
    print(f"{'spectrum':>10} {'d':>6} {'groups':>6} {'seconds':>8} {'exact':>6} {'gap':>9} {'candidates':>10} {'peak MiB':>9}  target")
    for name, d, groups in cases:
        out = subprocess.run([sys.executable, __file__, "--case", name, str(d), groups, str(args.budget)],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        limit = 5.0 if d == 3072 else 30.0
        met = row["exact"] and row["seconds"] < limit and row["peak_mib"] < 2048
        print(f"{name:>10} {d:>6} {groups:>6} {row['seconds']:8.2f} {str(row['exact']):>6} {row['gap']:9.2e} "
              f"{row['candidates']:>10} {row['peak_mib']:9.0f}  {'met' if met else 'missed'} (< {limit:g} s, < 2 GiB)",
              flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"budget": args.budget, "steps": STEPS, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
