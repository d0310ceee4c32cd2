r"""The exact mixture teacher (docs/mixture.md §2): posterior-mean denoiser, DDIM and Heun steps,
composites and the probability-flow map.

For :math:`z = a x_0 + b\varepsilon` with :math:`x_0` from the mixture, component :math:`k` has
:math:`z \sim \mathcal N(a\mu_k, a^2 C_k + b^2 I)`; in the eigenbasis :math:`U_k` of :math:`C_k`
with :math:`u = U_k^\top(z - a\mu_k)` and :math:`s = a^2\lambda_k + b^2` (per eigenvalue)

.. math::
    r_k(z) \propto \pi_k \mathcal N(z; a\mu_k, S_k), \qquad
    \hat x_0(z) = \sum_k r_k(z)\,\bigl[\mu_k + U_k \tfrac{a\lambda_k}{s}\, u\bigr].

DDIM from index :math:`n`: :math:`z_{n-1} = \alpha_{n-1}\hat x_0 + \sigma_{n-1}(z_n - \alpha_n\hat x_0)/\sigma_n`.
Heun works in :math:`y = z/\alpha`, :math:`s = \sigma/\alpha` with the slope
:math:`(y - D(y, s))/s = \sum_k r_k U_k \tfrac{s}{\lambda_k + s^2} U_k^\top (y - \mu_k)`.
The exact flow solves the probability-flow ODE (RK4 with step doubling), :math:`\mathrm dw/\mathrm d\rho = \hat x_0` in
:math:`w = z/\sigma`, :math:`\rho = \alpha/\sigma` while :math:`\rho \le 1`, and
:math:`\mathrm dy/\mathrm ds = (y - D)/s` after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from .._validate import choice, integer, real_number
from ..errors import InputError, InputTypeError
from ..schedules import Schedule, _check_schedule
from ..teacher import SOLVERS, _check_heun_schedule
from ._data import GaussianMixture

__all__ = ["MixtureTeacher", "FlowResult"]


def _check_points(z: object, dim: int, name: str = "z") -> np.ndarray:
    if isinstance(z, (str, bytes, bool)) or z is None:
        raise InputTypeError(f"{name} must be an array of shape (count, {dim}), got {type(z).__name__}")
    arr = np.asarray(z)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise InputTypeError(f"{name} must be a real array of shape (count, {dim}), got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InputError(f"{name} must have shape (count, {dim}), got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite")
    return arr


def _gated(mixture: GaussianMixture, x: np.ndarray, a: float, b: float, gain) -> tuple[np.ndarray, list[np.ndarray]]:
    r"""Responsibilities of :math:`x = a x_0 + b\varepsilon` and, per component, :math:`U_k\,
    \mathrm{diag}(\mathrm{gain}(\lambda_k, s_k))\,U_k^\top (x - a\mu_k)` with :math:`s_k = a^2\lambda_k + b^2`."""
    logits = np.empty((x.shape[0], mixture.components))
    parts = []
    for k in range(mixture.components):
        lam, vec = mixture.eigvals[k], mixture.eigvecs[k]
        s = a * a * lam + b * b
        u = (x - a * mixture.means[k]) @ vec
        logits[:, k] = (np.log(mixture.weights[k]) - 0.5 * np.sum(u * u / s, axis=1)
                        - 0.5 * np.sum(np.log(2 * np.pi * s)))
        parts.append((u * gain(lam, s)) @ vec.T)
    r = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)  # exact normalisation (logsumexp leaves |log p| * eps)
    return r, parts


def _mix(r: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    out = np.zeros_like(parts[0])
    for k, part in enumerate(parts):
        out += r[:, k:k + 1] * part
    return out


def posterior(mixture: GaussianMixture, z: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Responsibilities and posterior mean of :math:`x_0` given :math:`z = a x_0 + b\varepsilon` (``b > 0``).

    Returns ``(r, x0_hat)`` with ``r`` of shape (count, K) and ``x0_hat`` of shape (count, d).
    Validated input only (``z`` contiguous float64).
    """
    r, parts = _gated(mixture, z, a, b, lambda lam, s: a * lam / s)
    return r, _mix(r, [mixture.means[k] + part for k, part in enumerate(parts)])


