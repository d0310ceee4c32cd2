r"""Merging equal eigenvalues and binning a spectrum, with the error binning makes (private).

The public names are in :mod:`opmerge.spectra` (:func:`merge_duplicates`, :func:`bin_spectrum`,
:class:`BinnedSpectrum`, :func:`binning_w2_error`); ``docs/spectra.md`` explains the choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._validate import integer, real_number
from .errors import InputError, InputTypeError
from .objective import evaluate_plan
from .plans import CANONICAL_KINDS, Plan, canonical_plan, parse_plan
from ._spectrum import Spectrum


__all__ = ["ZERO_RTOL", "MAX_BINS", "BinnedSpectrum", "merge_duplicates", "bin_spectrum", "binning_w2_error"]

#: eigenvalues below this fraction of the largest are treated as zero when binning
ZERO_RTOL = 1e-12


#: largest number of bins :func:`bin_spectrum` accepts (more bins than this cannot make a plan
#: problem any solver finishes; the ``--bins`` option has the same limit)
MAX_BINS = 100_000


def merge_duplicates(spectrum: Spectrum, rtol: float = 1e-12) -> Spectrum:
    r"""Merge eigenvalues equal to ``rtol`` into one direction with the summed weight.

    Two eigenvalues are equal when :math:`|\lambda_a - \lambda_b| \le \mathrm{rtol}\cdot\max(\lambda_a, \lambda_b)`
    (zeros are equal to each other); equal values are chained in sorted order. Each group keeps the
    value and the position of its first member in the input order. W2 is unchanged for every plan
    when the merged eigenvalues are exactly equal (the terms of equal directions add up).

    Parameters
    ----------
    spectrum : Spectrum
    rtol : float
        Relative tolerance, a finite number ``>= 0``.

    Returns
    -------
    Spectrum

    Raises
    ------
    InputTypeError
        When ``rtol`` is not a number (``bool`` included).
    InputError
        When it is negative or not finite.
    """

    if not isinstance(spectrum, Spectrum):
        raise InputTypeError(f"spectrum must be a Spectrum, got {type(spectrum).__name__}")
    rtol = real_number(rtol, "rtol", low=0.0)
    lam, weights = spectrum.lam, spectrum.weights
    order = np.argsort(lam, kind="stable")
    group = np.empty(lam.shape[0], dtype=np.int64)
    current = 0
    for t, idx in enumerate(order):
        if t > 0:
            prev = lam[order[t - 1]]
            if abs(lam[idx] - prev) > rtol * max(lam[idx], prev):
                current += 1
        group[idx] = current
    first_of: dict = {}
    for idx in range(lam.shape[0]):
        first_of.setdefault(int(group[idx]), idx)
    firsts = sorted(first_of.values())
    new_lam = np.array([lam[f] for f in firsts])
    new_w = np.array([float(np.sum(weights[group == group[f]])) for f in firsts])
    return Spectrum(new_lam, new_w, spectrum.name)


@dataclass(frozen=True, eq=False)
class BinnedSpectrum:
    """A binned spectrum.

    Attributes
    ----------
    spectrum : Spectrum
        The binned spectrum (one direction per non-empty bin, descending eigenvalue; the zero bin last).
    assignment : (d,) int array
        Index (into ``spectrum``) of the bin of each original direction.
    error : dict
        Error numbers of the approximation (see :func:`bin_spectrum`).
    source : Spectrum
        The original spectrum.
    """

    spectrum: Spectrum
    assignment: np.ndarray
    error: dict
    source: Spectrum | None = None

    def to_dict(self) -> dict:
        """JSON-friendly form (binned spectrum, assignment, error, original name)."""
        return {
            "spectrum": self.spectrum.to_dict(),
            "assignment": self.assignment.tolist(),
            "error": dict(self.error),
            "source": None if self.source is None else self.source.name,
        }


def bin_spectrum(spectrum: Spectrum, bins: int) -> BinnedSpectrum:
    r"""Bin a spectrum into at most ``bins`` log-spaced bins.

    The bins split :math:`[\lambda_{\min}^{+}, \lambda_{\max}]` (smallest positive to largest
    eigenvalue) at :math:`\lambda_{\min}^{+} (\lambda_{\max}/\lambda_{\min}^{+})^{k/B}`,
    ``k = 0..B`` (the largest value belongs to the last bin). Eigenvalues at most
    :data:`ZERO_RTOL` times the largest are zero and get a bin of their own at :math:`\lambda = 0`.
    Each non-empty bin :math:`b` becomes one direction with the summed weight
    :math:`\Omega_b = \sum_{i\in b}\omega_i` and the weight-averaged eigenvalue

    .. math:: \bar\lambda_b = \sum_{i\in b}\omega_i\lambda_i \big/ \Omega_b

    (the plain mean when :math:`\Omega_b = 0`): the total variance :math:`\sum\omega\lambda` is kept
    exactly. Empty bins are dropped.

    ``error`` (no plan needed):

    * ``max_relative_lam_error``: :math:`\max_i |\bar\lambda_{b(i)} - \lambda_i| / \lambda_i` over positive eigenvalues;
    * ``weighted_log_lam_spread``: the weighted RMS of :math:`\log\lambda_i - \log\bar\lambda_{b(i)}`
      over positive eigenvalues, :math:`\sqrt{\sum\omega_i(\cdot)^2/\sum\omega_i}`;
    * ``trace_relative_error``: relative change of :math:`\sum\omega\lambda` (rounding only);
    * ``bins_requested``, ``directions`` (non-empty bins).

    For the effect on W2 of given plans use :func:`binning_w2_error`.

    Parameters
    ----------
    spectrum : Spectrum
    bins : int
        ``1 <= B <=`` :data:`MAX_BINS`.
    """

    bins = integer(bins, "bins", low=1, high=MAX_BINS)
    if not isinstance(spectrum, Spectrum):
        raise InputTypeError(f"spectrum must be a Spectrum, got {type(spectrum).__name__}")
    lam, weights = spectrum.lam, spectrum.weights
    positive = lam > ZERO_RTOL * float(lam.max())
    raw = np.full(lam.shape[0], -1, dtype=np.int64)  # -1: the zero bin
    if np.any(positive):
        lo, hi = float(lam[positive].min()), float(lam[positive].max())
        if hi > lo:
            edges = np.geomspace(lo, hi, int(bins) + 1)
            raw[positive] = np.clip(np.searchsorted(edges, lam[positive], side="right") - 1, 0, int(bins) - 1)
        else:
            raw[positive] = 0
    labels = sorted(set(raw.tolist()), key=lambda b: (b < 0, -b))  # descending eigenvalue, zero bin last
    new_lam, new_w = [], []
    assignment = np.empty(lam.shape[0], dtype=np.int64)
    for k, label in enumerate(labels):
        members = raw == label
        assignment[members] = k
        w = weights[members]
        total = float(w.sum())
        if label < 0:
            value = 0.0
        else:
            value = float(np.sum(w * lam[members]) / total) if total > 0 else float(lam[members].mean())
        new_lam.append(value)
        new_w.append(total)
    binned = Spectrum(np.array(new_lam), np.array(new_w), f"{spectrum.name} ({len(new_lam)} bins)")
    rep = binned.lam[assignment]
    pos = lam > 0
    rel = np.abs(rep[pos] - lam[pos]) / lam[pos] if np.any(pos) else np.zeros(0)
    if np.any(pos & (rep > 0)):
        mask = pos & (rep > 0)
        w = weights[mask]
        logs = np.log(lam[mask]) - np.log(rep[mask])
        spread = math.sqrt(float(np.sum(w * logs**2)) / float(w.sum())) if float(w.sum()) > 0 else 0.0
    else:
        spread = 0.0
    trace = spectrum.trace
    error = {
        "bins_requested": int(bins),
        "directions": int(binned.dim),
        "max_relative_lam_error": float(rel.max()) if rel.size else 0.0,
        "weighted_log_lam_spread": spread,
        "trace_relative_error": abs(binned.trace - trace) / trace if trace > 0 else 0.0,
    }
    return BinnedSpectrum(binned, assignment, error, spectrum)


def _as_plan(plan, steps: int, segments: int) -> Plan:
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, str):
        if plan in CANONICAL_KINDS:
            return canonical_plan(plan, steps, segments)
        return parse_plan(plan, steps=steps)
    raise InputTypeError(f"plans must be Plans, plan texts or canonical kinds {CANONICAL_KINDS}, got {type(plan).__name__}")


def binning_w2_error(spectrum: Spectrum, binned: BinnedSpectrum, problem_kwargs: dict, plans=None) -> dict:
    r"""W2 of given plans on the full and on the binned spectrum.

    For each plan :math:`P`: :math:`W_2(P)` with the full spectrum, :math:`\tilde W_2(P)` with the
    binned one, and the relative error :math:`|\tilde W_2 - W_2| / W_2` (absolute when :math:`W_2 = 0`).

    Parameters
    ----------
    spectrum : Spectrum
    binned : BinnedSpectrum
        From :func:`bin_spectrum` (of ``spectrum``).
    problem_kwargs : dict
        Arguments of :class:`~opmerge.objective.Problem` other than ``lam``/``weights``; must
        contain ``schedule``.
    plans : iterable of Plan, plan text or canonical kind, optional
        Default: the canonical plans ``vanilla``, ``boot``, ``cd``, ``pd``.

    Returns
    -------
    dict
        ``{"plans": {text: {"w2", "w2_binned", "relative_error"}}, "max_relative_error": float}``.
    """
    if not isinstance(problem_kwargs, dict) or "schedule" not in problem_kwargs:
        raise InputError("problem_kwargs must be a dict with at least 'schedule' (and optionally model, solver, target, segments)")
    kwargs = dict(problem_kwargs)
    schedule = kwargs.pop("schedule")
    full = spectrum.problem(schedule, **kwargs)
    coarse = binned.spectrum.problem(schedule, **kwargs)
    plans = list(CANONICAL_KINDS) if plans is None else list(plans)
    out: dict = {}
    worst = 0.0
    for item in plans:
        plan = _as_plan(item, full.steps, full.segments)
        w_full = evaluate_plan(full, plan).w2
        w_coarse = evaluate_plan(coarse, plan).w2
        rel = abs(w_coarse - w_full) / w_full if w_full > 0 else abs(w_coarse - w_full)
        out[str(plan)] = {"w2": w_full, "w2_binned": w_coarse, "relative_error": rel}
        worst = max(worst, rel)
    return {"plans": out, "max_relative_error": worst}
