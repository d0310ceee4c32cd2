r"""The student model of one merge node (THEORY.md §4) and plan evaluation.

A merge node over :math:`j \to i` with children values :math:`c_1, \dots, c_k` (``c_1`` applied
first) is trained to reproduce :math:`P = c_k \cdots c_1` on the loss
:math:`\mathbb E(a z_j - P z_j)^2 = q_j (a - P)^2`. From :math:`a_0` the student reaches

.. math:: a = P + (a_0 - P)\, r, \qquad
          r = \begin{cases} e^{-2\eta\tau q_j} & \text{gradient flow (``flow``)}\\
                            (1 - 2\eta q_j)^K & K \text{ gradient steps (``gd``)}\end{cases}

With the ``warm`` init :math:`a_0 = c_1` this is :math:`a = c_1 (w P' + 1 - w)`,
:math:`P' = c_k\cdots c_2`, :math:`w = 1 - r`: a convex combination of the remaining
operator and the identity, the signal shrinkage (or overshoot) of merging.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .schedules import Schedule, signal_noise_norm_sq
from .teacher import check_lam, composite_table, ddim_jump, step_operators

__all__ = [
    "INITS",
    "TRAININGS",
    "INPUTS",
    "BUDGETS",
    "StudentModel",
    "retention",
    "node_value",
    "input_variance",
    "retention_table",
]

INITS = ("warm", "ddim", "zero", "identity")
TRAININGS = ("flow", "gd")
INPUTS = ("forward", "generated")
BUDGETS = ("per-merge", "total")
#: integer codes used by the Numba kernels
INIT_CODES = {name: code for code, name in enumerate(INITS)}


@dataclass(frozen=True)
class StudentModel:
    r"""Configuration of the student model (THEORY.md §4).

    Parameters
    ----------
    eta_tau : float
        Training budget :math:`\eta\tau > 0` of gradient flow (per merge node, or in total
        with ``budget="total"``).
    init : {"warm", "ddim", "zero", "identity"}
        Student start :math:`a_0`: ``c_1`` (warm start), :math:`D(j\to i)`, 0 or 1.
    training : {"flow", "gd"}
        Gradient flow for time :math:`\tau` at rate :math:`\eta`, or ``gd_steps`` steps of size ``lr``.
    input : {"forward", "generated"}
        Input variance :math:`q_j = \|v_j\|^2` (data-driven) or :math:`\|v_N\|^2 T(N\to j)^2` (data-free).
    budget : {"per-merge", "total"}
        ``total`` splits :math:`\eta\tau` evenly over the plan's merge nodes (``flow`` only).
    lr : float, optional
        Step size :math:`\eta` of ``gd`` (required for ``gd``).
    gd_steps : int, optional
        Number of steps :math:`K \ge 1` of ``gd`` (required for ``gd``).
    """

    eta_tau: float = 0.5
    init: str = "warm"
    training: str = "flow"
    input: str = "forward"
    budget: str = "per-merge"
    lr: float | None = None
    gd_steps: int | None = None

    def __post_init__(self) -> None:
        for label, value, allowed in (
            ("init", self.init, INITS),
            ("training", self.training, TRAININGS),
            ("input", self.input, INPUTS),
            ("budget", self.budget, BUDGETS),
        ):
            if value not in allowed:
                raise ValueError(f"{label} must be one of {', '.join(allowed)}, got {value!r}")
        if isinstance(self.eta_tau, bool) or not isinstance(self.eta_tau, (int, float, np.floating, np.integer)):
            raise TypeError(f"eta_tau must be a number, got {type(self.eta_tau).__name__}")
        if not (math.isfinite(self.eta_tau) and self.eta_tau > 0):
            raise ValueError(f"eta_tau must be finite and > 0, got {self.eta_tau!r}")
        object.__setattr__(self, "eta_tau", float(self.eta_tau))
        if self.training == "gd":
            if self.budget == "total":
                raise ValueError("budget='total' is only defined for training='flow' (gd has a fixed step count per node)")
            if self.lr is None or self.gd_steps is None:
                raise ValueError("training='gd' needs lr (> 0) and gd_steps (>= 1)")
            if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float, np.floating, np.integer)):
                raise TypeError(f"lr must be a number, got {type(self.lr).__name__}")
            if not (math.isfinite(self.lr) and self.lr > 0):
                raise ValueError(f"lr must be finite and > 0, got {self.lr!r}")
            if isinstance(self.gd_steps, bool) or not isinstance(self.gd_steps, (int, np.integer)):
                raise TypeError(f"gd_steps must be an int, got {type(self.gd_steps).__name__}")
            if self.gd_steps < 1:
                raise ValueError(f"gd_steps must be >= 1, got {self.gd_steps}")
            object.__setattr__(self, "lr", float(self.lr))
            object.__setattr__(self, "gd_steps", int(self.gd_steps))

    def to_dict(self) -> dict:
        """The configuration as a JSON-friendly dict."""
        return asdict(self)


def retention(training: str, q, *, eta_tau: float | None = None, lr: float | None = None, gd_steps: int | None = None):
    r"""Share :math:`r` of the initial error left after training on inputs of variance ``q``.

    ``flow``: :math:`r = e^{-2\eta\tau q}`; ``gd``: :math:`r = (1 - 2\eta q)^K`, which requires
    :math:`2\eta q < 2` (otherwise gradient descent diverges: ``ValueError``).
    """
    q = np.asarray(q, dtype=np.float64)
    if training == "flow":
        return np.exp(-2.0 * eta_tau * q)
    if training == "gd":
        factor = 1.0 - 2.0 * lr * q
        if np.any(factor <= -1.0):
            q_max = float(np.max(q))
            raise ValueError(
                f"gd with lr = {lr!r} diverges: it needs 2 * lr * q_j < 2 for every input variance q_j; "
                f"the largest q_j is {q_max:.6g}, so lr must be < {1.0 / q_max:.6g}"
            )
        return factor**gd_steps
    raise ValueError(f"training must be one of {', '.join(TRAININGS)}, got {training!r}")


def node_value(children_values, r, a0):
    r"""Student value of one merge node: :math:`a = P + (a_0 - P)\,r`, :math:`P = c_k \cdots c_1`.

    Parameters
    ----------
    children_values : sequence of float or arrays
        :math:`c_1, \dots, c_k`, noise-side child first.
    r : float or array
        Retention from :func:`retention`.
    a0 : float or array
        Initial student value (for the warm init pass ``children_values[0]``).
    """
    product = np.ones_like(np.asarray(children_values[0], dtype=np.float64))
    for value in children_values:
        product = product * value
    return product + (a0 - product) * r


def input_variance(schedule: Schedule, lam, input: str = "forward", solver: str = "ddim") -> np.ndarray:
    r"""Input variance :math:`q_j` of a student with input time ``j``, for ``j = 0..N``.

    ``forward``: :math:`q_j = \|v_j\|^2`; ``generated``: :math:`q_j = \|v_N\|^2\, T(N \to j)^2`.
    """
    lam_arr = check_lam(lam)
    norm_sq = signal_noise_norm_sq(schedule, lam_arr[..., None])
    if input == "forward":
        return norm_sq
    if input == "generated":
        suffix = composite_table(step_operators(schedule, lam_arr, solver))
        return norm_sq[..., -1:] * suffix**2
    raise ValueError(f"input must be one of {', '.join(INPUTS)}, got {input!r}")


def retention_table(schedule: Schedule, lam, model: StudentModel, solver: str = "ddim", n_merges: int | None = None) -> np.ndarray:
    r"""Retention :math:`r_j` for a node with input time ``j = 0..N`` (entry 0 unused).

    With ``budget="total"`` the per-node budget is :math:`\eta\tau / m`, ``m = n_merges``.
    """
    q = input_variance(schedule, lam, model.input, solver)
    if model.training == "flow":
        eta_tau = model.eta_tau
        if model.budget == "total":
            if n_merges is None:
                raise ValueError("budget='total' needs the plan's number of merge nodes (n_merges)")
            eta_tau = eta_tau / max(int(n_merges), 1)
        return retention("flow", q, eta_tau=eta_tau)
    # gd: only nodes with input time j >= 2 exist; check stability there
    out = np.ones_like(q)
    out[..., 2:] = retention("gd", q[..., 2:], lr=model.lr, gd_steps=model.gd_steps)
    return out


def ddim_jump_table(schedule: Schedule, lam) -> np.ndarray:
    r"""All single jumps: ``out[..., i, j] = D(j -> i)`` for ``0 <= i <= j <= N`` (0 below the diagonal)."""
    lam_arr = check_lam(lam)[..., None, None]
    a, s = schedule.alpha, schedule.sigma
    numerator = a[:, None] * a[None, :] * lam_arr + s[:, None] * s[None, :]
    denominator = a[None, :] ** 2 * lam_arr + s[None, :] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):  # only j = 0 with lam = 0 divides by 0
        out = np.triu(np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0))
    idx = np.arange(schedule.steps + 1)
    out[..., idx, idx] = 1.0  # the empty jump
    return out
