r"""Joint plans for thousands of directions: the Pareto DP with bounds per *group* of directions. Private.

Why
---
The Pareto DP of :mod:`opmerge.solvers.pareto` keeps, for every interval ``j -> i``, the value
ranges and the context bounds of every direction: about :math:`12\,(N + 1)^2 d` numbers. At
``N = 64`` that is 1.7 GB for ``d = 3072`` directions and 9 GB for ``d = 16384`` (an image latent),
and the context pass costs :math:`O(N^3 d)`. Yet only the *candidates* (value vectors of partial
plans) need each direction exactly; the ranges and contexts are only used as **bounds**, and a
bound that holds for a whole group of directions holds for each of them.

What changes
------------
The directions are sorted by :math:`\lambda` and cut into at most ``G`` groups of consecutive
directions whose operators vary equally (:func:`group_directions`). For a group :math:`\mathcal G`:

* ranges: :math:`V^-_{\mathcal G}(i, j) = \min_{k \in \mathcal G} V^-_k(i, j)` and
  :math:`V^+_{\mathcal G} = \max_k V^+_k` (likewise ``F``, ``G``). The members' exact tables are
  computed a block of directions at a time (:func:`~opmerge.solvers.tables._fill` on a subset) and
  reduced at once, so the memory is that of one block, not of ``d`` directions;
* node maps: the retention of a group is the interval
  :math:`[\min_k r_{j,k}, \max_k r_{j,k}]` (and the DDIM jump likewise). Every coefficient of the
  local affine map of ``docs/theory.md`` §4 is monotone in :math:`r \in [0, 1]`, in the other
  child (``>= 0``) and in :math:`a_0 \ge 0`, so its bounds over the group are corners
  (:func:`~opmerge.solvers._pareto_kernels._node_map`);
* contexts: one box :math:`[A^-, A^+] \times [B^-, B^+]` per group and position, composed as
  before; it encloses the context of every member;
* the viability test of a context (``LB^2 < theta``) and the candidates' bounds and dominance
  tests still sum over the **members**, each with its own goal :math:`g_k`, weight :math:`s_k`
  and achievable range :math:`[S^-_k, S^+_k]`, with the group's box in place of the member's.

Every bound is a valid bound of each member, so the exactness argument of
:mod:`opmerge.solvers.pareto` (pruning by bound, dominance "never worse in any context") goes
through unchanged; only the pruning is weaker, which costs candidates, never correctness. The
candidates themselves are computed per direction with the exact operators, so the root vectors
and the certificate are those of the full problem: the answer is optimal within ``tol`` for the
``d`` directions, not for a binned stand-in.

The seed plans come from *binned* problems (one direction per bin, at the members'
weight-averaged :math:`\lambda`, with their summed weight; 64 and 256 bins), each solved by the
greedy DP (one vector kept per position, :math:`O(N^3 B)`) and evaluated on the full problem:
usually one of them is the optimum already, so the first run of the DP (threshold
:math:`(W_2^{\text{seed}} - \mathrm{tol})^2`) only has to prove it.

Memory: the member tables of one block (:data:`BLOCK_DIRECTIONS`), the group tables and contexts
(about :math:`12 (N + 1)^2 G` numbers) and the per-direction operators
(:math:`2 (N + 1) d`; with ``init='ddim'`` also the jumps, :math:`(N + 1)^2 d`).
"""

from __future__ import annotations

import math

import numpy as np

from ..objective import Problem, check_memory
from ._control import Budget, Incumbent
from ._pareto_dp import ParetoDP, pareto_applicable
from .tables import TABLE_NAMES, SlotBounds, TablesStopped, _fill

__all__ = ["GroupedTables", "GROUPED_MIN_DIM", "MIN_AUTO_GROUPS", "MAX_AUTO_GROUPS", "auto_groups", "BLOCK_DIRECTIONS",
           "group_directions", "binned_problem", "grouped_table_bytes", "use_groups"]

