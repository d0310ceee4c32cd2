"""Regression tests for faults that the rest of the solver suite let through.

Each test here was checked by planting the fault it names in the solver code and watching the
test fail (see the report of the change that added this file). Brute force over every plan
(:func:`opmerge.solvers.brute_force`) is the independent judge throughout.

* negative retention (gradient descent with ``2 lr q > 1``) must disable the monotone fast path of
  the interval DP: one corner per extreme is wrong when a node is not monotone in its children;
* the data target compares ``|S|`` with the goal: when every value of a partial plan is negative,
  the interval of ``|S|`` is ``[-hi, -lo]``;
* the default tolerance is the documented ``tol = atol + 64 N eps sqrt(sum_i s_i g_i^2)``;
* ties (plans within ``tol``) go to the canonical plans in the order vanilla, boot, cd, pd;
* Ctrl-C and SIGTERM end a large solve at once (exit 130 with one line, or the signal's status),
  and the time budget covers the range tables;
* problems whose tables exceed the memory limit are refused up front with the bytes they need;
  plans ``N`` levels deep are built without recursion;
* the solver functions name the parameter of a bad argument.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from _cli_helpers import REPO

from opmerge.errors import InputError, InputTypeError
from opmerge.model import StudentModel, input_variance
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import canonical_plan
from opmerge.schedules import make_schedule
from opmerge.solvers import achievable_range, brute_force, extreme_plan, fidelity_cost_front, range_tables, solve, solve_joint
from opmerge.solvers.front import plan_cost

EPS = np.finfo(np.float64).eps


def gd_problem(schedule_name, steps, lam, factor, *, init="warm", target="teacher", gd_steps=1, segments=1):
    """Gradient-descent training with ``2 lr q_max = 2 factor`` (``factor > 0.5``: negative retention)."""
    schedule = make_schedule(schedule_name, steps)
    q = input_variance(schedule, lam, "forward", "ddim")
    lr = factor / float(np.max(q[..., 2:]))
    model = StudentModel(training="gd", lr=lr, gd_steps=gd_steps, init=init)
    return Problem(schedule, lam, model=model, target=target, segments=segments)


def assert_optimal(problem, **kwargs):
    """``solve`` returns the brute-force optimum (within tol), says so, and its bound is honest."""
    best = brute_force(problem)[0].w2
    sol = solve(problem, **kwargs)
    assert sol.exact
    assert best <= sol.w2 <= best + sol.tol, (str(sol.plan), sol.w2, best)
    assert sol.lower_bound <= best + sol.tol
    return sol


# ---------------------------------------------------------------------------------------------
# (a) negative retention: the interval DP must take all four corners
# ---------------------------------------------------------------------------------------------
NEGATIVE_RETENTION = [
    # (schedule, N, lam, factor, init, target)
    ("vp-cosine", 4, 0.01, 0.7, "warm", "teacher"),
    ("vp-cosine", 5, 0.1, 0.9, "warm", "teacher"),
    ("vp-linear", 5, 0.1, 0.7, "identity", "teacher"),
    ("rf", 5, 1.0, 0.8, "zero", "teacher"),
]


@pytest.mark.parametrize("case", NEGATIVE_RETENTION, ids=lambda c: "-".join(map(str, c)))
def test_negative_retention_range_and_optimum_match_brute_force(case):
    """vp-cosine, N = 4, lam = 0.01, gd with lr = 0.7 / q_max (K = 1): r_j < 0 for some j.

    With the fast path wrongly taken, solve() reported W2 0.096 as exact where the optimum is 0.051.
    """
    name, steps, lam, factor, init, target = case
    problem = gd_problem(name, steps, lam, factor, init=init, target=target)
    assert np.any(problem.retention[:, 2:] < 0)  # the premise: the fast path must not apply
    ranked = brute_force(problem)
    values = np.array([ev.student[0] for ev in ranked])
    lo, hi = achievable_range(problem)
    assert lo[0] == values.min() and hi[0] == values.max()
    assert_optimal(problem)


def test_negative_retention_worked_example():
    """The case of the issue: the optimum is 0.05066, not the 0.096 of the extreme plan."""
    problem = gd_problem("vp-cosine", 4, 0.01, 0.7)
    sol = assert_optimal(problem)
    assert sol.w2 == pytest.approx(0.0506640, abs=1e-7)


# ---------------------------------------------------------------------------------------------
# (b) data target with negative student values: |S| lies in [-hi, -lo]
# ---------------------------------------------------------------------------------------------
NEGATIVE_DATA = [
    # (schedule, N, lam, factor, init): every student value < 0 and the goal inside the range of |S|
    ("vp-linear", 4, 0.1, 0.7, "identity"),
    ("vp-linear", 5, 0.1, 0.7, "warm"),
    ("vp-cosine", 6, 0.1, 0.9, "identity"),
    ("rf", 5, 0.1, 0.9, "identity"),
]


@pytest.mark.parametrize("engine", ["numba", "python"])
@pytest.mark.parametrize("case", NEGATIVE_DATA, ids=lambda c: "-".join(map(str, c)))
def test_data_target_with_negative_values_matches_brute_force(case, engine):
    """With a wrong negative branch, solve() reported e.g. W2 0.088 as exact where the optimum is 0.0044."""
    name, steps, lam, factor, init = case
    problem = gd_problem(name, steps, lam, factor, init=init, target="data")
    lo, hi = achievable_range(problem)
    assert hi[0] < 0 and -hi[0] < problem.goal[0] < -lo[0]  # the premise: a straddle on the negative side
    assert_optimal(problem, engine=engine)


def test_data_target_with_negative_values_several_directions():
    """The branch and bound of several directions (Pareto does not apply: negative retention)."""
    schedule = make_schedule("vp-linear", 5)
    lam = np.array([0.1, 0.12])
    q = input_variance(schedule, lam, "forward", "ddim")
    model = StudentModel(training="gd", lr=0.7 / float(np.max(q[..., 2:])), gd_steps=1)
    problem = Problem(schedule, lam, weights=[1.0, 0.5], model=model, target="data")
    lo, hi = achievable_range(problem)
    assert np.all(hi < 0)
    assert_optimal(problem)


# ---------------------------------------------------------------------------------------------
# (c) the documented default tolerance
# ---------------------------------------------------------------------------------------------
TOLERANCE_PROBLEMS = [
    Problem(make_schedule("vp-cosine", 6), 0.5),  # goal outside the range: "extreme"
    Problem(make_schedule("rf", 7), 1.0),  # straddle: the one-direction search
    Problem(make_schedule("vp-cosine", 5), [0.3, 2.0], weights=[1.0, 0.5]),  # several directions: Pareto
    Problem(make_schedule("rf", 5), [0.3, 2.0], model=StudentModel(budget="total")),  # several, branch and bound
]


@pytest.mark.parametrize("problem", TOLERANCE_PROBLEMS, ids=["extreme", "search", "pareto", "total"])
def test_default_tolerance_is_64_n_eps_of_the_goal_scale(problem):
    scale = math.sqrt(float(np.sum(problem.scale * problem.goal**2)))
    default = solve(problem)
    assert default.tol == 0.0 + 64.0 * problem.steps * EPS * scale
    assert solve(problem, atol=1e-9).tol == 1e-9 + 64.0 * problem.steps * EPS * scale
    assert solve(problem, rtol=1e-6, atol=1e-9).tol == 1e-9 + 1e-6 * scale
    assert default.to_dict()["tolerance"] == default.tol


CLOSE_PLANS = [
    # (schedule, N, lam, eta_tau): vanilla (met first) is worse than the optimum by 6.7 tol and 24 tol
    ("edm", 4, 30.0, 0.2),
    ("edm", 4, 3.0, 2.0),
]


@pytest.mark.parametrize("case", CLOSE_PLANS, ids=lambda c: "-".join(map(str, c)))
def test_default_tolerance_separates_close_plans(case):
    """Data target, warm init: vanilla is worse than the optimum (CD) by a few default tolerances.

    solve() must return the better plan; a tolerance 10 (or 10^6) times larger would call the two a
    tie and keep vanilla, the plan met first.
    """
    name, steps, lam, eta_tau = case
    problem = Problem(make_schedule(name, steps), lam, model=StudentModel(eta_tau=eta_tau), target="data")
    best = brute_force(problem)[0].w2
    vanilla = evaluate_plan(problem, canonical_plan("vanilla", steps, 1)).w2
    sol = solve(problem)
    assert sol.tol < vanilla - best < 30 * sol.tol  # the premise of the case
    assert sol.plan == canonical_plan("cd", steps, 1)
    assert sol.w2 <= best + sol.tol < vanilla and sol.exact


# ---------------------------------------------------------------------------------------------
# (d) ties go to vanilla, boot, cd, pd (in that order)
# ---------------------------------------------------------------------------------------------
KINDS = ("vanilla", "boot", "cd", "pd")


def _canonical_w2(problem):
    return {kind: evaluate_plan(problem, canonical_plan(kind, problem.steps, problem.segments)).w2 for kind in KINDS}


def test_everything_tied_gives_vanilla():
    """Weights 0: every plan has W2 = 0; the first seed, vanilla, is returned (one and several directions)."""
    for lam, weights in ((0.5, [0.0]), ([0.3, 2.0], [0.0, 0.0])):
        problem = Problem(make_schedule("vp-cosine", 6), lam, weights=weights)
        sol = solve(problem)
        assert sol.w2 == 0.0 and sol.exact
        assert sol.plan == canonical_plan("vanilla", 6, 1)


TIES = [
    # (schedule, N, lam, init, eta_tau, target, the tied optimal canonical plans, expected)
    ("edm", 6, 1.0, "warm", 0.5, "teacher", ("vanilla", "boot"), "vanilla"),  # W2 = 0 for both
    ("vp-cosine", 4, 1.0, "identity", 0.5, "data", ("boot", "cd"), "boot"),
    ("vp-cosine", 6, 1.0, "identity", 0.5, "data", ("boot", "cd"), "boot"),
    ("edm", 4, 0.3, "identity", 0.5, "data", ("cd", "pd"), "cd"),
]


@pytest.mark.parametrize("case", TIES, ids=lambda c: f"{c[0]}-N{c[1]}-lam{c[2]}-{c[3]}-{c[5]}-{c[6][0]}-{c[6][1]}")
def test_ties_go_to_the_canonical_plans_in_order(case):
    """Two canonical plans tie (within tol) at the optimum and every earlier one is worse: the earlier
    of the two in the order vanilla, boot, cd, pd is returned (one direction and, duplicated, two)."""
    name, steps, lam, init, eta_tau, target, tied, expected = case
    model = StudentModel(eta_tau=eta_tau, init=init)
    problem = Problem(make_schedule(name, steps), lam, model=model, target=target)
    w2 = _canonical_w2(problem)
    best = brute_force(problem)[0].w2
    sol = solve(problem)
    # the premise: the two tie with the optimum, every plan before them in the order does not
    assert all(abs(w2[kind] - best) <= sol.tol for kind in tied)
    assert all(w2[kind] - best > sol.tol for kind in KINDS[: KINDS.index(tied[0])])
    assert sol.plan == canonical_plan(expected, steps, 1), (str(sol.plan), w2)
    assert sol.exact
    # the same through the joint solver: two identical directions
    joint = Problem(problem.schedule, [lam, lam], weights=[1.0, 1.0], model=model, target=target)
    assert solve(joint).plan == canonical_plan(expected, steps, 1)


def test_a_tie_within_atol_keeps_the_earlier_plan():
    """vp-cosine, N = 6, lam = 0.3: BOOT is optimal (0.159) and vanilla (0.198) comes first; with
    atol = 0.05 the two tie and vanilla is kept, with atol = 0.03 BOOT replaces it."""
    problem = Problem(make_schedule("vp-cosine", 6), 0.3)
    w2 = _canonical_w2(problem)
    assert 0.03 < w2["vanilla"] - w2["boot"] < 0.05
    assert solve(problem, atol=0.05).plan == canonical_plan("vanilla", 6, 1)
    assert solve(problem, atol=0.03).plan == canonical_plan("boot", 6, 1)


# ---------------------------------------------------------------------------------------------
# (e) Ctrl-C and SIGTERM during a large solve; the time budget covers the range tables
# ---------------------------------------------------------------------------------------------
def _start_plan(*args: str) -> subprocess.Popen:
    """``python -m opmerge plan ...`` with progress lines on stderr (one per 0.5 s once it solves)."""
    env = {k: v for k, v in os.environ.items() if k != "OPMERGE_DEBUG"}
    return subprocess.Popen([sys.executable, "-m", "opmerge", "plan", *args, "--no-draw", "--progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)


def _wait_for_progress(proc: subprocess.Popen, timeout: float = 60.0) -> list[str]:
    """Lines of stderr up to the first progress report of the solver (it is then inside the solve)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        assert line, f"the solver ended before its first progress report: {lines}"
        lines.append(line)
        if line.startswith("opmerge: tables"):
            return lines
    raise AssertionError("no progress report")


