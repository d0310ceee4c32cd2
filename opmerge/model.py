r"""The student model of one merge node (docs/theory.md §4) and plan evaluation.

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

from dataclasses import asdict, dataclass

import numpy as np

from collections.abc import Sequence

from ._validate import choice, finite_array, integer, nonnegative_array, real_number
from .errors import InputError, InputTypeError
from .schedules import Schedule, _check_schedule, _signal_noise_norm_sq
from .teacher import _check_solver, _composite_table, _step_operators, check_lam

__all__ = [
    "INITS",
    "TRAININGS",
    "INPUTS",
    "BUDGETS",
    "StudentModel",
    "check_training",
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
    r"""Configuration of the student model (docs/theory.md §4).

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

    Raises
    ------
    InputTypeError
        For a value of the wrong type (``eta_tau=True``, ``gd_steps=1.5``, ``init=None``).
    InputError
        For a value out of range (``eta_tau <= 0`` or not finite, an unknown choice), ``gd``
        without ``lr``/``gd_steps`` or with ``budget="total"``, and ``lr``/``gd_steps`` given
        with ``training="flow"`` (where they would be ignored).
    """

    eta_tau: float = 0.5
    init: str = "warm"
    training: str = "flow"
    input: str = "forward"
    budget: str = "per-merge"
    lr: float | None = None
    gd_steps: int | None = None

    def __post_init__(self) -> None:
        for label, allowed in (("init", INITS), ("input", INPUTS), ("budget", BUDGETS)):
            choice(getattr(self, label), label, allowed)
        object.__setattr__(self, "eta_tau", real_number(self.eta_tau, "eta_tau", low=0.0, low_open=True))
        _, lr, gd_steps = check_training(self.training, self.lr, self.gd_steps, self.budget)
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "gd_steps", gd_steps)

    def to_dict(self) -> dict:
        """The configuration as a JSON-friendly dict."""
        return asdict(self)


def check_training(training: object, lr: object = None, gd_steps: object = None, budget: object = "per-merge") -> tuple[str, float | None, int | None]:
    r"""The rule tying ``training`` to ``lr``, ``gd_steps`` and ``budget`` (docs/theory.md §4).

    ``training="gd"`` needs both ``lr > 0`` (finite) and an int ``gd_steps >= 1`` and refuses
    ``budget="total"`` (gd has a fixed step count per node); ``training="flow"`` refuses ``lr``
    and ``gd_steps`` (they would be silently ignored: flow uses ``eta_tau``). The same rule as
    the command line's ``--training``/``--lr``/``--gd-steps``/``--budget``.

    Parameters
    ----------
    training : {"flow", "gd"}
    lr : float, optional
    gd_steps : int, optional
    budget : {"per-merge", "total"}

    Returns
    -------
    tuple
        ``(training, lr, gd_steps)`` with ``lr`` as ``float`` and ``gd_steps`` as ``int`` (both
        ``None`` for ``flow``).

    Raises
    ------
    InputTypeError
        For a value of the wrong type (``lr=True``, ``gd_steps=1.5``).
    InputError
        When the rule above is broken or a value is out of range.
    """
    return _training_rule(training, lr, gd_steps, budget, lr_open=True)


def _training_rule(training: object, lr: object, gd_steps: object, budget: object, lr_open: bool) -> tuple[str, float | None, int | None]:
    """:func:`check_training`, with ``lr = 0`` allowed when not ``lr_open`` (the formula of :func:`retention`)."""
    choice(training, "training", TRAININGS)
    if training == "gd":
        if budget == "total":
            raise InputError("budget='total' is only defined for training='flow' (gd has a fixed step count per node)")
        if lr is None or gd_steps is None:
            missing = " and ".join(name for name, value in (("lr", lr), ("gd_steps", gd_steps)) if value is None)
            raise InputError(f"training='gd' needs lr (> 0) and gd_steps (>= 1); {missing} missing")
        return training, real_number(lr, "lr", low=0.0, low_open=lr_open), integer(gd_steps, "gd_steps", low=1)
    if lr is not None or gd_steps is not None:
        given = " and ".join(name for name, value in (("lr", lr), ("gd_steps", gd_steps)) if value is not None)
        raise InputError(f"{given} only apply to training='gd' (training='flow' uses eta_tau); leave them None")
    return training, None, None


def retention(training: str, q, *, eta_tau: float | None = None, lr: float | None = None, gd_steps: int | None = None):
    r"""Share :math:`r` of the initial error left after training on inputs of variance ``q``.

    ``flow``: :math:`r = e^{-2\eta\tau q}`; ``gd``: :math:`r = (1 - 2\eta q)^K`, which requires
    :math:`2\eta q < 2` (otherwise gradient descent diverges: ``InputError``).

    Parameters
    ----------
    training : {"flow", "gd"}
    q : float or ndarray
        Input variances :math:`q_j \ge 0`.
    eta_tau : float, optional
        :math:`\eta\tau` of ``flow``.
    lr : float, optional
        :math:`\eta` of ``gd``.
    gd_steps : int, optional
        :math:`K` of ``gd``.

    Returns
    -------
    ndarray
        :math:`r`, the shape of ``q``.

    Raises
    ------
    InputTypeError
        For a value of the wrong type.
    InputError
        When ``gd`` diverges for these ``q`` (the message gives the largest stable ``lr``),
        ``training`` is unknown, ``q`` is empty, negative or not finite, ``flow`` lacks ``eta_tau``
        (finite, >= 0) or the rule of :func:`check_training` is broken (here ``lr = 0`` and
        ``eta_tau = 0``, no training, are allowed: ``r = 1``).
    """
    training, lr, gd_steps = _training_rule(training, lr, gd_steps, "per-merge", lr_open=False)
    q = nonnegative_array(q, "q")
    if training == "flow":
        if eta_tau is None:
            raise InputError("training='flow' needs eta_tau (finite, >= 0)")
        eta_tau = real_number(eta_tau, "eta_tau", low=0.0)
    return _retention(training, q, eta_tau, lr, gd_steps)


def _retention(training: str, q: np.ndarray, eta_tau: float | None, lr: float | None, gd_steps: int | None) -> np.ndarray:
    """:func:`retention` on validated input."""
    if training == "flow":
        return np.exp(-2.0 * eta_tau * q)
    if training == "gd":
        factor = 1.0 - 2.0 * lr * q
        if np.any(factor <= -1.0):
            q_max = float(np.max(q))
            raise InputError(
                f"gd with lr = {lr!r} diverges: it needs 2 * lr * q_j < 2 for every input variance q_j; "
                f"the largest q_j is {q_max:.6g}, so lr must be < {1.0 / q_max:.6g}"
            )
        return factor**gd_steps
    raise AssertionError(training)  # pragma: no cover - checked by retention / StudentModel


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

    Returns
    -------
    ndarray
        The broadcast shape of the children values, ``r`` and ``a0``.

    Raises
    ------
    InputTypeError
        When ``children_values`` is not a sequence or an entry, ``r`` or ``a0`` is not numeric.
    InputError
        When ``children_values`` is empty, a value is not finite or the shapes do not broadcast.
    """
    if isinstance(children_values, (str, bytes)) or not isinstance(children_values, (Sequence, np.ndarray)):
        raise InputTypeError(f"children_values must be a sequence of numbers or arrays, got {type(children_values).__name__}")
    if len(children_values) == 0:
        raise InputError("children_values must hold >= 1 child value, got none")
    children = [finite_array(value, f"children_values[{k}]") for k, value in enumerate(children_values)]
    r, a0 = finite_array(r, "r"), finite_array(a0, "a0")
    try:
        np.broadcast_shapes(*(child.shape for child in children), r.shape, a0.shape)
    except ValueError:
        shapes = ", ".join(str(child.shape) for child in children)
        raise InputError(f"children_values ({shapes}), r {r.shape} and a0 {a0.shape} must broadcast to one shape") from None
    product = np.ones_like(children[0])
    for value in children:
        product = product * value
    return product + (a0 - product) * r


