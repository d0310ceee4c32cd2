"""opmerge.advice and ``opmerge advise``: the recommended plan, its interval and its sensitivity.

Independent routes: the solver and brute force on the scaled problems, plan evaluation for the
canonical plans, and each law's budget scaling written out.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from opmerge import InputError, InputTypeError, canonical_plan, evaluate_plan, make_schedule, solve
from opmerge.advice import advise, scale_budget
from opmerge.laws import MeasuredTable
from opmerge.model import StudentModel
from opmerge.objective import Problem
from opmerge.solvers import brute_force

from _cli_helpers import assert_user_error, run


def _table(quantity, value):
    values = np.full((7, 2), np.nan)
    values[2:] = value
    return MeasuredTable(steps=6, lam=(0.1, 10.0), values=values, quantity=quantity)


def test_scale_budget_scales_each_law():
    assert scale_budget(StudentModel(eta_tau=0.4), 2.5).eta_tau == pytest.approx(1.0)
    assert scale_budget(StudentModel(training="gd", lr=0.1, gd_steps=7), 0.5).gd_steps == 4
    assert scale_budget(StudentModel(training="gd", lr=0.1, gd_steps=1), 0.1).gd_steps == 1
    assert scale_budget(StudentModel(training="adam", lr=0.01, gd_steps=5), 3.0).lr == pytest.approx(0.03)
    calibrated = StudentModel(training="sign", lr=0.01, gd_steps=5, step_table=_table("step_scale", 4.0))
    scaled = scale_budget(calibrated, 0.5)
    assert scaled.lr == 0.01 and np.all(scaled.step_table.values[2:] == 2.0)
    emp = scale_budget(StudentModel(training="empirical", retention_table=_table("retention", 0.25)), 0.5)
    np.testing.assert_allclose(emp.retention_table.values[2:], 0.5)
    # a flow budget scaled by f raises its retention to the power f: the empirical rule agrees
    schedule = make_schedule("vp-cosine", 6)
    r = Problem(schedule, 0.5, model=StudentModel(eta_tau=0.3)).retention
    r_scaled = Problem(schedule, 0.5, model=scale_budget(StudentModel(eta_tau=0.3), 3.0)).retention
    np.testing.assert_allclose(r_scaled, r**3, rtol=1e-12)


@pytest.mark.parametrize("model, segments", [
    (StudentModel(), 2),
    (StudentModel(training="sign", lr=0.004, gd_steps=50), 1),
    (StudentModel(training="gd", lr=0.05, gd_steps=6), 2),
])
def test_advice_agrees_with_the_solver_and_brute_force(model, segments):
    problem = Problem(make_schedule("vp-cosine", 7), [0.1, 1.0, 10.0], model=model, segments=segments)
    advice = advise(problem, time_budget=math.inf)
    best = brute_force(problem)[0]
    assert advice.w2 == pytest.approx(best.w2, rel=1e-12, abs=1e-15)
    assert str(advice.plan) == str(solve(problem, time_budget=math.inf).plan)
    for kind, entry in advice.canonical.items():
        w2 = evaluate_plan(problem, canonical_plan(kind, 7, segments)).w2
        assert entry["w2"] == w2 and entry["ratio"] == pytest.approx(w2 / advice.w2)
    lo, hi = advice.w2_interval
    assert lo <= advice.w2 <= hi
    for row in advice.sensitivity:
        scaled = Problem(problem.schedule, problem.lam, model=scale_budget(model, row["factor"]), segments=segments)
        assert row["w2_optimal"] == pytest.approx(brute_force(scaled)[0].w2, rel=1e-12, abs=1e-15)
        assert row["w2_recommended"] == evaluate_plan(scaled, advice.plan).w2
        assert row["regret"] == pytest.approx(max(0.0, row["w2_recommended"] / row["w2_optimal"] - 1.0), abs=1e-12)
        assert lo <= row["w2_recommended"] <= hi


def test_advice_says_when_the_recommendation_depends_on_the_budget():
    fragile = advise(Problem(make_schedule("vp-cosine", 8), [0.1, 1.0, 10.0], segments=2))
    assert not fragile.robust and any(row["regret"] > 0 for row in fragile.sensitivity)
    steady = advise(Problem(make_schedule("vp-cosine", 6), [0.3], model=StudentModel(training="sign", lr=0.004, gd_steps=50)))
    assert steady.robust and all(row["regret"] == 0 for row in steady.sensitivity)


@pytest.mark.parametrize("factors, exc", [((), InputError), ((0.5, -1.0), InputError), (("a",), InputTypeError)])
def test_advise_refuses_bad_factors(factors, exc):
    with pytest.raises(exc):
        advise(Problem(make_schedule("vp-cosine", 4), 0.5), factors=factors)


def test_cli_advise_text_and_json(capsys):
    code, out, err = run(capsys, "advise", "--steps", "8", "--segments", "2", "--lam", "0.1,1,10", "--no-draw")
    assert code == 0, err
    assert "recommended: (8 7) | ((((6 5 4) 3) 2) 1)  (certified optimal)" in out
    assert "not robust" in out and "budget x0.5" in out and "budget x2" in out
    code, out, err = run(capsys, "advise", "--steps", "8", "--segments", "2", "--lam", "0.1,1,10", "--spread", "3", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["command"] == "advise" and [row["factor"] for row in data["sensitivity"]] == pytest.approx([1 / 3, 3])
    assert set(data["canonical"]) == {"vanilla", "boot", "cd", "pd"} and data["provenance"]["config"]["segments"] == 2


def test_cli_advise_warns_once_when_plans_cannot_be_told_apart(capsys):
    code, out, err = run(capsys, "advise", "--schedule", "edm", "--steps", "8", "--no-draw")
    assert code == 0
    assert err.count("opmerge: warning: plans cannot be told apart") >= 1 and len(set(err.strip().splitlines())) == len(err.strip().splitlines())


@pytest.mark.parametrize("value", ["1", "0.5", "inf", "x"])
def test_cli_advise_refuses_a_bad_spread(capsys, value):
    code, out, err = run(capsys, "advise", "--spread", value)
    assert_user_error(code, out, err)
