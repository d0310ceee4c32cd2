r"""Noise schedules on a discrete grid (docs/theory.md §1).

A schedule is a grid ``n = 0, 1, ..., N`` (0 = data side, N = noise side) with
coefficients :math:`(\alpha_n, \sigma_n)` such that

.. math:: z_n = \alpha_n x_0 + \sigma_n \varepsilon .

Required: :math:`\alpha_n \ge 0`, :math:`\sigma_n > 0` for every :math:`n \ge 1`,
and the signal-to-noise ratio :math:`\alpha_n / \sigma_n` strictly decreasing in ``n``.

Range of the entries (so that every later quantity stays finite; derivation in
:func:`schedule_growth`): each :math:`\alpha_n, \sigma_n` is 0 or lies in
:math:`[10^{-50}, 10^{50}]` (``ENTRY_MIN``, ``ENTRY_MAX``), and the growth factor
:math:`G = \prod_{n=1}^{N} \max(1, \sigma_{n-1}/\sigma_n, \alpha_{n-1}/\alpha_n)` (terms with
:math:`\alpha_n = 0` left out) is at most :math:`10^{50}` (``GROWTH_MAX``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._util import readonly_float64
from ._validate import MAX_STEPS, echo, integer, nonnegative_array, real_array
from .errors import InputError, InputTypeError

__all__ = [
    "SCHEDULE_NAMES",
    "Schedule",
    "make_schedule",
    "custom_schedule",
    "signal_noise_norm_sq",
    "schedule_growth",
    "ENTRY_MIN",
    "ENTRY_MAX",
    "GROWTH_MAX",
]

SCHEDULE_NAMES = ("vp-cosine", "vp-linear", "rf", "edm")

#: EDM (Karras et al. 2022) constants fixed by docs/theory.md §1.
EDM_RHO = 7.0
EDM_SIGMA_MIN = 0.002
EDM_SIGMA_MAX = 80.0
#: DDPM linear-beta constants fixed by docs/theory.md §1.
DDPM_BETA_START = 1e-4
DDPM_BETA_END = 0.02
DDPM_TIMESTEPS = 1000

#: smallest non-zero schedule entry: squares stay >= 1e-100, far from underflow
ENTRY_MIN = 1e-50
#: largest schedule entry: squares, and alpha_n^2 * lam for lam <= 1e100, stay <= 1e200
ENTRY_MAX = 1e50
#: largest growth factor G (:func:`schedule_growth`) of a schedule
GROWTH_MAX = 1e50


@dataclass(frozen=True, eq=False)
class Schedule:
    r"""A validated discrete schedule :math:`(\alpha_n, \sigma_n)_{n=0..N}`.

    Parameters
    ----------
    alpha, sigma : ndarray of shape (N + 1,)
        Signal and noise coefficients, index 0 on the data side.
    name : str
        ``"vp-cosine"``, ``"vp-linear"``, ``"rf"``, ``"edm"`` or ``"custom"``.

    Notes
    -----
    The arrays are stored as read-only contiguous float64 copies. Equality compares the
    name and the arrays exactly.
    """

    alpha: np.ndarray
    sigma: np.ndarray
    name: str = "custom"
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        alpha = readonly_float64(real_array(self.alpha, "alpha"))
        sigma = readonly_float64(real_array(self.sigma, "sigma"))
        if not isinstance(self.name, str):
            raise InputTypeError(f"name must be a str, got {type(self.name).__name__}")
        _validate(alpha, sigma)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "_hash", hash((self.name, alpha.tobytes(), sigma.tobytes())))

    @property
    def steps(self) -> int:
        """Number of teacher steps ``N`` (the grid has ``N + 1`` points)."""
        return int(self.alpha.shape[0] - 1)

    def snr(self) -> np.ndarray:
        r"""Signal-to-noise ratio :math:`\alpha_n / \sigma_n` (``inf`` where :math:`\sigma_n = 0`)."""
        with np.errstate(divide="ignore"):
            return np.where(self.sigma > 0, self.alpha / np.where(self.sigma > 0, self.sigma, 1.0), np.inf)

    def to_dict(self) -> dict:
        """JSON-friendly description (name, steps and, for custom schedules, the arrays)."""
        out: dict = {"name": self.name, "steps": self.steps}
        if self.name == "custom":
            out["alpha"] = self.alpha.tolist()
            out["sigma"] = self.sigma.tolist()
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return (
            self.name == other.name
            and np.array_equal(self.alpha, other.alpha)
            and np.array_equal(self.sigma, other.sigma)
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Schedule(name={self.name!r}, steps={self.steps})"


def _validate(alpha: np.ndarray, sigma: np.ndarray) -> None:
    if alpha.ndim != 1 or sigma.ndim != 1:
        raise InputError(f"alpha and sigma must be 1-D arrays, got shapes {alpha.shape} and {sigma.shape}")
    if alpha.shape != sigma.shape:
        raise InputError(f"alpha and sigma must have the same length N + 1, got {alpha.shape[0]} and {sigma.shape[0]}")
    if alpha.shape[0] < 2:
        raise InputError(f"a schedule needs N >= 1 steps (N + 1 >= 2 grid points), got {alpha.shape[0]} point(s)")
    if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(sigma))):
        raise InputError("alpha and sigma must be finite (no NaN or inf)")
    if np.any(alpha < 0):
        n = int(np.argmax(alpha < 0))
        raise InputError(f"alpha must be >= 0 at every grid index; alpha[{n}] = {float(alpha[n])!r}")
    for label, arr in (("alpha", alpha), ("sigma", sigma)):
        outside = (arr > ENTRY_MAX) | ((arr != 0) & (np.abs(arr) < ENTRY_MIN))
        if np.any(outside):
            n = int(np.argmax(outside))
            raise InputError(
                f"{label} entries must be 0 or lie in [{ENTRY_MIN:g}, {ENTRY_MAX:g}] in absolute value "
                f"(so that every later product stays finite); {label}[{n}] = {float(arr[n])!r}"
            )
    if np.any(sigma[1:] <= 0):
        n = 1 + int(np.argmax(sigma[1:] <= 0))
        raise InputError(f"sigma must be > 0 for every n >= 1; sigma[{n}] = {float(sigma[n])!r}")
    if sigma[0] < 0:
        raise InputError(f"sigma must be >= 0; sigma[0] = {float(sigma[0])!r}")
    if sigma[0] == 0 and alpha[0] == 0:
        raise InputError("alpha[0] and sigma[0] cannot both be 0 (the data-side grid point would carry nothing)")
    # SNR strictly decreasing: alpha_{n-1} sigma_n > alpha_n sigma_{n-1} (cross-multiplied, exact for sigma_0 = 0)
    lhs = alpha[:-1] * sigma[1:]
    rhs = alpha[1:] * sigma[:-1]
    bad = ~(lhs > rhs)
    if np.any(bad):
        n = 1 + int(np.argmax(bad))
        raise InputError(
            "the signal-to-noise ratio alpha_n / sigma_n must be strictly decreasing in n; "
            f"it does not decrease from n = {n - 1} to n = {n}"
        )
    growth = _log10_growth(alpha, sigma)
    if growth > np.log10(GROWTH_MAX):
        raise InputError(
            f"alpha and sigma grow too fast towards the data side: the growth factor "
            f"prod_n max(1, sigma[n-1]/sigma[n], alpha[n-1]/alpha[n]) is 1e{growth:.1f}, above the allowed "
            f"{GROWTH_MAX:g} (operators and W2 would overflow); rescale the schedule or use fewer steps"
        )


def _log10_growth(alpha: np.ndarray, sigma: np.ndarray) -> float:
    """``log10`` of the growth factor of validated arrays (see :func:`schedule_growth`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_a, log_s = np.log10(alpha), np.log10(sigma)  # -inf at the zeros
        sigma_terms = log_s[:-1] - log_s[1:]  # sigma_n > 0 for n >= 1
        alpha_terms = np.where(alpha[1:] > 0, log_a[:-1] - log_a[1:], -np.inf)
    return float(np.sum(np.maximum(0.0, np.maximum(sigma_terms, alpha_terms))))


def schedule_growth(schedule: Schedule) -> float:
    r"""Growth factor :math:`G = \prod_{n=1}^{N} \max(1, \sigma_{n-1}/\sigma_n, \alpha_{n-1}/\alpha_n)`.

    Terms with :math:`\alpha_n = 0` (only possible at :math:`n = N`) take only the
    :math:`\sigma` ratio. Every schedule has :math:`G \le 10^{50}` (``GROWTH_MAX``).

    Why this bound keeps the arithmetic finite: along an eigen-direction
    :math:`\|v_n\|^2 = \alpha_n^2\lambda + \sigma_n^2` and the step ratio
    :math:`\rho_n(\lambda)^2 = \|v_{n-1}\|^2/\|v_n\|^2` is a ratio of two affine functions of
    :math:`\lambda`, hence monotone, so
    :math:`\rho_n \le \max(\sigma_{n-1}/\sigma_n, \alpha_{n-1}/\alpha_n)` for every
    :math:`\lambda \ge 0`. A DDIM step obeys :math:`|A_n| \le \rho_n` (Cauchy-Schwarz), a jump
    :math:`|D(j \to i)| \le \|v_i\|/\|v_j\|`, and a merge node's value is a combination
    :math:`P + (a_0 - P) r` with :math:`|r| \le 1`, :math:`a_0 \in \{c_1, D, 0, 1\}`; by induction
    every teacher, student and jump value over :math:`j \to i` is at most
    :math:`\prod_{n=i+1}^{j}\max(1, \rho_n) \le G` in absolute value (the last step, when
    :math:`\alpha_N = 0`, contributes :math:`\|v_{N-1}\|/\sigma_N`, which the factor
    :math:`\|v_N\| = \sigma_N` of :math:`W_2` cancels). With entries in
    :math:`[10^{-50}, 10^{50}]`, :math:`\|v_n\|^2 \le 10^{100}(\lambda + 1)`, so
    :math:`W_2^2 \le 4 G^2 \max_n\|v_n\|^2 \sum_i \omega_i \le 4\cdot 10^{200} (\lambda_{\max} + 1) \sum_i\omega_i`,
    finite for every eigenvalue and weight below :math:`10^{100}`. (The argument covers the DDIM
    operators; a Heun step is not bounded by :math:`\rho_n`, and Heun schedules rely on the entry
    range alone.)

    Parameters
    ----------
    schedule : Schedule

    Returns
    -------
    float
        :math:`G \ge 1` (``inf`` only if it overflows, which a valid schedule never does).

    Raises
    ------
    InputTypeError
        When ``schedule`` is not a :class:`Schedule`.
    """
    _check_schedule(schedule)
    return float(10.0 ** _log10_growth(schedule.alpha, schedule.sigma))


def _check_schedule(schedule: object) -> None:
    if not isinstance(schedule, Schedule):
        raise InputTypeError(f"schedule must be an opmerge Schedule, got {type(schedule).__name__}")


def make_schedule(name: str, steps: int) -> Schedule:
    r"""Build a named schedule on ``steps + 1`` grid points (docs/theory.md §1).

    =============  ==========================================  ================================  ================================================
    name           grid                                        :math:`\alpha_n`                  :math:`\sigma_n`
    =============  ==========================================  ================================  ================================================
    ``vp-cosine``  :math:`t_n = n/N`                           :math:`\cos(\pi t_n/2)`           :math:`\sin(\pi t_n/2)`
    ``vp-linear``  DDPM :math:`k_n = \mathrm{rint}(1000 n/N)`  :math:`\sqrt{\bar\alpha(k_n)}`    :math:`\sqrt{1-\bar\alpha(k_n)}`
    ``rf``         :math:`t_n = n/N`                           :math:`1 - t_n`                   :math:`t_n`
    ``edm``        Karras, :math:`\rho = 7`                    :math:`1`                         Karras :math:`\sigma_n`, :math:`\sigma_0 = 0`
    =============  ==========================================  ================================  ================================================

    with :math:`\bar\alpha(k) = \prod_{i \le k}(1 - \beta_i)`, :math:`\beta = \mathrm{linspace}(10^{-4}, 0.02, 1000)`,
    and for EDM (:math:`n \ge 1`)
    :math:`\sigma_n = (\sigma_{\max}^{1/\rho} + \tfrac{N-n}{N-1}(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho}))^\rho`
    (:math:`\sigma_1 = \sigma_{\max}` when :math:`N = 1`).

    The endpoints that are exact zeros mathematically are stored as exact zeros:
    ``vp-cosine`` has :math:`\alpha_N = \cos(\pi/2) = 0` and :math:`\sigma_0 = 0` (floating point would
    give ``6e-17`` for the former; see ``docs/theory.md``).

    Parameters
    ----------
    name : {"vp-cosine", "vp-linear", "rf", "edm"}
    steps : int
        Number of teacher steps ``1 <= N <= MAX_STEPS`` (``10**7``; ``vp-linear``: ``N <= 1000``).

    Returns
    -------
    Schedule

    Raises
    ------
    InputTypeError
        When ``name`` is not a str or ``steps`` not an int (``bool`` included).
    InputError
        When ``name`` is unknown or ``steps`` is out of range.
    """
    if not isinstance(name, str):
        raise InputTypeError(f"schedule name must be a str, one of {', '.join(SCHEDULE_NAMES)}; got {type(name).__name__}")
    if name not in SCHEDULE_NAMES:
        raise InputError(f"unknown schedule {echo(name)!r}: name must be one of {', '.join(SCHEDULE_NAMES)} (or pass alpha/sigma arrays to custom_schedule)")
    steps = integer(steps, "steps", low=1, high=MAX_STEPS)
    n = np.arange(steps + 1, dtype=np.float64)
    if name == "vp-cosine":
        t = n / steps
        alpha = np.cos(np.pi * t / 2.0)
        sigma = np.sin(np.pi * t / 2.0)
        alpha[-1] = 0.0
        sigma[0] = 0.0
    elif name == "vp-linear":
        if steps > DDPM_TIMESTEPS:
            raise InputError(f"vp-linear lives on the {DDPM_TIMESTEPS}-step DDPM grid, so steps must be <= {DDPM_TIMESTEPS}, got {steps}")
        betas = np.linspace(DDPM_BETA_START, DDPM_BETA_END, DDPM_TIMESTEPS)
        alpha_bar = np.concatenate([[1.0], np.cumprod(1.0 - betas)])
        k = np.rint(DDPM_TIMESTEPS * n / steps).astype(np.int64)
        alpha = np.sqrt(alpha_bar[k])
        sigma = np.sqrt(1.0 - alpha_bar[k])
    elif name == "rf":
        t = n / steps
        alpha = 1.0 - t
        sigma = t.copy()
    elif name == "edm":
        alpha = np.ones(steps + 1)
        sigma = np.zeros(steps + 1)
        if steps == 1:
            sigma[1] = EDM_SIGMA_MAX
        else:
            lo = EDM_SIGMA_MIN ** (1.0 / EDM_RHO)
            hi = EDM_SIGMA_MAX ** (1.0 / EDM_RHO)
            idx = np.arange(1, steps + 1, dtype=np.float64)
            sigma[1:] = (hi + (steps - idx) / (steps - 1) * (lo - hi)) ** EDM_RHO
    else:  # pragma: no cover - name was checked above
        raise AssertionError(name)
    return Schedule(alpha=alpha, sigma=sigma, name=name)


def custom_schedule(alpha, sigma) -> Schedule:
    r"""A schedule from user arrays :math:`(\alpha_n, \sigma_n)_{n=0..N}`, validated as in docs/theory.md §1.

    Parameters
    ----------
    alpha, sigma : array-like of shape (N + 1,)
        Real numbers, index 0 on the data side, with :math:`\alpha_n \ge 0`, :math:`\sigma_n > 0`
        for :math:`n \ge 1` and :math:`\alpha_n / \sigma_n` strictly decreasing; every entry 0 or in
        :math:`[10^{-50}, 10^{50}]` and the growth factor :func:`schedule_growth` at most
        :math:`10^{50}`. Masked arrays are refused.

    Returns
    -------
    Schedule
        Named ``"custom"``.

    Raises
    ------
    InputTypeError
        When ``alpha`` or ``sigma`` is not an array of numbers.
    InputError
        When they break the conditions above.
    """
    return Schedule(alpha=real_array(alpha, "alpha"), sigma=real_array(sigma, "sigma"), name="custom")


def signal_noise_norm_sq(schedule: Schedule, lam: float) -> np.ndarray:
    r"""Variance of :math:`z_n` along an eigen-direction: :math:`\|v_n\|^2 = \alpha_n^2\lambda + \sigma_n^2`.

    Returns an array of shape ``(N + 1,)``.

    Parameters
    ----------
    schedule : Schedule
    lam : float or array-like
        Eigenvalue(s) :math:`\lambda \ge 0`, finite, broadcast against the grid (checked here;
        the layers inside the package call the unchecked ``_signal_noise_norm_sq``).

    Returns
    -------
    ndarray
        Shape ``(N + 1,)`` for a scalar, else ``lam``'s broadcast shape with the grid last.

    Raises
    ------
    InputTypeError
        When ``schedule`` is not a :class:`Schedule` or ``lam`` is not numeric.
    InputError
        When ``lam`` is empty, not finite or negative, or does not broadcast against the grid.
    """
    _check_schedule(schedule)
    lam = nonnegative_array(lam, "lam")
    try:
        np.broadcast_shapes(lam.shape, schedule.alpha.shape)
    except ValueError:
        raise InputError(f"lam must broadcast against the grid of N + 1 = {schedule.alpha.shape[0]} points, got shape {lam.shape}") from None
    return _signal_noise_norm_sq(schedule, lam)


def _signal_noise_norm_sq(schedule: Schedule, lam) -> np.ndarray:
    """:func:`signal_noise_norm_sq` on validated input."""
    return schedule.alpha**2 * lam + schedule.sigma**2
