r"""The exact Gaussian teacher in torch: denoiser, DDIM/Euler and Heun samplers (docs/theory.md §2).

For :math:`x_0 \sim \mathcal N(\mu, U \operatorname{diag}(\lambda) U^\top)` and
:math:`z = \alpha x_0 + \sigma \varepsilon` the posterior-mean denoiser is

.. math:: \hat x_0(z) = \mu + \alpha\, \Sigma (\alpha^2 \Sigma + \sigma^2 I)^{-1} (z - \alpha\mu)
          = \mu + U \operatorname{diag}\!\Big(\frac{\alpha \lambda}{\alpha^2 \lambda + \sigma^2}\Big) U^\top (z - \alpha\mu) .

The mean :math:`\mu` is zero unless given (the synthetic studies); a Gaussian fitted to images has
one. Every DDIM update is affine with matching shifts, so the teacher with a mean is the centred
teacher conjugated by :math:`z_n \mapsto z_n - \alpha_n\mu` and its per-direction gains are those of
the centred one. With a zero mean no shift is computed at all (the numbers are those of the
centred formulas, bit for bit).

The samplers are written as samplers (denoise, then update), not as the closed-form scalars, so
that the equality with :func:`opmerge.teacher.step_operators` is a real test:

* DDIM step :math:`n \to n-1`: :math:`z_{n-1} = \alpha_{n-1}\hat x_0 + \sigma_{n-1}(z_n - \alpha_n \hat x_0)/\sigma_n`;
* single DDIM jump :math:`j \to i`: the same update from :math:`j` straight to :math:`i`;
* Heun (EDM): in :math:`y = z/\alpha`, :math:`s = \sigma/\alpha`, slope :math:`d = (y - D(y, s))/s`,
  Euler predictor, trapezoid corrector, plain Euler into :math:`s = 0`;
* exact flow :math:`j \to i`: :math:`\alpha_i\mu + U \operatorname{diag}(\|v_i\|/\|v_j\|) U^\top (z - \alpha_j\mu)`.

All maps act on row vectors: a batch ``z`` has shape ``(n, d)``. A linear map ``f`` is represented
by the matrix ``A`` with ``f(z) = z A^T`` (:func:`operator_matrix`); an affine map around a shift
``s`` by ``A`` with ``f(s + h) = f(s) + h A^T`` (:meth:`GaussianTeacher.matrix` with ``shift``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from opmerge.errors import InputError, InputTypeError
from opmerge.schedules import Schedule
from opmerge.teacher import SOLVERS

from ._torch import default_dtype, to_numpy
from .gaussian import GaussianData

__all__ = ["GaussianTeacher", "AffineDenoiser", "operator_matrix", "eigen_gains", "TeacherStep", "TeacherJump", "TeacherSampler"]


def operator_matrix(fn: Callable[[torch.Tensor], torch.Tensor], dim: int, dtype: torch.dtype = torch.float64,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    r"""Matrix ``A`` of a linear map on row vectors, :math:`f(z) = z A^\top`: :math:`A = f(I)^\top`.

    Only meaningful for linear ``fn`` (no bias); the result is exact up to rounding.
    """
    with torch.no_grad():
        eye = torch.eye(int(dim), dtype=dtype, device=device)
        return fn(eye).T.contiguous()


def eigen_gains(matrix: torch.Tensor | np.ndarray, data: GaussianData) -> np.ndarray:
    r"""Per-direction gains of a linear map in the eigenbasis: :math:`g_i = u_i^\top A u_i`."""
    a = matrix.detach().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix, dtype=np.float64)
    u = data.basis()
    return np.einsum("ki,kl,li->i", u, a.astype(np.float64), u)


class AffineDenoiser(nn.Module):
    r"""A trainable affine denoiser at one level: :math:`\hat x_0 = (z - \alpha\mu) W^\top + \mu + b`.

    ``W`` and ``b`` (initially 0) are parameters; the shift :math:`\alpha\mu` and the mean :math:`\mu`
    are buffers. :meth:`GaussianTeacher.denoiser_module` starts it at the teacher's denoiser,
    :math:`W = U\operatorname{diag}(\alpha\lambda/(\alpha^2\lambda + \sigma^2))U^\top`.

    Parameters
    ----------
    weight : tensor (d, d)
    shift : tensor (d,)
        :math:`\alpha\mu`.
    mean : tensor (d,)
        :math:`\mu`.
    """

    def __init__(self, weight: torch.Tensor, shift: torch.Tensor, mean: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(torch.zeros_like(mean))
        self.register_buffer("shift", shift.detach().clone())
        self.register_buffer("mean", mean.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (z - self.shift) @ self.weight.T + self.mean + self.bias


class GaussianTeacher:
    r"""Exact denoiser and samplers for :math:`\mathcal N(\mu, \Sigma)` on a schedule's grid.

    Parameters
    ----------
    schedule : opmerge Schedule
    data : GaussianData
        The covariance :math:`\Sigma = U\operatorname{diag}(\lambda)U^\top`.
    solver : {"ddim", "heun"}
        Sampler used by :meth:`step`, :meth:`sample` and :meth:`trajectory`.
    dtype : torch.dtype, optional
        Default: float64 on the CPU, float32 on CUDA.
    device : torch.device or str
    mean : array or tensor of shape (d,), optional
        The data mean :math:`\mu` (default zero: the centred teacher of the synthetic studies).
    train : tensor (n, d), optional
        Data rows (training images): :meth:`noise_sample` then draws :math:`x_0` among them
        instead of from the Gaussian.
    fit : object, optional
        The fit the teacher came from (kept for callers; see :meth:`from_fit`).

    Notes
    -----
    With ``mean`` zero (or omitted) every method computes exactly the centred formulas.
    """

    kind = "gaussian"

    def __init__(self, schedule: Schedule, data: GaussianData, solver: str = "ddim", dtype: torch.dtype | None = None,
                 device: torch.device | str = "cpu", *, mean=None, train: torch.Tensor | None = None, fit=None) -> None:
        if not isinstance(schedule, Schedule):
            raise InputTypeError(f"schedule must be an opmerge Schedule, got {type(schedule).__name__}")
        if not isinstance(data, GaussianData):
            raise InputTypeError(f"data must be a GaussianData, got {type(data).__name__}")
        if solver not in SOLVERS:
            raise InputError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        if solver == "heun" and np.any(schedule.alpha <= 0):
            n = int(np.argmax(schedule.alpha <= 0))
            raise InputError(f"the Heun solver needs alpha_n > 0 at every grid index; schedule {schedule.name!r} has alpha[{n}] = 0")
        self.schedule = schedule
        self.data = data
        self.solver = solver
        self.fit = fit
        self.device = torch.device(device)
        self.dtype = default_dtype(self.device) if dtype is None else dtype
        self.lam = data.lam_tensor(self.dtype, self.device)
        if mean is None:
            self.mean = torch.zeros(data.dim, dtype=self.dtype, device=self.device)
        else:
            values = to_numpy(mean)
            if values.shape != (data.dim,) or not np.all(np.isfinite(values)):
                raise InputError(f"mean must be a finite vector of shape ({data.dim},), got shape {values.shape}")
            self.mean = torch.as_tensor(values, dtype=self.dtype, device=self.device)
        #: whether the mean is exactly zero (then no shift is ever computed)
        self.centred = not bool(torch.any(self.mean != 0))
        if train is not None:
            if not isinstance(train, torch.Tensor) or train.ndim != 2 or train.shape[1] != data.dim or train.shape[0] < 1:
                raise InputError(f"train must be a tensor of shape (n >= 1, {data.dim})")
            train = train.to(dtype=self.dtype, device=self.device)
        self.train = train

    @classmethod
    def from_fit(cls, schedule: Schedule, fit, train: torch.Tensor | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str = "cpu", solver: str = "ddim") -> "GaussianTeacher":
        r"""The teacher of a fitted Gaussian: any object with ``lam`` (d,), ``basis`` (d, d) and ``mean`` (d,).

        Parameters
        ----------
        schedule : Schedule
        fit : object
            ``fit.lam`` eigenvalues, ``fit.basis`` orthogonal eigenvectors (columns), ``fit.mean``.
        train : tensor (n, d), optional
            Data rows for :meth:`noise_sample`.
        """
        data = GaussianData(np.array(fit.lam, dtype=np.float64), np.array(fit.basis, dtype=np.float64))
        return cls(schedule, data, solver, dtype, device, mean=np.array(fit.mean, dtype=np.float64), train=train, fit=fit)

    def with_schedule(self, schedule: Schedule) -> "GaussianTeacher":
        """The same teacher (data, mean, rows, solver, dtype, device) on another grid."""
        return GaussianTeacher(schedule, self.data, self.solver, self.dtype, self.device,
                               mean=None if self.centred else self.mean, train=self.train, fit=self.fit)

    @property
    def steps(self) -> int:
        """Number of teacher steps ``N``."""
        return self.schedule.steps

    @property
    def dim(self) -> int:
        """Data dimension ``d``."""
        return self.data.dim

    def coef(self, n: int) -> tuple[float, float]:
        r""":math:`(\alpha_n, \sigma_n)` at grid index ``n`` as floats."""
        return float(self.schedule.alpha[n]), float(self.schedule.sigma[n])

    _coef = coef

    # ---- denoiser --------------------------------------------------------------------------
    def denoise_at(self, z: torch.Tensor, alpha, sigma) -> torch.Tensor:
        r"""Posterior mean :math:`\hat x_0 = \mu + U \operatorname{diag}(\alpha\lambda/(\alpha^2\lambda+\sigma^2)) U^\top (z - \alpha\mu)`.

        Parameters
        ----------
        z : tensor (n, d)
        alpha, sigma : float or tensor broadcastable to ``(n, 1)`` (continuous times)
        """
        if not self.centred:
            return self.mean + self._centred_denoise(z - alpha * self.mean, alpha, sigma)
        return self._centred_denoise(z, alpha, sigma)

    def _centred_denoise(self, z: torch.Tensor, alpha, sigma) -> torch.Tensor:
        c = self.data.to_eigen(z)
        gain = alpha * self.lam / (alpha**2 * self.lam + sigma**2)
        return self.data.from_eigen(c * gain)

    def denoise(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""Posterior mean at grid index ``n``: :meth:`denoise_at` with :math:`(\alpha_n, \sigma_n)`."""
        a, s = self.coef(n)
        return self.denoise_at(z, a, s)

    def denoiser_matrix(self, alpha: float, sigma: float) -> torch.Tensor:
        r"""The linear part of the denoiser, :math:`W = U\operatorname{diag}(\alpha\lambda/(\alpha^2\lambda+\sigma^2))U^\top`, shape ``(d, d)``."""
        u = torch.as_tensor(self.data.basis(), dtype=self.dtype, device=self.device)
        return (u * (alpha * self.lam / (alpha**2 * self.lam + sigma**2))) @ u.T

    def denoiser_module(self, alpha: float, sigma: float) -> nn.Module:
        r"""A trainable :class:`AffineDenoiser` equal to this teacher's denoiser at the level :math:`(\alpha, \sigma)`."""
        return AffineDenoiser(self.denoiser_matrix(alpha, sigma), alpha * self.mean, self.mean)

    # ---- one step / jumps --------------------------------------------------------------------
    def ddim_jump(self, z: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
        r"""One DDIM update from grid index ``top = j`` to ``bottom = i``:
        :math:`z_i = \alpha_i \hat x_0 + \sigma_i (z_j - \alpha_j \hat x_0)/\sigma_j`."""
        if top == bottom:
            return z
        a_j, s_j = self.coef(top)
        a_i, s_i = self.coef(bottom)
        x0 = self.denoise_at(z, a_j, s_j)
        return a_i * x0 + s_i * (z - a_j * x0) / s_j

    def heun_step(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""EDM Heun step :math:`n \to n-1` in :math:`y = z/\alpha`, :math:`s = \sigma/\alpha`
        (Euler predictor, trapezoid corrector, plain Euler into :math:`s' = 0`)."""
        a, sg = self.coef(n)
        a_next, sg_next = self.coef(n - 1)
        y, s, s_next = z / a, sg / a, sg_next / a_next
        slope = (y - self.denoise_at(y, 1.0, s)) / s
        y_euler = y + (s_next - s) * slope
        if s_next > 0:
            slope_next = (y_euler - self.denoise_at(y_euler, 1.0, s_next)) / s_next
            y_next = y + (s_next - s) * 0.5 * (slope + slope_next)
        else:
            y_next = y_euler
        return a_next * y_next

    def step(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""Teacher step :math:`n \to n-1` (``ddim``: :meth:`ddim_jump` over one step; ``heun``: :meth:`heun_step`)."""
        if not 1 <= int(n) <= self.steps:
            raise InputError(f"step n must be in [1, N] = [1, {self.steps}], got {n}")
        return self.ddim_jump(z, n, n - 1) if self.solver == "ddim" else self.heun_step(z, n)

    def sample(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> torch.Tensor:
        r"""Run the teacher from grid index ``top`` (default ``N``) down to ``bottom``: :math:`T(j \to i) z`."""
        top = self.steps if top is None else int(top)
        if not 0 <= bottom <= top <= self.steps:
            raise InputError(f"need 0 <= bottom <= top <= N = {self.steps}, got top = {top}, bottom = {bottom}")
        for n in range(top, bottom, -1):
            z = self.step(z, n)
        return z

    def trajectory(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> list[torch.Tensor]:
        """Every grid state from ``top`` down to ``bottom`` (``top - bottom + 1`` tensors, ``top`` first)."""
        top = self.steps if top is None else int(top)
        states = [z]
        for n in range(top, bottom, -1):
            states.append(self.step(states[-1], n))
        return states

    def exact_flow_at(self, z: torch.Tensor, alpha_from, sigma_from, alpha_to, sigma_to) -> torch.Tensor:
        r"""Probability-flow ODE solved exactly between continuous coefficients:
        :math:`\alpha_{to}\mu + U \operatorname{diag}\big(\sqrt{(\alpha_{to}^2\lambda+\sigma_{to}^2)/(\alpha_{from}^2\lambda+\sigma_{from}^2)}\big) U^\top (z - \alpha_{from}\mu)`."""
        if not self.centred:
            z = z - alpha_from * self.mean
        c = self.data.to_eigen(z)
        gain = torch.sqrt((alpha_to**2 * self.lam + sigma_to**2) / (alpha_from**2 * self.lam + sigma_from**2))
        out = self.data.from_eigen(c * gain)
        return out if self.centred else out + alpha_to * self.mean

    def exact_flow(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> torch.Tensor:
        r"""Exact flow :math:`E(j \to i)` on grid indices (default :math:`N \to 0`)."""
        top = self.steps if top is None else int(top)
        a_j, s_j = self.coef(top)
        a_i, s_i = self.coef(bottom)
        return self.exact_flow_at(z, a_j, s_j, a_i, s_i)

    # ---- inputs ------------------------------------------------------------------------------
    def forward_sample(self, index: int, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        r"""Forward process on given rows: :math:`z_j = \alpha_j x_0 + \sigma_j\varepsilon`.

        The noise is drawn in float64 on the generator's device, then cast to the teacher's dtype
        and device (the same numbers on every device).
        """
        a, s = self.coef(index)
        eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64, device=generator.device).to(dtype=self.dtype, device=self.device)
        return a * x0.to(dtype=self.dtype, device=self.device) + s * eps

    def data_sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""``n`` draws of :math:`x_0`: rows of ``train`` uniformly with replacement when given, else :math:`\mu + \mathcal N(0, \Sigma)`."""
        if self.train is not None:
            idx = torch.randint(self.train.shape[0], (int(n),), generator=generator, device=generator.device)
            return self.train[idx.to(self.device)]
        x0 = self.data.sample(n, generator, self.dtype, self.device)
        return x0 if self.centred else x0 + self.mean

    def noise_sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""Draws of :math:`z_N = \alpha_N x_0 + \sigma_N \varepsilon` (the sampler's input).

        Centred, without rows: :meth:`GaussianData.forward_sample`; otherwise :meth:`forward_sample`
        of :meth:`data_sample`.
        """
        if self.centred and self.train is None:
            return self.data.forward_sample(self.schedule, self.steps, n, generator, self.dtype, self.device)
        return self.forward_sample(self.steps, self.data_sample(n, generator), generator)

    def sample_images(self, n: int, generator: torch.Generator, batch: int = 4096) -> torch.Tensor:
        """``n`` teacher samples from :meth:`noise_sample` inputs, computed in batches of ``batch`` without gradients."""
        z = self.noise_sample(n, generator)
        with torch.no_grad():
            return torch.cat([self.sample(z[k:k + batch]) for k in range(0, int(n), batch)]) if n else z

    # ---- linear read-back ------------------------------------------------------------------
    def matrix(self, fn: Callable[[torch.Tensor], torch.Tensor], shift: torch.Tensor | None = None) -> torch.Tensor:
        r"""Matrix of a linear map (:func:`operator_matrix`), or of the linear part of an affine one around ``shift``:
        :math:`A = (f(s + I) - f(s))^\top`."""
        if shift is None:
            return operator_matrix(fn, self.dim, self.dtype, self.device)
        with torch.no_grad():
            base = fn(shift.reshape(1, -1))
            return (fn(shift.reshape(1, -1) + torch.eye(self.dim, dtype=self.dtype, device=self.device)) - base).T.contiguous()

    def step_gains(self) -> np.ndarray:
        r"""Per-direction gain of every torch step, shape ``(d, N + 1)`` (entry 0 is 1), read back in the eigenbasis.

        Equals :func:`opmerge.teacher.step_operators` (to rounding).
        """
        out = np.ones((self.dim, self.steps + 1))
        for n in range(1, self.steps + 1):
            shift = None if self.centred else self.coef(n)[0] * self.mean
            out[:, n] = eigen_gains(self.matrix(lambda z, n=n: self.step(z, n), shift), self.data)
        return out

    def composite_gains(self, top: int | None = None, bottom: int = 0) -> np.ndarray:
        r"""Per-direction gain of the torch sampler :math:`j \to i`; equals :func:`opmerge.teacher.teacher_composite`."""
        shift = None if self.centred else self.coef(self.steps if top is None else int(top))[0] * self.mean
        return eigen_gains(self.matrix(lambda z: self.sample(z, top, bottom), shift), self.data)

    def covariance_at(self, index: int) -> torch.Tensor:
        r"""Covariance of :math:`z_j` under the forward process: :math:`\alpha_j^2 \Sigma + \sigma_j^2 I`."""
        a, s = self.coef(index)
        sigma = torch.as_tensor(self.data.covariance(), dtype=self.dtype, device=self.device)
        return a**2 * sigma + s**2 * torch.eye(self.dim, dtype=self.dtype, device=self.device)

    def to_dict(self) -> dict:
        """JSON-friendly description (kind, schedule, solver, dimension, dtype, whether it has a mean)."""
        return {"kind": self.kind, "schedule": self.schedule.to_dict(), "solver": self.solver, "dim": self.dim,
                "dtype": str(self.dtype).replace("torch.", ""), "centred": self.centred}


class TeacherStep(torch.nn.Module):
    """A teacher step ``n -> n - 1`` as a (parameter-free) module: the leaf ``n`` of a merge plan."""

    def __init__(self, teacher: GaussianTeacher, n: int) -> None:
        super().__init__()
        self.teacher, self.n = teacher, int(n)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.teacher.step(z, self.n)

    def extra_repr(self) -> str:
        return f"n={self.n}"


class TeacherJump(torch.nn.Module):
    r"""A single DDIM jump :math:`D(j \to i)` as a module (the ``ddim`` init of docs/theory.md §4)."""

    def __init__(self, teacher: GaussianTeacher, top: int, bottom: int) -> None:
        super().__init__()
        self.teacher, self.top, self.bottom = teacher, int(top), int(bottom)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.teacher.ddim_jump(z, self.top, self.bottom)


class TeacherSampler(torch.nn.Module):
    r"""The full teacher sampler :math:`z_N \mapsto T(N \to 0) z_N` as a module."""

    def __init__(self, teacher: GaussianTeacher) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.teacher.sample(z)
