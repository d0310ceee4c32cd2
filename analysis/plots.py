r"""Figures of the analysis: phase diagrams, W2 curves, plan trees, spectra, fidelity–cost fronts.

Every ``plot_*`` function draws into a new figure (or the given ``ax``) with the shared style of
:mod:`~opmerge.analysis.style` and returns ``(fig, data)``: ``data`` is a JSON-friendly dict of exactly the
numbers shown, ready for :func:`~opmerge.analysis.style.save_figure`.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from opmerge.errors import InputError, InputTypeError
from opmerge.io import to_jsonable
from opmerge.plans import MergeNode, Plan, parse_plan, tree_leaves

from .classify import FAMILIES, classify_plan
from .results import GridSweep, LambdaSweep
from .style import FAMILY_COLORS, FAMILY_LABELS, FAMILY_ORDER, OPTIMUM_COLOR, TRANSITION_COLOR, family_cmap, new_figure

__all__ = [
    "plot_phase_diagram",
    "plot_w2_vs_lambda",
    "draw_plan_tree",
    "plot_plan_trees",
    "plot_spectrum_families",
    "plot_fidelity_cost_front",
    "plot_canonical_comparison",
    "family_legend_handles",
]

_ARROW = "\u2192"


def family_legend_handles(families: Iterable[str]) -> list:
    """Legend patches for the given families, in :data:`~opmerge.analysis.style.FAMILY_ORDER`."""
    present = set(families)
    return [Patch(facecolor=FAMILY_COLORS[f], edgecolor="none", label=FAMILY_LABELS[f]) for f in FAMILY_ORDER if f in present]


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres (geometric midpoints on a log axis)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return np.array([v[0] / 1.5, v[0] * 1.5]) if log else np.array([v[0] - 0.5, v[0] + 0.5])
    if log:
        mids = np.sqrt(v[:-1] * v[1:])
        return np.concatenate([[v[0] ** 2 / mids[0]], mids, [v[-1] ** 2 / mids[-1]]])
    mids = 0.5 * (v[:-1] + v[1:])
    return np.concatenate([[2 * v[0] - mids[0]], mids, [2 * v[-1] - mids[-1]]])


def _use_log(values: np.ndarray) -> bool:
    v = np.asarray(values, dtype=np.float64)
    return bool(np.all(v > 0) and v.max() / v.min() >= 20)


def _axis_label(name: str) -> str:
    return {
        "lam": r"data variance $\lambda$",
        "lam1": r"$\lambda_1$",
        "lam2": r"$\lambda_2$",
        "eta_tau": r"training budget $\eta\tau$",
        "steps": r"teacher steps $N$",
    }.get(name, name)


def _new_or(ax, **kwargs):
    if ax is None:
        return new_figure(**kwargs)
    return ax.figure, ax


# ---------------------------------------------------------------------------------------------
# phase diagram
# ---------------------------------------------------------------------------------------------


def plot_phase_diagram(grid: GridSweep, ax=None, *, title: str | None = None, curve: bool = True):
    r"""Phase diagram: every cell of a :class:`~opmerge.analysis.results.GridSweep` coloured by its optimal family.

    The x axis (:math:`\lambda`) is logarithmic; the y axis is logarithmic when its values span a
    factor :math:`\ge 20`. With ``curve`` the transitions located by bisection in each row are
    drawn as a curve :math:`\lambda^\star(y)` per kind of change (e.g. BOOT :math:`\to` mixed).

    Parameters
    ----------
    grid : GridSweep
    ax : matplotlib Axes, optional
    title : str, optional
    curve : bool
        Draw the transition curves.

    Returns
    -------
    (Figure, dict)
        ``data`` holds ``x``, ``y``, ``family`` (per cell) and ``transitions`` (per change: ``y``, ``lam``).
    """
    if not isinstance(grid, GridSweep):
        raise InputTypeError(f"grid must be a GridSweep, got {type(grid).__name__}")
    fig, ax = _new_or(ax)
    xlog, ylog = True, _use_log(grid.y) and grid.y_name != "steps"
    codes = np.array([[FAMILY_ORDER.index(f) for f in row] for row in grid.family])
    ax.pcolormesh(
        _edges(grid.x, xlog), _edges(grid.y, ylog), codes, cmap=family_cmap(), vmin=-0.5, vmax=len(FAMILY_ORDER) - 0.5, shading="flat", rasterized=True
    )
    ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
    ax.set_xlabel(_axis_label(grid.x_name))
    ax.set_ylabel(_axis_label(grid.y_name))
    if grid.y_name == "steps":
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    transitions: list[dict] = []
    if curve:
        # one curve piece per kind of change (from -> to) and rank among that kind in the row,
        # joined only between neighbouring rows that both have it (islands stay separate dots)
        per_row = []
        for yv, row in zip(grid.y.tolist(), grid.thresholds):
            ranks: dict = {}
            keyed = {}
            for t in sorted(row, key=lambda t: t["lam"]):
                key = (t["from"], t["to"], ranks.get((t["from"], t["to"]), 0))
                ranks[(t["from"], t["to"])] = key[2] + 1
                keyed[key] = t["lam"]
                transitions.append({"y": yv, "lam": t["lam"], "lam_lo": t["lam_lo"], "lam_hi": t["lam_hi"], "from": t["from"], "to": t["to"]})
            per_row.append((yv, keyed))
        for (y0, k0), (y1, k1) in zip(per_row[:-1], per_row[1:]):
            for key in k0.keys() & k1.keys():
                xs, ys = [k0[key], k1[key]], [y0, y1]
                ax.plot(xs, ys, color="white", lw=3.2, solid_capstyle="round", zorder=3)
                ax.plot(xs, ys, color="black", lw=1.3, zorder=4)
        if transitions:
            ax.plot([t["lam"] for t in transitions], [t["y"] for t in transitions], "o", color="black", ms=2.5, zorder=5, mec="white", mew=0.4)
    present = {f for row in grid.family for f in row}
    handles = family_legend_handles(present)
    if transitions:
        handles.append(Line2D([], [], color="black", marker="o", ms=2.5, label="transition\n(bisection)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.set_xlim(_edges(grid.x, xlog)[[0, -1]])
    ax.set_ylim(_edges(grid.y, ylog)[[0, -1]])
    if title:
        ax.set_title(title)
    data = {
        "x_name": grid.x_name,
        "y_name": grid.y_name,
        "x": grid.x,
        "y": grid.y,
        "family": [list(r) for r in grid.family],
        "family_codes": codes,
        "family_order": list(FAMILY_ORDER),
        "transitions": transitions,
    }
    return fig, to_jsonable(data, strict=False)


# ---------------------------------------------------------------------------------------------
# W2 versus lambda
# ---------------------------------------------------------------------------------------------


def _family_strip(ax, lam: np.ndarray, family: Sequence[str], y0: float = 1.02, height: float = 0.045) -> None:
    edges = _edges(lam, True)
    trans = ax.get_xaxis_transform()
    for k, fam in enumerate(family):
        ax.add_patch(Rectangle((edges[k], y0), edges[k + 1] - edges[k], height, transform=trans, color=FAMILY_COLORS[fam], clip_on=False, lw=0))
    ax.text(1.0, y0 + height / 2, "  optimal family", transform=ax.transAxes, va="center", ha="left", fontsize=7)


def plot_w2_vs_lambda(sweep: LambdaSweep, ax=None, *, title: str | None = None, logy: bool = True):
    r"""W2 of every canonical plan and of the optimum against :math:`\lambda` (log x), with the transitions.

    Curves: :math:`W_2(k)` for ``k`` in vanilla, BOOT, CD, PD (family colours) and the optimum
    :math:`W_2^\star` (black, dashed). Vertical lines mark the thresholds located by bisection; a
    strip above the axes shows the optimal family at each grid point.

    Parameters
    ----------
    sweep : LambdaSweep
    ax : matplotlib Axes, optional
    title : str, optional
    logy : bool
        Logarithmic W2 axis.

    Returns
    -------
    (Figure, dict)
        ``data``: ``lam``, ``w2_optimal``, ``w2_canonical`` (per kind), ``family``, ``thresholds``.
    """
    if not isinstance(sweep, LambdaSweep):
        raise InputTypeError(f"sweep must be a LambdaSweep, got {type(sweep).__name__}")
    fig, ax = _new_or(ax)
    for kind, values in sweep.canonical.items():
        ax.plot(sweep.lam, values, color=FAMILY_COLORS[kind], label=FAMILY_LABELS[kind], lw=1.4)
    ax.plot(sweep.lam, sweep.w2, color=OPTIMUM_COLOR, ls=(0, (4, 2)), lw=1.6, label="optimal plan")
    for t in sweep.thresholds:
        ax.axvline(t["lam"], color=TRANSITION_COLOR, lw=0.9, ls=":", zorder=0)
        ax.text(
            t["lam"], 0.98, f"{t['lam']:.3g} ", transform=ax.get_xaxis_transform(), rotation=90, va="top", ha="right", fontsize=7, color=TRANSITION_COLOR
        )
    ax.set_xscale("log")
    clipped = None
    if logy:
        ax.set_yscale("log")
        # a straddling optimum can sit ~1e-10 below every canonical curve: keep the curves readable
        # and say where the optimum went instead of stretching the axis over ten decades
        floor = 0.2 * float(min(np.min(v) for v in sweep.canonical.values()))
        if floor > 0 and np.min(sweep.w2) < floor:
            k = int(np.argmin(sweep.w2))
            clipped = {"lam": float(sweep.lam[k]), "w2": float(sweep.w2[k]), "axis_floor": floor}
            ax.set_ylim(bottom=floor)
            ax.annotate(
                f"optimum down to $W_2$ = {sweep.w2[k]:.1e}\nat $\\lambda$ = {sweep.lam[k]:.3g} (below the axis)",
                (sweep.lam[k], floor), xytext=(12, 14), textcoords="offset points", fontsize=7, ha="left",
                arrowprops={"arrowstyle": "->", "lw": 0.7, "color": "0.3"},
            )
    ax.set_xlim(sweep.lam[0], sweep.lam[-1])
    ax.set_xlabel(_axis_label("lam"))
    ax.set_ylabel(r"$W_2$ to the teacher" if sweep.config.get("target", "teacher") == "teacher" else r"$W_2$ to the data")
    _family_strip(ax, sweep.lam, sweep.family)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color=TRANSITION_COLOR, ls=":", label="transition"))
    handles += family_legend_handles(set(sweep.family) - {"vanilla", "boot", "cd", "pd"})
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        ax.set_title(title, pad=22)
    data = {
        "lam": sweep.lam,
        "w2_optimal": sweep.w2,
        "w2_canonical": sweep.canonical,
        "family": list(sweep.family),
        "thresholds": list(sweep.thresholds),
        "optimum_below_axis": clipped,
    }
    return fig, to_jsonable(data, strict=False)


# ---------------------------------------------------------------------------------------------
# plan trees
# ---------------------------------------------------------------------------------------------


def _tree_layout(plan: Plan) -> tuple[dict, dict]:
    """Positions: leaf ``n`` at ``x = N - n`` (noise side left), ``y = 0``; a node at the mean x of its
    first and last child and ``y`` = its height (leaf 0, node ``1 + max(child heights)``)."""
    n_steps = plan.steps
    pos: dict = {}
    for n in range(1, n_steps + 1):
        pos[("leaf", n)] = (float(n_steps - n), 0.0)
    keys: dict = {}
    for node in plan.merge_nodes():  # post-order: children first
        child_pos = []
        for c in node.children:
            child_pos.append(pos[keys[id(c)]] if isinstance(c, MergeNode) else pos[("leaf", c)])
        key = ("node", id(node))
        keys[id(node)] = key
        pos[key] = (0.5 * (child_pos[0][0] + child_pos[-1][0]), 1.0 + max(p[1] for p in child_pos))
    return pos, keys


def draw_plan_tree(plan: Plan | str, ax=None, *, title: str | None = None, color: str = "black", leaf_fontsize: float | None = None):
    r"""Draw a merge plan as a dendrogram: teacher steps along x (noise side left), merges above.

    Leaf ``n`` (teacher step :math:`z_n \to z_{n-1}`) sits at :math:`x = N - n`, :math:`y = 0` and is
    labelled ``n``; a merge node sits at the height of its subtree (leaf 0, node
    :math:`1 + \max` child heights), horizontally centred over its first and last child, with a
    horizontal bar over its children and a vertical line down to each. Segments (student steps) are
    separated by dashed lines and labelled ``s1, s2, ...`` below the leaves.

    Parameters
    ----------
    plan : Plan or str
        A plan or its text notation.
    ax : matplotlib Axes, optional
    title : str, optional
        Default: the plan's family and text (shortened when long).
    color : str
        Line colour.
    leaf_fontsize : float, optional

    Returns
    -------
    (Figure, dict)
        ``data``: ``plan`` (text), ``nodes`` (``x``, ``y``, ``top``, ``bottom`` of every merge node),
        ``leaves``, ``segments``.
    """
    if isinstance(plan, str):
        plan = parse_plan(plan)
    if not isinstance(plan, Plan):
        raise InputTypeError(f"plan must be a Plan or its text, got {type(plan).__name__}")
    fig, ax = _new_or(ax, width=max(3.0, 0.28 * plan.steps + 1.0), height=2.6)
    pos, keys = _tree_layout(plan)
    n_steps = plan.steps
    nodes_out = []
    for node in plan.merge_nodes():
        x, y = pos[keys[id(node)]]
        child_xy = [pos[keys[id(c)]] if isinstance(c, MergeNode) else pos[("leaf", c)] for c in node.children]
        ax.plot([child_xy[0][0], child_xy[-1][0]], [y, y], color=color, lw=1.2, solid_capstyle="butt")
        for cx, cy in child_xy:
            ax.plot([cx, cx], [cy, y], color=color, lw=1.2)
        ax.plot([x], [y], "o", color=color, ms=3.0, zorder=3)
        nodes_out.append({"x": x, "y": y, "top": node.top, "bottom": node.bottom, "children": len(node.children)})
    fontsize = leaf_fontsize or (8 if n_steps <= 20 else 6)
    for n in range(1, n_steps + 1):
        x = float(n_steps - n)
        ax.plot([x], [0.0], "s", color=color, ms=3.0, zorder=3)
        ax.annotate(str(n), (x, 0.0), xytext=(0, -4), textcoords="offset points", ha="center", va="top", fontsize=fontsize)
    max_y = max([p[1] for p in pos.values()] + [1.0])
    for k, seg in enumerate(plan.segments):
        leaves = tree_leaves(seg)
        x0, x1 = n_steps - leaves[0], n_steps - leaves[-1]
        if k > 0:
            ax.axvline(x0 - 0.5, color="0.6", ls="--", lw=0.8)
        if plan.n_segments > 1:
            ax.annotate(f"s{k + 1}", (0.5 * (x0 + x1), 0.0), xytext=(0, -16), textcoords="offset points", ha="center", va="top", fontsize=7, color="0.35")
    ax.set_xlim(-0.7, n_steps - 0.3)
    ax.set_ylim(-0.1 * max_y - 0.25, max_y + 0.3)
    ax.set_yticks([])
    ax.set_xticks([])
    for side in ("left", "bottom", "top", "right"):
        ax.spines[side].set_visible(False)
    if title is None:
        text = str(plan)
        if len(text) > 60:
            text = text[:57] + "..."
        title = f"{classify_plan(plan).family}: {text}"
    if title:
        ax.set_title(title, fontsize=8)
    data = {
        "plan": str(plan),
        "family": classify_plan(plan).family,
        "nodes": nodes_out,
        "leaves": [{"step": n, "x": float(n_steps - n)} for n in range(1, n_steps + 1)],
        "segments": [[tree_leaves(s)[0], tree_leaves(s)[-1] - 1] for s in plan.segments],
    }
    return fig, to_jsonable(data, strict=False)


def plot_plan_trees(entries: Sequence[dict], *, ncols: int = 2, panel_width: float | None = None, panel_height: float = 2.3, suptitle: str | None = None):
    r"""A grid of plan trees, one panel per entry.

    Parameters
    ----------
    entries : sequence of dict
        Each ``{"plan": Plan or str, "title": str}`` (extra keys are copied into the data).
    ncols : int
        Panels per row.
    panel_width, panel_height : float
        Inches per panel (width default from the largest ``N``).
    suptitle : str, optional

    Returns
    -------
    (Figure, dict)
        ``data["panels"]``: the :func:`draw_plan_tree` data of every panel plus the entry's extra keys.
    """
    if not entries:
        raise InputError("entries must hold at least one plan")
    plans = [parse_plan(e["plan"]) if isinstance(e["plan"], str) else e["plan"] for e in entries]
    ncols = max(1, min(int(ncols), len(plans)))
    nrows = (len(plans) + ncols - 1) // ncols
    width = panel_width or max(3.0, 0.26 * max(p.steps for p in plans) + 1.0)
    fig, axes = new_figure(nrows, ncols, width=width * ncols, height=panel_height * nrows, squeeze=False)
    panels = []
    for k, (entry, plan) in enumerate(zip(entries, plans)):
        ax = axes[k // ncols][k % ncols]
        _, d = draw_plan_tree(plan, ax, title=entry.get("title"))
        d.update({key: value for key, value in entry.items() if key not in ("plan", "title")})
        d["title"] = entry.get("title")
        panels.append(d)
    for k in range(len(plans), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig, to_jsonable({"panels": panels}, strict=False)


# ---------------------------------------------------------------------------------------------
# spectrum
# ---------------------------------------------------------------------------------------------


def plot_spectrum_families(
    lam: Sequence[float],
    families: Sequence[str],
    ax=None,
    *,
    thresholds: Sequence[dict] = (),
    title: str | None = None,
    name: str = "spectrum",
    floor: float | None = None,
):
    r"""Eigenvalues of a spectrum (descending, log y) coloured by the family optimal for each on its own.

    Every eigenvalue :math:`\lambda_i` is treated as its own one-direction problem; its marker has
    the colour of that problem's optimal family. The thresholds :math:`\lambda^\star` of a
    one-direction :math:`\lambda` sweep with the same model are drawn as dotted lines, and the bands
    between them are tinted with the family that the sweep found there. Eigenvalues below ``floor``
    (numerically zero directions) are drawn at ``floor`` as downward triangles.

    Parameters
    ----------
    lam : sequence of float
        Eigenvalues (any order; drawn sorted, largest first).
    families : sequence of str
        Family of each eigenvalue, same order as ``lam``.
    ax : matplotlib Axes, optional
    thresholds : sequence of dict
        ``{"lam", "from", "to"}`` in increasing ``lam``.
    title : str, optional
    name : str
        Spectrum name for the data.
    floor : float, optional
        Display floor; default :math:`10^{-6} \max_i \lambda_i`.

    Returns
    -------
    (Figure, dict)
        ``data``: ``index``, ``lam`` (sorted), ``family``, ``below_floor``, ``thresholds``, ``floor``.
    """
    lam_arr = np.asarray(lam, dtype=np.float64)
    if lam_arr.ndim != 1 or lam_arr.size != len(families):
        raise InputError(f"lam and families must be 1-D of the same length, got {lam_arr.shape} and {len(families)}")
    order = np.argsort(-lam_arr, kind="stable")
    lam_sorted = lam_arr[order]
    fam_sorted = [families[k] for k in order]
    top = float(lam_sorted.max()) if lam_sorted.size and lam_sorted.max() > 0 else 1.0
    floor = float(floor) if floor is not None else 1e-6 * top
    low = lam_sorted < floor
    shown = np.maximum(lam_sorted, floor)
    fig, ax = _new_or(ax)
    idx = np.arange(1, lam_sorted.size + 1)
    ax.plot(idx, shown, color="0.75", lw=0.8, zorder=2)
    for fam in FAMILY_ORDER:
        mask = np.array([f == fam for f in fam_sorted])
        for sel, marker in ((mask & ~low, "o"), (mask & low, "v")):
            if sel.any():
                ax.scatter(idx[sel], shown[sel], s=20, marker=marker, color=FAMILY_COLORS[fam], zorder=3, edgecolor="white", linewidth=0.4)
    ax.set_yscale("log")
    ths = sorted(thresholds, key=lambda t: t["lam"])
    y_top = max(top, max((t["lam"] for t in ths), default=top)) * 3.0
    y_bottom = floor / 3.0
    if ths:
        bounds = [y_bottom] + [t["lam"] for t in ths] + [y_top]
        band_families = [ths[0]["from"]] + [t["to"] for t in ths]
        for k, fam in enumerate(band_families):
            ax.axhspan(bounds[k], bounds[k + 1], color=FAMILY_COLORS[fam], alpha=0.10, lw=0, zorder=0)
        for t in ths:
            ax.axhline(t["lam"], color=TRANSITION_COLOR, ls=":", lw=0.9, zorder=1)
        text = "one-direction thresholds:\n" + "\n".join(
            f"{FAMILY_LABELS[t['from']]} {_ARROW} {FAMILY_LABELS[t['to']]} at $\\lambda$ = {t['lam']:.4g}" for t in ths
        )
        ax.text(0.02, 0.03, text, transform=ax.transAxes, fontsize=7, va="bottom", ha="left", color=TRANSITION_COLOR)
    ax.set_ylim(y_bottom, y_top)
    ax.set_xlabel("eigen-direction (sorted by variance)")
    ax.set_ylabel(r"eigenvalue $\lambda_i$")
    ax.set_xlim(0, lam_sorted.size + 1)
    handles = [Line2D([], [], marker="o", ls="", color=FAMILY_COLORS[f], label=FAMILY_LABELS[f]) for f in FAMILY_ORDER if f in set(fam_sorted)]
    if low.any():
        handles.append(Line2D([], [], marker="v", ls="", color="0.4", label=f"< {floor:.1g} (drawn at it)"))
    if ths:
        handles.append(Patch(facecolor="0.5", alpha=0.2, label="band: family of the\n$\\lambda$ sweep"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, title="optimal family of each\ndirection alone", title_fontsize=7)
    if title:
        ax.set_title(title)
    data = {
        "name": name,
        "index": idx,
        "lam": lam_sorted,
        "family": fam_sorted,
        "below_floor": low,
        "original_index": order,
        "thresholds": [dict(t) for t in thresholds],
        "floor": floor,
    }
    return fig, to_jsonable(data, strict=False)


# ---------------------------------------------------------------------------------------------
# fidelity-cost front and canonical comparison
# ---------------------------------------------------------------------------------------------


def _front_field(point, name: str):
    return point[name] if isinstance(point, dict) else getattr(point, name)


def plot_fidelity_cost_front(points: Sequence, ax=None, *, cost_label: str = "cost (merge nodes)", title: str | None = None, annotate: bool = True):
    r"""Fidelity–cost front: the smallest W2 reachable at each cost, as a step curve.

    Parameters
    ----------
    points : sequence
        Front points with ``cost``, ``w2``, ``plan`` and ``exact`` (attributes or dict keys), e.g. the
        output of ``opmerge.solvers.front.fidelity_cost_front``.
    ax : matplotlib Axes, optional
    cost_label : str
    title : str, optional
    annotate : bool
        Label the points whose plan is a canonical family (vanilla, BOOT, CD, PD) by name.

    Returns
    -------
    (Figure, dict)
        ``data``: ``cost``, ``w2``, ``exact``, ``plan``, ``family``.
    """
    if len(points) == 0:
        raise InputError("points must hold at least one front point")
    cost = np.array([float(_front_field(p, "cost")) for p in points])
    w2 = np.array([float(_front_field(p, "w2")) for p in points])
    exact = np.array([bool(_front_field(p, "exact")) for p in points])
    plans = []
    for p in points:
        plan = _front_field(p, "plan")
        plans.append(parse_plan(plan) if isinstance(plan, str) else plan)
    families = [classify_plan(p).family for p in plans]
    order = np.argsort(cost, kind="stable")
    cost, w2, exact = cost[order], w2[order], exact[order]
    plans = [plans[k] for k in order]
    families = [families[k] for k in order]
    fig, ax = _new_or(ax)
    ax.step(cost, w2, where="post", color="0.4", lw=1.0, zorder=1)
    for k in range(cost.size):
        c = FAMILY_COLORS[families[k]]
        ax.scatter([cost[k]], [w2[k]], s=30, zorder=3, facecolor=c if exact[k] else "white", edgecolor=c, linewidth=1.2)
        if annotate and families[k] != "mixed":
            ax.annotate(FAMILY_LABELS[families[k]], (cost[k], w2[k]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    positive = w2[w2 > 0]
    if positive.size and positive.max() / positive.min() > 20:
        ax.set_yscale("log")
    lo_c, hi_c = int(np.floor(cost.min())), int(np.ceil(cost.max()))
    ax.set_xticks(np.arange(lo_c, hi_c + 1, max(1, int(np.ceil((hi_c - lo_c + 1) / 8)))))
    ax.set_xlim(cost.min() - 0.6, cost.max() + 0.6)
    if w2.size == 1 or np.ptp(w2) == 0:
        ax.set_ylim(w2[0] * 0.98, w2[0] * 1.02)
    ax.set_xlabel(cost_label)
    ax.set_ylabel(r"$W_2$ (best plan within the budget)")
    handles = family_legend_handles(families)
    if not exact.all():
        handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor="0.3", label="not proven optimal"))
    ax.legend(handles=handles, loc="best")
    if title:
        ax.set_title(title)
    data = {"cost": cost, "w2": w2, "exact": exact, "plan": [str(p) for p in plans], "family": families}
    return fig, to_jsonable(data, strict=False)


def plot_canonical_comparison(rows: Sequence[dict], ax=None, *, title: str | None = None, logy: bool = True):
    r"""Grouped bars: W2 of each canonical plan and of the optimal plan, one group per configuration.

    Parameters
    ----------
    rows : sequence of dict
        Each ``{"label": str, "canonical": {kind: w2}, "optimal": w2, "family": str}``.
    ax : matplotlib Axes, optional
    title : str, optional
    logy : bool

    Returns
    -------
    (Figure, dict)
        ``data["rows"]``: the input rows.
    """
    if not rows:
        raise InputError("rows must not be empty")
    fig, ax = _new_or(ax)
    kinds = list(rows[0]["canonical"].keys())
    n_bars = len(kinds) + 1
    width = 0.8 / n_bars
    x = np.arange(len(rows))
    for b, kind in enumerate(kinds):
        ax.bar(x + (b - (n_bars - 1) / 2) * width, [r["canonical"][kind] for r in rows], width, color=FAMILY_COLORS[kind], label=FAMILY_LABELS[kind])
    opt_colors = [FAMILY_COLORS.get(r.get("family", "mixed"), FAMILY_COLORS["mixed"]) for r in rows]
    ax.bar(x + (n_bars - 1) / 2 * width, [r["optimal"] for r in rows], width, color="white", edgecolor=OPTIMUM_COLOR, hatch="////", label="optimal", linewidth=0.8)
    for k, r in enumerate(rows):
        ax.text(x[k] + (n_bars - 1) / 2 * width, r["optimal"], FAMILY_LABELS.get(r.get("family", ""), ""), ha="center", va="bottom", fontsize=6, rotation=90, color=opt_colors[k])
    ax.set_xticks(x)
    ax.set_xticklabels([r["label"] for r in rows])
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(r"$W_2$")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        ax.set_title(title)
    return fig, to_jsonable({"rows": list(rows)}, strict=False)


assert set(FAMILIES) == set(FAMILY_ORDER)