#: from this many directions on, :func:`~opmerge.solvers.solve_joint` groups them (``groups="auto"``)
GROUPED_MIN_DIM = 1024
#: fewest and most groups of ``groups="auto"`` (:func:`auto_groups`)
MIN_AUTO_GROUPS = 256
MAX_AUTO_GROUPS = 1024
#: directions per group of ``groups="auto"`` between those limits
DIRECTIONS_PER_AUTO_GROUP = 6
#: directions whose exact range tables are held at once while the group tables are built
BLOCK_DIRECTIONS = 512
#: bin counts of the greedy seed plans (:func:`seed_from_bins`)
SEED_BINS = (64, 256)


def group_directions(problem: Problem, groups: int) -> np.ndarray:
    r"""The group of every direction: runs of consecutive directions in the order of :math:`\lambda`
    with equal *variation* of their operators.

    A direction's operators are its teacher steps :math:`A_{n,k}` and retentions :math:`r_{j,k}`
    (what its range tables are made of). Along increasing :math:`\lambda` (stable order) the
    arc length :math:`\ell_k = \sum_{l \le k} \max_n |F_{l,n} - F_{l-1,n}|` of these features
    :math:`F` is cut into ``groups`` equal parts; empty parts are dropped. Every two members of a
    group then differ by at most :math:`\ell_{\text{total}} / G` in every operator, so the
    group's bounds stay close to each member's: directions whose operators barely change with
    :math:`\lambda` (very small or very large eigenvalues) share a group, while directions where they
    change fast get groups of their own. Any grouping gives valid bounds; this one keeps them tight.

    Parameters
    ----------
    problem : Problem
    groups : int
        At most this many groups (``1 <= groups <= d``).

    Returns
    -------
    (d,) int64 ndarray
        ``group_of[k]`` in ``0 .. G - 1`` (``G <= groups`` groups, each non-empty), non-decreasing
        along increasing ``lam``.
    """
    lam = np.asarray(problem.lam, dtype=np.float64)
    order = np.argsort(lam, kind="stable")
    features = np.concatenate([np.asarray(problem.step_values, dtype=np.float64),
                               np.asarray(problem.retention, dtype=np.float64)], axis=1)[order]
    step = np.zeros(len(lam))
    if len(lam) > 1:
        step[1:] = np.max(np.abs(np.diff(features, axis=0)), axis=1)
    arc = np.cumsum(step)
    total = arc[-1]
    if total > 0:
        part = np.minimum((arc / total * groups).astype(np.int64), groups - 1)
    else:
        part = (np.arange(len(lam)) * groups) // len(lam)
    _, dense = np.unique(part, return_inverse=True)  # drop empty parts
    group_of = np.empty(len(lam), dtype=np.int64)
    group_of[order] = dense
    return group_of


def grouped_table_bytes(problem: Problem, groups: int) -> int:
    r"""Bytes the grouped solver's tables take (an upper estimate).

    .. math:: 8\,\big(b\,(4 (N + 1)^2 + 2 (M + 1)(N + 1)) + 3 G\,(4 (N + 1)^2 + 2 (M + 1)(N + 1))
              + 8 G (N + 1)^2 + 3 d (N + 1) + j\big)

    with a block of ``b`` directions, ``G`` groups (their tables twice, their contexts ``ctx_v,
    ctx_f``) and the per-direction operators (``j = 2 d (N + 1)^2`` with ``init='ddim'``).
    """
    n1, m1, d = problem.steps + 1, problem.segments + 1, problem.dim
    per = 4 * n1 * n1 + 2 * m1 * n1
    block = min(BLOCK_DIRECTIONS, d)
    jump = 2 * d * n1 * n1 if problem.model.init == "ddim" else 0
    return 8 * (block * per + 3 * groups * per + 8 * groups * n1 * n1 + 3 * d * n1 + jump)


