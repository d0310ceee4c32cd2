r"""How linear is a teacher (or student) on image data: per-direction gains in the data's eigenbasis (``docs/theory.md`` §7).

For a sampler :math:`f: z_N \mapsto x` and the Gaussian fit :math:`\mathcal N(\mu, U\operatorname{diag}(\lambda)U^\top)`
of the training images, draw fresh :math:`z_N`, and regress per direction ``i`` the centred output
coordinate :math:`y_i = ((f(z) - \mu)U)_i` on the centred input coordinate :math:`c_i = ((z - \alpha_N\mu)U)_i`:

* effective gain :math:`g_i = \widehat{\mathrm{Cov}}(y_i, c_i)/\widehat{\mathrm{Var}}(c_i)` with a
  heteroskedasticity-robust confidence interval, the residual share and the nonlinear residual share
  (:func:`experiments.readout.gain_regression`, reused);
* next to the Gaussian teacher's gain on the same grid, :math:`T_i = T(N\to 0)` at :math:`\lambda_i`
  (:func:`opmerge.teacher.teacher_composite`), the z-score :math:`(g_i - T_i)/\mathrm{se}_i`;
* the "hidden Gaussian structure" in two numbers: the **linear share**
  :math:`1 - \sum_i \rho_i \mathrm{Var}(y_i) / \sum_i \mathrm{Var}(y_i)` (:math:`\rho_i` the nonlinear residual:
  output variance explained by the best affine map of :math:`z_N`), and the **Gaussian-teacher share**
  :math:`1 - \mathbb E\|f(z) - f_G(z)\|^2 / \mathbb E\|f(z) - \bar f\|^2`, :math:`f_G` the Gaussian teacher run on
  the same :math:`z_N` (how much of the output the Gaussian teacher reproduces sample by sample).

:func:`step_gains` does the same for every single step :math:`n \to n-1` on forward inputs
:math:`z_n = \alpha_n x_0 + \sigma_n\varepsilon` (:math:`x_0` from the training images), next to the
Gaussian step operators :math:`A_n` (:func:`opmerge.teacher.step_operators`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from opmerge.errors import InputError
from opmerge.teacher import step_operators, teacher_composite

from .._torch import to_numpy
from ..readout import GainStats, gain_regression
from ..teacher import GaussianTeacher
from .gaussian_teacher import gaussian_image_teacher
from .teacher_base import ImageTeacher

__all__ = ["LinearityReadout", "read_linearity", "teacher_linearity", "step_gains"]


@dataclass(frozen=True)
class LinearityReadout(GainStats):
    r"""Per-direction readout of a sampler (arrays of shape ``(d,)``, directions by descending :math:`\lambda`).

    The per-direction regression arrays of :class:`~experiments.readout.GainStats` (``gain``, ``gain_se``,
    ``gain_low``, ``gain_high``, ``residual``, ``nonlinear_residual``, ``output_var``) and these.

    Attributes
    ----------
    lam : eigenvalues of the training covariance
    predicted : the Gaussian teacher's gain :math:`T_i` on the same grid
    level, n : confidence level, number of inputs
    summary : dict of scalar summaries (see :func:`read_linearity`)
    """

    lam: np.ndarray
    predicted: np.ndarray
    level: float
    n: int
    summary: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-friendly dict (arrays as lists; ``lam`` first, then the fields of :class:`~experiments.readout.GainStats`)."""
        out = super().to_dict()
        return {"lam": out.pop("lam"), **out}


def _summaries(lam, stats, predicted, significant: np.ndarray) -> dict:
    var_y = stats["output_var"]
    total = float(np.sum(var_y))
    tol = 1e-10 * np.maximum(1.0, np.abs(predicted))  # rounding: a linear sampler's interval has width ~1e-16
    zscore = (stats["gain"] - predicted) / np.maximum(stats["gain_se"], tol)
    inside = (stats["gain_low"] - tol <= predicted) & (predicted <= stats["gain_high"] + tol)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(stats["gain"] - predicted) / np.where(np.abs(predicted) > 0, np.abs(predicted), np.nan)
    return {
        "linear_share": float(1.0 - np.sum(stats["nonlinear_residual"] * var_y) / total) if total > 0 else 1.0,
        "diagonal_share": float(1.0 - np.sum(stats["residual"] * var_y) / total) if total > 0 else 1.0,
        "within_ci": float(np.mean(inside[significant])) if np.any(significant) else float("nan"),
        "median_abs_z": float(np.nanmedian(np.abs(zscore[significant]))) if np.any(significant) else float("nan"),
        "median_rel_gain_error": float(np.nanmedian(rel[significant])) if np.any(significant) else float("nan"),
        "lam_weighted_rel_gain_error": float(np.nansum(lam[significant] * rel[significant]) / np.sum(lam[significant]))
        if np.any(significant) and np.sum(lam[significant]) > 0 else float("nan"),
        "directions": int(lam.size),
        "directions_compared": int(np.sum(significant)),
    }