def _slope_s(mixture: GaussianMixture, y: np.ndarray, s: float) -> np.ndarray:
    r""":math:`(y - D(y, s))/s` of the ODE :math:`\mathrm dy/\mathrm ds` (finite at :math:`s = 0`: it is 0 there):
    :math:`\sum_k r_k U_k \mathrm{diag}(s / (\lambda_k + s^2)) U_k^\top (y - \mu_k)`, responsibilities of
    :math:`y = x_0 + s\varepsilon`."""
    if s == 0.0:
        return np.zeros_like(y)
    return _mix(*_gated(mixture, y, 1.0, s, lambda lam, var: s / var))


@dataclass(frozen=True)
class FlowResult:
    """The exact flow map's values and an a-posteriori bound of their error.

    Attributes
    ----------
    z : ndarray of shape (count, d)
        :math:`z_i` from the finer solve.
    converged : bool
        False when the doubling stopped at its cap of 2**16 steps per leg before meeting ``rtol``
        (the estimate is still reported).
    error_estimate : float
        Largest absolute difference between the returned RK4 solution and the one with half as
        many steps, plus a rounding allowance: about 15 times the returned values' error once the
        steps are in RK4's asymptotic regime (docs/mixture.md §2).
    """

    z: np.ndarray
    error_estimate: float
    converged: bool = True


