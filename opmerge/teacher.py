r"""Teacher sampling operators in the linear regime (docs/theory.md §2).

On Gaussian data every sampler step is a scalar per eigen-direction :math:`\lambda`
of the data covariance. With the signal-noise vector :math:`v_n = (\alpha_n\sqrt\lambda, \sigma_n)`:

* DDIM step :math:`n \to n-1`: :math:`A_n = \langle v_{n-1}, v_n\rangle / \|v_n\|^2`
  (project :math:`v_{n-1}` on :math:`v_n`, rescale: :math:`A_n = \tfrac{\|v_{n-1}\|}{\|v_n\|}\cos\theta_n`);
* single DDIM jump :math:`j \to i`: :math:`D(j\to i) = \langle v_i, v_j\rangle / \|v_j\|^2`;
* Heun step (EDM): Euler predictor, trapezoid corrector in :math:`y = z/\alpha`, :math:`s = \sigma/\alpha`;
* exact flow :math:`E(j\to i) = \|v_i\| / \|v_j\|`;
* composite :math:`T(j\to i) = \prod_{n=i+1}^{j} A_n`.

Every function accepts a scalar ``lam`` or an array of eigenvalues; array results carry the
eigenvalue axes first and the grid axis last.
"""

from __future__ import annotations

import numpy as np

from ._validate import choice, finite_array, integer, nonnegative_array
from .errors import InputError, InputTypeError
from .schedules import Schedule, _check_schedule, _signal_noise_norm_sq

__all__ = [
    "SOLVERS",
    "check_lam",
    "ddim_step",
    "heun_step",
    "step_operators",
    "ddim_jump",
    "exact_flow",
    "teacher_composite",
    "composite_table",
]

SOLVERS = ("ddim", "heun")


def check_lam(lam, name: str = "lam") -> np.ndarray:
    r"""Validate eigenvalues :math:`\lambda \in [0, \infty)`; returns a float64 array (0-d for a scalar).

    Parameters
    ----------
    lam : number or array-like of numbers
        Eigenvalues of a covariance (``bool``, strings and ``None`` are refused).
    name : str
        How the message names the parameter.

    Raises
    ------
    InputTypeError
        When ``lam`` is not a number or an array of numbers (masked arrays included), or ``name``
        is not a str.
    InputError
        When it is empty, not finite or negative.
    """
    if not isinstance(name, str):
        raise InputTypeError(f"name must be a str (the parameter's name for the message), got {type(name).__name__}")
    return nonnegative_array(lam, name)


def _check_solver(solver: str) -> None:
    choice(solver, "solver", SOLVERS)


def _check_span(schedule: Schedule, top: int, bottom: int) -> tuple[int, int]:
    n_steps = schedule.steps
    top = integer(top, "top")
    bottom = integer(bottom, "bottom")
    if not (0 <= bottom <= top <= n_steps):
        raise InputError(f"need 0 <= bottom <= top <= N = {n_steps}; got top = {top}, bottom = {bottom}")
    return top, bottom


def _span_to(schedule: Schedule, top: int | None, bottom: int) -> tuple[int, int]:
    """``schedule`` checked, then the span ``top -> bottom`` with ``top`` defaulting to ``N``."""
    _check_schedule(schedule)
    return _check_span(schedule, schedule.steps if top is None else top, bottom)


# ---------------------------------------------------------------------------------------------
# kernels on validated input: ``lam`` is a float64 array of finite values >= 0
# ---------------------------------------------------------------------------------------------


def _ddim_step(schedule: Schedule, lam: np.ndarray) -> np.ndarray:
    lam_arr = lam[..., None]
    a, s = schedule.alpha, schedule.sigma
    out = np.ones(lam_arr.shape[:-1] + (schedule.steps + 1,))
    out[..., 1:] = (a[:-1] * a[1:] * lam_arr + s[:-1] * s[1:]) / (a[1:] ** 2 * lam_arr + s[1:] ** 2)
    return out


def _check_heun_schedule(schedule: Schedule) -> None:
    a = schedule.alpha
    if np.any(a <= 0):
        n = int(np.argmax(a <= 0))
        raise InputError(
            f"the Heun solver needs alpha_n > 0 at every grid index (it works in y = z / alpha); "
            f"schedule {schedule.name!r} has alpha[{n}] = {float(a[n])!r}. Use solver='ddim' for this schedule"
        )


def _heun_step(schedule: Schedule, lam: np.ndarray) -> np.ndarray:
    _check_heun_schedule(schedule)
    a, sig = schedule.alpha, schedule.sigma
    lam_arr = lam[..., None]
    s = sig[1:] / a[1:]
    s_next = sig[:-1] / a[:-1]
    euler = (lam_arr + s * s_next) / (lam_arr + s**2)
    # the corrector's slope at s' = 0 is never used (plain Euler there); a safe denominator avoids 0/0
    safe_den = np.where(s_next > 0, lam_arr + s_next**2, 1.0)
    corrected = 1.0 + 0.5 * (s_next - s) * (s / (lam_arr + s**2) + euler * s_next / safe_den)
    ratio = np.where(s_next > 0, corrected, euler)
    out = np.ones(lam_arr.shape[:-1] + (schedule.steps + 1,))
    out[..., 1:] = (a[:-1] / a[1:]) * ratio
    return out


