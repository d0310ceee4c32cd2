r"""One shared figure style for every opmerge figure, and atomic saving as PDF + PNG + JSON.

Importing this module selects matplotlib's non-interactive ``Agg`` backend unless a backend was
already chosen (``MPLBACKEND`` set, e.g. by a Jupyter kernel, or pyplot already imported), and
sets the rcParams in :data:`RC_PARAMS`. Families always get the same colours
(:data:`FAMILY_COLORS`, Okabe–Ito colour-blind safe palette; ``mixed`` is grey).

:func:`save_figure` writes ``stem.pdf``, ``stem.png`` and ``stem.json`` (the numbers shown in
the figure, its configuration and the :func:`opmerge.io.provenance` block), each through
:func:`opmerge.io.atomic_path` (temporary file beside the destination, fsync, ``os.replace``).
PDF and PNG carry no creation date, so reruns are byte-stable where matplotlib allows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import matplotlib

if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from opmerge.errors import InputError, InputTypeError  # noqa: E402
from opmerge.io import atomic_path, provenance, to_jsonable, write_json  # noqa: E402

__all__ = [
    "FAMILY_COLORS",
    "FAMILY_LABELS",
    "FAMILY_ORDER",
    "RC_PARAMS",
    "apply_style",
    "family_cmap",
    "family_color",
    "new_figure",
    "save_figure",
]

#: families in display order (tie-breaking order, then mixed)
FAMILY_ORDER = ("vanilla", "boot", "cd", "pd", "mixed")
#: family -> colour (Okabe–Ito)
FAMILY_COLORS = {
    "vanilla": "#0072B2",  # blue
    "boot": "#E69F00",  # orange
    "cd": "#009E73",  # green
    "pd": "#CC79A7",  # reddish purple
    "mixed": "#8C8C8C",  # grey
}
#: family -> legend label
FAMILY_LABELS = {"vanilla": "vanilla", "boot": "BOOT", "cd": "CD", "pd": "PD", "mixed": "mixed"}
#: colour of the optimum curve and of transition lines
OPTIMUM_COLOR = "#000000"
TRANSITION_COLOR = "#D55E00"

RC_PARAMS = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.hashsalt": "opmerge",
}


def apply_style() -> None:
    """Set :data:`RC_PARAMS` in ``matplotlib.rcParams`` (done once at import; idempotent)."""
    matplotlib.rcParams.update(RC_PARAMS)


apply_style()


def family_color(family: str) -> str:
    """Colour of a family (``ValueError`` for an unknown one).

    Parameters
    ----------
    family : {"vanilla", "boot", "cd", "pd", "mixed"}

    Returns
    -------
    str
        Hex colour.
    """
    try:
        return FAMILY_COLORS[family]
    except KeyError:
        raise InputError(f"family must be one of {', '.join(FAMILY_ORDER)}, got {family!r}") from None


def family_cmap() -> ListedColormap:
    """Categorical colormap whose entry ``k`` is the colour of ``FAMILY_ORDER[k]``."""
    return ListedColormap([FAMILY_COLORS[f] for f in FAMILY_ORDER], name="opmerge-families")


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float | None = None, height: float | None = None, **kwargs):
    """``plt.subplots`` with the house size (``width``/``height`` in inches override it).

    Returns
    -------
    (Figure, Axes or array of Axes)
    """
    w, h = RC_PARAMS["figure.figsize"]
    return plt.subplots(nrows, ncols, figsize=(width or w, height or h), **kwargs)


def _save_atomic(fig, path: Path, fmt: str) -> None:
    metadata: dict[str, Any] = {"Software": None} if fmt == "png" else {"CreationDate": None, "Creator": None, "Producer": None}
    with atomic_path(path, suffix=f".{fmt}") as tmp:
        fig.savefig(tmp, format=fmt, metadata=metadata)


def save_figure(fig, stem: str | os.PathLike, data: dict, *, config: dict | None = None, close: bool = False) -> dict[str, Path]:
    """Save a figure as ``stem.pdf``, ``stem.png`` and ``stem.json``, each atomically.

    ``stem.json`` is ``{"figure", "data", "config", "provenance"}`` (strict JSON: non-finite numbers
    are written as ``null``).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    stem : path-like
        Output path without extension (its folder is created).
    data : dict
        The numbers shown in the figure (numpy arrays allowed); stored under ``"data"``.
    config : dict, optional
        Configuration that produced them; stored under ``"config"``.
    close : bool
        Close the figure afterwards.

    Returns
    -------
    dict
        ``{"pdf": Path, "png": Path, "json": Path}``.
    """
    if not isinstance(data, dict):
        raise InputTypeError(f"data must be a dict of the numbers shown, got {type(data).__name__}")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = {ext: stem.with_name(stem.name + "." + ext) for ext in ("pdf", "png", "json")}
    _save_atomic(fig, paths["pdf"], "pdf")
    _save_atomic(fig, paths["png"], "png")
    payload = {"figure": stem.name, "data": to_jsonable(data), "config": to_jsonable(config or {}), "provenance": provenance()}
    write_json(paths["json"], payload)
    if close:
        plt.close(fig)
    return paths
