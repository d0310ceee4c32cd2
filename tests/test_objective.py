"""The objective (docs/theory.md §4-§6): plan evaluation and W2, against an independent hand computation.

The reference evaluator below is written from the formulas of docs/theory.md alone, with Python
floats and one direction at a time: teacher steps from ``(alpha, sigma)`` (DDIM by its formula,
Heun by running the Euler predictor and trapezoid corrector in ``y = z / alpha`` with 40-digit
mpmath),
input variances, retention ``r = exp(-2 eta_tau q_j)`` or ``(1 - 2 lr q_j)^K``, node values
``a = P + (a0 - P) r`` with ``P = c_k ... c_1`` multiplied in application order, ``S`` the product
of the segments and both W2 formulas. It shares nothing with ``opmerge.objective`` except the
schedule arrays and the plan trees.
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge.model import StudentModel, node_value
from opmerge.objective import Problem, evaluate_plan, merge_value, w2_distance
from opmerge.plans import CANONICAL_KINDS, MergeNode, Plan, canonical_plan, enumerate_plans, parse_plan
from opmerge.schedules import make_schedule
from strategies import plans as plan_strategy

# (schedule, solver): Heun only where alpha_n > 0 everywhere
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
RTOL = 1e-12


# ---------------------------------------------------------------------------------------------
# the independent reference (docs/theory.md §2, §4, §5), one direction
# ---------------------------------------------------------------------------------------------
def ref_ddim_step(alpha, sigma, lam, n):
    """A_n = (a_{n-1} a_n lam + s_{n-1} s_n) / (a_n^2 lam + s_n^2)."""
    return (alpha[n - 1] * alpha[n] * lam + sigma[n - 1] * sigma[n]) / (alpha[n] ** 2 * lam + sigma[n] ** 2)


def ref_heun_step(alpha, sigma, lam, n):
    """One EDM Heun step run on y = 1 in y = z / alpha, s = sigma / alpha, in 40-digit arithmetic.

    The slope is taken literally, d = (y - D(y, s)) / s with D = lam / (lam + s^2) y, which cancels
    badly in floating point when s^2 >> lam; mpmath keeps the reference exact to double precision.
    """
    with mpmath.workdps(40):
        a_prev, a_cur = mpmath.mpf(float(alpha[n - 1])), mpmath.mpf(float(alpha[n]))
        lam_ = mpmath.mpf(float(lam))
        s, s_next = mpmath.mpf(float(sigma[n])) / a_cur, mpmath.mpf(float(sigma[n - 1])) / a_prev

        def slope(y, s_):
            denoised = lam_ / (lam_ + s_ * s_) * y
            return (y - denoised) / s_

        y = mpmath.mpf(1)
        d_here = slope(y, s)
        y_pred = y + (s_next - s) * d_here
        if s_next == 0:
            y_next = y_pred  # last step into s = 0: plain Euler, as in EDM
        else:
            y_next = y + (s_next - s) * (d_here + slope(y_pred, s_next)) / 2
        return float(a_prev / a_cur * y_next)


def ref_jump(alpha, sigma, lam, top, bottom):
    """D(j -> i) = <v_i, v_j> / |v_j|^2."""
    return (alpha[bottom] * alpha[top] * lam + sigma[bottom] * sigma[top]) / (alpha[top] ** 2 * lam + sigma[top] ** 2)


class RefDirection:
    """Everything the reference needs for one eigen-direction of one problem."""

    def __init__(self, schedule, lam, solver, model):
        self.alpha = [float(a) for a in schedule.alpha]
        self.sigma = [float(s) for s in schedule.sigma]
        self.lam = float(lam)
        self.model = model
        n_steps = len(self.alpha) - 1
        self.n = n_steps
        step = ref_ddim_step if solver == "ddim" else ref_heun_step
        self.steps = [1.0] + [step(self.alpha, self.sigma, self.lam, n) for n in range(1, n_steps + 1)]
        self.norm_sq = [a * a * self.lam + s * s for a, s in zip(self.alpha, self.sigma)]

    def teacher(self, top, bottom=0):
        out = 1.0
        for n in range(bottom + 1, top + 1):
            out *= self.steps[n]
        return out

    def q(self, j):
        if self.model.input == "forward":
            return self.norm_sq[j]
        return self.norm_sq[self.n] * self.teacher(self.n, j) ** 2

    def retention(self, j, n_merges):
        m = self.model
        if m.training == "flow":
            eta_tau = m.eta_tau / n_merges if m.budget == "total" else m.eta_tau
            return math.exp(-2.0 * eta_tau * self.q(j))
        return (1.0 - 2.0 * m.lr * self.q(j)) ** m.gd_steps

    def a0(self, children_values, top, bottom):
        init = self.model.init
        if init == "warm":
            return children_values[0]
        if init == "ddim":
            return ref_jump(self.alpha, self.sigma, self.lam, top, bottom)
        return 0.0 if init == "zero" else 1.0

    def tree(self, tree, n_merges, record):
        """(value, magnitude): the magnitude replaces every operation by its absolute-value form,
        so ``RTOL * magnitude`` bounds the rounding error of any evaluation order (conditioning)."""
        if not isinstance(tree, MergeNode):
            return self.steps[tree], abs(self.steps[tree])
        results = [self.tree(child, n_merges, record) for child in tree.children]
        values = [v for v, _ in results]
        target, target_mag = 1.0, 1.0
        for c, c_mag in results:  # P = c_k ... c_1, c_1 applied first
            target, target_mag = c * target, c_mag * target_mag
        r = self.retention(tree.top, n_merges)
        a0 = self.a0(values, tree.top, tree.bottom)
        a0_mag = results[0][1] if self.model.init == "warm" else abs(a0)
        value = target + (a0 - target) * r
        magnitude = target_mag + (a0_mag + target_mag) * abs(r)
        record[tree] = (value, magnitude)
        return value, magnitude

    def evaluate(self, plan):
        """(segment values, S, magnitude of S, {node: (value, magnitude)})."""
        record = {}
        segments = [self.tree(seg, max(plan.n_merges, 1), record) for seg in plan.segments]
        student, magnitude = 1.0, 1.0
        for v, v_mag in segments:
            student, magnitude = v * student, v_mag * magnitude
        return [v for v, _ in segments], [m for _, m in segments], student, magnitude, record


@functools.lru_cache(maxsize=256)
def ref_direction(schedule, lam, solver, model):
    """Cached :class:`RefDirection` (the mpmath Heun steps are slow to recompute for every plan)."""
    return RefDirection(schedule, lam, solver, model)


def ref_w2(directions, weights, student, target):
    """W2 of docs/theory.md §5 (teacher or data target) from per-direction S."""
    total = 0.0
    for d, w, s in zip(directions, weights, student):
        norm_noise_sq = d.norm_sq[d.n]
        if target == "teacher":
            total += w * norm_noise_sq * (s - d.teacher(d.n)) ** 2
        else:
            total += w * (abs(s) * math.sqrt(norm_noise_sq) - math.sqrt(d.lam)) ** 2
    return math.sqrt(total)


def w2_atol(directions, weights, magnitudes, target):
    """Absolute error allowed on W2: RTOL times the size of the terms that cancel in it."""
    total = 0.0
    for d, w, s_mag in zip(directions, weights, magnitudes):
        goal = d.teacher(d.n) if target == "teacher" else math.sqrt(d.lam) / math.sqrt(d.norm_sq[d.n])
        total += w * d.norm_sq[d.n] * (s_mag + abs(goal)) ** 2
    return RTOL * math.sqrt(total) + 1e-300


def stable_lr(schedule, lam, input_, solver, factor):
    """A gd step size with ``2 lr q_j = 2 factor`` at the largest input variance of a node (j >= 2)."""
    d = RefDirection(schedule, lam, solver, StudentModel(input=input_))
    q_max = max(d.q(j) for j in range(2, schedule.steps + 1)) if schedule.steps >= 2 else 1.0
    return factor / q_max


def check_evaluation(problem, plan):
    """evaluate_plan(problem, plan) against the reference, per direction, every field."""
    ev = evaluate_plan(problem, plan)
    directions = [ref_direction(problem.schedule, float(lam), problem.solver, problem.model) for lam in problem.lam]
    ref_student, magnitudes = [], []
    for k, d in enumerate(directions):
        segments, segment_mags, student, magnitude, record = d.evaluate(plan)
        ref_student.append(student)
        magnitudes.append(magnitude)
        assert set(ev.node_values) == set(record)
        for node, (value, node_mag) in record.items():
            assert abs(ev.node_values[node][k] - value) <= RTOL * node_mag, (str(node), ev.node_values[node][k], value)
        for got, value, seg_mag in zip(ev.segment_values[:, k], segments, segment_mags):
            assert abs(got - value) <= RTOL * seg_mag
        assert abs(ev.student[k] - student) <= RTOL * magnitude
        assert ev.teacher[k] == pytest.approx(d.teacher(d.n), rel=RTOL, abs=1e-300)
        assert ev.exact[k] == pytest.approx(math.sqrt(d.norm_sq[0] / d.norm_sq[d.n]), rel=RTOL)
    ref = ref_w2(directions, problem.weights, ref_student, problem.target)
    assert abs(ev.w2 - ref) <= w2_atol(directions, problem.weights, magnitudes, problem.target)
    assert ev.plan == plan
    return ev


def _all_models(schedule, lam, init, input_, solver):
    return [
        StudentModel(eta_tau=0.7, init=init, training="flow", input=input_, budget="per-merge"),
        StudentModel(eta_tau=0.7, init=init, training="flow", input=input_, budget="total"),
        StudentModel(init=init, training="gd", input=input_, lr=stable_lr(schedule, lam, input_, solver, 0.4), gd_steps=4),
        # 1 - 2 lr q < 0 at the largest q: negative retention with an odd step count
        StudentModel(init=init, training="gd", input=input_, lr=stable_lr(schedule, lam, input_, solver, 0.8), gd_steps=3),
    ]


# ---------------------------------------------------------------------------------------------
# evaluate_plan against the hand computation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("schedule_name,solver", SCHEDULE_SOLVERS)
def test_evaluate_plan_matches_hand_computation(schedule_name, solver, init):
    """Every plan for N = 4 (all M) and the canonical plans for N = 7 (M = 1, 2, 3)."""
    cases = [(4, plan) for m in range(1, 5) for plan in enumerate_plans(4, m)]
    cases += [(7, canonical_plan(kind, 7, m)) for kind in CANONICAL_KINDS for m in (1, 2, 3)]
    cases.append((7, parse_plan("((7 (6 5)) 4 (3 2)) | 1")))
    for n_steps, plans in ((4, [p for n, p in cases if n == 4]), (7, [p for n, p in cases if n == 7])):
        schedule = make_schedule(schedule_name, n_steps)
        for lam in (0.05, 1.0, 30.0):
            for input_ in INPUTS:
                for model in _all_models(schedule, lam, init, input_, solver):
                    for target in TARGETS:
                        for segments in sorted({p.n_segments for p in plans}):
                            problem = Problem(schedule, lam, model=model, solver=solver, target=target, segments=segments)
                            for plan in plans:
                                if plan.n_segments == segments:
                                    check_evaluation(problem, plan)


@settings(deadline=None, max_examples=120)
@given(
    plan=plan_strategy(max_steps=10),
    schedule_solver=st.sampled_from(SCHEDULE_SOLVERS),
    init=st.sampled_from(INITS),
    input_=st.sampled_from(INPUTS),
    training=st.sampled_from(("flow", "gd")),
    total=st.booleans(),
    target=st.sampled_from(TARGETS),
    lam=st.floats(0.01, 100.0),
    eta_tau=st.floats(0.05, 3.0),
    lr_factor=st.floats(0.05, 0.95),
    gd_steps=st.integers(1, 6),
)
def test_evaluate_plan_random_plans(plan, schedule_solver, init, input_, training, total, target, lam, eta_tau, lr_factor, gd_steps):
    schedule_name, solver = schedule_solver
    schedule = make_schedule(schedule_name, plan.steps)
    if training == "flow":
        model = StudentModel(eta_tau=eta_tau, init=init, input=input_, budget="total" if total else "per-merge")
    else:
        lr = stable_lr(schedule, lam, input_, solver, lr_factor)
        model = StudentModel(init=init, training="gd", input=input_, lr=lr, gd_steps=gd_steps)
    problem = Problem(schedule, lam, model=model, solver=solver, target=target, segments=plan.n_segments)
    check_evaluation(problem, plan)


def test_total_budget_splits_eta_tau_over_the_merge_nodes():
    """budget='total' with m merge nodes equals per-merge training with eta_tau / m (flow)."""
    schedule = make_schedule("vp-cosine", 6)
    for text in ("(6 5 4 3 2 1)", "((6 5) 4 (3 2) 1)", "(((((6 5) 4) 3) 2) 1)", "(6 5) | (4 (3 2 1))"):
        plan = parse_plan(text)
        total = Problem(schedule, 0.4, model=StudentModel(eta_tau=1.2, budget="total"), segments=plan.n_segments)
        split = Problem(schedule, 0.4, model=StudentModel(eta_tau=1.2 / plan.n_merges), segments=plan.n_segments)
        assert evaluate_plan(total, plan).student[0] == evaluate_plan(split, plan).student[0]


def test_plan_without_merges_is_the_teacher():
    """M = N: every segment is a teacher step, S = T for every model."""
    for name, solver in SCHEDULE_SOLVERS:
        schedule = make_schedule(name, 5)
        plan = parse_plan("5 | 4 | 3 | 2 | 1")
        for model in (StudentModel(), StudentModel(init="zero", budget="total")):
            ev = evaluate_plan(Problem(schedule, 0.7, model=model, solver=solver, segments=5), plan)
            assert ev.student[0] == pytest.approx(ev.teacher[0], rel=1e-14)
            assert ev.w2 == pytest.approx(0.0, abs=1e-14 * math.sqrt(0.7 + 1))


# ---------------------------------------------------------------------------------------------
# several directions with weights
# ---------------------------------------------------------------------------------------------


def test_multi_direction_problem_can_be_built():
    problem = Problem(make_schedule("edm", 4), lam=[0.3, 2.0], weights=[1.0, 0.5])
    expected = np.sqrt(problem.schedule.alpha[-1] ** 2 * np.array([0.3, 2.0]) + problem.schedule.sigma[-1] ** 2)
    np.testing.assert_allclose(problem.norm_noise, expected, rtol=1e-15)


def test_multi_direction_norm_noise_when_d_equals_n_plus_one():
    """d == N + 1 builds without error but with the wrong |v_N| (silent)."""
    lam = np.array([0.1, 1.0, 10.0])
    problem = Problem(make_schedule("edm", 2), lam=lam)
    expected = np.sqrt(problem.schedule.alpha[-1] ** 2 * lam + problem.schedule.sigma[-1] ** 2)
    np.testing.assert_allclose(problem.norm_noise, expected, rtol=1e-15)


@pytest.mark.parametrize("target", TARGETS)
def test_evaluate_plan_several_directions_with_weights(target):
    schedule = make_schedule("vp-linear", 5)
    for lam, weights in (([0.1, 4.0], [2.0, 0.5]), ([0.02, 1.0, 50.0], [1.0, 0.0, 3.0])):
        for model in (StudentModel(eta_tau=0.4), StudentModel(init="ddim", input="generated", budget="total")):
            for m in (1, 2):
                problem = Problem(schedule, lam, weights=weights, model=model, target=target, segments=m)
                for kind in CANONICAL_KINDS:
                    check_evaluation(problem, canonical_plan(kind, 5, m))


# ---------------------------------------------------------------------------------------------
# W2 formulas (docs/theory.md §5)
# ---------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=60)
@given(
    name=st.sampled_from(("vp-cosine", "vp-linear", "rf", "edm")),
    lam=st.floats(0.0, 100.0),
    # W2 squares its terms: keep them out of the underflow range (|x| < 1e-154 squares to 0)
    student=st.floats(-3.0, 3.0).filter(lambda x: x == 0.0 or abs(x) > 1e-100),
    target=st.sampled_from(TARGETS),
)
def test_w2_formulas(name, lam, student, target):
    schedule = make_schedule(name, 5)
    problem = Problem(schedule, lam, target=target)
    norm_noise_sq = schedule.alpha[-1] ** 2 * lam + schedule.sigma[-1] ** 2
    teacher = float(np.prod([ref_ddim_step(schedule.alpha, schedule.sigma, lam, n) for n in range(1, 6)]))
    if target == "teacher":
        expected = math.sqrt(norm_noise_sq) * abs(student - teacher)
    else:
        expected = abs(abs(student) * math.sqrt(norm_noise_sq) - math.sqrt(lam))
    scale = math.sqrt(norm_noise_sq) * (abs(student) + abs(teacher)) + math.sqrt(lam)
    assert w2_distance(problem, [student]) == pytest.approx(expected, rel=1e-12, abs=1e-13 * scale)
    assert problem.w2_of(np.array([student])) == w2_distance(problem, [student])


def test_data_target_uses_the_absolute_value():
    """W2 to the data sees |S|: S and -S are equally far; the teacher target is not symmetric."""
    schedule = make_schedule("rf", 4)
    data = Problem(schedule, 0.8, target="data")
    teacher = Problem(schedule, 0.8, target="teacher")
    assert w2_distance(data, [0.6]) == w2_distance(data, [-0.6])
    assert w2_distance(teacher, [-0.6]) > w2_distance(teacher, [0.6])
    # the exact flow reaches the data distribution: |E(N -> 0)| |v_N| = |v_0| = sqrt(lam) (sigma_0 = 0)
    assert w2_distance(data, data.exact) == pytest.approx(0.0, abs=1e-15)


# ---------------------------------------------------------------------------------------------
# warm-init facts (docs/theory.md §4, §6)
# ---------------------------------------------------------------------------------------------
def _configs_by_step_sign():
    """(schedule, solver, N, lam) with every A_n <= 1 and with every A_n >= 1, found on a grid."""
    below, above = [], []
    for name, solver in SCHEDULE_SOLVERS:
        for n_steps in (3, 5, 6):
            for lam in (0.01, 0.1, 0.5, 1.0, 2.0, 10.0, 100.0):
                steps = Problem(make_schedule(name, n_steps), lam, solver=solver).step_values[0, 1:]
                if np.all(steps <= 1.0):
                    below.append((name, solver, n_steps, lam))
                if np.all(steps >= 1.0):
                    above.append((name, solver, n_steps, lam))
    return below, above


CONFIGS_BELOW, CONFIGS_ABOVE = _configs_by_step_sign()
ALL_PLANS = {n: [p for m in range(1, n + 1) for p in enumerate_plans(n, m)] for n in (3, 5, 6)}


def test_step_sign_configurations_exist():
    """Both regimes occur: e.g. vp-cosine with lam = 1 (E = 1 > A_n) and vp-linear with large lam."""
    assert ("vp-cosine", "ddim", 6, 1.0) in CONFIGS_BELOW
    assert ("edm", "ddim", 6, 2.0) in CONFIGS_BELOW
    assert ("vp-linear", "ddim", 6, 100.0) in CONFIGS_ABOVE
    assert len(CONFIGS_ABOVE) >= 3


def _warm_models(schedule, lam, solver, eta_tau):
    """Warm init with retention in [0, 1]: flow (forward, generated, total budget) and gd with 2 lr q <= 1."""
    lr = stable_lr(schedule, lam, "forward", solver, 0.45)
    return (
        StudentModel(eta_tau=eta_tau),
        StudentModel(eta_tau=eta_tau, input="generated"),
        StudentModel(eta_tau=eta_tau, budget="total"),
        StudentModel(training="gd", lr=lr, gd_steps=max(1, round(4 * eta_tau))),
    )


def _check_sign(config, eta_tau, sign):
    name, solver, n_steps, lam = config
    schedule = make_schedule(name, n_steps)
    for model in _warm_models(schedule, lam, solver, eta_tau):
        problems = {m: Problem(schedule, lam, model=model, solver=solver, segments=m) for m in range(1, n_steps + 1)}
        teacher = problems[1].teacher[0]
        for plan in ALL_PLANS[n_steps]:
            student = evaluate_plan(problems[plan.n_segments], plan).student[0]
            # S = T exactly in theory for plans without merges; allow the rounding of two products
            assert sign * (student - teacher) >= -1e-14 * abs(teacher), (config, str(plan))


@pytest.mark.parametrize("config", CONFIGS_BELOW[::3], ids=str)
def test_warm_init_overshoots_when_every_step_shrinks(config):
    """Every A_n <= 1 => every plan has S >= T (all plans, all M, N <= 6)."""
    for eta_tau in (0.05, 0.5, 2.5):
        _check_sign(config, eta_tau, +1)


@pytest.mark.parametrize("config", CONFIGS_ABOVE, ids=str)
def test_warm_init_shrinks_when_every_step_grows(config):
    """Every A_n >= 1 => every plan has S <= T (all plans, all M, N <= 6)."""
    for eta_tau in (0.05, 0.5, 2.5):
        _check_sign(config, eta_tau, -1)


def test_warm_node_is_convex_combination():
    """a = c1 (w P' + 1 - w), w = 1 - r (docs/theory.md §4) against merge_value."""
    problem = Problem(make_schedule("rf", 5), 0.5)
    rng = np.random.default_rng(1)
    for _ in range(200):
        k = int(rng.integers(2, 5))
        children = [np.array([x]) for x in rng.uniform(0.2, 2.0, k)]
        r = rng.uniform(0.0, 1.0)
        retention = np.full((1, 6), r)
        rest = float(np.prod([c[0] for c in children[1:]]))
        expected = children[0][0] * ((1 - r) * rest + r)
        got = merge_value(problem, retention, 5, 5 - k, children)[0]
        assert got == pytest.approx(expected, rel=1e-14)


@settings(deadline=None, max_examples=200)
@given(
    children=st.lists(st.floats(0.01, 3.0), min_size=2, max_size=5),
    r=st.floats(0.0, 1.0),
    which=st.integers(0, 4),
    bump=st.floats(1e-6, 2.0),
    init=st.sampled_from(INITS),
)
def test_node_value_is_monotone_in_every_child(children, r, which, bump, init):
    """Positive children, r in [0, 1]: raising any one child never lowers the node value."""
    which = which % len(children)
    k = len(children)
    problem = Problem(make_schedule("vp-cosine", 6), 0.5, model=StudentModel(init=init))
    retention = np.full((1, 7), r)
    base = [np.array([c]) for c in children]
    raised = list(base)
    raised[which] = base[which] + bump
    low = merge_value(problem, retention, 6, 6 - k, base)[0]
    high = merge_value(problem, retention, 6, 6 - k, raised)[0]
    assert high >= low - 1e-15 * abs(low)
    # the model's node_value (P + (a0 - P) r) is the same function
    a0 = problem.jump[0, 6 - k, 6] if init == "ddim" else {"warm": children[0], "zero": 0.0, "identity": 1.0}[init]
    assert node_value(base, r, a0)[0] == pytest.approx(low, rel=1e-13, abs=1e-15)


def test_evaluate_plan_rejects_wrong_plans():
    problem = Problem(make_schedule("rf", 4), 1.0)
    with pytest.raises(ValueError, match="N = 5"):
        evaluate_plan(problem, parse_plan("(5 4 3 2 1)"))
    with pytest.raises(ValueError, match="segment"):
        evaluate_plan(problem, parse_plan("(4 3) | (2 1)"))
    with pytest.raises(TypeError, match="Plan"):
        evaluate_plan(problem, "(4 3 2 1)")
    assert isinstance(Plan.from_text("(4 3 2 1)"), Plan)
