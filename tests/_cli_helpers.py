"""Helpers shared by the command-line tests: run ``opmerge.cli.main`` in-process and check a user error."""

from __future__ import annotations

import json
from pathlib import Path

from opmerge.cli import main
from opmerge.cli_options import EXIT_USAGE

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def assert_user_error(code: int, out: str, err: str) -> None:
    assert code == EXIT_USAGE
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("opmerge: error: ")
    assert "Traceback" not in err