def input_variance(schedule: Schedule, lam, input: str = "forward", solver: str = "ddim") -> np.ndarray:
    r"""Input variance :math:`q_j` of a student with input time ``j``, for ``j = 0..N``.

    ``forward``: :math:`q_j = \|v_j\|^2`; ``generated``: :math:`q_j = \|v_N\|^2\, T(N \to j)^2`.

    Parameters
    ----------
    schedule : Schedule
    lam : float or array
        Eigenvalues :math:`\lambda \ge 0`.
    input : {"forward", "generated"}
    solver : {"ddim", "heun"}

    Returns
    -------
    ndarray of shape ``lam.shape + (N + 1,)``
    """
    _check_schedule(schedule)
    choice(input, "input", INPUTS)
    _check_solver(solver)
    return _input_variance(schedule, check_lam(lam), input, solver)


def _input_variance(schedule: Schedule, lam: np.ndarray, input: str, solver: str) -> np.ndarray:
    norm_sq = _signal_noise_norm_sq(schedule, lam[..., None])
    if input == "forward":
        return norm_sq
    suffix = _composite_table(_step_operators(schedule, lam, solver))
    return norm_sq[..., -1:] * suffix**2


def retention_table(schedule: Schedule, lam, model: StudentModel, solver: str = "ddim", n_merges: int | None = None) -> np.ndarray:
    r"""Retention :math:`r_j` for a node with input time ``j = 0..N`` (entry 0 unused).

    With ``budget="total"`` the per-node budget is :math:`\eta\tau / m`, ``m = n_merges``.

    Parameters
    ----------
    schedule : Schedule
    lam : float or array
        Eigenvalues :math:`\lambda \ge 0`.
    model : StudentModel
    solver : {"ddim", "heun"}
    n_merges : int, optional
        The plan's number of merge nodes (needed for ``budget="total"``).

    Returns
    -------
    ndarray of shape ``lam.shape + (N + 1,)``
    """
    _check_schedule(schedule)
    if not isinstance(model, StudentModel):
        raise InputTypeError(f"model must be a StudentModel, got {type(model).__name__}")
    _check_solver(solver)
    if n_merges is not None:
        n_merges = integer(n_merges, "n_merges", low=0)
    return _retention_table(schedule, check_lam(lam), model, solver, n_merges)


