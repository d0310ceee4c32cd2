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
from .laws import LAW_NAMES, LAWS, MeasuredTable, NodeFloorTable, _adam_error, _sign_error, check_adam
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
    "input_scale",
    "INPUT_SCALINGS",
    "NodeLaw",
]

INITS = ("warm", "ddim", "zero", "identity")
TRAININGS = LAW_NAMES
#: laws with a step size ``lr`` and a step count ``gd_steps`` per node
STEP_LAWS = ("gd", "adam", "sign")
INPUTS = ("forward", "generated")
INPUT_SCALINGS = ("raw", "preconditioned")
ADAM_DEFAULTS = (0.9, 0.999, 1e-8)
BUDGETS = ("per-merge", "total")
#: integer codes used by the Numba kernels
INIT_CODES = {name: code for code, name in enumerate(INITS)}


@dataclass(frozen=True)
class StudentModel:
    r"""Configuration of the student model (docs/theory.md §4 and §9).

    Parameters
    ----------
    eta_tau : float
        Training budget :math:`\eta\tau > 0` of gradient flow (per merge node, or in total
        with ``budget="total"``).
    init : {"warm", "ddim", "zero", "identity"}
        Student start :math:`a_0`: ``c_1`` (warm start), :math:`D(j\to i)`, 0 or 1.
    training : {"flow", "gd", "adam", "sign", "empirical"}
        The training law of a node (:mod:`opmerge.laws`): gradient flow for time :math:`\tau` at
        rate :math:`\eta`; ``gd_steps`` steps of size ``lr`` of gradient descent, of Adam, or of its
        sign-descent limit; or a measured retention table ``retention_table``.
    input : {"forward", "generated"}
        Input variance :math:`q_j = \|v_j\|^2` (data-driven) or :math:`\|v_N\|^2 T(N\to j)^2` (data-free).
    budget : {"per-merge", "total"}
        ``total`` splits :math:`\eta\tau` evenly over the plan's merge nodes (``flow`` only).
    lr : float, optional
        Step size :math:`\eta` of ``gd``, ``adam`` and ``sign`` (required for them).
    gd_steps : int, optional
        Number of updates :math:`K \ge 1` per node of ``gd``, ``adam`` and ``sign`` (required for them).
    beta1, beta2, eps : float, optional
        Adam's hyper-parameters (``adam`` only; default torch's 0.9, 0.999, 1e-8).
    input_scaling : {"raw", "preconditioned"}
        ``raw``: the student sees :math:`z_j`; ``preconditioned``: it sees :math:`c_{in} z_j` with
        :math:`c_{in} = 1/\sqrt{\sigma_j^2 + \alpha_j^2 \sigma_d^2}` (EDM), so its own input
        variance is :math:`c_{in}^2 q_j` and a step of its parameter moves the gain by
        :math:`c_{in}` times as much.
    sigma_data : float, optional
        :math:`\sigma_d > 0` of ``preconditioned`` (default: the square root of the problem's
        weighted mean eigenvalue).
    retention_table : MeasuredTable, optional
        :math:`r(j, \lambda)` of ``empirical`` (quantity ``"retention"``; required for it; see
        :func:`opmerge.laws.load_retention`).
    step_table : MeasuredTable, optional
        :math:`\kappa(j, \lambda)` of a calibrated ``adam`` or ``sign`` (quantity ``"step_scale"``,
        written by ``opmerge calibrate``): the law runs with step :math:`\kappa\eta` (default 1).
    node_floor : NodeFloorTable, optional
        The approximation floor :math:`\varphi(j, L)` of a merge node of ``L`` steps at input time
        ``j`` (``adam`` or ``sign``; written by ``opmerge calibrate``): a plan's predicted
        :math:`W_2^2` adds the floors of its merge nodes (docs/theory.md §9.7).

    Raises
    ------
    InputTypeError
        For a value of the wrong type (``eta_tau=True``, ``gd_steps=1.5``, ``init=None``).
    InputError
        For a value out of range (``eta_tau <= 0`` or not finite, an unknown choice), a law without
        what it needs (``lr``/``gd_steps``, ``retention_table``) or given what it does not use
        (where it would be silently ignored), and ``budget="total"`` with any law but ``flow``.
    """

    eta_tau: float = 0.5
    init: str = "warm"
    training: str = "flow"
    input: str = "forward"
    budget: str = "per-merge"
    lr: float | None = None
    gd_steps: int | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    input_scaling: str = "raw"
    sigma_data: float | None = None
    retention_table: MeasuredTable | None = None
    step_table: MeasuredTable | None = None
    node_floor: NodeFloorTable | None = None

    def __post_init__(self) -> None:
        for label, allowed in (("init", INITS), ("input", INPUTS), ("budget", BUDGETS), ("input_scaling", INPUT_SCALINGS)):
            choice(getattr(self, label), label, allowed)
        object.__setattr__(self, "eta_tau", real_number(self.eta_tau, "eta_tau", low=0.0, low_open=True))
        training, lr, gd_steps = check_training(self.training, self.lr, self.gd_steps, self.budget)
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "gd_steps", gd_steps)
        adam = (self.beta1, self.beta2, self.eps)
        if training == "adam":
            b1, b2, eps = (default if given is None else given for given, default in zip(adam, ADAM_DEFAULTS))
            b1, b2, eps = check_adam(b1, b2, eps)
            object.__setattr__(self, "beta1", b1)
            object.__setattr__(self, "beta2", b2)
            object.__setattr__(self, "eps", eps)
        elif any(value is not None for value in adam):
            raise InputError("beta1, beta2 and eps only apply to training='adam'; leave them None")
        if self.input_scaling == "preconditioned":
            if self.sigma_data is not None:
                object.__setattr__(self, "sigma_data", real_number(self.sigma_data, "sigma_data", low=0.0, low_open=True))
        elif self.sigma_data is not None:
            raise InputError("sigma_data only applies to input_scaling='preconditioned'; leave it None")
        if training == "empirical":
            if self.retention_table is None:
                raise InputError("training='empirical' needs retention_table (an opmerge.laws.MeasuredTable of quantity 'retention')")
            _check_table(self.retention_table, "retention_table", "retention")
        elif self.retention_table is not None:
            raise InputError("retention_table only applies to training='empirical'; leave it None")
        if self.step_table is not None:
            if training not in ("adam", "sign"):
                raise InputError("step_table only applies to training='adam' or 'sign'; leave it None")
            _check_table(self.step_table, "step_table", "step_scale")
        if self.node_floor is not None:
            if training not in ("adam", "sign"):
                raise InputError("node_floor only applies to training='adam' or 'sign'; leave it None")
            if not isinstance(self.node_floor, NodeFloorTable):
                raise InputError(f"node_floor must be an opmerge.laws.NodeFloorTable, got {type(self.node_floor).__name__}")

    @property
    def linear(self) -> bool:
        """True when the law is linear in the initial error (``flow``, ``gd``, ``empirical``)."""
        return LAWS[self.training].linear

    def to_dict(self) -> dict:
        """The configuration as a JSON-friendly dict (the options added with §9 only when set)."""
        out = {name: getattr(self, name) for name in ("eta_tau", "init", "training", "input", "budget", "lr", "gd_steps")}
        for name in ("beta1", "beta2", "eps", "sigma_data"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.input_scaling != "raw":
            out["input_scaling"] = self.input_scaling
        if self.retention_table is not None:
            out["retention_table"] = self.retention_table.to_dict()
        if self.step_table is not None:
            out["step_table"] = self.step_table.to_dict()
        if self.node_floor is not None:
            out["node_floor"] = self.node_floor.to_dict()
        return out


def _check_table(table: object, name: str, quantity: str) -> None:
    if not isinstance(table, MeasuredTable):
        raise InputError(f"{name} must be an opmerge.laws.MeasuredTable, got {type(table).__name__}")
    if table.quantity != quantity:
        raise InputError(f"{name} must hold the quantity {quantity!r}, got a {table.quantity!r} table")


def check_training(training: object, lr: object = None, gd_steps: object = None, budget: object = "per-merge") -> tuple[str, float | None, int | None]:
    r"""The rule tying ``training`` to ``lr``, ``gd_steps`` and ``budget`` (docs/theory.md §4, §9).

    ``gd``, ``adam`` and ``sign`` need both ``lr > 0`` (finite) and an int ``gd_steps >= 1``;
    ``flow`` and ``empirical`` refuse ``lr`` and ``gd_steps`` (they would be silently ignored:
    flow uses ``eta_tau``, empirical its table). ``budget="total"`` is defined for ``flow`` only.
    The same rule as the command line's ``--training``/``--lr``/``--gd-steps``/``--budget``.

    Parameters
    ----------
    training : {"flow", "gd", "adam", "sign", "empirical"}
    lr : float, optional
    gd_steps : int, optional
    budget : {"per-merge", "total"}

    Returns
    -------
    tuple
        ``(training, lr, gd_steps)`` with ``lr`` as ``float`` and ``gd_steps`` as ``int`` (both
        ``None`` for ``flow`` and ``empirical``).

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
    if training != "flow" and budget == "total":
        raise InputError(f"budget='total' is only defined for training='flow' ({training} has a fixed step count or table per node)")
    if training in STEP_LAWS:
        if lr is None or gd_steps is None:
            missing = " and ".join(name for name, value in (("lr", lr), ("gd_steps", gd_steps)) if value is None)
            raise InputError(f"training={training!r} needs lr (> 0) and gd_steps (>= 1); {missing} missing")
        return training, real_number(lr, "lr", low=0.0, low_open=lr_open), integer(gd_steps, "gd_steps", low=1)
    if lr is not None or gd_steps is not None:
        given = " and ".join(name for name, value in (("lr", lr), ("gd_steps", gd_steps)) if value is not None)
        uses = "eta_tau" if training == "flow" else "its retention_table"
        raise InputError(f"{given} only apply to training='gd', 'adam' or 'sign' (training={training!r} uses {uses}); leave them None")
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
    if training not in ("flow", "gd"):
        raise InputError(f"retention is the closed form of training='flow' or 'gd', got {training!r} "
                         "(adam and sign are not linear: see opmerge.laws; empirical reads its table)")
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


def input_scale(schedule: Schedule, model: StudentModel, sigma_data_sq: float = 1.0) -> np.ndarray:
    r"""The factor :math:`c_j` by which a student's parameter is scaled into a gain, ``j = 0..N``.

    ``raw``: :math:`c_j = 1`; ``preconditioned``: :math:`c_j = c_{in} = 1/\sqrt{\sigma_j^2 + \alpha_j^2 \sigma_d^2}`
    (EDM's input scaling). The student's gain is :math:`a = c_j b` for its parameter :math:`b`,
    so its own input variance is :math:`c_j^2 q_j` and :math:`\eta K` of travel in :math:`b`
    is :math:`c_j \eta K` in :math:`a`.

    Parameters
    ----------
    schedule : Schedule
    model : StudentModel
    sigma_data_sq : float
        :math:`\sigma_d^2 > 0`, used when ``model.sigma_data`` is None.

    Returns
    -------
    ndarray of shape (N + 1,)
    """
    _check_schedule(schedule)
    if not isinstance(model, StudentModel):
        raise InputTypeError(f"model must be a StudentModel, got {type(model).__name__}")
    return _input_scale(schedule, model, real_number(sigma_data_sq, "sigma_data_sq", low=0.0, low_open=True))


def _input_scale(schedule: Schedule, model: StudentModel, sigma_data_sq: float) -> np.ndarray:
    if model.input_scaling == "raw":
        return np.ones(schedule.steps + 1)
    if model.sigma_data is not None:
        sigma_data_sq = model.sigma_data**2
    return 1.0 / np.sqrt(schedule.sigma**2 + schedule.alpha**2 * sigma_data_sq)


def default_sigma_data_sq(lam: np.ndarray, weights: np.ndarray | None = None) -> float:
    r"""Default :math:`\sigma_d^2`: the weighted mean eigenvalue :math:`\sum_i \omega_i\lambda_i / \sum_i \omega_i`
    (1 when that is 0 or there is no weight)."""
    lam = np.atleast_1d(lam)
    w = np.ones_like(lam) if weights is None else np.atleast_1d(weights)
    total = float(np.sum(w))
    mean = float(np.sum(w * lam)) / total if total > 0 else 0.0
    return mean if mean > 0 else 1.0


def effective_input_variance(schedule: Schedule, lam, model: StudentModel, solver: str = "ddim", weights=None) -> np.ndarray:
    r"""The input variance the student's own parameter sees, :math:`c_j^2 q_j`, for ``j = 0..N``.

    :math:`q_j` from :func:`input_variance` and :math:`c_j` from :func:`input_scale` (with
    :math:`\sigma_d^2` the weighted mean of ``lam`` unless ``model.sigma_data`` is set).

    Returns
    -------
    ndarray of shape ``lam.shape + (N + 1,)``
    """
    lam, sigma_data_sq = _check_law_arguments(schedule, lam, model, solver, weights)
    return _effective_input_variance(schedule, lam, model, solver, sigma_data_sq)


def _check_law_arguments(schedule: object, lam: object, model: object, solver: object, weights: object) -> tuple[np.ndarray, float]:
    r"""Check the arguments shared by :func:`effective_input_variance` and :func:`retention_table`;
    returns the checked ``lam`` and the default :math:`\sigma_d^2` of its (weighted) eigenvalues."""
    _check_schedule(schedule)
    if not isinstance(model, StudentModel):
        raise InputTypeError(f"model must be a StudentModel, got {type(model).__name__}")
    _check_solver(solver)
    lam = check_lam(lam)
    if weights is not None:
        weights = nonnegative_array(weights, "weights")
    return lam, default_sigma_data_sq(lam, weights)


def _effective_input_variance(schedule: Schedule, lam: np.ndarray, model: StudentModel, solver: str,
                              sigma_data_sq: float) -> np.ndarray:
    q = _input_variance(schedule, lam, model.input, solver)
    if model.input_scaling == "raw":
        return q
    return q * _input_scale(schedule, model, sigma_data_sq) ** 2


def retention_table(schedule: Schedule, lam, model: StudentModel, solver: str = "ddim", n_merges: int | None = None,
                    weights=None) -> np.ndarray:
    r"""Retention :math:`r_j` for a node with input time ``j = 0..N`` (entry 0 unused) of a linear law.

    ``flow``/``gd``: :func:`retention` of the effective input variance
    (:func:`effective_input_variance`); ``empirical``: the table :math:`r(j, \lambda)`. With
    ``budget="total"`` the per-node budget is :math:`\eta\tau / m`, ``m = n_merges``.

    Parameters
    ----------
    schedule : Schedule
    lam : float or array
        Eigenvalues :math:`\lambda \ge 0`.
    model : StudentModel
        With a linear law (``flow``, ``gd``, ``empirical``).
    solver : {"ddim", "heun"}
    n_merges : int, optional
        The plan's number of merge nodes (needed for ``budget="total"``).
    weights : array, optional
        Weights of ``lam`` for the default :math:`\sigma_d^2` of ``preconditioned`` inputs.

    Returns
    -------
    ndarray of shape ``lam.shape + (N + 1,)``
    """
    lam, sigma_data_sq = _check_law_arguments(schedule, lam, model, solver, weights)
    if n_merges is not None:
        n_merges = integer(n_merges, "n_merges", low=0)
    if not model.linear:
        raise InputError(f"retention_table needs a linear law (flow, gd, empirical), got training={model.training!r}")
    return _retention_table(schedule, lam, model, solver, n_merges, sigma_data_sq)


def _retention_table(schedule: Schedule, lam: np.ndarray, model: StudentModel, solver: str, n_merges: int | None,
                     sigma_data_sq: float = 1.0) -> np.ndarray:
    if model.training == "empirical":
        table = model.retention_table
        if table.steps != schedule.steps:
            raise InputError(f"retention_table was measured for N = {table.steps} steps but the schedule has N = {schedule.steps}")
        return table.at(np.ravel(lam)).reshape(np.shape(lam) + (schedule.steps + 1,))
    q = _effective_input_variance(schedule, lam, model, solver, sigma_data_sq)
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


@dataclass(frozen=True, eq=False)
class NodeLaw:
    r"""The error map of every node input time and direction of one problem, :math:`a = P + F_{ij}(a_0 - P)`.

    Built by :class:`~opmerge.objective.Problem` (validated arrays). For the linear laws
    :math:`F_{ij}(e) = r_{ij} e` (``retention``); for ``sign``
    :math:`F_{ij}(e) = e - \operatorname{clip}(e, \pm c_j \eta K)`; for ``adam``
    :math:`F_{ij}(e) = c_j\, \mathrm{Adam}_K(e / c_j;\ c_j^2 q_{ij})`.

    Attributes
    ----------
    training : str
    retention : (d, N + 1) or None
        Linear laws only.
    q : (d, N + 1)
        Effective input variance :math:`s_{ij}^2 q_{ij}`.
    scale : (d, N + 1)
        :math:`s_{ij} = c_j \kappa_{ij}`: the input scale (:func:`input_scale`) times the calibrated
        step scale of ``step_table`` (1 without one). A step of the student's own parameter moves
        the gain by :math:`s_{ij}` times as much.
    lr, steps, beta1, beta2, eps
        The optimiser (step laws).
    """

    training: str
    retention: np.ndarray | None
    q: np.ndarray
    scale: np.ndarray
    lr: float | None = None
    steps: int | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None

    def travel(self) -> np.ndarray:
        r"""``sign``/``adam``: :math:`s_{ij} \eta K` per direction and input time, shape (d, N + 1)."""
        return self.scale * (self.lr * self.steps)

    def error(self, error: np.ndarray, top: int) -> np.ndarray:
        r""":math:`F(e)` for a node with input time ``top``, per direction (``error`` of shape (d,))."""
        if self.retention is not None:
            return self.retention[:, top] * error
        c = self.scale[:, top]
        if self.training == "sign":
            return _sign_error(error, c * (self.lr * self.steps))
        return c * _adam_error(error / c, self.q[:, top], self.lr, self.steps, self.beta1, self.beta2, self.eps)


def _node_law(schedule: Schedule, lam: np.ndarray, model: StudentModel, solver: str, sigma_data_sq: float) -> NodeLaw:
    """The :class:`NodeLaw` of a validated problem (``per-merge`` budget)."""
    scale = np.broadcast_to(_input_scale(schedule, model, sigma_data_sq), (lam.size, schedule.steps + 1)).copy()
    if model.step_table is not None:
        table = model.step_table
        if table.steps != schedule.steps:
            raise InputError(f"step_table was measured for N = {table.steps} steps but the schedule has N = {schedule.steps}")
        scale = scale * table.at(lam)
    q = _input_variance(schedule, lam, model.input, solver) * scale**2
    retention = _retention_table(schedule, lam, model, solver, 1, sigma_data_sq) if model.linear else None
    return NodeLaw(model.training, retention, q, scale, model.lr, model.gd_steps, model.beta1, model.beta2, model.eps)


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
