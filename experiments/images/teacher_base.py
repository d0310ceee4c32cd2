r"""The interface every image teacher shares: a denoiser and the DDIM sampler on an opmerge grid.

A teacher supplies the denoiser :math:`\hat x_0(z; \alpha, \sigma)` (:meth:`ImageTeacher.denoise_at`);
this module runs it as the DDIM sampler on the grid of an opmerge schedule (for ``rf`` and ``edm`` a
DDIM step is an Euler step of the probability-flow ODE, ``docs/theory.md`` §2):

.. math:: z_{n-1} = \alpha_{n-1}\hat x_0 + \sigma_{n-1}\,\frac{z_n - \alpha_n \hat x_0}{\sigma_n}
          \qquad (z_0 = \hat x_0 \text{ when } \sigma_0 = 0),

and draws the sampler's inputs :math:`z_N = \alpha_N x_0 + \sigma_N\varepsilon` with :math:`x_0`
uniform over the training rows. :class:`~experiments.images.trained_teacher.TrainedTeacher` implements it;
the Gaussian teacher (:class:`experiments.teacher.GaussianTeacher` with a data mean, built by
:mod:`~experiments.images.gaussian_teacher`) has the same methods.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from opmerge.errors import InputError, InputTypeError
from opmerge.schedules import Schedule

from .data import GaussianFit

__all__ = ["ImageTeacher"]


class ImageTeacher:
    r"""Denoiser + DDIM sampler on an opmerge schedule's grid (see the module docstring).

    Subclasses implement :meth:`denoise_at` and :meth:`denoiser_module` and :meth:`with_schedule`.

    Parameters
    ----------
    schedule : Schedule
        The sampling grid ``n = 0..N``.
    fit : GaussianFit
        The Gaussian fitted to the training images (mean, covariance, eigenbasis).
    train : tensor (n, dim), optional
        Training images, for the :math:`\alpha_N x_0` part of :math:`z_N` when :math:`\alpha_N > 0`.
    dtype, device : torch dtype and device of every computation.
    """

    kind = "abstract"

    def __init__(self, schedule: Schedule, fit: GaussianFit, train: torch.Tensor | None, dtype: torch.dtype,
                 device: torch.device | str) -> None:
        if not isinstance(schedule, Schedule):
            raise InputTypeError(f"schedule must be an opmerge Schedule, got {type(schedule).__name__}")
        if not isinstance(fit, GaussianFit):
            raise InputTypeError(f"fit must be a GaussianFit, got {type(fit).__name__}")
        self.schedule = schedule
        self.fit = fit
        self.device = torch.device(device)
        self.dtype = dtype
        self.mean = torch.as_tensor(np.array(fit.mean), dtype=dtype, device=self.device)
        self.train = None if train is None else train.to(dtype=dtype, device=self.device)

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Number of teacher steps ``N``."""
        return self.schedule.steps

    @property
    def dim(self) -> int:
        """Data dimension."""
        return self.fit.dim

    def coef(self, n: int) -> tuple[float, float]:
        r""":math:`(\alpha_n, \sigma_n)` as floats.

        Parameters
        ----------
        n : int
            Grid index in ``0..N``.
        """
        return float(self.schedule.alpha[n]), float(self.schedule.sigma[n])

    # ---- denoiser and sampler --------------------------------------------------------------
    def denoise_at(self, z: torch.Tensor, alpha: float | torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""The denoiser :math:`\hat x_0(z; \alpha, \sigma)`.

        Parameters
        ----------
        z : tensor (n, dim)
            States at the current level.
        alpha, sigma : float or tensor broadcastable to ``(n, 1)``
            The noise level of ``z`` (continuous: any level works).
        """
        raise NotImplementedError

    def denoiser_module(self, alpha: float, sigma: float) -> nn.Module:
        r"""A fresh trainable copy of the denoiser at the fixed level :math:`(\alpha, \sigma)`: ``module(z) = x̂0``.

        Parameters
        ----------
        alpha, sigma : float
            The level.
        """
        raise NotImplementedError

    def with_schedule(self, schedule: Schedule) -> "ImageTeacher":
        """The same teacher sampled on another grid.

        Parameters
        ----------
        schedule : Schedule
            The new grid.
        """
        raise NotImplementedError

    def denoise(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r""":meth:`denoise_at` at grid index ``n``.

        Parameters
        ----------
        z : tensor (n, dim)
            States at the current level.
        n : int
            Grid index.
        """
        a, s = self.coef(n)
        return self.denoise_at(z, a, s)

    def ddim_jump(self, z: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
        r"""One DDIM update from grid index ``top = j`` to ``bottom = i``:
        :math:`z_i = \alpha_i\hat x_0 + \sigma_i (z_j - \alpha_j\hat x_0)/\sigma_j` (:math:`\hat x_0` when :math:`\sigma_i = 0`).

        Parameters
        ----------
        z : tensor (n, dim)
            States at the current level.
        top, bottom : int
            Grid indices :math:`j \ge i`.
        """
        if top == bottom:
            return z
        a_j, s_j = self.coef(top)
        a_i, s_i = self.coef(bottom)
        x0 = self.denoise_at(z, a_j, s_j)
        if s_i == 0.0:
            return x0
        return a_i * x0 + s_i * (z - a_j * x0) / s_j

    def step(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""Teacher step :math:`n \to n-1` (one DDIM/Euler step).

        Parameters
        ----------
        z : tensor (n, dim)
            States at the current level.
        n : int
            Step in ``1..N``.
        """
        if not 1 <= int(n) <= self.steps:
            raise InputError(f"step n must be in [1, N] = [1, {self.steps}], got {n}")
        return self.ddim_jump(z, int(n), int(n) - 1)

    def sample(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> torch.Tensor:
        r"""Run the sampler from grid index ``top`` (default ``N``) to ``bottom``: :math:`T(j \to i)` (no gradients).

        Parameters
        ----------
        z : tensor (n, dim)
            States at level ``top``.
        top : int, optional
        bottom : int
            ``0 <= bottom <= top <= N``.
        """
        top = self.steps if top is None else int(top)
        if not 0 <= bottom <= top <= self.steps:
            raise InputError(f"need 0 <= bottom <= top <= N = {self.steps}, got top = {top}, bottom = {bottom}")
        with torch.no_grad():
            for n in range(top, bottom, -1):
                z = self.step(z, n)
        return z

    def trajectory(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> list[torch.Tensor]:
        """Every grid state from ``top`` down to ``bottom`` (``top`` first; no gradients).

        Parameters
        ----------
        z : tensor (n, dim)
            States at level ``top``.
        top : int, optional
            Default ``N``.
        bottom : int
        """
        top = self.steps if top is None else int(top)
        states = [z]
        with torch.no_grad():
            for n in range(top, bottom, -1):
                states.append(self.step(states[-1], n))
        return states

    # ---- inputs ----------------------------------------------------------------------------
    def forward_sample(self, index: int, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        r"""Forward process at grid index ``index``: :math:`z_j = \alpha_j x_0 + \sigma_j\varepsilon`.

        Parameters
        ----------
        index : int
            Grid index :math:`j`.
        x0 : tensor (n, dim)
            Clean rows.
        generator : torch.Generator
            Draws :math:`\varepsilon` in float64 on its own device (the same numbers on every device).
        """
        a, s = self.coef(index)
        eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64, device=generator.device).to(dtype=self.dtype, device=self.device)
        return a * x0.to(dtype=self.dtype, device=self.device) + s * eps

    def noise_sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""Sampler inputs :math:`z_N = \alpha_N x_0 + \sigma_N\varepsilon`, :math:`x_0` uniform over the training rows
        (the :math:`\alpha_N x_0` term vanishes for ``rf`` and ``vp-cosine``: :math:`\alpha_N \approx 0`).

        Parameters
        ----------
        n : int
            Number of inputs.
        generator : torch.Generator
            Draws the rows and the noise.
        """
        if self.train is None:
            x0 = self.mean.expand(int(n), -1)
        else:
            idx = torch.randint(self.train.shape[0], (int(n),), generator=generator, device=generator.device)
            x0 = self.train[idx.to(self.device)]
        return self.forward_sample(self.steps, x0, generator)

    def sample_images(self, n: int, generator: torch.Generator, batch: int = 4096) -> torch.Tensor:
        """``n`` teacher samples (inputs from :meth:`noise_sample`), computed in batches.

        Parameters
        ----------
        n : int
        generator : torch.Generator
        batch : int
            Rows per batch.
        """
        z = self.noise_sample(n, generator)
        return torch.cat([self.sample(z[k:k + batch]) for k in range(0, int(n), batch)]) if n else z

    def to_dict(self) -> dict:
        """JSON-friendly description."""
        return {"kind": self.kind, "schedule": self.schedule.to_dict(), "dim": self.dim, "dtype": str(self.dtype).replace("torch.", "")}
