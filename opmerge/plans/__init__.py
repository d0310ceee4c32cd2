r"""Merge plans: trees of teacher steps, their text notation, canonical recipes and counting (docs/theory.md §3).

Notation
--------
The teacher grid is ``n = 0, 1, ..., N`` (0 = data side, N = noise side). Teacher step ``n``
(``1 <= n <= N``) is the **leaf** ``n``; it maps :math:`z_n \to z_{n-1}`.

* A **merge node** covers a run of consecutive steps :math:`j \to i` (:math:`j > i`). It has
  :math:`\ge 2` ordered children that partition :math:`j \to i`; the first child starts at ``j``
  (noise side) and is applied first. A node is one distillation run: a student with input time
  ``j`` trained to reproduce the composite of its children.
* A **tree** is a leaf (a plain ``int``) or a :class:`MergeNode`. A tree over :math:`j \to i` has
  ``top = j`` and ``bottom = i``; the leaf ``n`` has ``top = n`` and ``bottom = n - 1``.
* A **plan** for an ``M``-step student is a sequence of ``M`` trees (segments) partitioning
  :math:`N \to 0`, noise side first. A one-leaf segment is an undistilled teacher step.

Text notation
-------------
::

    tree := INT | "(" tree (" " tree)+ ")"
    plan := tree (" | " tree)*

Examples for ``N = 4``: vanilla ``(4 3 2 1)``, BOOT ``(((4 3) 2) 1)``, CD ``(4 (3 (2 1)))``,
PD ``((4 3) (2 1))``; two segments ``(4 3) | (2 1)``; a one-leaf segment is the bare integer,
``(3 2) | 1``. :func:`format_plan` writes exactly this form; :func:`parse_plan` also accepts any
amount of whitespace (none is needed next to ``(``, ``)`` or ``|``).

Every operation on trees here is iterative (no Python recursion), so very deep trees (e.g. a BOOT
chain over ``N = 10^4`` steps) are fine.

The implementation is split by topic into private modules, each importing only the ones before
it: ``_notation`` (tokenizer, grammar and :class:`PlanParseError`; no tree type), ``_tree``
(merge nodes and trees, their text and nested forms), ``_plan`` (plans and :func:`parse_plan`),
``_canonical`` (recipes), ``_draw`` (ASCII drawings) and ``_enumerate`` (enumeration and
counting). Import from ``opmerge.plans``.
"""

from __future__ import annotations

from ._canonical import CANONICAL_KINDS, canonical_plan, canonical_tree, segment_boundaries
from ._draw import draw_plan
from ._enumerate import count_plans, count_trees, enumerate_plans, enumerate_trees
from ._notation import PlanParseError
from ._plan import Plan, format_plan, parse_plan, plan_from_nested
from ._tree import (
    MergeNode,
    Tree,
    format_tree,
    iter_merge_nodes,
    parse_tree,
    tree_bottom,
    tree_depth,
    tree_from_nested,
    tree_leaves,
    tree_merges,
    tree_to_nested,
    tree_top,
)

__all__ = [
    "CANONICAL_KINDS",
    "Tree",
    "MergeNode",
    "Plan",
    "PlanParseError",
    "tree_top",
    "tree_bottom",
    "tree_leaves",
    "tree_merges",
    "tree_depth",
    "iter_merge_nodes",
    "parse_plan",
    "parse_tree",
    "format_plan",
    "format_tree",
    "canonical_tree",
    "canonical_plan",
    "segment_boundaries",
    "draw_plan",
    "enumerate_trees",
    "enumerate_plans",
    "count_trees",
    "count_plans",
    "tree_to_nested",
    "tree_from_nested",
    "plan_from_nested",
]

# the public classes present themselves (repr, pickle, docs) under the public module
for _cls in (MergeNode, Plan, PlanParseError):
    _cls.__module__ = __name__
del _cls