def auto_groups(dim: int) -> int:
    r"""The group count of ``groups="auto"`` for ``dim`` directions:
    :math:`\min(1024, \max(256, \lfloor d / 6 \rfloor))`.

    More groups give tighter bounds (fewer candidates) but a longer context pass; measured at
    ``N = 64`` (``docs/spectra.md``), 512 groups suit 3,072 directions and 1,024 suit 16,384. At
    1,024 groups and ``N = 64`` the tables take about 0.8 GB.
    """
    return min(MAX_AUTO_GROUPS, max(MIN_AUTO_GROUPS, dim // DIRECTIONS_PER_AUTO_GROUP))


def use_groups(problem: Problem, groups) -> int | None:
    """The number of groups the joint solver uses for ``problem`` (``None``: one slot per direction).

    ``groups`` is validated: ``"auto"`` (:func:`auto_groups` from :data:`GROUPED_MIN_DIM`
    directions on), ``None`` (never) or an int ``>= 1`` (capped at ``d``;
    ``d`` itself means one direction per slot: ``None``). Groups are used only where the Pareto
    path applies (:func:`~opmerge.solvers.pareto.pareto_applicable`, a linear law): elsewhere the
    solver needs every direction's tables and ``groups`` is ignored.
    """
    if groups is None or not problem.model.linear or not pareto_applicable(problem)[0]:
        return None
    if groups == "auto":
        if problem.dim < GROUPED_MIN_DIM:
            return None
        groups = auto_groups(problem.dim)
    groups = min(int(groups), problem.dim)
    return None if groups >= problem.dim else groups


def binned_problem(problem: Problem, group_of: np.ndarray) -> Problem:
    r"""One direction per group: :math:`\lambda_{\mathcal G} = \sum_k \omega_k \lambda_k / \sum_k \omega_k`
    and weight :math:`\omega_{\mathcal G} = \sum_k \omega_k` (unweighted mean when the weights sum to 0).

    Used to seed the grouped solver; its optimum is evaluated on ``problem`` itself.
    """
    groups = int(group_of.max()) + 1
    weights = np.asarray(problem.weights, dtype=np.float64)
    lam = np.asarray(problem.lam, dtype=np.float64)
    w_sum = np.bincount(group_of, weights=weights, minlength=groups)
    lam_w = np.bincount(group_of, weights=weights * lam, minlength=groups)
    count = np.bincount(group_of, minlength=groups)
    lam_plain = np.bincount(group_of, weights=lam, minlength=groups) / count
    rep = np.where(w_sum > 0, lam_w / np.where(w_sum > 0, w_sum, 1.0), lam_plain)
    return Problem(problem.schedule, lam=rep, weights=w_sum, model=problem.model, solver=problem.solver,
                   target=problem.target, segments=problem.segments)


class GroupedTables:
    r"""The range tables of :class:`~opmerge.solvers.tables.ProblemTables`, enclosed per group of directions.

    Duck-types what :class:`~opmerge.solvers._pareto_dp.ParetoDP` and
    :func:`~opmerge.solvers.pareto.joint_plan` read (``lo``, ``hi``, :meth:`slot_bounds`,
    :meth:`problem_last`); the branch and bound (which needs every direction's tables) does not
    run on it.

    Parameters
    ----------
    problem : Problem
        ``budget='per-merge'``, a linear law (the Pareto path applies).
    groups : int
        ``2 <= groups < d``.
    budget : Budget, optional
        Its deadline covers the tables (:class:`~opmerge.solvers.tables.TablesStopped`).
    group_of : (d,) int ndarray, optional
        The groups (every group ``0 .. G - 1`` non-empty); default :func:`group_directions`.

    Attributes
    ----------
    lo, hi : (d,) ndarray
        The exact achievable range of every direction.
    group_of : (d,) int64 ndarray
    groups : int
    """

    grouped = True

    def __init__(self, problem: Problem, groups: int, budget: Budget | None = None, group_of: np.ndarray | None = None):
        check_memory(grouped_table_bytes(problem, groups),
                     f"problem too large for the grouped solver: steps = {problem.steps}, segments = {problem.segments}, "
                     f"{problem.dim} directions of lam in {groups} groups need", "use fewer steps or fewer directions")
        self.problem = problem
        n, m, d = problem.steps, problem.segments, problem.dim
        self.group_of = group_directions(problem, groups) if group_of is None else np.asarray(group_of, dtype=np.int64)
        self.groups = int(self.group_of.max()) + 1
        order = np.argsort(self.group_of, kind="stable")  # members of group 0, then 1, ...
        starts = np.searchsorted(self.group_of[order], np.arange(self.groups))
        shapes = {"v": (n + 1, n + 1), "f": (n + 1, n + 1), "g": (m + 1, n + 1)}
        first = {name: np.full((self.groups,) + shapes[name[0]], np.inf if name.endswith("_lo") else -np.inf)
                 for name in TABLE_NAMES}
        self.lo = np.empty(d)
        self.hi = np.empty(d)
        sorted_groups = self.group_of[order]
        for begin in range(0, d, BLOCK_DIRECTIONS):  # the members' exact tables, a block at a time
            members = order[begin:begin + BLOCK_DIRECTIONS]
            block = dict(zip(TABLE_NAMES, _fill(problem, problem.retention, budget, members)))
            block_groups = sorted_groups[begin:begin + BLOCK_DIRECTIONS]
            offsets = np.flatnonzero(np.r_[True, np.diff(block_groups) != 0])
            which = block_groups[offsets]
            for name in TABLE_NAMES:
                reduce = np.minimum if name.endswith("_lo") else np.maximum
                first[name][which] = reduce(first[name][which], reduce.reduceat(block[name], offsets, axis=0))
            self.lo[members] = block["g_lo"][:, m, n]
            self.hi[members] = block["g_hi"][:, m, n]
            del block
            if budget is not None:
                if budget.expired():
                    raise TablesStopped
                budget.report("tables")
        self._tables = {name: np.ascontiguousarray(np.moveaxis(first[name], 0, -1)) for name in TABLE_NAMES}
        del first
        offsets = starts  # the first member of every group, in sorted order
        retention = np.asarray(problem.retention, dtype=np.float64)[order]
        self._ret_lo = np.ascontiguousarray(np.minimum.reduceat(retention, offsets, axis=0).T)
        self._ret_hi = np.ascontiguousarray(np.maximum.reduceat(retention, offsets, axis=0).T)
        if problem.model.init == "ddim" and problem.jump is not None:
            jump = np.asarray(problem.jump, dtype=np.float64)[order]
            self._jump_lo = np.ascontiguousarray(np.moveaxis(np.minimum.reduceat(jump, offsets, axis=0), 0, -1))
            self._jump_hi = np.ascontiguousarray(np.moveaxis(np.maximum.reduceat(jump, offsets, axis=0), 0, -1))
        else:
            self._jump_lo = self._jump_hi = np.zeros((1, 1, self.groups))
        self._s_hi = np.ascontiguousarray(np.maximum.reduceat(self.hi[order], offsets))
        self._problem_last: tuple | None = None

    def slot_bounds(self) -> SlotBounds:
        """The bounds of the context pass, one slot per group (:class:`~opmerge.solvers.tables.SlotBounds`)."""
        return SlotBounds(self._tables, self._ret_lo, self._ret_hi, self._jump_lo, self._jump_hi, self.group_of, self._s_hi,
                          False)

    def problem_last(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, retention, jump)`` per direction, direction axis last (as
        :meth:`ProblemTables.problem_last <opmerge.solvers.tables.ProblemTables.problem_last>`)."""
        if self._problem_last is None:
            p = self.problem
            jump = (np.ascontiguousarray(np.moveaxis(p.jump, 0, -1)) if (p.jump is not None and p.model.init == "ddim")
                    else np.zeros((1, 1, p.dim)))
            self._problem_last = (np.ascontiguousarray(p.step_values.T), np.ascontiguousarray(p.retention.T), jump)
        return self._problem_last


def seed_from_bins(problem: Problem, incumbent: Incumbent, budget: Budget | None = None) -> None:
    """Offer ``incumbent`` the greedy plan (:meth:`~opmerge.solvers._pareto_dp.ParetoDP.greedy_plan`)
    of the binned problem (:func:`binned_problem`) at each bin count of :data:`SEED_BINS` (capped at ``d``).

    The greedy DP keeps one vector per position, so on a binned problem of ``B`` directions it
    costs :math:`O(N^3 B)`: well under a second at ``N = 64``. Its plan is usually the optimum of
    the full problem already (then the first exact run only has to prove it).
    """
    for bins in SEED_BINS:
        group_of = group_directions(problem, min(bins, problem.dim))
        plan = ParetoDP(binned_problem(problem, group_of), math.inf, budget=budget).greedy_plan()
        if plan is not None:
            incumbent.offer(plan)