class MixtureTeacher:
    r"""The exact sampler of a Gaussian mixture on a schedule (docs/mixture.md §2).

    Parameters
    ----------
    mixture : GaussianMixture
    schedule : Schedule
    solver : {"ddim", "heun"}
        The sampler whose steps are the teacher's (Heun needs :math:`\alpha_n > 0` on the grid).

    Notes
    -----
    Every map takes points as an array of shape (count, d), validated once here; with ``K = 1``
    and :math:`\mu = 0` each map is multiplication by the linear regime's operator in the
    eigenbasis of the covariance.
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule, solver: str = "ddim") -> None:
        if not isinstance(mixture, GaussianMixture):
            raise InputTypeError(f"mixture must be an opmerge GaussianMixture, got {type(mixture).__name__}")
        _check_schedule(schedule)
        choice(solver, "solver", SOLVERS)
        if solver == "heun":
            _check_heun_schedule(schedule)
        self.mixture = mixture
        self.schedule = schedule
        self.solver = solver

    @property
    def steps(self) -> int:
        """Number of teacher steps ``N``."""
        return self.schedule.steps

    @property
    def dim(self) -> int:
        """Data dimension ``d``."""
        return self.mixture.dim

    def _index(self, n: object, name: str = "n", low: int = 1) -> int:
        return integer(n, name, low=low, high=self.steps)

    def _span(self, top: object, bottom: object) -> tuple[int, int]:
        top = integer(top, "top", low=0, high=self.steps)
        bottom = integer(bottom, "bottom", low=0, high=self.steps)
        if bottom > top:
            raise InputError(f"need bottom <= top, got top = {top}, bottom = {bottom}")
        return top, bottom

    # ---- the denoiser ------------------------------------------------------------------------
    def denoise(self, z: object, n: object) -> np.ndarray:
        r"""Posterior mean :math:`\hat x_0(z_n)` at grid index ``n >= 1``."""
        n = self._index(n)
        z = _check_points(z, self.dim)
        return posterior(self.mixture, z, float(self.schedule.alpha[n]), float(self.schedule.sigma[n]))[1]

    def responsibilities(self, z: object, n: object) -> np.ndarray:
        r"""Responsibilities :math:`r_k(z_n) \propto \pi_k \mathcal N(z_n; \alpha_n\mu_k, S_{n,k})`, shape (count, K)."""
        n = self._index(n)
        z = _check_points(z, self.dim)
        return posterior(self.mixture, z, float(self.schedule.alpha[n]), float(self.schedule.sigma[n]))[0]

    # ---- steps and composites ----------------------------------------------------------------
    def _ddim(self, z: np.ndarray, top: int, bottom: int) -> np.ndarray:
        a, s = self.schedule.alpha, self.schedule.sigma
        x0 = posterior(self.mixture, z, float(a[top]), float(s[top]))[1]
        return a[bottom] * x0 + (s[bottom] / s[top]) * (z - a[top] * x0)

    def _heun(self, z: np.ndarray, n: int) -> np.ndarray:
        a, sig = self.schedule.alpha, self.schedule.sigma
        s, s_next = sig[n] / a[n], sig[n - 1] / a[n - 1]
        y = z / a[n]
        d = _slope_s(self.mixture, y, float(s))
        y_euler = y + (s_next - s) * d
        if s_next == 0.0:
            return a[n - 1] * y_euler
        d_next = _slope_s(self.mixture, y_euler, float(s_next))
        return a[n - 1] * (y + 0.5 * (s_next - s) * (d + d_next))

    def _step(self, z: np.ndarray, n: int) -> np.ndarray:
        return self._ddim(z, n, n - 1) if self.solver == "ddim" else self._heun(z, n)

    def step(self, z: object, n: object) -> np.ndarray:
        """One teacher step :math:`z_n \\to z_{n-1}` of the teacher's solver."""
        n = self._index(n)
        return self._step(_check_points(z, self.dim), n)

    def ddim_jump(self, z: object, top: object, bottom: object) -> np.ndarray:
        r"""One DDIM step that jumps :math:`j \to i` with the denoiser at ``j`` (``top >= 1``)."""
        top, bottom = self._span(top, bottom)
        if top == bottom:
            return _check_points(z, self.dim).copy()
        return self._ddim(_check_points(z, self.dim), top, bottom)

    def _composite(self, z: np.ndarray, top: int, bottom: int) -> np.ndarray:
        for n in range(top, bottom, -1):
            z = self._step(z, n)
        return z

    def composite(self, z: object, top: object = None, bottom: object = 0) -> np.ndarray:
        r"""Teacher composite :math:`T(j\to i)`: the steps ``top, top-1, ..., bottom+1`` in turn."""
        top, bottom = self._span(self.steps if top is None else top, bottom)
        return self._composite(_check_points(z, self.dim), top, bottom)

    def _trajectory(self, z: np.ndarray, top: int, bottom: int) -> list[np.ndarray]:
        out = [z]
        for n in range(top, bottom, -1):
            out.append(self._step(out[-1], n))
        return out

    def trajectory(self, z: object, top: object = None, bottom: object = 0) -> list[np.ndarray]:
        """The points :math:`z_j, z_{j-1}, \\dots, z_i` of the teacher's run from ``top`` to ``bottom``."""
        top, bottom = self._span(self.steps if top is None else top, bottom)
        return self._trajectory(_check_points(z, self.dim), top, bottom)

    # ---- the exact flow ----------------------------------------------------------------------
    def _phases(self, top: int, bottom: int) -> list[tuple[str, float, float]]:
        """The integration legs: ``("rho", rho_j, min(rho_i, 1))`` then ``("s", s_start, s_i)``."""
        a, sig = self.schedule.alpha, self.schedule.sigma
        rho_start = a[top] / sig[top]
        rho_end = np.inf if sig[bottom] == 0 else a[bottom] / sig[bottom]
        legs = []
        if rho_start < 1.0:
            legs.append(("rho", float(rho_start), float(min(rho_end, 1.0))))
        if rho_end > 1.0:
            s_start = 1.0 if rho_start < 1.0 else float(sig[top] / a[top])
            legs.append(("s", s_start, 0.0 if sig[bottom] == 0 else float(sig[bottom] / a[bottom])))
        return legs

    def _rk4(self, z: np.ndarray, top: int, bottom: int, substeps: int) -> np.ndarray:
        """Classical RK4 with ``substeps`` uniform steps per leg (validated input)."""
        a, sig = self.schedule.alpha, self.schedule.sigma
        mix = self.mixture
        state, kind = z / sig[top], "rho"
        legs = self._phases(top, bottom)
        if legs and legs[0][0] == "s":
            state, kind = z / a[top], "s"
        for leg, start, stop in legs:
            if leg == "s" and kind == "rho":
                state, kind = state / start, "s"  # y = w / rho at rho = 1 / s_start = 1
            if leg == "rho":
                field_ = lambda t, x: posterior(mix, x, t, 1.0)[1]  # noqa: E731
            else:
                field_ = lambda t, x: _slope_s(mix, x, t)  # noqa: E731
            h = (stop - start) / substeps
            t = start
            for _ in range(substeps):
                k1 = field_(t, state)
                k2 = field_(t + 0.5 * h, state + 0.5 * h * k1)
                k3 = field_(t + 0.5 * h, state + 0.5 * h * k2)
                k4 = field_(t + h, state + h * k3)
                state = state + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
                t = start + (_ + 1) * h
        return state * (sig[bottom] if kind == "rho" else a[bottom])

    def exact_flow(self, z: object, top: object = None, bottom: object = 0, rtol: float = 1e-10) -> FlowResult:
        r"""The probability-flow map :math:`E(j\to i)` applied to ``z`` (docs/mixture.md §2).

        Classical RK4 with uniform steps in :math:`\rho` and then in :math:`s`, the number of steps
        doubled from 8 per leg until two successive solutions differ by at most
        ``rtol * max(1, max|z_i|)`` and that difference fell by a factor of at least 8 since the
        previous doubling (RK4's asymptotic regime, where it falls by 16), or 2**16 steps per leg.
        The returned values are the finer solution; ``error_estimate`` is that difference, which in the asymptotic regime is about
        15 times the finer solution's error (RK4: halving the step divides the error by 16), plus
        a rounding allowance of ``steps * 1e-16 * max(1, max|z_i|)``. ``rtol`` must be in
        [1e-14, 1e-3].
        """
        top, bottom = self._span(self.steps if top is None else top, bottom)
        z = _check_points(z, self.dim)
        rtol = real_number(rtol, "rtol", low=0.0, low_open=True)
        if not 1e-14 <= rtol <= 1e-3:
            raise InputError(f"rtol must be in [1e-14, 1e-3], got {rtol!r}")
        if top == bottom or z.shape[0] == 0:
            return FlowResult(z.copy(), 0.0)
        substeps = 8
        coarse = self._rk4(z, top, bottom, substeps)
        previous_gap = None
        while True:
            substeps *= 2
            fine = self._rk4(z, top, bottom, substeps)
            scale = max(1.0, float(np.max(np.abs(fine))))
            gap = float(np.max(np.abs(fine - coarse)))
            rounding = substeps * 1e-16 * scale
            # stop only in RK4's asymptotic regime: the gap fell by >= 8 (16 in theory) since the last
            # doubling, or it is at the rounding level; a first small gap can be a coincidence
            asymptotic = previous_gap is not None and (gap * 8.0 <= previous_gap or gap <= 10.0 * rounding)
            if gap <= rtol * scale and asymptotic:
                return FlowResult(fine, gap + rounding, True)
            if substeps >= 2**16:
                return FlowResult(fine, gap + rounding, False)
            previous_gap = gap
            coarse = fine

    # ---- the teacher's own steps as members of the gated family --------------------------------
    def ddim_parameters(self, top: object, bottom: object) -> np.ndarray:
        r"""Parameters :math:`\Theta` of the DDIM jump ``top -> bottom`` in the gated affine family at ``top``.

        The jump is :math:`\sum_k r_k(z)(W_k z + b_k)` with :math:`W_k = c_1 I + c_2 M_k`,
        :math:`b_k = c_2(\mu_k - \alpha_j M_k \mu_k)`, :math:`M_k = \alpha_j C_k S_{j,k}^{-1}`,
        :math:`c_1 = \sigma_i/\sigma_j`, :math:`c_2 = \alpha_i - c_1\alpha_j`. Shape (K (d + 1), d):
        block ``k`` holds :math:`W_k^\top` then :math:`b_k^\top` (docs/mixture.md §3).
        """
        top, bottom = self._span(top, bottom)
        if top < 1:
            raise InputError(f"top must be >= 1 for a DDIM jump, got {top}")
        return self._ddim_parameters(top, bottom)

    def _ddim_parameters(self, top: int, bottom: int) -> np.ndarray:
        a, sig = self.schedule.alpha, self.schedule.sigma
        mix = self.mixture
        d = mix.dim
        c1 = sig[bottom] / sig[top]
        c2 = a[bottom] - c1 * a[top]
        theta = np.zeros((mix.components * (d + 1), d))
        for k in range(mix.components):
            lam, vec = mix.eigvals[k], mix.eigvecs[k]
            m = (vec * (a[top] * lam / (a[top] ** 2 * lam + sig[top] ** 2))) @ vec.T
            w = c1 * np.eye(d) + c2 * m
            b = c2 * (mix.means[k] - a[top] * (m @ mix.means[k]))
            theta[k * (d + 1):k * (d + 1) + d] = w.T
            theta[k * (d + 1) + d] = b
        return theta