def _step_operators(schedule: Schedule, lam: np.ndarray, solver: str) -> np.ndarray:
    return _ddim_step(schedule, lam) if solver == "ddim" else _heun_step(schedule, lam)


def _exact_flow(schedule: Schedule, lam: np.ndarray, top: int, bottom: int) -> np.ndarray:
    if top == bottom:
        return np.ones_like(lam)
    norm_sq = _signal_noise_norm_sq(schedule, lam[..., None])
    return np.sqrt(norm_sq[..., bottom]) / np.sqrt(norm_sq[..., top])


# ---------------------------------------------------------------------------------------------
# public operators (validate their input, then call the kernels)
# ---------------------------------------------------------------------------------------------


def ddim_step(schedule: Schedule, lam) -> np.ndarray:
    r"""DDIM step operators :math:`A_n = \frac{\alpha_{n-1}\alpha_n\lambda + \sigma_{n-1}\sigma_n}{\alpha_n^2\lambda + \sigma_n^2}`.

    Uses the exact posterior-mean denoiser :math:`\hat x_0 = \alpha\lambda/(\alpha^2\lambda+\sigma^2)\,z`.

    Parameters
    ----------
    schedule : Schedule
    lam : float or array-like
        Eigenvalue(s) :math:`\lambda \ge 0`, finite (checked by :func:`check_lam`).

    Returns
    -------
    ndarray
        Shape ``lam.shape + (N + 1,)``: entry ``n`` is :math:`A_n`, entry 0 is 1.

    Raises
    ------
    InputTypeError
        When ``schedule`` is not a :class:`~opmerge.schedules.Schedule` or ``lam`` is not numeric.
    InputError
        When ``lam`` is out of range.
    """
    _check_schedule(schedule)
    return _ddim_step(schedule, check_lam(lam))


def heun_step(schedule: Schedule, lam) -> np.ndarray:
    r"""Heun (EDM second-order) step operators, one scalar per step.

    In :math:`y = z/\alpha`, :math:`s = \sigma/\alpha` the exact denoiser is
    :math:`D(y, s) = \lambda/(\lambda+s^2)\,y` and the slope :math:`d = (y - D)/s = s\,y/(\lambda+s^2)`.
    For a step :math:`s \to s'` the Euler predictor has factor
    :math:`e = (\lambda + s s')/(\lambda + s^2)` and the trapezoid corrector gives

    .. math:: h = 1 + \frac{s'-s}{2}\Big(\frac{s}{\lambda+s^2} + e\,\frac{s'}{\lambda+s'^2}\Big),
              \qquad H_n = \frac{\alpha_{n-1}}{\alpha_n}\, h ,

    except into :math:`s' = 0`, a plain Euler step (:math:`H_n = \alpha_{n-1} e/\alpha_n`), as in EDM.
    The closed form is derived symbolically in :mod:`opmerge.symbolic`. Requires :math:`\alpha_n > 0`.

    Parameters
    ----------
    schedule : Schedule
    lam : float or array-like
        Eigenvalue(s) :math:`\lambda \ge 0`, finite (checked by :func:`check_lam`).

    Returns
    -------
    ndarray
        Shape ``lam.shape + (N + 1,)``: entry ``n`` is :math:`H_n`, entry 0 is 1.

    Raises
    ------
    InputTypeError
        When ``schedule`` is not a :class:`~opmerge.schedules.Schedule` or ``lam`` is not numeric.
    InputError
        When ``lam`` is out of range, or the schedule has some :math:`\alpha_n = 0`.
    """
    _check_schedule(schedule)
    return _heun_step(schedule, check_lam(lam))


def step_operators(schedule: Schedule, lam, solver: str = "ddim") -> np.ndarray:
    r"""Per-step teacher operators for ``solver`` (``"ddim"``: :func:`ddim_step`, ``"heun"``: :func:`heun_step`).

    Parameters
    ----------
    schedule : Schedule
    lam : float or array-like
        Eigenvalue(s) :math:`\lambda \ge 0`, finite (checked by :func:`check_lam`).
    solver : {"ddim", "heun"}

    Returns
    -------
    ndarray
        Shape ``lam.shape + (N + 1,)``.

    Raises
    ------
    InputTypeError
        When ``schedule`` is not a :class:`~opmerge.schedules.Schedule` or ``lam`` is not numeric.
    InputError
        When ``lam`` is out of range or ``solver`` is unknown.
    """
    _check_solver(solver)
    _check_schedule(schedule)
    return _step_operators(schedule, check_lam(lam), solver)