def _retention_table(schedule: Schedule, lam: np.ndarray, model: StudentModel, solver: str, n_merges: int | None) -> np.ndarray:
    q = _input_variance(schedule, lam, model.input, solver)
    if model.training == "flow":
        eta_tau = model.eta_tau
        if model.budget == "total":
            if n_merges is None:
                raise InputError("budget='total' needs the plan's number of merge nodes (n_merges)")
            eta_tau = eta_tau / max(int(n_merges), 1)
        return _retention("flow", q, eta_tau, None, None)
    # gd: only nodes with input time j >= 2 exist; check stability there
    out = np.ones_like(q)
    out[..., 2:] = _retention("gd", q[..., 2:], None, model.lr, model.gd_steps)
    return out


def ddim_jump_table(schedule: Schedule, lam) -> np.ndarray:
    r"""All single jumps: ``out[..., i, j] = D(j -> i)`` for ``0 <= i <= j <= N`` (0 below the diagonal).

    Parameters
    ----------
    schedule : Schedule
    lam : float or array-like
        Eigenvalue(s) :math:`\lambda \ge 0` (checked).

    Returns
    -------
    ndarray
        Shape ``lam.shape + (N + 1, N + 1)``.
    """
    _check_schedule(schedule)
    return _ddim_jump_table(schedule, check_lam(lam))


def _ddim_jump_table(schedule: Schedule, lam: np.ndarray) -> np.ndarray:
    lam_arr = lam[..., None, None]
    a, s = schedule.alpha, schedule.sigma
    numerator = a[:, None] * a[None, :] * lam_arr + s[:, None] * s[None, :]
    denominator = a[None, :] ** 2 * lam_arr + s[None, :] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):  # only j = 0 with lam = 0 divides by 0
        out = np.triu(np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0))
    idx = np.arange(schedule.steps + 1)
    out[..., idx, idx] = 1.0  # the empty jump
    return out
