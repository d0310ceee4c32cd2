r"""Figures of the Gaussian-mixture regime (``opmerge mixture``, ``notebooks/04_mixture.ipynb``).

Every ``plot_*`` function draws a new figure with the shared style of
:mod:`~opmerge.analysis.style` and returns ``(fig, data)``: ``data`` is a JSON-friendly dict of
exactly the numbers shown, ready for :func:`~opmerge.analysis.style.save_figure`.

* :func:`plot_merge_errors` — approximation error of one merge against the number of merged steps,
  data side and noise side, one curve per separation (log axis clipped at a floor);
* :func:`plot_mixture_phase` — the (separation, budget) grid: optimal plan family, where the
  optimum leaves the linear regime's answer, the planner's regret;
* :func:`plot_honesty_scatter` — planner cost against exact MSE over every plan of one cell;
* :func:`plot_samples` — scatter panels of 2-D point sets (mixture samples, sampler outputs).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from opmerge.errors import InputError, InputTypeError
from opmerge.io import to_jsonable
from opmerge.plans import parse_plan

from .classify import classify_plan
from .plots import _edges, family_legend_handles
from .style import FAMILY_COLORS, FAMILY_LABELS, OPTIMUM_COLOR, new_figure

__all__ = ["plot_merge_errors", "plot_mixture_phase", "plot_honesty_scatter", "plot_samples", "separation_colors"]

#: hatch of a phase cell whose exact optimum differs from the linear regime's answer
DIFFERS_HATCH = "////"


def separation_colors(count: int) -> list:
    """``count`` colours of a sequential colour-blind-safe map (viridis, its bright yellow end left out)."""
    cmap = colormaps["viridis"]
    return [cmap(x) for x in (np.linspace(0.0, 0.85, count) if count > 1 else [0.0])]


# ---------------------------------------------------------------------------------------------
# merge error
# ---------------------------------------------------------------------------------------------


def plot_merge_errors(result: Mapping, *, floor: float = 1e-16, title: str | None = None):
    r"""Approximation error :math:`\varepsilon(m)` of merging ``m`` teacher steps into one student.

    Two panels (data side :math:`m \to 0`, noise side :math:`N \to N - m`), one curve per
    separation, log y axis. Values below ``floor`` (rounding: one step is exact in the gated
    family, and so is every composite when the components coincide) are drawn at the floor with
    open markers; the caption says so.

    Parameters
    ----------
    result : dict
        :func:`opmerge.analysis.mixture.merge_errors`'s result.
    floor : float
        Lower clip, > 0.
    title : str, optional

    Returns
    -------
    (Figure, dict)
        ``data``: ``merged_steps``, per curve ``separation``, ``data_side``, ``noise_side`` (the
        values, unclipped), ``floor`` and ``clipped`` (which points are drawn at the floor).
    """
    if not isinstance(result, Mapping) or "curves" not in result or "merged_steps" not in result:
        raise InputTypeError("result must be the dict of opmerge.analysis.mixture.merge_errors")
    if not floor > 0:
        raise InputError(f"floor must be > 0, got {floor!r}")
    m = np.asarray(result["merged_steps"], dtype=np.int64)
    curves = list(result["curves"])
    fig, axes = new_figure(1, 2, width=8.4, height=3.6, sharey=True)
    colors = separation_colors(len(curves))
    clipped = []
    sides = (("data_side", "data side: last $m$ steps, $m \\to 0$"),
             ("noise_side", f"noise side: first $m$ steps, ${int(result['steps'])} \\to {int(result['steps'])} - m$"))
    top = floor
    for ax, (side, label) in zip(axes, sides):
        for color, curve in zip(colors, curves):
            values = np.asarray(curve[side], dtype=np.float64)
            low = ~(values >= floor)
            shown = np.where(low, floor, values)
            top = max(top, float(np.nanmax(shown)))
            ax.plot(m, shown, "-", color=color, lw=1.4, zorder=2)
            ax.plot(m[~low], shown[~low], "o", color=color, ms=4, zorder=3)
            ax.plot(m[low], shown[low], "o", mfc="white", mec=color, ms=4, zorder=3)
            clipped.append({"separation": curve["separation"], "side": side, "merged_steps": m[low].tolist()})
        ax.set_yscale("log")
        ax.set_xlabel("merged teacher steps $m$")
        ax.set_title(label)
        ax.set_xticks(m)
        ax.axhline(floor, color="0.6", lw=0.8, ls=":", zorder=1)
    axes[0].set_ylabel(r"approximation error $\varepsilon(m)$")
    axes[0].set_ylim(floor / 10, top * 10)
    handles = [Line2D([], [], color=c, marker="o", ms=4, label=f"{curve['separation']:g}") for c, curve in zip(colors, curves)]
    handles.append(Line2D([], [], color="0.4", marker="o", mfc="white", ls="none", ms=4, label="at the floor"))
    axes[1].legend(handles=handles, title="separation", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.text(0.01, -0.02, f"Values below {floor:g} are rounding (zero in exact arithmetic: a single DDIM step lies in the gated "
                          "family) and are drawn at the dotted floor with open markers.", fontsize=7.5, ha="left", va="top")
    if title:
        fig.suptitle(title)
    data = {"merged_steps": m, "curves": curves, "floor": floor, "clipped": clipped,
            "caption": f"values below {floor:g} are rounding and drawn at the floor"}
    return fig, to_jsonable(data, strict=False)


# ---------------------------------------------------------------------------------------------
# phase diagram
# ---------------------------------------------------------------------------------------------


def _regret_text(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "planner regret -"
    return "planner regret 0" if value == 0 else f"planner regret {100 * value:.2g}%"


def plot_mixture_phase(rows: Sequence[Mapping], *, title: str | None = None):
    r"""Phase diagram over (separation, budget :math:`\eta\tau`) of the mixture regime.

    Each cell is coloured by the family of its exact optimum (:func:`~opmerge.analysis.classify.classify_plan`),
    hatched where the optimum's MSE differs from the linear regime's answer, and labelled with the
    optimum's plan and the planner's regret (its pick's MSE over the optimum's, minus 1).

    Parameters
    ----------
    rows : sequence of dict
        :func:`opmerge.analysis.mixture_cli.cell_summary` of every cell (keys ``separation``,
        ``eta_tau``, ``optimal_plan``, ``optimal_family``, ``equals_linear``, ``regret``,
        ``linear_plan``, ``planner_plan``); one per (separation, eta_tau).
    title : str, optional

    Returns
    -------
    (Figure, dict)
        ``data``: ``separations``, ``eta_taus`` (sorted), and per cell (row = eta_tau, column =
        separation) ``family``, ``equals_linear``, ``regret``, ``optimal_plan``, ``linear_plan``,
        ``planner_plan``.
    """
    rows = list(rows)
    if not rows:
        raise InputError("rows must hold at least one cell")
    seps = sorted({float(r["separation"]) for r in rows})
    etas = sorted({float(r["eta_tau"]) for r in rows})
    index = {(float(r["separation"]), float(r["eta_tau"])): r for r in rows}
    if len(index) != len(rows):
        raise InputError("rows must hold one cell per (separation, eta_tau)")
    xe, ye = _edges(np.array(seps), False), _edges(np.array(etas), True)
    width = max(5.0, 1.45 * len(seps) + 2.6)
    height = max(3.2, 0.62 * len(etas) + 1.6)
    fig, ax = new_figure(width=width, height=height)
    grid = {key: [[None] * len(seps) for _ in etas] for key in ("family", "equals_linear", "regret", "optimal_plan", "linear_plan", "planner_plan")}
    fontsize = 6.5 if len(seps) <= 6 else 5.5
    for i, eta in enumerate(etas):
        for j, sep in enumerate(seps):
            r = index.get((sep, eta))
            if r is None:
                continue
            family = r.get("optimal_family") or classify_plan(parse_plan(r["optimal_plan"])).family
            for key in grid:
                grid[key][i][j] = family if key == "family" else r[key]
            ax.add_patch(Rectangle((xe[j], ye[i]), xe[j + 1] - xe[j], ye[i + 1] - ye[i], facecolor=FAMILY_COLORS[family],
                                   edgecolor="white", lw=1.5, alpha=0.9, zorder=1))
            if not r["equals_linear"]:
                ax.add_patch(Rectangle((xe[j], ye[i]), xe[j + 1] - xe[j], ye[i + 1] - ye[i], facecolor="none",
                                       edgecolor="black", hatch=DIFFERS_HATCH, lw=0.0, alpha=0.45, zorder=2))
            xc, yc = 0.5 * (xe[j] + xe[j + 1]), np.sqrt(ye[i] * ye[i + 1])
            ax.text(xc, yc, f"{r['optimal_plan']}\n{_regret_text(r['regret'])}", ha="center", va="center", fontsize=fontsize,
                    zorder=3, linespacing=1.25,
                    bbox={"boxstyle": "round,pad=0.18", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_yscale("log")
    ax.set_xticks(seps)
    ax.set_xticklabels([f"{s:g}" for s in seps])
    ax.set_yticks(etas)
    ax.set_yticklabels([f"{e:g}" for e in etas])
    ax.minorticks_off()
    ax.set_xlabel("separation $s$ (component standard deviations)")
    ax.set_ylabel(r"training budget $\eta\tau$ per merge")
    present = {f for row in grid["family"] for f in row if f is not None}
    handles = family_legend_handles(present)
    handles.append(Patch(facecolor="white", edgecolor="black", hatch=DIFFERS_HATCH, lw=0.5, label="optimum differs\nfrom the linear\nregime's answer"))
    ax.legend(handles=handles, title="exact optimum", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.annotate("In each cell: the exact optimum over all plans, and the planner's regret = MSE of its pick / optimal MSE - 1.\n"
                "Hatched: the linear regime's optimal plan (same covariance spectrum) has a higher MSE here (by more than 1e-9 relative).",
                xy=(0.0, 0.0), xycoords="axes fraction", xytext=(0, -34), textcoords="offset points", fontsize=7, ha="left", va="top")
    if title:
        ax.set_title(title)
    data = dict(grid, separations=seps, eta_taus=etas, hatch="optimum differs from the linear regime's answer (MSE, 1e-9 relative)")
    return fig, to_jsonable(data, strict=False)


# ---------------------------------------------------------------------------------------------
# planner honesty
# ---------------------------------------------------------------------------------------------


def _padded(values: np.ndarray, log: bool, share: float = 0.06) -> tuple[float, float]:
    """Axis limits around ``values`` with a margin (a share of the range, in log space on a log axis)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if log:
        pad = (hi / lo) ** share if hi > lo else 1.2
        return lo / pad, hi * pad
    pad = share * (hi - lo) if hi > lo else 0.05 * (abs(hi) or 1.0)
    return lo - pad, hi + pad


