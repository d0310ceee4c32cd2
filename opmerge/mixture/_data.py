r"""Gaussian-mixture data :math:`x_0 \sim \sum_k \pi_k\, \mathcal N(\mu_k, C_k)` (docs/mixture.md §1).

The mixture is stored with each covariance's eigendecomposition :math:`C_k = U_k \operatorname{diag}
(\lambda_{k}) U_k^\top`, so every noised covariance :math:`S_{n,k} = \alpha_n^2 C_k + \sigma_n^2 I`
is inverted and its log-determinant taken in :math:`O(d)` per point after one rotation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from .._validate import integer, real_number
from ..errors import InputError, InputTypeError

__all__ = ["GaussianMixture", "PRESETS", "mixture_preset", "load_mixture", "mixture_from_dict"]

#: the largest number of components and dimensions accepted (the teacher's work is K d^2 per point)
MAX_COMPONENTS = 256
MAX_DIM = 1024
#: symmetry tolerance of a covariance, relative to its largest entry
_SYMMETRY_RTOL = 1e-10


def _float_array(value: object, name: str, ndim: int) -> np.ndarray:
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, bool):
        raise InputTypeError(f"{name} must be an array of real numbers, got {type(value).__name__}")
    try:
        arr = np.array(value)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{name} must be an array of real numbers ({exc})") from None
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise InputTypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite (no NaN or infinity)")
    return arr


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    r"""A validated Gaussian mixture :math:`\sum_k \pi_k \mathcal N(\mu_k, C_k)` in :math:`\mathbb R^d`.

    Parameters
    ----------
    weights : array of shape (K,)
        Mixing weights :math:`\pi_k > 0` summing to 1 (to 1e-9; they are renormalised exactly).
    means : array of shape (K, d)
        Component means :math:`\mu_k`.
    covariances : array of shape (K, d, d)
        Component covariances :math:`C_k`, symmetric positive definite (the exact flow needs
        :math:`C_k \succ 0`; a degenerate component is a clear error).
    name : str
        A label carried into results.

    Notes
    -----
    Components with exactly the same mean and covariance are merged into one (weights added,
    first occurrence kept): the distribution is the same, and the gated student family of
    docs/mixture.md §3 would otherwise carry duplicate gates whose gradient flow runs at the
    fraction :math:`\sum_k \pi_k^2` of the single-Gaussian rate. So a preset at separation 0
    is exactly the single Gaussian of the linear regime.

    ``eigvals[k]`` and ``eigvecs[k]`` hold :math:`\lambda_k` (ascending) and :math:`U_k`. The
    arrays are read-only float64 copies.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    name: str = "custom"
    eigvals: np.ndarray = field(init=False, repr=False)
    eigvecs: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise InputTypeError(f"name must be a str, got {type(self.name).__name__}")
        w = _float_array(self.weights, "weights", 1)
        mu = _float_array(self.means, "means", 2)
        cov = _float_array(self.covariances, "covariances", 3)
        k, d = mu.shape
        if not 1 <= k <= MAX_COMPONENTS:
            raise InputError(f"means must have 1 to {MAX_COMPONENTS} components (rows), got {k}")
        if not 1 <= d <= MAX_DIM:
            raise InputError(f"means must have 1 to {MAX_DIM} dimensions (columns), got {d}")
        if w.shape != (k,):
            raise InputError(f"weights must have shape ({k},) to match means, got {w.shape}")
        if cov.shape != (k, d, d):
            raise InputError(f"covariances must have shape ({k}, {d}, {d}) to match means, got {cov.shape}")
        if np.any(w <= 0):
            raise InputError(f"weights must be > 0, got min {w.min()!r}")
        if abs(w.sum() - 1.0) > 1e-9:
            raise InputError(f"weights must sum to 1 (to 1e-9), got sum {w.sum()!r}")
        w = w / w.sum()
        scale = np.max(np.abs(cov), axis=(1, 2))
        asym = np.max(np.abs(cov - cov.transpose(0, 2, 1)), axis=(1, 2))
        bad = np.nonzero(asym > _SYMMETRY_RTOL * np.maximum(scale, 1e-300))[0]
        if bad.size:
            raise InputError(f"covariances[{int(bad[0])}] is not symmetric (max |C - C^T| = {asym[bad[0]]:.3g})")
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        w, mu, cov = _merge_identical(w, mu, cov)
        lam, vec = np.linalg.eigh(cov)
        if np.any(lam <= 0):
            kk = int(np.nonzero(np.any(lam <= 0, axis=1))[0][0])
            raise InputError(
                f"covariances[{kk}] must be positive definite, got smallest eigenvalue {lam[kk, 0]!r} "
                "(a degenerate component has no exact probability-flow map; add a small ridge)"
            )
        for name_, arr in (("weights", w), ("means", mu), ("covariances", cov), ("eigvals", lam),
                           ("eigvecs", np.ascontiguousarray(vec))):
            arr.setflags(write=False)
            object.__setattr__(self, name_, arr)

    @property
    def components(self) -> int:
        """Number of components ``K``."""
        return int(self.weights.shape[0])

    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return int(self.means.shape[1])

    def mean(self) -> np.ndarray:
        r"""Overall mean :math:`\bar\mu = \sum_k \pi_k \mu_k`."""
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        r"""Overall covariance :math:`\Sigma = \sum_k \pi_k (C_k + \mu_k\mu_k^\top) - \bar\mu\bar\mu^\top`.

        Its spectrum is the linear regime's: the Gaussian with the same first two moments is the
        data of docs/theory.md, and the mixture teacher's operators reduce to that theory's when
        ``K = 1`` (docs/mixture.md §1).
        """
        mbar = self.mean()
        second = np.einsum("k,kij->ij", self.weights, self.covariances) + np.einsum(
            "k,ki,kj->ij", self.weights, self.means, self.means)
        out = second - np.outer(mbar, mbar)
        return 0.5 * (out + out.T)

    def spectrum(self) -> np.ndarray:
        """Eigenvalues of :meth:`covariance`, ascending (clipped at 0 against rounding)."""
        return np.clip(np.linalg.eigvalsh(self.covariance()), 0.0, None)

    def separation(self) -> float:
        r"""Smallest distance between two means in units of the largest component standard deviation,
        :math:`\min_{k\ne l}\|\mu_k-\mu_l\| / \max_k \sqrt{\lambda_{\max}(C_k)}` (0 for ``K = 1``)."""
        if self.components == 1:
            return 0.0
        diff = self.means[:, None, :] - self.means[None, :, :]
        dist = np.sqrt(np.sum(diff**2, axis=-1))
        dist[np.diag_indices(self.components)] = np.inf
        return float(dist.min() / np.sqrt(self.eigvals.max()))

    def sample(self, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``count`` draws of :math:`x_0` and their component labels (numpy ``default_rng(seed)``)."""
        count = integer(count, "count", low=1, high=10**8)
        seed = integer(seed, "seed", low=0)
        rng = np.random.default_rng(seed)
        labels = rng.choice(self.components, size=count, p=self.weights)
        eps = rng.standard_normal((count, self.dim))
        root = self.eigvecs * np.sqrt(self.eigvals)[:, None, :]
        x = self.means[labels] + np.einsum("nij,nj->ni", root[labels], eps)
        return x, labels

    def to_dict(self) -> dict:
        """JSON-friendly description (round-trips through :func:`mixture_from_dict`)."""
        return {"name": self.name, "weights": self.weights.tolist(), "means": self.means.tolist(),
                "covariances": self.covariances.tolist()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GaussianMixture):
            return NotImplemented
        return (self.name == other.name and np.array_equal(self.weights, other.weights)
                and np.array_equal(self.means, other.means)
                and np.array_equal(self.covariances, other.covariances))

    def __hash__(self) -> int:
        return hash((self.name, self.weights.tobytes(), self.means.tobytes(), self.covariances.tobytes()))

    def __repr__(self) -> str:
        return f"GaussianMixture(name={self.name!r}, components={self.components}, dim={self.dim})"


def _merge_identical(w: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge components with bit-identical means and covariances (weights added, order kept)."""
    keep: list[int] = []
    weights: list[float] = []
    for k in range(w.shape[0]):
        for slot, first in enumerate(keep):
            if np.array_equal(mu[k], mu[first]) and np.array_equal(cov[k], cov[first]):
                weights[slot] += float(w[k])
                break
        else:
            keep.append(k)
            weights.append(float(w[k]))
    if len(keep) == w.shape[0]:
        return w, mu, cov
    return np.array(weights), np.ascontiguousarray(mu[keep]), np.ascontiguousarray(cov[keep])


def mixture_from_dict(obj: object, name: str = "mixture") -> GaussianMixture:
    """A :class:`GaussianMixture` from ``{"weights", "means", "covariances"}`` (and an optional ``name``)."""
    if not isinstance(obj, dict):
        raise InputTypeError(f"{name} must be a JSON object with weights, means and covariances, got {type(obj).__name__}")
    missing = [key for key in ("weights", "means", "covariances") if key not in obj]
    if missing:
        raise InputError(f"{name} lacks {', '.join(missing)} (a mixture needs weights, means and covariances)")
    label = obj.get("name", "custom")
    if not isinstance(label, str):
        raise InputTypeError(f"{name}.name must be a str, got {type(label).__name__}")
    try:
        return GaussianMixture(obj["weights"], obj["means"], obj["covariances"], name=label)
    except (InputError, InputTypeError) as exc:
        if name == "mixture":
            raise
        raise type(exc)(f"{name}: {exc}") from None


def load_mixture(path: str | os.PathLike) -> GaussianMixture:
    """Read a mixture from a JSON file or an ``.npz`` archive with arrays ``weights``, ``means``, ``covariances``.

    Raises
    ------
    InputError
        Naming the file when it cannot be read or does not hold a valid mixture.
    """
    from ..io import load_json

    path = os.fspath(path)
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as archive:
                obj = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(f"cannot read mixture file {path!r}: {exc}") from None
        if "name" in obj:
            obj["name"] = str(obj["name"])
    else:
        obj = load_json(path, name="mixture file")
    return mixture_from_dict(obj, name=f"mixture file {path!r}")


def _ring(count: int, radius: float, std: float, dim: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    angle = 2 * np.pi * np.arange(count) / count
    means = np.zeros((count, dim))
    means[:, 0] = radius * np.cos(angle)
    means[:, 1] = radius * np.sin(angle)
    covs = np.broadcast_to(std**2 * np.eye(dim), (count, dim, dim)).copy()
    return np.full(count, 1.0 / count), means, covs


def _preset_two_2d(separation: float) -> GaussianMixture:
    w, mu, cov = _ring(2, separation / 2, 1.0)
    mu = np.array([[-separation / 2, 0.0], [separation / 2, 0.0]])
    cov = np.array([np.diag([1.0, 0.5]), np.diag([1.0, 0.5])])
    return GaussianMixture(w, mu, cov, name=f"two-2d(separation={separation:g})")


def _preset_eight_2d(separation: float) -> GaussianMixture:
    # neighbouring means on the ring are `separation` standard deviations apart
    radius = separation / (2 * np.sin(np.pi / 8))
    w, mu, cov = _ring(8, radius, 1.0)
    return GaussianMixture(w, mu, cov, name=f"eight-2d(separation={separation:g})")


def _preset_mixture_16d(separation: float) -> GaussianMixture:
    rng = np.random.default_rng(16)
    dim, count = 16, 4
    directions = rng.standard_normal((count, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = 0.5 * separation * directions
    spectrum = np.geomspace(2.0, 0.05, dim)
    covs = []
    for k in range(count):
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        covs.append((q * spectrum) @ q.T)
    return GaussianMixture(np.array([0.4, 0.3, 0.2, 0.1]), means, np.array(covs), name=f"mixture-16d(separation={separation:g})")


#: presets a researcher can picture; each takes the separation (in component standard deviations)
PRESETS = {"two-2d": _preset_two_2d, "eight-2d": _preset_eight_2d, "mixture-16d": _preset_mixture_16d}
#: the separation a preset uses when none is given
DEFAULT_SEPARATION = 4.0


def mixture_preset(name: str, separation: float = DEFAULT_SEPARATION) -> GaussianMixture:
    r"""A named mixture: ``"two-2d"`` (two components :math:`\pm s/2` on the first axis,
    covariance diag(1, 0.5)), ``"eight-2d"`` (eight unit components on a ring, neighbours
    :math:`s` apart) or ``"mixture-16d"`` (four components in 16-D with random rotated spectra
    from 2 to 0.05 and means :math:`s/2` from the origin in random directions).

    Parameters
    ----------
    name : str
        One of :data:`PRESETS`.
    separation : float
        :math:`s \ge 0`; at 0 every component has the same mean.
    """
    from .._validate import choice

    choice(name, "name", tuple(PRESETS))
    separation = real_number(separation, "separation", low=0.0)
    if separation > 1e6:
        raise InputError(f"separation must be in [0, 1e6], got {separation!r}")
    return PRESETS[name](separation)
