"""The one-direction exact search: Numba kernel vs its plain-Python reference vs brute force."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge import Problem, StudentModel, brute_force, make_schedule, solve
from opmerge.solvers import achievable_range
from opmerge.solvers._kernels import closest_pair
from opmerge.solvers._line import _list_sizes, effective_list_length
from opmerge.solvers._reference import closest_pair_reference
from opmerge.solvers._search import ValueLists

finite = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@settings(deadline=None, max_examples=60)
@given(
    values_1=st.lists(finite, min_size=1, max_size=12),
    values_2=st.lists(finite, min_size=1, max_size=12),
    a=finite, b=finite, c=finite, d=finite, goal=finite,
)
def test_closest_pair_matches_brute_force(values_1, values_2, a, b, c, d, goal):
    v1 = np.sort(np.array(values_1))
    v2 = np.sort(np.array(values_2))
    dist, i1, i2 = closest_pair(v1, v2, a, b, c, d, goal)
    ref_dist, _, _ = closest_pair_reference(v1, v2, a, b, c, d, goal)
    assert dist == pytest.approx(ref_dist, abs=1e-12)
    assert abs(a * v1[i1] * v2[i2] + b * v1[i1] + c * v2[i2] + d - goal) == pytest.approx(dist, abs=1e-12)


def test_value_lists_hold_every_tree_value_once():
    problem = Problem(make_schedule("rf", 6), 1.0)
    lists = ValueLists(problem.step_values[0], problem.retention[0], 0, None)
    values = lists.get("V", 0, 6)[0]
    assert values.shape[0] == 197  # little Schröder number
    brute = np.sort([ev.student[0] for ev in brute_force(problem)])
    np.testing.assert_array_equal(values, brute)  # bit-identical to plan evaluation
    # back-pointers rebuild the plan of each entry
    for index in (0, 50, 196):
        from opmerge import Plan, evaluate_plan

        tree = lists.tree(0, 6, index)
        assert evaluate_plan(problem, Plan((tree,))).student[0] == values[index]


def test_list_sizes_are_schroeder_numbers():
    assert [_list_sizes(n)[0] for n in range(1, 9)] == [1, 1, 3, 11, 45, 197, 903, 4279]
    assert [_list_sizes(n)[1] for n in range(1, 6)] == [1, 2, 6, 22, 90]
    assert effective_list_length(32, 10) == 10
    assert effective_list_length(1024, 10) < 10


STRADDLING = [("rf", 7, 1.0), ("rf", 8, 0.8), ("rf", 8, 1.3)]


@pytest.mark.parametrize("name,steps,lam", STRADDLING)
def test_straddling_cases_match_brute_force_with_both_engines(name, steps, lam):
    problem = Problem(make_schedule(name, steps), lam)
    lo, hi = achievable_range(problem)
    assert lo[0] < problem.goal[0] < hi[0]  # really straddling
    best = brute_force(problem)[0].w2
    for engine in ("numba", "python"):
        solution = solve(problem, engine=engine)
        assert solution.exact
        assert solution.w2 == pytest.approx(best, rel=0, abs=solution.tol)
        assert solution.lower_bound <= best + solution.tol
        assert solution.method == "search"


@pytest.mark.parametrize("steps", [12, 16])
def test_engines_agree_on_larger_straddling_problems(steps):
    problem = Problem(make_schedule("rf", steps), 1.0)
    numba_solution = solve(problem, engine="numba")
    python_solution = solve(problem, engine="python", time_budget=60)
    assert numba_solution.exact and python_solution.exact
    assert abs(numba_solution.w2 - python_solution.w2) <= numba_solution.tol


def test_budget_exhaustion_is_honest():
    problem = Problem(make_schedule("rf", 8), 1.0)
    best = brute_force(problem)[0].w2
    solution = solve(problem, node_budget=1)
    assert solution.lower_bound <= best + solution.tol
    assert solution.w2 >= best - solution.tol
    if not solution.exact:
        assert solution.w2 - solution.lower_bound > solution.tol


def test_multi_segment_and_data_target_straddle():
    model = StudentModel(eta_tau=0.3)
    for target in ("teacher", "data"):
        problem = Problem(make_schedule("rf", 7), 1.2, model=model, target=target, segments=2)
        best = brute_force(problem)[0].w2
        solution = solve(problem)
        assert solution.exact
        assert solution.w2 == pytest.approx(best, abs=solution.tol)
