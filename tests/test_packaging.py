"""The installed distribution: one top-level package, every subpackage listed, no import cycle."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _setuptools_table() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder_of(package: str, package_dir: dict[str, str]) -> Path:
    best = max((name for name in package_dir if package == name or package.startswith(name + ".")), key=len)
    rest = package[len(best):].lstrip(".")
    return REPO / package_dir[best] / Path(*rest.split(".")) if rest else REPO / package_dir[best]


def test_only_opmerge_is_a_top_level_package():
    table = _setuptools_table()
    assert {name.split(".")[0] for name in table["packages"]} == {"opmerge"}
    assert set(table["package-dir"]) == {"opmerge", "opmerge.analysis", "opmerge.experiments"}


def test_every_package_folder_is_listed():
    table = _setuptools_table()
    listed = set(table["packages"])
    found = set()
    for name, folder in table["package-dir"].items():
        for init in (REPO / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found == listed
    for package in listed:
        assert (_folder_of(package, table["package-dir"]) / "__init__.py").is_file(), package


def test_installed_names_resolve_to_the_repository():
    import opmerge.analysis
    import opmerge.experiments

    assert Path(opmerge.analysis.__file__).resolve().parent == REPO / "analysis"
    assert Path(opmerge.experiments.__file__).resolve().parent == REPO / "experiments"
    assert "analysis" not in sys.modules and "experiments" not in sys.modules


def _module_name(path: Path) -> str:
    table = _setuptools_table()
    for name, folder in sorted(table["package-dir"].items(), key=lambda kv: -len(kv[1])):
        base = REPO / folder
        if base in path.parents:
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            return ".".join([name, *parts])
    raise AssertionError(path)


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    # names imported only for type checkers (``if TYPE_CHECKING:``) are not imports at run time;
    # every other import counts, those inside functions included (a lazy import still ties modules)
    typing_only = {
        id(inner)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for inner in ast.walk(stmt)
    }
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{alias.name}" for alias in node.names)
    return out


def test_no_import_cycle_between_modules():
    table = _setuptools_table()
    modules: dict[str, Path] = {}
    for folder in table["package-dir"].values():
        for path in (REPO / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                modules[_module_name(path)] = path
    graph = {}
    for name, path in modules.items():
        deps = {dep for dep in _imports(path, name) if dep in modules and dep != name}
        # a package's __init__ re-exports its children; an edge into a package means its __init__
        graph[name] = deps
    # edges from a package __init__ to its own children are re-exports, not cycles
    for name, path in modules.items():
        if path.name == "__init__.py":
            graph[name] = {d for d in graph[name] if not d.startswith(name + ".")}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if seen.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in seen:
                visit(dep)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)


def test_core_never_imports_torch_or_matplotlib_at_module_level():
    for path in (REPO / "opmerge").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in {"torch", "matplotlib"}, f"{path.name} imports {name}"
