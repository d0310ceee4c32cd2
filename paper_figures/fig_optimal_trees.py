"""Figure: the optimal merge trees at chosen data variances (BOOT, mixed, vanilla) and for a 2-step student.

vp-cosine, N = 16 (``--quick``: N = 8), warm init, eta*tau = 0.5. Each panel: the exact optimum,
its family (by W2 value) and W2.
"""

from __future__ import annotations

import sys

import _common
from opmerge.analysis import family_of_solution
from opmerge.analysis.plots import plot_plan_trees
from opmerge.analysis.style import save_figure
from opmerge import Problem, StudentModel, make_schedule, solve

CASES = [(0.3, 1), (1.2, 1), (1.5, 1), (10.0, 1), (1.2, 2), (1.5, 4)]


def main(argv=None) -> int:
    args = _common.parse_args(__doc__.splitlines()[0], argv)
    steps = 8 if args.quick else _common.STEPS
    schedule = make_schedule(_common.SCHEDULE, steps)
    model = StudentModel(eta_tau=_common.ETA_TAU)
    entries = []
    for lam, segments in CASES:
        solution = solve(Problem(schedule, lam, model=model, segments=segments))
        family = family_of_solution(solution)
        exact = "" if solution.exact else " (not proven)"
        entries.append(
            {
                "plan": solution.plan,
                "title": rf"$\lambda$ = {lam:g}, M = {segments}: {family}, $W_2$ = {solution.w2:.3g}{exact}",
                "lam": lam,
                "segments": segments,
                "w2": solution.w2,
                "lower_bound": solution.lower_bound,
                "exact": solution.exact,
                "optimal_family": family,
            }
        )
    fig, data = plot_plan_trees(entries, ncols=2, panel_height=2.2)
    config = {"schedule": schedule.to_dict(), "model": model.to_dict(), "cases": CASES}
    _common.report(save_figure(fig, args.out / "fig_optimal_trees", data, config=config, close=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
