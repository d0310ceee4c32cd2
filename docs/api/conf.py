"""Sphinx configuration of opmerge's API reference, built from the docstrings.

Build (from the repository root, with the ``docs`` extra installed)::

    python -m sphinx -b html docs/api docs/api/_build/html

The page of every module is generated at build time from the installed package tree (see
``_write_module_pages``), so adding, renaming or splitting a module needs no change here. The
generated pages go to ``docs/api/generated/`` (ignored by git). Docstrings are numpydoc (read by
``sphinx.ext.napoleon``); ``.. math::`` and ``:math:`` are rendered by MathJax.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
from pathlib import Path

project = "opmerge"
author = "the opmerge developers"
copyright = "2026, the opmerge developers"  # noqa: A001 (Sphinx's name)
try:
    from importlib.metadata import version as _version

    release = _version("opmerge")
except Exception:  # pragma: no cover - not installed: autodoc reports the import failures
    release = "unknown"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"

root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"opmerge {release} API reference"
html_static_path: list[str] = []

PACKAGE = "opmerge"
GENERATED = Path(__file__).resolve().parent / "generated"


def _pyproject_packages() -> list[str]:
    """Packages named in the repository's pyproject.toml (editable installs map some folders elsewhere)."""
    try:
        import opmerge
    except Exception:
        return []
    pyproject = Path(opmerge.__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        return []
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return []
    with pyproject.open("rb") as fh:
        data = tomllib.load(fh)
    packages = data.get("tool", {}).get("setuptools", {}).get("packages", [])
    return [p for p in packages if isinstance(p, str) and (p == PACKAGE or p.startswith(PACKAGE + "."))]


def _public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def _children(name: str) -> list[tuple[str, bool]]:
    """Public direct children ``(full name, is_package)`` of the package ``name``.

    Found on the package's ``__path__`` (without importing the children) and, for an editable
    install whose subpackages live in other folders, among the packages that pyproject.toml lists.
    A package that cannot be imported has no children here; its own page then makes autodoc
    report the import failure.
    """
    try:
        module = importlib.import_module(name)
    except Exception:
        return []
    found: dict[str, bool] = {}
    for info in pkgutil.iter_modules(getattr(module, "__path__", []), prefix=name + "."):
        if _public(info.name):
            found[info.name] = info.ispkg
    for pkg in _pyproject_packages():
        if "." in pkg and pkg.rsplit(".", 1)[0] == name and _public(pkg):
            found[pkg] = True
    return sorted(found.items())


def _write_module_pages() -> list[str]:
    """One page per public module of the package tree, packages linking to their children."""
    if GENERATED.exists():
        shutil.rmtree(GENERATED)
    GENERATED.mkdir(parents=True)
    written: list[str] = []
    todo = [(PACKAGE, True)]
    while todo:
        name, is_package = todo.pop()
        if name in written:  # never twice (a package listed both on disk and in pyproject.toml)
            continue
        children = _children(name) if is_package else []
        lines = [name, "=" * len(name), "", f".. automodule:: {name}"]
        if is_package:
            # a package's __all__ re-exports names documented in their own modules: list only
            # what the package itself defines (no duplicate targets for cross-references)
            lines.append("   :ignore-module-all:")
        lines.append("")
        if children:
            lines += [".. toctree::", "   :maxdepth: 1", "   :caption: Modules", ""]
            lines += [f"   {child}" for child, _ in children]
            lines.append("")
        (GENERATED / f"{name}.rst").write_text("\n".join(lines), encoding="utf-8")
        written.append(name)
        todo.extend(children)
    return written


MODULES = _write_module_pages()
