r"""The interval dynamic program's value ranges, the achievable range and extreme plans.

Every node value is bilinear in its children, so :func:`range_tables` computes, exactly and in
:math:`O(N^3)` per direction, the smallest and largest value of every tree, forest and sequence of
segments over every interval (Numba kernel :func:`opmerge.solvers._kernels.range_dp`);
:func:`achievable_range` reads off the interval :math:`[S_{\min}, S_{\max}]` of student operators
over *all* plans with ``M`` segments, and :func:`extreme_plan` rebuilds a plan attaining one end.

The solvers build the tables once per problem (:class:`ProblemTables`, which also holds the
direction-last copies their kernels read) and pass them down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..objective import Problem, check_memory
from ..plans import Plan, plan_from_nested
from ._interrupts import interruptible
from ._checks import check_choice, check_int, check_problem, check_tables
from ._kernels import FILL_BLOCK, INIT_CODES, find_choice, new_tables, range_dp_run
from ._law_search import law_range_tables

__all__ = ["range_tables", "achievable_range", "extreme_plan", "ProblemTables", "TABLE_NAMES", "table_bytes",
           "check_table_size"]

#: names of the six tables, in the order :func:`~opmerge.solvers._kernels.range_dp` returns them
TABLE_NAMES = ("v_lo", "v_hi", "f_lo", "f_hi", "g_lo", "g_hi")
_TABLE_NAMES = TABLE_NAMES


def _merge_count_range(problem: Problem) -> range:
    n, m = problem.steps, problem.segments
    return range(0, 1) if m == n else range(1, n - m + 1)


# ---------------------------------------------------------------------------------------------
# size limit
# ---------------------------------------------------------------------------------------------
def table_bytes(problem: Problem) -> int:
    r"""Bytes the range tables of ``problem`` take while a solver uses them (an upper estimate).

    .. math:: 8\,\big(c\, d\, (4 (N + 1)^2 + 2 (M + 1)(N + 1)) + 2 (N + 1)^2\big)

    with ``d`` directions, ``c = 2`` copies (direction first and direction last; ``c = 3`` for
    ``budget='total'``, whose tables are the union over the merge counts) and the scratch of the
    running direction.

    Parameters
    ----------
    problem : Problem

    Returns
    -------
    int
    """
    n1, m1, dim = problem.steps + 1, problem.segments + 1, problem.dim
    copies = 3 if problem.model.budget == "total" else 2
    return 8 * (copies * dim * (4 * n1 * n1 + 2 * m1 * n1) + 2 * n1 * n1)


def check_table_size(problem: Problem) -> None:
    """Refuse, before anything is allocated, a problem whose range tables exceed :func:`opmerge.objective.memory_limit`.

    Raises
    ------
    InputError
        Naming ``steps`` (``N``), ``segments`` (``M``), the number of directions (``lam``), the
        bytes needed and the limit.
    """
    check_memory(table_bytes(problem),
                 f"problem too large for the solver: the range tables of steps = {problem.steps}, segments = "
                 f"{problem.segments} and {problem.dim} direction(s) of lam need",
                 "use fewer steps or fewer directions (bin the spectrum)")


# ---------------------------------------------------------------------------------------------
# the tables, built in slices
# ---------------------------------------------------------------------------------------------
class TablesStopped(Exception):
    """The time budget ran out while the range tables were built (private; caught by the solvers)."""


#: target duration of one call of the range DP kernel (seconds): Python regains control this often
SLICE_SECONDS = 0.02
_FIRST_SLICE_WORK = 20_000


def _fill(problem: Problem, retention: np.ndarray, budget=None, members: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """The six tables (direction axis first) for ``retention``, computed by
    :func:`~opmerge.solvers._kernels.range_dp_run` in slices of about :data:`SLICE_SECONDS`.

    ``members`` (optional): only these directions, in this order (the grouped solver builds its
    tables a block of directions at a time); each direction's tables are the same either way.
    Between slices the deadline of ``budget`` (optional) is checked (:class:`TablesStopped` when it
    has passed) and its progress told (phase ``"tables"``); a pending Ctrl-C surfaces there too.
    """
    n, m = problem.steps, problem.segments
    pick = (lambda a: a) if members is None else (lambda a: a[members])  # noqa: E731
    dim = problem.dim if members is None else len(members)
    # tables of one block are set at once; larger ones check the deadline after each block
    large = dim * (n + 1) ** 2 > FILL_BLOCK
    out = new_tables(dim, n, m, (lambda: _stop_if_expired(budget)) if budget is not None and large else None)
    init_code = INIT_CODES[problem.model.init]
    ddim = init_code == INIT_CODES["ddim"] and problem.jump is not None
    jump = pick(problem.jump) if ddim else np.zeros((1, 1, 1))
    steps = np.ascontiguousarray(pick(problem.step_values), dtype=np.float64)
    retention = np.ascontiguousarray(pick(retention), dtype=np.float64)
    jump = np.ascontiguousarray(jump, dtype=np.float64)
    vt_lo, vt_hi = np.empty((n + 1, n + 1)), np.empty((n + 1, n + 1))
    state = np.zeros(5, dtype=np.int64)
    work = _FIRST_SLICE_WORK
    while True:
        began = time.perf_counter()
        range_dp_run(steps, retention, init_code, jump, m, *out, vt_lo, vt_hi, state, work)
        if state[0] >= dim:
            return out
        took = time.perf_counter() - began
        # aim at SLICE_SECONDS per call (at most doubling, at least 1,000 steps)
        work = int(max(1_000, min(2 * work, work * SLICE_SECONDS / max(took, 1e-6))))
        if budget is not None:  # checked after a slice: tiny problems finish in their first one
            _stop_if_expired(budget)
            budget.report("tables")


def _stop_if_expired(budget) -> None:
    """Raise :class:`TablesStopped` when the deadline of ``budget`` has passed."""
    if budget.expired():
        raise TablesStopped


def _range_tables(problem: Problem, budget=None) -> dict[str, np.ndarray]:
    check_table_size(problem)
    if not problem.model.linear:  # sign, adam: enclosures (docs/solver.md)
        def between() -> None:
            if budget is not None:
                _stop_if_expired(budget)
                budget.report("tables")

        return dict(zip(_TABLE_NAMES, law_range_tables(problem, between)))
    if problem.model.budget != "total":
        return dict(zip(_TABLE_NAMES, _fill(problem, problem.retention, budget)))
    tables: dict = {}
    for count in _merge_count_range(problem):
        one = dict(zip(_TABLE_NAMES, _fill(problem, problem.retention_for(count), budget)))
        if not tables:
            tables = one
            continue
        for name in _TABLE_NAMES:
            np.minimum(tables[name], one[name], out=tables[name]) if name.endswith("_lo") else np.maximum(
                tables[name], one[name], out=tables[name])
    return tables


@interruptible
def range_tables(problem: Problem) -> dict[str, np.ndarray]:
    r"""Value ranges of trees ``V``, forests ``F`` and segment sequences ``G`` for every direction.

    The interval dynamic program of :mod:`opmerge.solvers._kernels`: every node value is bilinear
    in its children, so the extremes over all subtrees of an interval are attained at corners of
    the children's extremes,

    .. math:: V_{\min}(i, j) = \min_{m,\ c_1 \in \{V^{\pm}(m, j)\},\ R \in \{F^{\pm}(i, m)\}} f(c_1, R),

    and likewise for the maxima, forests and segment sequences (:math:`O(N^3)` time per direction,
    computed in slices of about 20 ms so that Ctrl-C is honoured at once).

    Parameters
    ----------
    problem : Problem

    Returns
    -------
    dict of str to ndarray
        Arrays with the direction axis first: ``v_lo, v_hi, f_lo, f_hi`` of shape
        ``(d, N + 1, N + 1)`` (entry ``[., i, j]`` for the steps ``j -> i``), ``g_lo, g_hi`` of
        shape ``(d, M + 1, N + 1)``. For ``budget='total'`` the ranges enclose the union over the
        possible merge counts.

    Raises
    ------
    InputTypeError
        When ``problem`` is not a :class:`~opmerge.objective.Problem`.
    InputError
        When the tables would need more memory than :func:`opmerge.objective.memory_limit` (the message names
        ``steps``, ``segments``, the number of directions and the bytes).
    """
    return _range_tables(check_problem(problem))


def _student_range(problem: Problem, tables: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return tables["g_lo"][:, problem.segments, problem.steps].copy(), tables["g_hi"][:, problem.segments, problem.steps].copy()


@interruptible
def achievable_range(problem: Problem, tables: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact :math:`[\min_{\text{plans}} S_i, \max_{\text{plans}} S_i]` per direction.

    .. math:: S_i^- = G_{\min}(M, N)_i, \qquad S_i^+ = G_{\max}(M, N)_i

    Exact for ``budget='per-merge'``; an enclosing interval for ``budget='total'``.

    Parameters
    ----------
    problem : Problem
    tables : dict, optional
        The output of :func:`range_tables` for ``problem`` (computed when omitted).

    Returns
    -------
    lo, hi : (d,) ndarray
        The smallest and largest student value of every direction over all plans with ``M`` segments.

    Raises
    ------
    InputTypeError
        When ``problem`` is not a :class:`~opmerge.objective.Problem` or ``tables`` not a dict of arrays.
    InputError
        When ``tables`` has another shape, or the tables to compute exceed the memory limit.
    """
    check_problem(problem)
    tables = check_tables(tables, problem)
    return _student_range(problem, _range_tables(problem) if tables is None else tables)


