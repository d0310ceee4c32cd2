"""Driver of the Numba one-direction search (:mod:`opmerge.solvers._line_kernel`). Private."""

from __future__ import annotations

import math
import time

import numpy as np

from .._util import deep_recursion
from ..plans import MergeNode, Plan
from ._kernels import INIT_CODES
from ._line_kernel import HOLE_F, HOLE_V, LEAF, NODE, PROD, line_search, start_search
from ._search import ValueLists

POOL_SIZE = 1 << 20
STACK_SIZE = 1 << 18
#: expansions in the first slice of the kernel; later slices adapt to last about SLICE_SECONDS
FIRST_SLICE = 1024
MAX_SLICE = 1 << 20
SLICE_SECONDS = 0.02
#: lists of all values are built for every interval up to this many entries in total
MAX_LIST_ENTRIES = 12_000_000


def _list_sizes(length: int) -> tuple[int, int]:
    """(number of trees, number of forests) over ``length`` steps."""
    trees = [0, 1]
    forests = [0, 1]
    for n in range(2, length + 1):
        trees.append(sum(trees[n - m] * forests[m] for m in range(1, n)))
        forests.append(trees[n] + sum(trees[n - m] * forests[m] for m in range(1, n)))
    return trees[length], forests[length]


def effective_list_length(steps: int, list_length: int) -> int:
    """Largest ``L <= list_length`` whose lists for every interval fit in ``MAX_LIST_ENTRIES``."""
    length = min(list_length, steps)
    while length > 1:
        total = sum((steps - ell + 1) * sum(_list_sizes(ell)) for ell in range(1, length + 1))
        if total <= MAX_LIST_ENTRIES:
            break
        length -= 1
    return max(length, 1)


def run_line_search(problem, tables, best_sq, tol, estimate_slack, node_budget, budget, list_length):
    """Search one direction; returns ``(best_sq, plan or None, lower_bound_sq, nodes, complete)``.

    ``tables``: the six range tables of the one direction (:meth:`~opmerge.solvers.tables.ProblemTables.direction`);
    ``budget``: the :class:`~opmerge.solvers._control.Budget` of the call, asked for the deadline
    between list lengths while the value lists are built (shorter lists when it has passed) and
    between slices of the kernel (about ``SLICE_SECONDS`` each). Resuming the kernel after a slice
    continues the same search, so the result does not depend on the slicing.
    """
    n = problem.steps
    steps = np.ascontiguousarray(problem.step_values[0])
    retention = np.ascontiguousarray(problem.retention[0])
    init_code = INIT_CODES[problem.model.init]
    jump = np.ascontiguousarray(problem.jump[0]) if problem.jump is not None else np.zeros((1, 1))
    goal = float(problem.goal[0])
    scale = float(problem.scale[0])
    data_target = problem.target == "data"
    tab = {k: np.ascontiguousarray(tables[k]) for k in ("v_lo", "v_hi", "f_lo", "f_hi", "g_lo", "g_hi")}

    length = effective_list_length(n, list_length)
    lists = ValueLists(steps, retention, init_code, jump if init_code == 1 else None)
    list_off = np.zeros((2, n + 1, n + 1), np.int64)
    list_len = np.zeros((2, n + 1, n + 1), np.int64)
    chunks = []
    offset = 0
    began = time.perf_counter()
    for ell in range(1, length + 1):
        # the lists of length ell cost about 5.8 times those of ell - 1 (little Schroeder numbers):
        # skip them when they would end past the deadline (shorter lists: still exact, only slower)
        now = time.perf_counter()
        if ell > 1 and now + 6.0 * (now - began) > budget.deadline:
            length = ell - 1
            break
        began = now
        for i in range(0, n - ell + 1):
            for kind_code, kind in ((0, "V"), (1, "F")):
                values = lists.get(kind, i, i + ell)[0]
                list_off[kind_code, i, i + ell] = offset
                list_len[kind_code, i, i + ell] = values.shape[0]
                chunks.append(values)
                offset += values.shape[0]
    list_vals = np.ascontiguousarray(np.concatenate(chunks))

    pool_int = np.zeros((POOL_SIZE, 6), np.int64)
    pool_f = np.zeros((POOL_SIZE, 2))
    pool_top = np.zeros(1, np.int64)
    stack_expr = np.zeros(STACK_SIZE, np.int64)
    stack_bound = np.zeros(STACK_SIZE)
    stack_mark = np.zeros(STACK_SIZE, np.int64)
    stack_size = np.zeros(1, np.int64)
    start_search(steps, problem.segments, n, tab["v_lo"], tab["v_hi"], tab["f_lo"], tab["f_hi"], tab["g_lo"], tab["g_hi"],
                 goal, scale, data_target, pool_int, pool_f, pool_top, stack_expr, stack_bound, stack_mark, stack_size)
    state = np.array([best_sq, 0.5 * tol, estimate_slack, np.inf, 0.0])
    best_rows = np.full((8 * n + 16, 4), -1, np.int64)
    status = 1
    slice_nodes = FIRST_SLICE
    while status == 1:
        remaining = node_budget - int(state[4])
        if remaining <= 0 or budget.expired():
            break
        budget.report("search", int(state[4]))
        began = time.perf_counter()
        status = line_search(
            steps, retention, init_code, jump, goal, scale, data_target,
            tab["v_lo"], tab["v_hi"], tab["f_lo"], tab["f_hi"], tab["g_lo"], tab["g_hi"],
            list_vals, list_off, list_len, length,
            pool_int, pool_f, pool_top, stack_expr, stack_bound, stack_mark, stack_size,
            state, best_rows, min(slice_nodes, remaining),
        )
        budget.note(incumbent=math.sqrt(state[0]))
        # slices of about SLICE_SECONDS, so that the clock is read often whatever one expansion costs
        took = time.perf_counter() - began
        if took < 0.5 * SLICE_SECONDS:
            slice_nodes = min(2 * slice_nodes, MAX_SLICE)
        elif took > 2.0 * SLICE_SECONDS:
            slice_nodes = max(slice_nodes // 2, 16)
    complete = status == 0
    lower_sq = min(state[0], state[3])
    if not complete:
        lower_sq = min([lower_sq] + stack_bound[: int(stack_size[0])].tolist())
    plan = _plan_from_rows(best_rows, lists) if best_rows[0, 0] >= 0 else None
    return float(state[0]), plan, float(lower_sq), int(state[4]), complete


def _plan_from_rows(rows: np.ndarray, lists: ValueLists) -> Plan:
    """Rebuild a plan from the pre-order rows written by the kernel (holes filled from the lists)."""
    position = 0

    def parse():
        nonlocal position
        kind, i, j, index = (int(x) for x in rows[position])
        position += 1
        if kind == LEAF:
            return j
        if kind == HOLE_V:
            return lists.tree(i, j, index)
        if kind == HOLE_F:
            return lists.forest(i, j, index)
        first = parse()
        rest = parse()
        rest_list = rest if isinstance(rest, list) else [rest]
        if kind == NODE:
            return MergeNode((first, *rest_list))
        if kind == PROD:
            return [first, *rest_list]
        raise ValueError(f"unexpected expression kind {kind} in a complete plan")

    with deep_recursion(8 * rows.shape[0]):
        root = parse()
    return Plan(tuple(root if isinstance(root, list) else [root]))


def estimate_slack_for(problem) -> float:
    """How far a bilinear read-out of S may round away from plan evaluation, on W2, per unit of ``|S|``."""
    eps = np.finfo(np.float64).eps
    return 16.0 * problem.steps * eps * math.sqrt(float(problem.scale[0]))
