"""Solvers (docs/theory.md §5): the interval DP, extreme plans and the certified branch and bound,
checked against their plain-Python reference and against brute force over every plan."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge.errors import InputError, InputTypeError
from opmerge.model import StudentModel, input_variance
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import PlanParseError, canonical_plan, parse_plan
from opmerge.schedules import custom_schedule, make_schedule
from opmerge.solvers import achievable_range, brute_force, extreme_plan, range_tables, solve
from opmerge.solvers.brute import MAX_BRUTE_FORCE_PLANS
from opmerge.solvers._kernels import new_tables, range_dp, range_dp_run
from opmerge.solvers._reference import range_dp_reference

SCHEDULE_SOLVERS = [
    ("vp-cosine", "ddim"),
    ("vp-linear", "ddim"),
    ("vp-linear", "heun"),
    ("rf", "ddim"),
    ("edm", "ddim"),
    ("edm", "heun"),
]
INITS = ("warm", "ddim", "zero", "identity")
INPUTS = ("forward", "generated")
TARGETS = ("teacher", "data")
# lam log-uniform on [0.01, 100]
LAMS = st.floats(math.log(0.01), math.log(100.0)).map(math.exp)
ETA_TAUS = st.floats(0.05, 3.0)


def gd_lr(schedule, lam, input_, solver, factor):
    """Step size with 2 lr q_j = 2 factor at the largest input variance of a merge node (j >= 2)."""
    q = input_variance(schedule, lam, input_, solver)
    return factor / float(np.max(q[..., 2:])) if schedule.steps >= 2 else 1.0


@st.composite
def problems(draw, max_steps=6, max_segments=3, budgets=("per-merge",), targets=TARGETS, min_steps=1):
    """A random one-direction problem over every schedule, solver, init, training and input."""
    n_steps = draw(st.integers(min_steps, max_steps))
    schedule_name, solver = draw(st.sampled_from(SCHEDULE_SOLVERS))
    schedule = make_schedule(schedule_name, n_steps)
    lam = draw(LAMS)
    init = draw(st.sampled_from(INITS))
    input_ = draw(st.sampled_from(INPUTS))
    budget = draw(st.sampled_from(budgets))
    training = "flow" if budget == "total" else draw(st.sampled_from(("flow", "gd")))
    if training == "flow":
        model = StudentModel(eta_tau=draw(ETA_TAUS), init=init, input=input_, budget=budget)
    else:
        lr = gd_lr(schedule, lam, input_, solver, draw(st.floats(0.05, 0.95)))
        model = StudentModel(init=init, training="gd", input=input_, lr=lr, gd_steps=draw(st.integers(1, 5)))
    segments = draw(st.integers(1, min(n_steps, max_segments)))
    target = draw(st.sampled_from(targets))
    return Problem(schedule, lam, model=model, solver=solver, target=target, segments=segments)


def assert_matches_brute_force(problem, **solve_kwargs):
    """solve() finds the brute-force optimum, says it is exact, and its certificate is honest."""
    ranked = brute_force(problem)
    best = ranked[0].w2
    sol = solve(problem, **solve_kwargs)
    assert sol.plan.n_segments == problem.segments and sol.plan.steps == problem.steps
    assert evaluate_plan(problem, sol.plan).w2 == sol.w2
    # same plan evaluation as brute force, so never below; above only by the documented tie tolerance
    assert best <= sol.w2 <= max(best * (1 + 1e-12), best + sol.tol), (str(sol.plan), sol.w2, str(ranked[0].plan), best)
    assert sol.exact, (sol.w2, sol.lower_bound, sol.tol)
    assert sol.lower_bound <= best + sol.tol
    assert sol.lower_bound <= sol.w2
    return sol, ranked


# ---------------------------------------------------------------------------------------------
# the Numba kernel against its plain-Python reference
# ---------------------------------------------------------------------------------------------
FLOATS = st.one_of(st.floats(-3.0, 3.0), st.sampled_from([0.0, 1.0, -1.0, 0.5]))


@settings(deadline=None, max_examples=200)
@given(data=st.data())
def test_range_dp_kernel_matches_reference(data):
    """Random steps, retention outside [0, 1], negative values, every init code and M."""
    n = data.draw(st.integers(1, 9), label="N")
    steps = np.array([1.0] + data.draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype=np.float64)
    retention = np.array(data.draw(st.lists(st.floats(-1.5, 2.5), min_size=n + 1, max_size=n + 1)), dtype=np.float64)
    init_code = data.draw(st.integers(0, 3), label="init")
    jump = np.array(data.draw(st.lists(FLOATS, min_size=(n + 1) ** 2, max_size=(n + 1) ** 2)), dtype=np.float64)
    jump = np.ascontiguousarray(jump.reshape(n + 1, n + 1))
    segments = data.draw(st.integers(1, n), label="M")
    out = range_dp(steps, retention, init_code, jump, segments)
    ref = range_dp_reference(steps, retention, init_code, jump, segments)
    got = dict(v_lo=out[0], v_hi=out[1], f_lo=out[2], f_hi=out[3], g_lo=out[4], g_hi=out[5])
    want = dict(zip(("v_lo", "v_hi", "f_lo", "f_hi", "g_lo", "g_hi"), ref))
    upper = np.triu(np.ones((n + 1, n + 1), dtype=bool), k=1)
    g_mask = np.zeros((segments + 1, n + 1), dtype=bool)
    for k in range(1, segments + 1):
        g_mask[k, k:] = True
    # the two evaluate (1 - r) c1 R in different association: compare up to rounding of the table's scale
    scale = max(float(np.max(np.abs(want[name][upper]))) for name in ("v_lo", "v_hi", "f_lo", "f_hi"))
    scale = max(scale, float(np.max(np.abs(want["g_lo"][g_mask]))), float(np.max(np.abs(want["g_hi"][g_mask]))), 1.0)
    for name in got:
        mask = g_mask if name.startswith("g") else upper
        np.testing.assert_allclose(got[name][mask], want[name][mask], rtol=0, atol=1e-12 * scale, err_msg=name)
        assert np.all(np.isfinite(got[name][mask]))
    assert np.all(got["v_lo"][upper] <= got["v_hi"][upper])
    assert np.all(got["f_lo"][upper] <= got["v_lo"][upper]) and np.all(got["f_hi"][upper] >= got["v_hi"][upper])


@settings(deadline=None, max_examples=100)
@given(data=st.data())
def test_range_dp_in_slices_matches_one_call(data):
    """The resumable kernel (several directions, a work limit per call as small as 1) fills the
    same tables, bit for bit, as one call per direction: slicing changes when Python regains
    control, never the arithmetic."""
    n = data.draw(st.integers(1, 9), label="N")
    dim = data.draw(st.integers(1, 3), label="d")
    segments = data.draw(st.integers(1, n), label="M")
    init_code = data.draw(st.integers(0, 3), label="init")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    steps = rng.uniform(-2.0, 2.0, (dim, n + 1))
    retention = rng.uniform(-0.5, 1.5, (dim, n + 1))
    jump = rng.uniform(-1.0, 2.0, (dim, n + 1, n + 1))
    tables = new_tables(dim, n, segments)
    state = np.zeros(5, dtype=np.int64)
    scratch = np.empty((n + 1, n + 1)), np.empty((n + 1, n + 1))
    calls = 0
    while state[0] < dim:
        range_dp_run(steps, retention, init_code, jump, segments, *tables, *scratch, state, data.draw(st.integers(1, 40)))
        calls += 1
        assert calls < 10_000
    for d in range(dim):
        whole = range_dp(steps[d], retention[d], init_code, jump[d], segments)
        for name, got, want in zip(("v_lo", "v_hi", "f_lo", "f_hi", "g_lo", "g_hi"), tables, whole):
            np.testing.assert_array_equal(got[d], want, err_msg=f"{name} of direction {d}")


# ---------------------------------------------------------------------------------------------
# the DP's range and extreme plans against brute force
# ---------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=150)
@given(problem=problems(max_steps=7, max_segments=3, targets=("teacher",)))
def test_achievable_range_is_brute_force_min_max(problem):
    lo, hi = achievable_range(problem)
    values = np.array([ev.student[0] for ev in brute_force(problem)])
    size = max(abs(values.min()), abs(values.max()))
    assert lo[0] == pytest.approx(values.min(), rel=1e-12, abs=1e-12 * size)
    assert hi[0] == pytest.approx(values.max(), rel=1e-12, abs=1e-12 * size)
    # the extreme plans read off the DP evaluate exactly (bit for bit) to the range's ends
    for side, end in (("lo", lo[0]), ("hi", hi[0])):
        plan = extreme_plan(problem, 0, side)
        assert plan.n_segments == problem.segments
        assert evaluate_plan(problem, plan).student[0] == end


@settings(deadline=None, max_examples=40)
@given(problem=problems(max_steps=6, max_segments=3, budgets=("total",), targets=("teacher",)))
def test_total_budget_range_encloses_every_plan(problem):
    """budget='total': the DP returns an enclosing interval (union over merge counts)."""
    lo, hi = achievable_range(problem)
    values = np.array([ev.student[0] for ev in brute_force(problem)])
    size = max(abs(values.min()), abs(values.max()))
    assert lo[0] <= values.min() + 1e-12 * size
    assert hi[0] >= values.max() - 1e-12 * size


def test_range_tables_shapes_and_extreme_plan_errors():
    problem = Problem(make_schedule("rf", 6), 1.0, segments=2)
    tables = range_tables(problem)
    assert tables["v_lo"].shape == (1, 7, 7) and tables["g_hi"].shape == (1, 3, 7)
    with pytest.raises(ValueError, match="side"):
        extreme_plan(problem, 0, "middle")
    with pytest.raises(ValueError, match="direction"):
        extreme_plan(problem, 1, "lo")
    total = Problem(make_schedule("rf", 6), 1.0, model=StudentModel(budget="total"))
    with pytest.raises(ValueError, match="per-merge"):
        extreme_plan(total, 0, "lo")


def test_extreme_plan_at_large_n():
    """Backtracking works far beyond brute force (deep trees, N = 300) and hits the range exactly."""
    problem = Problem(make_schedule("vp-cosine", 300), 0.5, segments=3)
    lo, hi = achievable_range(problem)
    for side, end in (("lo", lo[0]), ("hi", hi[0])):
        assert evaluate_plan(problem, extreme_plan(problem, 0, side)).student[0] == end


# ---------------------------------------------------------------------------------------------
# the optimiser against brute force
# ---------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=250)
@given(problem=problems(max_steps=6, max_segments=3, budgets=("per-merge", "per-merge", "total")))
def test_solve_matches_brute_force(problem):
    assert_matches_brute_force(problem)


@settings(deadline=None, max_examples=40)
@given(lam=st.floats(0.6, 1.7), eta_tau=ETA_TAUS, target=st.sampled_from(TARGETS), segments=st.integers(1, 2))
def test_solve_matches_brute_force_rf_straddle(lam, eta_tau, target, segments):
    """rf, N = 6: the range often straddles the goal and the search (not the extremes) decides."""
    problem = Problem(make_schedule("rf", 6), lam, model=StudentModel(eta_tau=eta_tau), target=target, segments=segments)
    assert_matches_brute_force(problem)


@pytest.mark.parametrize("lam", [0.7, 1.0, 1.3])
def test_python_engine_matches_brute_force(lam):
    """The plain-Python one-direction search (engine='python') on rf straddles, N = 7."""
    for target in TARGETS:
        problem = Problem(make_schedule("rf", 7), lam, target=target)
        assert_matches_brute_force(problem, engine="python")


N8_CASES = [
    ("rf", "ddim", 1.0, StudentModel(), "teacher", 1),  # straddles: the search decides
    ("rf", "ddim", 0.8, StudentModel(eta_tau=0.3), "data", 1),
    ("vp-cosine", "ddim", 0.5, StudentModel(), "teacher", 1),
    ("vp-cosine", "ddim", 1.5, StudentModel(input="generated"), "teacher", 2),
    ("edm", "heun", 2.0, StudentModel(init="ddim", eta_tau=0.002), "teacher", 1),
    ("vp-linear", "ddim", 3.0, StudentModel(init="identity", training="gd", lr=0.1, gd_steps=3), "data", 1),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", N8_CASES, ids=lambda c: f"{c[0]}-{c[1]}-lam{c[2]}-{c[3].init}-{c[3].training}-{c[4]}-M{c[5]}")
def test_solve_matches_brute_force_n8(case):
    """N = 8: 4279 plans (2591 for M = 2) each."""
    name, solver, lam, model, target, segments = case
    problem = Problem(make_schedule(name, 8), lam, model=model, solver=solver, target=target, segments=segments)
    assert_matches_brute_force(problem)


def test_solve_total_budget_minimal_case():
    """Regression: complete sub-plans carry a retention interval under budget='total'; treating their
    product as a point (lo * lo) once pruned the optimum (4 3 2) | 1 (w2 0.021122) and certified
    ((4 3) 2) | 1 (w2 0.031399) as exact."""
    problem = Problem(make_schedule("rf", 4), 2.0, model=StudentModel(eta_tau=0.5, budget="total"), segments=2)
    assert_matches_brute_force(problem)


def test_solve_matches_brute_force_total_budget():
    """budget='total' over a fixed grid that contained failing cases before the fix above."""
    failures = []
    for n_steps in (4, 6):
        for name, solver in (("vp-cosine", "ddim"), ("rf", "ddim"), ("vp-linear", "heun")):
            for lam in (0.5, 2.0):
                for init in INITS:
                    for target in TARGETS:
                        for segments in range(1, min(3, n_steps) + 1):
                            model = StudentModel(eta_tau=1.0, init=init, input="generated" if lam > 1 else "forward", budget="total")
                            problem = Problem(make_schedule(name, n_steps), lam, model=model, solver=solver, target=target, segments=segments)
                            try:
                                assert_matches_brute_force(problem)
                            except AssertionError:
                                failures.append((n_steps, name, lam, init, target, segments))
    assert not failures, f"{len(failures)} failing cases, e.g. {failures[:3]}"




def test_solve_matches_brute_force_several_directions():
    """2-3 directions with weights, both targets, per-merge and total budgets, M = 1, 2."""
    cases = [
        ("vp-cosine", [0.3, 1.5], [1.0, 2.0]),
        ("rf", [0.5, 1.0, 4.0], [0.5, 1.0, 0.25]),
        ("vp-linear", [0.05, 20.0], [3.0, 0.0]),
    ]
    for name, lam, weights in cases:
        for model in (StudentModel(), StudentModel(init="ddim", input="generated", eta_tau=1.5)):
            for target in TARGETS:
                for segments in (1, 2):
                    problem = Problem(make_schedule(name, 6), lam, weights=weights, model=model, target=target, segments=segments)
                    assert_matches_brute_force(problem)
                    lo, hi = achievable_range(problem)
                    for d in range(problem.dim):
                        assert evaluate_plan(problem, extreme_plan(problem, d, "lo")).student[d] == lo[d]
                        assert evaluate_plan(problem, extreme_plan(problem, d, "hi")).student[d] == hi[d]
    problem = Problem(make_schedule("edm", 5), [0.2, 3.0], weights=[1.0, 1.0], model=StudentModel(budget="total"))
    assert_matches_brute_force(problem)


def test_exhausted_budget_several_directions_certified():
    """Several directions make the search branch even at N = 8: tiny budgets run out, the bound stays honest."""
    problem = Problem(make_schedule("rf", 8), [0.7, 1.0, 1.4], weights=[1.0, 2.0, 1.0])
    best = brute_force(problem)[0].w2
    exhausted = 0
    for budget in (1, 2, 5, 20):
        sol = solve(problem, node_budget=budget)
        assert sol.lower_bound <= best + sol.tol and best <= sol.w2
        assert sol.exact == (sol.w2 - sol.lower_bound <= sol.tol)
        exhausted += not sol.exact
    assert exhausted >= 1
    assert_matches_brute_force(problem)


def test_solve_non_straddling_is_an_extreme_plan():
    """Goal outside the achievable range (one direction): the optimum is the nearest extreme."""
    problem = Problem(make_schedule("vp-cosine", 12), 0.5)
    sol = solve(problem)
    lo, hi = sol.student_range
    assert not (lo[0] <= problem.goal[0] <= hi[0])
    end = lo[0] if problem.goal[0] < lo[0] else hi[0]
    assert sol.evaluation.student[0] == end
    assert sol.method == "extreme" and sol.exact
    assert sol.w2 == pytest.approx(math.sqrt(problem.scale[0]) * abs(end - problem.goal[0]), rel=1e-14)
    summary = sol.to_dict()
    json.dumps(summary)
    assert summary["plan"] == str(sol.plan) and summary["exact"] is True


def test_tie_rule_prefers_canonical_plans():
    """vp-cosine, N = 6, lam = 100: vanilla and (6 5 4 3 (2 1)) tie to the last bit; vanilla is met first."""
    problem = Problem(make_schedule("vp-cosine", 6), 100.0)
    ranked = brute_force(problem)
    vanilla = evaluate_plan(problem, canonical_plan("vanilla", 6, 1))
    assert ranked[0].w2 == vanilla.w2 == ranked[1].w2
    sol = solve(problem)
    assert sol.plan == canonical_plan("vanilla", 6, 1)


# ---------------------------------------------------------------------------------------------
# exhausted search budget: honest certificate
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_steps", [10, 24])
def test_exhausted_budget_is_not_exact_but_certified(n_steps):
    """rf, lam = 1: the range straddles the goal; one expansion cannot prove optimality at N = 24.

    (N = 10 may be resolved within the budget by a smarter search; then it must be exact.)"""
    problem = Problem(make_schedule("rf", n_steps), 1.0)
    lo, hi = achievable_range(problem)
    assert lo[0] < problem.goal[0] < hi[0]  # straddles
    sol = solve(problem, node_budget=1)
    assert 0.0 <= sol.lower_bound <= sol.w2
    assert sol.exact == (sol.w2 - sol.lower_bound <= sol.tol)
    if n_steps == 24:
        assert not sol.exact
        assert sol.gap == sol.w2 - sol.lower_bound > sol.tol
    tiny_time = solve(problem, time_budget=1e-9)
    assert tiny_time.lower_bound <= tiny_time.w2
    # a bigger budget never does worse and its bound never contradicts the small one's incumbent
    more = solve(problem, node_budget=200)
    assert more.w2 <= sol.w2 and more.lower_bound <= sol.w2


@pytest.mark.parametrize("n_steps", [7, 8])
def test_small_budget_certificate_is_honest_against_brute_force(n_steps):
    """rf straddling cases, tiny node budgets: whatever the budget allows, the bound stays below the optimum."""
    for lam in (0.8, 1.0, 1.3):
        for target in TARGETS:
            problem = Problem(make_schedule("rf", n_steps), lam, target=target)
            lo, hi = achievable_range(problem)
            assert lo[0] < problem.teacher[0] < hi[0]
            best = brute_force(problem)[0].w2
            for budget in (1, 3, 10, 30):
                sol = solve(problem, node_budget=budget)
                assert sol.lower_bound <= best + sol.tol
                assert best <= sol.w2
                assert sol.exact == (sol.w2 - sol.lower_bound <= sol.tol)
                if sol.exact:
                    assert sol.w2 <= max(best * (1 + 1e-12), best + sol.tol)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [-0.5, float("nan"), float("inf"), [1.0, -1.0]])
def test_rejects_bad_lambda(lam):
    with pytest.raises(ValueError, match="lam"):
        Problem(make_schedule("rf", 4), lam)


def test_rejects_bad_schedules_and_sizes():
    with pytest.raises(ValueError, match="signal-to-noise"):
        custom_schedule([1.0, 0.5, 0.8], [0.1, 0.5, 0.6])  # SNR rises from n = 1 to 2
    with pytest.raises(ValueError, match="steps"):
        make_schedule("rf", 0)
    with pytest.raises(ValueError, match="segments"):
        Problem(make_schedule("rf", 4), 1.0, segments=5)
    with pytest.raises(ValueError, match="segments"):
        Problem(make_schedule("rf", 4), 1.0, segments=0)
    with pytest.raises(ValueError, match="alpha_n > 0"):
        Problem(make_schedule("rf", 4), 1.0, solver="heun")


def test_rejects_unstable_or_invalid_training():
    schedule = make_schedule("edm", 4)  # q_N = 1 + 80^2
    with pytest.raises(ValueError, match="diverges"):
        Problem(schedule, 1.0, model=StudentModel(training="gd", lr=0.01, gd_steps=2))  # 2 lr q ~ 128
    with pytest.raises(ValueError, match="total"):
        StudentModel(training="gd", lr=1e-4, gd_steps=2, budget="total")
    with pytest.raises(ValueError, match="lr"):
        StudentModel(training="gd")


def test_rejects_bad_plans_and_solver_arguments():
    problem = Problem(make_schedule("rf", 4), 1.0)
    for text in ("(4 3 2", "(4 3 2 1))", "(4 2 1)", "(4 (3) 2 1)", "4 3 2 1", "(4 3 x 1)", ""):
        with pytest.raises(PlanParseError):
            parse_plan(text)
    with pytest.raises(ValueError, match="N = 5"):
        evaluate_plan(problem, parse_plan("(5 4 3 2 1)"))
    with pytest.raises(ValueError, match="N=5"):
        parse_plan("(5 4 3 2 1)", steps=4)
    for kwargs in ({"node_budget": 0}, {"time_budget": -1.0}, {"time_budget": float("nan")}, {"rtol": -1e-3}):
        with pytest.raises(ValueError):
            solve(problem, **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"node_budget": 0}, InputError, "node_budget"),
        ({"node_budget": 10.0}, InputTypeError, "node_budget"),
        ({"node_budget": True}, InputTypeError, "node_budget"),
        ({"time_budget": 0.0}, InputError, "time_budget"),
        ({"time_budget": float("nan")}, InputError, "time_budget"),
        ({"time_budget": "10"}, InputTypeError, "time_budget"),
        ({"rtol": -1e-3}, InputError, "rtol"),
        ({"rtol": float("inf")}, InputError, "rtol"),
        ({"atol": -1.0}, InputError, "atol"),
        ({"atol": None}, InputTypeError, "atol"),
        ({"list_length": 12}, InputError, "list_length"),
        ({"list_length": 0}, InputError, "list_length"),
        ({"list_length": 3.0}, InputTypeError, "list_length"),
        ({"engine": "cuda"}, InputError, "engine"),
        ({"joint": "yes"}, InputTypeError, "joint"),
    ],
)
def test_solve_reports_bad_arguments_as_input_errors(kwargs, error, name):
    """Every bad argument raises the InputError subclass the command line catches, naming the parameter."""
    problem = Problem(make_schedule("rf", 4), 1.0)
    with pytest.raises(error, match=name) as info:
        solve(problem, **kwargs)
    assert isinstance(info.value, ValueError)  # library callers may keep catching ValueError


def test_solvers_refuse_what_is_not_a_problem():
    for call in (solve, range_tables, achievable_range, extreme_plan, brute_force):
        with pytest.raises(InputTypeError, match="problem"):
            call(make_schedule("rf", 4))


def test_extreme_plan_and_brute_force_report_input_errors():
    problem = Problem(make_schedule("rf", 5), [0.5, 2.0])
    with pytest.raises(InputError, match=r"direction must be an int in \[0, 1\], got 2"):
        extreme_plan(problem, 2)
    with pytest.raises(InputTypeError, match="direction"):
        extreme_plan(problem, 1.0)
    with pytest.raises(InputError, match="side must be one of lo, hi, got 'low'"):
        extreme_plan(problem, 0, "low")
    total = Problem(make_schedule("rf", 5), 1.0, model=StudentModel(budget="total"))
    with pytest.raises(InputError, match="per-merge"):
        extreme_plan(total)
    large = Problem(make_schedule("rf", 12), 1.0)  # 2,646,723 plans
    with pytest.raises(InputError, match=str(MAX_BRUTE_FORCE_PLANS)):
        brute_force(large)


def test_numpy_integer_budgets_are_accepted_and_change_nothing():
    """A budget read from an array (numpy int) is an int: same answer as the Python int."""
    problem = Problem(make_schedule("rf", 7), 1.0)  # straddles: the search runs
    want = solve(problem, node_budget=5000, list_length=4)
    got = solve(problem, node_budget=np.int64(5000), list_length=np.int32(4), time_budget=np.float32(10.0))
    assert str(got.plan) == str(want.plan) and got.w2 == want.w2 and got.lower_bound == want.lower_bound
    assert got.method == "search"
