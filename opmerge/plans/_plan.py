"""Plans (sequences of trees over :math:`N \\to 0`), their text form and nested lists (private)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import InputError, InputTypeError
from ._tree import MergeNode, Tree, _check_leaf, _check_tree, _is_int, format_tree, iter_merge_nodes, tree_bottom, tree_depth, tree_merges, tree_top

__all__ = ["Plan", "format_plan", "tree_to_nested", "tree_from_nested", "plan_from_nested"]


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
        raw = self.segments
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
            raise InputTypeError(f"segments must be a sequence of trees, got {type(raw).__name__}")
        segments = tuple(_check_tree(s, f"segments[{k}]") for k, s in enumerate(raw))
        if not segments:
            raise InputError("a plan needs >= 1 segment, got 0")
        for k in range(len(segments) - 1):
            b, t = tree_bottom(segments[k]), tree_top(segments[k + 1])
            if b != t:
                raise InputError(
                    "segments must be contiguous, noise side first: "
                    f"segments[{k}] ends at grid index {b} but segments[{k + 1}] starts at {t}"
                )
        last = tree_bottom(segments[-1])
        if last != 0:
            raise InputError(f"the last segment must end at grid index 0 (the data side), got {last}")
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
        from ._notation import parse_plan

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
    return format_tree(plan_or_tree)


# ---------------------------------------------------------------------------------------------
# nested lists (JSON)
# ---------------------------------------------------------------------------------------------


def tree_to_nested(tree: Tree) -> int | list:
    """JSON-friendly form of a tree: a leaf is its int, a node the list of its children's forms.

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    int or list
        E.g. ``[[4, 3], 2]`` for ``((4 3) 2)``.
    """
    if not isinstance(tree, MergeNode):
        return _check_leaf(tree, "tree")
    root: list = []
    stack: list[tuple[MergeNode, list]] = [(tree, root)]
    while stack:
        node, out = stack.pop()
        for child in node.children:
            if isinstance(child, MergeNode):
                sub: list = []
                out.append(sub)
                stack.append((child, sub))
            else:
                out.append(child)
    return root


def tree_from_nested(obj: Any) -> Tree:
    """Inverse of :func:`tree_to_nested`: ints are leaves, lists/tuples are merge nodes.

    Parameters
    ----------
    obj : int or list or tuple

    Returns
    -------
    int or MergeNode

    Raises
    ------
    TypeError
        For anything that is not an int, list or tuple (``bool`` is rejected).
    ValueError
        For an invalid tree (a node with < 2 children, non-contiguous children, leaf < 1).
    """
    if _is_int(obj):
        return _check_leaf(obj, "nested tree")
    if not isinstance(obj, (list, tuple)):
        raise InputTypeError(f"a nested tree must be an int (leaf) or a list (node), got {type(obj).__name__}")
    # iterative post-order build: frames hold (source list, next child index, built children)
    frames: list[tuple[Sequence, list[Tree]]] = [(obj, [])]
    index = [0]
    while True:
        src, built = frames[-1]
        k = index[-1]
        if k < len(src):
            index[-1] += 1
            item = src[k]
            if _is_int(item):
                built.append(_check_leaf(item, "nested tree leaf"))
            elif isinstance(item, (list, tuple)):
                frames.append((item, []))
                index.append(0)
            else:
                raise InputTypeError(
                    f"a nested tree must contain ints (leaves) and lists (nodes), got {type(item).__name__}"
                )
            continue
        frames.pop()
        index.pop()
        node = MergeNode(tuple(built))
        if not frames:
            return node
        frames[-1][1].append(node)


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
        raise InputTypeError(f"a nested plan must be a list of segments, got {type(obj).__name__}")
    return Plan(tuple(tree_from_nested(s) for s in obj))