@pytest.mark.slow
def test_ctrl_c_during_the_range_tables_exits_130_at_once():
    """N = 2000: the interval DP ran as one Numba call of ~8 s; a SIGINT then waited for it, or
    surfaced inside Numba's boxing of the returned arrays (SystemError chains, or exit -11)."""
    proc = _start_plan("--steps", "2000", "--time-budget", "60")
    try:
        _wait_for_progress(proc)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        rest = proc.stderr.read()
        rc = proc.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert rc == 130, rest
    assert took < 3.0, took  # the tables alone run ~8 s at N = 2000; slack for a busy machine
    assert "Traceback" not in rest and "Error" not in rest
    assert rest.strip().splitlines()[-1] == "opmerge: interrupted"
    assert [line for line in rest.splitlines() if not line.startswith("opmerge: tables")] == ["opmerge: interrupted"]


@pytest.mark.slow
def test_sigterm_during_the_range_tables_ends_the_process():
    proc = _start_plan("--steps", "2000", "--time-budget", "60")
    try:
        _wait_for_progress(proc)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rc = proc.wait(timeout=10)
        took = time.monotonic() - sent
        rest = proc.stderr.read()
    finally:
        proc.kill()
    assert rc == 128 + signal.SIGTERM, rc
    assert took < 3.0 and "Traceback" not in rest and "Error" not in rest
    assert [line for line in rest.splitlines() if not line.startswith("opmerge: tables")] == ["opmerge: terminated"]


