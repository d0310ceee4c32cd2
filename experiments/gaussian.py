r"""Gaussian data with a given spectrum, diagonal or rotated (docs/theory.md §1).

Data :math:`x_0 \sim \mathcal N(0, \Sigma)` with :math:`\Sigma = U \operatorname{diag}(\lambda_1..\lambda_d) U^\top`.
``U`` is the identity (diagonal data) or a Haar-random orthogonal matrix drawn from a seed
(:func:`random_rotation`). Samples are row vectors (shape ``(n, d)``); eigen-coordinates are
:math:`c = x U` (so that :math:`c_i = u_i^\top x`) and back :math:`x = c U^\top`.

The forward process on a schedule's grid is :math:`z_n = \alpha_n x_0 + \sigma_n \varepsilon`,
:math:`\varepsilon \sim \mathcal N(0, I)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from opmerge._validate import is_real
from opmerge.errors import InputError
from opmerge.io import load_array, load_json
from opmerge.schedules import Schedule
from opmerge.teacher import check_lam

__all__ = ["GaussianData", "random_rotation", "make_gaussian", "parse_spectrum"]


def random_rotation(dim: int, seed: int) -> np.ndarray:
    r"""A Haar-distributed orthogonal ``dim x dim`` matrix from ``seed``.

    QR decomposition of a standard Gaussian matrix :math:`G = QR`, with the signs fixed so that
    :math:`\operatorname{diag}(R) > 0` (Mezzadri 2007): :math:`U = Q \operatorname{diag}(\operatorname{sign} R_{ii})`.
    Uses :class:`numpy.random.Generator` (PCG64), so it is the same on every machine.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise InputError(f"dim must be an int >= 1, got {dim!r}")
    rng = np.random.default_rng(int(seed))
    q, r = np.linalg.qr(rng.standard_normal((int(dim), int(dim))))
    return q * np.sign(np.diag(r))[None, :]


