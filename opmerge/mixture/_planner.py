r"""Planning in the mixture regime (docs/mixture.md §5): a node-additive cost and its dynamic program.

For a merge node over :math:`j \to i` whose first child ends at :math:`k` (warm start), let
:math:`f_{j,i,k}` be the student trained for the model's budget from the best fit
:math:`\Theta^*_{j,k}` of the teacher composite :math:`T(j\to k)` towards :math:`T(j\to i)`
(``k = j - 1``: the teacher step itself), and let

.. math::
    e_{j,i,k} = \mathbb E_{z_j\sim p_j}\bigl\|T(i\to 0)\bigl(f_{j,i,k}(z_j)\bigr) - T(j\to 0)(z_j)\bigr\|^2,
    \qquad e_{j,i,\infty} \text{ the same with } \Theta^*_{j,i}

(the node's approximation and training error, carried to the data side by the teacher's own
remaining steps). Errors of the nodes of a plan are coherent (all students lag behind the teacher's
trajectory and smooth its mixture structure the same way), so their amplitudes add:

.. math::
    \mathrm{cost}(\text{plan}) = \Bigl(\sum_{\text{roots}} \sqrt{e_{j,i,k}}
      + \sum_{\text{inner nodes}} w_\nu \bigl(\sqrt{e_{j,i,k}} - \sqrt{e_{j,i,\infty}}\bigr)_+\Bigr)^2 .

A segment root keeps its whole error; an inner node's approximation residual is refitted by its
parent, so only its training part (in amplitude) is carried. A first child's weight is its
parent's; a later child :math:`m \to i` (first child ending at :math:`k`) of a parent with input
index :math:`p` is weighted by its parent's weight times :math:`s_{p,m,i,k}`, the share (in
amplitude) of its training lag that the parent's family at :math:`p` reproduces. Every term
depends on the node's own indices and its parent's input index, so an interval dynamic program
finds the minimum over all plans with ``M`` segments exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .._validate import integer
from ..errors import InputError
from ..plans import MergeNode, Plan
from ._family import features, least_squares, train_parameters
from ._simulate import MixtureProblem, _check_plan, _check_problem, fixed_init_parameters

__all__ = ["PlannerTables", "planner_tables", "plan_cost", "MixturePlan", "optimal_mixture_plan"]


@dataclass(frozen=True)
class PlannerTables:
    r"""The per-interval tables of the planner.

    Attributes
    ----------
    steps : int
    approximation : ndarray (N + 1, N + 1)
        ``[j, i]``: :math:`\varepsilon_{j,i} = \min_\Theta \mathbb E_{p_j}\|f_\Theta - T(j\to i)\|^2`,
        the approximation error of merging the teacher steps :math:`j \to i` into one student
        (0 for one step in the gated family); ``nan`` where :math:`i \ge j`.
    carried : ndarray (N + 1, N + 1)
        ``[j, i]``: :math:`e_{j,i,\infty}`, the best fit's error carried to the data side.
    node : ndarray (N + 1, N + 1, N + 1)
        ``[j, i, k]``: :math:`e_{j,i,k}` (``k`` the first child's end for the ``warm`` init; for the
        other inits every ``k`` holds the same value).
    overlap : ndarray (N + 1, N + 1)
        ``[p, m]``: :math:`o_{p,m}`, the share of the feature energy of the family at ``m``
        (seen through :math:`T(p\to m)`) that the family at ``p`` reproduces.
    share : ndarray (N + 1, N + 1, N + 1, N + 1)
        ``[p, m, i, k]``: :math:`s_{p,m,i,k}`, the share in amplitude of the training lag
        :math:`f_{m,i,k} - f_{\Theta^*_{m,i}}` of a later child :math:`m\to i` that a parent with
        input index ``p`` reproduces (:math:`o_{p,m}` where that lag is 0).
    seconds : float
        Time taken to build the tables.
    """

    steps: int
    approximation: np.ndarray
    carried: np.ndarray
    node: np.ndarray
    overlap: np.ndarray
    share: np.ndarray
    seconds: float

    def root_amplitude(self, j: int, i: int, k: int) -> float:
        return math.sqrt(max(self.node[j, i, k], 0.0))

    def inner_amplitude(self, j: int, i: int, k: int) -> float:
        return max(math.sqrt(max(self.node[j, i, k], 0.0)) - math.sqrt(max(self.carried[j, i], 0.0)), 0.0)


def planner_tables(problem: MixtureProblem, progress=None) -> PlannerTables:
    r"""Build :class:`PlannerTables` (:math:`O(N^3)` trained fits, each carried through the teacher).

    Parameters
    ----------
    problem : MixtureProblem
        ``model.budget`` must be ``"per-merge"`` (a total budget couples the nodes).
    progress : callable, optional
        Called as ``progress(done, total)`` after each input index ``j``.
    """
    _check_problem(problem)
    if problem.model.budget != "per-merge":
        raise InputError("the mixture planner needs model.budget = 'per-merge' (a total budget couples every node)")
    start = time.perf_counter()
    teacher, n_steps, model = problem.teacher, problem.steps, problem.model
    approx = np.full((n_steps + 1, n_steps + 1), np.nan)
    carried = np.full((n_steps + 1, n_steps + 1), np.nan)
    node = np.full((n_steps + 1, n_steps + 1, n_steps + 1), np.nan)
    overlap = np.full((n_steps + 1, n_steps + 1), np.nan)
    share = np.full((n_steps + 1,) * 4, np.nan)
    lags: dict[tuple[int, int, int], np.ndarray] = {}   # (m, i, k) -> Theta_{m,i,k} - Theta*_{m,i}
    for j in range(1, n_steps + 1):
        z, weights = problem.points(j, 0)
        phi = features(teacher, problem.family, z, j)
        trajectory = teacher._trajectory(z, j, 0)
        final = trajectory[-1]

        def carried_error(theta: np.ndarray, i: int) -> float:
            out = teacher._composite(phi @ theta, i, 0)
            return float(weights @ np.sum((out - final) ** 2, axis=1))

        for k in range(j - 1, 0, -1):
            later = features(teacher, problem.family, trajectory[j - k], k)
            overlap[j, k] = _overlap(phi, weights, later)
            _lag_shares(share, j, k, phi, weights, later, lags, overlap[j, k])
        fits = {}
        for i in range(j - 1, -1, -1):
            fits[i] = least_squares(phi, weights, trajectory[j - i])
            approx[j, i] = fits[i].residual
        for i in range(j - 2, -1, -1):
            fit = fits[i]
            carried[j, i] = carried_error(fit.theta, i)
            if model.init == "warm":
                for k in range(i + 1, j):
                    theta = train_parameters(fit, fits[k].theta, model.training, model.eta_tau, model.lr, model.gd_steps)
                    node[j, i, k] = carried_error(theta, i)
                    lags[j, i, k] = theta - fit.theta
            else:
                theta0 = fixed_init_parameters(problem, j, i, z, weights, phi)
                theta = train_parameters(fit, theta0, model.training, model.eta_tau, model.lr, model.gd_steps)
                node[j, i, i + 1:j] = carried_error(theta, i)
                for k in range(i + 1, j):
                    lags[j, i, k] = theta - fit.theta
        if progress is not None:
            progress(j, n_steps)
    if not (np.all(np.isfinite(node[~np.isnan(node)])) and np.all(np.isfinite(carried[~np.isnan(carried)]))):
        raise FloatingPointError(
            "the planner's node errors are not finite (the teacher or a fitted student overflowed on these "
            "points); use a smaller budget or a schedule with a smaller growth")
    return PlannerTables(n_steps, approx, carried, node, overlap, share, time.perf_counter() - start)


def _lag_shares(share: np.ndarray, p: int, m: int, phi: np.ndarray, weights: np.ndarray, later: np.ndarray,
                lags: dict, fallback: float) -> None:
    r"""Fill ``share[p, m, i, k]`` for every merge node ``m -> i`` with first child ending at ``k``:
    :math:`\|\mathrm{Proj}_p\,\delta\| / \|\delta\|` on :math:`p_p` for the lag function
    :math:`\delta(z) = (\Theta_{m,i,k} - \Theta^*_{m,i})^\top\varphi_m(T(p\to m)z)`; one least-squares
    solve for all of them."""
    keys = [(i, k) for i in range(m - 1) for k in range(i + 1, m)]
    if not keys:
        return
    d = next(iter(lags.values())).shape[1]
    targets = np.concatenate([later @ lags[m, i, k] for i, k in keys], axis=1)
    projected = phi @ least_squares(phi, weights, targets).theta
    total = (weights @ (targets * targets)).reshape(len(keys), d).sum(axis=1)
    kept = (weights @ (projected * projected)).reshape(len(keys), d).sum(axis=1)
    scale = float(total.max())
    for (i, k), t, c in zip(keys, total, kept):
        share[p, m, i, k] = math.sqrt(min(1.0, c / t)) if t > 1e-24 * max(scale, 1e-300) and t > 0.0 else fallback


def _overlap(phi: np.ndarray, weights: np.ndarray, later: np.ndarray) -> float:
    r"""Share of the later features' energy that the family at ``j`` reproduces,
    :math:`\|\mathrm{Proj}_j \Phi_k\|^2 / \|\Phi_k\|^2` on :math:`p_j` (in [0, 1])."""
    total = float(np.sum(weights[:, None] * later * later))
    if total <= 0.0:
        return 0.0
    fit = least_squares(phi, weights, later)
    return float(min(1.0, max(0.0, 1.0 - fit.residual / total)))


def _first_end(node: MergeNode) -> int:
    first = node.children[0]
    return first.bottom if isinstance(first, MergeNode) else first - 1


def plan_amplitude(tables: PlannerTables, plan: Plan) -> float:
    """:math:`\\sum` of the weighted node amplitudes of ``plan`` (the planner cost is its square)."""
    total = 0.0
    stack = [(seg, 1.0, True) for seg in plan.segments if isinstance(seg, MergeNode)]
    while stack:
        node, weight, is_root = stack.pop()
        k = _first_end(node)
        j, i = node.top, node.bottom
        own = tables.root_amplitude(j, i, k) if is_root else tables.inner_amplitude(j, i, k)
        total += weight * own
        for position, child in enumerate(node.children):
            if isinstance(child, MergeNode):
                stack.append((child, weight if position == 0 else
                              weight * tables.share[j, child.top, child.bottom, _first_end(child)], False))
    return total


def plan_cost(problem_or_tables, plan: Plan | str) -> float:
    r"""The planner cost of ``plan`` (module docstring), from a problem or from prebuilt tables."""
    if isinstance(problem_or_tables, PlannerTables):
        tables = problem_or_tables
        if isinstance(plan, str):
            from ..plans import parse_plan

            plan = parse_plan(plan, tables.steps)
        if not isinstance(plan, Plan) or plan.steps != tables.steps:
            raise InputError(f"plan must be a plan for N = {tables.steps} steps")
    else:
        plan = _check_plan(problem_or_tables, plan)
        tables = planner_tables(problem_or_tables)
    return plan_amplitude(tables, plan) ** 2


@dataclass(frozen=True)
class MixturePlan:
    """The plan that minimises the planner cost, and that cost."""

    plan: Plan
    cost: float
    tables: PlannerTables


def _interval_dp(tables: PlannerTables):
    """Best first-child subtrees, later-child subtrees and later-child sequences, and segment roots, over
    every interval (first minimum met wins)."""
    n = tables.steps
    inf = math.inf
    inner = {}   # (j, i) -> (cost, tree): subtree weighted like its parent (a first child)
    later = {}   # (p, j, i) -> (cost, tree): later child j -> i of a parent with input p, weight s[p, j, i, k]
    rest = {}    # (p, j, i) -> (cost, trees): later children covering j -> i of a parent with input p
    root = {}    # (j, i) -> (cost, tree)
    for length in range(1, n + 1):
        for i in range(0, n - length + 1):
            j = i + length
            parents = range(j + 1, n + 1)
            if length == 1:
                inner[j, i] = root[j, i] = (0.0, j)
                for p in parents:
                    later[p, j, i] = (0.0, j)
            else:
                best_inner, best_root = (inf, None), (inf, None)
                best_later = {p: (inf, None) for p in parents}
                for k in range(j - 1, i, -1):  # first child j -> k, deterministic order: shortest first child first
                    sub_cost, sub_tree = inner[j, k]
                    rest_cost, rest_trees = rest[j, k, i]
                    children = (sub_tree,) + rest_trees
                    c_inner = sub_cost + rest_cost + tables.inner_amplitude(j, i, k)
                    c_root = sub_cost + rest_cost + tables.root_amplitude(j, i, k)
                    if c_inner < best_inner[0]:
                        best_inner = (c_inner, children)
                    if c_root < best_root[0]:
                        best_root = (c_root, children)
                    for p in parents:
                        c = tables.share[p, j, i, k] * c_inner
                        if c < best_later[p][0]:
                            best_later[p] = (c, children)
                inner[j, i] = (best_inner[0], MergeNode(best_inner[1]))
                root[j, i] = (best_root[0], MergeNode(best_root[1]))
                for p in parents:
                    later[p, j, i] = (best_later[p][0], MergeNode(best_later[p][1]))
            # rest[p, j, i]: one later child j -> i, or a later child j -> m then rest[p, m, i]
            for p in parents:
                best = (later[p, j, i][0], (later[p, j, i][1],))
                for m in range(j - 1, i, -1):
                    c = later[p, j, m][0] + rest[p, m, i][0]
                    if c < best[0]:
                        best = (c, (later[p, j, m][1],) + rest[p, m, i][1])
                rest[p, j, i] = best
    return root


def optimal_mixture_plan(problem: MixtureProblem, segments: int = 1, tables: PlannerTables | None = None,
                         progress=None) -> MixturePlan:
    r"""The plan with ``segments`` segments that minimises :func:`plan_cost` (exact, by dynamic programming).

    Segments and nodes are chosen by an :math:`O(N^4 + M N^2)` interval program over the node
    amplitudes; ties go to the first minimum met (shorter first children and later segment
    boundaries are tried first).
    """
    _check_problem(problem)
    segments = integer(segments, "segments", low=1, high=problem.steps)
    if tables is None:
        tables = planner_tables(problem, progress=progress)
    root = _interval_dp(tables)
    n = problem.steps
    inf = math.inf
    # seg[m][top]: best cost of covering top -> 0 with m segments
    seg = [[(inf, ())] * (n + 1) for _ in range(segments + 1)]
    seg[0][0] = (0.0, ())
    for m in range(1, segments + 1):
        for top in range(1, n + 1):
            best = (inf, ())
            for bottom in range(top - 1, -1, -1):
                prev = seg[m - 1][bottom]
                if prev[0] == inf:
                    continue
                c = root[top, bottom][0] + prev[0]
                if c < best[0]:
                    best = (c, (root[top, bottom][1],) + prev[1])
            seg[m][top] = best
    amplitude, trees = seg[segments][n]
    plan = Plan(trees)
    return MixturePlan(plan, amplitude**2, tables)
