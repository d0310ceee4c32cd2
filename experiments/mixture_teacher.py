r"""The exact Gaussian-mixture teacher in torch (docs/mixture.md §2; docs/bridge_mixture.md §1).

The same maps as :class:`opmerge.mixture.MixtureTeacher`, written again in torch so that students
can be trained against them on any device and dtype. For data
:math:`x_0 \sim \sum_k \pi_k \mathcal N(\mu_k, C_k)`, :math:`C_k = U_k \operatorname{diag}(\lambda_k) U_k^\top`,
and :math:`z = a x_0 + b\varepsilon`, component :math:`k` has :math:`z \sim \mathcal N(a\mu_k, S_k)`,
:math:`S_k = a^2 C_k + b^2 I`. With :math:`u_k = U_k^\top (z - a\mu_k)` and :math:`s_k = a^2\lambda_k + b^2`
(per eigenvalue):

.. math::
    r_k(z) = \operatorname{softmax}_k\Big(\log\pi_k - \tfrac12 \textstyle\sum_i u_{k,i}^2 / s_{k,i}
             - \tfrac12 \sum_i \log(2\pi s_{k,i})\Big), \qquad
    \hat x_0(z) = \sum_k r_k(z)\,\big[\mu_k + U_k \operatorname{diag}(a\lambda_k / s_k)\, u_k\big].

* DDIM from :math:`j` to :math:`i`: :math:`z_i = \alpha_i \hat x_0 + \sigma_i (z_j - \alpha_j \hat x_0)/\sigma_j`
  (denoiser at :math:`(\alpha_j, \sigma_j)`);
* Heun (EDM) from :math:`n` to :math:`n-1` in :math:`y = z/\alpha`, :math:`s = \sigma/\alpha`: slope
  :math:`d(y, s) = (y - D(y, s))/s = \sum_k r_k\, U_k \operatorname{diag}\big(s/(\lambda_k + s^2)\big) U_k^\top (y - \mu_k)`
  with the responsibilities of :math:`y = x_0 + s\varepsilon`, Euler predictor
  :math:`\tilde y = y + (s' - s) d(y, s)`, trapezoid corrector :math:`y' = y + \tfrac12 (s' - s)(d(y, s) + d(\tilde y, s'))`,
  plain Euler into :math:`s' = 0`; :math:`z_{n-1} = \alpha_{n-1} y'`.

All maps act on row vectors (a batch has shape ``(count, d)``), batched over the components with
one batched matrix product per rotation. In float64 they agree with the core to rounding (tests/test_bridge_mixture.py
checks 1e-10). The parameter-free modules :class:`~experiments.teacher.TeacherStep` and
:class:`~experiments.teacher.TeacherSampler` accept this teacher as they accept a
:class:`~experiments.teacher.GaussianTeacher`; :class:`MixtureComposite` is the composite
:math:`T(j \to i)` as a module.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from opmerge._validate import choice, integer
from opmerge.errors import InputError, InputTypeError
from opmerge.mixture import GaussianMixture
from opmerge.schedules import Schedule
from opmerge.teacher import SOLVERS

from ._torch import default_dtype

__all__ = ["TorchMixtureTeacher", "MixtureComposite"]


class TorchMixtureTeacher:
    r"""Exact denoiser, DDIM and Heun steps of a Gaussian mixture on a schedule's grid, in torch.

    Parameters
    ----------
    mixture : opmerge.mixture.GaussianMixture
    schedule : opmerge.schedules.Schedule
    solver : {"ddim", "heun"}
        The sampler whose steps are the teacher's (Heun needs :math:`\alpha_n > 0` on the grid).
    dtype : torch.dtype, optional
        Default: float64 on the CPU, float32 on CUDA.
    device : torch.device or str

    Notes
    -----
    Grid indices are checked (:class:`~opmerge.errors.InputError` naming the parameter); the
    points are not (they are tensors in the training loop's inner step).
    """

    kind = "mixture"

    def __init__(self, mixture: GaussianMixture, schedule: Schedule, solver: str = "ddim", dtype: torch.dtype | None = None,
                 device: torch.device | str = "cpu") -> None:
        if not isinstance(mixture, GaussianMixture):
            raise InputTypeError(f"mixture must be an opmerge GaussianMixture, got {type(mixture).__name__}")
        if not isinstance(schedule, Schedule):
            raise InputTypeError(f"schedule must be an opmerge Schedule, got {type(schedule).__name__}")
        choice(solver, "solver", SOLVERS)
        if solver == "heun" and np.any(schedule.alpha <= 0):
            n = int(np.argmax(schedule.alpha <= 0))
            raise InputError(f"the Heun solver needs alpha_n > 0 at every grid index; schedule {schedule.name!r} has alpha[{n}] = 0")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InputTypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        self.mixture, self.schedule, self.solver = mixture, schedule, solver
        self.device = torch.device(device)
        self.dtype = default_dtype(self.device) if dtype is None else dtype
        as_tensor = lambda a: torch.as_tensor(np.array(a), dtype=self.dtype, device=self.device)  # noqa: E731
        #: :math:`\log\pi_k` (K,), :math:`\mu_k` (K, d), :math:`\lambda_k` (K, d), :math:`U_k` (K, d, d)
        self.log_weights = as_tensor(np.log(mixture.weights))
        self.means = as_tensor(mixture.means)
        self.eigvals = as_tensor(mixture.eigvals)
        self.eigvecs = as_tensor(mixture.eigvecs)
        self._sampling: dict = {}

    @property
    def steps(self) -> int:
        """Number of teacher steps ``N``."""
        return self.schedule.steps

    @property
    def dim(self) -> int:
        """Data dimension ``d``."""
        return self.mixture.dim

    @property
    def components(self) -> int:
        """Number of components ``K``."""
        return self.mixture.components

    def coef(self, n: int) -> tuple[float, float]:
        r""":math:`(\alpha_n, \sigma_n)` at grid index ``n`` as floats."""
        n = integer(n, "n", low=0, high=self.steps)
        return float(self.schedule.alpha[n]), float(self.schedule.sigma[n])

    # ---- posterior ---------------------------------------------------------------------------
    def _rotated(self, z: torch.Tensor, shift: float) -> torch.Tensor:
        r""":math:`u_k = U_k^\top (z - \text{shift}\,\mu_k)` as rows, shape (K, count, d) (one batched product)."""
        return torch.matmul(z[None, :, :] - shift * self.means[:, None, :], self.eigvecs)

    def _responsibilities(self, u: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        r"""Softmax over :math:`k` of :math:`\log\pi_k - \frac12\sum_i u_{k,i}^2/v_{k,i} - \frac12\sum_i\log(2\pi v_{k,i})`,
        shape (K, count); ``u`` (K, count, d), ``var`` (K, d)."""
        logits = (self.log_weights[:, None] - 0.5 * (u * u / var[:, None, :]).sum(-1)
                  - 0.5 * torch.log(2 * math.pi * var).sum(-1)[:, None])
        return torch.softmax(logits, dim=0)

    def _mix(self, r: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_k r_k\,\text{part}_k`: ``r`` (K, count), ``parts`` (K, count, d) -> (count, d)."""
        return (r[:, :, None] * parts).sum(0)

    def posterior_at(self, z: torch.Tensor, alpha: float, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Responsibilities (count, K) and posterior mean :math:`\hat x_0` (count, d) for :math:`z = \alpha x_0 + \sigma\varepsilon`.

        :math:`\hat x_0 = \sum_k r_k [\mu_k + U_k \operatorname{diag}(\alpha\lambda_k/(\alpha^2\lambda_k + \sigma^2)) u_k]`
        (module docstring); ``sigma > 0``.
        """
        var = alpha * alpha * self.eigvals + sigma * sigma
        u = self._rotated(z, alpha)
        r = self._responsibilities(u, var)
        parts = self.means[:, None, :] + torch.matmul(u * (alpha * self.eigvals / var)[:, None, :], self.eigvecs.transpose(1, 2))
        return r.T, self._mix(r, parts)

    def denoise_at(self, z: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        r"""Posterior mean :math:`\hat x_0(z)` at the level :math:`(\alpha, \sigma)` (:meth:`posterior_at`)."""
        return self.posterior_at(z, alpha, sigma)[1]

    def denoise(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""Posterior mean :math:`\hat x_0(z_n)` at grid index ``n >= 1``."""
        n = integer(n, "n", low=1, high=self.steps)
        return self.denoise_at(z, *self.coef(n))

    def responsibilities(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r""":math:`r_k(z_n) \propto \pi_k \mathcal N(z_n; \alpha_n\mu_k, S_{n,k})` at grid index ``n >= 1``, shape (count, K)."""
        n = integer(n, "n", low=1, high=self.steps)
        return self.posterior_at(z, *self.coef(n))[0]

    def slope(self, y: torch.Tensor, s: float) -> torch.Tensor:
        r""":math:`d(y, s) = (y - D(y, s))/s = \sum_k r_k U_k \operatorname{diag}(s/(\lambda_k + s^2)) U_k^\top (y - \mu_k)`
        (0 at :math:`s = 0`), responsibilities of :math:`y = x_0 + s\varepsilon`."""
        if s == 0.0:
            return torch.zeros_like(y)
        var = self.eigvals + s * s
        u = self._rotated(y, 1.0)
        r = self._responsibilities(u, var)
        return self._mix(r, torch.matmul(u * (s / var)[:, None, :], self.eigvecs.transpose(1, 2)))

    # ---- steps and composites ----------------------------------------------------------------
    def _span(self, top: int | None, bottom: int) -> tuple[int, int]:
        top = integer(self.steps if top is None else top, "top", low=0, high=self.steps)
        bottom = integer(bottom, "bottom", low=0, high=self.steps)
        if bottom > top:
            raise InputError(f"need bottom <= top, got top = {top}, bottom = {bottom}")
        return top, bottom

    def ddim_jump(self, z: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
        r"""One DDIM update from grid index ``top = j`` to ``bottom = i``:
        :math:`z_i = \alpha_i \hat x_0 + \sigma_i (z_j - \alpha_j \hat x_0)/\sigma_j` (``z`` itself when ``top == bottom``)."""
        top, bottom = self._span(top, bottom)
        if top == bottom:
            return z
        if top < 1:
            raise InputError(f"top must be >= 1 for a DDIM jump, got {top}")
        a_j, s_j = self.coef(top)
        a_i, s_i = self.coef(bottom)
        x0 = self.denoise_at(z, a_j, s_j)
        return a_i * x0 + (s_i / s_j) * (z - a_j * x0)

    def heun_step(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""EDM Heun step :math:`n \to n-1` (module docstring)."""
        n = integer(n, "n", low=1, high=self.steps)
        a, sg = self.coef(n)
        a_next, sg_next = self.coef(n - 1)
        if a <= 0 or a_next <= 0:
            raise InputError(f"the Heun step needs alpha > 0 at n = {n} and n - 1")
        s, s_next = sg / a, sg_next / a_next
        y = z / a
        d = self.slope(y, s)
        y_euler = y + (s_next - s) * d
        if s_next == 0.0:
            return a_next * y_euler
        d_next = self.slope(y_euler, s_next)
        return a_next * (y + 0.5 * (s_next - s) * (d + d_next))

    def step(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""Teacher step :math:`n \to n-1` of the teacher's solver."""
        n = integer(n, "n", low=1, high=self.steps)
        return self.ddim_jump(z, n, n - 1) if self.solver == "ddim" else self.heun_step(z, n)

    def sample(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> torch.Tensor:
        r"""Teacher composite :math:`T(j \to i)`: the steps ``top, top - 1, ..., bottom + 1`` in turn (default ``N -> 0``)."""
        top, bottom = self._span(top, bottom)
        for n in range(top, bottom, -1):
            z = self.step(z, n)
        return z

    composite = sample

    def trajectory(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> list[torch.Tensor]:
        """Every grid state from ``top`` (default ``N``) down to ``bottom`` (``top - bottom + 1`` tensors, ``top`` first)."""
        top, bottom = self._span(top, bottom)
        states = [z]
        for n in range(top, bottom, -1):
            states.append(self.step(states[-1], n))
        return states

    def module(self, top: int | None = None, bottom: int = 0) -> "MixtureComposite":
        r"""The composite :math:`T(j \to i)` as a parameter-free module."""
        return MixtureComposite(self, top, bottom)

    # ---- inputs ------------------------------------------------------------------------------
    def data_sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        r"""``count`` draws of :math:`x_0`: a label :math:`k \sim \pi`, then :math:`\mu_k + U_k\operatorname{diag}(\sqrt{\lambda_k})\xi`.

        Drawn in float64 on the generator's device, then cast to the teacher's dtype and device (the
        same numbers on every device for one generator state).
        """
        count = integer(count, "count", low=1)
        weights, means, roots = self._sampling_tensors(generator.device)
        labels = torch.multinomial(weights, count, replacement=True, generator=generator)
        xi = torch.randn(count, self.dim, generator=generator, dtype=torch.float64, device=generator.device)
        x0 = means[labels] + torch.matmul(roots[labels], xi[:, :, None])[:, :, 0]
        return x0.to(dtype=self.dtype, device=self.device)

    def _sampling_tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r""":math:`\pi`, :math:`\mu_k` and :math:`U_k\operatorname{diag}(\sqrt{\lambda_k})` in float64 on ``device`` (cached)."""
        key = str(device)
        if key not in self._sampling:
            mix = self.mixture
            self._sampling[key] = tuple(torch.tensor(np.array(a), dtype=torch.float64, device=device) for a in (
                mix.weights, mix.means, mix.eigvecs * np.sqrt(mix.eigvals)[:, None, :]))
        return self._sampling[key]

    def forward_sample(self, index: int, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        r"""Forward process on given rows: :math:`z_j = \alpha_j x_0 + \sigma_j\varepsilon` (noise drawn in float64)."""
        a, s = self.coef(index)
        eps = torch.randn(tuple(x0.shape), generator=generator, dtype=torch.float64, device=generator.device)
        return a * x0.to(dtype=self.dtype, device=self.device) + s * eps.to(dtype=self.dtype, device=self.device)

    def marginal_sample(self, index: int, count: int, generator: torch.Generator) -> torch.Tensor:
        r"""``count`` draws of :math:`z_j \sim p_j`: :meth:`data_sample` noised by :meth:`forward_sample`."""
        return self.forward_sample(index, self.data_sample(count, generator), generator)

    def noise_sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        r"""Draws of :math:`z_N \sim p_N` (the sampler's input)."""
        return self.marginal_sample(self.steps, count, generator)

    def to_dict(self) -> dict:
        """JSON-friendly description (kind, mixture, schedule, solver, dtype)."""
        return {"kind": self.kind, "mixture": self.mixture.to_dict(), "schedule": self.schedule.to_dict(), "solver": self.solver,
                "dim": self.dim, "dtype": str(self.dtype).replace("torch.", "")}


class MixtureComposite(nn.Module):
    r"""The teacher composite :math:`T(j \to i)` of a :class:`TorchMixtureTeacher` as a (parameter-free) module.

    Parameters
    ----------
    teacher : TorchMixtureTeacher
    top, bottom : int
        ``j`` (default ``N``) and ``i`` (default 0).
    """

    def __init__(self, teacher: TorchMixtureTeacher, top: int | None = None, bottom: int = 0) -> None:
        super().__init__()
        if not isinstance(teacher, TorchMixtureTeacher):
            raise InputTypeError(f"teacher must be a TorchMixtureTeacher, got {type(teacher).__name__}")
        self.teacher = teacher
        self.top, self.bottom = teacher._span(top, bottom)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.teacher.sample(z, self.top, self.bottom)

    def extra_repr(self) -> str:
        return f"top={self.top}, bottom={self.bottom}"
