r"""Reading a trained student back into the model (docs/theory.md §7, docs/bridge.md §3).

For a sampler ``f`` (any map from :math:`z_N` to a sample), draw fresh :math:`z_N`, run it, rotate
inputs and outputs into the eigenbasis (:math:`c = zU`, :math:`y = f(z)U`) and estimate per direction:

* the **effective gain** :math:`g_i = \widehat{\mathrm{Cov}}(y_i, c_i) / \widehat{\mathrm{Var}}(c_i)` (the
  least-squares slope of :math:`y_i` on :math:`c_i`) with a confidence interval
  :math:`g_i \pm z_{(1+\ell)/2}\,\mathrm{se}_i`, where :math:`\mathrm{se}_i` is the
  heteroskedasticity-robust (White/HC1 sandwich) standard error of the slope,

  .. math:: \mathrm{se}_i^2 = \frac{n}{n-2}\,\frac{\sum_b (c_{bi} - \bar c_i)^2 e_{bi}^2}{\big(\sum_b (c_{bi}-\bar c_i)^2\big)^2},
            \qquad e_{bi} = y_{bi} - \bar y_i - g_i (c_{bi} - \bar c_i),

  valid for a nonlinear ``f`` too (its residual is uncorrelated with, but not independent of, :math:`c_i`);
  the normal quantile is used (``n`` is in the thousands);
* the **nonlinearity residual** :math:`1 - g_i^2 \widehat{\mathrm{Var}}(c_i)/\widehat{\mathrm{Var}}(y_i)`: the share of
  :math:`\mathrm{Var}(y_i)` not explained by :math:`g_i c_i` (it also counts leakage from other
  directions); ``nonlinear_residual`` is the share not explained by the best affine map of *all*
  coordinates :math:`c` (zero for every linear ``f``).

W2 to a reference (the teacher, the exact flow, the data, the model's predicted student):

* **Gaussian** (:func:`gaussian_w2`): between the Gaussians fitted to the two samples,
  :math:`W_2^2 = \|m_1 - m_2\|^2 + \operatorname{tr}\big(C_1 + C_2 - 2 (C_1^{1/2} C_2 C_1^{1/2})^{1/2}\big)`
  (matrix square roots of symmetric PSD matrices by eigendecomposition). The teacher, exact-flow and
  predicted references are run on the *same* :math:`z_N` as the student (common random numbers: the
  sampling noise of :math:`\widehat{\mathrm{Cov}}(z_N)` largely cancels); the data reference is the exact
  :math:`\mathcal N(\mu, \Sigma)` (:math:`\mu` the teacher's mean, zero for the synthetic studies).
* **sample** (:func:`sample_w2`): the plain two-sample estimate, exact optimal transport between
  ``n_ot`` points of each sample (:func:`scipy.optimize.linear_sum_assignment` on squared distances).
  It is biased upwards by the empirical-measure error (roughly :math:`n^{-1/d}`), so it is reported
  beside the Gaussian value, not instead of it. For same-input references the two point clouds are
  the images of the same :math:`z_N`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import norm

from opmerge.errors import InputError

from .teacher import GaussianTeacher

__all__ = ["GainStats", "Readout", "gain_regression", "gaussian_w2", "gaussian_w2_1d", "sample_w2", "sqrtm_psd", "read_out"]


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    r"""Square root of a symmetric positive semi-definite matrix: :math:`V \operatorname{diag}(\sqrt{\max(w, 0)}) V^\top`."""
    m = np.asarray(matrix, dtype=np.float64)
    w, v = np.linalg.eigh(0.5 * (m + m.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))[None, :]) @ v.T


def gaussian_w2(mean1, cov1, mean2, cov2) -> float:
    r"""W2 between :math:`\mathcal N(m_1, C_1)` and :math:`\mathcal N(m_2, C_2)`:

    .. math:: W_2^2 = \|m_1 - m_2\|^2 + \operatorname{tr} C_1 + \operatorname{tr} C_2
              - 2 \operatorname{tr}\big(C_1^{1/2} C_2 C_1^{1/2}\big)^{1/2} .

    In one dimension this is :math:`\sqrt{(m_1 - m_2)^2 + (s_1 - s_2)^2}`.
    """
    m1, m2 = np.atleast_1d(np.asarray(mean1, dtype=np.float64)), np.atleast_1d(np.asarray(mean2, dtype=np.float64))
    c1, c2 = np.atleast_2d(np.asarray(cov1, dtype=np.float64)), np.atleast_2d(np.asarray(cov2, dtype=np.float64))
    if c1.shape != c2.shape or c1.shape[0] != c1.shape[1] or m1.shape != m2.shape or m1.shape[0] != c1.shape[0]:
        raise InputError(f"means and covariances must agree in dimension, got {m1.shape}, {c1.shape}, {m2.shape}, {c2.shape}")
    root1 = sqrtm_psd(c1)
    cross = sqrtm_psd(root1 @ c2 @ root1)
    value = float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(cross))
    return float(np.sqrt(max(value, 0.0)))


def gaussian_w2_1d(std1, std2) -> np.ndarray:
    r"""W2 between centred one-dimensional Gaussians, elementwise: :math:`|s_1 - s_2|`."""
    return np.abs(np.asarray(std1, dtype=np.float64) - np.asarray(std2, dtype=np.float64))


def sample_w2(x, y) -> float:
    r"""Plain two-sample W2: exact optimal transport between equal-size point clouds.

    :math:`\widehat W_2^2 = \min_\pi \frac1n \sum_b \|x_b - y_{\pi(b)}\|^2` over permutations
    :math:`\pi` (Hungarian algorithm, :math:`O(n^3)`; keep ``n`` at a few hundred to a few thousand).
    """
    x = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    y = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    if x.ndim == 1:
        x, y = x[:, None], y[:, None]
    if x.shape != y.shape:
        raise InputError(f"sample_w2 needs two samples of the same shape, got {x.shape} and {y.shape}")
    cost = np.sum(x**2, 1)[:, None] + np.sum(y**2, 1)[None, :] - 2.0 * x @ y.T
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(max(float(np.mean(cost[rows, cols])), 0.0)))


def gain_regression(inputs: np.ndarray, outputs: np.ndarray, level: float = 0.99) -> dict:
    r"""Per-direction slope, robust standard error, interval and residual shares (see the module docstring).

    Parameters
    ----------
    inputs, outputs : arrays of shape (n, d)
        Eigen-coordinates :math:`c` of the inputs and :math:`y` of the outputs.
    level : float
        Two-sided confidence level of the interval, in (0, 1).

    Returns
    -------
    dict of arrays (d,)
        ``gain``, ``gain_se``, ``gain_low``, ``gain_high``, ``residual``, ``nonlinear_residual``,
        ``output_var``, ``input_var``.
    """
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level!r}")
    c = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(outputs, dtype=np.float64)
    if c.shape != y.shape or c.ndim != 2 or c.shape[0] < 3:
        raise InputError(f"inputs and outputs must both have shape (n >= 3, d), got {c.shape} and {y.shape}")
    n = c.shape[0]
    cc = c - c.mean(0)
    yc = y - y.mean(0)
    sxx = np.sum(cc**2, 0)
    gain = np.sum(cc * yc, 0) / sxx
    resid = yc - gain * cc
    se = np.sqrt(n / (n - 2) * np.sum(cc**2 * resid**2, 0)) / sxx
    quant = float(norm.ppf(0.5 + level / 2.0))
    var_y = np.mean(yc**2, 0)
    var_c = sxx / n
    with np.errstate(invalid="ignore", divide="ignore"):
        residual = np.where(var_y > 0, 1.0 - gain**2 * var_c / var_y, 0.0)
        coef, *_ = np.linalg.lstsq(cc, yc, rcond=None)
        full_resid = yc - cc @ coef
        nonlinear = np.where(var_y > 0, np.mean(full_resid**2, 0) / var_y, 0.0)
    return {
        "gain": gain, "gain_se": se, "gain_low": gain - quant * se, "gain_high": gain + quant * se,
        "residual": np.clip(residual, 0.0, 1.0), "nonlinear_residual": np.clip(nonlinear, 0.0, 1.0),
        "output_var": var_y, "input_var": var_c,
    }


@dataclass(frozen=True)
class GainStats:
    r"""The per-direction arrays of :func:`gain_regression` that a readout keeps (shape ``(d,)``).

    The common part of :class:`Readout` and of the image study's
    :class:`~experiments.images.linearity.LinearityReadout`.

    Attributes
    ----------
    gain, gain_se, gain_low, gain_high : effective gain, robust standard error, confidence interval
    residual : share of :math:`\mathrm{Var}(y_i)` not explained by :math:`g_i c_i`
    nonlinear_residual : share not explained by the best affine map of all of :math:`c`
    output_var : :math:`\mathrm{Var}(y_i)`
    """

    gain: np.ndarray
    gain_se: np.ndarray
    gain_low: np.ndarray
    gain_high: np.ndarray
    residual: np.ndarray
    nonlinear_residual: np.ndarray
    output_var: np.ndarray

    @staticmethod
    def arrays_of(stats: dict) -> dict:
        """The entries of a :func:`gain_regression` result that are fields of :class:`GainStats`.

        Parameters
        ----------
        stats : dict
            A :func:`gain_regression` result.

        Returns
        -------
        dict
            ``gain``, ``gain_se``, ``gain_low``, ``gain_high``, ``residual``, ``nonlinear_residual``, ``output_var``.
        """
        return {f.name: stats[f.name] for f in fields(GainStats)}

    def to_dict(self) -> dict:
        """JSON-friendly dict of every field (arrays as lists)."""
        out = asdict(self)
        for key, value in list(out.items()):
            if isinstance(value, np.ndarray):
                out[key] = value.tolist()
        return out


@dataclass(frozen=True)
class Readout(GainStats):
    r"""What :func:`read_out` measured: the arrays of :class:`GainStats` (shape ``(d,)``) and these.

    Attributes
    ----------
    level : float          confidence level of ``[gain_low, gain_high]``
    n : int                fresh inputs used
    w2_gaussian : dict     reference -> W2 between fitted Gaussians
    w2_sample : dict       reference -> plain OT estimate on ``n_ot`` points
    w2_direction : dict    reference -> per-direction 1-D Gaussian W2 :math:`|\mathrm{sd}(y_i) - \mathrm{sd}(r_i)|`
    """

    level: float
    n: int
    w2_gaussian: dict = field(default_factory=dict)
    w2_sample: dict = field(default_factory=dict)
    w2_direction: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-friendly dict (arrays as lists)."""
        out = super().to_dict()
        out["w2_direction"] = {k: np.asarray(v).tolist() for k, v in self.w2_direction.items()}
        return out


