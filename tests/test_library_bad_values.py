"""Every public parameter of the library refuses random invalid values by name (hypothesis).

For each public function or class of ``opmerge`` (schedules, teacher, model, plans, objective,
spectra, ``solvers.solve``) and each of its parameters, random values of the wrong type
(``bool`` for a number, text, ``None``, complex, masked arrays, lists, objects) or out of range
(NaN, infinities, negatives, too large) must raise :class:`~opmerge.errors.InputError` (a
``ValueError``; :class:`~opmerge.errors.InputTypeError` is also a ``TypeError``) whose message
names the parameter. A last group checks that valid boundary values are still accepted (no
over-refusal) and that the schedule bound keeps ``W2`` finite (docs/theory.md §1).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import opmerge.model as model_mod
import opmerge.plans as plans_mod
import opmerge.schedules as schedules_mod
import opmerge.spectra as spectra_mod
import opmerge.teacher as teacher_mod
from opmerge import Problem, StudentModel, evaluate_plan, extreme_plan, make_schedule, solve
from opmerge._validate import MAX_STEPS
from opmerge.errors import InputError
from opmerge.objective import TARGETS, w2_distance
from opmerge.schedules import ENTRY_MAX, ENTRY_MIN, GROWTH_MAX, SCHEDULE_NAMES, custom_schedule, schedule_growth
from opmerge.symbolic import heun_step_expression, lambdify_heun, render_latex

from strategies import (
    bad_choices,
    bad_nonnegative,
    bad_finite_values,
    bad_ints,
    bad_nonnegative_values,
    bad_positive_numbers,
    not_instances,
    wrong_type_numbers,
)

SCHEDULE = make_schedule("vp-cosine", 4)
EDM = make_schedule("edm", 4)
SMALL = Problem(make_schedule("vp-cosine", 3), [0.5, 2.0])
PROBLEM = Problem(SCHEDULE, [0.5, 2.0])
PLAN = plans_mod.parse_plan("(4 3 2 1)")
SPECTRUM = spectra_mod.spectrum_from_list([0.5, 2.0, 2.0])
ALPHA, SIGMA = [1.0, 0.6, 0.0], [0.0, 0.8, 1.0]



class Case(NamedTuple):
    """One public parameter: ``call(value)`` passes ``value`` as ``name``, all else valid."""

    label: str
    name: str
    call: Callable[[object], object]
    bad: st.SearchStrategy


def _not_zero(value: object) -> bool:
    """False for a plain number equal to 0 (a valid ``eta_tau``/``lr`` of :func:`retention`)."""
    return not (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0)


def _run(call: Callable[[object], object], value: object) -> object:
    result = call(value)
    if hasattr(result, "__next__"):  # generators check when first advanced
        next(iter(result), None)
    return result


CASES = [
    # schedules
    Case("Schedule", "alpha", lambda v: schedules_mod.Schedule(v, SIGMA), bad_nonnegative_values()),
    Case("Schedule", "sigma", lambda v: schedules_mod.Schedule(ALPHA, v), bad_nonnegative_values()),
    Case("Schedule", "name", lambda v: schedules_mod.Schedule(ALPHA, SIGMA, v), not_instances().filter(lambda v: not isinstance(v, str))),
    Case("make_schedule", "name", lambda v: make_schedule(v, 4), bad_choices(SCHEDULE_NAMES)),
    Case("make_schedule", "steps", lambda v: make_schedule("rf", v), bad_ints(1, MAX_STEPS)),
    Case("custom_schedule", "alpha", lambda v: custom_schedule(v, SIGMA), bad_nonnegative_values()),
    Case("custom_schedule", "sigma", lambda v: custom_schedule(ALPHA, v), bad_nonnegative_values()),
    Case("custom_schedule big", "alpha", lambda v: custom_schedule([v, v / 2, 0.0], SIGMA), st.floats(1.01 * ENTRY_MAX, 1e300)),
    Case("custom_schedule tiny", "sigma", lambda v: custom_schedule(ALPHA, [0.0, v, 1.0]), st.floats(1e-300, 0.99 * ENTRY_MIN)),
    Case("signal_noise_norm_sq", "schedule", lambda v: schedules_mod.signal_noise_norm_sq(v, 0.5), not_instances()),
    Case("signal_noise_norm_sq", "lam", lambda v: schedules_mod.signal_noise_norm_sq(SCHEDULE, v), bad_nonnegative_values()),
    Case("schedule_growth", "schedule", schedule_growth, not_instances()),
    # teacher
    Case("check_lam", "lam", teacher_mod.check_lam, bad_nonnegative_values()),
    *[Case(fn.__name__, "schedule", lambda v, fn=fn: fn(v, 0.5), not_instances())
      for fn in (teacher_mod.ddim_step, teacher_mod.heun_step, teacher_mod.step_operators, teacher_mod.exact_flow, teacher_mod.teacher_composite)],
    *[Case(fn.__name__, "lam", lambda v, fn=fn: fn(EDM, v), bad_nonnegative_values())
      for fn in (teacher_mod.ddim_step, teacher_mod.heun_step, teacher_mod.step_operators, teacher_mod.exact_flow, teacher_mod.teacher_composite)],
    Case("step_operators", "solver", lambda v: teacher_mod.step_operators(SCHEDULE, 0.5, v), bad_choices(teacher_mod.SOLVERS)),
    Case("teacher_composite", "solver", lambda v: teacher_mod.teacher_composite(SCHEDULE, 0.5, solver=v), bad_choices(teacher_mod.SOLVERS)),
    Case("ddim_jump", "schedule", lambda v: teacher_mod.ddim_jump(v, 0.5, 4, 0), not_instances()),
    Case("ddim_jump", "lam", lambda v: teacher_mod.ddim_jump(SCHEDULE, v, 4, 0), bad_nonnegative_values()),
    Case("ddim_jump", "top", lambda v: teacher_mod.ddim_jump(SCHEDULE, 0.5, v, 0), bad_ints(0, 4)),
    Case("ddim_jump", "bottom", lambda v: teacher_mod.ddim_jump(SCHEDULE, 0.5, 4, v), bad_ints(0, 4)),
    Case("exact_flow", "top", lambda v: teacher_mod.exact_flow(SCHEDULE, 0.5, v, 0), bad_ints(0, 4).filter(lambda v: v is not None)),
    Case("exact_flow", "bottom", lambda v: teacher_mod.exact_flow(SCHEDULE, 0.5, 4, v), bad_ints(0, 4)),
    Case("teacher_composite", "top", lambda v: teacher_mod.teacher_composite(SCHEDULE, 0.5, v), bad_ints(0, 4).filter(lambda v: v is not None)),
    Case("teacher_composite", "bottom", lambda v: teacher_mod.teacher_composite(SCHEDULE, 0.5, 4, v), bad_ints(0, 4)),
    Case("composite_table", "step_values", teacher_mod.composite_table, st.one_of(bad_finite_values(), st.just(1.0), st.just(np.ones((2, 0))))),
    # the student model
    Case("StudentModel", "eta_tau", lambda v: StudentModel(eta_tau=v), bad_positive_numbers()),
    *[Case("StudentModel", name, lambda v, name=name: StudentModel(**{name: v}), bad_choices(allowed))
      for name, allowed in (("init", model_mod.INITS), ("training", model_mod.TRAININGS), ("input", model_mod.INPUTS), ("budget", model_mod.BUDGETS))],
    Case("StudentModel", "lr", lambda v: StudentModel(training="gd", lr=v, gd_steps=2), bad_positive_numbers()),
    Case("StudentModel", "gd_steps", lambda v: StudentModel(training="gd", lr=0.1, gd_steps=v), bad_ints(1)),
    Case("StudentModel flow", "lr", lambda v: StudentModel(training="flow", lr=v), st.floats(0.01, 1.0)),
    Case("StudentModel flow", "gd_steps", lambda v: StudentModel(training="flow", gd_steps=v), st.integers(1, 9)),
    Case("check_training", "training", lambda v: model_mod.check_training(v), bad_choices(model_mod.TRAININGS)),
    Case("check_training", "lr", lambda v: model_mod.check_training("gd", v, 3), bad_positive_numbers()),
    Case("check_training", "gd_steps", lambda v: model_mod.check_training("gd", 0.1, v), bad_ints(1)),
    Case("check_training", "budget", lambda v: model_mod.check_training("gd", 0.1, 3, v), st.just("total")),
    Case("retention", "training", lambda v: model_mod.retention(v, 1.0, eta_tau=0.5), bad_choices(model_mod.TRAININGS)),
    Case("retention", "q", lambda v: model_mod.retention("flow", v, eta_tau=0.5), bad_nonnegative_values()),
    Case("retention", "eta_tau", lambda v: model_mod.retention("flow", 1.0, eta_tau=v), bad_positive_numbers().filter(_not_zero)),
    Case("retention", "lr", lambda v: model_mod.retention("gd", 0.1, lr=v, gd_steps=2), bad_positive_numbers().filter(_not_zero)),
    Case("retention", "gd_steps", lambda v: model_mod.retention("gd", 0.1, lr=0.1, gd_steps=v), bad_ints(1)),
    Case("node_value", "children_values", lambda v: model_mod.node_value(v, 0.5, 1.0),
         st.one_of(not_instances().filter(lambda v: not isinstance(v, list)), st.just([]), st.lists(bad_finite_values(), min_size=1, max_size=2))),
    Case("node_value", "r", lambda v: model_mod.node_value([0.9, 0.8], v, 1.0), bad_finite_values()),
    Case("node_value", "a0", lambda v: model_mod.node_value([0.9, 0.8], 0.5, v), bad_finite_values()),
    Case("input_variance", "schedule", lambda v: model_mod.input_variance(v, 0.5), not_instances()),
    Case("input_variance", "lam", lambda v: model_mod.input_variance(SCHEDULE, v), bad_nonnegative_values()),
    Case("input_variance", "input", lambda v: model_mod.input_variance(SCHEDULE, 0.5, v), bad_choices(model_mod.INPUTS)),
    Case("input_variance", "solver", lambda v: model_mod.input_variance(SCHEDULE, 0.5, solver=v), bad_choices(teacher_mod.SOLVERS)),
    Case("retention_table", "schedule", lambda v: model_mod.retention_table(v, 0.5, StudentModel()), not_instances()),
    Case("retention_table", "lam", lambda v: model_mod.retention_table(SCHEDULE, v, StudentModel()), bad_nonnegative_values()),
    Case("retention_table", "model", lambda v: model_mod.retention_table(SCHEDULE, 0.5, v), not_instances()),
    Case("retention_table", "solver", lambda v: model_mod.retention_table(SCHEDULE, 0.5, StudentModel(), v), bad_choices(teacher_mod.SOLVERS)),
    Case("retention_table", "n_merges", lambda v: model_mod.retention_table(SCHEDULE, 0.5, StudentModel(budget="total"), n_merges=v),
         bad_ints(0).filter(lambda v: v is not None)),
    Case("ddim_jump_table", "schedule", lambda v: model_mod.ddim_jump_table(v, 0.5), not_instances()),
    Case("ddim_jump_table", "lam", lambda v: model_mod.ddim_jump_table(SCHEDULE, v), bad_nonnegative_values()),
    # plans
    Case("MergeNode", "children", plans_mod.MergeNode,
         st.one_of(not_instances().filter(lambda v: not isinstance(v, list) or len(v) < 2 or not all(isinstance(x, int) for x in v)),
                   st.lists(st.one_of(st.floats(), st.booleans(), st.integers(max_value=0)), min_size=2, max_size=3))),
    Case("Plan", "segments", plans_mod.Plan,
         st.one_of(not_instances().filter(lambda v: not isinstance(v, list) or not v or not all(isinstance(x, int) for x in v)),
                   st.lists(st.one_of(st.floats(), st.booleans(), st.integers(max_value=0)), min_size=1, max_size=3))),
    *[Case(fn.__name__, "tree", fn, st.one_of(not_instances().filter(lambda v: not (isinstance(v, int) and not isinstance(v, bool) and v >= 1)),
                                              st.integers(max_value=0)))
      for fn in (plans_mod.tree_top, plans_mod.tree_bottom, plans_mod.tree_leaves, plans_mod.tree_merges, plans_mod.tree_depth,
                 plans_mod.iter_merge_nodes, plans_mod.format_tree, plans_mod.tree_to_nested)],
    Case("format_plan", "plan_or_tree", plans_mod.format_plan,
         st.one_of(not_instances().filter(lambda v: not (isinstance(v, int) and not isinstance(v, bool) and v >= 1)), st.integers(max_value=0))),
    Case("draw_plan", "plan", plans_mod.draw_plan,
         st.one_of(not_instances().filter(lambda v: not (isinstance(v, int) and not isinstance(v, bool) and v >= 1)), st.integers(max_value=0))),
    Case("parse_tree", "text", plans_mod.parse_tree, not_instances().filter(lambda v: not isinstance(v, str))),
    Case("parse_plan", "text", plans_mod.parse_plan, not_instances().filter(lambda v: not isinstance(v, str))),
    Case("parse_plan", "steps", lambda v: plans_mod.parse_plan("(2 1)", v), bad_ints(1, MAX_STEPS).filter(lambda v: v is not None)),
    Case("tree_from_nested", "obj", plans_mod.tree_from_nested,
         st.one_of(st.floats(), st.text(max_size=3), st.none(), st.booleans(), st.integers(max_value=0), st.lists(st.floats(), min_size=2, max_size=3))),
    Case("plan_from_nested", "obj", plans_mod.plan_from_nested,
         st.one_of(st.floats(), st.text(max_size=3), st.none(), st.booleans(), st.integers(), st.lists(st.lists(st.floats(), min_size=2, max_size=2), min_size=1, max_size=2))),
    Case("canonical_tree", "kind", lambda v: plans_mod.canonical_tree(v, 4, 0), bad_choices(plans_mod.CANONICAL_KINDS)),
    Case("canonical_tree", "top", lambda v: plans_mod.canonical_tree("pd", v, 0), bad_ints(1, MAX_STEPS)),
    Case("canonical_tree", "bottom", lambda v: plans_mod.canonical_tree("pd", 4, v), bad_ints(0, 3)),
    Case("canonical_plan", "kind", lambda v: plans_mod.canonical_plan(v, 4), bad_choices(plans_mod.CANONICAL_KINDS)),
    Case("canonical_plan", "steps", lambda v: plans_mod.canonical_plan("pd", v), bad_ints(1, MAX_STEPS)),
    Case("canonical_plan", "segments", lambda v: plans_mod.canonical_plan("pd", 4, v), bad_ints(1, 4)),
    Case("segment_boundaries", "steps", lambda v: plans_mod.segment_boundaries(v, 1), bad_ints(1, MAX_STEPS)),
    Case("segment_boundaries", "segments", lambda v: plans_mod.segment_boundaries(4, v), bad_ints(1, 4)),
    Case("enumerate_trees", "top", lambda v: plans_mod.enumerate_trees(v, 0), bad_ints(1, MAX_STEPS)),
    Case("enumerate_trees", "bottom", lambda v: plans_mod.enumerate_trees(4, v), bad_ints(0, 3)),
    Case("enumerate_plans", "steps", lambda v: plans_mod.enumerate_plans(v), bad_ints(1, MAX_STEPS)),
    Case("enumerate_plans", "segments", lambda v: plans_mod.enumerate_plans(4, v), bad_ints(1, 4)),
    Case("count_trees", "steps", plans_mod.count_trees, bad_ints(1, MAX_STEPS)),
    Case("count_plans", "steps", lambda v: plans_mod.count_plans(v), bad_ints(1, MAX_STEPS)),
    Case("count_plans", "segments", lambda v: plans_mod.count_plans(4, v), bad_ints(1, 4)),
    # symbolic
    Case("heun_step_expression", "final_step", heun_step_expression, st.one_of(st.integers(), st.text(max_size=2), st.none(), st.lists(st.booleans(), max_size=1))),
    Case("lambdify_heun", "final_step", lambdify_heun, st.one_of(st.integers(), st.text(max_size=2), st.none())),
    Case("render_latex", "derivations", render_latex, st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), min_size=1, max_size=2))),
    # objective
    Case("Problem", "schedule", lambda v: Problem(v, 0.5), not_instances()),
    Case("Problem", "lam", lambda v: Problem(SCHEDULE, v), st.one_of(bad_nonnegative_values(), st.just(np.ones((2, 2))), st.just([]))),
    Case("Problem", "weights", lambda v: Problem(SCHEDULE, [0.5, 2.0], weights=v),
         st.one_of(bad_nonnegative_values().filter(lambda v: v is not None), st.just([1.0]), st.just([1.0, 1.0, 1.0]))),
    Case("Problem", "model", lambda v: Problem(SCHEDULE, 0.5, model=v), not_instances()),
    Case("Problem", "solver", lambda v: Problem(SCHEDULE, 0.5, solver=v), bad_choices(teacher_mod.SOLVERS)),
    Case("Problem", "target", lambda v: Problem(SCHEDULE, 0.5, target=v), bad_choices(TARGETS)),
    Case("Problem", "segments", lambda v: Problem(SCHEDULE, 0.5, segments=v), bad_ints(1, 4)),
    Case("evaluate_plan", "plan", lambda v: evaluate_plan(PROBLEM, v), st.one_of(not_instances(), st.just(plans_mod.parse_plan("(2 1)")))),
    # spectra
    Case("Spectrum", "lam", lambda v: spectra_mod.Spectrum(v, [1.0]), wrong_type_numbers()),
    Case("Spectrum", "weights", lambda v: spectra_mod.Spectrum([1.0, 2.0], v), st.one_of(bad_nonnegative_values(), st.just([1.0]))),
    Case("spectrum_from_list", "values", spectra_mod.spectrum_from_list, bad_nonnegative_values()),
    Case("spectrum_from_list", "weights", lambda v: spectra_mod.spectrum_from_list([1.0, 2.0], v),
         st.one_of(bad_nonnegative_values().filter(lambda v: v is not None), st.just([1.0]))),
    Case("spectrum_from_list", "name", lambda v: spectra_mod.spectrum_from_list([1.0], name=v), not_instances().filter(lambda v: not isinstance(v, str))),
    Case("spectrum_from_covariance", "cov", spectra_mod.spectrum_from_covariance,
         st.one_of(wrong_type_numbers(), st.just([[1.0, 2.0], [0.0, 1.0]]), st.just([[math.nan]]), st.just([1.0, 2.0]))),
    Case("spectrum_from_data", "data", spectra_mod.spectrum_from_data, st.one_of(wrong_type_numbers(), st.just([[math.inf, 1.0], [0.0, 1.0]]))),
    Case("load_spectrum", "spec", spectra_mod.load_spectrum, st.one_of(st.integers(), st.none(), st.booleans(), st.floats())),
    Case("bin_spectrum", "spectrum", lambda v: spectra_mod.bin_spectrum(v, 2), not_instances()),
    Case("bin_spectrum", "bins", lambda v: spectra_mod.bin_spectrum(SPECTRUM, v), bad_ints(1)),
    Case("merge_duplicates", "rtol", lambda v: spectra_mod.merge_duplicates(SPECTRUM, v), bad_nonnegative_values()),
    # solvers.solve
    Case("solve", "problem", solve, not_instances()),
    Case("solve", "node_budget", lambda v: solve(SMALL, node_budget=v), bad_ints(1).filter(lambda v: v is not None)),
    Case("extreme_plan", "direction", lambda v: extreme_plan(PROBLEM, v), bad_ints(0, 1)),
    Case("solve", "time_budget", lambda v: solve(SMALL, time_budget=v), st.one_of(wrong_type_numbers(), st.floats(max_value=0.0), st.just(math.nan))),
    Case("solve", "atol", lambda v: solve(SMALL, atol=v), bad_nonnegative_values()),
    Case("solve", "rtol", lambda v: solve(SMALL, rtol=v), bad_nonnegative_values().filter(lambda v: v is not None)),
    Case("solve", "list_length", lambda v: solve(SMALL, list_length=v), bad_ints(1).filter(lambda v: v is not None)),
    Case("solve", "joint", lambda v: solve(SMALL, joint=v), st.one_of(st.integers(), st.text(max_size=2), st.none())),
    Case("solve", "progress", lambda v: solve(SMALL, progress=v), st.one_of(st.integers(), st.text(max_size=2), st.booleans())),
    Case("solve", "engine", lambda v: solve(SMALL, engine=v), bad_choices(("numba", "python"))),
]

# further cases: the objective's and the spectra's own parameters
CASES += [
    Case("evaluate_plan", "problem", lambda v: evaluate_plan(v, PLAN), not_instances()),
    Case("w2_distance", "problem", lambda v: w2_distance(v, [1.0, 1.0]), not_instances()),
    Case("w2_distance", "student", lambda v: w2_distance(PROBLEM, v), st.one_of(bad_finite_values(), st.just([1.0, 2.0, 3.0]))),
    Case("Spectrum", "lam range", lambda v: spectra_mod.Spectrum(v, [1.0]), bad_nonnegative()),
    Case("merge_duplicates", "spectrum", lambda v: spectra_mod.merge_duplicates(v), not_instances()),
    Case("bin_spectrum", "bins huge", lambda v: spectra_mod.bin_spectrum(SPECTRUM, v), st.integers(10**18, 10**30)),
]

PARAMS = [pytest.param(case, id=f"{case.label}-{case.name}") for case in CASES]

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def assert_refused(call: Callable[[object], object], value: object, name: str) -> None:
    """``call(value)`` raises an InputError (TypeError or ValueError) whose message names ``name``."""
    with pytest.raises((TypeError, ValueError)) as info:
        _run(call, value)
    err = info.value
    assert isinstance(err, InputError), f"{type(err).__name__} instead of InputError for {value!r}: {err}"
    assert name.split()[0] in str(err), f"{name!r} not named for {value!r}: {err}"


@pytest.mark.parametrize("case", PARAMS)
@SETTINGS
@given(data=st.data())
def test_random_invalid_value_is_refused_by_name(case: Case, data) -> None:
    value = data.draw(case.bad, label=case.name)
    assert_refused(case.call, value, case.name)


# ---------------------------------------------------------------------------------------------
# the tester's cases, one by one
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "name", "kind"), [
    (lambda: Problem(SCHEDULE, [0.5, 2.0], weights="ab"), "weights", TypeError),
    (lambda: spectra_mod.merge_duplicates(SPECTRUM, rtol="a"), "rtol", TypeError),
    (lambda: custom_schedule("abc", SIGMA), "alpha", TypeError),
    (lambda: Problem(SCHEDULE, True), "lam", TypeError),
    (lambda: Problem(SCHEDULE, np.ma.array([0.5, 2.0], mask=[False, True])), "lam", TypeError),
    (lambda: Problem(SCHEDULE, [0.5, 2.0], weights=np.ma.array([1.0, 1.0])), "weights", TypeError),
    (lambda: teacher_mod.ddim_step(SCHEDULE, np.ma.array([0.5])), "lam", TypeError),
    (lambda: StudentModel(training="flow", lr=0.1, gd_steps=3), "lr and gd_steps", ValueError),
    (lambda: custom_schedule([1e150, 1e-150], [1e-150, 1e150]), "alpha", ValueError),
    (lambda: custom_schedule([1.0, 1e-60], [1e-60, 1.0]), "alpha", ValueError),
    (lambda: make_schedule("rf", 10**30), "steps", ValueError),
    (lambda: plans_mod.count_plans(10**30), "steps", ValueError),
], ids=["weights-text", "rtol-text", "custom-text", "lam-bool", "lam-masked", "weights-masked", "ddim-masked",
        "flow-with-gd-options", "entries-1e150", "entries-1e-60", "steps-huge", "count-huge"])
def test_tester_cases(call, name, kind):
    with pytest.raises(kind) as info:
        call()
    assert isinstance(info.value, InputError)
    assert name in str(info.value)


def test_flow_with_gd_options_same_rule_as_the_cli():
    # the library refuses what the command line refuses (--lr/--gd-steps without --training gd)
    with pytest.raises(InputError, match=r"lr only apply to training='gd'"):
        StudentModel(lr=0.1)
    with pytest.raises(InputError, match=r"budget='total' is only defined for training='flow'"):
        model_mod.check_training("gd", 0.1, 2, "total")
    assert model_mod.check_training("gd", 0.1, np.int64(2)) == ("gd", 0.1, 2)


@pytest.mark.parametrize("alpha, sigma, where", [
    ([1.0, 1e-10, 1e-60, 0.0], [0.0, 0.5, 0.8, 1.0], "alpha[2]"),  # tiny entry
    ([1.0, 0.5, 0.0], [0.0, 2e50, 3e50], "sigma[1]"),  # huge entry
    ([1e30, 1e-21, 0.0], [1e-20, 1.0, 1.0], "growth factor"),  # alpha falls by 1e51: G > 1e50
])
def test_schedule_entry_range_and_growth_are_checked(alpha, sigma, where):
    with pytest.raises(InputError, match=where.replace("[", r"\[").replace("]", r"\]")):
        custom_schedule(alpha, sigma)


# ---------------------------------------------------------------------------------------------
# no over-refusal: valid boundary values still work
# ---------------------------------------------------------------------------------------------


def test_valid_boundary_values_are_accepted():
    assert make_schedule("rf", 1).steps == 1
    assert plans_mod.segment_boundaries(MAX_STEPS, 1) == (MAX_STEPS, 0)
    assert plans_mod.count_plans(MAX_STEPS, MAX_STEPS) == 1
    edge = custom_schedule([ENTRY_MAX, 0.0], [ENTRY_MIN, ENTRY_MAX])  # entries at both ends of the range
    assert schedule_growth(edge) == 1.0
    assert np.isfinite(evaluate_plan(Problem(edge, [0.0, 1e100]), plans_mod.parse_plan("1")).w2)
    steep = custom_schedule([1.0, 10.0 ** -49.9, 0.0], [0.0, 1.0, 1.0])  # growth 10^49.9 <= GROWTH_MAX
    assert schedule_growth(steep) <= GROWTH_MAX
    assert float(teacher_mod.check_lam(0)) == 0.0 and teacher_mod.check_lam(np.float32(2.5)).dtype == np.float64
    StudentModel(eta_tau=1e-300)
    StudentModel(training="gd", lr=5e-324, gd_steps=np.int64(1))
    assert float(model_mod.retention("gd", 0.5, lr=0.0, gd_steps=3)) == 1.0  # the formula allows no training
    assert float(model_mod.retention("flow", 0.0, eta_tau=0.0)) == 1.0
    assert float(model_mod.node_value([np.float32(2.0), 3], 0, -1)) == 6.0
    Problem(SCHEDULE, [0, 0.0, 1e300], weights=[0, 1, 2])
    assert teacher_mod.composite_table([[1.0]]).shape == (1, 1)
    assert heun_step_expression(np.bool_(True)) is heun_step_expression(True)


# ---------------------------------------------------------------------------------------------
# the schedule bound keeps W2 finite (the derivation in opmerge.schedules.schedule_growth)
# ---------------------------------------------------------------------------------------------


@st.composite
def bounded_schedules(draw):
    """Random valid schedules up to the edges of the allowed range: entries in [ENTRY_MIN,
    ENTRY_MAX], sigma rising, alpha falling by less than GROWTH_MAX, optional exact zeros."""
    low, high, span = math.log10(ENTRY_MIN), math.log10(ENTRY_MAX), math.log10(GROWTH_MAX) - 0.5
    n = draw(st.integers(1, 5))
    log_sigma = sorted(draw(st.lists(st.floats(low, high), min_size=n + 1, max_size=n + 1, unique=True)))
    top = draw(st.floats(low, high))
    log_alpha = sorted(draw(st.lists(st.floats(max(low, top - span), top), min_size=n + 1, max_size=n + 1)), reverse=True)
    sigma = [10.0**x for x in log_sigma]
    alpha = [10.0**x for x in log_alpha]
    if draw(st.booleans()):
        sigma[0] = 0.0
    if n >= 1 and draw(st.booleans()):
        alpha[-1] = 0.0
    try:
        return custom_schedule(alpha, sigma)
    except InputError:
        assume(False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(schedule=bounded_schedules(), log_lam=st.lists(st.floats(-300.0, 100.0), min_size=1, max_size=3),
       zero=st.booleans(), init=st.sampled_from(model_mod.INITS), target=st.sampled_from(TARGETS))
def test_bounded_schedules_keep_w2_finite(schedule, log_lam, zero, init, target):
    lam = [10.0**x for x in log_lam] + ([0.0] if zero else [])
    problem = Problem(schedule, lam, model=StudentModel(init=init, eta_tau=1.0), target=target)
    for kind in plans_mod.CANONICAL_KINDS:
        evaluation = evaluate_plan(problem, plans_mod.canonical_plan(kind, schedule.steps))
        assert np.isfinite(evaluation.w2), (kind, evaluation.w2)
        assert np.all(np.isfinite(evaluation.student))
    assert np.all(np.isfinite(problem.teacher)) and np.all(np.isfinite(problem.exact))


def test_masked_arrays_strategy_is_refused_everywhere_it_is_numbers():
    # one explicit example per kind of array parameter, to pin the message
    value = np.ma.array([1.0, 2.0], mask=[False, True])
    for call, name in ((lambda: custom_schedule(value, [0.0, 1.0]), "alpha"), (lambda: model_mod.retention("flow", value, eta_tau=1.0), "q"),
                       (lambda: spectra_mod.spectrum_from_list(value), "values")):
        with pytest.raises(TypeError, match=f"{name} must be a plain number or array of numbers, got a masked array"):
            call()
