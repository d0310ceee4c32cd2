r"""The denoiser network of the trained image teacher: an MLP with a log-SNR embedding and EDM-style
preconditioning around the data mean (``docs/images.md`` §3).

.. math:: \hat x_0 = \mu + c_\text{skip}(z - \alpha\mu) + c_\text{out} F_\theta\big(c_\text{in}(z - \alpha\mu), \ell\big),\quad
          c_\text{in} = \frac{1}{\sqrt{\alpha^2 s^2 + \sigma^2}},\ c_\text{skip} = \frac{\alpha s^2}{\alpha^2 s^2 + \sigma^2},\
          c_\text{out} = \frac{\sigma s}{\sqrt{\alpha^2 s^2 + \sigma^2}},

:math:`\ell = \log(\alpha^2/\sigma^2)` and :math:`s^2 = \operatorname{tr}\Sigma/d` (``x0`` prediction, loss
:math:`\|F_\theta - (x_0 - \mu - c_\text{skip}(z - \alpha\mu))/c_\text{out}\|^2`), or
:math:`\hat\varepsilon = F_\theta(c_\text{in}(z - \alpha\mu), \ell)`, :math:`\hat x_0 = (z - \sigma\hat\varepsilon)/\alpha`
(``eps`` prediction, loss :math:`\|\hat\varepsilon - \varepsilon\|^2`; at :math:`\alpha = 0` the posterior
mean is exactly :math:`\mu`). The network sees only :math:`z/\sigma` through the SNR, so a teacher
trained under one schedule samples on any grid.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from opmerge.errors import InputError

__all__ = ["PREDICTIONS", "ALPHA_ZERO", "LOGSNR_CLIP", "dtype_of", "logsnr_embedding", "DenoiserMLP", "FixedLevelDenoiser"]

PREDICTIONS = ("x0", "eps")
#: an alpha at or below this is treated as exactly 0 (vp-cosine's alpha_N = cos(pi/2) ~ 6e-17)
ALPHA_ZERO = 1e-12
LOGSNR_CLIP = 15.0


def dtype_of(name: str) -> torch.dtype:
    """The torch dtype named ``name``.

    Parameters
    ----------
    name : {"float32", "float64"}

    Returns
    -------
    torch.dtype

    Raises
    ------
    InputError
        For any other name.
    """
    if name not in ("float32", "float64"):
        raise InputError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return torch.float32 if name == "float32" else torch.float64


def logsnr_embedding(logsnr: torch.Tensor, width: int) -> torch.Tensor:
    r"""Fourier features of the clipped log-SNR :math:`u = \mathrm{clip}(\ell, \pm 15)/4`:
    :math:`[\sin(f_k u), \cos(f_k u)]_{k}`, :math:`f_k` geometric from 0.25 to 8.

    Parameters
    ----------
    logsnr : tensor (n, 1)
        :math:`\ell = \log(\alpha^2/\sigma^2)`.
    width : int
        Number of features (even).

    Returns
    -------
    tensor (n, width)
    """
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
            raise InputError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}")
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
        r"""The raw network :math:`F_\theta(\text{input}, \ell)`.

        Parameters
        ----------
        inp : tensor (n, dim)
            The preconditioned input :math:`c_\text{in}(z - \alpha\mu)`.
        logsnr : tensor (n, 1)
        """
        emb = logsnr_embedding(logsnr, self.emb_dim)
        h = inp
        for w, b, e in zip(self.weights, self.biases, self.embeds):
            h = torch.nn.functional.silu(h @ w.T + emb @ e.T + b)
        return h @ self.out_weight.T + self.out_bias

    def preconditioning(self, alpha: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        r""":math:`(c_\text{in}, c_\text{skip}, c_\text{out}, \ell)` (module docstring).

        Parameters
        ----------
        alpha, sigma : tensor (n, 1)
            Noise levels (:math:`\ell` clips both at :math:`10^{-30}` before the logarithm).
        """
        s2 = self.data_std**2
        den2 = alpha**2 * s2 + sigma**2
        c_in = torch.rsqrt(den2)
        c_skip = alpha * s2 / den2
        c_out = sigma * self.data_std * c_in
        logsnr = 2.0 * (torch.log(alpha.clamp_min(1e-30)) - torch.log(sigma.clamp_min(1e-30)))
        return c_in, c_skip, c_out, logsnr

    def forward(self, z: torch.Tensor, alpha: float | torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""Denoised estimate :math:`\hat x_0(z; \alpha, \sigma)`.

        Parameters
        ----------
        z : tensor (n, dim)
        alpha, sigma : float or tensor with ``n`` entries
            Noise levels (per row or shared).
        """
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
        (``x0``: :math:`\|F - (x_0 - \mu - c_\text{skip}(z - \alpha\mu))/c_\text{out}\|^2`; ``eps``: :math:`\|F - \varepsilon\|^2`).

        Parameters
        ----------
        x0 : tensor (n, dim)
            Clean rows.
        alpha, sigma : tensor (n, 1)
            Their noise levels.
        eps : tensor (n, dim)
            The noise, :math:`z = \alpha x_0 + \sigma\varepsilon`.
        """
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

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat x_0(z; \alpha, \sigma)` at the fixed level.

        Parameters
        ----------
        z : tensor (n, dim)
        """
        return self.net(z, self.alpha, self.sigma)
