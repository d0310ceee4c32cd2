"""Figure: the digits spectrum (8x8 digits, 64 directions) with each direction's optimal family.

Every eigenvalue is solved as its own one-direction problem (vp-cosine, N = 16, warm init,
eta*tau = 0.5, one student step) and coloured by the optimal family; the thresholds of a
one-direction lambda sweep over the same range are drawn as lines. ``--quick``: N = 6, coarse sweep.
"""

from __future__ import annotations

import sys

import numpy as np

import _common
from opmerge.analysis import direction_families, sweep_lambda
from opmerge.analysis.plots import plot_spectrum_families
from opmerge.analysis.style import save_figure
from opmerge import StudentModel, make_schedule
from opmerge.spectra import digits_spectrum


def main(argv=None) -> int:
    args = _common.parse_args(__doc__.splitlines()[0], argv)
    steps = 6 if args.quick else _common.STEPS
    schedule = make_schedule(_common.SCHEDULE, steps)
    model = StudentModel(eta_tau=_common.ETA_TAU)
    spectrum = digits_spectrum()
    lam = np.asarray(spectrum.lam, dtype=np.float64)
    families, records = direction_families(lam, schedule=schedule, model=model, workers=args.workers, cache_dir=args.cache,
                                           progress=args.progress)
    w2_of = {float(x): r["w2"] for x, r in zip(lam, records)}
    positive = lam[lam > 0]
    lam_lo = min(0.05, float(positive.min())) if positive.size else 0.05
    lam_hi = max(100.0, 1.5 * float(lam.max()))
    sweep = sweep_lambda(
        np.geomspace(max(lam_lo, 1e-6), lam_hi, 16 if args.quick else 80), schedule=schedule, model=model,
        workers=args.workers, cache_dir=args.cache, progress=args.progress,
    )
    fig, data = plot_spectrum_families(
        lam, families, thresholds=sweep.thresholds, name=getattr(spectrum, "name", "digits"),
        title=f"digits spectrum, {_common.SCHEDULE} N = {steps}: optimal family per direction",
    )
    data["w2_optimal"] = [w2_of[float(x)] for x in data["lam"]]
    config = dict(sweep.config, spectrum=getattr(spectrum, "name", "digits"), directions=int(lam.size))
    _common.report(save_figure(fig, args.out / "fig_digits_spectrum", data, config=config, close=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
