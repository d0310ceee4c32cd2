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
``_canonical`` (recipes), ``_draw`` (ASCII drawings), ``_enumerate`` (enumeration and
counting) and ``_random`` (seeded random plans). Import from ``opmerge.plans``.
"""

from __future__ import annotations

# every private module lists its public names in its own ``__all__``; they are gathered here once
from . import _canonical, _draw, _enumerate, _notation, _plan, _random, _tree
from ._canonical import *  # noqa: F401, F403
from ._draw import *  # noqa: F401, F403
from ._enumerate import *  # noqa: F401, F403
from ._notation import *  # noqa: F401, F403
from ._plan import *  # noqa: F401, F403
from ._random import *  # noqa: F401, F403
from ._tree import *  # noqa: F401, F403

__all__ = [*_tree.__all__, *_plan.__all__, *_notation.__all__, *_canonical.__all__, *_draw.__all__, *_enumerate.__all__, *_random.__all__]

# the public classes present themselves (repr, pickle, docs) under the public module
for _cls in (_tree.MergeNode, _plan.Plan, _notation.PlanParseError):
    _cls.__module__ = __name__
del _cls
