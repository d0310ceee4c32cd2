r"""Teachers on image data: the Gaussian fitted to the data, and a small MLP diffusion model trained here.

Both share one interface (:class:`ImageTeacher`): a denoiser :math:`\hat x_0(z; \alpha, \sigma)` and
the DDIM sampler on an opmerge schedule's grid (for ``rf`` and ``edm`` a DDIM step is an Euler step
of the probability-flow ODE, THEORY.md §2):

.. math:: z_{n-1} = \alpha_{n-1}\hat x_0 + \sigma_{n-1}\,\frac{z_n - \alpha_n \hat x_0}{\sigma_n}
          \qquad (z_0 = \hat x_0 \text{ when } \sigma_0 = 0).

**Gaussian teacher** (:class:`GaussianImageTeacher`): the exact posterior mean for
:math:`x_0 \sim \mathcal N(\mu, \Sigma)` fitted to the training images,

.. math:: \hat x_0 = \mu + \alpha\Sigma(\alpha^2\Sigma + \sigma^2 I)^{-1}(z - \alpha\mu)
          = \mu + U \operatorname{diag}\Big(\frac{\alpha\lambda}{\alpha^2\lambda + \sigma^2}\Big) U^\top (z - \alpha\mu).

It is the centred teacher of :class:`experiments.teacher.GaussianTeacher` conjugated by the shift
:math:`z \mapsto z - \alpha_n\mu` (the DDIM update is affine with matching shifts), so its sampler's
per-direction gain is :func:`opmerge.teacher.teacher_composite` exactly.

**Trained teacher** (:class:`TrainedTeacher`, :class:`DenoiserMLP`): an MLP denoiser with a
log-SNR embedding and EDM-style preconditioning around the data mean (``docs/images.md``),

.. math:: \hat x_0 = \mu + c_\text{skip}(z - \alpha\mu) + c_\text{out} F_\theta\big(c_\text{in}(z - \alpha\mu), \ell\big),\quad
          c_\text{in} = \frac{1}{\sqrt{\alpha^2 s^2 + \sigma^2}},\ c_\text{skip} = \frac{\alpha s^2}{\alpha^2 s^2 + \sigma^2},\
          c_\text{out} = \frac{\sigma s}{\sqrt{\alpha^2 s^2 + \sigma^2}},

:math:`\ell = \log(\alpha^2/\sigma^2)` and :math:`s^2 = \operatorname{tr}\Sigma/d` (``x0`` prediction, loss
:math:`\|F_\theta - (x_0 - \mu - c_\text{skip}(z - \alpha\mu))/c_\text{out}\|^2`), or
:math:`\hat\varepsilon = F_\theta(c_\text{in}(z - \alpha\mu), \ell)`, :math:`\hat x_0 = (z - \sigma\hat\varepsilon)/\alpha`
(``eps`` prediction, loss :math:`\|\hat\varepsilon - \varepsilon\|^2`; at :math:`\alpha = 0` the posterior
mean is exactly :math:`\mu`). The network sees only :math:`z/\sigma` through the SNR, so a teacher
trained under one schedule samples on any grid. Training (:func:`train_teacher`): Adam, seeded
batches (rows, times :math:`t \sim U(t_\text{min}, 1)` of the training schedule, noise), gradient
clipping, an EMA of the weights (used for sampling), checkpoints written atomically with the full
configuration, the step, the optimizer state and the random generator's state, so that a resumed
run continues bit for bit on the CPU.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from opmerge.schedules import Schedule, make_schedule
from opmerge.teacher import teacher_composite

from .._torch import resolve_device
from ..gaussian import GaussianData
from ..teacher import GaussianTeacher
from ._schedule import alpha_sigma, check_continuous
from .data import GaussianFit, ImageDataset, fit_gaussian, load_dataset

__all__ = [
    "PREDICTIONS",
    "ImageTeacher",
    "GaussianImageTeacher",
    "DenoiserMLP",
    "AffineDenoiser",
    "TrainedTeacher",
    "TeacherConfig",
    "TeacherCheckpoint",
    "train_teacher",
    "load_checkpoint",
    "save_checkpoint_atomic",
    "CHECKPOINT_NAME",
]

PREDICTIONS = ("x0", "eps")
CHECKPOINT_NAME = "teacher.pt"
CHECKPOINT_FORMAT = "opmerge-image-teacher/1"
#: an alpha at or below this is treated as exactly 0 (vp-cosine's alpha_N = cos(pi/2) ~ 6e-17)
ALPHA_ZERO = 1e-12
LOGSNR_CLIP = 15.0


def _dtype_of(name: str) -> torch.dtype:
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return torch.float32 if name == "float32" else torch.float64


# =============================================================================================
# common interface
# =============================================================================================


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
            raise TypeError(f"schedule must be an opmerge Schedule, got {type(schedule).__name__}")
        if not isinstance(fit, GaussianFit):
            raise TypeError(f"fit must be a GaussianFit, got {type(fit).__name__}")
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
        r""":math:`(\alpha_n, \sigma_n)` as floats."""
        return float(self.schedule.alpha[n]), float(self.schedule.sigma[n])

    # ---- denoiser and sampler --------------------------------------------------------------
    def denoise_at(self, z: torch.Tensor, alpha, sigma) -> torch.Tensor:
        r"""The denoiser :math:`\hat x_0(z; \alpha, \sigma)` (floats, or tensors broadcastable to ``(n, 1)``)."""
        raise NotImplementedError

    def denoiser_module(self, alpha: float, sigma: float) -> nn.Module:
        r"""A fresh trainable copy of the denoiser at the fixed level :math:`(\alpha, \sigma)`: ``module(z) = x̂0``."""
        raise NotImplementedError

    def with_schedule(self, schedule: Schedule) -> "ImageTeacher":
        """The same teacher sampled on another grid."""
        raise NotImplementedError

    def denoise(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r""":meth:`denoise_at` at grid index ``n``."""
        a, s = self.coef(n)
        return self.denoise_at(z, a, s)

    def ddim_jump(self, z: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
        r"""One DDIM update from grid index ``top = j`` to ``bottom = i``:
        :math:`z_i = \alpha_i\hat x_0 + \sigma_i (z_j - \alpha_j\hat x_0)/\sigma_j` (:math:`\hat x_0` when :math:`\sigma_i = 0`)."""
        if top == bottom:
            return z
        a_j, s_j = self.coef(top)
        a_i, s_i = self.coef(bottom)
        x0 = self.denoise_at(z, a_j, s_j)
        if s_i == 0.0:
            return x0
        return a_i * x0 + s_i * (z - a_j * x0) / s_j

    def step(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""Teacher step :math:`n \to n-1` (one DDIM/Euler step)."""
        if not 1 <= int(n) <= self.steps:
            raise ValueError(f"step n must be in [1, N] = [1, {self.steps}], got {n}")
        return self.ddim_jump(z, int(n), int(n) - 1)

    def sample(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> torch.Tensor:
        r"""Run the sampler from grid index ``top`` (default ``N``) to ``bottom``: :math:`T(j \to i)`."""
        top = self.steps if top is None else int(top)
        if not 0 <= bottom <= top <= self.steps:
            raise ValueError(f"need 0 <= bottom <= top <= N = {self.steps}, got top = {top}, bottom = {bottom}")
        with torch.no_grad():
            for n in range(top, bottom, -1):
                z = self.step(z, n)
        return z

    def trajectory(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> list[torch.Tensor]:
        """Every grid state from ``top`` down to ``bottom`` (``top`` first)."""
        top = self.steps if top is None else int(top)
        states = [z]
        with torch.no_grad():
            for n in range(top, bottom, -1):
                states.append(self.step(states[-1], n))
        return states

    # ---- inputs ----------------------------------------------------------------------------
    def forward_sample(self, index: int, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        r"""Forward process at grid index ``index``: :math:`z_j = \alpha_j x_0 + \sigma_j\varepsilon` (noise from ``generator``, on the CPU)."""
        a, s = self.coef(index)
        eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64, device=generator.device).to(dtype=self.dtype, device=self.device)
        return a * x0.to(dtype=self.dtype, device=self.device) + s * eps

    def noise_sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""Sampler inputs :math:`z_N = \alpha_N x_0 + \sigma_N\varepsilon`, :math:`x_0` uniform over the training rows
        (the :math:`\alpha_N x_0` term vanishes for ``rf`` and ``vp-cosine``: :math:`\alpha_N \approx 0`)."""
        if self.train is None:
            x0 = self.mean.expand(int(n), -1)
        else:
            idx = torch.randint(self.train.shape[0], (int(n),), generator=generator, device=generator.device)
            x0 = self.train[idx.to(self.device)]
        return self.forward_sample(self.steps, x0, generator)

    def sample_images(self, n: int, generator: torch.Generator, batch: int = 4096) -> torch.Tensor:
        """``n`` teacher samples (inputs from :meth:`noise_sample`), computed in batches."""
        z = self.noise_sample(n, generator)
        return torch.cat([self.sample(z[k:k + batch]) for k in range(0, int(n), batch)]) if n else z

    def to_dict(self) -> dict:
        """JSON-friendly description."""
        return {"kind": self.kind, "schedule": self.schedule.to_dict(), "dim": self.dim, "dtype": str(self.dtype).replace("torch.", "")}


# =============================================================================================
# Gaussian teacher
# =============================================================================================


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


# =============================================================================================
# trained teacher
# =============================================================================================


def logsnr_embedding(logsnr: torch.Tensor, width: int) -> torch.Tensor:
    r"""Fourier features of the clipped log-SNR :math:`u = \mathrm{clip}(\ell, \pm 15)/4`:
    :math:`[\sin(f_k u), \cos(f_k u)]_{k}`, :math:`f_k` geometric from 0.25 to 8 (``width`` even)."""
    half = width // 2
    freqs = torch.exp(torch.linspace(math.log(0.25), math.log(8.0), half, dtype=logsnr.dtype, device=logsnr.device))
    u = logsnr.clamp(-LOGSNR_CLIP, LOGSNR_CLIP) / 4.0
    arg = u * freqs
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


def _as_column(value, n: int, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        t = t.expand(n)
    return t.reshape(n, 1) if t.numel() == n else t.expand(n, 1)


class DenoiserMLP(nn.Module):
    r"""MLP denoiser with log-SNR conditioning and preconditioning around the data mean (module docstring).

    ``depth`` hidden layers of width ``hidden``, SiLU; the embedding enters every hidden layer
    additively, :math:`h_{l+1} = \mathrm{SiLU}(W_l h_l + E_l e(\ell) + b_l)`; the output layer starts
    at zero, so an untrained ``x0`` network is the isotropic Gaussian denoiser of variance :math:`s^2`.

    Parameters
    ----------
    dim, hidden, depth, emb_dim : int
    prediction : {"x0", "eps"}
    mean : tensor (dim,)      data mean :math:`\mu` (a buffer)
    data_std : float          :math:`s = \sqrt{\operatorname{tr}\Sigma/d}`
    generator : torch.Generator   initial weights (uniform :math:`\pm 1/\sqrt{\text{fan in}}`)
    """

    def __init__(self, dim: int, hidden: int, depth: int, emb_dim: int, prediction: str, mean: torch.Tensor, data_std: float,
                 generator: torch.Generator, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}")
        self.dim, self.hidden, self.depth, self.emb_dim, self.prediction = int(dim), int(hidden), int(depth), int(emb_dim), prediction
        self.data_std = float(data_std)
        self.register_buffer("mean", mean.detach().clone().to(dtype))
        sizes = [self.dim] + [self.hidden] * self.depth

        def uniform(shape, fan_in):
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter((torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1).mul(bound).to(dtype))

        self.weights = nn.ParameterList([uniform((o, i), i) for i, o in zip(sizes[:-1], sizes[1:])])
        self.biases = nn.ParameterList([uniform((o,), i) for i, o in zip(sizes[:-1], sizes[1:])])
        self.embeds = nn.ParameterList([uniform((o, self.emb_dim), self.emb_dim) for o in sizes[1:]])
        self.out_weight = nn.Parameter(torch.zeros(self.dim, self.hidden, dtype=dtype))
        self.out_bias = nn.Parameter(torch.zeros(self.dim, dtype=dtype))

    def network(self, inp: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        r"""The raw network :math:`F_\theta(\text{input}, \ell)`; ``logsnr`` of shape ``(n, 1)``."""
        emb = logsnr_embedding(logsnr, self.emb_dim)
        h = inp
        for w, b, e in zip(self.weights, self.biases, self.embeds):
            h = torch.nn.functional.silu(h @ w.T + emb @ e.T + b)
        return h @ self.out_weight.T + self.out_bias

    def preconditioning(self, alpha: torch.Tensor, sigma: torch.Tensor):
        r""":math:`(c_\text{in}, c_\text{skip}, c_\text{out}, \ell)` for columns ``alpha``, ``sigma``."""
        s2 = self.data_std**2
        den2 = alpha**2 * s2 + sigma**2
        c_in = torch.rsqrt(den2)
        c_skip = alpha * s2 / den2
        c_out = sigma * self.data_std * c_in
        logsnr = 2.0 * (torch.log(alpha.clamp_min(1e-30)) - torch.log(sigma.clamp_min(1e-30)))
        return c_in, c_skip, c_out, logsnr

    def forward(self, z: torch.Tensor, alpha, sigma) -> torch.Tensor:
        r"""Denoised estimate :math:`\hat x_0(z; \alpha, \sigma)`."""
        n = z.shape[0]
        a, s = _as_column(alpha, n, z), _as_column(sigma, n, z)
        c_in, c_skip, c_out, logsnr = self.preconditioning(a, s)
        centred = z - a * self.mean
        f = self.network(c_in * centred, logsnr)
        if self.prediction == "x0":
            return self.mean + c_skip * centred + c_out * f
        zero = a <= ALPHA_ZERO
        x0 = (z - s * f) / torch.where(zero, torch.ones_like(a), a)
        return torch.where(zero, self.mean.expand_as(x0), x0)

    def loss(self, x0: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        r"""Training loss on a batch, mean over rows of the squared error summed over pixels
        (``x0``: :math:`\|F - (x_0 - \mu - c_\text{skip}(z - \alpha\mu))/c_\text{out}\|^2`; ``eps``: :math:`\|F - \varepsilon\|^2`)."""
        z = alpha * x0 + sigma * eps
        c_in, c_skip, c_out, logsnr = self.preconditioning(alpha, sigma)
        centred = z - alpha * self.mean
        f = self.network(c_in * centred, logsnr)
        target = eps if self.prediction == "eps" else (x0 - self.mean - c_skip * centred) / c_out
        return (f - target).pow(2).sum(dim=1).mean()


class FixedLevelDenoiser(nn.Module):
    r"""A :class:`DenoiserMLP` evaluated at a fixed level :math:`(\alpha, \sigma)`: ``module(z) = x̂0(z; α, σ)`` (trainable)."""

    def __init__(self, net: DenoiserMLP, alpha: float, sigma: float) -> None:
        super().__init__()
        self.net, self.alpha, self.sigma = net, float(alpha), float(sigma)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(z, self.alpha, self.sigma)


class TrainedTeacher(ImageTeacher):
    r"""A trained :class:`DenoiserMLP` (its EMA weights) with the DDIM sampler on ``schedule``.

    Build it with :meth:`TeacherCheckpoint.load_teacher` or :func:`load_checkpoint`.
    """

    kind = "trained"

    def __init__(self, net: DenoiserMLP, schedule: Schedule, fit: GaussianFit, train: torch.Tensor | None = None,
                 config: "TeacherConfig | None" = None) -> None:
        p = next(net.parameters())
        super().__init__(schedule, fit, train, p.dtype, p.device)
        self.net = net.eval()
        for q in self.net.parameters():
            q.requires_grad_(False)
        self.config = config

    def denoise_at(self, z: torch.Tensor, alpha, sigma) -> torch.Tensor:  # noqa: D102
        return self.net(z, alpha, sigma)

    def denoiser_module(self, alpha: float, sigma: float) -> nn.Module:
        """A trainable copy of the network at the fixed level (:class:`FixedLevelDenoiser`)."""
        net = copy.deepcopy(self.net).train()
        for q in net.parameters():
            q.requires_grad_(True)
        return FixedLevelDenoiser(net, alpha, sigma)

    def with_schedule(self, schedule: Schedule) -> "TrainedTeacher":  # noqa: D102
        return TrainedTeacher(self.net, schedule, self.fit, self.train, self.config)

    def to_dict(self) -> dict:  # noqa: D102
        out = super().to_dict()
        out["config"] = None if self.config is None else self.config.to_dict()
        return out


# =============================================================================================
# configuration, checkpoints, training
# =============================================================================================


@dataclass(frozen=True)
class TeacherConfig:
    r"""Everything that fixes a trained teacher (stored in its checkpoint).

    Parameters
    ----------
    data : str                ``"digits"``, ``"mnist"``, ``"cifar10"`` or a path to a ``.npy`` file
    test_fraction, split_seed : the train/test split (``digits`` / ``.npy``)
    schedule : {"rf", "vp-cosine"}   training noise levels :math:`t \sim U(t_\text{min}, 1)` and the default sampling grid
    steps : int               sampling steps ``N`` of the default grid
    prediction : {"x0", "eps"}
    hidden, depth, emb_dim : network width, hidden layers, embedding width (even)
    train_steps : int         Adam updates in total
    batch_size : int
    lr : float                Adam step size (betas (0.9, 0.999))
    lr_schedule : {"cosine", "constant"}   ``cosine``: :math:`\eta_k = \eta\,(0.1 + 0.9\cdot\tfrac12(1 + \cos(\pi k/K)))`
                              (down to a tenth at the last step ``K = train_steps``)
    grad_clip : float         global gradient-norm clip (0 disables)
    ema_decay : float         EMA rate, warmed up as :math:`\min(d, (1 + k)/(10 + k))`
    t_min : float             smallest training time
    seed : int                initial weights and every batch
    dtype : {"float32", "float64"}
    checkpoint_every : int    steps between checkpoints (not part of the identity of a run)
    """

    data: str = "digits"
    test_fraction: float = 0.2
    split_seed: int = 0
    schedule: str = "rf"
    steps: int = 16
    prediction: str = "x0"
    hidden: int = 384
    depth: int = 3
    emb_dim: int = 32
    train_steps: int = 20000
    batch_size: int = 256
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    t_min: float = 1e-3
    seed: int = 0
    dtype: str = "float32"
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        check_continuous(self.schedule)
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        _dtype_of(self.dtype)
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        for label in ("steps", "hidden", "depth", "emb_dim", "train_steps", "batch_size", "checkpoint_every"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{label} must be an int >= 1, got {value!r}")
            object.__setattr__(self, label, int(value))
        if self.emb_dim % 2:
            raise ValueError(f"emb_dim must be even, got {self.emb_dim}")
        for label, lo, hi in (("lr", 0.0, math.inf), ("ema_decay", 0.0, 1.0), ("t_min", 0.0, 1.0), ("test_fraction", 0.0, 1.0)):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (lo < float(value) < hi):
                raise ValueError(f"{label} must be a number in ({lo}, {hi}), got {value!r}")
            object.__setattr__(self, label, float(value))
        if isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, (int, float)) or not (self.grad_clip >= 0 and math.isfinite(self.grad_clip)):
            raise ValueError(f"grad_clip must be a finite number >= 0, got {self.grad_clip!r}")
        object.__setattr__(self, "grad_clip", float(self.grad_clip))
        for label in ("seed", "split_seed"):
            if isinstance(getattr(self, label), bool) or not isinstance(getattr(self, label), (int, np.integer)):
                raise TypeError(f"{label} must be an int, got {getattr(self, label)!r}")
            object.__setattr__(self, label, int(getattr(self, label)))
        if not isinstance(self.data, str) or not self.data:
            raise ValueError("data must be 'digits', 'mnist', 'cifar10' or a path to a .npy file")

    @classmethod
    def quick(cls, **overrides) -> "TeacherConfig":
        """The quick preset (CPU, a few seconds): width 128, 3 layers, 2,000 steps of batch 128, lr 2e-3."""
        base = dict(hidden=128, depth=3, train_steps=2000, batch_size=128, lr=2e-3, ema_decay=0.995, checkpoint_every=500)
        base.update(overrides)
        return cls(**base)

    #: fields that may differ between a checkpoint and a resumed run
    RESUMABLE = ("train_steps", "checkpoint_every", "steps")

    def to_dict(self) -> dict:
        """The configuration as a JSON-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TeacherConfig":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown teacher configuration keys: {', '.join(sorted(unknown))}")
        return cls(**values)


def _dataset_of(config: TeacherConfig) -> ImageDataset:
    return load_dataset(config.data, test_fraction=config.test_fraction, seed=config.split_seed)


@dataclass(frozen=True)
class TeacherCheckpoint:
    r"""A trained (or partly trained) teacher on disk.

    Attributes
    ----------
    path : Path               the ``teacher.pt`` file (a JSON summary ``teacher.json`` lies beside it)
    config : TeacherConfig
    step : int                Adam updates done
    losses : list of float    mean training loss of every ``log_every`` block of steps
    data : dict               the dataset's description (with its fingerprint)
    elapsed : float           training seconds, summed over sessions
    """

    path: Path
    config: TeacherConfig
    step: int
    losses: tuple
    data: dict
    elapsed: float

    @property
    def finished(self) -> bool:
        """Whether ``step >= config.train_steps``."""
        return self.step >= self.config.train_steps

    def load_teacher(self, device: str | torch.device = "cpu", schedule: Schedule | None = None,
                     dataset: ImageDataset | None = None) -> TrainedTeacher:
        """The EMA network as a :class:`TrainedTeacher` on ``device`` (grid: ``schedule`` or the configured one)."""
        return load_checkpoint(self.path, device=device, schedule=schedule, dataset=dataset)[0]

    def to_dict(self) -> dict:
        """JSON-friendly summary."""
        return {"path": str(self.path), "config": self.config.to_dict(), "step": self.step, "finished": self.finished,
                "losses": list(self.losses), "data": self.data, "elapsed": self.elapsed}


def save_checkpoint_atomic(obj: dict, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to a temporary file beside ``path``, then ``os.replace`` (never a half-written checkpoint)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _read_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(2, "teacher checkpoint not found", str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an opmerge image-teacher checkpoint (format {CHECKPOINT_FORMAT!r})")
    return state


def _build_net(config: TeacherConfig, dataset: ImageDataset, fit: GaussianFit, device: torch.device) -> DenoiserMLP:
    dtype = _dtype_of(config.dtype)
    gen = torch.Generator().manual_seed(config.seed)
    data_std = math.sqrt(float(np.sum(fit.lam)) / fit.dim)
    net = DenoiserMLP(dataset.dim, config.hidden, config.depth, config.emb_dim, config.prediction,
                      torch.as_tensor(np.array(fit.mean)), data_std, gen, dtype)
    return net.to(device)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", schedule: Schedule | None = None,
                    dataset: ImageDataset | None = None) -> tuple[TrainedTeacher, TeacherCheckpoint]:
    """Load a checkpoint file (or a folder holding ``teacher.pt``): the EMA network as a teacher, and its summary.

    The dataset is rebuilt from the stored configuration (or ``dataset`` is used) and must have the
    stored fingerprint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    state = _read_checkpoint(path)
    config = TeacherConfig.from_dict(state["config"])
    dataset = _dataset_of(config) if dataset is None else dataset
    if dataset.fingerprint() != state["data"]["fingerprint"]:
        raise ValueError(f"{path}: the dataset differs from the one the teacher was trained on (fingerprint mismatch)")
    device = resolve_device(device)
    fit = fit_gaussian(dataset.train)
    net = _build_net(config, dataset, fit, device)
    net.load_state_dict(state["ema"])
    dtype = _dtype_of(config.dtype) if device.type == "cpu" else torch.float32
    net = net.to(dtype=dtype)
    schedule = make_schedule(config.schedule, config.steps) if schedule is None else schedule
    teacher = TrainedTeacher(net, schedule, fit, torch.tensor(np.array(dataset.train)), config)
    summary = TeacherCheckpoint(path=path, config=config, step=int(state["step"]), losses=tuple(state["losses"]),
                                data=state["data"], elapsed=float(state["elapsed"]))
    return teacher, summary


def _check_resumable(stored: dict, config: TeacherConfig, path: Path) -> None:
    for key, value in config.to_dict().items():
        if key in TeacherConfig.RESUMABLE:
            continue
        if stored.get(key) != value:
            raise ValueError(
                f"the checkpoint {path} was trained with {key} = {stored.get(key)!r}, not {value!r}; "
                "resume with the same configuration, or start over (--no-resume / resume=False, or another output folder)"
            )


def train_teacher(config: TeacherConfig, out_dir: str | os.PathLike, resume: bool = True, progress: bool = True, *,
                  device: str | torch.device = "auto", dataset: ImageDataset | None = None, log_every: int = 100,
                  stop_after: int | None = None, callback: Callable[[int, float], None] | None = None) -> TeacherCheckpoint:
    r"""Train (or resume training) the MLP diffusion teacher and return its checkpoint.

    Each step: rows :math:`x_0` uniform over the training set, times :math:`t = t_\text{min} + (1 - t_\text{min})u`,
    :math:`u \sim U(0, 1)`, noise :math:`\varepsilon`, :math:`(\alpha, \sigma) = (\alpha(t), \sigma(t))` of
    ``config.schedule``; loss :meth:`DenoiserMLP.loss`; Adam; gradient clipping; EMA update
    :math:`\bar\theta \leftarrow d_k\bar\theta + (1 - d_k)\theta`, :math:`d_k = \min(d, (1 + k)/(10 + k))`.
    All draws come from one CPU generator seeded by ``config.seed``; its state is stored in every
    checkpoint.

    Parameters
    ----------
    config : TeacherConfig
    out_dir : path            folder of ``teacher.pt`` and ``teacher.json``
    resume : bool             continue from ``out_dir/teacher.pt`` if present (same configuration except
                              :attr:`TeacherConfig.RESUMABLE` fields); ``False`` starts over
    progress : bool           tqdm bar
    device : {"auto", "cpu", "cuda"}
    dataset : ImageDataset    use this instead of loading ``config.data`` (must match it)
    log_every : int           steps per loss record
    stop_after : int          stop (with a checkpoint) after this many steps in this call (for tests)
    callback : callable       ``callback(step, loss)`` after every step

    Notes
    -----
    Ctrl-C writes a checkpoint at the current step before re-raising; a rerun resumes there.
    """
    if not isinstance(config, TeacherConfig):
        raise TypeError(f"config must be a TeacherConfig, got {type(config).__name__}")
    out_dir = Path(out_dir)
    path = out_dir / CHECKPOINT_NAME
    device = resolve_device(device)
    dataset = _dataset_of(config) if dataset is None else dataset
    fit = fit_gaussian(dataset.train)
    net = _build_net(config, dataset, fit, device)
    dtype = _dtype_of(config.dtype)
    ema = copy.deepcopy(net)
    for q in ema.parameters():
        q.requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    step, losses, elapsed = 0, [], 0.0
    block: list[float] = []
    if resume and path.is_file():
        state = _read_checkpoint(path)
        _check_resumable(state["config"], config, path)
        if state["data"]["fingerprint"] != dataset.fingerprint():
            raise ValueError(f"the checkpoint {path} was trained on other data (fingerprint mismatch)")
        net.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        step, losses, elapsed = int(state["step"]), list(state["losses"]), float(state["elapsed"])
        block = [float(v) for v in state.get("loss_block", [])]
    train_x = torch.tensor(np.array(dataset.train), dtype=dtype, device=device)
    n_train = train_x.shape[0]

    def save() -> TeacherCheckpoint:
        state = {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "step": step, "model": net.state_dict(),
                 "ema": ema.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(), "losses": list(losses),
                 "loss_block": list(block), "data": dataset.to_dict(), "elapsed": elapsed}
        save_checkpoint_atomic(state, path)
        summary = TeacherCheckpoint(path=path, config=config, step=step, losses=tuple(losses), data=dataset.to_dict(), elapsed=elapsed)
        _write_json_atomic(out_dir / "teacher.json", summary.to_dict())
        return summary

    target = config.train_steps if stop_after is None else min(config.train_steps, step + int(stop_after))
    if step >= target:
        return save() if not path.is_file() else TeacherCheckpoint(path, config, step, tuple(losses), dataset.to_dict(), elapsed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=target, initial=step, desc="teacher", leave=False)
    start = time.perf_counter()
    t_min = config.t_min
    try:
        while step < target:
            idx = torch.randint(n_train, (config.batch_size,), generator=gen)
            u = torch.rand(config.batch_size, 1, generator=gen, dtype=torch.float64)
            eps = torch.randn(config.batch_size, dataset.dim, generator=gen, dtype=torch.float64)
            t = t_min + (1.0 - t_min) * u
            alpha, sigma = alpha_sigma(config.schedule, t)
            x0 = train_x[idx.to(device)]
            for group in opt.param_groups:
                group["lr"] = _learning_rate(config, step)
            loss = net.loss(x0, alpha.to(dtype=dtype, device=device), sigma.to(dtype=dtype, device=device), eps.to(dtype=dtype, device=device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            opt.step()
            decay = min(config.ema_decay, (1.0 + step) / (10.0 + step))
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), net.parameters()):
                    pe.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
            step += 1
            value = float(loss.detach())
            block.append(value)
            if callback is not None:
                callback(step, value)
            if len(block) == log_every or step == config.train_steps:
                losses.append(float(np.mean(block)))
                block = []
            if bar is not None:
                bar.update(1)
                if step % 50 == 0:
                    bar.set_postfix(loss=f"{value:.4f}")
            if step % config.checkpoint_every == 0 and step < target:
                elapsed_now = time.perf_counter() - start
                elapsed, start = elapsed + elapsed_now, time.perf_counter()
                save()
    except KeyboardInterrupt:
        elapsed += time.perf_counter() - start
        save()
        raise
    finally:
        if bar is not None:
            bar.close()
    elapsed += time.perf_counter() - start
    return save()


def _learning_rate(config: TeacherConfig, step: int) -> float:
    if config.lr_schedule == "constant":
        return config.lr
    frac = min(step / config.train_steps, 1.0)
    return config.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def _write_json_atomic(path: Path, obj) -> None:
    from opmerge.cli_options import write_json_atomic

    write_json_atomic(path, obj)
