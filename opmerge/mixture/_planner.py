r"""Planning in the mixture regime (docs/mixture.md §5): a node-additive cost and its dynamic program.

**Chains.** A merge node over :math:`j \to i` whose first child ends at :math:`k` is fitted, as in the
exact simulation, to the composite of its children and trained from its first child. The planner
gives it the best *chain* as first child: the node over :math:`j \to k` (with its own best chain)
that has the least error, the teacher step when :math:`k = j - 1`, and teacher steps as later
children. Its parameters :math:`\Theta_{j,i,k}` come from that fit, and

.. math::
    e_{j,i,k} = \mathbb E_{z\sim p_j}\bigl\|T(i\to 0)\bigl(f_{\Theta_{j,i,k}}(z)\bigr) - T(j \to 0)(z)\bigr\|^2,

the node's error carried to the data side by the teacher's remaining steps, on the marginal it is
fitted on; :math:`e^*_{j,i} = \min_k e_{j,i,k}` defines the best chain over :math:`j \to i`. A segment
root over :math:`j \to i` with :math:`j < N` meets what the segments before it produce; the planner
puts there the best one-segment chain over :math:`N \to j` and measures what the root adds, in
amplitude, on the common inputs :math:`z_N`:

.. math::
    a^{\mathrm{root}}_{j,i,k} = \Bigl(\mathbb E_{z_N}\bigl\|T(i\to 0)\bigl(f_{j,i,k}(S^*_{N\to j}(z_N))\bigr)
      - T(N\to 0)(z_N)\bigr\|^2\Bigr)^{1/2} - \sqrt{e^*_{N,j}}, \qquad a^{\mathrm{root}}_{N,i,k} = \sqrt{e_{N,i,k}}

(:math:`S^*_{N\to N-1}` is the teacher's step).

**Cost.** Errors of the nodes of a plan are coherent, so their amplitudes add:

.. math::
    \mathrm{cost}(\text{plan}) = \Bigl(\sum_{\text{roots}} a^{\mathrm{root}}_{j,i,k}
      + \sum_{\text{first children}} w_\nu\bigl(\sqrt{e_{j,i,k}} - \sqrt{e^*_{j,i}}\bigr)
      + \sum_{\text{later children}} w_\nu\bigl(\sqrt{e_{j,i,k}} - \sqrt{e_{j,i,\infty}}\bigr)_+\Bigr)^2 ,

with :math:`e_{j,i,\infty}` the error of the best fit of the teacher composite. A first child costs
only what it loses against the best chain (which the parent's term already contains), with its
parent's weight; a later child :math:`m \to i` of a parent with input index :math:`p` costs its
training lag, weighted by its parent's weight times :math:`s_{p,m,i,k}`, the share (in amplitude)
of that lag which the parent learns in its budget. The first- and later-child terms are
non-negative and a teacher step as a later child costs nothing, so the minimum over all plans with
``M`` segments has teacher steps as later children; an interval dynamic program over first-child
chains and segment boundaries finds it exactly.
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
from ._simulate import MixtureProblem, _check_plan, _check_problem, _Executor

__all__ = ["PlannerTables", "planner_tables", "plan_cost", "MixturePlan", "optimal_mixture_plan"]


@dataclass(frozen=True)
class PlannerTables:
    r"""The per-interval tables of the planner (module docstring).

    Attributes
    ----------
    steps : int
    approximation : ndarray (N + 1, N + 1)
        ``[j, i]``: :math:`\varepsilon_{j,i} = \min_\Theta \mathbb E_{p_j}\|f_\Theta - T(j\to i)\|^2`,
        the approximation error of merging the teacher steps :math:`j \to i` into one student
        (0 for one step in the gated family); ``nan`` where :math:`i \ge j`.
    carried : ndarray (N + 1, N + 1)
        ``[j, i]``: :math:`e_{j,i,\infty}`, that best fit's error carried to the data side.
    node : ndarray (N + 1, N + 1, N + 1)
        ``[j, i, k]``: :math:`e_{j,i,k}`, the node with the best chain over ``j -> k`` as first child,
        on :math:`p_j`.
    root : ndarray (N + 1, N + 1, N + 1)
        ``[j, i, k]``: :math:`a^{\mathrm{root}}_{j,i,k}`, the amplitude the node adds as a segment root
        after the best one-segment chain over ``N -> j`` (may be negative).
    best : ndarray (N + 1, N + 1)
        ``[j, i]``: :math:`e^*_{j,i} = \min_k e_{j,i,k}` (0 for one step).
    share : ndarray (N + 1, N + 1, N + 1, N + 1)
        ``[p, m, i, k]``: :math:`s_{p,m,i,k}`, the share in amplitude of the training lag
        :math:`\delta = f_{\Theta_{m,i,k}} - f_{\Theta^*_{m,i}}` of a later child :math:`m\to i` that a
        parent with input index ``p`` learns: :math:`\|(I - \rho(G_p))\mathrm{Proj}_p\,\delta\|/\|\delta\|`
        on :math:`p_p`, :math:`\delta` seen through :math:`T(p\to m)`.
    seconds : float
        Time taken to build the tables.
    """

    steps: int
    approximation: np.ndarray
    carried: np.ndarray
    node: np.ndarray
    root: np.ndarray
    best: np.ndarray
    share: np.ndarray
    seconds: float

    def root_amplitude(self, j: int, i: int, k: int) -> float:
        """:math:`a^{\\mathrm{root}}_{j,i,k}`."""
        return float(self.root[j, i, k])

    def first_amplitude(self, j: int, i: int, k: int) -> float:
        """:math:`\\sqrt{e_{j,i,k}} - \\sqrt{e^*_{j,i}}` (never negative)."""
        return max(math.sqrt(max(self.node[j, i, k], 0.0)) - math.sqrt(max(self.best[j, i], 0.0)), 0.0)

    def later_amplitude(self, j: int, i: int, k: int) -> float:
        """:math:`(\\sqrt{e_{j,i,k}} - \\sqrt{e_{j,i,\\infty}})_+`."""
        return max(math.sqrt(max(self.node[j, i, k], 0.0)) - math.sqrt(max(self.carried[j, i], 0.0)), 0.0)


def planner_tables(problem: MixtureProblem, progress=None) -> PlannerTables:
    r"""Build :class:`PlannerTables`: :math:`O(N^3)` node fits (each to the composite of its best chain
    and teacher steps, as the exact simulation fits it), each carried through the teacher.

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
    size = n_steps + 1
    approx, carried, best = (np.full((size, size), np.nan) for _ in range(3))
    node, root = np.full((size,) * 3, np.nan), np.full((size,) * 3, np.nan)
    share = np.full((size,) * 4, np.nan)
    executor = _Executor(problem)
    thetas: dict[tuple[int, int, int], np.ndarray] = {}   # (j, i, k) -> Theta_{j,i,k}, the node's parameters
    stars: dict[tuple[int, int], np.ndarray] = {}         # (j, i) -> Theta*_{j,i}, the best fit of T(j -> i)
    best_first = np.zeros((size, size), dtype=int)
    for j in range(1, n_steps + 1):
        z, weights = problem.points(j, 0)
        phi = features(teacher, problem.family, z, j)
        trajectory = teacher._trajectory(z, j, 0)

        def carried_error(theta: np.ndarray, i: int) -> float:
            out = teacher._composite(phi @ theta, i, 0)
            return float(weights @ np.sum((out - trajectory[-1]) ** 2, axis=1))

        for m in range(j - 1, 1, -1):
            _lag_shares(share, j, m, phi, weights, features(teacher, problem.family, trajectory[j - m], m), thetas, stars,
                        model)
        chains = {j - 1: j}   # k -> the best chain over j -> k (the teacher step for one step)
        best[j, j - 1] = 0.0
        for i in range(j - 1, -1, -1):
            star = least_squares(phi, weights, trajectory[j - i])
            approx[j, i] = star.residual
            if i == j - 1:
                continue
            carried[j, i] = carried_error(star.theta, i)
            stars[j, i] = star.theta
            best_k = None
            for k in range(j - 1, i, -1):   # shortest first child first: ties keep it
                tree = MergeNode((chains[k],) + tuple(range(k, i, -1)))
                theta = executor.fit_node(tree, model.eta_tau).theta
                node[j, i, k] = carried_error(theta, i)
                thetas[j, i, k] = theta
                if best_k is None or node[j, i, k] < node[j, i, best_k]:
                    best_k, chains[i] = k, tree
            best[j, i], best_first[j, i] = node[j, i, best_k], best_k
        if progress is not None:
            progress(j, n_steps)
    _root_amplitudes(problem, root, node, best, best_first, thetas)
    if not all(np.all(np.isfinite(a[~np.isnan(a)])) for a in (node, root, carried)):
        raise FloatingPointError(
            "the planner's node errors are not finite (the teacher or a fitted student overflowed on these "
            "points); use a smaller budget or a schedule with a smaller growth")
    return PlannerTables(n_steps, approx, carried, node, root, best, share, time.perf_counter() - start)