@interruptible
def extreme_plan(problem: Problem, direction: int = 0, side: str = "lo", tables: dict[str, np.ndarray] | None = None) -> Plan:
    """A plan attaining the minimum (``side='lo'``) or maximum (``'hi'``) student value of one direction.

    The choices that attain the extremes of :func:`range_tables` are recomputed node by node
    (same arithmetic, so equality is exact) and the plan is rebuilt from the root down.

    Parameters
    ----------
    problem : Problem
        With ``budget='per-merge'`` (for ``'total'`` a node's retention depends on the whole plan).
    direction : int
        Eigen-direction, in ``[0, d - 1]``.
    side : {"lo", "hi"}
    tables : dict, optional
        The output of :func:`range_tables` for ``problem`` (computed when omitted).

    Returns
    -------
    Plan
        A plan with ``M`` segments whose student value of ``direction`` is the end ``side`` of
        :func:`achievable_range`.

    Raises
    ------
    InputError
        For ``budget='total'``, a ``side`` other than ``'lo'``/``'hi'``, a direction out of range or
        ``tables`` of another shape.
    InputTypeError
        When ``problem`` is not a Problem, ``direction`` not an int or ``tables`` not a dict of arrays.
    """
    check_problem(problem)
    if problem.model.budget == "total":
        raise InputError("extreme_plan needs problem.model.budget = 'per-merge' (extreme plans are not read off the DP for 'total')")
    if not problem.model.linear:
        raise InputError(f"extreme_plan needs a linear training law (flow, gd, empirical), got training={problem.model.training!r}")
    check_choice(side, "side", ("lo", "hi"))
    direction = check_int(direction, "direction", 0, problem.dim - 1)
    tables = check_tables(tables, problem)
    return _extreme_plan(problem, direction, side, _range_tables(problem) if tables is None else tables)