@dataclass(frozen=True, eq=False)
class GaussianData:
    r"""Centred Gaussian data :math:`\mathcal N(0, U \operatorname{diag}(\lambda) U^\top)`.

    Parameters
    ----------
    lam : array of shape (d,)
        Eigenvalues :math:`\lambda_i \ge 0` (finite).
    rotation : array of shape (d, d), optional
        Orthogonal matrix ``U`` whose columns are the eigenvectors; ``None`` means the identity.
    """

    lam: np.ndarray
    rotation: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lam = np.atleast_1d(check_lam(self.lam)).astype(np.float64)
        if lam.ndim != 1:
            raise InputError(f"lam must be a 1-D array of eigenvalues, got shape {lam.shape}")
        lam = lam.copy()
        lam.setflags(write=False)
        object.__setattr__(self, "lam", lam)
        if self.rotation is not None:
            u = np.asarray(self.rotation, dtype=np.float64).copy()
            if u.shape != (lam.size, lam.size):
                raise InputError(f"rotation must have shape ({lam.size}, {lam.size}), got {u.shape}")
            if not np.allclose(u.T @ u, np.eye(lam.size), atol=1e-10):
                raise InputError("rotation must be orthogonal (U^T U = I to 1e-10)")
            u.setflags(write=False)
            object.__setattr__(self, "rotation", u)

    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return int(self.lam.size)

    @property
    def rotated(self) -> bool:
        """Whether the eigenbasis is a rotation (not the identity)."""
        return self.rotation is not None

    def basis(self) -> np.ndarray:
        """The eigenbasis ``U`` (columns), the identity for diagonal data."""
        return np.eye(self.dim) if self.rotation is None else np.array(self.rotation)

    def covariance(self) -> np.ndarray:
        r""":math:`\Sigma = U \operatorname{diag}(\lambda) U^\top`."""
        u = self.basis()
        return (u * self.lam[None, :]) @ u.T

    def basis_tensor(self, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor | None:
        """``U`` as a tensor (cached per dtype and device); ``None`` for diagonal data."""
        if self.rotation is None:
            return None
        key = ("U", dtype, str(device))
        if key not in self._cache:
            self._cache[key] = torch.tensor(np.array(self.rotation), dtype=dtype, device=device)
        return self._cache[key]

    def lam_tensor(self, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        r""":math:`\lambda` as a tensor (cached per dtype and device)."""
        key = ("lam", dtype, str(device))
        if key not in self._cache:
            self._cache[key] = torch.tensor(np.array(self.lam), dtype=dtype, device=device)
        return self._cache[key]

    def to_eigen(self, x: torch.Tensor) -> torch.Tensor:
        r"""Eigen-coordinates :math:`c = x U` of row vectors ``x`` (``x`` itself for diagonal data)."""
        u = self.basis_tensor(x.dtype, x.device)
        return x if u is None else x @ u

    def from_eigen(self, c: torch.Tensor) -> torch.Tensor:
        r"""Back from eigen-coordinates: :math:`x = c U^\top`."""
        u = self.basis_tensor(c.dtype, c.device)
        return c if u is None else c @ u.T

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
        r"""``n`` draws of :math:`x_0 = (\sqrt{\lambda} \odot \xi) U^\top`, :math:`\xi \sim \mathcal N(0, I)`; shape ``(n, d)``."""
        xi = torch.randn(int(n), self.dim, generator=generator, dtype=dtype, device=device)
        return self.from_eigen(xi * self.lam_tensor(dtype, device).sqrt())

    def noise(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
        r""":math:`\varepsilon \sim \mathcal N(0, I_d)`, shape ``(n, d)``."""
        return torch.randn(int(n), self.dim, generator=generator, dtype=dtype, device=device)

    def forward_sample(self, schedule: Schedule, index: int, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64,
                       device: torch.device | str = "cpu") -> torch.Tensor:
        r"""Forward process at grid index ``index``: :math:`z_j = \alpha_j x_0 + \sigma_j \varepsilon`, shape ``(n, d)``."""
        if not 0 <= int(index) <= schedule.steps:
            raise InputError(f"index must be in [0, N] = [0, {schedule.steps}], got {index}")
        x0 = self.sample(n, generator, dtype, device)
        eps = self.noise(n, generator, dtype, device)
        return float(schedule.alpha[index]) * x0 + float(schedule.sigma[index]) * eps

    def to_dict(self) -> dict:
        """JSON-friendly description (eigenvalues and whether/how the basis is rotated)."""
        return {"lam": self.lam.tolist(), "rotated": self.rotated}


def make_gaussian(lam, rotated: bool = False, seed: int = 0) -> GaussianData:
    """Gaussian data with eigenvalues ``lam``; ``rotated=True`` draws ``U`` with :func:`random_rotation` (``seed``)."""
    lam_arr = np.atleast_1d(check_lam(lam)).astype(np.float64)
    rotation = random_rotation(lam_arr.size, seed) if rotated else None
    return GaussianData(lam_arr, rotation)


def _spectrum_json(obj):
    """The content of a ``.json`` spectrum file: a list of numbers, or a dict with a ``"lam"`` list."""
    values = obj["lam"] if isinstance(obj, dict) and "lam" in obj else obj
    if not isinstance(values, list) or not values or not all(is_real(v) for v in values):
        raise ValueError("expected a non-empty list of numbers, or an object with a 'lam' list")
    return obj


def parse_spectrum(text: str) -> np.ndarray:
    r"""Eigenvalues from a short text.

    Accepted forms:

    * ``"0.1,1,10"`` — a comma-separated list;
    * ``"geom:LO:HI:D"`` (or ``logspace:``) — ``D`` log-spaced values from ``LO`` to ``HI``;
    * ``"lin:LO:HI:D"`` (or ``linspace:``) — ``D`` evenly spaced values;
    * a path to a ``.npy``, ``.json`` (a list, or a dict with ``"lam"``) or text file of numbers.

    Returns
    -------
    ndarray of shape (d,)
        Validated eigenvalues (finite, ``>= 0``).
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("spectrum must be a non-empty string (a list 'a,b,c', 'geom:LO:HI:D', 'lin:LO:HI:D' or a file)")
    text = text.strip()
    head = text.split(":", 1)[0].lower()
    if head in ("geom", "logspace", "lin", "linspace"):
        parts = text.split(":")
        if len(parts) != 4:
            raise InputError(f"spectrum {text!r}: expected '{head}:LO:HI:D'")
        try:
            lo, hi, count = float(parts[1]), float(parts[2]), int(parts[3])
        except ValueError:
            raise InputError(f"spectrum {text!r}: LO and HI must be numbers and D an integer") from None
        if count < 1:
            raise InputError(f"spectrum {text!r}: D must be >= 1")
        if head in ("geom", "logspace"):
            if lo <= 0 or hi <= 0:
                raise InputError(f"spectrum {text!r}: a log-spaced spectrum needs LO, HI > 0")
            values = np.geomspace(lo, hi, count)
        else:
            values = np.linspace(lo, hi, count)
    elif Path(text).suffix.lower() in (".npy", ".json", ".txt", ".csv") and Path(text).exists():
        path = Path(text)
        if path.suffix.lower() == ".json":
            obj = load_json(path, name="spectrum file", validator=_spectrum_json)
            values = np.asarray(obj["lam"] if isinstance(obj, dict) else obj, dtype=np.float64)
        else:
            # one validated loader: no pickles, real finite numbers only (complex and boolean refused)
            values = load_array(path, name="spectrum file")
    else:
        try:
            values = np.array([float(v) for v in text.split(",") if v.strip()])
        except ValueError:
            raise InputError(
                f"spectrum {text!r} is not a list of numbers, 'geom:LO:HI:D', 'lin:LO:HI:D' or an existing .npy/.json/.txt/.csv file"
            ) from None
    values = np.atleast_1d(check_lam(np.asarray(values, dtype=np.float64).ravel(), "spectrum"))
    return values