def _root_amplitudes(problem: MixtureProblem, root: np.ndarray, node: np.ndarray, best: np.ndarray,
                     best_first: np.ndarray, thetas: dict) -> None:
    r"""Fill ``root[j, i, k]``, the amplitude a segment root adds on the inputs it meets: for ``j = N``
    :math:`\sqrt{e_{N,i,k}}`; below, :math:`\sqrt{q_{j,i,k}} - \sqrt{e^*_{N,j}}` with :math:`q` the
    node's error on the outputs of the best one-segment chain over ``N -> j`` (the teacher step for
    ``j = N - 1``) and :math:`e^*_{N,j}` that chain's own carried error (validated input)."""
    teacher, n_steps, family = problem.teacher, problem.steps, problem.family
    z_noise, noise_weights = problem.points(n_steps, 0)
    final = problem.teacher_output()   # T(N -> 0) on the common inputs, cached with the simulation's
    phi_noise = features(teacher, family, z_noise, n_steps)
    root[n_steps] = np.sqrt(np.maximum(node[n_steps], 0.0))
    for j in range(1, n_steps):
        if j == n_steps - 1:
            seen, base = teacher._step(z_noise, n_steps), 0.0
        else:
            seen, base = phi_noise @ thetas[n_steps, j, best_first[n_steps, j]], math.sqrt(max(best[n_steps, j], 0.0))
        phi_seen = features(teacher, family, seen, j)
        for (top, i, k), theta in thetas.items():
            if top == j:
                out = teacher._composite(phi_seen @ theta, i, 0)
                root[j, i, k] = math.sqrt(float(noise_weights @ np.sum((out - final) ** 2, axis=1))) - base


