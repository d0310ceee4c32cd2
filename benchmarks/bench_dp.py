"""Benchmark of the interval DP and the certified branch and bound.

Usage::

    python benchmarks/bench_dp.py [--quick]

Measures, in one run and after a JIT warm-up, on one core (``NUMBA_NUM_THREADS=1`` is set before
Numba is imported):

1. the interval DP (``range_dp``, one direction, vp-cosine, lam = 0.5, M = 1) for N = 64, 256, 1024:
   median wall time and **relaxations per second**. A relaxation is one corner evaluation of a
   split: for every interval ``j -> i`` and every split ``m`` (``j - i - 1`` of them) the DP
   evaluates the 4 corners of ``(c1, R)`` for the node value and for the forest product, so
   ``relaxations = 8 * sum_{i<j} (j - i - 1) = 8 * C(N + 1, 3)``;
2. the speed-up of the Numba kernel over the plain-Python reference ``range_dp_reference`` at
   N = 128 (both timed here, median of several repeats);
3. ``solve(problem, time_budget=10)`` for N in {8, 16, 24, 32} on a straddling problem (rf,
   lam = 1.0: the goal lies inside the achievable range, the search decides) and a non-straddling one
   (vp-cosine, lam = 0.5: the optimum is an extreme of the range): time, exact flag, certified gap.

4. how closely a short ``time_budget`` is kept where the unbudgeted call runs for many seconds:
   the range tables at vp-cosine N = 2000 (a stop during the tables) and the search at rf, lam = 1,
   N = 32, M = 4 (a stop during the branch and bound): median wall time over repeats, and its
   excess over the budget.

Targets are printed next to the measurements: N = 1024 under 2 s; >= 100x over plain Python;
exact for N <= 32 within 10 s; a budget kept within 10 % plus 0.3 s (the canonical seed plans,
which every answer needs, are evaluated before the budget can act). ``--quick`` uses fewer repeats, N <= 256 for the DP and N <= 16
for the search (a smoke run, not the reported numbers). Nothing here is asserted; no test times
anything.
"""

from __future__ import annotations

import os

os.environ["NUMBA_NUM_THREADS"] = "1"  # one core: must be set before numba is imported

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numba  # noqa: E402
import numpy as np  # noqa: E402

from opmerge.model import StudentModel  # noqa: E402
from opmerge.objective import Problem  # noqa: E402
from opmerge.schedules import make_schedule  # noqa: E402
from opmerge.solvers import achievable_range, solve  # noqa: E402
from opmerge.solvers._kernels import range_dp  # noqa: E402
from opmerge.solvers._reference import range_dp_reference  # noqa: E402

INIT_WARM = 0
DP_TARGET_SECONDS = 2.0  # N = 1024
SPEEDUP_TARGET = 100.0
SOLVE_TIME_BUDGET = 10.0


def dp_inputs(n_steps: int, lam: float = 0.5, name: str = "vp-cosine"):
    """Contiguous float64 arrays of one direction, as the solver passes them to the kernel."""
    problem = Problem(make_schedule(name, n_steps), lam, model=StudentModel())
    return (
        np.ascontiguousarray(problem.step_values[0]),
        np.ascontiguousarray(problem.retention[0]),
        INIT_WARM,
        np.zeros((1, 1)),
        1,
    )


def relaxations(n_steps: int) -> int:
    """Corner evaluations of the DP for M = 1: 8 * sum over intervals of (j - i - 1) = 8 C(N + 1, 3)."""
    return 8 * math.comb(n_steps + 1, 3)


def median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def rule(width: int = 96) -> str:
    return "-" * width


