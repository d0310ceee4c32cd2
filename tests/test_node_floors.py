"""Node approximation floors (docs/theory.md §9.7, docs/calibration.md §4): the table, plan
evaluation, the branch and bound against brute force, and the spreading of measured floors."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge.errors import IndistinguishablePlansWarning
from opmerge import InputError, evaluate_plan, make_schedule, parse_plan
from opmerge.calibration import CostModel, floor_table, single_merge_plans
from opmerge.laws import MeasuredTable, NodeFloorTable
from opmerge.model import StudentModel
from opmerge.objective import Problem
from opmerge.plans import enumerate_plans
from opmerge.solvers import brute_force, solve
from opmerge.solvers._law_search import least_floors
from opmerge.solvers._search import HOLE_G, HOLE_V


def random_floors(rng: np.random.Generator, steps: int, size: float = 1e-3) -> NodeFloorTable:
    values = np.full((steps + 1, steps + 1), np.nan)
    for j in range(2, steps + 1):
        for length in range(2, j + 1):
            values[j, length] = size * rng.uniform(0.0, 1.0) * length ** rng.uniform(0.5, 3.0)
    return NodeFloorTable(steps, values)


def floor_problem(steps: int, segments: int, lam, training: str = "sign", floors: NodeFloorTable | None = None) -> Problem:
    return Problem(make_schedule("vp-cosine", steps), np.asarray(lam, dtype=float), segments=segments,
                   model=StudentModel(training=training, lr=3e-3, gd_steps=50, node_floor=floors))


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------


def test_table_round_trips_and_reads_by_interval():
    table = random_floors(np.random.default_rng(0), 5)
    again = NodeFloorTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert np.array_equal(np.nan_to_num(again.values, nan=-1.0), np.nan_to_num(table.values, nan=-1.0))
    by = table.by_interval()
    assert by[0, 5] == table.values[5, 5] and by[3, 5] == table.values[5, 2] and by[4, 5] == 0.0 and by[0, 1] == 0.0


@pytest.mark.parametrize("values, match", [
    (np.zeros((4, 4)), "shape"),
    (np.where(NodeFloorTable.mask(4), -1.0, np.nan), ">= 0"),
    (np.where(NodeFloorTable.mask(4), np.inf, np.nan), "finite"),
])
def test_table_refuses_bad_values(values, match):
    with pytest.raises(InputError, match=match):
        NodeFloorTable(4, values)


def test_floor_needs_a_step_law_and_the_same_steps():
    floors = random_floors(np.random.default_rng(1), 4)
    with pytest.raises(InputError, match="node_floor only applies"):
        StudentModel(training="flow", node_floor=floors)
    with pytest.raises(InputError, match="N = 4"):
        floor_problem(5, 1, [1.0], floors=floors)


# ---------------------------------------------------------------------------------------------
# evaluation and the solver
# ---------------------------------------------------------------------------------------------


def test_evaluation_adds_every_merge_node_floor_to_w2_squared():
    floors = random_floors(np.random.default_rng(2), 6)
    plain = floor_problem(6, 2, [0.5, 2.0])
    with_floor = floor_problem(6, 2, [0.5, 2.0], floors=floors)
    plan = parse_plan("((6 5) 4 3) | (2 1)", 6)
    by_hand = floors.values[6, 2] + floors.values[6, 4] + floors.values[2, 2]
    ev = evaluate_plan(with_floor, plan)
    assert ev.floor == pytest.approx(by_hand, rel=1e-15)
    assert ev.w2 ** 2 == pytest.approx(evaluate_plan(plain, plan).w2 ** 2 + by_hand, rel=1e-12)
    assert np.array_equal(ev.student, evaluate_plan(plain, plan).student)


def test_least_floors_are_the_minimum_over_every_completion():
    steps, segments = 6, 3
    floors = random_floors(np.random.default_rng(3), steps)
    by = floors.by_interval()
    least = least_floors(by, segments)

    def plan_floor(plan):
        return sum(by[node.bottom, node.top] for node in plan.merge_nodes())

    for k in range(1, segments + 1):
        for j in range(k, steps + 1):
            brute = min(plan_floor(p) for p in enumerate_plans(j, k))
            assert least[HOLE_G][k, j] == pytest.approx(brute, abs=1e-15)
    for i, j in itertools.combinations(range(steps + 1), 2):
        trees = [p for p in enumerate_plans(j - i, 1)]
        brute = min(sum(by[n.bottom + i, n.top + i] for n in p.merge_nodes()) for p in trees)
        assert least[HOLE_V][i, j] == pytest.approx(brute, abs=1e-15)


@pytest.mark.parametrize("training", ["sign", "adam"])
@pytest.mark.parametrize("seed", range(4))
def test_solver_equals_brute_force_with_floors(training, seed):
    rng = np.random.default_rng(seed)
    steps, segments = int(rng.integers(4, 8)), int(rng.integers(1, 4))
    lam = rng.uniform(0.1, 3.0, size=int(rng.integers(1, 4)))
    problem = floor_problem(steps, segments, lam, training, random_floors(rng, steps))
    solution = solve(problem)
    best = brute_force(problem)[0]
    assert solution.w2 == pytest.approx(best.w2, abs=solution.tol + 1e-12)
    assert solution.lower_bound <= best.w2 + 1e-12
    assert solution.exact == (training == "sign")


def test_floors_change_the_optimum():
    """Large floors on long merges make the solver prefer short ones: the optimum moves."""
    steps, lam = 6, [0.3, 1.0, 3.0]
    values = np.where(NodeFloorTable.mask(steps), 0.0, np.nan)
    for j in range(2, steps + 1):
        values[j, 2:j + 1] = 1e-2 * (np.arange(2, j + 1) >= 4)
    floors = NodeFloorTable(steps, values)
    with pytest.warns(IndistinguishablePlansWarning):  # without floors every plan converges here
        without = solve(floor_problem(steps, 2, lam))
    with_floor = solve(floor_problem(steps, 2, lam, floors=floors))
    longest = max(n.top - n.bottom for n in with_floor.plan.merge_nodes())
    assert max(n.top - n.bottom for n in without.plan.merge_nodes()) >= 4
    assert longest < 4
    assert with_floor.w2 == pytest.approx(brute_force(floor_problem(steps, 2, lam, floors=floors))[0].w2, abs=with_floor.tol)


# ---------------------------------------------------------------------------------------------
# calibration: single-merge pilots and the spreading of measured floors
# ---------------------------------------------------------------------------------------------


def test_single_merge_plans_hold_one_merge_each():
    plans = single_merge_plans(8, (2, 4, 8), (8, 4))
    spans = [(p.merge_nodes()[0].top, p.merge_nodes()[0].top - p.merge_nodes()[0].bottom) for p in plans]
    assert spans == [(8, 2), (8, 4), (8, 8), (4, 2), (4, 4)]
    assert all(p.n_merges == 1 and p.steps == 8 for p in plans)
    with pytest.raises(InputError, match="fits"):
        single_merge_plans(8, (6,), (4,))


def test_floor_table_interpolates_and_extrapolates_as_documented():
    points = [(8, 2, 1e-4), (8, 4, 1e-3), (4, 2, 4e-4), (4, 4, 2e-3)]
    table = floor_table(points, 8)
    for j, length, value in points:
        assert table.values[j, length] == pytest.approx(value, rel=1e-12)
    # log-linear in L between measured lengths: L = 3 at j = 8
    assert table.values[8, 3] == pytest.approx(1e-4 + (1e-3 - 1e-4) * math.log(3 / 2) / math.log(2), rel=1e-12)
    # power law beyond the longest measured length (exponent log(10)/log(2) at j = 8)
    assert table.values[8, 8] == pytest.approx(1e-3 * 2 ** (math.log(10) / math.log(2)), rel=1e-12)
    # linear in j between pilot times, constant beyond them
    assert table.values[6, 2] == pytest.approx(0.5 * (1e-4 + 4e-4), rel=1e-12)
    assert table.values[3, 2] == pytest.approx(4e-4, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3))
def test_floor_table_is_non_negative_and_finite(values):
    table = floor_table([(6, 2, values[0]), (6, 3, values[1]), (6, 6, values[2])], 6)
    used = table.values[NodeFloorTable.mask(6)]
    assert np.all(np.isfinite(used)) and np.all(used >= 0.0)


def test_cost_model_carries_its_floor_table(tmp_path):
    steps = 5
    kappa = MeasuredTable(steps, (0.5, 2.0), np.ones((steps + 1, 2)), quantity="step_scale")
    floors = random_floors(np.random.default_rng(4), steps)
    cost = CostModel(law="sign", lr=1e-3, gd_steps=100, step_table=kappa, floor_table=floors)
    again = CostModel.from_dict(json.loads(json.dumps(cost.to_dict())))
    model = again.student_model()
    assert model.node_floor is not None
    assert np.allclose(np.nan_to_num(model.node_floor.values), np.nan_to_num(floors.values), rtol=0, atol=0)
    plan = parse_plan("((5 4 3) 2 1)", steps)
    ev = evaluate_plan(Problem(make_schedule("rf", steps), np.array([0.5, 2.0]), model=model), plan)
    assert ev.floor == pytest.approx(floors.values[5, 3] + floors.values[5, 5], rel=1e-15)


# ---------------------------------------------------------------------------------------------
# the image study's held-out scoring (numbers by hand)
# ---------------------------------------------------------------------------------------------


def test_score_predictions_ranks_the_recommended_plan_by_hand():
    pytest.importorskip("torch")
    from scipy.stats import spearmanr

    from opmerge.experiments.images.prediction import score_predictions

    steps = 4
    kappa = MeasuredTable(steps, (0.5, 2.0), np.ones((steps + 1, 2)), quantity="step_scale")
    cost = CostModel(law="sign", lr=1e-3, gd_steps=100, step_table=kappa, floor_table=random_floors(np.random.default_rng(5), steps))
    schedule, lam = make_schedule("rf", steps), np.array([0.5, 2.0])
    plans = ["(4 3) | (2 1)", "((4 3) 2) | 1", "4 | (3 2 1)", "(4 3 2) | 1"]
    measured = [0.30, 0.10, 0.20, 0.40]
    rows = [{"segments": 2, "name": f"p{k}", "plan": t, "w2_cov": v} for k, (t, v) in enumerate(zip(plans, measured))]
    rows.append({"segments": 2, "name": "p0-again", "plan": plans[0], "w2_cov": 0.99})  # a repeated plan counts once (first row)
    rows.append({"segments": 2, "name": "recommended", "plan": "(4 (3 2)) | 1", "w2_cov": 0.25})
    out = score_predictions(rows, cost, schedule, lam, pilot_plans=("4 | (3 2 1)", "(4 3) | 2 | 1"))
    entry = out["by_segments"]["2"]
    problem = Problem(schedule, lam, model=cost.student_model(), segments=2)
    predicted = [evaluate_plan(problem, parse_plan(t, steps)).w2 for t in plans]
    assert entry["plans"] == plans and entry["measured"] == measured
    assert entry["predicted"] == pytest.approx(predicted, rel=1e-15)
    assert entry["spearman"] == pytest.approx(spearmanr(measured, predicted).statistic)
    assert out["pooled"]["spearman"] == pytest.approx(entry["spearman"])
    # measured 0.25: better than 0.30 and 0.40, worse than 0.10 and 0.20 -> rank 3 of 5 (not one of the study's plans)
    assert entry["recommended"]["rank"] == 3 and entry["recommended"]["of"] == 5 and not entry["recommended"]["in_study"]
    assert entry["predicted_best_rank"] == 1 + sorted(measured).index(measured[int(np.argmin(predicted))])
    assert out["shared_with_pilots"] == ["4 | (3 2 1)"]
    # a recommended plan that is one of the study's plans is not counted against itself
    rows[-1] = {"segments": 2, "name": "recommended", "plan": plans[2], "w2_cov": 0.20}
    again = score_predictions(rows, cost, schedule, lam)["by_segments"]["2"]["recommended"]
    assert again["in_study"] and again["rank"] == 2 and again["of"] == 4
