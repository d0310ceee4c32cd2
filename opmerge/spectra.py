r"""Data spectra: eigenvalues with weights (docs/theory.md §1, §5).

Every operator of the linear regime is diagonal in the eigenbasis of the data covariance
:math:`\Sigma = U \operatorname{diag}(\lambda_1..\lambda_d) U^\top`, so a data set enters the theory
only through its spectrum: eigenvalues :math:`\lambda_i \ge 0` with multiplicities (weights)
:math:`\omega_i \ge 0`, and :math:`W_2^2 = \sum_i \omega_i (\ldots)^2` sums over them.

Sources
-------
* a list: :func:`spectrum_from_list`, or the text ``"0.5,2,10"`` / ``"0.5:3,2:1"`` (``value:weight``);
* a covariance matrix: :func:`spectrum_from_covariance` (symmetric, positive semi-definite);
* a data matrix ``(n_samples, dim)``: :func:`spectrum_from_data` (centred sample covariance, ``ddof=1``);
* a file: ``.npy``, ``.txt`` or ``.csv`` (1-D: eigenvalues; square 2-D: a covariance; other 2-D: a
  data matrix, one sample per row);
* the preset ``digits``: scikit-learn's 8x8 digits, pixels scaled to :math:`[-1, 1]`
  (:func:`digits_spectrum`, shipped as package data).

:func:`load_spectrum` reads any of the text forms. :func:`bin_spectrum` reduces a long spectrum to
a few log-spaced bins (fewer directions for the joint solver) and reports the error it introduces;
:func:`binning_w2_error` measures that error on the W2 of given plans. The choices are explained in
``docs/spectra.md``. Merging and binning are implemented in the private module
``opmerge._spectra_binning``; import them from here.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from ._spectrum import Spectrum
from ._spectra_binning import MAX_BINS, ZERO_RTOL, BinnedSpectrum, bin_spectrum, binning_w2_error, merge_duplicates  # noqa: F401 (MAX_BINS, ZERO_RTOL)
from ._validate import echo, real_array
from .errors import InputError, InputTypeError
from .io import load_array

__all__ = [
    "PRESETS",
    "MAX_BINS",
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
    "digits_data_path",
]

#: named spectra accepted by :func:`load_spectrum`
PRESETS = ("digits",)
#: relative tolerance for the symmetry of a covariance and for negative eigenvalues that count as rounding
PSD_RTOL = 1e-10
_ACCEPTED_FORMS = (
    "a comma list of eigenvalues like '0.5,2,10' (weights as 'value:weight', e.g. '0.5:3,2:1'), "
    "a path to a .npy, .txt or .csv file (1-D: eigenvalues; square 2-D: a covariance; other 2-D: a data "
    "matrix with one sample per row), or the preset 'digits'"
)


def spectrum_from_list(values, weights=None, name: str = "list") -> Spectrum:
    r"""A spectrum from eigenvalues :math:`\lambda_i` and optional weights :math:`\omega_i` (default 1 each).

    Parameters
    ----------
    values : number or sequence of numbers
    weights : sequence of numbers, optional
    name : str

    Returns
    -------
    Spectrum
    """
    lam = np.atleast_1d(real_array(values, "values"))
    w = np.ones_like(lam) if weights is None else np.atleast_1d(real_array(weights, "weights"))
    return Spectrum(lam, w, name)


def _check_matrix(matrix, label: str) -> np.ndarray:
    arr = real_array(matrix, label)
    if arr.size and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"{label} contains NaN or inf (first at index {tuple(int(b) for b in bad)}); every entry must be finite")
    return arr


def spectrum_from_covariance(cov, name: str = "covariance") -> Spectrum:
    r"""Eigenvalues of a symmetric positive semi-definite matrix :math:`\Sigma = U\,\mathrm{diag}(\lambda)\,U^\top`.

    * The matrix must be square with finite entries and symmetric to
      :data:`PSD_RTOL` relative to its largest entry (it is then symmetrised, :math:`(\Sigma + \Sigma^\top)/2`).
    * Eigenvalues come from ``numpy.linalg.eigvalsh``, sorted in descending order.
    * An eigenvalue below :math:`-\mathrm{PSD\_RTOL}\cdot\max|\lambda|` means the matrix is not positive
      semi-definite (``ValueError`` naming it); negative ones above that count as rounding and become 0.
    * Eigenvalues with :math:`|\lambda| \le d\,\varepsilon \max|\lambda|` (the numerical-rank cut of
      ``numpy.linalg.matrix_rank``) are set to exactly 0: they are zeros up to rounding.

    Parameters
    ----------
    cov : array of shape (d, d)
    name : str

    Returns
    -------
    Spectrum
        Weights 1.
    """
    cov = _check_matrix(cov, "covariance")
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise InputError(f"a covariance must be a non-empty square 2-D matrix, got shape {cov.shape}")
    largest = float(np.max(np.abs(cov)))
    asym = float(np.max(np.abs(cov - cov.T)))
    if asym > PSD_RTOL * max(largest, 1e-300):
        raise InputError(
            f"the covariance is not symmetric: max |C - C^T| = {asym:.3g} exceeds {PSD_RTOL:g} x max |C| = {PSD_RTOL * largest:.3g}"
        )
    eig = np.linalg.eigvalsh(0.5 * (cov + cov.T))[::-1].copy()
    top = float(np.max(np.abs(eig)))
    most_negative = float(eig.min())
    if most_negative < -PSD_RTOL * top:
        raise InputError(
            f"the covariance is not positive semi-definite: its most negative eigenvalue is {most_negative:.6g} "
            f"(tolerance {-PSD_RTOL * top:.3g} = -{PSD_RTOL:g} x max |eigenvalue|)"
        )
    eig[np.abs(eig) <= eig.shape[0] * np.finfo(np.float64).eps * top] = 0.0
    eig = np.clip(eig, 0.0, None)
    return spectrum_from_list(eig, name=name)


def spectrum_from_data(data, name: str = "data") -> Spectrum:
    r"""Eigenvalues of the centred sample covariance (``ddof = 1``) of ``data``.

    :math:`\hat\Sigma = \frac{1}{n-1}\sum_k (x_k - \bar x)(x_k - \bar x)^\top`, then
    :func:`spectrum_from_covariance`.

    Parameters
    ----------
    data : array of shape (n_samples, dim)
        ``n_samples >= 2``. Images of shape ``(n, h, w)`` must be flattened by the caller
        (``data.reshape(len(data), -1)``): other shapes are rejected.
    name : str
    """
    data = _check_matrix(data, "data")
    if data.ndim != 2:
        hint = " (flatten images first: data.reshape(len(data), -1))" if data.ndim > 2 else ""
        raise InputError(f"data must have shape (n_samples, dim), got shape {data.shape}{hint}")
    if data.shape[0] < 2:
        raise InputError(f"data needs n_samples >= 2 (one sample per row), got shape {data.shape}")
    if data.shape[1] < 1:
        raise InputError(f"data needs dim >= 1, got shape {data.shape}")
    cov = np.cov(data, rowvar=False, ddof=1).reshape(data.shape[1], data.shape[1])
    return spectrum_from_covariance(cov, name=name)


def _parse_list(spec: str) -> Spectrum:
    values, weights = [], []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise InputError(f"empty item in the spectrum list {echo(spec)!r}; accepted forms: {_ACCEPTED_FORMS}")
        value, sep, weight = item.partition(":")
        try:
            values.append(float(value))
            weights.append(float(weight) if sep else 1.0)
        except ValueError as exc:
            raise InputError(f"cannot read {echo(item)!r} in the spectrum list {echo(spec)!r} (expected NUMBER or NUMBER:WEIGHT); "
                             f"accepted forms: {_ACCEPTED_FORMS}") from exc
    return spectrum_from_list(values, weights, name="list")


def _from_array(arr: np.ndarray, name: str) -> Spectrum:
    arr = _check_matrix(arr, name)
    if arr.ndim == 1:
        return spectrum_from_list(arr, name=name)
    if arr.ndim == 2 and arr.shape[0] == arr.shape[1]:
        return spectrum_from_covariance(arr, name=name)
    if arr.ndim == 2:
        return spectrum_from_data(arr, name=name)
    raise InputError(f"{name}: expected a 1-D array of eigenvalues or a 2-D matrix (covariance or data), got shape {arr.shape}")


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a text that cannot be a path (too long, NUL bytes)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def load_spectrum(spec) -> Spectrum:
    """A spectrum from its text form (the ``--spectrum`` option).

    Accepted forms, tried in this order:

    1. a preset name (:data:`PRESETS`: ``"digits"``);
    2. a path (``str`` or ``os.PathLike``) ending in ``.npy``, ``.txt`` or ``.csv``, or any existing file:
       read by :func:`opmerge.io.load_array` (``.npy`` with ``allow_pickle=False``, text with
       ``numpy.loadtxt``, comma-separated when the file has commas; pickled, complex, boolean,
       non-numeric and non-finite contents are refused, never converted); a 1-D array is a list of eigenvalues, a square matrix a covariance, any
       other matrix a data set with one sample per row;
    3. a comma list ``"0.5,2,10"`` with optional weights ``"0.5:3,2:1"``.

    Parameters
    ----------
    spec : str or path-like
        One of the forms above.

    Returns
    -------
    Spectrum

    Raises
    ------
    InputError
        For anything else (listing the accepted forms) and for a file whose content is not real,
        finite numbers (the message names the file).
    InputTypeError
        When ``spec`` is neither a ``str`` nor a path.
    FileNotFoundError
        For a missing file (an :class:`opmerge.io.MissingFileError`, also an ``InputError``).
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise InputTypeError(f"spectrum must be a str or a path, got {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise InputError(f"empty spectrum; accepted forms: {_ACCEPTED_FORMS}")
    if text.lower() in PRESETS:
        return digits_spectrum()
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".txt", ".csv") or _is_file(path):
        # one validated loader: no pickles, real numbers only (complex and boolean files are refused), finite
        arr = load_array(path, name="spectrum file")
        return _from_array(arr, name=path.name)
    if any(ch.isdigit() for ch in text):
        return _parse_list(text)
    raise InputError(f"unknown spectrum {echo(str(spec))!r}; accepted forms: {_ACCEPTED_FORMS}")


