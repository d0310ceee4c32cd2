r"""The built-in demo: optimal merge plans for the digits spectrum, compared with the canonical recipes.

:func:`run_demo` (``opmerge demo``) does, for a 16-step vp-cosine teacher and the default student
model (warm start, :math:`\eta\tau = 0.5`):

1. the **spectrum**: the covariance of the 8x8 digits (64 directions,
   :func:`opmerge.spectra.digits_spectrum`, package data: no torch, no scikit-learn), binned to
   ``bins`` directions for the joint solves when ``bins`` is given (default: :data:`DEFAULT_BINS`;
   ``bins=0`` solves the full spectrum);
2. the **joint optimal plan** of all directions for a 1-, 2- and 4-step student, with its
   certificate, its W2 on the full spectrum, and the W2 of the canonical plans (vanilla, BOOT, CD,
   PD) for comparison;
3. the **per-direction families**: every distinct eigenvalue solved as its own one-direction
   problem, and a :math:`\lambda` sweep with the thresholds located by bisection;
4. the **phase diagram** :math:`\lambda \times \eta\tau`.

Everything is written to ``out_dir``: ``demo.json`` (all numbers and the configuration), the
figures ``demo_spectrum``, ``demo_joint_plans``, ``demo_comparison``, ``demo_w2_vs_lambda`` and
``demo_phase_diagram`` (PDF + PNG + JSON each) and the point cache ``cache/``; ``demo.json`` and
every figure's JSON carry a ``provenance`` block.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from opmerge import Problem, StudentModel, evaluate_plan, make_schedule, solve
from opmerge.errors import InputError
from opmerge.io import provenance, to_jsonable, write_json
from opmerge.parallel import ExecutorConfig

from .classify import canonical_w2, classify_plan, describe_plan, family_of_solution
from .sweeps import direction_families, sweep_lambda, sweep_lambda_eta

__all__ = ["DEFAULT_BINS", "DEMO_STEPS", "DEMO_SEGMENTS", "run_demo", "format_summary"]

#: teacher steps of the demo
DEMO_STEPS = 16
#: student step counts of the joint plans
DEMO_SEGMENTS = (1, 2, 4)
#: default number of spectrum bins for the joint solves (``None``: the full spectrum)
DEFAULT_BINS: int | None = None
#: solver time budget per joint plan (seconds)
JOINT_TIME_BUDGET = 20.0
#: solver budgets of each direction solved alone (nodes, seconds)
DIRECTION_NODE_BUDGET = 2_000_000
DIRECTION_TIME_BUDGET = 10.0


def _spectrum_arrays(spectrum) -> tuple[np.ndarray, np.ndarray]:
    lam = np.asarray(spectrum.lam, dtype=np.float64)
    weights = getattr(spectrum, "weights", None)
    weights = np.ones_like(lam) if weights is None else np.asarray(weights, dtype=np.float64)
    return lam, weights


def run_demo(
    out_dir: str | os.PathLike = "opmerge-results",
    *,
    bins: int | None = DEFAULT_BINS,
    workers: int | None = None,
    executor: ExecutorConfig | str | None = None,
    quick: bool = False,
    progress: bool = True,
    spectrum=None,
) -> dict:
    r"""Run the demo and write its results to ``out_dir``; returns the summary dict (also ``demo.json``).

    Joint plan of a spectrum :math:`(\lambda_i, \omega_i)`: the plan minimising
    :math:`W_2^2 = \sum_i \omega_i \|v_{N,i}\|^2 (S_i - T_i)^2` over all plans with ``M`` segments.

    Parameters
    ----------
    out_dir : path-like
        Output folder (created).
    bins : int or None
        Bin the spectrum to this many directions for the joint solves (:func:`opmerge.spectra.bin_spectrum`);
        ``None`` or 0: the full spectrum.
    workers : int, optional
        Worker processes for the sweeps.
    executor : ExecutorConfig or str, optional
        The sweeps' engine (:mod:`opmerge.parallel`; default ``process``).
    quick : bool
        Small grids and a 6-step teacher (for tests).
    progress : bool
        Progress bars.
    spectrum : Spectrum, optional
        Use this spectrum instead of the digits one.

    Returns
    -------
    dict
        ``config``, ``spectrum``, ``joint`` (one entry per ``M``), ``directions``, ``sweep``,
        ``phase``, ``files``, ``seconds``, ``provenance``.
    """
    from opmerge.spectra import bin_spectrum, digits_spectrum

    if bins is not None and not (isinstance(bins, int) and bins >= 0):
        raise InputError(f"bins must be None or an int >= 0, got {bins!r}")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    steps = 6 if quick else DEMO_STEPS
    schedule = make_schedule("vp-cosine", steps)
    model = StudentModel(eta_tau=0.5)
    full = digits_spectrum() if spectrum is None else spectrum
    full_lam, full_w = _spectrum_arrays(full)
    binned = None
    if bins:
        binned = bin_spectrum(full, bins)
        solve_lam, solve_w = _spectrum_arrays(binned.spectrum)
    else:
        solve_lam, solve_w = full_lam, full_w
    spectrum_info = {
        "name": getattr(full, "name", "spectrum"),
        "directions": int(full_lam.size),
        "solved_directions": int(solve_lam.size),
        "bins": int(bins) if bins else None,
        "bin_error": None if binned is None else dict(binned.error),
        "lam": full_lam,
        "weights": full_w,
        "solved_lam": solve_lam,
        "solved_weights": solve_w,
    }

    # 2. joint plans
    segments_list = [m for m in DEMO_SEGMENTS if m <= steps]
    joint = []
    full_problem_1 = None
    for m in segments_list:
        problem = Problem(schedule, solve_lam, weights=solve_w, model=model, segments=m)
        solution = solve(problem, time_budget=JOINT_TIME_BUDGET)
        canonical = canonical_w2(problem)
        full_problem = Problem(schedule, full_lam, weights=full_w, model=model, segments=m)
        if m == 1:
            full_problem_1 = full_problem
        joint.append(
            {
                "segments": m,
                "plan": str(solution.plan),
                "description": describe_plan(solution.plan),
                "family": family_of_solution(solution, canonical),
                "shape": classify_plan(solution.plan).to_dict(),
                "w2": solution.w2,
                "lower_bound": solution.lower_bound,
                "exact": solution.exact,
                "seconds": solution.elapsed,
                "canonical": canonical,
                "w2_full_spectrum": evaluate_plan(full_problem, solution.plan).w2,
                "canonical_full_spectrum": canonical_w2(full_problem),
            }
        )
    assert full_problem_1 is not None

    # 3. per-direction families and the lambda sweep
    alone, _ = direction_families(full_lam, schedule=schedule, model=model, workers=workers, executor=executor, cache_dir=cache, progress=progress,
                                  node_budget=DIRECTION_NODE_BUDGET, time_budget=DIRECTION_TIME_BUDGET)
    counts = {f: int(sum(w for w, g in zip(full_w, alone) if g == f)) for f in dict.fromkeys(alone)}
    positive = full_lam[full_lam > 0]
    lam_lo = max(min(0.05, float(positive.min()) if positive.size else 0.05), 1e-4)
    lam_hi = max(100.0, float(full_lam.max()) * 1.5)
    sweep = sweep_lambda(
        np.geomspace(lam_lo, lam_hi, 16 if quick else 60), schedule=schedule, model=model, workers=workers, executor=executor, cache_dir=cache, progress=progress
    )

    # 4. phase diagram
    grid = sweep_lambda_eta(
        np.geomspace(0.05, 100.0, 10 if quick else 40),
        np.geomspace(0.05, 5.0, 3 if quick else 12),
        schedule=schedule,
        model=model,
        workers=workers, executor=executor,
        cache_dir=cache,
        progress=progress,
    )

    files = _figures(out, spectrum_info, alone, sweep, grid, joint, steps)
    summary = {
        "config": {
            "schedule": schedule.to_dict(),
            "model": model.to_dict(),
            "segments": segments_list,
            "joint_time_budget": JOINT_TIME_BUDGET,
            "quick": bool(quick),
        },
        "spectrum": spectrum_info,
        "joint": joint,
        "directions": {"family": alone, "counts": counts},
        "sweep": {"thresholds": list(sweep.thresholds), "ranges": sweep.family_ranges()},
        "phase": {"x": grid.x, "y": grid.y, "family": [list(r) for r in grid.family], "thresholds": [list(r) for r in grid.thresholds]},
        "files": [os.fspath(p) for p in files],
        "seconds": time.perf_counter() - start,
    }
    summary = to_jsonable(summary, strict=False)
    summary["provenance"] = provenance()
    write_json(out / "demo.json", summary)
    summary["files"].append(os.fspath(out / "demo.json"))
    return summary


def _figures(out: Path, spectrum_info: dict, alone, sweep, grid, joint, steps) -> list[Path]:
    from .plots import plot_canonical_comparison, plot_phase_diagram, plot_plan_trees, plot_spectrum_families, plot_w2_vs_lambda
    from .style import save_figure

    written: list[Path] = []

    def save(fig, stem, data, config):
        written.extend(save_figure(fig, out / stem, data, config=config, close=True).values())

    fig, data = plot_spectrum_families(
        spectrum_info["lam"], alone, thresholds=sweep.thresholds, name=spectrum_info["name"],
        title=f"{spectrum_info['name']} spectrum: optimal family of each direction alone (N = {steps})",
    )
    save(fig, "demo_spectrum", data, sweep.config)
    entries = [
        {"plan": j["plan"], "title": f"M = {j['segments']}: {j['family']}, $W_2$ = {j['w2']:.4g}" + ("" if j["exact"] else " (not proven)"), "segments": j["segments"], "w2": j["w2"]}
        for j in joint
    ]
    fig, data = plot_plan_trees(entries, ncols=1, panel_height=2.3, suptitle=f"joint optimal plans, {spectrum_info['solved_directions']} directions")
    save(fig, "demo_joint_plans", data, sweep.config)
    rows = [{"label": f"M = {j['segments']}", "canonical": j["canonical"], "optimal": j["w2"], "family": j["family"]} for j in joint]
    fig, data = plot_canonical_comparison(rows, title="joint plan vs canonical plans")
    save(fig, "demo_comparison", data, sweep.config)
    fig, data = plot_w2_vs_lambda(sweep, title=f"one direction, vp-cosine, N = {steps}")
    save(fig, "demo_w2_vs_lambda", data, sweep.config)
    fig, data = plot_phase_diagram(grid, title=f"one direction, vp-cosine, N = {steps}")
    save(fig, "demo_phase_diagram", data, grid.config)
    return written


def format_summary(summary: dict) -> str:
    """Terminal table of a :func:`run_demo` summary."""
    cfg, spec = summary["config"], summary["spectrum"]
    model = cfg["model"]
    binned = ""
    if spec["bins"]:
        err = spec["bin_error"] or {}
        binned = (f", binned to {spec['solved_directions']} directions for the joint solves; largest relative eigenvalue error "
                  f"{err.get('max_relative_lam_error', float('nan')):.3g}")
    if not spec["bins"]:
        binned = ", full spectrum: the joint solves need no binning"
    lines = [
        f"opmerge demo: {spec['name']} spectrum ({spec['directions']} directions{binned})",
        f"teacher: {cfg['schedule']['name']}, N = {cfg['schedule']['steps']}; student: init = {model['init']}, eta*tau = {model['eta_tau']:g}",
        "",
        f"{'M':>2}  {'optimal W2':>11}  {'proven':>6}  {'family':<8} " + " ".join(f"{k:>9}" for k in ("vanilla", "boot", "cd", "pd")) + "   optimal plan (segments)",
    ]
    for j in summary["joint"]:
        plan = j["description"]
        lines.append(
            f"{j['segments']:>2}  {j['w2']:11.5g}  {str(j['exact']):>6}  {j['family']:<8} "
            + " ".join(f"{j['canonical'][k]:9.5g}" for k in ("vanilla", "boot", "cd", "pd"))
            + f"   {plan}"
        )
    if spec["bins"]:
        lines.append("(W2 on the full spectrum: " + ", ".join(f"M = {j['segments']}: {j['w2_full_spectrum']:.5g}" for j in summary["joint"]) + ")")
    counts = summary["directions"]["counts"]
    lines += ["(full plans in demo.json; canonical plans use uniform segments)", "",
              "each direction alone: " + ", ".join(f"{f} {n}" for f, n in counts.items())]
    th = summary["sweep"]["thresholds"]
    lines.append(
        "thresholds in lambda: " + (", ".join(f"{t['from']} -> {t['to']} at {t['lam']:.4g}" for t in th) if th else "none")
    )
    rows = summary["phase"]["thresholds"]
    if rows and any(rows):
        lam_star = [t["lam"] for r in rows for t in r]
        lines.append(f"phase diagram lambda x eta*tau: {len(summary['phase']['y'])} x {len(summary['phase']['x'])} cells, transitions at lambda in [{min(lam_star):.4g}, {max(lam_star):.4g}]")
    lines += ["", f"{len(summary['files'])} files in {os.path.dirname(summary['files'][-1]) or '.'}/ ({summary['seconds']:.1f} s)"]
    return "\n".join(lines)