def ddim_jump(schedule: Schedule, lam, top: int, bottom: int) -> np.ndarray:
    r"""Single DDIM jump :math:`D(j \to i) = \langle v_i, v_j\rangle / \|v_j\|^2` (``top = j``, ``bottom = i``).

    Parameters
    ----------
    schedule : Schedule
    lam : float or array-like
        Eigenvalue(s) :math:`\lambda \ge 0`, finite (checked by :func:`check_lam`).
    top, bottom : int
        Grid indices ``0 <= bottom <= top <= N``.

    Returns
    -------
    ndarray
        Shape ``lam.shape``.

    Raises
    ------
    InputTypeError
        When ``schedule`` is not a :class:`~opmerge.schedules.Schedule` or ``lam`` is not numeric.
    InputError
        When ``lam`` is out of range or the indices are.
    """
    _check_schedule(schedule)
    top, bottom = _check_span(schedule, top, bottom)
    lam_arr = check_lam(lam)
    a, s = schedule.alpha, schedule.sigma
    if top == bottom:
        return np.ones_like(lam_arr)
    return (a[bottom] * a[top] * lam_arr + s[bottom] * s[top]) / (a[top] ** 2 * lam_arr + s[top] ** 2)


def exact_flow(schedule: Schedule, lam, top: int | None = None, bottom: int = 0) -> np.ndarray:
    r"""Probability-flow ODE solved exactly: :math:`E(j \to i) = \|v_i\| / \|v_j\|` (default :math:`j = N`, :math:`i = 0`).

    Parameters
    ----------
    schedule : Schedule
    lam : float or array-like
        Eigenvalue(s) :math:`\lambda \ge 0`, finite (checked by :func:`check_lam`).
    top : int, optional
        ``j`` (default ``N``).
    bottom : int
        ``i`` with ``0 <= i <= j``.

    Returns
    -------
    ndarray
        Shape ``lam.shape``.

    Raises
    ------
    InputTypeError
        When ``schedule`` is not a :class:`~opmerge.schedules.Schedule` or ``lam`` is not numeric.
    InputError
        When ``lam`` is out of range or the indices are.
    """
    top, bottom = _span_to(schedule, top, bottom)
    return _exact_flow(schedule, check_lam(lam), top, bottom)


def teacher_composite(schedule: Schedule, lam, top: int | None = None, bottom: int = 0, solver: str = "ddim") -> np.ndarray:
    r"""Teacher composite :math:`T(j \to i) = \prod_{n=i+1}^{j} A_n` (default :math:`j = N`, :math:`i = 0`).

    ``solver="heun"`` multiplies Heun steps instead of DDIM steps. An empty product (``top == bottom``) is 1.

    Parameters
    ----------
    schedule : Schedule
    lam : float or array-like
        Eigenvalue(s) :math:`\lambda \ge 0`, finite (checked by :func:`check_lam`).
    top : int, optional
        ``j`` (default ``N``).
    bottom : int
        ``i`` with ``0 <= i <= j``.
    solver : {"ddim", "heun"}

    Returns
    -------
    ndarray
        Shape ``lam.shape``.

    Raises
    ------
    InputTypeError
        When ``schedule`` is not a :class:`~opmerge.schedules.Schedule` or ``lam`` is not numeric.
    InputError
        When ``lam`` is out of range, the indices are, or ``solver`` is unknown.
    """
    top, bottom = _span_to(schedule, top, bottom)
    _check_solver(solver)
    ops = _step_operators(schedule, check_lam(lam), solver)
    return np.prod(ops[..., bottom + 1 : top + 1], axis=-1)


def composite_table(step_values: np.ndarray) -> np.ndarray:
    r"""Suffix products of step operators: ``out[..., j] = T(N -> j) = prod_{n=j+1}^{N} A_n`` (``out[..., N] = 1``).

    Parameters
    ----------
    step_values : array-like (..., N + 1)
        Output of :func:`step_operators`: finite real numbers, at least one axis, ``N + 1 >= 1``
        entries on the last one.

    Returns
    -------
    ndarray
        The shape of ``step_values``.

    Raises
    ------
    InputTypeError
        When ``step_values`` is not an array of real numbers.
    InputError
        When it is 0-d, has an empty last axis or a non-finite entry.
    """
    step_values = finite_array(step_values, "step_values")
    if step_values.ndim == 0 or step_values.shape[-1] == 0:
        raise InputError(f"step_values must have a last (grid) axis of N + 1 >= 1 entries, got shape {step_values.shape}")
    return _composite_table(step_values)


def _composite_table(step_values: np.ndarray) -> np.ndarray:
    """:func:`composite_table` on a validated float64 array."""
    n_steps = step_values.shape[-1] - 1
    out = np.ones_like(step_values)
    for j in range(n_steps - 1, -1, -1):
        out[..., j] = out[..., j + 1] * step_values[..., j + 1]
    return out
