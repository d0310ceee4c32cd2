r"""Data spectra: eigenvalues with weights (THEORY.md §1, §5).

Every operator of the linear regime is diagonal in the eigenbasis of the data covariance
:math:`\Sigma = U \operatorname{diag}(\lambda_1..\lambda_d) U^\top`, so a data set enters the theory
only through its spectrum: eigenvalues :math:`\lambda_i \ge 0` with multiplicities (weights)
:math:`\omega_i \ge 0`, and :math:`W_2^2 = \sum_i \omega_i (\ldots)^2` sums over them.

Sources: a list (``"0.5,2,10"`` or ``"0.5:3,2:1"`` with weights), a ``.npy``/``.txt``/``.csv`` file
(1-D: eigenvalues; square 2-D: a covariance; other 2-D: a data matrix, one sample per row),
a covariance matrix, a data array, or the preset ``digits`` (scikit-learn's 8x8 digits, pixels
scaled to [-1, 1]; computed on first use and cached on disk).
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .objective import Problem

__all__ = [
    "Spectrum",
    "BinnedSpectrum",
    "spectrum_from_list",
    "spectrum_from_covariance",
    "spectrum_from_data",
    "load_spectrum",
    "digits_spectrum",
    "bin_spectrum",
    "binning_w2_error",
    "merge_duplicates",
    "cache_dir",
]

PRESETS = ("digits",)
#: relative tolerance for symmetry and for negative eigenvalues that count as rounding
PSD_RTOL = 1e-10
#: eigenvalues below this fraction of the largest are treated as zero when binning
ZERO_RTOL = 1e-12


def _readonly(values) -> np.ndarray:
    arr = np.ascontiguousarray(values, dtype=np.float64).copy()
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Spectrum:
    r"""Eigenvalues :math:`\lambda_i \ge 0` with weights :math:`\omega_i \ge 0` (same shape ``(d,)``)."""

    lam: np.ndarray
    weights: np.ndarray
    name: str = "spectrum"

    def __post_init__(self) -> None:
        lam = np.atleast_1d(np.asarray(self.lam, dtype=np.float64))
        weights = np.atleast_1d(np.asarray(self.weights, dtype=np.float64))
        if lam.ndim != 1 or lam.size == 0:
            raise ValueError(f"a spectrum needs a non-empty 1-D array of eigenvalues, got shape {lam.shape}")
        if weights.shape != lam.shape:
            raise ValueError(f"weights must have the shape of the eigenvalues {lam.shape}, got {weights.shape}")
        if not np.all(np.isfinite(lam)) or np.any(lam < 0):
            raise ValueError("eigenvalues must be finite and >= 0 (allowed range [0, inf))")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("weights must be finite and >= 0 (allowed range [0, inf))")
        object.__setattr__(self, "lam", _readonly(lam))
        object.__setattr__(self, "weights", _readonly(weights))

    @property
    def dim(self) -> int:
        """Number of directions ``d``."""
        return int(self.lam.shape[0])

    def problem(self, schedule, **kwargs) -> Problem:
        """A :class:`~opmerge.objective.Problem` over this spectrum (``kwargs`` as for ``Problem``)."""
        return Problem(schedule, self.lam, weights=self.weights, **kwargs)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"name": self.name, "lam": self.lam.tolist(), "weights": self.weights.tolist()}


def spectrum_from_list(values, weights=None, name: str = "list") -> Spectrum:
    """A spectrum from eigenvalues (and optional weights, default 1 each)."""
    lam = np.atleast_1d(np.asarray(values, dtype=np.float64))
    w = np.ones_like(lam) if weights is None else np.atleast_1d(np.asarray(weights, dtype=np.float64))
    return Spectrum(lam, w, name)


def _check_matrix(matrix, label: str) -> np.ndarray:
    try:
        arr = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{label} must be a numeric array") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{label} contains NaN or inf")
    return arr


def spectrum_from_covariance(cov, name: str = "covariance") -> Spectrum:
    r"""Eigenvalues of a symmetric positive semi-definite matrix.

    Symmetry is checked to ``PSD_RTOL`` relative to the largest entry; eigenvalues down to
    ``-PSD_RTOL * max|eig|`` count as rounding and are set to 0; a more negative one is an error.
    """
    cov = _check_matrix(cov, "covariance")
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"a covariance must be a square 2-D matrix, got shape {cov.shape}")
    scale = max(float(np.max(np.abs(cov))), 1e-300)
    if float(np.max(np.abs(cov - cov.T))) > PSD_RTOL * scale:
        raise ValueError("the covariance is not symmetric")
    eig = np.linalg.eigvalsh(0.5 * (cov + cov.T))[::-1]
    tol = PSD_RTOL * max(float(np.max(np.abs(eig))), 1e-300)
    if eig.min() < -tol:
        raise ValueError(f"the covariance is not positive semi-definite: eigenvalue {float(eig.min()):.6g} < 0")
    return spectrum_from_list(np.clip(eig, 0.0, None), name=name)


def spectrum_from_data(data, name: str = "data") -> Spectrum:
    """Eigenvalues of the sample covariance (centred, ``ddof = 1``) of ``data`` of shape ``(n_samples, dim)``."""
    data = _check_matrix(data, "data")
    if data.ndim != 2:
        raise ValueError(f"data must have shape (n_samples, dim), got shape {data.shape} (flatten images first)")
    if data.shape[0] < 2:
        raise ValueError(f"data needs at least 2 samples, got {data.shape[0]}")
    return spectrum_from_covariance(np.cov(data, rowvar=False, ddof=1).reshape(data.shape[1], data.shape[1]), name=name)


def _parse_list(spec: str) -> Spectrum:
    values, weights = [], []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"empty item in the spectrum list {spec!r}")
        value, _, weight = item.partition(":")
        try:
            values.append(float(value))
            weights.append(float(weight) if weight else 1.0)
        except ValueError as exc:
            raise ValueError(f"cannot read {item!r} in the spectrum list {spec!r} (expected NUMBER or NUMBER:WEIGHT)") from exc
    return spectrum_from_list(values, weights, name="list")


def _from_array(arr: np.ndarray, name: str) -> Spectrum:
    arr = _check_matrix(arr, name)
    if arr.ndim == 1:
        return spectrum_from_list(arr, name=name)
    if arr.ndim == 2 and arr.shape[0] == arr.shape[1]:
        return spectrum_from_covariance(arr, name=name)
    if arr.ndim == 2:
        return spectrum_from_data(arr, name=name)
    raise ValueError(f"{name}: expected a 1-D array of eigenvalues or a 2-D matrix, got shape {arr.shape}")


def load_spectrum(spec: str) -> Spectrum:
    """A spectrum from a string: a comma list (``"0.5,2,10"``, ``"0.5:3,2:1"``), a file, or ``"digits"``.

    Files: ``.npy`` or text (``.txt``/``.csv``, read with ``numpy.loadtxt``); a 1-D array is a list of
    eigenvalues, a square matrix a covariance, any other matrix a data set (one sample per row).
    """
    if not isinstance(spec, str):
        raise TypeError(f"spectrum must be a str, got {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise ValueError("empty spectrum; give a list like 0.5,2,10, a .npy/.txt file, or 'digits'")
    if text in PRESETS:
        return digits_spectrum()
    path = Path(text)
    if path.suffix.lower() in (".npy", ".txt", ".csv") or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"spectrum file not found: {text}")
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr = np.loadtxt(path, delimiter="," if path.suffix.lower() == ".csv" else None, ndmin=1)
        return _from_array(arr, name=path.name)
    if any(ch.isdigit() for ch in text):
        return _parse_list(text)
    raise ValueError(
        f"unknown spectrum {spec!r}: give a comma list like 0.5,2,10 (weights as 0.5:3), "
        "a .npy/.txt/.csv file (eigenvalues, covariance or data), or the preset 'digits'"
    )


def cache_dir() -> Path:
    """Where computed presets are cached: ``$OPMERGE_CACHE_DIR`` or ``~/.cache/opmerge``."""
    return Path(os.environ.get("OPMERGE_CACHE_DIR") or Path.home() / ".cache" / "opmerge")


def _write_atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


DIGITS_CONFIG = {"source": "sklearn.datasets.load_digits", "scaling": "x / 8 - 1 (pixels 0..16 to [-1, 1])", "ddof": 1}


@functools.lru_cache(maxsize=None)
def _digits_cached(directory: str) -> Spectrum:
    path = Path(directory) / "digits_spectrum.npy"
    if path.exists():
        lam = np.load(path, allow_pickle=False)
    else:
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("the 'digits' spectrum needs scikit-learn: pip install 'opmerge[bridge]'") from exc
        pixels = load_digits().data.astype(np.float64) / 8.0 - 1.0
        lam = spectrum_from_data(pixels).lam
        _write_atomic(path, lambda stream: np.save(stream, np.asarray(lam)))
        config = json.dumps(DIGITS_CONFIG | {"n_samples": int(pixels.shape[0]), "dim": int(pixels.shape[1])}, indent=2)
        _write_atomic(path.with_suffix(".json"), lambda stream: stream.write(config.encode()))
    return spectrum_from_list(lam, name="digits")


def digits_spectrum() -> Spectrum:
    """The 64 eigenvalues of the sample covariance of scikit-learn's 8x8 digits (pixels in [-1, 1]), cached."""
    return _digits_cached(str(cache_dir()))


