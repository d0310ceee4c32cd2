"""Every paper figure script runs in --quick mode and writes PDF + PNG + JSON with numbers in it."""

from __future__ import annotations

import json
import numbers
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["fig_phase_diagram", "fig_w2_vs_lambda", "fig_optimal_trees", "fig_digits_spectrum", "fig_fidelity_cost"]


def _numbers(obj) -> int:
    """How many finite-or-not numbers (not booleans) a JSON value holds."""
    if isinstance(obj, bool):
        return 0
    if isinstance(obj, numbers.Number):
        return 1
    if isinstance(obj, dict):
        return sum(_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(_numbers(v) for v in obj)
    return 0


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_figure_script_quick(name, tmp_path):
    script = REPO_ROOT / "paper_figures" / f"{name}.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(tmp_path), "--workers", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for ext in ("pdf", "png", "json"):
        path = tmp_path / f"{name}.{ext}"
        assert path.is_file() and path.stat().st_size > 0, f"missing {path.name}"
    assert (tmp_path / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    payload = json.loads((tmp_path / f"{name}.json").read_text())
    assert payload["figure"] == name
    assert _numbers(payload["data"]) >= 3
    assert isinstance(payload["config"], dict) and payload["config"]
    prov = payload["provenance"]  # every result file says what computed it
    assert prov["opmerge"] and len(prov["code"]) == 16 and prov["date"] and prov["matplotlib"]
