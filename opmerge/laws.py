r"""Training laws of one merge node: the error map :math:`F` (docs/theory.md §4 and §9).

A student trained from :math:`a_0` toward its target :math:`P` on the exact loss
:math:`q\,(a - P)^2` ends at

.. math:: a = P + F(a_0 - P),

where the *error map* :math:`F` depends on the optimiser and on the input variance :math:`q`:

* ``flow`` and ``gd`` are linear, :math:`F(e) = r\,e` with the retention :math:`r` of
  :func:`opmerge.model.retention`;
* ``empirical`` is linear too, with :math:`r(j, \lambda)` read from measured runs
  (:class:`MeasuredTable`);
* ``adam`` is torch's Adam on the scalar loss, ``K`` steps (:func:`adam_error`): no closed form,
  the recursion is the law;
* ``sign`` is Adam's small-step limit, a soft threshold (:func:`sign_error`):

  .. math:: F(e) = \operatorname{sign}(e)\,\max(|e| - \eta K, 0).

Each law declares its properties (:data:`LAWS`): whether it is linear and whether the node value
is non-decreasing in every child, which the interval dynamic program and the branch and bound
rely on for exact ranges; the tests measure both.

References
----------
D. P. Kingma, J. Ba, "Adam: A method for stochastic optimization", ICLR 2015.
L. Balles, P. Hennig, "Dissecting Adam: the sign, magnitude and variance of stochastic
gradients", ICML 2018 (Adam as a sign method).
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass

import numpy as np
from numba import njit

from ._validate import choice, integer, nonnegative_array, real_array, real_number
from .errors import InputError, InputTypeError

__all__ = [
    "LAW_NAMES",
    "LawProperties",
    "LAWS",
    "adam_error",
    "adam_error_reference",
    "sign_error",
    "adam_sign_gap",
    "MeasuredTable",
    "TABLE_QUANTITIES",
    "load_table",
    "load_retention",
    "NodeFloorTable",
]

LAW_NAMES = ("flow", "gd", "adam", "sign", "empirical")


@dataclass(frozen=True)
class LawProperties:
    """What a training law guarantees (measured by the tests).

    Attributes
    ----------
    name : str
    linear : bool
        :math:`F(e) = r\\,e` for a retention ``r`` that does not depend on ``e``.
    monotone : str
        When the node value is non-decreasing in every child (for non-negative values):
        ``"always"``, ``"if 0 <= r <= 1"`` or ``"no"``.
    exact_solver : bool
        Whether :func:`opmerge.solvers.solve` certifies its optimum for this law (``exact`` can be
        true); for ``adam`` the bound comes from a tabulated envelope and ``exact`` is always false.
    """

    name: str
    linear: bool
    monotone: str
    exact_solver: bool


LAWS = {
    "flow": LawProperties("flow", True, "always", True),
    "gd": LawProperties("gd", True, "if 0 <= r <= 1", True),
    "empirical": LawProperties("empirical", True, "if 0 <= r <= 1", True),
    "sign": LawProperties("sign", False, "always", True),
    "adam": LawProperties("adam", False, "no", False),
}


# ---------------------------------------------------------------------------------------------
# adam
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _adam_error_kernel(error, q, lr, steps, beta1, beta2, eps, out):  # pragma: no cover - compiled
    """Elementwise Adam recursion on ``q (a - P)^2`` for contiguous float64 arrays (see :func:`adam_error`)."""
    for n in range(error.shape[0]):
        e = error[n]
        two_q = 2.0 * q[n]
        m = 0.0
        v = 0.0
        for k in range(1, steps + 1):
            g = two_q * e
            m = beta1 * m + (1.0 - beta1) * g
            v = beta2 * v + (1.0 - beta2) * (g * g)
            bias1 = 1.0 - beta1**k
            bias2 = 1.0 - beta2**k
            denominator = math.sqrt(v) / math.sqrt(bias2) + eps
            if denominator > 0.0:  # 0 only with eps = 0 and every gradient 0 (then m = 0: no step)
                e = e - (lr / bias1) * (m / denominator)
        out[n] = e


def adam_error_reference(error: float, q: float, lr: float, steps: int, beta1: float = 0.9, beta2: float = 0.999,
                         eps: float = 1e-8) -> float:
    r"""Plain-Python reference of :func:`adam_error` for one scalar (the kernel's definition).

    .. math::
        g_k &= 2 q e_k, \quad m_k = \beta_1 m_{k-1} + (1 - \beta_1) g_k, \quad
        v_k = \beta_2 v_{k-1} + (1 - \beta_2) g_k^2, \\
        e_{k+1} &= e_k - \frac{\eta}{1 - \beta_1^k}\,\frac{m_k}{\sqrt{v_k}/\sqrt{1 - \beta_2^k} + \epsilon}.
    """
    e, m, v = float(error), 0.0, 0.0
    for k in range(1, int(steps) + 1):
        g = 2.0 * q * e
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        denominator = math.sqrt(v) / math.sqrt(1.0 - beta2**k) + eps
        if denominator > 0.0:
            e = e - (lr / (1.0 - beta1**k)) * (m / denominator)
    return e


def _adam_error(error: np.ndarray, q: np.ndarray, lr: float, steps: int, beta1: float, beta2: float, eps: float) -> np.ndarray:
    """:func:`adam_error` on validated, broadcastable arrays."""
    error, q = np.broadcast_arrays(np.asarray(error, dtype=np.float64), np.asarray(q, dtype=np.float64))
    shape = error.shape
    flat_e = np.ascontiguousarray(error.reshape(-1))
    flat_q = np.ascontiguousarray(q.reshape(-1))
    out = np.empty_like(flat_e)
    _adam_error_kernel(flat_e, flat_q, float(lr), int(steps), float(beta1), float(beta2), float(eps), out)
    return out.reshape(shape)


def check_adam(beta1: object, beta2: object, eps: object) -> tuple[float, float, float]:
    """Validated Adam hyper-parameters: ``0 <= beta1 < 1``, ``0 <= beta2 < 1``, ``eps >= 0`` (finite)."""
    b1 = real_number(beta1, "beta1", low=0.0)
    b2 = real_number(beta2, "beta2", low=0.0)
    for name, value in (("beta1", b1), ("beta2", b2)):
        if not value < 1.0:
            raise InputError(f"{name} must be in [0, 1), got {value!r}")
    return b1, b2, real_number(eps, "eps", low=0.0)


def adam_error(error, q, *, lr: float, steps: int, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> np.ndarray:
    r"""The error :math:`e_K = a_K - P` after ``steps`` Adam updates on :math:`q (a - P)^2` from :math:`e_0`.

    torch's ``Adam`` (no weight decay, no AMSGrad) on one scalar parameter with the exact
    population loss of a diagonal student; Adam acts per coordinate, so this is exact for every
    diagonal student:

    .. math::
        g_k = 2 q e_k,\quad m_k = \beta_1 m_{k-1} + (1 - \beta_1) g_k,\quad
        v_k = \beta_2 v_{k-1} + (1 - \beta_2) g_k^2,\quad
        e_{k+1} = e_k - \frac{\eta}{1 - \beta_1^k}\,\frac{m_k}{\sqrt{v_k / (1 - \beta_2^k)} + \epsilon}

    with :math:`m_0 = v_0 = 0`. There is no closed form; Numba kernel, plain-Python reference
    :func:`adam_error_reference`.

    Parameters
    ----------
    error : float or array
        Initial errors :math:`e_0 = a_0 - P`.
    q : float or array (broadcast with ``error``)
        Input variances :math:`q \ge 0`.
    lr : float
        Step size :math:`\eta > 0`.
    steps : int
        Number of updates :math:`K \ge 1`.
    beta1, beta2 : float
        Moment decay rates in ``[0, 1)``.
    eps : float
        :math:`\epsilon \ge 0`.

    Returns
    -------
    ndarray
        :math:`e_K`, the broadcast shape of ``error`` and ``q``.
    """
    error = real_array(error, "error")
    if not np.all(np.isfinite(error)):
        raise InputError("error must be finite (allowed range (-inf, inf))")
    q = nonnegative_array(q, "q")
    lr = real_number(lr, "lr", low=0.0, low_open=True)
    steps = integer(steps, "steps", low=1)
    b1, b2, eps = check_adam(beta1, beta2, eps)
    try:
        np.broadcast_shapes(error.shape, q.shape)
    except ValueError:
        raise InputError(f"error {error.shape} and q {q.shape} must broadcast to one shape") from None
    return _adam_error(error, q, lr, steps, b1, b2, eps)


# ---------------------------------------------------------------------------------------------
# sign
# ---------------------------------------------------------------------------------------------
def _sign_error(error, travel):
    """:func:`sign_error` on validated arrays: ``error - clip(error, -travel, travel)``."""
    return error - np.clip(error, -travel, travel)


def sign_error(error, travel) -> np.ndarray:
    r"""The sign-descent law: every coordinate travels ``travel`` :math:`= \eta K` toward its target.

    .. math:: F(e) = \operatorname{sign}(e)\,\max(|e| - \eta K, 0) = e - \operatorname{clip}(e, -\eta K, \eta K),

    a soft threshold of the initial error that does not depend on the input variance. It is
    Adam's small-step limit: for :math:`\eta K \ll |e_0|` the gradient hardly changes over the
    run, so :math:`\hat m_k / \sqrt{\hat v_k} = \operatorname{sign}(g)` and every update has size
    :math:`\eta` (measured by the tests).

    Parameters
    ----------
    error : float or array
        Initial errors :math:`e_0`.
    travel : float or array (broadcast)
        :math:`\eta K \ge 0`.

    Returns
    -------
    ndarray
    """
    error = real_array(error, "error")
    if not np.all(np.isfinite(error)):
        raise InputError("error must be finite (allowed range (-inf, inf))")
    travel = nonnegative_array(travel, "travel")
    return _sign_error(error, travel)


def adam_sign_gap(steps: int, beta1: float = 0.9, beta2: float = 0.999, points: int = 4001) -> float:
    r"""Largest :math:`|F_{adam}(e) - F_{sign}(e)|` in units of the step :math:`\eta`, over a grid.

    With :math:`\epsilon = 0` Adam is scale-covariant: :math:`F_{adam}(e; \eta) = \eta\,\Phi_K(e/\eta)`,
    and so is the soft threshold, so one table in units of :math:`\eta` serves every step size
    and input variance. The grid is :math:`x = e/\eta \in [0, 4K]` (both maps are odd; beyond
    :math:`4K` the gradient changes little over the run and the gap shrinks). The solver widens
    the sign law's node ranges by this gap for ``adam`` (a tabulated envelope, so it reports
    ``exact = False``).

    Parameters
    ----------
    steps : int
    beta1, beta2 : float
    points : int

    Returns
    -------
    float
    """
    steps = integer(steps, "steps", low=1)
    b1, b2, _ = check_adam(beta1, beta2, 0.0)
    return _adam_sign_gap(steps, b1, b2, integer(points, "points", low=2))


@functools.lru_cache(maxsize=64)
def _adam_sign_gap(steps: int, b1: float, b2: float, points: int) -> float:
    """:func:`adam_sign_gap` on validated arguments, kept per argument set (the range tables and the
    search of one solve both need it)."""
    x = np.linspace(0.0, 4.0 * steps, points)
    adam = _adam_error(x, np.ones_like(x), 1.0, steps, b1, b2, 0.0)
    gap = np.abs(adam - _sign_error(x, float(steps)))
    # grid spacing: between points each map moves by at most its slope bound (Adam's <= one step per update)
    spacing = x[1] - x[0]
    return float(np.max(gap) + 2.0 * spacing)


# ---------------------------------------------------------------------------------------------
# empirical
# ---------------------------------------------------------------------------------------------
#: what a :class:`MeasuredTable` may hold
TABLE_QUANTITIES = ("retention", "step_scale")


@dataclass(frozen=True, eq=False)
class MeasuredTable:
    r"""A table :math:`x(j, \lambda)` measured on real students, over input times ``j`` and eigenvalues.

    Two quantities use it:

    * ``"retention"`` — :math:`r(j, \lambda)` of ``training="empirical"``: the node value is
      :math:`a = P + (a_0 - P)\, r(j, \lambda)`;
    * ``"step_scale"`` — :math:`\kappa(j, \lambda) > 0` of a calibrated ``adam`` or ``sign``: one update
      moves the student's gain :math:`\kappa` times as far as it moves one scalar parameter (a
      network moves many parameters at once), so the law runs with step :math:`\kappa\eta`
      (written by ``opmerge calibrate``).

    Values are interpolated linearly in :math:`\log\lambda` between the table's columns and held
    constant beyond its first and last column.

    Parameters
    ----------
    steps : int
        The teacher's ``N`` the table was measured for.
    lam : sequence of float
        Strictly increasing eigenvalues :math:`\lambda > 0` (the columns).
    values : array of shape (N + 1, len(lam))
        :math:`x(j, \lambda)`; rows 0 and 1 are unused (no node has input time below 2) and may be NaN.
    source : str
        Where the table came from (free text, kept in the provenance).
    quantity : {"retention", "step_scale"}
    """

    steps: int
    lam: tuple
    values: np.ndarray
    source: str = ""
    quantity: str = "retention"

    def __post_init__(self) -> None:
        choice(self.quantity, "quantity", TABLE_QUANTITIES)
        steps = integer(self.steps, "steps", low=1)
        lam = real_array(self.lam, "lam")
        if lam.ndim != 1 or lam.size == 0:
            raise InputError(f"lam must be a non-empty 1-D list of eigenvalues, got shape {lam.shape}")
        if not (np.all(np.isfinite(lam)) and np.all(lam > 0) and np.all(np.diff(lam) > 0)):
            raise InputError("lam must be finite, > 0 and strictly increasing")
        values = real_array(self.values, "values")
        if values.shape != (steps + 1, lam.size):
            raise InputError(f"values must have shape (steps + 1, len(lam)) = {(steps + 1, lam.size)}, got {values.shape}")
        used = values[2:]
        if not np.all(np.isfinite(used)):
            raise InputError("values must be finite in rows 2..N (input times of merge nodes)")
        if self.quantity == "step_scale" and not np.all(used > 0):
            raise InputError("a step_scale table must be > 0 in rows 2..N")
        if not isinstance(self.source, str):
            raise InputTypeError(f"source must be a str, got {type(self.source).__name__}")
        values = np.array(values, dtype=np.float64)
        values.setflags(write=False)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "lam", tuple(float(x) for x in lam))
        object.__setattr__(self, "values", values)

    def at(self, lam) -> np.ndarray:
        r""":math:`x(j, \lambda)` for every ``j = 0..N`` and the given eigenvalues: shape ``(len(lam), N + 1)``.

        Linear in :math:`\log\lambda` between columns, constant beyond the ends; rows 0 and 1 are 1.
        """
        lam = np.atleast_1d(nonnegative_array(lam, "lam")).astype(np.float64)
        grid = np.log(np.asarray(self.lam))
        x = np.log(np.maximum(lam, np.finfo(np.float64).tiny))
        out = np.ones((lam.size, self.steps + 1))
        for j in range(2, self.steps + 1):
            out[:, j] = np.interp(x, grid, self.values[j])
        return out

    def to_dict(self) -> dict:
        """JSON-friendly form (``values`` rows 0 and 1 as ``null``)."""
        rows = [[None if not np.isfinite(v) else float(v) for v in row] for row in self.values]
        return {"quantity": self.quantity, "steps": self.steps, "lam": list(self.lam), "values": rows, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> "MeasuredTable":
        """Inverse of :meth:`to_dict` (``null`` entries become NaN; ``quantity`` defaults to ``"retention"``)."""
        if not isinstance(data, dict):
            raise InputTypeError(f"a retention table must be a JSON object, got {type(data).__name__}")
        missing = [k for k in ("steps", "lam", "values") if k not in data]
        if missing:
            raise InputError(f"retention table lacks {', '.join(missing)}")
        values = np.array([[np.nan if v is None else v for v in row] for row in data["values"]], dtype=np.float64) \
            if isinstance(data["values"], list) else data["values"]
        return cls(steps=data["steps"], lam=data["lam"], values=values, source=str(data.get("source", "")),
                   quantity=data.get("quantity", "retention"))


@dataclass(frozen=True, eq=False)
class NodeFloorTable:
    r"""The approximation floor :math:`\varphi(j, L) \ge 0` of a merge node, measured on real students.

    A network student that merges ``L`` teacher steps from input time ``j`` into one update cannot
    represent the teacher's composite exactly (the composite of a nonlinear teacher is not a
    one-step map of the student's family): whatever its training, it leaves an error that the
    linear per-direction model does not see. ``varphi(j, L)`` is that error carried to the plan's
    output, in units of squared W2; a plan's predicted W2 adds the floors of its merge nodes
    (docs/theory.md §9.7):

    .. math:: W_2^2(\text{plan}) = \sum_i s_i\,(S_i - g_i)^2 + \sum_{\nu\ \text{merge node}} \varphi(j_\nu, L_\nu).

    Written by ``opmerge calibrate`` from pilot merges (:func:`opmerge.calibration.floor_table`).

    Parameters
    ----------
    steps : int
        The teacher's ``N``.
    values : array of shape (N + 1, N + 1)
        ``values[j, L]`` for ``2 <= L <= j <= N``: finite and ``>= 0``; other entries are unused
        (NaN in the JSON form's ``null``).
    source : str
        Where the table came from (free text).
    """

    steps: int
    values: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        steps = integer(self.steps, "steps", low=2)
        values = real_array(self.values, "values")
        if values.shape != (steps + 1, steps + 1):
            raise InputError(f"values must have shape (steps + 1, steps + 1) = {(steps + 1, steps + 1)}, got {values.shape}")
        used = values[self.mask(steps)]
        if not (np.all(np.isfinite(used)) and np.all(used >= 0.0)):
            raise InputError("values[j, L] must be finite and >= 0 for 2 <= L <= j <= N")
        if not isinstance(self.source, str):
            raise InputTypeError(f"source must be a str, got {type(self.source).__name__}")
        values = np.where(self.mask(steps), values, np.nan)
        values.setflags(write=False)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "values", values)

    @staticmethod
    def mask(steps: int) -> np.ndarray:
        """The used entries: ``True`` at ``[j, L]`` with ``2 <= L <= j <= steps``."""
        j, length = np.meshgrid(np.arange(steps + 1), np.arange(steps + 1), indexing="ij")
        return (length >= 2) & (length <= j)

    def by_interval(self) -> np.ndarray:
        """The floor of a node over ``j -> i`` as ``[i, j]`` (shape (N + 1, N + 1); 0 where ``j - i < 2``)."""
        n = self.steps
        out = np.zeros((n + 1, n + 1))
        for j in range(2, n + 1):
            for i in range(0, j - 1):
                out[i, j] = self.values[j, j - i]
        return out

    def to_dict(self) -> dict:
        """JSON-friendly form (unused entries as ``null``)."""
        rows = [[None if not np.isfinite(v) else float(v) for v in row] for row in self.values]
        return {"quantity": "node_floor", "steps": self.steps, "values": rows, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> "NodeFloorTable":
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict):
            raise InputTypeError(f"a node-floor table must be a JSON object, got {type(data).__name__}")
        missing = [k for k in ("steps", "values") if k not in data]
        if missing:
            raise InputError(f"node-floor table lacks {', '.join(missing)}")
        if data.get("quantity", "node_floor") != "node_floor":
            raise InputError(f"not a node-floor table (quantity {data.get('quantity')!r})")
        values = np.array([[np.nan if v is None else v for v in row] for row in data["values"]], dtype=np.float64) \
            if isinstance(data["values"], list) else data["values"]
        return cls(steps=data["steps"], values=values, source=str(data.get("source", "")))


def load_table(path: str | os.PathLike, quantity: str = "retention") -> MeasuredTable:
    """Read a :class:`MeasuredTable` of ``quantity`` from JSON: the table itself, or a cost-model file
    (``opmerge calibrate``) whose ``"retention"`` / ``"step_scale"`` entry holds it.

    Raises
    ------
    InputError
        When the file cannot be read, does not hold such a table, or holds another quantity (the
        message names the file).
    """
    choice(quantity, "quantity", TABLE_QUANTITIES)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read a {quantity} table from {os.fspath(path)!r}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get(quantity), dict):
        data = data[quantity]
    try:
        table = MeasuredTable.from_dict(data)
    except (InputError, InputTypeError) as exc:
        raise InputError(f"{os.fspath(path)!r}: {exc}") from None
    if table.quantity != quantity:
        raise InputError(f"{os.fspath(path)!r} holds a {table.quantity} table, not a {quantity} table")
    return table


def load_retention(path: str | os.PathLike) -> MeasuredTable:
    """:func:`load_table` of a ``"retention"`` table (``training="empirical"``)."""
    return load_table(path, "retention")
