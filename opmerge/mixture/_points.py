r"""Expectations over the forward marginals :math:`p_n = \sum_k \pi_k \mathcal N(\alpha_n\mu_k, S_{n,k})`
(docs/mixture.md §4): Gauss–Hermite quadrature per component in low dimension, Monte Carlo otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import choice, integer
from ..errors import InputError
from ..schedules import Schedule
from ._data import GaussianMixture

__all__ = ["Expectation", "marginal_points"]

METHODS = ("auto", "quadrature", "monte-carlo")
#: the most points a quadrature rule may have (K * order ** d)
MAX_QUADRATURE_POINTS = 200_000


@dataclass(frozen=True)
class Expectation:
    r"""How expectations over a marginal :math:`p_n` are taken.

    Parameters
    ----------
    method : {"auto", "quadrature", "monte-carlo"}
        ``auto`` is quadrature when :math:`K\cdot\text{order}^d` is at most 200,000 points, Monte
        Carlo otherwise.
    order : int
        Gauss–Hermite nodes per dimension and component (2 to 200); a rule of order ``Q``
        integrates polynomials of degree :math:`2Q - 1` exactly against each component.
    samples : int
        Monte Carlo draws per expectation (100 to 10**7).
    seed : int
        Seed of the Monte Carlo draws (each marginal and each use gets its own stream).
    """

    method: str = "auto"
    order: int = 24
    samples: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        choice(self.method, "method", METHODS)
        object.__setattr__(self, "order", integer(self.order, "order", low=2, high=200))
        object.__setattr__(self, "samples", integer(self.samples, "samples", low=100, high=10**7))
        object.__setattr__(self, "seed", integer(self.seed, "seed", low=0))

    def resolve(self, mixture: GaussianMixture) -> str:
        """``"quadrature"`` or ``"monte-carlo"`` for this mixture."""
        size = mixture.components * float(self.order) ** mixture.dim
        if self.method == "auto":
            return "quadrature" if size <= MAX_QUADRATURE_POINTS else "monte-carlo"
        if self.method == "quadrature" and size > MAX_QUADRATURE_POINTS:
            raise InputError(
                f"quadrature with order {self.order} in d = {mixture.dim} needs K * order**d = {size:.3g} points "
                f"(at most {MAX_QUADRATURE_POINTS}); lower the order or use method='monte-carlo'"
            )
        return self.method

    def to_dict(self) -> dict:
        return {"method": self.method, "order": self.order, "samples": self.samples, "seed": self.seed}


def _hermite_grid(order: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    weights = weights / weights.sum()
    grids = np.meshgrid(*([nodes] * dim), indexing="ij")
    points = np.stack([g.ravel() for g in grids], axis=1)
    wgrid = np.meshgrid(*([weights] * dim), indexing="ij")
    w = np.prod(np.stack([g.ravel() for g in wgrid], axis=1), axis=1)
    return points, w


def marginal_points(mixture: GaussianMixture, schedule: Schedule, n: int, expectation: Expectation,
                    stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""Points and weights (summing to 1) representing :math:`p_n`.

    Quadrature: for each component the tensor Gauss–Hermite rule mapped by
    :math:`\alpha_n\mu_k + U_k\,\mathrm{diag}(\sqrt{\alpha_n^2\lambda_k + \sigma_n^2})\,x`, weights
    :math:`\pi_k w_q`. Monte Carlo: ``samples`` draws of :math:`\alpha_n x_0 + \sigma_n\varepsilon`
    from the generator seeded by ``(seed, n, stream)``, equal weights. Validated input only.
    """
    a, s = float(schedule.alpha[n]), float(schedule.sigma[n])
    if expectation.resolve(mixture) == "quadrature":
        x, w = _hermite_grid(expectation.order, mixture.dim)
        pts, wts = [], []
        for k in range(mixture.components):
            scale = np.sqrt(a * a * mixture.eigvals[k] + s * s)
            pts.append(a * mixture.means[k] + (x * scale) @ mixture.eigvecs[k].T)
            wts.append(mixture.weights[k] * w)
        return np.ascontiguousarray(np.concatenate(pts)), np.concatenate(wts)
    rng = np.random.default_rng([expectation.seed, n, stream])
    count = expectation.samples
    labels = rng.choice(mixture.components, size=count, p=mixture.weights)
    eps0 = rng.standard_normal((count, mixture.dim))
    root = mixture.eigvecs * np.sqrt(mixture.eigvals)[:, None, :]
    x0 = mixture.means[labels] + np.einsum("nij,nj->ni", root[labels], eps0)
    z = a * x0 + s * rng.standard_normal((count, mixture.dim))
    return np.ascontiguousarray(z), np.full(count, 1.0 / count)
