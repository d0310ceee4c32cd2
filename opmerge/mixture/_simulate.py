r"""Exact plan simulation in the mixture regime (docs/mixture.md §4).

A plan is executed in the student family node by node, bottom-up: node :math:`j \to i` is fitted
on :math:`p_j` to the composite of its (already fitted) children, starting from its init and
trained for the model's budget with the closed-form law of :mod:`._family`. The final map
:math:`S` (segment roots in turn) is compared with the teacher's composite :math:`T(N\to 0)` on
common inputs :math:`z_N \sim p_N`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .._validate import choice, flag, integer
from ..errors import InputError, InputTypeError
from ..model import StudentModel
from ..plans import MergeNode, Plan, format_plan, parse_plan
from ..schedules import Schedule
from ._data import GaussianMixture
from ._family import FAMILIES, LeastSquaresFit, features, identity_parameters, least_squares, train_parameters
from ._points import Expectation, marginal_points
from ._teacher import MixtureTeacher

__all__ = ["MixtureProblem", "NodeFit", "PlanSimulation", "simulate_plan", "w2_1d", "w2_samples", "gaussian_w2"]

#: the most samples the sample-based W2 uses (its assignment is O(n^3))
MAX_W2_SAMPLES = 4000


@dataclass(frozen=True, eq=False)
class MixtureProblem:
    r"""A mixture-regime planning problem (docs/mixture.md §4).

    Parameters
    ----------
    mixture : GaussianMixture
    schedule : Schedule
    model : StudentModel
        Budget, training law, init and budget split of the linear regime's model (``input``
        must be ``"forward"``: nodes are fitted on the forward marginals :math:`p_j`).
    family : {"gated", "affine"}
        The student family: affine maps gated by the teacher's responsibilities at the input
        index (contains every DDIM step), or plain affine maps.
    solver : {"ddim", "heun"}
        The teacher's sampler.
    expectation : Expectation
        Quadrature or Monte Carlo.
    w2_samples : int
        Samples of the sample-based W2 in :math:`d \ge 2` (100 to 4000).
    """

    mixture: GaussianMixture
    schedule: Schedule
    model: StudentModel = field(default_factory=StudentModel)
    family: str = "gated"
    solver: str = "ddim"
    expectation: Expectation = field(default_factory=Expectation)
    w2_samples: int = 1000
    teacher: MixtureTeacher = field(init=False, repr=False)
    _points: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, StudentModel):
            raise InputTypeError(f"model must be an opmerge StudentModel, got {type(self.model).__name__}")
        if self.model.input != "forward":
            raise InputError("model.input must be 'forward' in the mixture regime (nodes are fitted on p_j)")
        choice(self.family, "family", FAMILIES)
        if not isinstance(self.expectation, Expectation):
            raise InputTypeError(f"expectation must be an opmerge Expectation, got {type(self.expectation).__name__}")
        object.__setattr__(self, "w2_samples", integer(self.w2_samples, "w2_samples", low=100, high=MAX_W2_SAMPLES))
        object.__setattr__(self, "teacher", MixtureTeacher(self.mixture, self.schedule, self.solver))

    @property
    def steps(self) -> int:
        return self.schedule.steps

    def points(self, n: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The (cached) points and weights of :math:`p_n` for ``stream``."""
        key = (n, stream)
        if key not in self._points:
            self._points[key] = marginal_points(self.mixture, self.schedule, n, self.expectation, stream)
        return self._points[key]

    def cached(self, key: tuple, compute) -> np.ndarray:
        """A value computed once per problem (points, features and teacher steps on them)."""
        if key not in self._points:
            self._points[key] = compute()
        return self._points[key]

    def teacher_output(self) -> np.ndarray:
        """The teacher's composite :math:`T(N\\to 0)` on the common inputs (cached)."""
        key = ("teacher", self.steps)
        if key not in self._points:
            z, _ = self.points(self.steps, 0)
            self._points[key] = self.teacher._composite(z, self.steps, 0)
        return self._points[key]

    def node_stream(self, top: int, bottom: int) -> int:
        """Monte Carlo stream of a node: one per interval, so plans share draws (common random numbers)."""
        return 1 + top * (self.steps + 1) + bottom

    def to_dict(self) -> dict:
        return {"mixture": self.mixture.to_dict(), "schedule": self.schedule.to_dict(), "model": self.model.to_dict(),
                "family": self.family, "solver": self.solver, "expectation": self.expectation.to_dict(),
                "w2_samples": self.w2_samples}


@dataclass(frozen=True)
class NodeFit:
    r"""One fitted merge node.

    Attributes
    ----------
    top, bottom : int
    theta : ndarray (F, d)
        The trained parameters.
    approximation : float
        :math:`\mathbb E\|f_{\Theta^*} - P\|^2`, the residual of the best fit (no training time removes it).
    training : float
        :math:`\mathbb E\|f_\Theta - f_{\Theta^*}\|^2 = \|\Theta - \Theta^*\|_G^2`, what the finite budget leaves.
    target_energy : float
        :math:`\mathbb E\|P\|^2`.
    """

    top: int
    bottom: int
    theta: np.ndarray
    approximation: float
    training: float
    target_energy: float

    @property
    def total(self) -> float:
        """:math:`\\mathbb E\\|f_\\Theta - P\\|^2` = approximation + training (the residual is orthogonal to the family)."""
        return self.approximation + self.training


