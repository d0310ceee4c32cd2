r"""Students of one step's capacity and their training (docs/mixture.md §3).

The gated affine family at input index :math:`j` is
:math:`f_\Theta(z) = \sum_k r_k^{(j)}(z)\,(W_k z + b_k) = \Theta^\top\varphi_j(z)` with the teacher's
responsibilities at :math:`j` and features :math:`\varphi_j(z) = r^{(j)}(z)\otimes(z, 1)`; the
plain affine family has :math:`\varphi(z) = (z, 1)`. Both are linear in :math:`\Theta`: on the loss
:math:`\mathbb E_{p_j}\|f_\Theta(z) - P(z)\|^2` the best fit is
:math:`\Theta^* = G_j^{+}\,\mathbb E[\varphi P^\top]` with :math:`G_j = \mathbb E[\varphi\varphi^\top]`,
and gradient flow from :math:`\Theta_0` is
:math:`\Theta(\tau) = \Theta^* + e^{-2\eta\tau G_j}(\Theta_0 - \Theta^*)` (``gd``:
:math:`(I - 2\eta G_j)^K`), the linear regime's law with the Gram matrix in place of :math:`q_j`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import _retention
from ._teacher import MixtureTeacher, posterior

__all__ = ["FAMILIES", "features", "LeastSquaresFit", "least_squares", "train_parameters", "identity_parameters"]

FAMILIES = ("gated", "affine")
#: eigenvalues of the Gram matrix below this share of the largest are treated as 0 (pseudo-inverse)
GRAM_RCOND = 1e-12


def features(teacher: MixtureTeacher, family: str, z: np.ndarray, j: int) -> np.ndarray:
    r""":math:`\varphi_j(z)`, shape (count, F): ``gated`` :math:`F = K(d+1)`, ``affine`` :math:`F = d + 1`."""
    ones = np.ones((z.shape[0], 1))
    base = np.concatenate([z, ones], axis=1)
    if family == "affine":
        return base
    sched = teacher.schedule
    r = posterior(teacher.mixture, z, float(sched.alpha[j]), float(sched.sigma[j]))[0]
    return (r[:, :, None] * base[:, None, :]).reshape(z.shape[0], -1)


def identity_parameters(teacher: MixtureTeacher, family: str) -> np.ndarray:
    """Parameters of the identity map in ``family`` (responsibilities sum to 1)."""
    d = teacher.dim
    blocks = 1 if family == "affine" else teacher.mixture.components
    theta = np.zeros((blocks * (d + 1), d))
    for k in range(blocks):
        theta[k * (d + 1):k * (d + 1) + d] = np.eye(d)
    return theta


@dataclass(frozen=True)
class LeastSquaresFit:
    r"""The best fit :math:`\Theta^*` and the Gram matrix's eigendecomposition.

    Attributes
    ----------
    theta : ndarray (F, d)
    gram_values, gram_vectors : ndarray (F,), (F, F)
        :math:`G = V\,\mathrm{diag}(g)\,V^\top`.
    residual : float
        :math:`\mathbb E\|f_{\Theta^*}(z) - P(z)\|^2`: the approximation error.
    target_energy : float
        :math:`\mathbb E\|P(z)\|^2`.
    """

    theta: np.ndarray
    gram_values: np.ndarray
    gram_vectors: np.ndarray
    residual: float
    target_energy: float

    def gram_norm_sq(self, delta: np.ndarray) -> float:
        r""":math:`\operatorname{tr}(\Delta^\top G \Delta) = \mathbb E\|\Delta^\top\varphi\|^2`."""
        proj = self.gram_vectors.T @ delta
        return float(np.sum(self.gram_values[:, None] * proj * proj))


def least_squares(phi: np.ndarray, weights: np.ndarray, target: np.ndarray) -> LeastSquaresFit:
    r"""Weighted least squares :math:`\Theta^* = G^{+}\,\Phi^\top W Y` with a relative cut-off 1e-12."""
    wphi = phi * weights[:, None]
    gram = phi.T @ wphi
    gram = 0.5 * (gram + gram.T)
    g, v = np.linalg.eigh(gram)
    g = np.clip(g, 0.0, None)
    keep = g > GRAM_RCOND * max(float(g.max()), 1e-300)
    cross = wphi.T @ target
    coef = (v[:, keep].T @ cross) / g[keep][:, None]
    theta = v[:, keep] @ coef
    resid = phi @ theta - target
    return LeastSquaresFit(theta, np.where(keep, g, 0.0), v, float(np.sum(weights * np.sum(resid * resid, axis=1))),
                           float(np.sum(weights * np.sum(target * target, axis=1))))


def train_parameters(fit: LeastSquaresFit, theta0: np.ndarray, training: str, eta_tau: float | None,
                     lr: float | None, gd_steps: int | None) -> np.ndarray:
    r""":math:`\Theta = \Theta^* + V\,\mathrm{diag}(\rho(g))\,V^\top(\Theta_0 - \Theta^*)`, :math:`\rho` the
    linear regime's retention (``flow``: :math:`e^{-2\eta\tau g}`; ``gd``: :math:`(1 - 2\eta g)^K`)."""
    keep = _retention(training, fit.gram_values, eta_tau, lr, gd_steps)
    v = fit.gram_vectors
    return fit.theta + v @ (keep[:, None] * (v.T @ (theta0 - fit.theta)))
