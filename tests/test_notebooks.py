"""Execute every notebook in notebooks/ in-process with nbclient (what ``pytest --nbmake`` does).

Any error in any cell fails the test, an ``ImportError`` included. The only skip is decided
*before* running: a notebook that needs an optional extra which is not installed (torch for the
bridge notebooks, matplotlib for figures) is skipped with the missing package named. What a
notebook needs is read from its import statements; importing ``opmerge.experiments`` needs torch and
``opmerge.analysis.plots`` / ``.style`` need matplotlib. Notebooks run from the repository root and
are committed without outputs.
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

#: optional packages that an imported opmerge module needs although the notebook does not import them
IMPLIED_REQUIREMENTS = {
    "opmerge.experiments": ("torch",),
    "opmerge.analysis.plots": ("matplotlib",),
    "opmerge.analysis.style": ("matplotlib",),
}
#: third-party packages that come from an optional extra (a notebook needing one may be skipped)
OPTIONAL = {"torch": "bridge", "matplotlib": "plot", "sklearn": "bridge"}


def imported_modules(nb) -> set[str]:
    """Full dotted names of the modules imported by the notebook's code cells (magics ignored)."""
    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # the kernel reports it, and the test fails
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return names


def optional_requirements(nb) -> set[str]:
    """The optional packages that the notebook needs, directly or through an opmerge module."""
    needed: set[str] = set()
    for name in imported_modules(nb):
        top = name.split(".")[0]
        if top in OPTIONAL:
            needed.add(top)
        for prefix, requirements in IMPLIED_REQUIREMENTS.items():
            if name == prefix or name.startswith(prefix + "."):
                needed.update(requirements)
    return needed


def missing_extras(nb) -> list[str]:
    """The optional packages that the notebook needs and that are not installed."""
    return sorted(pkg for pkg in optional_requirements(nb) if importlib.util.find_spec(pkg) is None)


def run_notebook(nb) -> float:
    """Execute ``nb`` in place from the repository root; raise on the first error. Returns seconds."""
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        assert "raises-exception" not in tags, "a cell may not be tagged raises-exception (errors must fail)"
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(REPO_ROOT)}},
    )
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


@pytest.mark.slow
def test_an_import_error_in_a_cell_fails():
    """A notebook whose cell raises ImportError must fail, not be skipped."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("import opmerge.no_such_module_here")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    assert missing_extras(nb) == []
    try:
        run_notebook(nb)
    except nbclient.exceptions.CellExecutionError as exc:
        assert exc.ename == "ModuleNotFoundError", exc.ename
    except pytest.skip.Exception:
        pytest.fail("an ImportError in a cell was turned into a skip")
    else:
        pytest.fail("the failing cell raised nothing")


def test_requirements_are_read_from_imports():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from opmerge.experiments.images import data\nimport numpy as np\n%matplotlib inline")]
    assert imported_modules(nb) == {"opmerge.experiments.images", "numpy"}
    assert optional_requirements(nb) == {"torch"}
    nb.cells = [nbformat.v4.new_code_cell("from opmerge.analysis.plots import plot_phase_diagram\nimport sklearn.decomposition")]
    assert optional_requirements(nb) == {"matplotlib", "sklearn"}
    nb.cells = [nbformat.v4.new_code_cell("from opmerge import solve\nfrom opmerge.analysis import sweep_lambda")]
    assert optional_requirements(nb) == set() and missing_extras(nb) == []


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    nb = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), f"{path.name} is committed with outputs"
    missing = missing_extras(nb)
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)} (not installed; see the optional extras in pyproject.toml)")
    elapsed = run_notebook(nb)
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    budgets = {"01_quickstart.ipynb": 60, "04_mixture.ipynb": 60}  # seconds on 2 cores
    if path.name in budgets:
        assert elapsed < budgets[path.name], f"{path.name} took {elapsed:.1f} s (budget {budgets[path.name]} s)"


def test_notebook_sources_point_inside_the_repository():
    """Notebooks and their generator scripts cite docs/, never files outside the repository."""
    forbidden = ("shared" + "/", "THEORY" + ".md", "BRIDGE" + ".md")
    for path in sorted((REPO_ROOT / "notebooks").glob("*")):
        if path.suffix not in (".ipynb", ".py"):
            continue
        text = path.read_text(encoding="utf-8")
        found = [f for f in forbidden if f in text]
        assert not found, f"{path.name} mentions {found}"
