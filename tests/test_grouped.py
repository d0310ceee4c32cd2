"""The grouped joint solver (opmerge.solvers._grouped): bounds per group of directions, exact answers.

Independent routes: brute force over every plan (the optimum, and every plan's true context and
node values, which each group's bounds must enclose for each member), the ungrouped solver (same
certified optimum on a large spectrum), and the ungrouped context pass (one direction per group
must give its numbers bit for bit).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from test_joint import _kernel_inputs, assert_contexts_enclose_every_plan, check_against_brute_force, joint_problems

from opmerge.errors import InputError, InputTypeError
from opmerge.objective import Problem, evaluate_plan
from opmerge.schedules import make_schedule
from opmerge.solvers import brute_force, range_tables, solve_joint
from opmerge.solvers._control import Incumbent, optimality_tolerance
from opmerge.solvers._grouped import (GROUPED_MIN_DIM, MAX_AUTO_GROUPS, MIN_AUTO_GROUPS, auto_groups, GroupedTables, binned_problem, group_directions,
                                      grouped_table_bytes, seed_from_bins, use_groups)
from opmerge.solvers._pareto_dp import ParetoDP, root_objective
from opmerge.solvers._pareto_kernels import context_bounds, context_bounds_levels, context_bounds_start, greedy_fronts
from opmerge.solvers._reference import greedy_fronts_reference
from opmerge.solvers.pareto import pareto_applicable


def _grouped_contexts(problem, groups, threshold=math.inf, group_of=None):
    tables = GroupedTables(problem, groups, group_of=group_of)
    slots = tables.slot_bounds()
    t = slots.tables
    goal = np.ascontiguousarray(problem.goal)
    scale = np.ascontiguousarray(problem.scale)
    init = {"warm": 0, "ddim": 1, "zero": 2, "identity": 3}[problem.model.init]
    ctx_v, reach_v, ctx_f, reach_f, ctx_g, reach_g, h_lo, h_hi, h_ok = context_bounds_start(
        t["v_lo"], t["v_hi"], t["g_lo"], t["g_hi"], problem.segments, tables.lo, tables.hi, goal, scale, slots.group_of, threshold)
    context_bounds_levels(t["v_lo"], t["v_hi"], t["f_lo"], t["f_hi"], t["g_lo"], t["g_hi"], slots.ret_lo, slots.ret_hi, init,
                          slots.jump_lo, slots.jump_hi, problem.segments, tables.lo, tables.hi, goal, scale, slots.group_of,
                          slots.s_hi, threshold, ctx_v, reach_v, ctx_f, reach_f, h_lo, h_hi, h_ok, problem.steps, 1)
    return tables, (ctx_v, reach_v, ctx_f, reach_f, ctx_g, reach_g)


# ---------------------------------------------------------------------------------------------
# groups and the binned seed
# ---------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1e-4, 1e3), min_size=1, max_size=60), st.integers(1, 60), st.sampled_from(["vp-cosine", "edm", "rf"]))
def test_groups_are_runs_of_sorted_lam_with_bounded_operator_spread(lam, groups, schedule):
    lam = np.array(lam)
    problem = Problem(make_schedule(schedule, 6), lam)
    groups = min(groups, len(lam))
    group_of = group_directions(problem, groups)
    n_groups = group_of.max() + 1
    counts = np.bincount(group_of)
    assert n_groups <= groups and counts.min() >= 1 and counts.sum() == len(lam)
    order = np.argsort(lam, kind="stable")
    assert np.all(np.diff(group_of[order]) >= 0)  # consecutive in sorted order
    features = np.concatenate([problem.step_values, problem.retention], axis=1)
    total = np.sum(np.max(np.abs(np.diff(features[order], axis=0)), axis=1)) if len(lam) > 1 else 0.0
    for g in range(n_groups):
        members = features[group_of == g]
        spread = np.max(members.max(axis=0) - members.min(axis=0))
        assert spread <= total / groups * (1 + 1e-9) + 1e-15


def test_fast_changing_directions_get_groups_of_their_own():
    lam = 10.0 * np.arange(1, 401, dtype=float) ** -2.0  # a steep power law: a few large, many tiny
    group_of = group_directions(Problem(make_schedule("vp-cosine", 8), lam), 16)
    counts = np.bincount(group_of)
    assert counts[group_of[0]] == 1 and counts[group_of[-1]] > 100


def test_binned_problem_sums_weights_and_averages_lam():
    lam = np.array([0.1, 0.2, 5.0, 6.0, 7.0])
    weights = np.array([1.0, 3.0, 2.0, 0.0, 2.0])
    problem = Problem(make_schedule("rf", 4), lam, weights=weights)
    binned = binned_problem(problem, np.array([0, 0, 0, 1, 1]))
    np.testing.assert_allclose(binned.weights, [6.0, 2.0])
    np.testing.assert_allclose(binned.lam, [(0.1 * 1 + 0.2 * 3 + 5.0 * 2) / 6.0, 7.0])


def test_auto_groups_only_large_problems_on_the_pareto_path():
    lam = np.geomspace(0.01, 10, GROUPED_MIN_DIM)
    big = Problem(make_schedule("vp-cosine", 4), lam)
    assert use_groups(big, "auto") == MIN_AUTO_GROUPS
    assert [auto_groups(d) for d in (1024, 3072, 6144, 16384)] == [256, 512, 1024, 1024]
    assert use_groups(Problem(make_schedule("vp-cosine", 4), lam[:-1]), "auto") is None
    assert use_groups(big, None) is None and use_groups(big, 10) == 10 and use_groups(big, len(lam)) is None
    total = Problem(make_schedule("vp-cosine", 4), lam, model=big.model.__class__(budget="total"))
    assert not pareto_applicable(total)[0] and use_groups(total, 10) is None


@pytest.mark.parametrize("value, error", [(0, InputError), ("all", InputError), (1.5, InputTypeError), (True, InputTypeError)])
def test_bad_groups_name_the_parameter(value, error):
    problem = Problem(make_schedule("rf", 3), [0.5, 1.0])
    with pytest.raises(error, match="groups"):
        solve_joint(problem, groups=value)


# ---------------------------------------------------------------------------------------------
# the bounds hold for every member
# ---------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(joint_problems(max_steps=6, min_dim=3, max_dim=6), st.integers(1, 5))
def test_group_tables_enclose_every_members_tables(problem, groups):
    assume(pareto_applicable(problem)[0] and problem.model.linear)
    groups = min(groups, problem.dim - 1)
    tables = GroupedTables(problem, groups)
    exact = range_tables(problem)
    slots = tables.slot_bounds()
    for name in ("v_lo", "v_hi", "f_lo", "f_hi", "g_lo", "g_hi"):
        member = np.moveaxis(exact[name], 0, -1)
        group = slots.tables[name][..., slots.group_of]
        finite = np.isfinite(member)
        assert np.all((group <= member)[finite]) if name.endswith("_lo") else np.all((group >= member)[finite])
    np.testing.assert_array_equal(tables.lo, exact["g_lo"][:, problem.segments, problem.steps])
    np.testing.assert_array_equal(tables.hi, exact["g_hi"][:, problem.segments, problem.steps])
    retention = problem.retention.T
    assert np.all(slots.ret_lo[:, slots.group_of] <= retention) and np.all(retention <= slots.ret_hi[:, slots.group_of])


@settings(max_examples=30, deadline=None)
@given(joint_problems(max_steps=6, min_dim=3, max_dim=6), st.integers(1, 4))
def test_group_contexts_enclose_every_plan_for_every_member(problem, groups):
    """As test_joint's brute-force check of the contexts, with the bounds of each member's group."""
    assume(pareto_applicable(problem)[0] and problem.model.linear)
    groups = min(groups, problem.dim - 1)
    tables, (ctx_v, reach_v, ctx_f, reach_f, *_) = _grouped_contexts(problem, groups)
    assert_contexts_enclose_every_plan(problem, ctx_v, reach_v, ctx_f, reach_f, tables.group_of)


@settings(max_examples=20, deadline=None)
@given(joint_problems(max_steps=6, min_dim=2, max_dim=5), st.sampled_from([math.inf, 0.7, 1.0]))
def test_one_direction_per_group_is_the_ungrouped_pass_bit_for_bit(problem, factor):
    """Groups of one direction (in sorted order) give the ungrouped contexts exactly: the corner
    formulas of the retention interval reduce to the per-direction ones."""
    assume(pareto_applicable(problem)[0] and problem.model.linear)
    w2 = evaluate_plan(problem, next(iter(brute_force(problem))).plan).w2
    threshold = math.inf if math.isinf(factor) else (factor * w2) ** 2
    rank = np.empty(problem.dim, dtype=np.int64)
    rank[np.argsort(problem.lam, kind="stable")] = np.arange(problem.dim)
    tables, grouped = _grouped_contexts(problem, problem.dim, threshold, group_of=rank)
    plain = context_bounds(*_kernel_inputs(problem), threshold)
    order = np.argsort(tables.group_of)  # slot g holds direction order[g]
    for got, want in zip(grouped, plain):
        if got.dtype == bool:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_array_equal(got, want[..., order])


# ---------------------------------------------------------------------------------------------
# the greedy seed (a front of one vector per position)
# ---------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(joint_problems(max_steps=6, min_dim=2, max_dim=5), st.integers(1, 5), st.sampled_from([math.inf, 1.0, 1.5]))
def test_greedy_kernel_matches_its_plain_python_reference(problem, groups, factor):
    assume(pareto_applicable(problem)[0] and problem.model.linear)
    groups = min(groups, problem.dim)
    threshold = factor * evaluate_plan(problem, brute_force(problem)[0].plan).w2 ** 2 if math.isfinite(factor) else math.inf
    tables, contexts = _grouped_contexts(problem, groups, threshold=threshold)
    slots = tables.slot_bounds()
    steps_t, retention_t, jump_t = tables.problem_last()
    init = {"warm": 0, "ddim": 1, "zero": 2, "identity": 3}[problem.model.init]
    args = (np.ascontiguousarray(problem.goal), np.ascontiguousarray(problem.scale))
    fast = greedy_fronts(steps_t, retention_t, jump_t, init, problem.segments, *contexts, slots.group_of, False, tables.lo,
                         tables.hi, *args)
    slow = greedy_fronts_reference(steps_t, retention_t, jump_t, init, problem.segments, *contexts,
                                   slots.group_of, tables.lo, tables.hi, *args)
    for got, want in zip(fast, slow):
        np.testing.assert_array_equal(got, want)


@settings(max_examples=30, deadline=None)
@given(joint_problems(max_steps=7, min_dim=2, max_dim=5))
def test_greedy_plan_is_the_one_a_front_of_one_vector_keeps(problem):
    """Independent route: the Pareto DP with its fronts truncated to one vector (``beam=1``)."""
    assume(pareto_applicable(problem)[0] and problem.model.linear)
    greedy = ParetoDP(problem, math.inf).greedy_plan()
    beam = ParetoDP(problem, math.inf, beam=1)
    root = beam.run()
    want = beam.plan_of(int(np.argmin(root_objective(problem, root.values))))
    assert evaluate_plan(problem, greedy).w2 == pytest.approx(evaluate_plan(problem, want).w2, rel=1e-12, abs=1e-300)
    assert evaluate_plan(problem, greedy).w2 >= brute_force(problem)[0].w2 * (1 - 1e-12)


def test_greedy_seed_is_the_optimum_of_a_large_spectrum():
    """The grouped solver's seed finds the certified optimum itself here: the exact run only proves it."""
    problem = Problem(make_schedule("vp-cosine", 24), np.geomspace(1e-3, 10.0, 2048))
    incumbent = Incumbent(problem, optimality_tolerance(problem, None, 0.0))
    seed_from_bins(problem, incumbent)
    optimum = solve_joint(problem, groups=None)
    assert optimum.exact
    assert incumbent.w2 == pytest.approx(optimum.w2, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# the answers are the full problem's
# ---------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(joint_problems(max_steps=6, min_dim=3, max_dim=6), st.integers(1, 5))
def test_grouped_optimum_equals_brute_force(problem, groups):
    assume(pareto_applicable(problem)[0] and problem.model.linear)
    groups = min(groups, problem.dim - 1)
    solution, _optimum = check_against_brute_force(problem, groups=groups)
    assert solution.exact and not solution.stopped


def test_grouped_certifies_the_same_optimum_as_the_ungrouped_solver_on_3072_directions():
    problem = Problem(make_schedule("vp-cosine", 24), np.arange(1, 3073, dtype=float) ** -1.0)
    grouped = solve_joint(problem, groups=64)
    plain = solve_joint(problem, groups=None)
    assert grouped.exact and plain.exact and grouped.method == plain.method == "pareto"
    assert abs(grouped.w2 - plain.w2) <= max(grouped.tol, plain.tol)
    assert grouped.lower_bound >= plain.w2 - plain.tol


def test_grouped_memory_stays_under_two_gib_at_image_latent_scale():
    problem = Problem(make_schedule("vp-cosine", 64), np.arange(1, 16385, dtype=float) ** -1.0)
    assert grouped_table_bytes(problem, auto_groups(problem.dim)) == grouped_table_bytes(problem, MAX_AUTO_GROUPS) < 2**31
