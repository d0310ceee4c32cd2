"""Figure: phase diagrams of the optimal plan family, (a) lambda x eta*tau at N = 16, (b) lambda x N.

vp-cosine, warm init, one student step; every cell is an exact solve and the transition curves
are located by bisection in every row. ``--quick``: coarse grids and N = 6.
"""

from __future__ import annotations

import sys

import numpy as np

import _common
from opmerge.analysis import sweep_lambda_eta, sweep_lambda_steps
from opmerge.analysis.plots import plot_phase_diagram
from opmerge.analysis.style import new_figure, save_figure
from opmerge import StudentModel


def main(argv=None) -> int:
    args = _common.parse_args(__doc__.splitlines()[0], argv)
    quick = args.quick
    steps = 6 if quick else _common.STEPS
    lams = np.geomspace(0.05, 100.0, 12 if quick else 64)
    etas = np.geomspace(0.05, 5.0, 3 if quick else 24)
    steps_list = [3, 4, 6] if quick else [2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32]
    common = dict(workers=args.workers, cache_dir=args.cache, progress=args.progress)
    eta_grid = sweep_lambda_eta(lams, etas, schedule=_common.SCHEDULE, steps=steps, model=StudentModel(eta_tau=_common.ETA_TAU), **common)
    steps_grid = sweep_lambda_steps(lams, steps_list, schedule=_common.SCHEDULE, model=StudentModel(eta_tau=_common.ETA_TAU), **common)
    fig, axes = new_figure(1, 2, width=11.0, height=3.8)
    _, data_eta = plot_phase_diagram(eta_grid, axes[0], title=f"(a) {_common.SCHEDULE}, N = {steps}")
    axes[0].get_legend().remove()
    _, data_steps = plot_phase_diagram(steps_grid, axes[1], title=r"(b) $\eta\tau$" + f" = {_common.ETA_TAU}")
    fig.tight_layout()
    data = {"lambda_eta_tau": data_eta, "lambda_steps": data_steps}
    config = {"lambda_eta_tau": eta_grid.config, "lambda_steps": steps_grid.config}
    _common.report(save_figure(fig, args.out / "fig_phase_diagram", data, config=config, close=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