def bench_dp(sizes, repeats):
    print("\n1. Interval DP (range_dp, one direction, vp-cosine, lam = 0.5, M = 1, one core)")
    print("   relaxation = one corner evaluation; per interval j -> i: (j - i - 1) splits x 4 corners x 2 (node + forest)")
    print(rule())
    print(f"   {'N':>6} {'repeats':>7} {'median s':>11} {'min s':>11} {'relaxations':>14} {'relax/s':>11}   target")
    rows = []
    for n in sizes:
        args = dp_inputs(n)
        reps = repeats if n <= 256 else max(1, repeats // 2)
        med, times = median_time(lambda: range_dp(*args), reps)
        count = relaxations(n)
        target = f"< {DP_TARGET_SECONDS:g} s: {'MET' if med < DP_TARGET_SECONDS else 'MISSED'}" if n == 1024 else ""
        print(f"   {n:>6} {reps:>7} {med:>11.4g} {min(times):>11.4g} {count:>14,} {count / med:>11.3g}   {target}")
        rows.append((n, med, count / med))
    if len(rows) >= 2:
        (n0, t0, _), (n1, t1, _) = rows[0], rows[-1]
        print(f"   time ratio N={n1} / N={n0}: {t1 / t0:.4g} (cubic scaling predicts {(n1 / n0) ** 3:.4g})")
    return rows


def bench_speedup(n: int, repeats_kernel: int, repeats_python: int):
    print(f"\n2. Numba kernel vs plain-Python reference (range_dp_reference), N = {n}, same inputs, same run")
    print(rule())
    args = dp_inputs(n)
    med_kernel, _ = median_time(lambda: range_dp(*args), repeats_kernel)
    med_python, _ = median_time(lambda: range_dp_reference(*args), repeats_python)
    kernel_lo = float(range_dp(*args)[4][1, n])
    python_lo = float(range_dp_reference(*args)[4][1, n])
    ratio = med_python / med_kernel
    print(f"   kernel median {med_kernel:.4g} s ({repeats_kernel} repeats); python median {med_python:.4g} s ({repeats_python} repeats)")
    print(f"   speed-up (median ratio) {ratio:.4g}x   target >= {SPEEDUP_TARGET:g}x: {'MET' if ratio >= SPEEDUP_TARGET else 'MISSED'}")
    print(f"   same answer: S_min kernel {kernel_lo!r} vs python {python_lo!r} (relative difference {abs(kernel_lo - python_lo) / abs(python_lo):.2g})")
    return ratio


def bench_solve(sizes):
    print(f"\n3. Exact optimum: solve(problem, time_budget={SOLVE_TIME_BUDGET:g}), one direction, warm init, eta_tau = 0.5, M = 1")
    print(rule())
    print(f"   {'problem':<22} {'N':>3} {'straddles':>9} {'seconds':>9} {'exact':>6} {'gap':>10} {'tol':>9} {'nodes':>9} {'method':>8}   plan")
    rows = []
    for label, name, lam in (("rf, lam = 1.0", "rf", 1.0), ("vp-cosine, lam = 0.5", "vp-cosine", 0.5)):
        for n in sizes:
            problem = Problem(make_schedule(name, n), lam, model=StudentModel(eta_tau=0.5))
            lo, hi = achievable_range(problem)
            straddles = bool(lo[0] < problem.goal[0] < hi[0])
            start = time.perf_counter()
            sol = solve(problem, time_budget=SOLVE_TIME_BUDGET)
            seconds = time.perf_counter() - start
            plan = str(sol.plan)
            plan = plan if len(plan) <= 40 else plan[:37] + "..."
            print(
                f"   {label:<22} {n:>3} {str(straddles):>9} {seconds:>9.3g} {str(sol.exact):>6} {sol.gap:>10.3g} "
                f"{sol.tol:>9.2g} {sol.nodes:>9,} {sol.method:>8}   {plan}"
            )
            rows.append((label, n, straddles, seconds, sol.exact, sol.gap))
    met = all(exact and seconds <= SOLVE_TIME_BUDGET + 0.5 for _, n, _, seconds, exact, _ in rows if n <= 32)
    print(f"   target: exact for N <= 32 within {SOLVE_TIME_BUDGET:g} s: {'MET' if met else 'MISSED'} "
          f"({sum(r[4] for r in rows)}/{len(rows)} exact)")
    return rows


def bench_budget(budgets, repeats):
    print("\n4. Time budget kept: solve(problem, time_budget=b), median wall time of the call")
    print(rule())
    problems = (
        ("vp-cosine N = 2000 (tables)", Problem(make_schedule("vp-cosine", 2000), 0.5)),
        ("rf N = 32, M = 4 (search)", Problem(make_schedule("rf", 32), 1.0, segments=4)),
    )
    met = True
    for label, problem in problems:
        for budget in budgets:
            walls = []
            for _ in range(repeats):
                start = time.perf_counter()
                sol = solve(problem, time_budget=budget)
                walls.append(time.perf_counter() - start)
            wall = statistics.median(walls)
            met &= wall <= 1.1 * budget + 0.3
            print(f"   {label:<30} budget {budget:>4.2g} s   wall {wall:>6.3g} s   excess {wall - budget:>+7.3g} s   "
                  f"method {sol.method}, stopped {sol.stopped}")
    print(f"   target: wall <= 1.1 * budget + 0.3 s: {'MET' if met else 'MISSED'}")
    return met


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer repeats, smaller sizes")
    args = parser.parse_args(argv)
    quick = args.quick

    print("opmerge interval-DP benchmark" + (" (--quick: smoke run, not the reported numbers)" if quick else ""))
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
          f"NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, cpu: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical cores visible")
    start = time.perf_counter()
    range_dp(*dp_inputs(8))  # JIT warm-up (or cache load)
    solve(Problem(make_schedule("rf", 6), 1.0))  # warm-up of every solver path
    print(f"JIT warm-up: {time.perf_counter() - start:.3g} s")

    bench_dp((64, 256) if quick else (64, 256, 1024), repeats=3 if quick else 7)
    bench_speedup(128, repeats_kernel=5 if quick else 15, repeats_python=1 if quick else 3)
    bench_solve((8, 16) if quick else (8, 16, 24, 32))
    bench_budget((0.5,) if quick else (0.5, 1.0), repeats=1 if quick else 3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