def _extreme_plan(problem: Problem, direction: int, side: str, tables: dict[str, np.ndarray]) -> Plan:
    one = {name: tables[name][direction] for name in _TABLE_NAMES}
    return plan_from_shape(extreme_shape(problem, direction, side, one))


def extreme_shape(problem: Problem, direction: int, side: str, tables: dict[str, np.ndarray]) -> tuple:
    """The extreme plan of :func:`extreme_plan` as nested tuples (a leaf is its step ``n``, a merge
    node the tuple of its children; one entry per segment, noise side first): cheap to build and
    to compare, so that solvers build each distinct plan once. ``tables``: the six tables of
    ``direction`` alone (:meth:`ProblemTables.direction`)."""
    t = tables
    d = direction
    jump = np.ascontiguousarray(problem.jump[d]) if problem.jump is not None else np.zeros((1, 1))
    args = (
        np.ascontiguousarray(problem.step_values[d]), np.ascontiguousarray(problem.retention[d]),
        INIT_CODES[problem.model.init], jump,
        *(np.ascontiguousarray(t[name]) for name in _TABLE_NAMES),
    )

    def choose(kind, a, j, s):
        m, bits = find_choice(kind, s, a, j, *args)
        if m == -2:  # cannot happen: the extreme was computed by the same arithmetic
            raise RuntimeError("internal error: no choice attains the DP extreme")
        # a forest that is one tree (m = -1) keeps the extreme s of the forest
        return int(m), s if m < 0 else int(bits) & 1, (int(bits) >> 1) & 1

    return rebuild_shape(choose, problem.steps, problem.segments, 0 if side == "lo" else 1)