@dataclass(frozen=True)
class PlanSimulation:
    r"""The result of :func:`simulate_plan`.

    Attributes
    ----------
    plan : Plan
    mse : float
        :math:`\mathbb E_{z_N}\|S(z_N) - T(z_N)\|^2` (an upper bound on :math:`W_2^2` between the outputs).
    mse_half_width : float
        Half-width of the 95 % confidence interval of ``mse`` (0 for quadrature).
    w2 : float
        W2 between the student's and the teacher's output distributions: exact for weighted
        point sets in 1-D, the optimal assignment between ``w2_samples`` draws otherwise.
    w2_method : str
    gaussian_w2 : float
        W2 between Gaussians with the outputs' means and covariances.
    nodes : dict
        :class:`NodeFit` of every merge node.
    """

    plan: Plan
    mse: float
    mse_half_width: float
    w2: float
    w2_method: str
    gaussian_w2: float
    nodes: dict

    def to_dict(self) -> dict:
        return {"plan": format_plan(self.plan), "mse": self.mse, "mse_half_width": self.mse_half_width,
                "w2": self.w2, "w2_method": self.w2_method, "gaussian_w2": self.gaussian_w2,
                "nodes": [{"node": format_plan(node), "top": fit.top, "bottom": fit.bottom,
                           "approximation": fit.approximation, "training": fit.training,
                           "target_energy": fit.target_energy} for node, fit in self.nodes.items()]}


def _check_problem(problem: object) -> None:
    if not isinstance(problem, MixtureProblem):
        raise InputTypeError(f"problem must be an opmerge MixtureProblem, got {type(problem).__name__}")


def _check_plan(problem: MixtureProblem, plan: object) -> Plan:
    if isinstance(plan, str):
        plan = parse_plan(plan, problem.steps)
    if not isinstance(plan, Plan):
        raise InputTypeError(f"plan must be an opmerge Plan or its text, got {type(plan).__name__}")
    if plan.steps != problem.steps:
        raise InputError(f"plan is for N = {plan.steps} steps but the schedule has N = {problem.steps}")
    return plan


def fixed_init_parameters(problem: MixtureProblem, top: int, bottom: int, z: np.ndarray, weights: np.ndarray,
                          phi: np.ndarray) -> np.ndarray:
    """The start of a node over ``top -> bottom`` for the inits other than ``warm``: the DDIM jump (in
    the gated family exactly, else its best fit on ``z``), zero or the identity (validated input)."""
    init, teacher = problem.model.init, problem.teacher
    if init == "ddim":
        if problem.family == "gated":
            return teacher._ddim_parameters(top, bottom)
        return least_squares(phi, weights, teacher._ddim(z, top, bottom)).theta
    if init == "zero":
        return np.zeros((phi.shape[1], teacher.dim))
    return identity_parameters(teacher, problem.family)


class _Executor:
    """Applies leaves and fitted nodes to points (validated input)."""

    def __init__(self, problem: MixtureProblem) -> None:
        self.problem = problem
        self.teacher = problem.teacher
        self.fits: dict = {}

    def apply(self, tree, z: np.ndarray) -> np.ndarray:
        if isinstance(tree, MergeNode):
            fit = self.fits[tree]
            return features(self.teacher, self.problem.family, z, tree.top) @ fit.theta
        return self.teacher._step(z, tree)

    def leaf_parameters(self, leaf: int, phi: np.ndarray, weights: np.ndarray, z: np.ndarray) -> np.ndarray:
        if self.problem.family == "gated" and self.problem.solver == "ddim":
            return self.teacher._ddim_parameters(leaf, leaf - 1)
        return least_squares(phi, weights, self.teacher._step(z, leaf)).theta

    def init_parameters(self, node: MergeNode, phi: np.ndarray, weights: np.ndarray, z: np.ndarray) -> np.ndarray:
        init = self.problem.model.init
        if init == "warm":
            first = node.children[0]
            if isinstance(first, MergeNode):
                return self.fits[first].theta
            return self.leaf_parameters(first, phi, weights, z)
        return fixed_init_parameters(self.problem, node.top, node.bottom, z, weights, phi)

    def fit_node(self, node: MergeNode, eta_tau: float) -> NodeFit:
        problem = self.problem
        stream = problem.node_stream(node.top, node.bottom)
        z, weights = problem.points(node.top, stream)
        first, *others = node.children
        if isinstance(first, MergeNode):
            target = self.apply(first, z)
        else:
            target = problem.cached(("step", first, stream), lambda: self.teacher._step(z, first))
        for child in others:
            target = self.apply(child, target)
        phi = problem.cached(("phi", node.top, stream), lambda: features(self.teacher, problem.family, z, node.top))
        fit = least_squares(phi, weights, target)
        theta0 = self.init_parameters(node, phi, weights, z)
        model = problem.model
        theta = train_parameters(fit, theta0, model.training, eta_tau, model.lr, model.gd_steps)
        record = NodeFit(node.top, node.bottom, theta, fit.residual, fit.gram_norm_sq(theta - fit.theta),
                         fit.target_energy)
        self.fits[node] = record
        return record