def plot_honesty_scatter(record: Mapping, *, canonical: Mapping[str, str] | None = None, title: str | None = None):
    r"""Planner cost against exact MSE for every plan of one cell.

    Grey dots are all plans; the planner's pick is a star, the exact optimum an open circle, the
    canonical plans (``canonical``: kind -> plan text) coloured by family. The dashed diagonal is
    cost = MSE (the planner cost estimates the MSE). Axes are logarithmic when the values span a
    factor of 20 or more.

    Parameters
    ----------
    record : dict
        One cell of :func:`opmerge.analysis.mixture.evaluate_cell` (``rows``, ``spearman``,
        ``regret``, ``planner_plan``, ``optimal_plan``).
    canonical : dict, optional
    title : str, optional

    Returns
    -------
    (Figure, dict)
        ``data``: ``plans``, ``mse``, ``planner_cost``, ``spearman``, ``regret``, the marked plans.
    """
    rows = record.get("rows") if isinstance(record, Mapping) else None
    if not rows:
        raise InputTypeError("record must be a cell of opmerge.analysis.mixture.evaluate_cell (with its rows)")
    plans = [r[0] for r in rows]
    mse = np.array([r[1] for r in rows], dtype=np.float64)
    cost = np.array([r[2] for r in rows], dtype=np.float64)
    fig, ax = new_figure(width=5.6, height=4.2)
    ax.plot(cost, mse, "o", color="0.6", ms=3, alpha=0.7, mec="none", label=f"all {len(plans)} plans", zorder=2)
    marked = {}
    for kind, text in (canonical or {}).items():
        if text in plans:
            k = plans.index(text)
            fam = kind if kind in FAMILY_COLORS else "mixed"
            ax.plot(cost[k], mse[k], "s", color=FAMILY_COLORS[fam], ms=8, mec="black", mew=0.5,
                    label=f"{FAMILY_LABELS.get(kind, kind)}", zorder=4)
            marked[kind] = text
    k_pick, k_best = plans.index(record["planner_plan"]), plans.index(record["optimal_plan"])
    ax.plot(cost[k_best], mse[k_best], "o", mfc="none", mec=OPTIMUM_COLOR, ms=14, mew=1.3, label="exact optimum", zorder=5)
    ax.plot(cost[k_pick], mse[k_pick], "*", color="#D55E00", ms=10, mec="black", mew=0.5, label="planner's pick", zorder=6)
    marked["planner"], marked["optimum"] = record["planner_plan"], record["optimal_plan"]
    log = bool(np.all(cost > 0) and np.all(mse > 0) and max(cost.max() / cost.min(), mse.max() / mse.min()) >= 20)
    limits = [_padded(values, log) for values in (cost, mse)]
    low, high = min(limits[0][0], limits[1][0]), max(limits[0][1], limits[1][1])
    ax.plot([low, high], [low, high], "--", color="0.3", lw=0.9, label="cost = MSE", zorder=1)
    ax.set_xlim(limits[0])
    ax.set_ylim(limits[1])
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("planner cost (its estimate of the MSE)")
    ax.set_ylabel("exact MSE (simulated)")
    rho = record.get("spearman")
    rho_text = "undefined (ties)" if rho is None or not np.isfinite(rho) else f"{rho:.3f}"
    ax.text(1.04, 0.0, f"Spearman $\\rho$ = {rho_text}\n{_regret_text(record['regret'])}",
            transform=ax.transAxes, ha="left", va="bottom", fontsize=8,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.8"})
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    if title:
        ax.set_title(title)
    data = {"plans": plans, "mse": mse, "planner_cost": cost, "spearman": rho, "regret": record["regret"], "marked": marked,
            "log_axes": log}
    return fig, to_jsonable(data, strict=False)


# ---------------------------------------------------------------------------------------------
# samples
# ---------------------------------------------------------------------------------------------


def plot_samples(panels: Mapping[str, np.ndarray], *, labels: Mapping[str, np.ndarray] | None = None, max_points: int = 2000,
                 title: str | None = None, panel_size: float = 2.9, share: bool = True):
    r"""Side-by-side scatter panels of 2-D point sets (the first two coordinates), each in a square window.

    Parameters
    ----------
    panels : dict
        Title -> array (n, d >= 2).
    labels : dict, optional
        Title -> component labels (n,) to colour the points by.
    max_points : int
        Points drawn per panel (the first ones).
    title : str, optional
    panel_size : float
        Width and height of one panel in inches.
    share : bool
        One window for every panel (to compare spreads), else each panel fitted to its points.

    Returns
    -------
    (Figure, dict)
        ``data``: per panel the points drawn (and labels).
    """
    if not panels:
        raise InputError("panels must hold at least one point set")
    arrays = {}
    for name, x in panels.items():
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] < 2:
            raise InputError(f"panel {name!r} must be an array of shape (n, d >= 2), got {x.shape}")
        arrays[name] = x[:max_points, :2]
    fig, axes = new_figure(1, len(arrays), width=panel_size * len(arrays), height=panel_size + 0.3, squeeze=False)

    def window(points: np.ndarray) -> tuple[np.ndarray, float]:
        centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
        return centre, 0.55 * float(np.max(points.max(axis=0) - points.min(axis=0))) or 1.0

    common = window(np.concatenate(list(arrays.values())))
    palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
    data = {}
    for ax, (name, x) in zip(axes[0], arrays.items()):
        lab = None if labels is None or name not in labels else np.asarray(labels[name])[:max_points]
        colors = "#0072B2" if lab is None else [palette[int(k) % len(palette)] for k in lab]
        ax.scatter(x[:, 0], x[:, 1], s=3, c=colors, alpha=0.5, linewidths=0, rasterized=True)
        ax.set_title(name)
        centre, half = common if share else window(x)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("$x_1$")
        data[name] = {"points": x, "labels": lab}
    axes[0][0].set_ylabel("$x_2$")
    if title:
        fig.suptitle(title)
    return fig, to_jsonable(data, strict=False)