def read_linearity(sampler: Callable[[torch.Tensor], torch.Tensor], teacher: "ImageTeacher | GaussianTeacher", n: int = 4096, generator: torch.Generator | None = None, *,
                   level: float = 0.99, inputs: torch.Tensor | None = None, lam_floor: float = 1e-4,
                   reference: GaussianTeacher | None = None) -> LinearityReadout:
    r"""Read a sampler :math:`z_N \mapsto x` back per eigen-direction of the training covariance (module docstring).

    Parameters
    ----------
    sampler : callable
        Maps a batch :math:`z_N` ``(n, dim)`` to samples (a teacher's ``sample``, a student).
    teacher : ImageTeacher or GaussianTeacher
        Supplies the grid (:math:`\alpha_N`, the Gaussian gains :math:`T_i`), the fit and :math:`z_N`.
    n : int
        Fresh inputs (ignored when ``inputs`` is given).
    level : float
        Confidence level of the gain intervals.
    lam_floor : float
        Directions with :math:`\lambda_i \le` ``lam_floor`` (constant pixels: the output there is the
        mean, the gain is 0/0-like) are left out of the summaries (they stay in the arrays).
    reference : GaussianTeacher, optional
        Gaussian teacher for the Gaussian-teacher share (default: one built from ``teacher``'s fit
        and grid).
    """
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    z = teacher.noise_sample(n, generator) if inputs is None else inputs
    with torch.no_grad():
        y = sampler(z)
    gauss = reference or (teacher if isinstance(teacher, GaussianTeacher) else
                          gaussian_image_teacher(teacher.schedule, teacher.fit, None, teacher.dtype, teacher.device))
    with torch.no_grad():
        y_gauss = gauss.sample(z.to(gauss.dtype))
    fit = teacher.fit
    alpha_n = float(teacher.schedule.alpha[-1])
    c = fit.to_eigen(to_numpy(z), shift=alpha_n)
    out = fit.to_eigen(to_numpy(y))
    stats = gain_regression(c, out, level)
    lam = np.array(fit.lam)
    predicted = np.atleast_1d(teacher_composite(teacher.schedule, lam, None, 0, "ddim"))
    summary = _summaries(lam, stats, predicted, lam > lam_floor)
    yn, ygn = to_numpy(y), to_numpy(y_gauss)
    spread = float(np.mean(np.sum((yn - yn.mean(0)) ** 2, 1)))
    summary["gaussian_teacher_share"] = float(1.0 - np.mean(np.sum((yn - ygn) ** 2, 1)) / spread) if spread > 0 else float("nan")
    summary["rms_distance_to_gaussian_teacher"] = float(np.sqrt(np.mean(np.sum((yn - ygn) ** 2, 1))))
    return LinearityReadout(**GainStats.arrays_of(stats), lam=lam, predicted=predicted, level=float(level), n=int(z.shape[0]),
                            summary=summary)


def teacher_linearity(teacher: "ImageTeacher | GaussianTeacher", n: int = 4096, seed: int = 0, level: float = 0.99) -> LinearityReadout:
    """:func:`read_linearity` of the teacher's own sampler (:math:`T(N\\to 0)`) on ``n`` fresh inputs drawn from ``seed``.

    Parameters
    ----------
    teacher : ImageTeacher or GaussianTeacher
    n : int
        Inputs :math:`z_N`.
    seed : int
        Seed of the inputs.
    level : float
        Confidence level of the gain intervals.
    """
    return read_linearity(teacher.sample, teacher, n, torch.Generator().manual_seed(int(seed)), level=level)


def step_gains(teacher: "ImageTeacher | GaussianTeacher", n: int = 2048, seed: int = 0, level: float = 0.99, lam_floor: float = 1e-4) -> dict:
    r"""Effective gain of every single step :math:`n \to n-1` on forward inputs, next to the Gaussian :math:`A_n`.

    Inputs :math:`z_n = \alpha_n x_0 + \sigma_n\varepsilon` with :math:`x_0` drawn uniformly from the training rows;
    :math:`c = (z_n - \alpha_n\mu)U`, :math:`y = (\mathrm{step}(z_n) - \alpha_{n-1}\mu)U`.

    Parameters
    ----------
    teacher : ImageTeacher or GaussianTeacher
        Must hold its training rows.
    n : int
        Inputs per step.
    seed : int
    level : float
        Confidence level of the intervals.
    lam_floor : float
        Directions with :math:`\lambda_i \le` ``lam_floor`` are left out of the per-step summaries.

    Returns
    -------
    dict
        ``gain``, ``gain_low``, ``gain_high``, ``nonlinear_residual``, ``predicted`` of shape ``(d, N)``
        (column ``n - 1`` is step ``n``), ``linear_share`` and ``median_rel_gain_error`` per step (``(N,)``), ``lam``.
    """
    if teacher.train is None:
        raise InputError("step_gains needs a teacher that holds its training rows (teacher.train)")
    gen = torch.Generator().manual_seed(int(seed))
    fit = teacher.fit
    lam = np.array(fit.lam)
    keep = lam > lam_floor
    predicted = step_operators(teacher.schedule, lam, "ddim")[:, 1:]
    cols = {k: [] for k in ("gain", "gain_low", "gain_high", "nonlinear_residual")}
    linear_share, rel_err = [], []
    for step in range(1, teacher.steps + 1):
        idx = torch.randint(teacher.train.shape[0], (int(n),), generator=gen, device=gen.device)
        z = teacher.forward_sample(step, teacher.train[idx.to(teacher.device)], gen)
        with torch.no_grad():
            y = teacher.step(z, step)
        c = fit.to_eigen(to_numpy(z), shift=float(teacher.schedule.alpha[step]))
        out = fit.to_eigen(to_numpy(y), shift=float(teacher.schedule.alpha[step - 1]))
        stats = gain_regression(c, out, level)
        for k in cols:
            cols[k].append(stats[k])
        s = _summaries(lam, stats, predicted[:, step - 1], keep)
        linear_share.append(s["linear_share"])
        rel_err.append(s["median_rel_gain_error"])
    result = {k: np.stack(v, axis=1) for k, v in cols.items()}
    result.update(predicted=predicted, linear_share=np.array(linear_share), median_rel_gain_error=np.array(rel_err), lam=lam)
    return result
