r"""Figures of the image study: sample grids, per-direction gains, predicted vs measured, teacher linearity.

Every figure goes through :func:`analysis.style.save_figure` (PDF + PNG + JSON of the numbers shown,
written atomically). Images are tiled by :func:`tile_images` (grey ``(H, W)`` or colour ``(C, H, W)``
rows; values clipped to the dataset's range and shown dark-on-light).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from opmerge.errors import InputError

from .comparison import ratio

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .data import ImageDataset

__all__ = ["tile_images", "plot_sample_grid", "study_figures"]

_GROUP_COLORS = {"gaussian-linear": "#0072B2", "gaussian-network": "#56B4E9", "trained-linear": "#D55E00", "trained-network": "#E69F00",
                 "gaussian-scot": "#009E73", "gaussian-traflow": "#CC79A7", "trained-scot": "#009E73", "trained-traflow": "#CC79A7"}
_M_MARKERS = {1: "o", 2: "s", 4: "^", 8: "D"}


def tile_images(samples: ArrayLike, image_shape: tuple[int, ...], columns: int | None = None, pad: int = 1,
                value_range: tuple[float, float] | None = (-1.0, 1.0)) -> np.ndarray:
    r"""Tile rows of flattened images into one picture.

    Parameters
    ----------
    samples : array (n, dim)
    image_shape : ``(H, W)`` or ``(C, H, W)``
    columns : int      images per row (default :math:`\lceil\sqrt n\rceil`)
    pad : int          pixels of mid-grey background between images
    value_range : (lo, hi)   mapped to [0, 1] (clipped)

    Returns
    -------
    array (rows*(H+pad)+pad, columns*(W+pad)+pad) for grey images, with a trailing 3 for colour.
    """
    x = np.asarray(samples, dtype=np.float64)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3):
        raise InputError(f"image_shape must be (H, W) or (C, H, W) to tile images, got {shape}")
    n = x.shape[0]
    if n == 0:
        raise InputError("need at least one image to tile")
    cols = int(math.ceil(math.sqrt(n))) if columns is None else int(columns)
    rows = int(math.ceil(n / cols))
    lo, hi = (-1.0, 1.0) if value_range is None else value_range
    imgs = np.clip((x - lo) / (hi - lo), 0.0, 1.0).reshape((n,) + shape)
    if len(shape) == 3:
        imgs = np.transpose(imgs, (0, 2, 3, 1))
        h, w, c = imgs.shape[1:]
        canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 0.5)
    else:
        h, w = shape
        canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 0.5)
    for k in range(n):
        r, q = divmod(k, cols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = imgs[k]
    return canvas


def plot_sample_grid(panels: list[list[tuple[str, np.ndarray | None]]], image_shape: tuple[int, ...],
                     value_range: tuple[float, float] | None = (-1.0, 1.0), panel_size: float = 1.25) -> "Figure":
    """A figure of panels (rows of ``(title, samples or None)``), each panel a tile of its samples.

    All panels are pasted into one mosaic and drawn with a single ``imshow`` (fast to save as PDF),
    titles are text above each panel.

    Parameters
    ----------
    panels : list of rows of (title, samples or None)
        ``None`` leaves a panel empty.
    image_shape : tuple
        ``(H, W)`` or ``(C, H, W)``.
    value_range : (lo, hi)
        Mapped to black..white (see :func:`tile_images`).
    panel_size : float
        Width of one panel in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from opmerge.analysis.style import new_figure

    nrows, ncols = len(panels), max(len(r) for r in panels)
    tiles = {}
    for i, row in enumerate(panels):
        for j, (title, samples) in enumerate(row):
            if samples is not None:
                tiles[i, j] = (title, tile_images(np.asarray(samples), image_shape, value_range=value_range))
    if not tiles:
        raise InputError("no panel has samples")
    th, tw = max(t.shape[0] for _, t in tiles.values()), max(t.shape[1] for _, t in tiles.values())
    gap_x, gap_y = max(2, tw // 6), max(6, th // 3)  # room between panels and for the titles
    height, width = nrows * (th + gap_y), ncols * (tw + gap_x)
    colour = next(iter(tiles.values()))[1].ndim == 3
    canvas = np.ones((height, width, 3)) if colour else np.ones((height, width))
    for (i, j), (_, tile) in tiles.items():
        y0, x0 = i * (th + gap_y) + gap_y, j * (tw + gap_x)
        canvas[y0:y0 + tile.shape[0], x0:x0 + tile.shape[1]] = tile if colour else 1.0 - tile
    width_in = panel_size * ncols * (tw + gap_x) / tw
    image_h_in = width_in * height / width
    title_in = 0.3
    fig, ax = new_figure(1, 1, width=width_in, height=image_h_in + title_in)
    ax.set_position([0.0, 0.0, 1.0, image_h_in / (image_h_in + title_in)])
    if colour:
        ax.imshow(canvas, interpolation="nearest", aspect="equal")
    else:
        ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    for (i, j), (title, _) in tiles.items():
        if title:
            ax.text(j * (tw + gap_x) + tw / 2, i * (th + gap_y) + gap_y - 1, title, ha="center", va="bottom", fontsize=5.5)
    ax.set_axis_off()
    return fig


def _grid_figure(result: dict, kind: str, dataset, out: Path) -> dict:
    from opmerge.analysis.style import save_figure

    segs = result["config"]["segments"]
    teacher = result["teachers"][kind]
    value_range = dataset.value_range
    panels = [[("data (held-out)", dataset.test[:36]), (f"{kind} teacher, {result['config']['steps']} steps", teacher["samples"])]]
    data_json: dict = {"data": np.asarray(dataset.test[:36]), "teacher": teacher["samples"], "students": {}}
    rows: dict = {}
    for r in result["plan_students"]:
        if r["teacher"] != kind:
            continue
        rows.setdefault((r["recipe"], r["name"]), {})[r["segments"]] = r
    for r in result["trajectory_students"]:
        if r["teacher"] != kind:
            continue
        rows.setdefault((r["method"], ""), {})[r["segments"]] = r
    for (recipe, name), by_m in rows.items():
        row = []
        for m in segs:
            r = by_m.get(m)
            if r is None:
                row.append(("", None))
                continue
            fd = r["metrics"].get("fd_features_test")
            label = f"{recipe} {name} M={m}".replace("  ", " ")
            row.append((f"{label}\nFD feat {fd:.1f}" if fd is not None else label, r["samples"]))
            data_json["students"][f"{recipe}-{name}-M{m}"] = r["samples"]
        panels.append(row)
    fig = plot_sample_grid(panels, dataset.image_shape, value_range)
    fig.text(0.5, 0.995, f"samples: data, {kind} teacher and its students (rows), M student steps (columns)", ha="center", va="top", fontsize=7)
    paths = save_figure(fig, out / f"images_grids_{kind}", data_json, config=result["config"], close=True)
    return {k: str(v) for k, v in paths.items()}


def _gains_figure(result: dict, kind: str, out: Path) -> dict:
    from opmerge.analysis.style import FAMILY_COLORS, new_figure, save_figure

    lam = np.asarray(result["lam"])
    keep = lam > 1e-4
    teacher = result["teachers"][kind]
    t_gain = np.asarray(teacher["linearity"]["gain"])
    gauss = np.asarray(teacher["linearity"]["predicted"])
    segs = result["config"]["segments"]
    recipes = sorted({r["recipe"] for r in result["plan_students"] if r["teacher"] == kind})
    nrows = max(len(recipes), 1)
    fig, axes = new_figure(nrows, len(segs), width=3.3 * len(segs), height=2.8 * nrows, squeeze=False, layout="constrained")
    data: dict = {"lam": lam[keep]}
    for i, recipe in enumerate(recipes):
        for j, m in enumerate(segs):
            ax = axes[i][j]
            sel = [r for r in result["plan_students"] if r["teacher"] == kind and r["recipe"] == recipe and r["segments"] == m]
            seen = set()
            for r in sel:
                if r["plan"] in seen:
                    continue
                seen.add(r["plan"])
                color = FAMILY_COLORS.get(r["name"], "#8C8C8C") if r["name"] != "optimal" else "#000000"
                pred = ratio(r["student_predicted"], gauss)
                meas = ratio(r["gain"], t_gain)
                order = np.argsort(lam[keep])
                ax.plot(lam[keep][order], pred[keep][order], "-", color=color, lw=1.0, label=f"model {r['name']}")
                shown = keep & np.isfinite(meas) & (meas > 0)  # log axis: a non-positive measured ratio (noise) is left out
                ax.plot(lam[shown], meas[shown], "o", color=color, ms=2.5, mfc="none", mew=0.7)
                data[f"{recipe}-M{m}-{r['name']}"] = {"predicted_over_T": pred[keep], "measured_over_teacher": meas[keep], "plan": r["plan"]}
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.axhline(1.0, color="k", lw=0.6, ls=":")
            ax.set_title(f"{kind} teacher, {recipe} students, M = {m}", fontsize=8)
            ax.set_xlabel(r"eigenvalue $\lambda_i$ of the digits covariance", fontsize=8)
            if j == 0:
                ax.set_ylabel("gain / teacher gain\n(line: model S/T, circles: measured g/g$^T$)", fontsize=8)
            if i == 0 and j == 0:
                ax.legend(fontsize=5)
    paths = save_figure(fig, out / f"images_gains_{kind}", data, config=result["config"], close=True)
    return {k: str(v) for k, v in paths.items()}


def _predicted_vs_measured(result: dict, out: Path) -> dict:
    from opmerge.analysis.style import new_figure, save_figure

    fig, (ax1, ax2) = new_figure(1, 2, width=10.0, height=4.2, layout="constrained")
    data: dict = {"w2": {}, "gains": {}}
    lam = np.asarray(result["lam"])
    keep = lam > 1e-4
    groups: dict = {}
    for r in result["plan_students"]:
        groups.setdefault(f"{r['teacher']}-{r['recipe']}", []).append(r)
    for label, rows in groups.items():
        color = _GROUP_COLORS.get(label, "#8C8C8C")
        rank = next((e for e in result["rankings"] if f"{e['teacher']}-{e['recipe']}" == label and e["segments"] == "all"), None)
        rho = rank["w2_cov"]["spearman"] if rank else None
        for m in sorted({r["segments"] for r in rows}):
            sel = [r for r in rows if r["segments"] == m]
            x = [r["w2_predicted"] for r in sel]
            y = [r["w2"]["w2_cov"] for r in sel]
            ax1.scatter(x, y, color=color, marker=_M_MARKERS.get(m, "o"), s=16, alpha=0.85,
                        label=f"{label}" + (f" (Spearman {rho:.2f})" if rho is not None and m == min(r["segments"] for r in rows) else "")
                        if m == min(r["segments"] for r in rows) else None)
            data["w2"][f"{label}-M{m}"] = {"predicted": x, "measured_w2_cov": y, "plans": [r["plan"] for r in sel]}
        teacher = result["teachers"][rows[0]["teacher"]]
        t_gain, gauss = np.asarray(teacher["linearity"]["gain"]), np.asarray(teacher["linearity"]["predicted"])
        px = np.concatenate([ratio(r["student_predicted"], gauss)[keep] for r in rows])
        py = np.concatenate([ratio(r["gain"], t_gain)[keep] for r in rows])
        pos = (px > 0) & (py > 0) & np.isfinite(px) & np.isfinite(py)
        ax2.scatter(px[pos], py[pos], color=color, s=3, alpha=0.35, label=label)
        data["gains"][label] = {"predicted_S_over_T": px, "measured_g_over_teacher": py}
    lims = ax1.get_xlim()
    both = [min(ax1.get_xlim()[0], ax1.get_ylim()[0]), max(ax1.get_xlim()[1], ax1.get_ylim()[1])]
    ax1.plot(both, both, "k:", lw=0.7)
    ax1.set_xlabel("model W2 to the teacher (predicted)")
    ax1.set_ylabel("measured W2 to the teacher's samples (covariance part)")
    ax1.set_title("plans: predicted vs measured W2 (marker: M = 1 o, 2 s, 4 ^)", fontsize=8)
    ax1.legend(fontsize=6)
    del lims
    values = [v for d in data["gains"].values() for key in d for v in np.asarray(d[key]) if np.isfinite(v) and v > 0]
    if values:
        lo, hi = min(values), max(values)
        ax2.plot([lo, hi], [lo, hi], "k:", lw=0.7)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel(r"model $S_i/T_i$ per direction (log)")
    ax2.set_ylabel(r"measured $g_i/g^{teacher}_i$ (log)")
    ax2.set_title("per-direction gains over the teacher's, every plan student", fontsize=8)
    ax2.legend(fontsize=6, markerscale=3)
    paths = save_figure(fig, out / "images_predicted_vs_measured", data, config=result["config"], close=True)
    return {k: str(v) for k, v in paths.items()}


def _calibrated_figure(result: dict, key: str, out: Path) -> dict:
    """Per ``M``: the cost model's prediction against the measured W2 of the study's plans, and its recommended plan."""
    from opmerge.analysis.style import new_figure, save_figure

    pred = result["calibrated_prediction"][key]
    segments = list(pred["by_segments"])
    fig, axes = new_figure(1, len(segments), width=3.6 * len(segments), height=3.6, layout="constrained", squeeze=False)
    data: dict = {"key": key, "pooled": pred["pooled"], "by_segments": {}}
    for ax, m in zip(axes[0], segments):
        e = pred["by_segments"][m]
        ax.scatter(e["predicted"], e["measured"], s=18, color="#0072B2", label="study plans")
        for name, x, y in zip(e["names"], e["predicted"], e["measured"]):
            ax.annotate(name, (x, y), fontsize=5, xytext=(2, 2), textcoords="offset points")
        rec = e.get("recommended")
        if rec is not None:
            ax.scatter([rec["predicted"]], [rec["measured"]], marker="*", s=90, color="#D55E00",
                       label=f"recommended: measured rank {rec['rank']} of {rec['of']}")
        rho = e["spearman"]
        ax.set_title(f"M = {m}: Spearman {rho:+.2f}" if rho is not None else f"M = {m}", fontsize=8)
        from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers at 1, 2, 5 x 10^k (the range spans less than a decade)
            axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("cost model: predicted W2 (log)", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
        data["by_segments"][m] = {"plans": e["plans"], "names": e["names"], "predicted": e["predicted"], "measured": e["measured"],
                                  "recommended": rec}
    axes[0][0].set_ylabel("measured W2 to the teacher (covariance part, log)", fontsize=8)
    rho = pred["pooled"]["spearman"]
    fig.suptitle(f"{key}: calibrated cost model ({pred['law']} law{' + node floors' if pred['floors'] else ''}), "
                 f"pooled Spearman {rho:+.2f}" if rho is not None else key, fontsize=9)
    paths = save_figure(fig, out / f"images_calibrated_{key}", data, config=result["config"], close=True)
    return {k: str(v) for k, v in paths.items()}


def _linearity_figure(result: dict, out: Path) -> dict:
    from opmerge.analysis.style import new_figure, save_figure

    lam = np.asarray(result["lam"])
    keep = lam > 1e-4
    fig, (ax1, ax2) = new_figure(1, 2, width=10.0, height=3.8, layout="constrained")
    data: dict = {"lam": lam[keep]}
    colors = {"gaussian": "#0072B2", "trained": "#D55E00"}
    for kind, info in result["teachers"].items():
        lin = info["linearity"]
        gain, low, high = (np.asarray(lin[k])[keep] for k in ("gain", "gain_low", "gain_high"))
        pred = np.asarray(lin["predicted"])[keep]
        ax1.errorbar(lam[keep], gain, yerr=[gain - low, high - gain], fmt="o", ms=2.5, color=colors.get(kind), capsize=1.5,
                     label=f"{kind} teacher: measured gain (linear share {lin['summary']['linear_share']:.2f})")
        if kind == "trained":
            ax1.plot(lam[keep], np.asarray(lin["nonlinear_residual"])[keep], "x", ms=3, color=colors[kind], label="trained: nonlinear residual share")
        data[kind] = {"gain": gain, "gain_low": low, "gain_high": high, "gaussian_T": pred, "nonlinear_residual": np.asarray(lin["nonlinear_residual"])[keep]}
        steps = info["step_gains"]
        n = np.arange(1, len(steps["linear_share"]) + 1)
        ax2.plot(n, steps["linear_share"], "o-", color=colors.get(kind), ms=3, label=f"{kind}: linear share of step n")
        ax2.plot(n, 1.0 - np.asarray(steps["median_rel_gain_error"], dtype=float), "s--", color=colors.get(kind), ms=3, mfc="none",
                 label=f"{kind}: 1 - median |g - A|/A of step n")
        data[kind]["step_linear_share"] = steps["linear_share"]
        data[kind]["step_median_rel_gain_error"] = steps["median_rel_gain_error"]
    order = np.argsort(lam[keep])
    gauss = np.asarray(next(iter(result["teachers"].values()))["linearity"]["predicted"])[keep]
    ax1.plot(lam[keep][order], gauss[order], "k-", lw=1.0, label="Gaussian teacher T(N->0) (model)")
    ax1.set_xscale("log")
    ax1.set_xlabel(r"eigenvalue $\lambda_i$")
    ax1.set_ylabel("effective gain of the sampler (99% CI)")
    ax1.set_title("how linear is the teacher: sampler z_N -> x per eigen-direction", fontsize=8)
    ax1.legend(fontsize=6)
    ax2.set_xlabel("teacher step n (n -> n-1)")
    ax2.set_ylabel("share")
    ax2.set_title("per step, on forward inputs (real digits)", fontsize=8)
    ax2.legend(fontsize=6)
    paths = save_figure(fig, out / "images_linearity", data, config=result["config"], close=True)
    return {k: str(v) for k, v in paths.items()}


def study_figures(result: dict, dataset: "ImageDataset", out: str | Path) -> dict:
    """All figures of :func:`~experiments.images.study.run_images_study`.

    Parameters
    ----------
    result : dict
        The study's result (before it is written).
    dataset : ImageDataset
        For the held-out images of the grids.
    out : path-like
        Output folder; the figures are ``images_<figure>.{pdf,png,json}``.

    Returns
    -------
    dict
        ``{name: {"pdf", "png", "json"}}`` of the paths written.
    """
    out = Path(out)
    figures: dict = {}
    for kind in result["teachers"]:
        if dataset.is_image:
            figures[f"grids_{kind}"] = _grid_figure(result, kind, dataset, out)
        if any(r["teacher"] == kind for r in result["plan_students"]):
            figures[f"gains_{kind}"] = _gains_figure(result, kind, out)
    if result["plan_students"]:
        figures["predicted_vs_measured"] = _predicted_vs_measured(result, out)
    for key in result.get("calibrated_prediction", {}):
        figures[f"calibrated_{key}"] = _calibrated_figure(result, key, out)
    figures["linearity"] = _linearity_figure(result, out)
    return figures
