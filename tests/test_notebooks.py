"""Execute every notebook in notebooks/ in-process with nbclient (what ``pytest --nbmake`` does).

A notebook whose imports are not installed (e.g. torch for the bridge notebooks) is skipped with
the missing module named; any other error fails the test. Notebooks run from the repository root
so that the packages import from the checkout.
"""

from __future__ import annotations

import ast
import importlib.util
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 600


def _imported_modules(nb) -> set[str]:
    """Top-level names of the modules imported by the notebook's code cells (magics ignored)."""
    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    nb = nbformat.read(path, as_version=4)
    missing = sorted(name for name in _imported_modules(nb) if importlib.util.find_spec(name) is None)
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)} (not installed)")
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), f"{path.name} is committed with outputs"
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        if exc.ename in ("ModuleNotFoundError", "ImportError"):
            pytest.skip(f"{path.name}: {exc.ename}: {exc.evalue}")
        raise
    elapsed = time.perf_counter() - start
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    if path.name == "01_quickstart.ipynb":
        assert elapsed < 60, f"quickstart took {elapsed:.1f} s (budget 60 s)"
