"""The joint optimal plan over several directions (opmerge.solvers.pareto) and the fidelity-cost
front (opmerge.solvers.front), checked against brute force over every plan, against the branch and
bound of solve(), and kernel by kernel against their plain-Python references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opmerge.errors import InputError, InputTypeError
from opmerge.model import StudentModel, input_variance
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import MergeNode, canonical_plan, parse_plan, tree_bottom, tree_top
from opmerge.schedules import make_schedule
from opmerge.solvers import brute_force, range_tables, solve
from opmerge.solvers.front import COSTS, fidelity_cost_front, front_by_enumeration, plan_cost
from opmerge.solvers._pareto_dp import ParetoDP
from opmerge.solvers._pareto_kernels import combine_candidates, context_bounds, dominates, merge_fronts
from opmerge.solvers._reference import (
    combine_candidates_reference,
    context_bounds_reference,
    dominates_reference,
    merge_fronts_reference,
)
from opmerge.solvers.pareto import pareto_applicable, per_direction_bound, solve_joint

SCHEDULE_SOLVERS = [
    ("vp-cosine", "ddim"),
    ("vp-linear", "ddim"),
    ("vp-linear", "heun"),
    ("rf", "ddim"),
    ("edm", "ddim"),
    ("edm", "heun"),
]
INITS = ("warm", "ddim", "zero", "identity")
LAMS = st.floats(math.log(0.01), math.log(100.0)).map(math.exp)
WEIGHTS = st.floats(0.05, 3.0)


@st.composite
def joint_problems(draw, min_steps=2, max_steps=6, min_dim=2, max_dim=4, max_segments=3, budgets=("per-merge",)):
    """A random problem with 2-4 directions over every schedule, solver, init, input and target."""
    n_steps = draw(st.integers(min_steps, max_steps))
    schedule_name, solver = draw(st.sampled_from(SCHEDULE_SOLVERS))
    schedule = make_schedule(schedule_name, n_steps)
    dim = draw(st.integers(min_dim, max_dim))
    lam = np.array(draw(st.lists(LAMS, min_size=dim, max_size=dim)))
    weights = np.array(draw(st.lists(WEIGHTS, min_size=dim, max_size=dim)))
    init = draw(st.sampled_from(INITS))
    input_ = draw(st.sampled_from(("forward", "generated")))
    budget = draw(st.sampled_from(budgets))
    training = "flow" if budget == "total" else draw(st.sampled_from(("flow", "flow", "gd")))
    if training == "flow":
        model = StudentModel(eta_tau=draw(st.floats(0.05, 3.0)), init=init, input=input_, budget=budget)
    else:
        q = input_variance(schedule, lam, input_, solver)
        lr = draw(st.floats(0.05, 0.95)) / float(np.max(q[..., 2:])) if n_steps >= 2 else 1.0
        model = StudentModel(init=init, training="gd", input=input_, lr=lr, gd_steps=draw(st.integers(1, 4)))
    segments = draw(st.integers(1, min(n_steps, max_segments)))
    target = draw(st.sampled_from(("teacher", "data")))
    return Problem(schedule, lam, weights=weights, model=model, solver=solver, target=target, segments=segments)


def check_against_brute_force(problem, **kwargs):
    solution = solve_joint(problem, **kwargs)
    optimum = brute_force(problem)[0].w2
    slack = solution.tol + 1e-12 * max(1.0, optimum)
    assert solution.lower_bound <= optimum + slack  # certified
    assert solution.lower_bound <= solution.w2
    assert solution.w2 == pytest.approx(evaluate_plan(problem, solution.plan).w2, abs=0.0)
    assert solution.w2 >= optimum - slack
    if solution.exact:
        assert solution.w2 <= optimum + slack
        assert solution.w2 - solution.lower_bound <= solution.tol + 8 * np.finfo(float).eps * solution.w2
    return solution, optimum


# ---------------------------------------------------------------------------------------------
# joint optimum = brute force
# ---------------------------------------------------------------------------------------------


@settings(max_examples=60)
@given(joint_problems(max_steps=6))
def test_joint_optimum_equals_brute_force_small(problem):
    solution, _ = check_against_brute_force(problem)
    if pareto_applicable(problem)[0]:
        assert solution.method == "pareto" and solution.exact


@pytest.mark.slow
@settings(max_examples=6)
@given(joint_problems(min_steps=7, max_steps=8, max_segments=2))
def test_joint_optimum_equals_brute_force_n7_n8(problem):
    check_against_brute_force(problem)


@settings(max_examples=25)
@given(joint_problems(max_steps=6, budgets=("total",)))
def test_budget_total_falls_back_to_the_search(problem):
    solution, _ = check_against_brute_force(problem)
    assert solution.method == "search"
    assert not pareto_applicable(problem)[0]


@settings(max_examples=30)
@given(joint_problems(max_steps=7), st.sampled_from(["nodes", "time", "front"]))
def test_certificate_is_honest_with_tiny_budgets(problem, which):
    """However little room the DP and the search get, lower_bound never exceeds the optimum."""
    kwargs = {"nodes": {"node_budget": 1}, "time": {"time_budget": 1e-6}, "front": {"max_front": 1}}[which]
    solution, optimum = check_against_brute_force(problem, **kwargs)
    if solution.method == "pareto+search":
        assert pareto_applicable(problem)[0]


def test_worked_example_two_directions():
    """vp-cosine N = 6, lam = (0.3, 3): BOOT is best for 0.3, vanilla for 3; the joint plan trades them."""
    problem = Problem(make_schedule("vp-cosine", 6), [0.3, 3.0], weights=[1.0, 2.0])
    solution = solve_joint(problem)
    evaluations = brute_force(problem)
    assert solution.method == "pareto" and solution.exact
    assert solution.w2 == pytest.approx(evaluations[0].w2, rel=1e-13)
    # the optimum beats both single-direction favourites
    assert solution.w2 < evaluate_plan(problem, canonical_plan("boot", 6)).w2
    assert solution.w2 < evaluate_plan(problem, canonical_plan("vanilla", 6)).w2


@settings(max_examples=30)
@given(joint_problems(max_steps=6))
def test_pareto_and_branch_and_bound_agree(problem):
    joint = solve_joint(problem)
    search = solve(problem)
    if joint.exact and search.exact:
        assert joint.w2 == pytest.approx(search.w2, abs=joint.tol + search.tol)
    assert joint.lower_bound <= search.w2 + joint.tol
    assert search.lower_bound <= joint.w2 + search.tol


@settings(max_examples=30)
@given(joint_problems(max_steps=6))
def test_per_direction_bound_is_a_lower_bound(problem):
    bound, per = per_direction_bound(problem)
    optimum = brute_force(problem)[0].w2
    assert bound <= optimum * (1 + 1e-12) + 1e-15
    assert per.shape == (problem.dim,) and np.all(per >= 0)
    assert bound == pytest.approx(math.sqrt(float(np.sum(per**2))))


def test_applicability():
    schedule = make_schedule("vp-cosine", 5)
    assert pareto_applicable(Problem(schedule, [0.3, 2.0]))[0]
    total = Problem(schedule, [0.3, 2.0], model=StudentModel(budget="total"))
    ok, why = pareto_applicable(total)
    assert not ok and "total" in why
    lr = 0.95 / float(np.max(input_variance(schedule, np.array([0.3, 2.0]))[..., 2:]))  # 1 - 2 lr q_max = -0.9
    gd = Problem(schedule, [0.3, 2.0], model=StudentModel(training="gd", lr=lr, gd_steps=3))
    ok, why = pareto_applicable(gd)  # (1 - 2 lr q)^3 < 0 for the largest q
    assert not ok and "retention" in why
    solution = solve_joint(gd)
    assert solution.method == "search"


def test_input_validation():
    problem = Problem(make_schedule("vp-cosine", 4), [0.3, 2.0])
    for kwargs, name in (({"max_front": 0}, "max_front"), ({"node_budget": 0}, "node_budget"),
                         ({"time_budget": -1.0}, "time_budget"), ({"rtol": -1.0}, "rtol"), ({"atol": float("nan")}, "atol")):
        with pytest.raises(InputError, match=name):
            solve_joint(problem, **kwargs)
    for kwargs, name in (({"max_front": 2.5}, "max_front"), ({"node_budget": "1e6"}, "node_budget")):
        with pytest.raises(InputTypeError, match=name):
            solve_joint(problem, **kwargs)
    with pytest.raises(InputTypeError, match="problem"):
        solve_joint("not a problem")
    for call in (per_direction_bound, pareto_applicable, fidelity_cost_front, front_by_enumeration):
        with pytest.raises(InputTypeError, match="problem"):
            call(make_schedule("vp-cosine", 4))
    with pytest.raises(InputError, match="time_budget"):
        per_direction_bound(problem, time_budget=0.0)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"cost": "flops"}, InputError, "cost"),
        ({"method": "greedy"}, InputError, "method"),
        ({"max_front": 0}, InputError, "max_front"),
        ({"beam": 0}, InputError, "beam"),
        ({"beam": 4.0}, InputTypeError, "beam"),
        ({"time_budget": float("nan")}, InputError, "time_budget"),
    ],
)
def test_front_reports_bad_arguments_as_input_errors(kwargs, error, name):
    problem = Problem(make_schedule("vp-cosine", 4), [0.3, 2.0])
    with pytest.raises(error, match=name):
        fidelity_cost_front(problem, **kwargs)


def test_solution_serialises():
    problem = Problem(make_schedule("rf", 5), [0.2, 1.0, 4.0])
    solution = solve_joint(problem)
    out = solution.to_dict()
    assert out["method"] == "pareto" and out["plan"] == str(solution.plan) and out["exact"]


# ---------------------------------------------------------------------------------------------
# kernels against their plain-Python references
# ---------------------------------------------------------------------------------------------


def _kernel_inputs(problem):
    tables = range_tables(problem)
    move = lambda name: np.ascontiguousarray(np.moveaxis(tables[name], 0, -1))  # noqa: E731
    n, m = problem.steps, problem.segments
    jump = np.ascontiguousarray(np.moveaxis(problem.jump, 0, -1)) if problem.jump is not None else np.zeros((1, 1, problem.dim))
    g_lo, g_hi = move("g_lo"), move("g_hi")
    return (
        move("v_lo"), move("v_hi"), move("f_lo"), move("f_hi"), g_lo, g_hi,
        np.ascontiguousarray(problem.retention.T), {"warm": 0, "ddim": 1, "zero": 2, "identity": 3}[problem.model.init],
        jump, m, np.ascontiguousarray(g_lo[m, n]), np.ascontiguousarray(g_hi[m, n]),
        np.ascontiguousarray(problem.goal), np.ascontiguousarray(problem.scale),
    )


@settings(max_examples=25)
@given(joint_problems(max_steps=6), st.sampled_from([math.inf, 0.5, 1.0]))
def test_context_bounds_match_reference(problem, factor):
    args = _kernel_inputs(problem)
    seeds = min(evaluate_plan(problem, canonical_plan(k, problem.steps, problem.segments)).w2 for k in ("vanilla", "boot"))
    threshold = math.inf if math.isinf(factor) else (factor * seeds) ** 2
    fast = context_bounds(*args, threshold)
    slow = context_bounds_reference(*args, threshold)
    for got, want in zip(fast, slow):
        if got.dtype == bool:
            np.testing.assert_array_equal(got, want)
    for (ctx, reach), (ctx_ref, reach_ref) in zip(((fast[0], fast[1]), (fast[2], fast[3]), (fast[4], fast[5])),
                                                  ((slow[0], slow[1]), (slow[2], slow[3]), (slow[4], slow[5]))):
        np.testing.assert_allclose(ctx[reach], ctx_ref[reach_ref], rtol=1e-12, atol=1e-15)


@settings(max_examples=25)
@given(joint_problems(max_steps=6))
def test_context_bounds_enclose_every_plan(problem):
    """Brute-force check of the contexts: in every plan, the root value S lies in
    [A_lo + B_lo x, A_hi + B_hi x] for the value x of every tree (merge node or leaf) and of every
    forest (the rest of a node, and each tail of it). The bounds assume the Pareto path applies
    (values >= 0), as everywhere they are used."""
    assume(pareto_applicable(problem)[0])
    args = _kernel_inputs(problem)
    ctx_v, reach_v, ctx_f, reach_f, *_ = context_bounds(*args, math.inf)
    assert_contexts_enclose_every_plan(problem, ctx_v, reach_v, ctx_f, reach_f, np.arange(problem.dim))


def assert_contexts_enclose_every_plan(problem, ctx_v, reach_v, ctx_f, reach_f, slot_of):
    """For every plan (brute force) and every direction ``k``: the root value lies in the context
    box of slot ``slot_of[k]`` at the value of every tree and forest of the plan."""
    steps = problem.step_values

    def value(tree, ev):
        return ev.node_values[tree] if isinstance(tree, MergeNode) else steps[:, tree]

    def check(ctx, x, s):
        a_lo, a_hi, b_lo, b_hi = ctx[:, slot_of]
        tol = 1e-12 * (1 + np.abs(s))
        assert np.all(a_lo + b_lo * x <= s + tol) and np.all(s <= a_hi + b_hi * x + tol)

    for ev in brute_force(problem):
        s = ev.student
        for segment in ev.plan.segments:
            stack = [segment]
            while stack:
                tree = stack.pop()
                i, j = tree_bottom(tree), tree_top(tree)
                assert reach_v[i, j]
                check(ctx_v[i, j], value(tree, ev), s)
                if isinstance(tree, MergeNode):
                    children = list(tree.children)
                    stack.extend(children)
                    for start in range(1, len(children)):
                        tail = children[start:]
                        x = value(tail[-1], ev)
                        for child in reversed(tail[:-1]):
                            x = value(child, ev) * x
                        fi, fj = tree_bottom(tree), tree_top(tail[0])
                        assert reach_f[fi, fj]
                        check(ctx_f[fi, fj], x, s)


@settings(max_examples=40)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.sampled_from([0, 1]), st.sampled_from([0, 1, 2]))
def test_combine_and_merge_match_reference(seed, dim, mode, rule):
    rng = np.random.default_rng(seed)
    first = rng.uniform(0.1, 1.5, (int(rng.integers(1, 7)), dim))
    rest = rng.uniform(0.1, 1.5, (int(rng.integers(1, 7)), dim))
    lab_a = rng.integers(0, 4, (len(first), 2)).astype(np.int64)
    lab_b = rng.integers(0, 4, (len(rest), 2)).astype(np.int64)
    r = rng.uniform(0, 1, dim)
    a0 = np.empty(0) if rng.random() < 0.5 else rng.uniform(0, 1, dim)
    ctx = np.array([rng.uniform(0, 0.3, dim), rng.uniform(0.3, 1, dim), rng.uniform(0, 0.5, dim), rng.uniform(0.5, 2, dim)])
    s_lo, s_hi = rng.uniform(0, 0.5, dim), rng.uniform(0.5, 3, dim)
    goal, scale = rng.uniform(0, 3, dim), rng.uniform(0.1, 2, dim)
    threshold = float(rng.uniform(0.5, 4))
    leaf = bool(rng.integers(0, 2))
    fast = combine_candidates(first, rest, lab_a, lab_b, mode, r, a0, ctx, s_lo, s_hi, goal, scale, threshold, rule, leaf)
    slow = combine_candidates_reference(first, rest, lab_a, lab_b, mode, r, a0, ctx, s_lo, s_hi, goal, scale, threshold, rule, leaf)
    for got, want in zip(fast[:5], slow[:5]):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
    assert fast[5] == pytest.approx(slow[5], rel=1e-14) or (math.isinf(fast[5]) and math.isinf(slow[5]))
    values, _, _, lb, labels, _ = fast
    split = len(values) // 2
    old, new = np.ascontiguousarray(values[:split]), np.ascontiguousarray(values[split:])
    got = merge_fronts(old, np.ascontiguousarray(labels[:split]), new, np.ascontiguousarray(lb[split:]),
                       np.ascontiguousarray(labels[split:]), ctx, s_lo, s_hi, goal, scale)
    want = merge_fronts_reference(old, labels[:split], new, lb[split:], labels[split:], ctx, s_lo, s_hi, goal, scale)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    for u in values:
        for v in values:
            assert bool(dominates(u, v, ctx, s_lo, s_hi, goal, scale)) == dominates_reference(u, v, ctx, s_lo, s_hi, goal, scale)


def _random_position(rng, dim):
    """Context bounds, root range, goal and weights of one position, drawn as in the tests above."""
    ctx = np.array([rng.uniform(0, 0.3, dim), rng.uniform(0.3, 1, dim), rng.uniform(0, 0.5, dim), rng.uniform(0.5, 2, dim)])
    return ctx, rng.uniform(0, 0.5, dim), rng.uniform(0.5, 3, dim), rng.uniform(0, 3, dim), rng.uniform(0.1, 2, dim)


def _near_ties(rng, count, dim, spread):
    base = rng.uniform(0.2, 1.2, dim)
    return np.ascontiguousarray(base * (1.0 + spread * rng.standard_normal((count, dim))).clip(-0.5, None))


def _assert_merge_matches_reference(values, n_old, lb, ctx, s_lo, s_hi, goal, scale):
    """``merge_fronts`` of the first ``n_old`` vectors (the front) with the rest keeps what the reference keeps."""
    labels = np.zeros((len(values), 2), np.int64)
    old, new = np.ascontiguousarray(values[:n_old]), np.ascontiguousarray(values[n_old:])
    got = merge_fronts(old, labels[:n_old], new, lb[n_old:], labels[n_old:], ctx, s_lo, s_hi, goal, scale)
    want = merge_fronts_reference(old, labels[:n_old], new, lb[n_old:], labels[n_old:], ctx, s_lo, s_hi, goal, scale)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@settings(max_examples=80)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.floats(1e-4, 1.0), st.booleans(), st.booleans())
def test_term_slopes_bound_every_term(seed, dim, spread, negative_weights, swapped_b):
    """Brute force over every pair: each direction's term divided by ``u_k - v_k`` lies in the
    interval the slopes give for that sign (the per-pair bounds of the merges rest on it). Also
    with negative values, negative weights and ``B_lo > B_hi``, which the bounds must survive."""
    from opmerge.solvers._pareto_kernels import _term_bound, _term_slopes, _value_span, position_coefficients

    rng = np.random.default_rng(seed)
    values = _near_ties(rng, 8, dim, spread)
    ctx, s_lo, s_hi, goal, scale = _random_position(rng, dim)
    if negative_weights:
        scale = scale * rng.choice([-1.0, 1.0], dim)
    if swapped_b:
        ctx[[2, 3]] = ctx[[3, 2]]
    coef = position_coefficients(ctx, s_lo, s_hi, goal, scale)
    lo, hi = _value_span(values[:3], values[3:])
    slopes = _term_slopes(coef, lo, hi)
    for u in values:
        for v in values:
            for k in range(dim):
                delta = u[k] - v[k]
                term = _term_bound(u[k], v[k], coef, k)
                if delta == 0.0:
                    assert term == 0.0
                    continue
                low, high = (slopes[k, 0], slopes[k, 1]) if delta > 0 else (slopes[k, 2], slopes[k, 3])
                assert low <= term / delta <= high


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(65, 300), st.floats(1e-5, 0.3))
def test_tail_bounds_hold_for_every_pair_and_checkpoint(seed, dim, spread):
    """Direct summation: for every ordered pair and every checkpoint, the signed sum of the
    remaining terms lies between the two vectors' shares (superadditivity about the centre)."""
    from opmerge.solvers._pareto_kernels import (_STRIDE, _tail_bounds, _tail_lines, _term_bound, _term_slopes,
                                                 _value_span, position_coefficients)

    rng = np.random.default_rng(seed)
    values = _near_ties(rng, 6, dim, spread)
    ctx, s_lo, s_hi, goal, scale = _random_position(rng, dim)
    coef = position_coefficients(ctx, s_lo, s_hi, goal, scale)
    lo, hi = _value_span(values[:2], values[2:])
    slopes = _term_slopes(coef, lo, hi)
    order = rng.permutation(dim)
    tails = _tail_bounds(values, _tail_lines(slopes), order, values.mean(axis=0))
    assert tails.shape == (6, 2, 4, -(-dim // _STRIDE) + 1)
    for a, u in enumerate(values):
        for b, v in enumerate(values):
            terms = np.array([_term_bound(u[k], v[k], coef, k) for k in order])
            for c in range(tails.shape[3]):
                rest = float(terms[c * _STRIDE:].sum())
                for w in range(2):
                    assert tails[a, w, 0, c] + tails[b, w, 2, c] <= rest <= tails[a, w, 1, c] + tails[b, w, 3, c]


@settings(max_examples=16, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(100, 300), st.floats(1e-6, 1e-2), st.floats(0.0, 0.3), st.booleans())
def test_merge_with_pair_bounds_matches_reference_on_many_directions(seed, dim, spread, noise, goal_near_zero):
    """Several checkpoints of the per-pair bounds: the kept sets are the reference's. The vectors lie
    near a line through the base (the DP's near ties); with the goal near 0, the lower one along the
    line tends to dominate (about three of four vectors dropped), otherwise few are."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 1.2, dim)
    along = rng.standard_normal((10, 1))
    values = np.ascontiguousarray(base * (1.0 + spread * (along + noise * rng.standard_normal((10, dim)))))
    ctx, s_lo, s_hi, goal, scale = _random_position(rng, dim)
    if goal_near_zero:
        goal = goal / 10.0
    _assert_merge_matches_reference(values, 4, rng.uniform(0, 1, 10), ctx, s_lo, s_hi, goal, scale)


@settings(max_examples=40)
@given(st.integers(0, 2**32 - 1), st.integers(20, 80), st.floats(1e-6, 1e-1))
def test_merge_with_early_exits_matches_reference_on_near_ties(seed, dim, spread):
    """Many directions, vectors close to each other: the sums of the dominance tests stay near 0
    until late, so an early exit taken on too small a bound of the remaining terms changes a decision."""
    rng = np.random.default_rng(seed)
    values = _near_ties(rng, 12, dim, spread)
    ctx, s_lo, s_hi, goal, scale = _random_position(rng, dim)
    _assert_merge_matches_reference(values, 5, rng.uniform(0, 1, 12), ctx, s_lo, s_hi, goal, scale)


@settings(max_examples=40)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_dominance_is_sound_on_sampled_contexts(seed, dim):
    """When dominates(u, v), every (alpha, beta) of the box with both root values in range gives W2^2(u) <= W2^2(v)."""
    rng = np.random.default_rng(seed)
    ctx = np.array([rng.uniform(0, 0.4, dim), rng.uniform(0.4, 1.2, dim), rng.uniform(0, 0.6, dim), rng.uniform(0.6, 1.5, dim)])
    s_lo, s_hi = np.zeros(dim), np.full(dim, 3.0)
    goal, scale = rng.uniform(0, 2.5, dim), rng.uniform(0.1, 2, dim)
    for _ in range(30):
        u, v = rng.uniform(0, 1.5, dim), rng.uniform(0, 1.5, dim)
        if rng.random() < 0.5:
            u = v + rng.normal(0, 0.02, dim).clip(-v, None)
        if not dominates(u, v, ctx, s_lo, s_hi, goal, scale):
            continue
        alpha = rng.uniform(ctx[0], ctx[1], (200, dim))
        beta = rng.uniform(ctx[2], ctx[3], (200, dim))
        su, sv = alpha + beta * u, alpha + beta * v
        ok = np.all((su >= s_lo) & (su <= s_hi) & (sv >= s_lo) & (sv <= s_hi), axis=1)
        fu = np.sum(scale * (su - goal) ** 2, axis=1)
        fv = np.sum(scale * (sv - goal) ** 2, axis=1)
        assert np.all(fu[ok] <= fv[ok] + 1e-12)


def test_reconstructed_plan_values_are_bit_identical():
    """The DP's root vectors equal evaluate_plan of the rebuilt plans to the last bit (same association)."""
    problem = Problem(make_schedule("vp-linear", 7), [0.05, 0.7, 3.0], weights=[2.0, 1.0, 0.5], segments=2)
    dp = ParetoDP(problem, math.inf)
    root = dp.run()
    assert len(root) >= 1
    for index in range(len(root)):
        plan = dp.plan_of(index)
        np.testing.assert_array_equal(evaluate_plan(problem, plan).student, root.values[index])


# ---------------------------------------------------------------------------------------------
# the fidelity-cost front
# ---------------------------------------------------------------------------------------------


def test_plan_costs():
    assert plan_cost(canonical_plan("vanilla", 4), "merges") == 1
    assert plan_cost(canonical_plan("vanilla", 4), "teacher_evals") == 4
    assert plan_cost(canonical_plan("boot", 4), "merges") == 3
    assert plan_cost(canonical_plan("boot", 4), "teacher_evals") == 2
    assert plan_cost(canonical_plan("cd", 5), "teacher_evals") == 2
    assert plan_cost(parse_plan("((4 3) (2 1))"), "teacher_evals") == 2
    assert plan_cost(parse_plan("((5 4) 3 2 1)"), "teacher_evals") == 3
    assert plan_cost(parse_plan("4 | 3 | 2 | 1"), "merges") == 0
    assert plan_cost(parse_plan("4 | 3 | 2 | 1"), "teacher_evals") == 0
    with pytest.raises(InputError, match="cost"):
        plan_cost(canonical_plan("boot", 4), "flops")
    with pytest.raises(InputTypeError, match="plan"):
        plan_cost("(4 3 2 1)", "merges")


def _front_key(points):
    return [(p.cost, p.w2) for p in points]


@settings(max_examples=40)
@given(joint_problems(min_steps=1, max_steps=6, min_dim=1, max_dim=3), st.sampled_from(COSTS))
def test_front_equals_enumeration(problem, cost):
    got = fidelity_cost_front(problem, cost)
    want = front_by_enumeration(problem, cost)
    assert [p.cost for p in got] == [p.cost for p in want]
    np.testing.assert_allclose([p.w2 for p in got], [p.w2 for p in want], rtol=1e-12, atol=1e-15)
    for p in got:
        assert p.exact and plan_cost(p.plan, cost) == p.cost
        assert evaluate_plan(problem, p.plan).w2 == p.w2
    w2s = [p.w2 for p in got]
    assert all(b < a for a, b in zip(w2s, w2s[1:]))  # strictly improving


@pytest.mark.slow
@settings(max_examples=4)
@given(joint_problems(min_steps=7, max_steps=7, min_dim=2, max_dim=3, max_segments=2), st.sampled_from(COSTS))
def test_front_equals_enumeration_n7(problem, cost):
    got, want = fidelity_cost_front(problem, cost), front_by_enumeration(problem, cost)
    assert [p.cost for p in got] == [p.cost for p in want]
    np.testing.assert_allclose([p.w2 for p in got], [p.w2 for p in want], rtol=1e-12, atol=1e-15)


def test_front_end_points():
    """The cheapest front point is the best plan without extra cost; the last one is the joint optimum."""
    problem = Problem(make_schedule("vp-cosine", 6), [0.3, 3.0])
    merges = fidelity_cost_front(problem, "merges")
    assert merges[0].cost == 1  # M = 1 needs at least one merge; with one merge the plan is vanilla
    assert str(merges[0].plan) == str(canonical_plan("vanilla", 6))
    assert merges[-1].w2 == pytest.approx(solve_joint(problem).w2, rel=1e-13)
    evals = fidelity_cost_front(problem, "teacher_evals")
    assert evals[-1].w2 == pytest.approx(merges[-1].w2, rel=1e-13)
    assert evals[0].cost >= 2


def test_front_budget_total_uses_enumeration():
    problem = Problem(make_schedule("vp-cosine", 5), [0.3, 3.0], model=StudentModel(budget="total"))
    assert _front_key(fidelity_cost_front(problem, "merges")) == _front_key(front_by_enumeration(problem, "merges"))
    with pytest.raises(InputError, match="method='dp' does not apply"):
        fidelity_cost_front(problem, "merges", method="dp")
    with pytest.raises(InputError, match="cost"):
        fidelity_cost_front(problem, "weight")


def test_front_beam_when_the_front_is_too_large():
    problem = Problem(make_schedule("vp-linear", 7), [0.05, 0.5, 5.0])
    points = fidelity_cost_front(problem, "merges", max_front=1)
    exact = fidelity_cost_front(problem, "merges")
    assert points and not any(p.exact for p in points)
    assert all(p.exact for p in exact)
    assert points[-1].w2 >= exact[-1].w2 - 1e-12  # a beam cannot beat the exact front


# ---------------------------------------------------------------------------------------------
# the digits spectrum (the target), when scikit-learn is there
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_digits_joint_plan_n16_is_certified(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    from opmerge import spectra

    monkeypatch.setenv("OPMERGE_CACHE_DIR", str(tmp_path))
    spectra._digits_cached.cache_clear()
    try:
        spectrum = spectra.digits_spectrum()
    finally:
        spectra._digits_cached.cache_clear()
    problem = spectrum.problem(make_schedule("vp-cosine", 16))
    solution = solve_joint(problem, time_budget=30.0)
    assert solution.method == "pareto" and solution.exact
    reference = solve(problem, time_budget=30.0)
    assert reference.exact and solution.w2 == pytest.approx(reference.w2, abs=solution.tol + reference.tol)
    binned = spectra.bin_spectrum(spectrum, 8).spectrum.problem(make_schedule("vp-cosine", 16))
    assert solve_joint(binned, time_budget=30.0).exact
