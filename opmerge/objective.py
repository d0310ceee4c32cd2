r"""The objective (docs/theory.md §5): plan evaluation and the W2 distance.

The final student operator is :math:`S = \prod_{\text{segments}} \mathrm{value(root)}`, the teacher's
:math:`T = T(N \to 0)`. For a spectrum :math:`(\lambda_i, \omega_i)`:

* ``target="teacher"`` (default): :math:`W_2^2 = \sum_i \omega_i \|v_{N,i}\|^2 (S_i - T_i)^2`;
* ``target="data"``: :math:`W_2^2 = \sum_i \omega_i (|S_i|\,\|v_{N,i}\| - \sqrt{\lambda_i})^2`.

Both are the Wasserstein-2 distance between centred Gaussians with diagonal covariances in the
eigenbasis (input :math:`z_N` of variance :math:`\|v_N\|^2` per direction).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ._util import readonly_float64
from ._validate import choice, integer, real_array
from .errors import InputError, InputTypeError
from .model import NodeLaw, StudentModel, _ddim_jump_table, _node_law, _retention_table, default_sigma_data_sq
from .plans import MergeNode, Plan, Tree
from .schedules import Schedule, signal_noise_norm_sq
from .teacher import SOLVERS, _exact_flow, _step_operators, check_lam

__all__ = ["TARGETS", "Problem", "PlanEvaluation", "evaluate_plan", "plan_floor", "w2_distance", "MEMORY_CAP", "memory_limit", "check_memory"]

TARGETS = ("teacher", "data")

#: fixed cap on the memory of one problem's large tables (bytes): see :func:`memory_limit`
MEMORY_CAP = 8 * 2**30


def _available_memory() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (Linux), else the free physical pages, else ``None``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def memory_limit() -> int:
    """The most bytes one problem's large tables may take: the smaller of :data:`MEMORY_CAP` (8 GiB)
    and half the memory available now (when the system says how much that is).

    Returns
    -------
    int
    """
    available = _available_memory()
    return MEMORY_CAP if available is None else min(MEMORY_CAP, available // 2)


def gib(n_bytes: float) -> str:
    """``n_bytes`` in GiB, three digits (for messages)."""
    return f"{n_bytes / 2**30:.3g} GiB"


def check_memory(need: int, what: str, advice: str) -> None:
    """Refuse, before it is allocated, a table of ``need`` bytes above :func:`memory_limit`.

    Parameters
    ----------
    need : int
        Bytes the table takes.
    what : str
        The start of the message, naming the table and the sizes that set it (steps, directions).
    advice : str
        The end of the message: what to reduce.

    Raises
    ------
    InputError
        ``"<what> <need> bytes (... GiB), above the limit of <limit> bytes (...); <advice>"``.
    """
    limit = memory_limit()
    if need > limit:
        raise InputError(
            f"{what} {need:,} bytes ({gib(need)}), above the limit of {limit:,} bytes ({gib(limit)}: the smaller "
            f"of {gib(MEMORY_CAP)} and half the available memory); {advice}")


@dataclass(frozen=True, eq=False)
class Problem:
    r"""Everything that fixes the objective: schedule, spectrum, student model, solver, target.

    Parameters
    ----------
    schedule : Schedule
    lam : float or array of shape (d,)
        Eigenvalues :math:`\lambda_i \ge 0`.
    weights : array of shape (d,), optional
        Multiplicities :math:`\omega_i \ge 0` (default 1).
    model : StudentModel
    solver : {"ddim", "heun"}
        Teacher sampler whose steps are the leaves.
    target : {"teacher", "data"}
    segments : int
        Number of student steps ``M`` (``1 <= M <= N``).

    Raises
    ------
    InputTypeError
        For a value of the wrong type (``lam=True``, ``weights="ab"``, a schedule that is not a
        :class:`~opmerge.schedules.Schedule`).
    InputError
        For a value out of range: ``lam`` empty, not finite or negative, weights of another shape
        or negative, ``segments`` outside ``[1, N]``, an unknown solver or target.

    Notes
    -----
    This constructor is the one place where ``lam`` is checked; the derived tables below are
    computed by kernels that take the checked array.

    Attributes (derived, read-only)
    -------------------------------
    step_values : (d, N + 1) teacher step operators, entry 0 = 1.
    retention : (d, N + 1) retention :math:`r_j` per input time (``per-merge`` budget) of a linear law (``flow``, ``gd``, ``empirical``); ``None`` for ``adam`` and ``sign``.
    law : :class:`~opmerge.model.NodeLaw`, the error map of every node (all laws).
    sigma_data_sq : float, :math:`\sigma_d^2` of ``preconditioned`` inputs unless the model sets it: the weighted mean eigenvalue.
    jump : (d, N + 1, N + 1) ``jump[:, i, j] = D(j -> i)`` (only for ``init="ddim"``, else ``None``).
    teacher : (d,) :math:`T(N\to 0)`; exact : (d,) :math:`E(N \to 0)`; norm_noise : (d,) :math:`\|v_N\|`.
    goal : (d,) the value that :math:`S` (``teacher``) or :math:`|S|` (``data``) should reach.
    scale : (d,) :math:`\omega_i \|v_{N,i}\|^2`, so that :math:`W_2^2 = \sum_i \mathrm{scale}_i (S_i - \mathrm{goal}_i)^2`.
    floor : (N + 1, N + 1) or None, ``floor[i, j]`` the approximation floor :math:`\varphi(j, j - i)` of a merge node over ``j -> i`` (the model's ``node_floor``; docs/theory.md §9.7), added to :math:`W_2^2` per merge node.
    """

    schedule: Schedule
    lam: np.ndarray
    weights: np.ndarray | None = None
    model: StudentModel = field(default_factory=StudentModel)
    solver: str = "ddim"
    target: str = "teacher"
    segments: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise InputTypeError(f"schedule must be an opmerge Schedule, got {type(self.schedule).__name__}")
        if not isinstance(self.model, StudentModel):
            raise InputTypeError(f"model must be a StudentModel, got {type(self.model).__name__}")
        choice(self.solver, "solver", SOLVERS)
        choice(self.target, "target", TARGETS)
        lam = np.atleast_1d(check_lam(self.lam)).astype(np.float64)
        if lam.ndim != 1:
            raise InputError(f"lam must be a scalar or a 1-D array, got shape {lam.shape}")
        if self.weights is None:
            weights = np.ones_like(lam)
        else:
            weights = np.atleast_1d(real_array(self.weights, "weights"))
            if weights.shape != lam.shape:
                raise InputError(f"weights must have the shape of lam {lam.shape}, got {weights.shape}")
            if not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise InputError("weights must be finite and >= 0 (allowed range [0, inf))")
        n_steps = self.schedule.steps
        segments = integer(self.segments, "segments", low=1, high=n_steps)
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("segments", segments)
        set_("lam", readonly_float64(lam))  # copies: the caller's arrays are never frozen
        set_("weights", readonly_float64(weights))
        # lam is validated once, above; the kernels below take the checked array
        steps = _step_operators(self.schedule, lam, self.solver)
        set_("step_values", readonly_float64(steps, copy=False))
        set_("sigma_data_sq", default_sigma_data_sq(lam, weights))
        law = _node_law(self.schedule, lam, self.model, self.solver, self.sigma_data_sq)
        set_("law", law)
        set_("retention", None if law.retention is None else readonly_float64(law.retention, copy=False))
        if self.model.init == "ddim":
            check_memory(16 * lam.size * (n_steps + 1) ** 2,  # the table and one temporary
                         f"problem too large: init='ddim' needs a jump table of steps = {n_steps} and {lam.size} "
                         "direction(s) of lam:", "use fewer steps or fewer directions")
        set_("jump", readonly_float64(_ddim_jump_table(self.schedule, lam), copy=False) if self.model.init == "ddim" else None)
        set_("teacher", readonly_float64(np.prod(steps[:, 1:], axis=1), copy=False))
        set_("exact", readonly_float64(np.atleast_1d(_exact_flow(self.schedule, lam, n_steps, 0)), copy=False))
        norm_sq = signal_noise_norm_sq(self.schedule, lam[:, None])
        set_("norm_noise", readonly_float64(np.sqrt(norm_sq[..., -1]), copy=False))
        goal = self.teacher if self.target == "teacher" else np.sqrt(lam) / self.norm_noise
        set_("goal", readonly_float64(np.asarray(goal, dtype=np.float64), copy=False))
        set_("scale", readonly_float64(weights * norm_sq[..., -1], copy=False))
        floor_table = self.model.node_floor
        if floor_table is not None and floor_table.steps != n_steps:
            raise InputError(f"node_floor was measured for N = {floor_table.steps} steps but the schedule has N = {n_steps}")
        set_("floor", None if floor_table is None else readonly_float64(floor_table.by_interval(), copy=False))

    @property
    def steps(self) -> int:
        """Number of teacher steps ``N``."""
        return self.schedule.steps

    @property
    def dim(self) -> int:
        """Number of eigen-directions ``d``."""
        return int(self.lam.shape[0])

    def retention_for(self, n_merges: int) -> np.ndarray:
        """Retention table for a plan with ``n_merges`` merge nodes (differs from ``retention`` only for ``budget='total'``)."""
        if self.model.budget != "total":
            return self.retention
        return _retention_table(self.schedule, self.lam, self.model, self.solver, integer(n_merges, "n_merges", low=0),
                                self.sigma_data_sq)

    def w2_of(self, student) -> float:
        r""":math:`W_2` of a student operator vector ``S`` (shape ``(d,)``)."""
        return w2_distance(self, student)

    def config(self) -> dict:
        """The full configuration as a JSON-friendly dict."""
        return {
            "schedule": self.schedule.to_dict(),
            "lam": self.lam.tolist(),
            "weights": self.weights.tolist(),
            "model": self.model.to_dict(),
            "solver": self.solver,
            "target": self.target,
            "segments": self.segments,
        }


def _check_problem(problem: object) -> None:
    if not isinstance(problem, Problem):
        raise InputTypeError(f"problem must be an opmerge Problem, got {type(problem).__name__}")


def w2_distance(problem: Problem, student) -> float:
    r"""W2 of the student operators ``student`` (shape ``(d,)``) for ``problem.target``.

    ``teacher``: :math:`\sqrt{\sum_i \omega_i\|v_{N,i}\|^2 (S_i - T_i)^2}`;
    ``data``: :math:`\sqrt{\sum_i \omega_i (|S_i|\|v_{N,i}\| - \sqrt{\lambda_i})^2}`.

    Parameters
    ----------
    problem : Problem
    student : array-like of shape (d,)
        The student operators :math:`S_i`.

    Returns
    -------
    float

    Raises
    ------
    InputTypeError
        When ``problem`` is not a :class:`Problem` or ``student`` is not made of real numbers.
    InputError
        When ``student`` does not have the shape ``(d,)`` or is not finite.
    """
    _check_problem(problem)
    student = real_array(student, "student")
    if student.shape != (problem.dim,):
        raise InputError(f"student must have the shape ({problem.dim},) of the problem's directions, got {student.shape}")
    if not np.all(np.isfinite(student)):
        raise InputError("student must be finite (allowed range (-inf, inf), NaN and infinities refused)")
    return _w2(problem, student)


def _w2(problem: Problem, student: np.ndarray) -> float:
    """:func:`w2_distance` for checked arguments."""
    value = np.abs(student) if problem.target == "data" else student
    return float(np.sqrt(np.sum(problem.scale * (value - problem.goal) ** 2)))


@dataclass(frozen=True, eq=False)
class PlanEvaluation:
    r"""Result of :func:`evaluate_plan`.

    Attributes
    ----------
    plan : Plan
    node_values : dict mapping each MergeNode (post-order) to its student values, shape (d,)
    segment_values : (M, d) value of each segment root
    student : (d,) :math:`S`; teacher : (d,) :math:`T`; exact : (d,) :math:`E`
    w2 : float
        :math:`\sqrt{\sum_i s_i (S_i - g_i)^2 + \text{floor}}`.
    floor : float
        The sum of the plan's node floors :math:`\sum_\nu \varphi(j_\nu, L_\nu)` (0 without ``node_floor``).
    """

    plan: Plan
    node_values: dict
    segment_values: np.ndarray
    student: np.ndarray
    teacher: np.ndarray
    exact: np.ndarray
    w2: float
    floor: float = 0.0


def plan_floor(problem: Problem, plan: Plan) -> float:
    r"""The sum of the approximation floors of a plan's merge nodes, :math:`\sum_\nu \varphi(j_\nu, L_\nu)` (0 without one)."""
    if problem.floor is None:
        return 0.0
    return float(sum(problem.floor[node.bottom, node.top] for node in plan.merge_nodes()))


def _right_product(factors: list) -> np.ndarray:
    """``f_1 * (f_2 * (... * f_k))``: the association used by the solvers' kernels (bit-identical results)."""
    out = factors[-1]
    for factor in reversed(factors[:-1]):
        out = factor * out
    return out


def node_start(problem: Problem, top: int, bottom: int, first) -> np.ndarray:
    r"""The student's start :math:`a_0` of a node over ``top -> bottom`` (docs/theory.md §4): the first
    child's value ``first`` (``warm``), :math:`D(j \to i)` (``ddim``), 0 or 1; shape (d,)."""
    init = problem.model.init
    if init == "warm":
        return first
    if init == "ddim":
        return problem.jump[:, bottom, top]
    return np.zeros(problem.dim) if init == "zero" else np.ones(problem.dim)


def merge_value(problem: Problem, retention: np.ndarray, top: int, bottom: int, children: list) -> np.ndarray:
    r"""Value of a merge node over ``top -> bottom`` from its children values (docs/theory.md §4).

    :math:`a = (1 - r_j)\, c_1 R + r_j a_0` with :math:`R = c_2 (c_3 (\cdots c_k))`, which equals
    :math:`P + (a_0 - P) r_j`; written in this association so that plan evaluation and the
    Numba kernels agree to the last bit.

    Parameters
    ----------
    problem : Problem
    retention : ndarray of shape (d, N + 1)
        :meth:`Problem.retention_for` of the plan.
    top, bottom : int
        The node's span :math:`j \to i`.
    children : list of ndarray of shape (d,)
        The children's values :math:`c_1, \dots, c_k`, noise side first.

    Returns
    -------
    ndarray of shape (d,)
    """
    rest = _right_product(children[1:])
    a0 = node_start(problem, top, bottom, children[0])
    if retention is None:  # adam, sign: a = P + F(a0 - P)
        product = children[0] * rest
        return product + problem.law.error(a0 - product, top)
    r = retention[:, top]
    return (1.0 - r) * (children[0] * rest) + r * a0


def evaluate_plan(problem: Problem, plan: Plan) -> PlanEvaluation:
    r"""Evaluate a merge plan bottom-up with the student model of docs/theory.md §4.

    A leaf ``n`` is the teacher step :math:`A_n`; a node over :math:`j \to i` with children
    values :math:`c_1..c_k` gets :math:`a = P + (a_0 - P) r_j`; :math:`S = \prod` segment values.

    Parameters
    ----------
    problem : Problem
    plan : Plan
        A plan with ``problem.steps`` teacher steps and ``problem.segments`` segments.

    Returns
    -------
    PlanEvaluation

    Raises
    ------
    InputTypeError
        When ``problem`` is not a :class:`Problem` or ``plan`` not a :class:`~opmerge.plans.Plan`.
    InputError
        When its ``N`` or ``M`` differ from the problem's.
    """
    _check_problem(problem)
    if not isinstance(plan, Plan):
        raise InputTypeError(f"plan must be an opmerge Plan, got {type(plan).__name__}")
    if plan.steps != problem.steps:
        raise InputError(f"plan is for N = {plan.steps} steps but the schedule has N = {problem.steps}")
    if plan.n_segments != problem.segments:
        raise InputError(f"plan has {plan.n_segments} segment(s) but the problem asks for segments = {problem.segments}")
    retention = problem.retention_for(plan.n_merges)
    values: dict = {}

    def value_of(tree: Tree) -> np.ndarray:
        if isinstance(tree, MergeNode):
            return values[tree]
        return problem.step_values[:, tree]

    for node in plan.merge_nodes():
        children = [value_of(child) for child in node.children]
        values[node] = merge_value(problem, retention, node.top, node.bottom, children)
    segment_values = np.array([value_of(seg) for seg in plan.segments])
    student = _right_product(list(segment_values))
    floor = plan_floor(problem, plan)
    w2 = _w2(problem, student)
    return PlanEvaluation(
        plan=plan,
        node_values=values,
        segment_values=segment_values,
        student=student,
        teacher=np.array(problem.teacher),
        exact=np.array(problem.exact),
        w2=w2 if floor == 0.0 else math.sqrt(w2 * w2 + floor),
        floor=floor,
    )