def rebuild_shape(choose, steps: int, segments: int, state) -> tuple:
    """The plan a dynamic program chose, as nested tuples (as :func:`extreme_shape` makes them).

    Built with an explicit stack, not recursion: a plan can be ``N`` levels deep.

    Parameters
    ----------
    choose : callable
        ``choose(kind, a, j, state) -> (m, first, rest)``: the choice made for the trees
        (``kind`` 0) or forests (1) over ``j -> a`` or the ``a`` segments (2) over ``j -> 0`` at
        ``state``: the split ``m`` and the states of the first part (a tree over ``j -> m``) and of
        the rest; a forest that is one tree has ``m < 0``, its tree the state ``first``.
    steps, segments : int
        ``N`` and ``M`` of the problem.
    state : object
        The state of the whole plan (its ``M`` segments over ``N -> 0``).

    Returns
    -------
    tuple
        One entry per segment, noise side first.
    """

    def forest(i, j, s):
        """The trees ``(i, j, state)`` of the forest over ``j -> i``, noise side first."""
        out = []
        while True:
            if j == i + 1:
                out.append((i, j, s))
                return out
            m, first, rest = choose(1, i, j, s)
            if m < 0:
                out.append((i, j, first))
                return out
            out.append((m, j, first))
            j, s = m, rest

    segment_specs = []
    k, j, s = segments, steps, state
    while k > 1:
        m, first, rest = choose(2, k, j, s)
        segment_specs.append((m, j, first))
        k, j, s = k - 1, m, rest
    segment_specs.append((0, j, s))

    # nodes under construction are lists (filled through their slots), turned into tuples at the end
    root: list = [None] * len(segment_specs)
    tasks = [(root, index, spec) for index, spec in enumerate(segment_specs)]
    lists = []
    while tasks:
        parent, index, (i, j, s) = tasks.pop()
        if j == i + 1:
            parent[index] = j
            continue
        m, first, rest = choose(0, i, j, s)
        specs = [(m, j, first), *forest(i, m, rest)]
        node: list = [None] * len(specs)
        parent[index] = node
        lists.append(node)
        tasks.extend((node, position, spec) for position, spec in enumerate(specs))
    return _freeze(root, lists)


def _freeze(root: list, lists: list) -> tuple:
    """Nested lists as nested tuples, innermost first (``lists``: every inner list, parents before children)."""
    frozen: dict[int, tuple] = {}
    for node in reversed(lists):  # children were appended after their parents
        frozen[id(node)] = tuple(frozen[id(c)] if isinstance(c, list) else c for c in node)
    return tuple(frozen[id(c)] if isinstance(c, list) else c for c in root)


def shape_key(shape: tuple) -> tuple:
    """A flat key of a shape (its pre-order with the sizes of the nodes), equal for equal shapes:
    hashing or comparing deeply nested tuples recurses in C."""
    out = []
    stack = [shape]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):
            out.append(-len(node))
            stack.extend(reversed(node))
        else:
            out.append(node)
    return tuple(out)


def plan_from_shape(shape: tuple) -> Plan:
    """The :class:`~opmerge.plans.Plan` of nested tuples made by :func:`extreme_shape`
    (:func:`~opmerge.plans.plan_from_nested`, which builds without recursion: a plan can be
    ``N`` levels deep)."""
    return plan_from_nested(shape)


def retention_bound(problem: Problem, reduce) -> np.ndarray:
    """Elementwise ``reduce`` (``np.minimum`` or ``np.maximum``) of the retention over the possible merge counts."""
    if problem.retention is None:  # sign, adam: no retention; their search does not read it
        return np.ones((problem.dim, problem.steps + 1))
    if problem.model.budget != "total":
        return np.asarray(problem.retention)
    tables = [problem.retention_for(count) for count in _merge_count_range(problem)]
    out = tables[0]
    for t in tables[1:]:
        out = reduce(out, t)
    return out


