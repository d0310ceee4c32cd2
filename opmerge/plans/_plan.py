"""Plans (sequences of trees over :math:`N \\to 0`), their text form, parser and nested lists (private)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError, InputTypeError
from ._notation import PlanParseError, _parse_segments
from ._tree import (
    MergeNode,
    Tree,
    _check_contiguous,
    _check_int,
    _check_tree,
    _check_trees,
    _tree_from_nested,
    format_tree,
    iter_merge_nodes,
    tree_bottom,
    tree_depth,
    tree_merges,
    tree_top,
    tree_to_nested,
)

__all__ = ["Plan", "format_plan", "parse_plan", "plan_from_nested"]


# ---------------------------------------------------------------------------------------------
# plans
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    r"""A merge plan: ``M`` trees (segments) partitioning :math:`N \to 0`, noise side first.

    Parameters
    ----------
    segments : tuple of Tree
        At least one tree; the first starts at ``N``, ``bottom(segment[k]) == top(segment[k + 1])``
        and the last ends at grid index 0. Any sequence is accepted and stored as a tuple.

    Raises
    ------
    TypeError
        If ``segments`` is not a sequence or a segment is not a tree.
    ValueError
        If there are no segments, they are not contiguous, or the last does not end at 0.

    Notes
    -----
    ``str(plan)`` is the text notation (:func:`format_plan`); :meth:`from_text` parses it.
    """

    segments: tuple[Tree, ...]

    def __post_init__(self) -> None:
        segments = _check_trees(self.segments, "segments")
        if not segments:
            raise InputError("segments: a plan needs >= 1 segment, got 0")
        _check_contiguous(segments, "segments")
        last = tree_bottom(segments[-1])
        if last != 0:
            raise InputError(f"segments: the last segment must end at grid index 0 (the data side), got {last}")
        object.__setattr__(self, "segments", segments)

    @property
    def steps(self) -> int:
        """Number of teacher steps ``N`` (the top of the first segment)."""
        return tree_top(self.segments[0])

    @property
    def n_segments(self) -> int:
        """Number of student steps ``M`` (segments)."""
        return len(self.segments)

    @property
    def n_merges(self) -> int:
        """Total number of merge nodes (distillation runs) over all segments."""
        return sum(tree_merges(s) for s in self.segments)

    @property
    def depth(self) -> int:
        """Largest segment depth (0 when every segment is a single leaf)."""
        return max(tree_depth(s) for s in self.segments)

    @property
    def boundaries(self) -> tuple[int, ...]:
        """Segment boundaries ``(N, B_1, ..., B_{M-1}, 0)``: the tops of the segments, then 0."""
        return tuple(tree_top(s) for s in self.segments) + (0,)

    def merge_nodes(self) -> list[MergeNode]:
        """All merge nodes: post-order within each segment (:func:`iter_merge_nodes`), segments in order.

        Returns
        -------
        list of MergeNode
        """
        return [node for seg in self.segments for node in iter_merge_nodes(seg)]

    def to_nested(self) -> list:
        """JSON-friendly nested lists: the plan is the list of its segments (see :func:`tree_to_nested`).

        Returns
        -------
        list
            E.g. ``[[4, 3], 2, 1]`` for ``(4 3) | 2 | 1`` and ``[[[4, 3], [2, 1]]]`` for ``((4 3) (2 1))``.
        """
        return [tree_to_nested(s) for s in self.segments]

    @classmethod
    def from_text(cls, text: str, steps: int | None = None) -> "Plan":
        """Parse the text notation (same as :func:`parse_plan`)."""
        return parse_plan(text, steps=steps)

    @classmethod
    def from_nested(cls, obj: Any) -> "Plan":
        """Build from nested lists (same as :func:`plan_from_nested`)."""
        return plan_from_nested(obj)

    def __str__(self) -> str:
        return format_plan(self)

    def __repr__(self) -> str:
        return f"Plan.from_text({format_plan(self)!r})"


def format_plan(plan_or_tree: Plan | Tree) -> str:
    """Write a plan (segments joined by ``" | "``) or a single tree in the text notation.

    Parameters
    ----------
    plan_or_tree : Plan, MergeNode or int

    Returns
    -------
    str
        The canonical text, e.g. ``"(4 3) | (2 1)"``, ``"(3 2) | 1"`` or ``"((4 3) (2 1))"``;
        ``parse_plan(format_plan(plan)) == plan``.
    """
    if isinstance(plan_or_tree, Plan):
        return " | ".join(format_tree(s) for s in plan_or_tree.segments)
    return format_tree(_check_tree(plan_or_tree, "plan_or_tree"))


# ---------------------------------------------------------------------------------------------
# nested lists (JSON)
# ---------------------------------------------------------------------------------------------


def plan_from_nested(obj: Any) -> Plan:
    """Build a plan from its JSON-friendly form: the list of its segments' nested forms.

    Parameters
    ----------
    obj : list or tuple
        E.g. ``[[4, 3], [2, 1]]`` for ``(4 3) | (2 1)`` and ``[[4, 3, 2, 1]]`` for ``(4 3 2 1)``.

    Returns
    -------
    Plan

    Raises
    ------
    TypeError
        If ``obj`` is not a list/tuple of nested trees.
    ValueError
        If the segments are not a valid plan.
    """
    if not isinstance(obj, (list, tuple)):
        raise InputTypeError(f"obj (a nested plan) must be a list of segments, got {type(obj).__name__}")
    return Plan(tuple(_tree_from_nested(s, f"obj[{k}]") for k, s in enumerate(obj)))


def parse_plan(text: str, steps: int | None = None) -> Plan:
    """Parse a plan written in the text notation.

    Grammar (whitespace is free; it is only needed between two integers)::

        tree := INT | "(" tree (" " tree)+ ")"
        plan := tree (" | " tree)*

    The leaves, read left to right, must be ``N, N-1, ..., 1``.

    Parameters
    ----------
    text : str
        E.g. ``"((4 3) (2 1))"`` or ``"(4 3) | (2 1)"``.
    steps : int, optional
        Expected number of teacher steps ``N``; if given, a plan for another ``N`` is rejected.

    Returns
    -------
    Plan

    Raises
    ------
    TypeError
        If ``text`` is not a str or ``steps`` is not an int.
    PlanParseError
        (a ``ValueError``) naming the problem and its character position, followed by the text and
        a caret line: unbalanced parentheses, a node with fewer than two children, a non-integer
        or non-positive leaf, leaves out of order, a missing ``" | "`` between top-level trees, a
        dangling ``"|"``, an empty text, a plan that does not end at leaf 1, or ``N != steps``.
    """
    if steps is not None:
        steps = _check_int(steps, "steps", 1)
    segments, starts = _parse_segments(text, MergeNode)
    last = tree_bottom(segments[-1])
    if last != 0:
        pos = len(text.rstrip())
        raise PlanParseError(
            f"plan ends at leaf {last + 1} (position {pos}): the last leaf must be 1 "
            "(leaves must run N, N-1, ..., 1)",
            pos,
            text,
        )
    plan = Plan(tuple(segments))
    if steps is not None and plan.steps != steps:
        raise PlanParseError(
            f"plan is for N={plan.steps} steps but steps={steps} (position {starts[0]})", starts[0], text
        )
    return plan