def merge_duplicates(spectrum: Spectrum, rtol: float = 1e-12) -> Spectrum:
    """Merge eigenvalues equal to ``rtol`` (relative) into one direction with the summed weight."""
    order = np.argsort(spectrum.lam)[::-1]
    lam, weights = [], []
    for idx in order:
        value, weight = float(spectrum.lam[idx]), float(spectrum.weights[idx])
        if lam and abs(lam[-1] - value) <= rtol * max(abs(lam[-1]), abs(value)):
            weights[-1] += weight
        else:
            lam.append(value)
            weights.append(weight)
    return Spectrum(np.array(lam), np.array(weights), spectrum.name)


@dataclass(frozen=True, eq=False)
class BinnedSpectrum:
    """A binned spectrum: the binned :class:`Spectrum`, the bin of each original direction, and error numbers."""

    spectrum: Spectrum
    assignment: np.ndarray
    error: dict


def bin_spectrum(spectrum: Spectrum, bins: int) -> BinnedSpectrum:
    r"""Bin a spectrum into at most ``bins`` log-spaced bins over :math:`[\min_{\lambda>0}\lambda, \max\lambda]`.

    Each bin becomes one direction with the weight-averaged eigenvalue
    :math:`\bar\lambda_b = \sum_{i\in b}\omega_i\lambda_i / \sum_{i\in b}\omega_i` and the summed weight
    (this keeps the total variance :math:`\sum_i \omega_i \lambda_i`); zero eigenvalues get a bin of
    their own (below ``ZERO_RTOL`` times the largest eigenvalue); empty bins are dropped. ``error`` reports the largest relative distance of an
    eigenvalue from its bin's value and the weighted spread of :math:`\log\lambda` inside the bins.
    Use :func:`binning_w2_error` for the effect on W2 of given plans.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an int >= 1, got {bins!r}")
    lam, weights = spectrum.lam, spectrum.weights
    # eigenvalues at the rounding level of the largest one count as zero (a covariance of rank < d)
    positive = lam > ZERO_RTOL * float(lam.max())
    assignment = np.zeros(lam.shape[0], dtype=np.int64)
    if np.any(positive):
        lo, hi = float(lam[positive].min()), float(lam[positive].max())
        edges = np.geomspace(lo, hi, int(bins) + 1) if hi > lo else np.array([lo, hi])
        idx = np.clip(np.searchsorted(edges, lam[positive], side="right") - 1, 0, len(edges) - 2)
        assignment[positive] = idx + 1
    assignment[~positive] = 0  # the zero bin
    labels = np.unique(assignment)
    new_lam, new_w, remap = [], [], {}
    for k, label in enumerate(labels):
        members = assignment == label
        w = weights[members]
        total = float(w.sum())
        value = float(np.sum(w * lam[members]) / total) if total > 0 else float(lam[members].mean())
        new_lam.append(value)
        new_w.append(total)
        remap[int(label)] = k
    assignment = np.array([remap[int(a)] for a in assignment], dtype=np.int64)
    binned = Spectrum(np.array(new_lam), np.array(new_w), f"{spectrum.name} ({len(new_lam)} bins)")
    rep = binned.lam[assignment]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(lam > 0, np.abs(lam - rep) / lam, 0.0)
        logs = np.where(lam > 0, np.log(np.where(lam > 0, lam, 1.0)), 0.0)
    spread = 0.0
    for k in range(binned.dim):
        members = (assignment == k) & (lam > 0)
        if members.sum() > 1:
            w = weights[members]
            mean = np.sum(w * logs[members]) / max(w.sum(), 1e-300)
            spread += float(np.sum(w * (logs[members] - mean) ** 2))
    total_w = max(float(weights.sum()), 1e-300)
    error = {
        "bins_requested": int(bins),
        "directions": int(binned.dim),
        "max_relative_lam_error": float(rel.max()) if rel.size else 0.0,
        "weighted_log_lam_spread": math.sqrt(spread / total_w),
    }
    return BinnedSpectrum(binned, assignment, error)


def binning_w2_error(spectrum: Spectrum, binned: BinnedSpectrum, schedule, plans, **problem_kwargs) -> dict:
    """W2 of each plan on the full and on the binned spectrum, and their relative difference."""
    from .objective import evaluate_plan

    full = spectrum.problem(schedule, **problem_kwargs)
    coarse = binned.spectrum.problem(schedule, **problem_kwargs)
    out = {}
    for plan in plans:
        w_full = evaluate_plan(full, plan).w2
        w_coarse = evaluate_plan(coarse, plan).w2
        out[str(plan)] = {"w2": w_full, "w2_binned": w_coarse, "relative_error": abs(w_coarse - w_full) / max(w_full, 1e-300)}
    return out
