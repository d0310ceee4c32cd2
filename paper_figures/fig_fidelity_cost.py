"""Figure: the fidelity-cost front, the smallest W2 reachable within a distillation budget.

vp-cosine, N = 16 (``--quick``: N = 6), warm init, eta*tau = 0.5, one student step, at a BOOT-side,
a mixed and a vanilla-side data variance (columns), for the two costs of
``opmerge.solvers.front`` (rows): the number of merge nodes (distillation runs) and the peak number
of teacher evaluations per training target. Each point is the best plan within that budget,
filled when proven optimal, labelled with its family.
"""

from __future__ import annotations

import sys

import _common
from opmerge.analysis.plots import plot_fidelity_cost_front
from opmerge.analysis.style import new_figure, save_figure
from opmerge import Problem, StudentModel, make_schedule
from opmerge.solvers.front import fidelity_cost_front

COSTS = {"merges": "distillation runs (merge nodes)", "teacher_evals": "teacher evaluations per target (peak)"}
LAMS = (0.3, 1.5, 10.0)


def main(argv=None) -> int:
    args = _common.parse_args(__doc__.splitlines()[0], argv)
    steps = 6 if args.quick else _common.STEPS
    schedule = make_schedule(_common.SCHEDULE, steps)
    model = StudentModel(eta_tau=_common.ETA_TAU)
    fig, axes = new_figure(len(COSTS), len(LAMS), width=4.4 * len(LAMS), height=3.2 * len(COSTS), squeeze=False)
    data = {}
    for r, (cost, label) in enumerate(COSTS.items()):
        for c, lam in enumerate(LAMS):
            front = fidelity_cost_front(Problem(schedule, lam, model=model), cost)
            _, panel = plot_fidelity_cost_front(front, axes[r][c], cost_label=label, title=rf"$\lambda$ = {lam:g}, N = {steps}")
            data[f"{cost}, lam={lam:g}"] = panel
    fig.tight_layout()
    config = {"schedule": schedule.to_dict(), "model": model.to_dict(), "lams": list(LAMS), "costs": list(COSTS)}
    _common.report(save_figure(fig, args.out / "fig_fidelity_cost", data, config=config, close=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
