"""Canonical per-segment recipes (vanilla, BOOT, CD, PD) and uniform segment boundaries (private)."""

from __future__ import annotations

from ..errors import InputError, InputTypeError
from ._plan import Plan
from ._tree import MergeNode, Tree, _check_int, _is_int

__all__ = ["CANONICAL_KINDS", "canonical_tree", "canonical_plan", "segment_boundaries"]

#: Canonical per-segment recipes (docs/theory.md §3).
CANONICAL_KINDS = ("vanilla", "boot", "cd", "pd")


# ---------------------------------------------------------------------------------------------
# canonical plans
# ---------------------------------------------------------------------------------------------


def _check_range(top: object, bottom: object) -> tuple[int, int]:
    top = _check_int(top, "top", 1)
    bottom = _check_int(bottom, "bottom", 0)
    if bottom >= top:
        raise InputError(f"bottom must be < top (a tree covers steps top..bottom+1), got top={top}, bottom={bottom}")
    return top, bottom


def _check_kind(kind: object) -> str:
    if not isinstance(kind, str):
        raise InputTypeError(f"kind must be a str, got {type(kind).__name__}")
    if kind not in CANONICAL_KINDS:
        raise InputError(f"kind must be one of {CANONICAL_KINDS}, got {kind!r}")
    return kind


def canonical_tree(kind: str, top: int, bottom: int) -> Tree:
    r"""Canonical tree over the steps :math:`j \to i` (``j = top``, ``i = bottom``).

    ============  ====================================================================
    kind          tree
    ============  ====================================================================
    ``vanilla``   one node with all leaves ``(j j-1 ... i+1)``
    ``boot``      left-deep binary chain ``(((j j-1) j-2) ... i+1)``: every node has
                  input time ``j``
    ``cd``        right-deep binary chain ``(j (j-1 (... (i+2 i+1))))``: consistency
                  distillation from the data side
    ``pd``        progressive distillation: each round pairs neighbours from the noise
                  side, an odd last one is carried unmerged to the next round, until one
                  is left (``((3 2) 1)``, ``(((5 4) (3 2)) 1)``, ``(((6 5) (4 3)) (2 1))``)
    ============  ====================================================================

    A single step (``j = i + 1``) is the bare leaf ``j`` for every kind.

    Parameters
    ----------
    kind : {"vanilla", "boot", "cd", "pd"}
    top : int
        ``j >= 1``.
    bottom : int
        ``0 <= i < j``.

    Returns
    -------
    int or MergeNode
    """
    kind = _check_kind(kind)
    top, bottom = _check_range(top, bottom)
    if top - bottom == 1:
        return top
    if kind == "vanilla":
        return MergeNode(tuple(range(top, bottom, -1)))
    if kind == "boot":
        node: Tree = top
        for n in range(top - 1, bottom, -1):
            node = MergeNode((node, n))
        return node
    if kind == "cd":
        node = bottom + 1
        for n in range(bottom + 2, top + 1):
            node = MergeNode((n, node))
        return node
    # pd
    level: list[Tree] = list(range(top, bottom, -1))
    while len(level) > 1:
        paired: list[Tree] = [MergeNode((level[k], level[k + 1])) for k in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _check_steps_segments(steps: object, segments: object) -> tuple[int, int]:
    steps = _check_int(steps, "steps", 1)
    if not _is_int(segments):
        raise InputTypeError(f"segments must be an int, got {type(segments).__name__}")
    segments = int(segments)  # type: ignore[arg-type]
    if not 1 <= segments <= steps:
        raise InputError(f"segments must satisfy 1 <= segments <= steps = {steps}, got {segments}")
    return steps, segments


def segment_boundaries(steps: int, segments: int) -> tuple[int, ...]:
    r"""Uniform segment boundaries :math:`B_k = \lfloor N (M - k) / M \rfloor`, :math:`k = 0..M`.

    Segment ``k`` (1-based) covers :math:`B_{k-1} \to B_k`; :math:`B_0 = N`, :math:`B_M = 0`, and
    the boundaries are strictly decreasing because :math:`M \le N`.

    Parameters
    ----------
    steps : int
        ``N >= 1``.
    segments : int
        ``M`` with ``1 <= M <= N``.

    Returns
    -------
    tuple of int
        ``(B_0, ..., B_M)``, e.g. ``(16, 12, 8, 4, 0)`` for ``N = 16, M = 4`` and ``(7, 3, 0)`` for
        ``N = 7, M = 2``.
    """
    n, m = _check_steps_segments(steps, segments)
    return tuple((n * (m - k)) // m for k in range(m + 1))


def canonical_plan(kind: str, steps: int, segments: int = 1) -> Plan:
    r"""Canonical ``M``-step plan: uniform boundaries, every segment built by the same recipe.

    Segment ``k`` covers :math:`B_{k-1} \to B_k` (:func:`segment_boundaries`) and is
    ``canonical_tree(kind, B_{k-1}, B_k)``.

    Parameters
    ----------
    kind : {"vanilla", "boot", "cd", "pd"}
    steps : int
        ``N >= 1``.
    segments : int, default 1
        ``M`` with ``1 <= M <= N``.

    Returns
    -------
    Plan
        E.g. ``canonical_plan("pd", 4)`` is ``((4 3) (2 1))`` and
        ``canonical_plan("vanilla", 4, 2)`` is ``(4 3) | (2 1)``.
    """
    kind = _check_kind(kind)
    b = segment_boundaries(steps, segments)
    return Plan(tuple(canonical_tree(kind, b[k], b[k + 1]) for k in range(len(b) - 1)))