def w2_1d(x: np.ndarray, wx: np.ndarray, y: np.ndarray, wy: np.ndarray) -> float:
    r"""Exact :math:`W_2` between two weighted point sets on the line:
    :math:`\int_0^1 (F_x^{-1}(u) - F_y^{-1}(u))^2\,\mathrm du` by merging the sorted CDFs."""
    ox, oy = np.argsort(x, kind="stable"), np.argsort(y, kind="stable")
    xs, ys = x[ox], y[oy]
    cx, cy = np.cumsum(wx[ox]), np.cumsum(wy[oy])
    cx /= cx[-1]
    cy /= cy[-1]
    cuts = np.union1d(cx, cy)
    lows = np.concatenate([[0.0], cuts[:-1]])
    widths = cuts - lows
    mids = lows + 0.5 * widths
    ix = np.minimum(np.searchsorted(cx, mids), xs.size - 1)
    iy = np.minimum(np.searchsorted(cy, mids), ys.size - 1)
    return float(np.sqrt(np.sum(widths * (xs[ix] - ys[iy]) ** 2)))


def w2_samples(x: np.ndarray, y: np.ndarray) -> float:
    r"""W2 between two equal-size empirical distributions: the optimal assignment
    :math:`\min_\pi \frac1n\sum_i\|x_i - y_{\pi(i)}\|^2` (exact for the empirical measures)."""
    cost = np.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(0.5 * (a + a.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def gaussian_w2(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    r"""W2 between Gaussians fitted to two weighted point sets (same weights):
    :math:`\|m_x - m_y\|^2 + \operatorname{tr}(C_x + C_y - 2(C_x^{1/2} C_y C_x^{1/2})^{1/2})`."""
    mx, my = weights @ x, weights @ y
    cx = (x - mx).T @ ((x - mx) * weights[:, None])
    cy = (y - my).T @ ((y - my) * weights[:, None])
    rx = _sqrtm_psd(cx)
    cross = _sqrtm_psd(rx @ cy @ rx)
    val = float(np.sum((mx - my) ** 2) + np.trace(cx) + np.trace(cy) - 2 * np.trace(cross))
    return float(np.sqrt(max(val, 0.0)))


def _run(problem: MixtureProblem, plan: Plan) -> tuple[_Executor, dict]:
    executor = _Executor(problem)
    model = problem.model
    eta_tau = model.eta_tau / max(plan.n_merges, 1) if model.budget == "total" else model.eta_tau
    for node in plan.merge_nodes():
        executor.fit_node(node, eta_tau)
    return executor, dict(executor.fits)


def apply_plan(executor: _Executor, plan: Plan, z: np.ndarray) -> np.ndarray:
    for segment in plan.segments:
        z = executor.apply(segment, z)
    return z


def simulate_plan(problem: MixtureProblem, plan: Plan | str, w2: bool = True) -> PlanSimulation:
    r"""Execute ``plan`` in the problem's student family and measure it against the teacher.

    .. math::
        \mathrm{MSE} = \mathbb E_{z_N \sim p_N}\|S(z_N) - T(N\to 0)(z_N)\|^2 \;\ge\; W_2^2(S_\# p_N, T_\# p_N)

    Parameters
    ----------
    problem : MixtureProblem
    plan : Plan or str
    w2 : bool
        Whether to compute the sample-based W2 in :math:`d \ge 2` (an assignment of
        ``w2_samples`` points; ``nan`` when False). The 1-D W2 is always computed.

    Returns
    -------
    PlanSimulation
    """
    _check_problem(problem)
    plan = _check_plan(problem, plan)
    w2 = flag(w2, "w2")
    executor, fits = _run(problem, plan)
    n = problem.steps
    z, weights = problem.points(n, 0)
    student = apply_plan(executor, plan, z)
    teacher = problem.teacher_output()
    sq = np.sum((student - teacher) ** 2, axis=1)
    mse = float(weights @ sq)
    if problem.expectation.resolve(problem.mixture) == "monte-carlo":
        half = float(1.96 * np.std(sq, ddof=1) / np.sqrt(sq.size))
    else:
        half = 0.0
    if problem.mixture.dim == 1:
        w2_value = w2_1d(student[:, 0], weights, teacher[:, 0], weights)
        method = "exact-1d"
    elif not w2:
        w2_value, method = float("nan"), "skipped"
    else:
        zs, _ = marginal_points(problem.mixture, problem.schedule, n,
                                Expectation("monte-carlo", samples=max(problem.w2_samples, 100), seed=problem.expectation.seed),
                                stream=10**6)
        zs = zs[:problem.w2_samples]
        w2_value = w2_samples(apply_plan(executor, plan, zs), problem.teacher._composite(zs, n, 0))
        method = f"assignment-{problem.w2_samples}"
    return PlanSimulation(plan, mse, half, w2_value, method, gaussian_w2(student, teacher, weights), fits)