# ---------------------------------------------------------------------------------------------
# the digits preset, shipped as package data
# ---------------------------------------------------------------------------------------------


#: how the shipped digits eigenvalues were computed (:func:`_compute_digits_eigenvalues` redoes it)
DIGITS_CONFIG = {
    "source": "sklearn.datasets.load_digits",
    "n_samples": 1797,
    "dim": 64,
    "scaling": "x / 8 - 1 (pixels 0..16 to [-1, 1])",
    "covariance": "centred sample covariance, ddof = 1 (numpy.cov)",
    "eigenvalues": "numpy.linalg.eigvalsh, descending; |lambda| <= d eps max|lambda| set to 0",
    "ddof": 1,
    "format": 1,
}
#: the package-data file (``opmerge/data/``) holding the 64 eigenvalues as a float64 ``.npy`` array
DIGITS_FILE = "digits_spectrum.npy"


def _compute_digits_eigenvalues() -> np.ndarray:
    """Recompute the digits eigenvalues from scikit-learn's data (the shipped file was made by this).

    Raises
    ------
    ModuleNotFoundError
        When scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ModuleNotFoundError(
            "recomputing the 'digits' spectrum needs scikit-learn: pip install 'opmerge[bridge]' (or pip install scikit-learn)",
            name="sklearn",
        ) from exc
    pixels = load_digits().data.astype(np.float64) / 8.0 - 1.0
    return np.asarray(spectrum_from_data(pixels, name="digits").lam)


def digits_data_path() -> Path:
    """Path of the shipped digits eigenvalues (``opmerge/data/digits_spectrum.npy``)."""
    return Path(__file__).resolve().parent / "data" / DIGITS_FILE


@functools.lru_cache(maxsize=None)
def _digits_cached() -> Spectrum:
    lam = np.load(digits_data_path(), allow_pickle=False)
    if lam.dtype != np.float64 or lam.shape != (DIGITS_CONFIG["dim"],):
        raise RuntimeError(f"the shipped digits spectrum {digits_data_path()} is damaged (dtype {lam.dtype}, shape {lam.shape}); reinstall opmerge")
    return spectrum_from_list(lam, name="digits")


def digits_spectrum() -> Spectrum:
    r"""The 64 eigenvalues of the sample covariance of scikit-learn's 8x8 digits.

    1797 images, pixel values :math:`0..16` scaled to :math:`[-1, 1]` by :math:`x/8 - 1`; centred
    sample covariance with ``ddof = 1``; eigenvalues in descending order, those at rounding level
    set to 0 (:func:`spectrum_from_covariance`); weights 1 (:data:`DIGITS_CONFIG`).

    The eigenvalues ship with opmerge as package data (``opmerge/data/digits_spectrum.npy``,
    computed once by :func:`_compute_digits_eigenvalues`), so neither scikit-learn nor torch is
    needed; a test recomputes them (to the eigensolver's accuracy) when scikit-learn is installed. Within a process
    the spectrum is read once and kept.

    Returns
    -------
    Spectrum
        Named ``"digits"``, ``dim = 64``.
    """
    return _digits_cached()


# the binning types present themselves (repr, pickle, docs) under this public module
BinnedSpectrum.__module__ = __name__