def _fit(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return y.mean(0), np.atleast_2d(np.cov(y, rowvar=False, bias=False))


def read_out(sampler, teacher: GaussianTeacher, n: int = 20000, generator: torch.Generator | None = None, *,
             predicted=None, level: float = 0.99, n_ot: int = 512, inputs: torch.Tensor | None = None) -> Readout:
    r"""Read a sampler back in the eigenbasis (docs/theory.md §7).

    Parameters
    ----------
    sampler : callable
        Maps a batch :math:`z_N` of shape ``(n, d)`` to samples (a torch module or function).
    teacher : GaussianTeacher
        Supplies the data, the basis, :math:`z_N` and the teacher / exact-flow references.
    n : int
        Number of fresh inputs (ignored when ``inputs`` is given).
    generator : torch.Generator
        Draws the inputs (and the data sample of the plain W2 to the data).
    predicted : array (d,), optional
        The model's predicted per-direction operator ``S``; adds the reference ``"predicted"``
        (the linear map :math:`U \operatorname{diag}(S) U^\top` applied to the same inputs).
    level : float
        Confidence level of the gain interval.
    n_ot : int
        Points per sample in the plain OT estimate (0 skips it).
    inputs : tensor (n, d), optional
        Use these :math:`z_N` instead of drawing new ones (common random numbers across students).
    """
    if generator is None:
        generator = torch.Generator(device=teacher.device).manual_seed(0)
    z = teacher.noise_sample(n, generator) if inputs is None else inputs
    with torch.no_grad():
        y = sampler(z)
        refs = {"teacher": teacher.sample(z), "exact": teacher.exact_flow(z)}
        if predicted is not None:
            s = torch.as_tensor(np.asarray(predicted, dtype=np.float64), dtype=teacher.dtype, device=teacher.device)
            refs["predicted"] = teacher.data.from_eigen(teacher.data.to_eigen(z) * s)
    data = teacher.data
    to_np = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
    c_np, y_np = to_np(data.to_eigen(z)), to_np(data.to_eigen(y))
    stats = gain_regression(c_np, y_np, level)
    y_mean, y_cov = _fit(to_np(y))
    w2_g, w2_s, w2_d = {}, {}, {}
    y_std = np.sqrt(np.var(y_np, 0, ddof=1))
    for name, ref in refs.items():
        r_mean, r_cov = _fit(to_np(ref))
        w2_g[name] = gaussian_w2(y_mean, y_cov, r_mean, r_cov)
        w2_d[name] = gaussian_w2_1d(y_std, np.sqrt(np.var(to_np(data.to_eigen(ref)), 0, ddof=1)))
        if n_ot:
            w2_s[name] = sample_w2(to_np(y)[:n_ot], to_np(ref)[:n_ot])
    w2_g["data"] = gaussian_w2(y_mean, y_cov, teacher.mean.detach().cpu().double().numpy(), data.covariance())
    w2_d["data"] = gaussian_w2_1d(y_std, np.sqrt(data.lam))
    if n_ot:
        x0 = teacher.data_sample(n_ot, generator)
        w2_s["data"] = sample_w2(to_np(y)[:n_ot], to_np(x0))
    return Readout(**GainStats.arrays_of(stats), level=float(level), n=int(z.shape[0]), w2_gaussian=w2_g, w2_sample=w2_s,
                   w2_direction=w2_d)
