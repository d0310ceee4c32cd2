r"""Calibration of a training law on pilot distillations, and the cost model it writes (docs/calibration.md).

A network trained by Adam moves many parameters at once, so one update moves its gain further than
one update moves one scalar parameter. The calibrated law keeps Adam's (or sign descent's) shape and
measures that factor: the node value is :math:`a = P + F(a_0 - P)` with the law run at step
:math:`\kappa(j, \lambda)\,\eta` (docs/theory.md §9, ``step_table``).

:math:`\kappa` is measured on **pilots**: single merges of a few lengths ``L`` at a few input times
``j``, whose children are all teacher steps, so that the start error :math:`e_0 = A_j - P` with
:math:`P = A_{j-L+1} \cdots A_j` is known exactly; the pilot's trained gain gives the end error
:math:`e_K`. Per input time and direction,

.. math:: \kappa^\star(j, \lambda) = \arg\min_{\kappa} \sum_{L,\,\text{seeds}} \big(F^{\text{sign}}_\kappa(e_0) - e_K\big)^2 ,

searched on a log grid (the objective is flat once every pilot converges: then the smallest
minimiser is a lower bound and the entry is marked *censored*; it is replaced by the interpolation
in :math:`\log\lambda` of the same time's entries that are not censored, when that is larger).
The fit always uses the sign
law, for ``adam`` too: sign descent's misfit is unimodal in :math:`\kappa`, while Adam's oscillates
(its momentum overshoots by amounts that depend on :math:`\kappa` non-monotonically), so a free
Adam fit lands on spurious minima at :math:`\kappa` of 10^2–10^3 that fit the pilots' noise
(measured on the ranking study's pilots; docs/calibration.md). Between pilot times
:math:`\kappa` is interpolated linearly in ``j`` and held constant beyond them. Pilots are plans with
several segments (a merge, teacher steps, another merge), never the plans a study compares.

**Node floors** (nonlinear teachers, network students; docs/calibration.md §4). A pilot plan with a
single merge of ``L`` steps at time ``j`` and teacher steps elsewhere (:func:`single_merge_plans`)
is measured end to end: its :math:`W_2` to the teacher's samples and the part of it that its
per-direction gains carry. What the gains do not carry is the node's approximation floor
(:func:`floor_points`),

.. math:: \varphi(j, L) = \max\big(W_2^2 - W_{2,\text{gain}}^2,\ 0\big),

and :func:`floor_table` spreads the measured points over every ``(j, L)``: linear in
:math:`\log L` between measured lengths, a power law through the last two beyond them (exponent
clipped to ``[0, 4]``), made non-decreasing in ``L`` (a running maximum: merging more steps is never
assumed easier to represent), linear in ``j`` between pilot times and constant beyond them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from ._validate import choice, integer, real_number
from .errors import InputError, InputTypeError
from .laws import MeasuredTable, NodeFloorTable, _adam_error, _sign_error, check_adam
from .model import StudentModel
from .plans import MergeNode, Plan, parse_plan

__all__ = ["CALIBRATED_LAWS", "PilotNode", "pilot_plans", "single_merge_plans", "fit_step_scale", "floor_points", "floor_table", "CostModel",
           "load_cost_model"]

#: laws whose step scale can be calibrated
CALIBRATED_LAWS = ("adam", "sign")
#: the search grid of the step scale (log-spaced)
KAPPA_GRID = np.geomspace(1e-3, 1e4, 281)


@dataclass(frozen=True)
class PilotNode:
    r"""One measured pilot node in one direction.

    Attributes
    ----------
    top : int
        Input time ``j``.
    length : int
        Teacher steps merged, ``L >= 2``.
    lam : float
        The direction's eigenvalue.
    error_start, error_end : float
        :math:`e_0 = a_0 - P` (exact) and :math:`e_K = a_K - P` (measured).
    scale : float
        The input scale :math:`c_j` of the law (1 for raw inputs).
    q : float
        The input variance :math:`c_j^2 q_j` (enters Adam through :math:`\epsilon` only).
    seed : int
    """

    top: int
    length: int
    lam: float
    error_start: float
    error_end: float
    scale: float = 1.0
    q: float = 1.0
    seed: int = 0


def pilot_plans(steps: int, lengths: tuple = (2, 3), times: tuple | None = None) -> list[Plan]:
    r"""Pilot plans: disjoint single merges of every length at every pilot time, teacher steps elsewhere.

    Plan ``k`` puts the merge of length ``lengths[(k + t) % len(lengths)]`` at pilot time
    ``times[t]``, so that over ``len(lengths)`` plans every (time, length) pair is run once. Pilot
    times default to ``N`` and ``ceil(N / 2)`` when every length fits at both (``N >= 2 max(L)``),
    else ``N`` alone; a merge of length ``L`` at time ``j`` covers ``j -> j - L`` and must not
    overlap the next pilot time.

    Parameters
    ----------
    steps : int
        ``N >= 3``.
    lengths : tuple of int
        Merge lengths, each ``>= 2``.
    times : tuple of int, optional
        Decreasing input times in ``[2, N]``.

    Returns
    -------
    list of Plan
    """
    steps = integer(steps, "steps", low=3)
    lengths = tuple(integer(v, "lengths", low=2) for v in lengths)
    if not lengths:
        raise InputError("lengths must hold at least one merge length >= 2")
    if times is None:  # N and ceil(N / 2) when every length fits at both, else N alone
        lower = (steps + 1) // 2
        fits = steps - max(lengths) >= lower and lower >= max(lengths)
        times = (steps, lower) if fits and lower < steps else (steps,)
    times = tuple(integer(v, "times", low=2, high=steps) for v in times)
    if list(times) != sorted(set(times), reverse=True):
        raise InputError(f"times must be strictly decreasing, got {times}")
    plans = []
    for k in range(len(lengths)):
        chosen = [(j, lengths[(k + t) % len(lengths)]) for t, j in enumerate(times)]
        segments: list = []
        n = steps
        for j, length in chosen:
            if j - length < 0 or (segments and n < j):
                raise InputError(f"a merge of {length} steps at time {j} does not fit between the pilot times {times} of N = {steps}")
            while n > j:
                segments.append(n)
                n -= 1
            if any(j - length < other < j for other, _ in chosen):
                raise InputError(f"a merge of {length} steps at time {j} overlaps another pilot time ({times})")
            segments.append(MergeNode(tuple(range(j, j - length, -1))))
            n = j - length
        while n > 0:
            segments.append(n)
            n -= 1
        plans.append(Plan(tuple(segments)))
    return plans


def single_merge_plans(steps: int, lengths: tuple, times: tuple) -> list[Plan]:
    r"""One plan per pilot time ``j`` and length ``L <= j``: the merge of ``j -> j - L`` and teacher steps elsewhere.

    Parameters
    ----------
    steps : int
        ``N >= 2``.
    lengths : tuple of int
        Merge lengths, each ``>= 2``.
    times : tuple of int
        Input times in ``[2, N]``.

    Returns
    -------
    list of Plan
        Ordered by time (as given), then length; pairs with ``L > j`` are skipped.
    """
    steps = integer(steps, "steps", low=2)
    lengths = tuple(integer(v, "lengths", low=2) for v in lengths)
    times = tuple(integer(v, "times", low=2, high=steps) for v in times)
    if not lengths or not times:
        raise InputError("lengths and times must each hold at least one value")
    plans = []
    for j in times:
        for length in lengths:
            if length > j:
                continue
            segments = list(range(steps, j, -1)) + [MergeNode(tuple(range(j, j - length, -1)))] + list(range(j - length, 0, -1))
            plans.append(Plan(tuple(segments)))
    if not plans:
        raise InputError(f"no merge length of {lengths} fits at the pilot times {times}")
    return plans


def floor_points(steps: int, measured: list) -> list[dict]:
    r"""The node floor of each measured single-merge pilot: what its per-direction gains do not carry,

    .. math:: \varphi(j, L) = \max\big(W_{2}^2 - W_{2,\text{gain}}^2,\ 0\big),

    with :math:`W_2` the pilot plan's distance to the teacher's samples and :math:`W_{2,\text{gain}}`
    the part its measured gains carry, :math:`\sqrt{\sum_i \|v_{N,i}\|^2 (g_i - g^T_i)^2}` (both measured:
    the law is not involved, so the split does not depend on how well the law fits).

    Parameters
    ----------
    steps : int
        The teacher's ``N``.
    measured : list of (str, float, float)
        Pilot plan text (exactly one merge node), its :math:`W_2` and its :math:`W_{2,\text{gain}}`.

    Returns
    -------
    list of dict
        ``plan``, ``top``, ``length``, ``w2``, ``w2_gain``, ``floor``.
    """
    steps = integer(steps, "steps", low=2)
    out = []
    for text, w2, w2_gain in measured:
        plan = parse_plan(text, steps)
        if plan.n_merges != 1:
            raise InputError(f"a floor pilot must hold exactly one merge node, got {text!r}")
        w2, w2_gain = real_number(w2, "w2", low=0.0), real_number(w2_gain, "w2_gain", low=0.0)
        node = plan.merge_nodes()[0]
        out.append({"plan": text, "top": node.top, "length": node.top - node.bottom, "w2": w2, "w2_gain": w2_gain,
                    "floor": max(w2 * w2 - w2_gain * w2_gain, 0.0)})
    return out


def floor_table(points: list, steps: int, source: str = "") -> NodeFloorTable:
    r"""Spread measured node floors over every ``(j, L)`` (module docstring).

    Parameters
    ----------
    points : list of (j, L, varphi)
        Measured floors (``varphi >= 0``); several at one ``(j, L)`` are averaged.
    steps : int
        The teacher's ``N``.
    source : str
        Kept in the table.

    Returns
    -------
    NodeFloorTable
    """
    steps = integer(steps, "steps", low=2)
    if not points:
        raise InputError("points must hold at least one measured floor (j, L, varphi)")
    by_key: dict = {}
    for j, length, value in points:
        j = integer(j, "j", low=2, high=steps)
        length = integer(length, "L", low=2, high=j)
        by_key.setdefault((j, length), []).append(real_number(value, "varphi", low=0.0))
    times = sorted({j for j, _ in by_key})
    lengths_all = np.arange(steps + 1, dtype=np.float64)
    per_time = np.zeros((len(times), steps + 1))
    for a, j in enumerate(times):
        ls = sorted(length for jj, length in by_key if jj == j)
        vs = np.array([float(np.mean(by_key[j, length])) for length in ls])
        x = np.log(np.asarray(ls, dtype=np.float64))
        row = np.interp(np.log(np.maximum(lengths_all, 1.0)), x, vs)
        if len(ls) >= 2 and vs[-1] > 0 and vs[-2] > 0:  # power law through the last two beyond the longest
            exponent = float(np.clip(np.log(vs[-1] / vs[-2]) / (x[-1] - x[-2]), 0.0, 4.0))
            beyond = lengths_all > ls[-1]
            row[beyond] = vs[-1] * (lengths_all[beyond] / ls[-1]) ** exponent
        per_time[a] = np.maximum.accumulate(row)  # a longer merge is never easier to represent
    values = np.full((steps + 1, steps + 1), np.nan)
    for j in range(2, steps + 1):
        row = np.array([np.interp(j, times, per_time[:, length]) for length in range(steps + 1)])
        values[j, 2:j + 1] = row[2:j + 1]
    return NodeFloorTable(steps=steps, values=values, source=source)


def _law_error(law: str, error0: np.ndarray, kappa: float, scale: np.ndarray, q: np.ndarray, lr: float, gd_steps: int,
               betas: tuple) -> np.ndarray:
    """:math:`F(e_0)` of ``law`` at step :math:`\\kappa\\eta`, in gain units (input scale ``scale``)."""
    s = scale * kappa
    if law == "sign":
        return _sign_error(error0, s * (lr * gd_steps))
    return s * _adam_error(error0 / s, q * s**2, lr, gd_steps, *betas)


def _best_kappa(law, nodes, lr, gd_steps, betas) -> tuple[float, bool, float]:
    """Smallest minimiser of the misfit on :data:`KAPPA_GRID`, whether it is censored, and the misfit."""
    e0 = np.array([n.error_start for n in nodes])
    ek = np.array([n.error_end for n in nodes])
    sc = np.array([n.scale for n in nodes])
    q = np.array([n.q for n in nodes])
    misfit = np.array([np.sum((_law_error(law, e0, k, sc, q, lr, gd_steps, betas) - ek) ** 2) for k in KAPPA_GRID])
    best = float(np.min(misfit))
    # flat objective (every pilot converged): every kappa above some value fits equally well
    flat = misfit <= best * (1.0 + 1e-6) + 1e-300
    index = int(np.argmax(flat))
    censored = bool(flat[-1]) and index < len(KAPPA_GRID) - 1
    return float(KAPPA_GRID[index]), censored, best


def fit_step_scale(nodes: list, law: str, lr: float, gd_steps: int, steps: int, *, beta1: float = 0.9, beta2: float = 0.999,
                   eps: float = 1e-8, source: str = "") -> tuple[MeasuredTable, dict]:
    r"""Fit :math:`\kappa(j, \lambda)` to pilot nodes (see the module docstring).

    Parameters
    ----------
    nodes : list of PilotNode
    law : {"adam", "sign"}
    lr, gd_steps : float, int
        The recipe's step size and updates per node.
    steps : int
        The teacher's ``N``.
    beta1, beta2, eps : float
        Adam's hyper-parameters (``adam``).
    source : str
        Kept in the table.

    Returns
    -------
    table : MeasuredTable
        Quantity ``"step_scale"``, columns the pilots' eigenvalues.
    report : dict
        Per pilot time and eigenvalue: ``kappa``, ``censored``, the squared misfits of the sign fit
        and of ``law`` at that scale (``misfit_sign``, ``misfit_law``), and the per-seed fits
        ``kappa_seeds`` (their spread is the uncertainty).
    """
    choice(law, "law", CALIBRATED_LAWS)
    lr = real_number(lr, "lr", low=0.0, low_open=True)
    gd_steps = integer(gd_steps, "gd_steps", low=1)
    steps = integer(steps, "steps", low=2)
    betas = check_adam(beta1, beta2, eps) if law == "adam" else (0.9, 0.999, 0.0)
    fit_law = "sign"  # see the module docstring: the scale is fitted with the sign law for both laws
    if not nodes or not all(isinstance(n, PilotNode) for n in nodes):
        raise InputTypeError("nodes must be a non-empty list of PilotNode")
    lams = sorted({float(n.lam) for n in nodes})
    times = sorted({int(n.top) for n in nodes})
    kappa = np.full((len(times), len(lams)), np.nan)
    report = []
    for a, j in enumerate(times):
        for b, lam in enumerate(lams):
            group = [n for n in nodes if n.top == j and float(n.lam) == lam]
            value, censored, misfit = _best_kappa(fit_law, group, lr, gd_steps, betas)
            seeds = sorted({n.seed for n in group})
            per_seed = [_best_kappa(fit_law, [n for n in group if n.seed == s], lr, gd_steps, betas)[0] for s in seeds]
            kappa[a, b] = value
            law_misfit = misfit if law == fit_law else float(np.sum(
                (_law_error(law, np.array([n.error_start for n in group]), value, np.array([n.scale for n in group]),
                            np.array([n.q for n in group]), lr, gd_steps, betas) - np.array([n.error_end for n in group])) ** 2))
            report.append({"top": j, "lam": lam, "kappa": value, "censored": censored, "misfit_sign": misfit,
                           "misfit_law": law_misfit, "kappa_seeds": per_seed, "pilots": len(group)})
    # a censored entry is only a lower bound (every pilot converged, tiny start errors): where the
    # same pilot time has entries that are not censored, use their interpolation in log(lambda)
    # when it is larger than the bound (the bound still holds)
    censored = np.array([[next(f["censored"] for f in report if f["top"] == j and f["lam"] == lam) for lam in lams] for j in times])
    log_lam = np.log(np.asarray(lams))
    for a in range(len(times)):
        known = ~censored[a]
        if known.any() and (~known).any():
            filled = np.interp(log_lam[~known], log_lam[known], kappa[a, known])
            kappa[a, ~known] = np.maximum(kappa[a, ~known], filled)
            for b in np.flatnonzero(~known):
                entry = next(f for f in report if f["top"] == times[a] and f["lam"] == lams[b])
                entry["kappa_bound"], entry["kappa"] = entry["kappa"], float(kappa[a, b])
    values = np.full((steps + 1, len(lams)), np.nan)
    grid = np.arange(2, steps + 1)
    for b in range(len(lams)):
        values[2:, b] = np.interp(grid, times, kappa[:, b])
    table = MeasuredTable(steps=steps, lam=tuple(lams), values=values, source=source, quantity="step_scale")
    return table, {"law": law, "times": times, "lam": lams, "fits": report}


@dataclass(frozen=True, eq=False)
class CostModel:
    r"""A calibrated cost model: the training law of a recipe with its measured step scale.

    Written by ``opmerge calibrate`` and read by ``opmerge plan --costs FILE``. The planner's
    student model is :meth:`student_model`.

    Attributes
    ----------
    law : {"adam", "sign"}
    lr : float
    gd_steps : int
    step_table : MeasuredTable
        :math:`\kappa(j, \lambda)`.
    beta1, beta2, eps : float or None
        Adam's (``adam`` only).
    input_scaling : {"raw", "preconditioned"}
    floor_table : NodeFloorTable or None
        The node approximation floors :math:`\varphi(j, L)` (nonlinear teachers; :func:`floor_table`).
    report : dict
        The fit report (:func:`fit_step_scale`), pilot plans, costs and the uncertainty.
    provenance : dict
    """

    law: str
    lr: float
    gd_steps: int
    step_table: MeasuredTable
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    input_scaling: str = "raw"
    floor_table: NodeFloorTable | None = None
    report: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        choice(self.law, "law", CALIBRATED_LAWS)
        if not isinstance(self.step_table, MeasuredTable) or self.step_table.quantity != "step_scale":
            raise InputError("step_table must be a MeasuredTable of quantity 'step_scale'")
        if self.floor_table is not None and not isinstance(self.floor_table, NodeFloorTable):
            raise InputError(f"floor_table must be a NodeFloorTable or None, got {type(self.floor_table).__name__}")

    def student_model(self, init: str = "warm", input: str = "forward") -> StudentModel:
        """The :class:`~opmerge.model.StudentModel` of this cost model."""
        extra = dict(beta1=self.beta1, beta2=self.beta2, eps=self.eps) if self.law == "adam" else {}
        return StudentModel(training=self.law, lr=self.lr, gd_steps=self.gd_steps, init=init, input=input,
                            input_scaling=self.input_scaling, step_table=self.step_table, node_floor=self.floor_table, **extra)

    def to_dict(self) -> dict:
        """JSON form (``"kind": "opmerge-cost-model"``; the tables under ``"step_scale"`` and ``"node_floor"``)."""
        out = {"kind": "opmerge-cost-model", "law": self.law, "lr": self.lr, "gd_steps": self.gd_steps, "beta1": self.beta1,
               "beta2": self.beta2, "eps": self.eps, "input_scaling": self.input_scaling,
               "step_scale": self.step_table.to_dict(), "report": self.report, "provenance": self.provenance}
        if self.floor_table is not None:
            out["node_floor"] = self.floor_table.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "CostModel":
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or data.get("kind") != "opmerge-cost-model":
            raise InputError("not an opmerge cost model (expected a JSON object with \"kind\": \"opmerge-cost-model\")")
        return cls(law=data["law"], lr=data["lr"], gd_steps=data["gd_steps"], step_table=MeasuredTable.from_dict(data["step_scale"]),
                   beta1=data.get("beta1"), beta2=data.get("beta2"), eps=data.get("eps"),
                   input_scaling=data.get("input_scaling", "raw"), report=data.get("report", {}), provenance=data.get("provenance", {}),
                   floor_table=NodeFloorTable.from_dict(data["node_floor"]) if data.get("node_floor") is not None else None)


def load_cost_model(path: str | os.PathLike) -> CostModel:
    """Read a :class:`CostModel` written by ``opmerge calibrate``.

    Raises
    ------
    InputError
        When the file cannot be read or is not a cost model (the message names the file).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read a cost model from {os.fspath(path)!r}: {exc}") from None
    try:
        return CostModel.from_dict(data)
    except (InputError, InputTypeError, KeyError, TypeError) as exc:
        raise InputError(f"{os.fspath(path)!r}: {exc}") from None
