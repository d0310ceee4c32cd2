"""Figure: W2 of every canonical plan and of the optimal plan against the data variance lambda.

vp-cosine, N = 16, warm init, eta*tau = 0.5, one student step; the transitions (bisection to a
relative 1e-4) are drawn as vertical lines. ``--quick``: N = 6, 16 values of lambda.
"""

from __future__ import annotations

import sys

import numpy as np

import _common
from opmerge.analysis import sweep_lambda
from opmerge.analysis.plots import plot_w2_vs_lambda
from opmerge.analysis.style import save_figure
from opmerge import StudentModel


def main(argv=None) -> int:
    args = _common.parse_args(__doc__.splitlines()[0], argv)
    steps = 6 if args.quick else _common.STEPS
    lams = np.geomspace(0.05, 100.0, 16 if args.quick else 160)
    sweep = sweep_lambda(
        lams, schedule=_common.SCHEDULE, steps=steps, model=StudentModel(eta_tau=_common.ETA_TAU), tol=1e-4,
        workers=args.workers, cache_dir=args.cache, progress=args.progress,
    )
    fig, data = plot_w2_vs_lambda(sweep, title=f"{_common.SCHEDULE}, N = {steps}, warm start, " + r"$\eta\tau$" + f" = {_common.ETA_TAU}")
    _common.report(save_figure(fig, args.out / "fig_w2_vs_lambda", data, config=sweep.config, close=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
