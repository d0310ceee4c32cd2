r"""The :class:`Spectrum` type (private; public as :class:`opmerge.spectra.Spectrum`).

It lives in its own module so that :mod:`opmerge.spectra` and the binning module
(:mod:`opmerge._spectra_binning`) both import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._util import readonly_float64
from ._validate import real_array
from .errors import InputError, InputTypeError
from .objective import Problem

__all__ = ["Spectrum"]


@dataclass(frozen=True, eq=False)
class Spectrum:
    r"""Eigenvalues :math:`\lambda_i \ge 0` with weights :math:`\omega_i \ge 0`.

    The arrays are stored as read-only float64 copies. The spectrum's total variance is
    :math:`\operatorname{tr}\Sigma = \sum_i \omega_i \lambda_i` (:attr:`trace`).

    Parameters
    ----------
    lam : array of shape (d,)
        Finite eigenvalues :math:`\ge 0`, ``d >= 1``; kept in the given order (not sorted).
    weights : array of shape (d,)
        Finite multiplicities :math:`\ge 0`.
    name : str
        A label (file name, ``"digits"``, ...).
    """

    lam: np.ndarray
    weights: np.ndarray
    name: str = "spectrum"

    def __post_init__(self) -> None:
        lam = np.atleast_1d(real_array(self.lam, "lam"))
        weights = np.atleast_1d(real_array(self.weights, "weights"))
        if lam.ndim != 1 or lam.size == 0:
            raise InputError(f"lam must be a non-empty 1-D array of eigenvalues (d >= 1), got shape {lam.shape}")
        if weights.shape != lam.shape:
            raise InputError(f"weights must have the shape of the eigenvalues {lam.shape}, got {weights.shape}")
        if not np.all(np.isfinite(lam)):
            raise InputError("lam (the eigenvalues) must be finite (no NaN or inf); allowed range [0, inf)")
        if np.any(lam < 0):
            raise InputError(f"lam (the eigenvalues) must be >= 0 (allowed range [0, inf)), got {float(lam.min())!r}")
        if not np.all(np.isfinite(weights)):
            raise InputError("weights must be finite (no NaN or inf); allowed range [0, inf)")
        if np.any(weights < 0):
            raise InputError(f"weights must be >= 0 (allowed range [0, inf)), got {float(weights.min())!r}")
        if not isinstance(self.name, str):
            raise InputTypeError(f"name must be a str, got {type(self.name).__name__}")
        object.__setattr__(self, "lam", readonly_float64(lam))
        object.__setattr__(self, "weights", readonly_float64(weights))

    @property
    def dim(self) -> int:
        """Number of directions ``d``."""
        return int(self.lam.shape[0])

    @property
    def trace(self) -> float:
        r"""Total variance :math:`\sum_i \omega_i \lambda_i`."""
        return float(np.sum(self.weights * self.lam))

    def problem(self, schedule, **kwargs) -> Problem:
        """A :class:`~opmerge.objective.Problem` over this spectrum; ``kwargs`` as for ``Problem``
        (``model``, ``solver``, ``target``, ``segments``)."""
        for key in ("lam", "weights"):
            if key in kwargs:
                raise InputTypeError(f"{key} comes from the spectrum; do not pass it to Spectrum.problem")
        return Problem(schedule, self.lam, weights=self.weights, **kwargs)

    def to_dict(self) -> dict:
        """JSON-friendly form: ``name``, ``dim``, ``lam``, ``weights``, ``trace``."""
        return {"name": self.name, "dim": self.dim, "lam": self.lam.tolist(), "weights": self.weights.tolist(), "trace": self.trace}


Spectrum.__module__ = "opmerge.spectra"
