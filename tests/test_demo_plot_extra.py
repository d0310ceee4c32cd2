"""The demo runs with the ``plot`` extra alone: no torch and no scikit-learn anywhere on its path.

Each test runs a small script in a fresh interpreter whose ``sys.modules`` maps ``torch`` and
``sklearn`` to ``None``, so any attempt to import them (or a submodule) raises ``ImportError``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCKED = ("torch", "sklearn")

_PRELUDE = textwrap.dedent(
    f"""
    import sys
    for name in {BLOCKED!r}:
        sys.modules[name] = None  # import name -> ImportError
    """
)


def _run(tmp_path: Path, body: str, timeout: int = 900) -> subprocess.CompletedProcess:
    script = tmp_path / "runner.py"
    script.write_text(_PRELUDE + textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_blocking_works(tmp_path):
    done = _run(tmp_path, "import torch\n")
    assert done.returncode != 0 and "import of torch halted" in done.stderr  # the runner really blocks


def test_demo_modules_import_without_torch_or_sklearn(tmp_path):
    done = _run(
        tmp_path,
        """
        import opmerge.analysis.demo, opmerge.analysis.plots, opmerge.analysis.cli
        from opmerge.spectra import digits_spectrum
        spectrum = digits_spectrum()
        print(len(spectrum.lam), sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sklearn") and sys.modules[m] is not None))
        """,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["64", "[]"]


@pytest.mark.slow
def test_quick_demo_without_torch_or_sklearn(tmp_path):
    out = tmp_path / "demo"
    done = _run(
        tmp_path,
        f"""
        from opmerge.analysis.cli import main
        code = main(["demo", "--quick", "--out", {str(out)!r}, "--workers", "1", "--no-progress"])
        assert not [m for m in sys.modules if m.split(".")[0] in {BLOCKED!r} and sys.modules[m] is not None]
        sys.exit(code)
        """,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "demo.json").read_text())
    assert summary["spectrum"]["directions"] == 64 and [j["segments"] for j in summary["joint"]] == [1, 2, 4]
    assert summary["provenance"]["torch"] is None  # provenance reports torch only when it was loaded
