"""Bad user input raises InputError / InputTypeError naming the parameter (errors by type, docs/cli.md).

Every public constructor and function of the core checks its input once, at the boundary, and
raises :class:`opmerge.errors.InputError` (a ``ValueError``) for a value out of range or
:class:`opmerge.errors.InputTypeError` (also a ``TypeError``) for a value of the wrong type; the
message names the parameter, never numpy's own words. The command line turns exactly these into
exit status 2, so a check that raised a plain ``ValueError`` would show the user a traceback.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opmerge import Problem, StudentModel, canonical_plan, custom_schedule, make_schedule, parse_plan
from opmerge.errors import InputError, InputTypeError
from opmerge.model import BUDGETS, INITS, INPUTS, TRAININGS
from opmerge.objective import TARGETS
from opmerge.plans import CANONICAL_KINDS, PlanParseError
from opmerge.schedules import SCHEDULE_NAMES
from opmerge.spectra import bin_spectrum, merge_duplicates, spectrum_from_list
from opmerge.teacher import SOLVERS

SCHEDULE = make_schedule("vp-cosine", 4)


def raises_naming(fn, kind: type, *names: str) -> InputError:
    """Call ``fn`` and check it raises ``kind`` (an InputError subclass) whose message names every one of ``names``."""
    with pytest.raises(InputError) as info:
        fn()
    assert isinstance(info.value, kind), f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"
    assert "could not convert" not in message  # numpy's words never reach the user
    return info.value


# ---------------------------------------------------------------------------------------------
# table: one row per invalid value
# ---------------------------------------------------------------------------------------------

CASES = [
    # schedules
    ("make_schedule steps=0", lambda: make_schedule("rf", 0), InputError, ("steps", ">= 1")),
    ("make_schedule steps=True", lambda: make_schedule("rf", True), InputTypeError, ("steps", "int")),
    ("make_schedule steps=2.0", lambda: make_schedule("rf", 2.0), InputTypeError, ("steps",)),
    ("make_schedule name", lambda: make_schedule("cosine", 4), InputError, ("schedule", "vp-cosine")),
    ("make_schedule name type", lambda: make_schedule(3, 4), InputTypeError, ("schedule name",)),
    ("custom_schedule text", lambda: custom_schedule("abc", [0.0, 1.0]), InputTypeError, ("alpha",)),
    ("custom_schedule sigma text", lambda: custom_schedule([1.0, 0.0], ["0", "1"]), InputTypeError, ("sigma", "strings")),
    ("custom_schedule bools", lambda: custom_schedule([True, False], [0.0, 1.0]), InputTypeError, ("alpha", "booleans")),
    ("custom_schedule None", lambda: custom_schedule(None, [0.0, 1.0]), InputTypeError, ("alpha",)),
    ("custom_schedule ragged", lambda: custom_schedule([1.0, [0.5, 0.2]], [0.0, 1.0]), InputTypeError, ("alpha",)),
    ("custom_schedule negative", lambda: custom_schedule([1.0, -0.5], [0.0, 1.0]), InputError, ("alpha",)),
    # the student model
    ("eta_tau=0", lambda: StudentModel(eta_tau=0.0), InputError, ("eta_tau", "(0, inf)")),
    ("eta_tau=nan", lambda: StudentModel(eta_tau=math.nan), InputError, ("eta_tau",)),
    ("eta_tau=True", lambda: StudentModel(eta_tau=True), InputTypeError, ("eta_tau",)),
    ("eta_tau='a'", lambda: StudentModel(eta_tau="a"), InputTypeError, ("eta_tau",)),
    ("init", lambda: StudentModel(init="cold"), InputError, ("init", "warm")),
    ("training type", lambda: StudentModel(training=1), InputTypeError, ("training",)),
    ("flow with lr", lambda: StudentModel(training="flow", lr=0.1, gd_steps=3), InputError, ("lr", "gd_steps", "training='gd'")),
    ("flow with gd_steps", lambda: StudentModel(gd_steps=3), InputError, ("gd_steps",)),
    ("gd without lr", lambda: StudentModel(training="gd", gd_steps=3), InputError, ("lr",)),
    ("gd lr=True", lambda: StudentModel(training="gd", lr=True, gd_steps=3), InputTypeError, ("lr",)),
    ("gd gd_steps=0", lambda: StudentModel(training="gd", lr=0.1, gd_steps=0), InputError, ("gd_steps", ">= 1")),
    ("gd gd_steps=1.5", lambda: StudentModel(training="gd", lr=0.1, gd_steps=1.5), InputTypeError, ("gd_steps",)),
    ("gd total budget", lambda: StudentModel(training="gd", lr=0.1, gd_steps=2, budget="total"), InputError, ("budget",)),
    # the problem
    ("lam=True", lambda: Problem(SCHEDULE, True), InputTypeError, ("lam",)),
    ("lam=[True]", lambda: Problem(SCHEDULE, [True, False]), InputTypeError, ("lam", "booleans")),
    ("lam='0.5'", lambda: Problem(SCHEDULE, "0.5"), InputTypeError, ("lam",)),
    ("lam=None", lambda: Problem(SCHEDULE, None), InputTypeError, ("lam",)),
    ("lam<0", lambda: Problem(SCHEDULE, -1.0), InputError, ("lam", "[0, inf)")),
    ("lam=inf", lambda: Problem(SCHEDULE, [1.0, math.inf]), InputError, ("lam", "finite")),
    ("lam empty", lambda: Problem(SCHEDULE, []), InputError, ("lam", "empty")),
    ("lam 2-D", lambda: Problem(SCHEDULE, np.ones((2, 2))), InputError, ("lam", "1-D")),
    ("weights='ab'", lambda: Problem(SCHEDULE, [0.5, 2.0], weights="ab"), InputTypeError, ("weights",)),
    ("weights<0", lambda: Problem(SCHEDULE, [0.5, 2.0], weights=[1.0, -1.0]), InputError, ("weights", ">= 0")),
    ("weights shape", lambda: Problem(SCHEDULE, [0.5, 2.0], weights=[1.0]), InputError, ("weights", "shape")),
    ("segments=5", lambda: Problem(SCHEDULE, 0.5, segments=5), InputError, ("segments", "[1, 4]")),
    ("segments=True", lambda: Problem(SCHEDULE, 0.5, segments=True), InputTypeError, ("segments",)),
    ("solver", lambda: Problem(SCHEDULE, 0.5, solver="euler"), InputError, ("solver", "ddim")),
    ("target", lambda: Problem(SCHEDULE, 0.5, target="noise"), InputError, ("target", "teacher")),
    ("schedule type", lambda: Problem("vp-cosine", 0.5), InputTypeError, ("schedule",)),
    ("model type", lambda: Problem(SCHEDULE, 0.5, model={"eta_tau": 1}), InputTypeError, ("model",)),
    # plans
    ("parse_plan type", lambda: parse_plan(4), InputTypeError, ("text",)),
    ("parse_plan text", lambda: parse_plan("(4 3"), PlanParseError, ("unbalanced",)),
    ("parse_plan steps", lambda: parse_plan("(2 1)", steps=3), PlanParseError, ("steps=3",)),
    ("canonical kind", lambda: canonical_plan("bootstrap", 4), InputError, ("kind",)),
    ("canonical kind type", lambda: canonical_plan(None, 4), InputTypeError, ("kind",)),
    ("canonical steps", lambda: canonical_plan("pd", 0), InputError, ("steps",)),
    ("canonical segments", lambda: canonical_plan("pd", 4, 5), InputError, ("segments",)),
    ("canonical segments=True", lambda: canonical_plan("pd", 4, True), InputTypeError, ("segments",)),
    # spectra
    ("merge_duplicates rtol='a'", lambda: merge_duplicates(spectrum_from_list([1.0, 2.0]), rtol="a"), InputTypeError, ("rtol",)),
    ("merge_duplicates rtol=-1", lambda: merge_duplicates(spectrum_from_list([1.0, 2.0]), rtol=-1.0), InputError, ("rtol",)),
    ("merge_duplicates rtol=True", lambda: merge_duplicates(spectrum_from_list([1.0, 2.0]), rtol=True), InputTypeError, ("rtol",)),
    ("bin_spectrum bins=0", lambda: bin_spectrum(spectrum_from_list([1.0, 2.0]), 0), InputError, ("bins",)),
    ("spectrum values text", lambda: spectrum_from_list("abc"), InputTypeError, ("values",)),
]


@pytest.mark.parametrize(("label", "fn", "kind", "names"), CASES, ids=[case[0] for case in CASES])
def test_invalid_value_raises_input_error_naming_the_parameter(label, fn, kind, names):
    raises_naming(fn, kind, *names)


def test_input_type_error_is_both_kinds():
    err = raises_naming(lambda: Problem(SCHEDULE, True), InputTypeError, "lam")
    assert isinstance(err, TypeError) and isinstance(err, ValueError)


# ---------------------------------------------------------------------------------------------
# random invalid values (hypothesis)
# ---------------------------------------------------------------------------------------------

try:  # tests/ is not a package: pytest puts it on sys.path ("prepend" import mode)
    from strategies import bad_nonnegative as _bad_nonnegative, not_numbers as _not_numbers, other_text
except ModuleNotFoundError:  # pragma: no cover - run from another root
    from tests.strategies import bad_nonnegative as _bad_nonnegative, not_numbers as _not_numbers, other_text

not_numbers = _not_numbers()
bad_nonnegative = _bad_nonnegative()

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(steps=st.one_of(st.integers(max_value=0), not_numbers, st.floats(allow_nan=True)), name=st.sampled_from(SCHEDULE_NAMES))
def test_make_schedule_random_bad_steps(steps, name):
    raises_naming(lambda: make_schedule(name, steps), InputError, "steps")


@SETTINGS
@given(name=st.one_of(other_text(SCHEDULE_NAMES), st.integers(), st.none()))
def test_make_schedule_random_bad_name(name):
    raises_naming(lambda: make_schedule(name, 4), InputError, "schedule")


@SETTINGS
@given(alpha=not_numbers)
def test_custom_schedule_random_bad_alpha(alpha):
    raises_naming(lambda: custom_schedule(alpha, [0.0, 0.5, 1.0]), InputTypeError, "alpha")


@SETTINGS
@given(bad=bad_nonnegative, at=st.integers(0, 2))
def test_custom_schedule_random_bad_values(bad, at):
    alpha = [1.0, 0.7, 0.1]
    alpha[at] = bad
    raises_naming(lambda: custom_schedule(alpha, [0.0, 0.5, 1.0]), InputError, "alpha")


@SETTINGS
@given(eta_tau=st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), not_numbers))
def test_student_model_random_bad_eta_tau(eta_tau):
    raises_naming(lambda: StudentModel(eta_tau=eta_tau), InputError, "eta_tau")


@SETTINGS
@given(field=st.sampled_from([("init", INITS), ("training", TRAININGS), ("input", INPUTS), ("budget", BUDGETS)]), data=st.data())
def test_student_model_random_bad_choice(field, data):
    name, allowed = field
    value = data.draw(st.one_of(other_text(allowed), st.integers(), st.none()))
    raises_naming(lambda: StudentModel(**{name: value}), InputError, name)


@SETTINGS
@given(lr=st.one_of(st.floats(max_value=0.0), not_numbers.filter(lambda v: v is not None)), gd_steps=st.integers(1, 5))
def test_student_model_random_bad_lr(lr, gd_steps):
    raises_naming(lambda: StudentModel(training="gd", lr=lr, gd_steps=gd_steps), InputError, "lr")


@SETTINGS
@given(lam=st.one_of(bad_nonnegative, not_numbers, st.lists(bad_nonnegative, min_size=1, max_size=3)))
def test_problem_random_bad_lam(lam):
    raises_naming(lambda: Problem(SCHEDULE, lam), InputError, "lam")


@SETTINGS
@given(weights=st.one_of(st.lists(bad_nonnegative, min_size=2, max_size=2), st.text(min_size=1, max_size=4), st.booleans()))
def test_problem_random_bad_weights(weights):
    raises_naming(lambda: Problem(SCHEDULE, [0.5, 2.0], weights=weights), InputError, "weights")


@SETTINGS
@given(segments=st.one_of(st.integers(max_value=0), st.integers(min_value=5), st.booleans(), st.floats(), st.text(max_size=3)))
def test_problem_random_bad_segments(segments):
    raises_naming(lambda: Problem(SCHEDULE, 0.5, segments=segments), InputError, "segments")


@SETTINGS
@given(which=st.sampled_from([("solver", SOLVERS), ("target", TARGETS)]), data=st.data())
def test_problem_random_bad_choice(which, data):
    name, allowed = which
    value = data.draw(st.one_of(other_text(allowed), st.integers(), st.none()))
    raises_naming(lambda: Problem(SCHEDULE, 0.5, **{name: value}), InputError, name)


@SETTINGS
@given(text=st.text(alphabet=st.sampled_from("()| 0123456789x-+"), max_size=30))
def test_parse_plan_random_text_is_a_plan_or_a_parse_error(text):
    try:
        plan = parse_plan(text)
    except PlanParseError as err:
        assert 0 <= err.position <= len(text) and err.text == text
        return
    assert parse_plan(str(plan)) == plan


@SETTINGS
@given(text=st.one_of(st.integers(), st.none(), st.lists(st.integers(1, 4), max_size=3), st.binary(max_size=4)))
def test_parse_plan_random_non_text(text):
    raises_naming(lambda: parse_plan(text), InputTypeError, "text")


@SETTINGS
@given(kind=st.one_of(other_text(CANONICAL_KINDS), st.integers(), st.none()), steps=st.integers(1, 6))
def test_canonical_plan_random_bad_kind(kind, steps):
    raises_naming(lambda: canonical_plan(kind, steps), InputError, "kind")


@SETTINGS
@given(steps=st.integers(1, 8), extra=st.integers(1, 5), kind=st.sampled_from(CANONICAL_KINDS))
def test_canonical_plan_random_too_many_segments(steps, extra, kind):
    raises_naming(lambda: canonical_plan(kind, steps, steps + extra), InputError, "segments")


@SETTINGS
@given(steps=st.one_of(st.integers(max_value=0), st.booleans(), st.floats(), st.text(max_size=3)), kind=st.sampled_from(CANONICAL_KINDS))
def test_canonical_plan_random_bad_steps(steps, kind):
    raises_naming(lambda: canonical_plan(kind, steps), InputError, "steps")
