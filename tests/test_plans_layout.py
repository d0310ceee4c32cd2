"""opmerge.plans as a package: public names, small private modules, and the parser's errors."""

from __future__ import annotations

import pytest

from opmerge.plans import MergeNode, Plan, PlanParseError, parse_plan, canonical_plan


# ---------------------------------------------------------------------------------------------
# the package layout and the errors of the parser
# ---------------------------------------------------------------------------------------------


def test_public_names_come_from_opmerge_plans():
    import opmerge.plans as plans_pkg
    from opmerge.io import to_jsonable

    assert plans_pkg.__file__.endswith("__init__.py")  # a package, one private module per topic
    for name in plans_pkg.__all__:
        assert hasattr(plans_pkg, name), name
    for cls in (MergeNode, Plan, PlanParseError):
        assert cls.__module__ == "opmerge.plans"
    assert [MergeNode.__name__, Plan.__name__] == ["MergeNode", "Plan"]  # opmerge.io recognises plans by these
    assert to_jsonable({"p": parse_plan("(3 2) | 1"), "n": MergeNode((2, 1))}) == {"p": "(3 2) | 1", "n": "(2 1)"}


def test_plan_modules_are_small():
    from pathlib import Path

    import opmerge.plans as plans_pkg

    folder = Path(plans_pkg.__file__).parent
    modules = sorted(folder.glob("*.py"))
    assert len(modules) >= 6
    for module in modules:
        assert len(module.read_text().splitlines()) < 600, module.name


def test_parse_errors_are_input_errors():
    from opmerge.errors import InputError, InputTypeError

    with pytest.raises(InputError):
        parse_plan("(4 3")
    with pytest.raises(InputTypeError, match="text must be a str"):
        parse_plan(43)
    with pytest.raises(InputTypeError, match="steps must be an int"):
        parse_plan("(2 1)", steps=True)
    with pytest.raises(InputError, match="segments"):
        canonical_plan("pd", 4, 5)


def test_long_plan_text_is_echoed_as_a_short_window():
    text = "(" + " ".join(str(n) for n in range(2500, 0, -1)) + " 7)"
    assert len(text) > 10_000
    with pytest.raises(PlanParseError) as info:
        parse_plan(text)
    err = info.value
    assert err.text == text and err.position == text.index(" 7)") + 1
    message = str(err)
    assert len(message) < 400
    problem, shown, caret = message.split("\n")
    assert shown.strip().startswith("...") and shown.rstrip().endswith("1 7)")
    assert caret.index("^") == shown.index("1 7)") + 2  # the caret sits under the offending leaf


def test_huge_leaf_is_a_parse_error():
    with pytest.raises(PlanParseError, match="digits"):
        parse_plan("(" + "9" * 5000 + " 1)")
