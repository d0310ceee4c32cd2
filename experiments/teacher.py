r"""The exact Gaussian teacher in torch: denoiser, DDIM/Euler and Heun samplers (THEORY.md §2).

For :math:`x_0 \sim \mathcal N(0, U \operatorname{diag}(\lambda) U^\top)` and
:math:`z = \alpha x_0 + \sigma \varepsilon` the posterior-mean denoiser is

.. math:: \hat x_0(z) = \alpha\, \Sigma (\alpha^2 \Sigma + \sigma^2 I)^{-1} z
          = U \operatorname{diag}\!\Big(\frac{\alpha \lambda}{\alpha^2 \lambda + \sigma^2}\Big) U^\top z .

The samplers are written as samplers (denoise, then update), not as the closed-form scalars, so
that the equality with :func:`opmerge.teacher.step_operators` is a real test:

* DDIM step :math:`n \to n-1`: :math:`z_{n-1} = \alpha_{n-1}\hat x_0 + \sigma_{n-1}(z_n - \alpha_n \hat x_0)/\sigma_n`;
* single DDIM jump :math:`j \to i`: the same update from :math:`j` straight to :math:`i`;
* Heun (EDM): in :math:`y = z/\alpha`, :math:`s = \sigma/\alpha`, slope :math:`d = (y - D(y, s))/s`,
  Euler predictor, trapezoid corrector, plain Euler into :math:`s = 0`;
* exact flow :math:`j \to i`: :math:`U \operatorname{diag}(\|v_i\|/\|v_j\|) U^\top z`.

All maps act on row vectors: a batch ``z`` has shape ``(n, d)``. A linear map ``f`` is represented
by the matrix ``A`` with ``f(z) = z A^T`` (:func:`operator_matrix`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from opmerge.schedules import Schedule
from opmerge.teacher import SOLVERS

from ._torch import default_dtype
from .gaussian import GaussianData

__all__ = ["GaussianTeacher", "operator_matrix", "eigen_gains", "TeacherStep", "TeacherJump", "TeacherSampler"]


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


class GaussianTeacher:
    r"""Exact denoiser and samplers for :class:`~experiments.gaussian.GaussianData` on a schedule's grid.

    Parameters
    ----------
    schedule : opmerge Schedule
    data : GaussianData
    solver : {"ddim", "heun"}
        Sampler used by :meth:`step`, :meth:`sample` and :meth:`trajectory`.
    dtype : torch.dtype, optional
        Default: float64 on the CPU, float32 on CUDA.
    device : torch.device or str
    """

    def __init__(self, schedule: Schedule, data: GaussianData, solver: str = "ddim", dtype: torch.dtype | None = None,
                 device: torch.device | str = "cpu") -> None:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be an opmerge Schedule, got {type(schedule).__name__}")
        if not isinstance(data, GaussianData):
            raise TypeError(f"data must be a GaussianData, got {type(data).__name__}")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        if solver == "heun" and np.any(schedule.alpha <= 0):
            n = int(np.argmax(schedule.alpha <= 0))
            raise ValueError(f"the Heun solver needs alpha_n > 0 at every grid index; schedule {schedule.name!r} has alpha[{n}] = 0")
        self.schedule = schedule
        self.data = data
        self.solver = solver
        self.device = torch.device(device)
        self.dtype = default_dtype(self.device) if dtype is None else dtype
        self.lam = data.lam_tensor(self.dtype, self.device)

    @property
    def steps(self) -> int:
        """Number of teacher steps ``N``."""
        return self.schedule.steps

    @property
    def dim(self) -> int:
        """Data dimension ``d``."""
        return self.data.dim

    def _coef(self, n: int) -> tuple[float, float]:
        return float(self.schedule.alpha[n]), float(self.schedule.sigma[n])

    # ---- denoiser --------------------------------------------------------------------------
    def denoise_at(self, z: torch.Tensor, alpha, sigma) -> torch.Tensor:
        r"""Posterior mean :math:`\hat x_0 = U \operatorname{diag}(\alpha\lambda/(\alpha^2\lambda+\sigma^2)) U^\top z`.

        ``alpha`` and ``sigma`` are floats or tensors broadcastable to ``(n, 1)`` (continuous times).
        """
        c = self.data.to_eigen(z)
        gain = alpha * self.lam / (alpha**2 * self.lam + sigma**2)
        return self.data.from_eigen(c * gain)

    def denoise(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""Posterior mean at grid index ``n``: :meth:`denoise_at` with :math:`(\alpha_n, \sigma_n)`."""
        a, s = self._coef(n)
        return self.denoise_at(z, a, s)

    # ---- one step / jumps --------------------------------------------------------------------
    def ddim_jump(self, z: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
        r"""One DDIM update from grid index ``top = j`` to ``bottom = i``:
        :math:`z_i = \alpha_i \hat x_0 + \sigma_i (z_j - \alpha_j \hat x_0)/\sigma_j`."""
        if top == bottom:
            return z
        a_j, s_j = self._coef(top)
        a_i, s_i = self._coef(bottom)
        x0 = self.denoise_at(z, a_j, s_j)
        return a_i * x0 + s_i * (z - a_j * x0) / s_j

    def heun_step(self, z: torch.Tensor, n: int) -> torch.Tensor:
        r"""EDM Heun step :math:`n \to n-1` in :math:`y = z/\alpha`, :math:`s = \sigma/\alpha`
        (Euler predictor, trapezoid corrector, plain Euler into :math:`s' = 0`)."""
        a, sg = self._coef(n)
        a_next, sg_next = self._coef(n - 1)
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
            raise ValueError(f"step n must be in [1, N] = [1, {self.steps}], got {n}")
        return self.ddim_jump(z, n, n - 1) if self.solver == "ddim" else self.heun_step(z, n)

    def sample(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> torch.Tensor:
        r"""Run the teacher from grid index ``top`` (default ``N``) down to ``bottom``: :math:`T(j \to i) z`."""
        top = self.steps if top is None else int(top)
        if not 0 <= bottom <= top <= self.steps:
            raise ValueError(f"need 0 <= bottom <= top <= N = {self.steps}, got top = {top}, bottom = {bottom}")
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
        :math:`U \operatorname{diag}\big(\sqrt{(\alpha_{to}^2\lambda+\sigma_{to}^2)/(\alpha_{from}^2\lambda+\sigma_{from}^2)}\big) U^\top z`."""
        c = self.data.to_eigen(z)
        gain = torch.sqrt((alpha_to**2 * self.lam + sigma_to**2) / (alpha_from**2 * self.lam + sigma_from**2))
        return self.data.from_eigen(c * gain)

    def exact_flow(self, z: torch.Tensor, top: int | None = None, bottom: int = 0) -> torch.Tensor:
        r"""Exact flow :math:`E(j \to i)` on grid indices (default :math:`N \to 0`)."""
        top = self.steps if top is None else int(top)
        a_j, s_j = self._coef(top)
        a_i, s_i = self._coef(bottom)
        return self.exact_flow_at(z, a_j, s_j, a_i, s_i)

    def noise_sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        r"""Draws of :math:`z_N = \alpha_N x_0 + \sigma_N \varepsilon` (the sampler's input)."""
        return self.data.forward_sample(self.schedule, self.steps, n, generator, self.dtype, self.device)

    # ---- linear read-back ------------------------------------------------------------------
    def matrix(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """:func:`operator_matrix` of a linear map in this teacher's dtype and device."""
        return operator_matrix(fn, self.dim, self.dtype, self.device)

    def step_gains(self) -> np.ndarray:
        r"""Per-direction gain of every torch step, shape ``(d, N + 1)`` (entry 0 is 1), read back in the eigenbasis.

        Equals :func:`opmerge.teacher.step_operators` (to rounding).
        """
        out = np.ones((self.dim, self.steps + 1))
        for n in range(1, self.steps + 1):
            out[:, n] = eigen_gains(self.matrix(lambda z, n=n: self.step(z, n)), self.data)
        return out

    def composite_gains(self, top: int | None = None, bottom: int = 0) -> np.ndarray:
        r"""Per-direction gain of the torch sampler :math:`j \to i`; equals :func:`opmerge.teacher.teacher_composite`."""
        return eigen_gains(self.matrix(lambda z: self.sample(z, top, bottom)), self.data)

    def covariance_at(self, index: int) -> torch.Tensor:
        r"""Covariance of :math:`z_j` under the forward process: :math:`\alpha_j^2 \Sigma + \sigma_j^2 I`."""
        a, s = self._coef(index)
        sigma = torch.as_tensor(self.data.covariance(), dtype=self.dtype, device=self.device)
        return a**2 * sigma + s**2 * torch.eye(self.dim, dtype=self.dtype, device=self.device)


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
    r"""A single DDIM jump :math:`D(j \to i)` as a module (the ``ddim`` init of THEORY.md §4)."""

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
