"""The layout of opmerge.solvers: no import cycle, kernels free of drivers, the public API in place."""

from __future__ import annotations

import ast
from pathlib import Path

import opmerge.solvers as solvers

SOLVERS = Path(solvers.__file__).parent
KERNELS = ("_kernels", "_line_kernel", "_pareto_kernels", "_reference")


def _imports() -> dict[str, set[str]]:
    """Module -> the modules of opmerge.solvers it imports (relative ``from .x import`` and ``from . import x``)."""
    graph: dict[str, set[str]] = {}
    for path in SOLVERS.glob("*.py"):
        name = path.stem
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    graph[name].add(node.module.split(".")[0])
                else:
                    graph[name].update(alias.name for alias in node.names)
    return graph


def test_no_import_cycle_inside_the_solvers():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in graph.get(name, ()):
            assert state.get(dep) != 1, " -> ".join(path + [name, dep])
            if dep not in state:
                visit(dep, path + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_kernels_import_no_driver():
    graph = _imports()
    for name in KERNELS:
        assert graph[name] <= set(KERNELS), (name, graph[name])


def test_public_api():
    for name in ("solve", "Solution", "achievable_range", "extreme_plan", "range_tables", "brute_force", "solve_joint",
                 "fidelity_cost_front", "FrontPoint", "DEFAULT_NODE_BUDGET", "DEFAULT_TIME_BUDGET", "Progress",
                 "stderr_progress"):
        assert name in solvers.__all__ and hasattr(solvers, name), name
    assert not any("inspect" in path.read_text() for path in SOLVERS.glob("*.py"))