@dataclass(frozen=True, eq=False)
class SlotBounds:
    r"""What the context pass of the Pareto DP reads, per *slot*: one direction, or a group of directions.

    For a group, every array holds for each of its directions: the value ranges enclose the
    members' ranges, ``[ret_lo, ret_hi]`` their retentions, ``[jump_lo, jump_hi]`` their DDIM jumps
    and ``s_hi`` their largest achievable root values (:mod:`opmerge.solvers._grouped`).

    Attributes
    ----------
    tables : dict of str to ndarray
        ``v_lo, v_hi, f_lo, f_hi`` ``(N + 1, N + 1, slots)`` and ``g_lo, g_hi`` ``(M + 1, N + 1, slots)``.
    ret_lo, ret_hi : (N + 1, slots) ndarray
    jump_lo, jump_hi : (N + 1, N + 1, slots) ndarray, or zeros ``(1, 1, slots)`` unless ``init='ddim'``
    group_of : (d,) int64 ndarray
        The slot of each direction.
    s_hi : (slots,) ndarray
    identity : bool
        One direction per slot, in order (``group_of = arange(d)``).
    """

    tables: dict
    ret_lo: np.ndarray
    ret_hi: np.ndarray
    jump_lo: np.ndarray
    jump_hi: np.ndarray
    group_of: np.ndarray
    s_hi: np.ndarray
    identity: bool


class ProblemTables:
    r"""The range tables of one problem, built once and shared by every solver phase.

    The interval DP runs in slices (:func:`range_tables`); the tables are kept with the direction
    axis first (:attr:`by_direction`) and, on first use, copied with the direction axis last
    (:meth:`direction_last`, what the search and Pareto kernels read).

    Parameters
    ----------
    problem : Problem
    by_direction : dict of str to ndarray, optional
        The output of :func:`range_tables` for ``problem`` (computed when omitted).
    budget : Budget, optional
        Its deadline covers the tables: when it passes before they are done,
        :class:`TablesStopped` is raised; the progress (phase ``"tables"``) is told between slices
        (:class:`~opmerge.solvers._control.Budget`).

    Attributes
    ----------
    problem : Problem
    lo, hi : (d,) ndarray
        The achievable range (:func:`achievable_range`).

    Raises
    ------
    InputError
        When the tables would exceed :func:`opmerge.objective.memory_limit` (checked before any allocation).
    TablesStopped
        When ``budget`` ran out first.
    """

    def __init__(self, problem: Problem, by_direction: dict[str, np.ndarray] | None = None, budget=None):
        self.problem = problem
        self._first = _range_tables(problem, budget) if by_direction is None else by_direction
        self._last: dict[str, np.ndarray] | None = None
        self._problem_last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.lo, self.hi = _student_range(problem, self._first)

    @property
    def by_direction(self) -> dict[str, np.ndarray]:
        """The six tables with the direction axis first (the output of :func:`range_tables`)."""
        return self._first

    def direction(self, d: int) -> dict[str, np.ndarray]:
        """The six tables of direction ``d`` (C-contiguous)."""
        return {name: np.ascontiguousarray(self._first[name][d]) for name in _TABLE_NAMES}

    def problem_last(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, retention, jump)`` of the problem with the direction axis last, C-contiguous:
        ``(N + 1, d)``, ``(N + 1, d)`` and ``(N + 1, N + 1, d)`` (zeros ``(1, 1, d)`` unless ``init='ddim'``); built once."""
        if self._problem_last is None:
            p = self.problem
            jump = (np.ascontiguousarray(np.moveaxis(p.jump, 0, -1)) if p.jump is not None else np.zeros((1, 1, p.dim)))
            self._problem_last = (np.ascontiguousarray(p.step_values.T), np.ascontiguousarray(p.retention.T), jump)
        return self._problem_last

    def slot_bounds(self) -> SlotBounds:
        """The bounds of the context pass with one slot per direction (:class:`SlotBounds`)."""
        _steps, retention, jump = self.problem_last()
        hi = np.ascontiguousarray(self.hi, dtype=np.float64)
        return SlotBounds(self.direction_last(), retention, retention, jump, jump, np.arange(self.problem.dim, dtype=np.int64),
                          hi, True)

    def direction_last(self) -> dict[str, np.ndarray]:
        """The six tables with the direction axis last, C-contiguous (what the kernels read); built once."""
        if self._last is None:
            self._last = {k: np.ascontiguousarray(np.moveaxis(self._first[k], 0, -1)) for k in TABLE_NAMES}
        return self._last
