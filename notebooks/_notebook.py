"""Shared writer of the notebook generator scripts: cells in, a notebook without outputs out.

The generators (``_build_01_quickstart.py``, ``_make_02_bridge.py``, ``_make_03_images.py``) hold only
their cells; this module turns them into a notebook with stable cell ids, so that regenerating
gives the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

__all__ = ["build_notebook", "write_notebook"]


def build_notebook(cells: Sequence[tuple[str, str]], id_prefix: str) -> nbformat.NotebookNode:
    """The notebook of ``cells``, without outputs.

    Parameters
    ----------
    cells : sequence of (str, str)
        ``(kind, source)`` pairs, ``kind`` ``"md"`` (markdown) or anything else (code).
    id_prefix : str
        Cell ``k`` gets the id ``f"{id_prefix}-{k:02d}"`` (stable ids: regenerating gives the same file).

    Returns
    -------
    nbformat.NotebookNode
    """
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    for k, cell in enumerate(nb.cells):
        cell["id"] = f"{id_prefix}-{k:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write_notebook(cells: Sequence[tuple[str, str]], id_prefix: str, name: str) -> Path:
    """Write :func:`build_notebook` of ``cells`` to ``notebooks/<name>`` and print its path.

    Parameters
    ----------
    cells : sequence of (str, str)
        As in :func:`build_notebook`.
    id_prefix : str
        As in :func:`build_notebook`.
    name : str
        File name inside ``notebooks/``.

    Returns
    -------
    Path
        The file written.
    """
    target = Path(__file__).resolve().parent / name
    nbformat.write(build_notebook(cells, id_prefix), target)
    print(target)
    return target