def _lag_shares(share: np.ndarray, p: int, m: int, phi: np.ndarray, weights: np.ndarray, later: np.ndarray,
                thetas: dict, stars: dict, model) -> None:
    r"""Fill ``share[p, m, i, k]`` for every merge node ``m -> i`` with first child ending at ``k``:
    :math:`\|(I - \rho(G_p))\,\mathrm{Proj}_p\,\delta\| / \|\delta\|` on :math:`p_p` for the lag function
    :math:`\delta(z) = (\Theta_{m,i,k} - \Theta^*_{m,i})^\top\varphi_m(T(p\to m)z)`, i.e. what a parent
    trained for the model's budget from a start without it learns of it (0 where the lag is 0); one
    least-squares solve for all of them."""
    keys = [(i, k) for i in range(m - 1) for k in range(i + 1, m)]
    d = stars[m, 0].shape[1]
    targets = np.concatenate([later @ (thetas[m, i, k] - stars[m, i]) for i, k in keys], axis=1)
    fit = least_squares(phi, weights, targets)
    learned = phi @ train_parameters(fit, np.zeros_like(fit.theta), model.training, model.eta_tau, model.lr,
                                     model.gd_steps)
    total = (weights @ (targets * targets)).reshape(len(keys), d).sum(axis=1)
    kept = (weights @ (learned * learned)).reshape(len(keys), d).sum(axis=1)
    for (i, k), t, c in zip(keys, total, kept):
        share[p, m, i, k] = math.sqrt(min(1.0, c / t)) if t > 0.0 else 0.0


def _first_end(node: MergeNode) -> int:
    first = node.children[0]
    return first.bottom if isinstance(first, MergeNode) else first - 1


def plan_amplitude(tables: PlannerTables, plan: Plan) -> float:
    r"""The sum of the weighted node amplitudes of ``plan`` (the planner cost is its square)."""
    total = 0.0
    stack = [(seg, 1.0, "root") for seg in plan.segments if isinstance(seg, MergeNode)]
    while stack:
        node, weight, role = stack.pop()
        j, i, k = node.top, node.bottom, _first_end(node)
        if role == "root":
            total += weight * tables.root_amplitude(j, i, k)
        elif role == "first":
            total += weight * tables.first_amplitude(j, i, k)
        else:
            total += weight * tables.later_amplitude(j, i, k)
        for position, child in enumerate(node.children):
            if isinstance(child, MergeNode):
                if position == 0:
                    stack.append((child, weight, "first"))
                else:
                    stack.append((child, weight * tables.share[j, child.top, child.bottom, _first_end(child)], "later"))
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
    """The best segment root over every interval (first minimum met wins).

    Later-child terms are non-negative and a teacher step as a later child costs 0, so the best
    children after a first child ``j -> k`` are the teacher steps ``k, ..., i + 1`` and only the
    first-child chain is searched: ``chain(j, i) = min_k [first(j, i, k) + chain(j, k)]``,
    ``root(j, i) = min_k [root(j, i, k) + chain(j, k)]`` (docs/mixture.md §5.3).
    """
    n = tables.steps
    inf = math.inf
    chain = {}   # (j, i) -> (cost, tree): the best subtree in the place of a first child
    root = {}    # (j, i) -> (cost, tree)
    for length in range(1, n + 1):
        for i in range(0, n - length + 1):
            j = i + length
            if length == 1:
                chain[j, i] = root[j, i] = (0.0, j)
                continue
            best_chain, best_root = (inf, None), (inf, None)
            for k in range(j - 1, i, -1):  # first child j -> k, deterministic order: shortest first child first
                sub_cost, sub_tree = chain[j, k]
                children = (sub_tree,) + tuple(range(k, i, -1))
                c_chain = sub_cost + tables.first_amplitude(j, i, k)
                c_root = sub_cost + tables.root_amplitude(j, i, k)
                if c_chain < best_chain[0]:
                    best_chain = (c_chain, children)
                if c_root < best_root[0]:
                    best_root = (c_root, children)
            chain[j, i] = (best_chain[0], MergeNode(best_chain[1]))
            root[j, i] = (best_root[0], MergeNode(best_root[1]))
    return root


def optimal_mixture_plan(problem: MixtureProblem, segments: int = 1, tables: PlannerTables | None = None,
                         progress=None) -> MixturePlan:
    r"""The plan with ``segments`` segments that minimises :func:`plan_cost` (exact, by dynamic programming).

    Segments and nodes are chosen by an :math:`O(N^3 + M N^2)` interval program over the node
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
