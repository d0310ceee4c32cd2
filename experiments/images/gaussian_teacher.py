r"""The Gaussian image teacher: the exact denoiser of :math:`\mathcal N(\mu, \Sigma)` fitted to the training images.

.. math:: \hat x_0 = \mu + \alpha\Sigma(\alpha^2\Sigma + \sigma^2 I)^{-1}(z - \alpha\mu)
          = \mu + U \operatorname{diag}\Big(\frac{\alpha\lambda}{\alpha^2\lambda + \sigma^2}\Big) U^\top (z - \alpha\mu).

It is the centred teacher of :class:`experiments.teacher.GaussianTeacher` conjugated by the shift
:math:`z \mapsto z - \alpha_n\mu` (the DDIM update is affine with matching shifts), so its sampler's
per-direction gain is :func:`opmerge.teacher.teacher_composite` exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from opmerge.schedules import Schedule
from opmerge.teacher import teacher_composite

from ..gaussian import GaussianData
from ..teacher import GaussianTeacher
from .data import GaussianFit, ImageDataset, fit_gaussian
from .teacher_base import ImageTeacher

__all__ = ["AffineDenoiser", "GaussianImageTeacher"]


class AffineDenoiser(nn.Module):
    r"""Affine denoiser at one level: :math:`\hat x_0 = W(z - \alpha\mu) + \mu` with trainable ``W`` (and bias ``b``, initially 0).

    ``module(z) = (z - shift) W^T + mu + b``; the Gaussian teacher's denoiser at :math:`(\alpha, \sigma)` has
    :math:`W = U\operatorname{diag}(\alpha\lambda/(\alpha^2\lambda + \sigma^2))U^\top`, ``shift`` :math:`= \alpha\mu`.
    """

    def __init__(self, weight: torch.Tensor, shift: torch.Tensor, mean: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(torch.zeros_like(mean))
        self.register_buffer("shift", shift.detach().clone())
        self.register_buffer("mean", mean.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (z - self.shift) @ self.weight.T + self.mean + self.bias


class GaussianImageTeacher(ImageTeacher):
    r"""Exact denoiser of :math:`\mathcal N(\mu, \Sigma)` fitted to the training images (module docstring).

    Parameters
    ----------
    schedule : Schedule
    fit : GaussianFit
    train : tensor, optional         training rows (see :class:`ImageTeacher`)
    dtype : torch.dtype              default float64 on the CPU, float32 on CUDA
    device : str or torch.device
    """

    kind = "gaussian"

    def __init__(self, schedule: Schedule, fit: GaussianFit, train: torch.Tensor | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        dtype = (torch.float64 if device.type == "cpu" else torch.float32) if dtype is None else dtype
        super().__init__(schedule, fit, train, dtype, device)
        self.data = GaussianData(np.array(fit.lam), np.array(fit.basis))
        self.centred = GaussianTeacher(schedule, self.data, solver="ddim", dtype=dtype, device=device)

    @classmethod
    def from_dataset(cls, dataset: ImageDataset, schedule: Schedule, dtype: torch.dtype | None = None,
                     device: torch.device | str = "cpu") -> "GaussianImageTeacher":
        """Fit the Gaussian to ``dataset.train`` and build the teacher."""
        return cls(schedule, fit_gaussian(dataset.train), torch.tensor(np.array(dataset.train)), dtype, device)

    def denoise_at(self, z: torch.Tensor, alpha, sigma) -> torch.Tensor:
        r""":math:`\hat x_0 = \mu + U\operatorname{diag}(\alpha\lambda/(\alpha^2\lambda+\sigma^2))U^\top(z - \alpha\mu)`."""
        return self.mean + self.centred.denoise_at(z - alpha * self.mean, alpha, sigma)

    def denoiser_matrix(self, alpha: float, sigma: float) -> torch.Tensor:
        r""":math:`W = U\operatorname{diag}(\alpha\lambda/(\alpha^2\lambda+\sigma^2))U^\top` (shape ``(dim, dim)``)."""
        lam = torch.as_tensor(np.array(self.fit.lam), dtype=self.dtype, device=self.device)
        u = torch.as_tensor(np.array(self.fit.basis), dtype=self.dtype, device=self.device)
        return (u * (alpha * lam / (alpha**2 * lam + sigma**2))) @ u.T

    def denoiser_module(self, alpha: float, sigma: float) -> nn.Module:
        """:class:`AffineDenoiser` initialised at this teacher's denoiser."""
        return AffineDenoiser(self.denoiser_matrix(alpha, sigma), alpha * self.mean, self.mean)

    def with_schedule(self, schedule: Schedule) -> "GaussianImageTeacher":  # noqa: D102
        return GaussianImageTeacher(schedule, self.fit, self.train, self.dtype, self.device)

    def composite_gains(self, top: int | None = None, bottom: int = 0) -> np.ndarray:
        r"""Per-direction gain of the sampler :math:`j \to i`: :func:`opmerge.teacher.teacher_composite` of the spectrum."""
        return np.atleast_1d(teacher_composite(self.schedule, np.array(self.fit.lam), top, bottom, "ddim"))
