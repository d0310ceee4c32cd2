"""docs/cli.md documents every command and every option of every parser, and nothing else.

The option tables of docs/cli.md (between ``<!-- reference:begin -->`` and ``<!-- reference:end -->``)
are generated from the parsers by :func:`render_reference` (run ``python tests/test_cli_reference.py``
to print them, and paste the output between the markers). The tests walk every parser, the delegated ones of ``opmerge.analysis.cli``,
``opmerge.experiments.cli`` and ``opmerge.experiments.images.cli`` included, and fail when an
option is missing from its section of docs/cli.md or docs/cli.md names an option that no parser has.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
BEGIN, END = "<!-- reference:begin -->", "<!-- reference:end -->"
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_parsers(*, bridge: bool) -> dict[str, argparse.ArgumentParser]:
    """``{"opmerge plan": parser, ...}``: the parser of every command (``bridge``: the torch ones too)."""
    from opmerge.analysis.cli import build_parser as analysis_parser
    from opmerge.cli import build_parser

    top = build_parser()
    own = _subparsers(top)
    parsers = {"opmerge": top}
    for name in ("plan", "compare", "evaluate", "advise", "derive"):
        parsers[f"opmerge {name}"] = own[name]
    delegated = _subparsers(analysis_parser())
    for name in ("phase", "demo"):
        parsers[f"opmerge {name}"] = delegated[name]
    from opmerge.analysis.mixture_cli import build_parser as mixture_parser

    mixture = mixture_parser()
    parsers["opmerge mixture"] = mixture
    for name, sub in _subparsers(mixture).items():
        parsers[f"opmerge mixture {name}"] = sub
    if bridge:  # these builders import torch
        from opmerge.experiments.cli import build_parser as validate_parser
        from opmerge.experiments.images.cli import build_train_teacher_parser, build_validate_images_parser

        parsers["opmerge validate"] = validate_parser()
        parsers["opmerge validate images"] = build_validate_images_parser()
        from opmerge.experiments.mixture_cli import build_validate_mixture_parser

        parsers["opmerge validate mixture"] = build_validate_mixture_parser()
        parsers["opmerge train-teacher"] = build_train_teacher_parser()
        from opmerge.experiments.calibrate_cli import build_calibrate_parser

        parsers["opmerge calibrate"] = build_calibrate_parser()
    return parsers


def option_names(parser: argparse.ArgumentParser) -> set[str]:
    """Every long option of ``parser`` (``--help`` included; positionals and subcommands left out)."""
    names = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        names.update(s for s in action.option_strings if s.startswith("--"))
    return names


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_section(title: str, parser: argparse.ArgumentParser) -> str:
    """The markdown table of one command: option, value, default, help."""
    rows = ["| option | value | default | meaning |", "|---|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            names = ", ".join(f"`{s}`" for s in action.option_strings)
        else:
            names = f"`{action.metavar or action.dest.upper()}` (positional)"
        if action.nargs == 0:
            value = ""
        elif action.choices is not None:
            value = "`{" + ",".join(map(str, action.choices)) + "}`"
        else:
            value = f"`{action.metavar or action.dest.upper()}`"
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) or action.nargs == 0 else f"`{default}`"
        help_text = "" if action.help in (None, argparse.SUPPRESS) else str(action.help)
        if "%(" in help_text:
            help_text = help_text % {"default": default, "prog": parser.prog}
        rows.append(f"| {names} | {value} | {_cell(shown)} | {_cell(help_text or '')} |")
    return f"### `{title}`\n\n" + "\n".join(rows) + "\n"


def render_reference() -> str:
    """The generated option reference of docs/cli.md."""
    return "\n".join(render_section(title, parser) for title, parser in command_parsers(bridge=True).items())


def doc_sections() -> dict[str, str]:
    """``{"opmerge plan": text of its section, ...}`` from the generated part of docs/cli.md."""
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "docs/cli.md lost its reference markers"
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    parts = re.split(r"^### `([^`]+)`\s*$", body, flags=re.M)
    return {parts[k].strip(): parts[k + 1] for k in range(1, len(parts), 2)}


def _bridge_available() -> bool:
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def test_every_command_has_a_section():
    sections = doc_sections()
    parsers = command_parsers(bridge=_bridge_available())
    expected = set(parsers) | ({"opmerge validate", "opmerge validate images", "opmerge train-teacher"})
    assert set(sections) == expected


@pytest.mark.parametrize("bridge", [False, True])
def test_every_option_is_documented_and_no_other(bridge):
    if bridge and not _bridge_available():
        pytest.skip("the parsers of validate and train-teacher import torch")
    sections = doc_sections()
    parsers = command_parsers(bridge=bridge)
    if bridge:
        parsers = {k: v for k, v in parsers.items() if k in ("opmerge validate", "opmerge validate images", "opmerge train-teacher",
                                                             "opmerge calibrate")}
    for title, parser in parsers.items():
        documented = set(_OPTION.findall(sections[title]))
        real = option_names(parser)
        assert not (real - documented), f"{title}: options missing from docs/cli.md: {sorted(real - documented)}"
        assert not (documented - real), f"{title}: docs/cli.md names options that do not exist: {sorted(documented - real)}"


def test_the_validate_study_choices_are_documented():
    if not _bridge_available():
        pytest.skip("the validate parser imports torch")
    from opmerge.experiments.studies import STUDIES

    section = doc_sections()["opmerge validate"]
    for study in STUDIES:
        assert study in section


def test_no_option_named_anywhere_in_docs_cli_is_unknown():
    if not _bridge_available():
        pytest.skip("the parsers of validate and train-teacher import torch")
    known = set().union(*(option_names(p) for p in command_parsers(bridge=True).values()))
    text = DOC.read_text(encoding="utf-8")
    unknown = sorted(set(_OPTION.findall(text)) - known)
    assert not unknown, f"docs/cli.md names options that no parser has: {unknown}"


if __name__ == "__main__":  # print the generated reference (paste it between the markers)
    sys.stdout.write(render_reference())