@pytest.mark.slow
def test_budget_covers_the_range_tables_on_the_command_line():
    """--steps 3000 --time-budget 1 took 13 s (the tables ran outside the budget)."""
    began = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "opmerge", "plan", "--steps", "3000", "--time-budget", "1", "--json"],
                         capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - began
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["seconds"] <= 1 + 1.5 and wall < 12.0  # start-up (imports, kernel cache) is outside the budget
    assert doc["exact"] is False and doc["stopped"] is True and doc["lower_bound"] == 0.0 and doc["method"] == "seeds"


def test_ctrl_c_inside_a_kernel_that_returns_arrays_is_a_keyboard_interrupt():
    """A SIGINT that arrives while a Numba function returning an array runs used to be raised in
    Numba's call-back (numba.core.serialize) and come out as SystemError; under
    :func:`~opmerge.solvers._interrupts.interruptible` it is a plain KeyboardInterrupt."""
    from _busy_kernel import busy_kernel, raises_when_signalled

    from opmerge.solvers._interrupts import interruptible

    busy, n = busy_kernel()
    guarded = interruptible(busy)
    raises_when_signalled(lambda: guarded(n), signal.SIGINT, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


_CALLBACK_SCRIPT = """
import ctypes, os, signal, sys, time
from opmerge._cli_errors import run_main
from opmerge.solvers._interrupts import interruptible
# a Python function called from C through ctypes, as llvmlite's call-backs are while Numba compiles
# a kernel (its module name is what marks it): a KeyboardInterrupt raised inside it is swallowed
namespace = {"__name__": "llvmlite.binding.stand_in", "os": os, "signal": signal}
exec("def callback():\\n    os.kill(os.getpid(), signal.SIGINT)\\n    for _ in range(200000):\\n        pass\\n    return 7\\n", namespace)
callback = ctypes.CFUNCTYPE(ctypes.c_int)(namespace["callback"])

def command(args):
    value = callback()
    time.sleep(2.0)  # the deferred Ctrl-C arrives here
    print("NOT INTERRUPTED", value)
    return 0

if sys.argv[1] == "run_main":
    sys.exit(run_main(command, []))
try:
    interruptible(command)([])
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""


@pytest.mark.parametrize("guard", ["run_main", "interruptible"])
def test_ctrl_c_inside_a_compiler_call_back_is_raised_after_it(guard):
    """A Ctrl-C while Numba compiled a kernel (cold cache) was raised inside llvmlite's ctypes
    call-back ``_raw_object_cache_notify``: printed as "Exception ignored on calling ctypes callback
    function" with a traceback, lost, and the compilation then ended in ``RuntimeError: no
    compiled object yet`` (exit 1) or the command went on (exit 0). Both the command line's guard
    and the solvers' wrapper now raise it once the call-back has returned."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("OPMERGE_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", _CALLBACK_SCRIPT, guard], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=env)
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "NOT INTERRUPTED" not in proc.stdout
    if guard == "run_main":
        assert (proc.returncode, proc.stderr) == (130, "opmerge: interrupted\n")
    else:
        assert (proc.returncode, proc.stdout) == (0, "KeyboardInterrupt\n")


def test_time_budget_covers_the_range_tables():
    """N = 3000: the tables alone take about 25 s; a 0.4 s budget ends during them with the best canonical plan.

    The bound on the wall time is loose (the canonical seeds are evaluated before the budget can act,
    and the suite runs beside other processes); without the budget inside the tables this call
    takes tens of seconds.
    """
    steps = 3000
    problem = Problem(make_schedule("vp-cosine", steps), 0.5)
    solve(Problem(make_schedule("vp-cosine", 6), 0.5), time_budget=1.0)  # kernels ready
    began = time.perf_counter()
    sol = solve(problem, time_budget=0.4)
    wall = time.perf_counter() - began
    assert wall <= 6.0, wall
    assert sol.method == "seeds" and sol.stopped and not sol.exact and sol.lower_bound == 0.0
    assert np.all(sol.student_range[0] == -np.inf) and np.all(sol.student_range[1] == np.inf)
    best = min(evaluate_plan(problem, canonical_plan(kind, steps, 1)).w2 for kind in ("vanilla", "boot", "cd", "pd"))
    assert sol.w2 == best


def test_front_time_budget_covers_the_range_tables():
    """The fidelity-cost front under a 0.4 s budget at N = 3000 (tables ~25 s): the front of the
    canonical plans, every point not exact, instead of tens of seconds in the tables."""
    steps = 3000
    problem = Problem(make_schedule("vp-cosine", steps), 0.5)
    fidelity_cost_front(Problem(make_schedule("vp-cosine", 6), 0.5))  # kernels ready
    began = time.perf_counter()
    front = fidelity_cost_front(problem, "merges", time_budget=0.4)
    wall = time.perf_counter() - began
    assert wall <= 6.0, wall
    assert front and not any(point.exact for point in front)
    scored = sorted((plan_cost(plan, "merges"), evaluate_plan(problem, plan).w2)
                    for plan in (canonical_plan(kind, steps, 1) for kind in ("vanilla", "boot", "cd", "pd")))
    want: list[tuple[int, float]] = []
    for c, w in scored:
        if not want or w < want[-1][1]:
            want.append((c, w))
    assert [(point.cost, point.w2) for point in front] == want


def test_front_time_budget_covers_the_beam():
    """N = 400: the tables fit a 1 s budget but the exact front DP and its beam do not (the beam
    alone ran for minutes when it had no deadline); the call ends near the budget, not exact."""
    problem = Problem(make_schedule("vp-cosine", 400), 0.5)
    fidelity_cost_front(Problem(make_schedule("vp-cosine", 6), 0.5))  # kernels ready
    began = time.perf_counter()
    front = fidelity_cost_front(problem, "merges", time_budget=1.0)
    assert time.perf_counter() - began <= 1.0 + 3.0
    assert front and not any(point.exact for point in front)


# ---------------------------------------------------------------------------------------------
# (f) sizes: refused up front, with the bytes; deep plans without recursion
# ---------------------------------------------------------------------------------------------
def test_huge_steps_are_refused_before_allocating():
    """--steps 100000 ended in a MemoryError traceback (the tables need 745 GiB)."""
    problem = Problem(make_schedule("vp-cosine", 100_000), 0.5)
    for call in (lambda: solve(problem, time_budget=1.0), lambda: range_tables(problem), lambda: achievable_range(problem)):
        with pytest.raises(InputError, match=r"steps = 100000.*bytes") as info:
            call()
        assert "800,022,400,144 bytes" in str(info.value)
    with pytest.raises(InputError, match=r"steps = 100000.*bytes"):
        Problem(make_schedule("vp-cosine", 100_000), 0.5, model=StudentModel(init="ddim"))


def test_many_directions_are_refused_with_their_memory(monkeypatch):
    from opmerge import objective
    from opmerge.solvers import tables

    problem = Problem(make_schedule("vp-cosine", 16), np.linspace(0.1, 10.0, 1000))
    need = tables.table_bytes(problem)
    assert need == 8 * (2 * 1000 * (4 * 17 * 17 + 2 * 2 * 17) + 2 * 17 * 17)
    monkeypatch.setattr(objective, "memory_limit", lambda: need - 1)
    with pytest.raises(InputError, match=r"1000 direction\(s\) of lam need [0-9,]+ bytes"):
        solve(problem)
    monkeypatch.setattr(objective, "memory_limit", lambda: need)
    assert solve(problem, time_budget=0.2).w2 > 0


def test_deep_plans_are_built_without_recursion():
    """A chain N levels deep: repr/hash of the nested shape raised RecursionError at N = 3000."""
    from opmerge.solvers.tables import plan_from_shape, rebuild_shape, shape_key

    n = 5000
    shape: object = 1
    for k in range(2, n + 1):
        shape = (k, shape)
    plan = plan_from_shape((shape,))
    assert plan.steps == n and plan.n_merges == n - 1
    assert len(shape_key((shape,))) == 2 * n  # n leaves, n - 1 merge nodes and the tuple of segments

    # every tree over j -> i: its first child the leaf j, the rest a forest that is one tree (a chain)
    rebuilt = rebuild_shape(lambda kind, a, j, s: (j - 1, "x", "y") if kind == 0 else (-1, "x", None), n, 1, "x")
    assert shape_key(rebuilt) == shape_key((shape,))
    assert evaluate_plan(Problem(make_schedule("vp-cosine", n), 0.5), plan).w2 > 0


# ---------------------------------------------------------------------------------------------
# (g) library input of the solvers
# ---------------------------------------------------------------------------------------------
BAD_SOLVE_ARGUMENTS = [
    ({"node_budget": True}, InputTypeError, "node_budget"),
    ({"node_budget": 0}, InputError, "node_budget"),
    ({"time_budget": float("nan")}, InputError, "time_budget"),
    ({"time_budget": -1.0}, InputError, "time_budget"),
    ({"time_budget": -math.inf}, InputError, "time_budget"),
    ({"time_budget": "1"}, InputTypeError, "time_budget"),
    ({"rtol": "1e-9"}, InputTypeError, "rtol"),
    ({"atol": True}, InputTypeError, "atol"),
    ({"rtol": math.inf}, InputError, "rtol"),
    ({"engine": "cuda"}, InputError, "engine"),
    ({"engine": None}, InputTypeError, "engine"),
    ({"list_length": True}, InputTypeError, "list_length"),
    ({"list_length": 12}, InputError, "list_length"),
    ({"progress": 3}, InputTypeError, "progress"),
    ({"joint": 1}, InputTypeError, "joint"),
]


@pytest.mark.parametrize("kwargs,error,name", BAD_SOLVE_ARGUMENTS, ids=lambda x: str(x) if isinstance(x, dict) else "")
def test_solve_refuses_bad_arguments_by_name(kwargs, error, name):
    problem = Problem(make_schedule("rf", 4), 1.0)
    with pytest.raises(error, match=name):
        solve(problem, **kwargs)


def test_solver_functions_name_problem_direction_and_tables():
    with pytest.raises(InputTypeError, match="problem"):
        solve(None)
    with pytest.raises(InputTypeError, match="problem"):
        solve_joint("digits")
    problem = Problem(make_schedule("rf", 5), [1.0, 2.0])
    with pytest.raises(InputTypeError, match=r"direction must be an int in \[0, 1\]"):
        extreme_plan(problem, direction=0.5)
    with pytest.raises(InputError, match=r"direction must be an int in \[0, 1\], got 2"):
        extreme_plan(problem, direction=2)
    with pytest.raises(InputTypeError, match="direction"):
        extreme_plan(problem, direction=True)
    with pytest.raises(InputTypeError, match="tables"):
        achievable_range(problem, tables="v_lo")
    with pytest.raises(InputError, match="'g_lo' is missing"):
        achievable_range(problem, tables={k: v for k, v in range_tables(problem).items() if k != "g_lo"})
    small = range_tables(Problem(make_schedule("rf", 4), [1.0, 2.0]))
    with pytest.raises(InputError, match="shape"):
        extreme_plan(problem, tables=small)
