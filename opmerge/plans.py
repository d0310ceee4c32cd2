r"""Merge plans: trees of teacher steps, their text notation, canonical recipes and counting (THEORY.md §3).

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
"""

from __future__ import annotations

import itertools
import numbers
import re
from math import comb
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence, Union

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

#: Canonical per-segment recipes (THEORY.md §3).
CANONICAL_KINDS = ("vanilla", "boot", "cd", "pd")

Tree = Union[int, "MergeNode"]
"""A tree over consecutive teacher steps: a leaf (plain ``int`` step index) or a :class:`MergeNode`."""


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_int(value: object, name: str, minimum: int) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)  # type: ignore[arg-type]
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_leaf(x: object, where: str) -> int:
    if not _is_int(x):
        raise TypeError(f"{where} must be an int leaf or a MergeNode, got {type(x).__name__}")
    n = int(x)  # type: ignore[arg-type]
    if n < 1:
        raise ValueError(f"{where}: leaf (teacher step) must be >= 1, got {n}")
    return n


def _check_tree(tree: object, name: str = "tree") -> Tree:
    if isinstance(tree, MergeNode):
        return tree
    return _check_leaf(tree, name)


# ---------------------------------------------------------------------------------------------
# trees
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MergeNode:
    r"""One merge node: a distillation run over consecutive teacher steps :math:`j \to i`.

    Parameters
    ----------
    children : tuple of Tree
        At least two children, noise side first, partitioning :math:`j \to i`: the first child
        starts at ``j`` and ``bottom(child[k]) == top(child[k + 1])``. Leaves are ints ``>= 1``.
        Any sequence is accepted and stored as a tuple (integer-like leaves are stored as ``int``).

    Raises
    ------
    TypeError
        If ``children`` is not a sequence, or a child is neither an int nor a ``MergeNode``.
    ValueError
        If there are fewer than two children, a leaf is ``< 1``, or the children are not
        contiguous.

    Notes
    -----
    ``top``, ``bottom``, ``n_merges``, ``depth`` and the hash are computed once at construction
    from the (already validated) children. Equality is structural.
    """

    children: tuple[Tree, ...]
    _top: int = field(default=0, init=False, repr=False, compare=False)
    _bottom: int = field(default=0, init=False, repr=False, compare=False)
    _n_merges: int = field(default=0, init=False, repr=False, compare=False)
    _depth: int = field(default=0, init=False, repr=False, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        raw = self.children
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
            raise TypeError(f"children must be a sequence of trees, got {type(raw).__name__}")
        children = tuple(
            c if isinstance(c, MergeNode) else _check_leaf(c, f"children[{k}]") for k, c in enumerate(raw)
        )
        if len(children) < 2:
            raise ValueError(f"a merge node needs >= 2 children, got {len(children)}")
        for k in range(len(children) - 1):
            b, t = tree_bottom(children[k]), tree_top(children[k + 1])
            if b != t:
                raise ValueError(
                    "children must be contiguous, noise side first: "
                    f"children[{k}] ends at grid index {b} but children[{k + 1}] starts at {t}"
                )
        object.__setattr__(self, "children", children)
        object.__setattr__(self, "_top", tree_top(children[0]))
        object.__setattr__(self, "_bottom", tree_bottom(children[-1]))
        object.__setattr__(self, "_n_merges", 1 + sum(c._n_merges for c in children if isinstance(c, MergeNode)))
        object.__setattr__(self, "_depth", 1 + max(c._depth if isinstance(c, MergeNode) else 0 for c in children))
        object.__setattr__(self, "_hash", hash(("MergeNode", children)))

    @property
    def top(self) -> int:
        """Input (noise-side) grid index ``j``: the top of the first child."""
        return self._top

    @property
    def bottom(self) -> int:
        """Output grid index ``i``: the bottom of the last child."""
        return self._bottom

    @property
    def leaves(self) -> tuple[int, ...]:
        """Covered teacher steps, descending: ``(j, j - 1, ..., i + 1)``."""
        return tuple(range(self._top, self._bottom, -1))

    @property
    def n_merges(self) -> int:
        """Number of merge nodes in this subtree, this node included."""
        return self._n_merges

    @property
    def depth(self) -> int:
        """Height of the subtree: a leaf has depth 0, a node ``1 + max(child depths)``."""
        return self._depth

    @classmethod
    def from_text(cls, text: str) -> "MergeNode":
        """Parse a single node in the text notation, e.g. ``"((4 3) 2)"`` (see :func:`parse_tree`)."""
        tree = parse_tree(text)
        if not isinstance(tree, MergeNode):
            raise ValueError(f"text describes a single leaf ({tree}), not a merge node")
        return tree

    def to_nested(self) -> list:
        """JSON-friendly nested lists (see :func:`tree_to_nested`)."""
        return tree_to_nested(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MergeNode):
            return NotImplemented
        stack: list[tuple[Tree, Tree]] = [(self, other)]
        while stack:
            a, b = stack.pop()
            if a is b:
                continue
            a_node, b_node = isinstance(a, MergeNode), isinstance(b, MergeNode)
            if a_node != b_node:
                return False
            if not a_node:
                if a != b:
                    return False
                continue
            assert isinstance(a, MergeNode) and isinstance(b, MergeNode)
            if (
                a._hash != b._hash
                or a._top != b._top
                or a._bottom != b._bottom
                or a._n_merges != b._n_merges
                or len(a.children) != len(b.children)
            ):
                return False
            stack.extend(zip(a.children, b.children))
        return True

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return format_tree(self)

    def __repr__(self) -> str:
        return f"MergeNode.from_text({format_tree(self)!r})"


def tree_top(tree: Tree) -> int:
    """Input (noise-side) grid index of a tree: ``n`` for the leaf ``n``, ``node.top`` for a node.

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    int
    """
    if isinstance(tree, MergeNode):
        return tree.top
    return _check_leaf(tree, "tree")


def tree_bottom(tree: Tree) -> int:
    """Output grid index of a tree: ``n - 1`` for the leaf ``n``, ``node.bottom`` for a node.

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    int
    """
    if isinstance(tree, MergeNode):
        return tree.bottom
    return _check_leaf(tree, "tree") - 1


def tree_leaves(tree: Tree) -> tuple[int, ...]:
    """Teacher steps covered by a tree, descending (``(n,)`` for the leaf ``n``).

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    tuple of int
    """
    if isinstance(tree, MergeNode):
        return tree.leaves
    return (_check_leaf(tree, "tree"),)


def tree_merges(tree: Tree) -> int:
    """Number of merge nodes in a tree (0 for a leaf).

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    int
    """
    if isinstance(tree, MergeNode):
        return tree.n_merges
    _check_leaf(tree, "tree")
    return 0


def tree_depth(tree: Tree) -> int:
    """Height of a tree: 0 for a leaf, ``1 + max(child depths)`` for a node.

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    int
    """
    if isinstance(tree, MergeNode):
        return tree.depth
    _check_leaf(tree, "tree")
    return 0


def iter_merge_nodes(tree: Tree) -> Iterator[MergeNode]:
    """Iterate over the merge nodes of a tree in post-order.

    Children come before their parent (bottom-up training order: a node is yielded only after
    every node it contains) and, among siblings, the first (noise-side) child comes first.
    A leaf yields nothing.

    Parameters
    ----------
    tree : int or MergeNode

    Yields
    ------
    MergeNode
    """
    if not isinstance(tree, MergeNode):
        _check_leaf(tree, "tree")
        return
    stack: list[tuple[MergeNode, bool]] = [(tree, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            yield node
            continue
        stack.append((node, True))
        for child in reversed(node.children):
            if isinstance(child, MergeNode):
                stack.append((child, False))


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
            raise TypeError(f"segments must be a sequence of trees, got {type(raw).__name__}")
        segments = tuple(_check_tree(s, f"segments[{k}]") for k, s in enumerate(raw))
        if not segments:
            raise ValueError("a plan needs >= 1 segment, got 0")
        for k in range(len(segments) - 1):
            b, t = tree_bottom(segments[k]), tree_top(segments[k + 1])
            if b != t:
                raise ValueError(
                    "segments must be contiguous, noise side first: "
                    f"segments[{k}] ends at grid index {b} but segments[{k + 1}] starts at {t}"
                )
        last = tree_bottom(segments[-1])
        if last != 0:
            raise ValueError(f"the last segment must end at grid index 0 (the data side), got {last}")
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


# ---------------------------------------------------------------------------------------------
# text notation
# ---------------------------------------------------------------------------------------------


class PlanParseError(ValueError):
    """A malformed plan text: a :class:`ValueError` that knows where the problem is.

    Attributes
    ----------
    problem : str
        The message without the echo of the text.
    position : int
        0-based character position of the problem in ``text`` (``len(text)`` for "end of text").
    text : str
        The text being parsed.

    Notes
    -----
    ``str(err)`` is ``problem`` followed by the text and a caret line under ``position``.
    """

    def __init__(self, problem: str, position: int, text: str) -> None:
        self.problem = problem
        self.position = position
        self.text = text
        echo = "".join(" " if c.isspace() else c for c in text)
        super().__init__(f"{problem}\n  {echo}\n  {' ' * position}^")


_DIGITS = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"[+-][0-9]+")


def _tokenize(text: str) -> list[tuple[str, int, int]]:
    """Split into ``(kind, value, position)``; kind is ``"("``, ``")"``, ``"|"`` or ``"int"``."""
    tokens: list[tuple[str, int, int]] = []
    pos, n = 0, len(text)
    while pos < n:
        c = text[pos]
        if c.isspace():
            pos += 1
        elif c in "()|":
            tokens.append((c, 0, pos))
            pos += 1
        else:
            end = pos
            while end < n and not text[end].isspace() and text[end] not in "()|":
                end += 1
            word = text[pos:end]
            if _DIGITS.fullmatch(word):
                value = int(word)
                if value < 1:
                    raise PlanParseError(
                        f"leaf {value} at position {pos}: leaves (teacher steps) must be >= 1", pos, text
                    )
                tokens.append(("int", value, pos))
            elif _SIGNED.fullmatch(word):
                raise PlanParseError(
                    f"leaf {word!r} at position {pos}: leaves (teacher steps) must be positive integers "
                    "written as plain digits",
                    pos,
                    text,
                )
            else:
                raise PlanParseError(
                    f"non-integer token {word!r} at position {pos}: expected a leaf (positive integer), "
                    "'(', ')' or '|'",
                    pos,
                    text,
                )
            pos = end
    return tokens


def _check_balance(tokens: list[tuple[str, int, int]], text: str) -> None:
    open_positions: list[int] = []
    for kind, _, pos in tokens:
        if kind == "(":
            open_positions.append(pos)
        elif kind == ")":
            if not open_positions:
                raise PlanParseError(
                    f"unbalanced parenthesis at position {pos}: ')' has no matching '('", pos, text
                )
            open_positions.pop()
        elif kind == "|" and open_positions:
            raise PlanParseError(
                f"'|' inside parentheses at position {pos}: segments are separated only at the top level",
                pos,
                text,
            )
    if open_positions:
        pos = open_positions[-1]
        raise PlanParseError(f"unbalanced parenthesis at position {pos}: '(' is never closed", pos, text)


def _parse_segments(text: str) -> tuple[list[Tree], list[int]]:
    """Parse ``tree ("|" tree)*``; leaves must run down by one. Returns trees and their start positions."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    tokens = _tokenize(text)
    if not tokens:
        raise PlanParseError("empty plan text: expected a tree such as '(4 3 2 1)'", 0, text)
    _check_balance(tokens, text)

    segments: list[Tree] = []
    starts: list[int] = []
    frames: list[tuple[int, list[Tree]]] = []  # open nodes: (position of '(', children so far)
    need_tree = True  # at top level: a tree is expected next (at start and after '|')
    bar_pos = -1  # position of the last top-level '|'
    prev_leaf: int | None = None

    def place(tree: Tree, pos: int) -> None:
        nonlocal need_tree
        if frames:
            frames[-1][1].append(tree)
        else:
            segments.append(tree)
            starts.append(pos)
            need_tree = False

    for kind, value, pos in tokens:
        if kind in ("(", "int") and not frames and not need_tree:
            found = "'('" if kind == "(" else f"leaf {value}"
            raise PlanParseError(
                f"expected ' | ' between segments at position {pos}, found {found}", pos, text
            )
        if kind == "(":
            frames.append((pos, []))
        elif kind == "int":
            if prev_leaf is not None and value != prev_leaf - 1:
                if prev_leaf == 1:
                    problem = f"found leaf {value} after leaf 1 at position {pos}, but leaf 1 must be the last"
                else:
                    problem = f"expected leaf {prev_leaf - 1} after leaf {prev_leaf}, found {value} at position {pos}"
                raise PlanParseError(f"{problem} (leaves must run N, N-1, ..., 1)", pos, text)
            prev_leaf = value
            place(value, pos)
        elif kind == ")":
            start, children = frames.pop()
            if not children:
                raise PlanParseError(f"empty merge node '()' at position {start}", start, text)
            if len(children) == 1:
                raise PlanParseError(
                    f"merge node with a single child at position {start} (a merge node needs >= 2 children)",
                    start,
                    text,
                )
            place(MergeNode(tuple(children)), start)
        else:  # "|" at top level (guaranteed by _check_balance)
            if need_tree:
                where = "at the start" if not segments else "after '|'"
                raise PlanParseError(
                    f"expected a tree before '|' at position {pos}, found '|' {where}", pos, text
                )
            need_tree = True
            bar_pos = pos
    if need_tree:
        raise PlanParseError(
            f"expected a tree after the '|' at position {bar_pos}, found end of text at position {len(text)}",
            len(text),
            text,
        )
    return segments, starts


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
    segments, starts = _parse_segments(text)
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


def parse_tree(text: str) -> Tree:
    """Parse a single tree (not necessarily ending at leaf 1), e.g. ``"((6 5) 4)"``.

    Parameters
    ----------
    text : str
        One tree in the notation of :func:`parse_plan` (no ``"|"``).

    Returns
    -------
    int or MergeNode

    Raises
    ------
    TypeError
        If ``text`` is not a str.
    PlanParseError
        (a ``ValueError``) for malformed text or more than one top-level tree.
    """
    segments, starts = _parse_segments(text)
    if len(segments) != 1:
        raise PlanParseError(
            f"expected a single tree, found {len(segments)} segments (second one at position {starts[1]})",
            starts[1],
            text,
        )
    return segments[0]


def format_tree(tree: Tree) -> str:
    """Write one tree in the text notation: ``"4"`` for a leaf, ``"((4 3) 2)"`` for a node.

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    str
    """
    if not isinstance(tree, MergeNode):
        return str(_check_leaf(tree, "tree"))
    parts: list[str] = []
    stack: list[Tree | str] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, MergeNode):
            parts.append("(")
            stack.append(")")
            for k in range(len(item.children) - 1, -1, -1):
                stack.append(item.children[k])
                if k:
                    stack.append(" ")
        else:
            parts.append(str(item))
    return "".join(parts)


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
        raise TypeError(f"a nested tree must be an int (leaf) or a list (node), got {type(obj).__name__}")
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
                raise TypeError(
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
        raise TypeError(f"a nested plan must be a list of segments, got {type(obj).__name__}")
    return Plan(tuple(tree_from_nested(s) for s in obj))


# ---------------------------------------------------------------------------------------------
# canonical plans
# ---------------------------------------------------------------------------------------------


def _check_range(top: object, bottom: object) -> tuple[int, int]:
    top = _check_int(top, "top", 1)
    bottom = _check_int(bottom, "bottom", 0)
    if bottom >= top:
        raise ValueError(f"bottom must be < top (a tree covers steps top..bottom+1), got top={top}, bottom={bottom}")
    return top, bottom


def _check_kind(kind: object) -> str:
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a str, got {type(kind).__name__}")
    if kind not in CANONICAL_KINDS:
        raise ValueError(f"kind must be one of {CANONICAL_KINDS}, got {kind!r}")
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
        raise TypeError(f"segments must be an int, got {type(segments).__name__}")
    segments = int(segments)  # type: ignore[arg-type]
    if not 1 <= segments <= steps:
        raise ValueError(f"segments must satisfy 1 <= segments <= steps = {steps}, got {segments}")
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


# ---------------------------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------------------------


def _draw_tree_lines(tree: Tree, indent: str) -> list[str]:
    def label(t: Tree) -> str:
        return f"[{t.top}->{t.bottom}]" if isinstance(t, MergeNode) else str(t)

    def push_children(node: MergeNode, prefix: str) -> None:
        last = len(node.children) - 1
        for k in range(last, -1, -1):  # reversed, so the noise-side child is popped first
            branch, guide = ("`-- ", "    ") if k == last else ("+-- ", "|   ")
            stack.append((node.children[k], prefix + branch, prefix + guide))

    lines = [indent + label(tree)]
    # stack of (subtree, prefix of its own line, prefix of its children's lines)
    stack: list[tuple[Tree, str, str]] = []
    if isinstance(tree, MergeNode):
        push_children(tree, indent)
    while stack:
        t, own, below = stack.pop()
        lines.append(own + label(t))
        if isinstance(t, MergeNode):
            push_children(t, below)
    return lines


def draw_plan(plan: Plan | Tree) -> str:
    r"""ASCII drawing of a plan (or a single tree) as indented trees, one block per segment.

    Format: a header line ``plan <text>  (N=.., M=.., merges=..)``, then for each segment a
    line ``segment k/M: z_j -> z_i`` followed by its tree, indented by two spaces. A merge node
    covering :math:`j \to i` is drawn ``[j->i]``, a leaf (teacher step :math:`n \to n-1`) as
    ``n``; children are listed noise side first under their parent, each on its own line after
    ``+--`` (a backtick, two dashes for the last child), with ``|`` guide lines. Example for ``((4 3) 2) | 1``::

        plan ((4 3) 2) | 1  (N=4, M=2, merges=2)
        segment 1/2: z_4 -> z_1
          [4->1]
          +-- [4->2]
          |   +-- 4
          |   `-- 3
          `-- 2
        segment 2/2: z_1 -> z_0
          1

    A bare tree is drawn without the header and segment lines.

    Parameters
    ----------
    plan : Plan, MergeNode or int

    Returns
    -------
    str
        Multi-line string (no trailing newline).
    """
    if not isinstance(plan, Plan):
        return "\n".join(_draw_tree_lines(_check_tree(plan, "plan"), ""))
    m = plan.n_segments
    lines = [f"plan {format_plan(plan)}  (N={plan.steps}, M={m}, merges={plan.n_merges})"]
    for k, seg in enumerate(plan.segments, start=1):
        lines.append(f"segment {k}/{m}: z_{tree_top(seg)} -> z_{tree_bottom(seg)}")
        lines.extend(_draw_tree_lines(seg, "  "))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# enumeration and counting
# ---------------------------------------------------------------------------------------------


def _child_sequences(top: int, bottom: int) -> Iterator[tuple[Tree, ...]]:
    """Every sequence of >= 1 trees partitioning ``top -> bottom`` (first child shortest first)."""
    for cut in range(top - 1, bottom - 1, -1):
        for first in enumerate_trees(top, cut):
            if cut == bottom:
                yield (first,)
            else:
                for rest in _child_sequences(cut, bottom):
                    yield (first,) + rest


def enumerate_trees(top: int, bottom: int) -> Iterator[Tree]:
    r"""Every tree over the steps :math:`j \to i` (leaves ``j, ..., i+1``; ``j = top``, ``i = bottom``).

    There are ``count_trees(j - i)`` of them (little Schröder numbers). Order: a single leaf when
    ``j = i + 1``; otherwise nodes ordered by the extent of their first child (shortest first),
    then recursively by the first child's tree and by the remaining children.

    Parameters
    ----------
    top : int
        ``j >= 1``.
    bottom : int
        ``0 <= i < j``.

    Yields
    ------
    int or MergeNode
    """
    top, bottom = _check_range(top, bottom)
    if top - bottom == 1:
        yield top
        return
    for cut in range(top - 1, bottom, -1):  # first child covers top -> cut, at least one more child
        for first in enumerate_trees(top, cut):
            for rest in _child_sequences(cut, bottom):
                yield MergeNode((first,) + rest)


def enumerate_plans(steps: int, segments: int = 1) -> Iterator[Plan]:
    """Every plan for ``N`` teacher steps with exactly ``M`` segments.

    There are ``count_plans(N, M)`` of them. Order: by segment boundaries (the compositions of
    ``N`` into ``M`` parts, first segment shortest first), then by the per-segment trees in the
    order of :func:`enumerate_trees` (last segment varying fastest).

    Parameters
    ----------
    steps : int
        ``N >= 1``.
    segments : int, default 1
        ``M`` with ``1 <= M <= N``.

    Yields
    ------
    Plan
    """
    n, m = _check_steps_segments(steps, segments)
    # interior boundaries N > B_1 > ... > B_{M-1} > 0, first segment shortest first
    for interior in itertools.combinations(range(n - 1, 0, -1), m - 1):
        bounds = (n,) + interior + (0,)
        per_segment = [list(enumerate_trees(bounds[k], bounds[k + 1])) for k in range(m)]
        for segs in itertools.product(*per_segment):
            yield Plan(segs)


def count_trees(steps: int) -> int:
    r"""Number of trees over ``N`` consecutive steps: the little Schröder number :math:`s_N`.

    :math:`s_1 = s_2 = 1`, :math:`s_3 = 3`, :math:`s_4 = 11`, :math:`s_5 = 45`,
    :math:`s_6 = 197`, ...; equal to ``count_plans(N, 1)``.

    Parameters
    ----------
    steps : int
        ``N >= 1``.

    Returns
    -------
    int
    """
    return count_plans(steps, 1)


def count_plans(steps: int, segments: int = 1) -> int:
    r"""Number of plans for ``N`` teacher steps with exactly ``M`` segments, in closed form.

    The generating function :math:`T(x) = \sum_{n \ge 1} s_n x^n` of trees satisfies
    :math:`T = x + T^2/(1 - T)` (a node is a sequence of :math:`\ge 2` trees), i.e.
    :math:`T = x\,\Phi(T)` with :math:`\Phi(t) = (1 - t)/(1 - 2t)`. A plan is a sequence of
    ``M`` trees, so by Lagrange inversion

    .. math::

        \#\mathrm{plans}(N, M) = [x^N]\,T^M = \frac{M}{N}\,[t^{N-M}]\,\Phi(t)^N
            = \frac{M}{N} \sum_{i=1}^{N-M} \binom{N}{i}\binom{N-M-1}{i-1} 2^{N-M-i}
            \quad (M < N),

    and 1 for :math:`M = N`. For :math:`M = 1` these are the little Schröder numbers
    (1, 1, 3, 11, 45, 197, 903, 4279, ...). Exact Python integers, :math:`O(N)` terms.

    Parameters
    ----------
    steps : int
        ``N >= 1``.
    segments : int, default 1
        ``M`` with ``1 <= M <= N``.

    Returns
    -------
    int
    """
    n, m = _check_steps_segments(steps, segments)
    k = n - m
    if k == 0:
        return 1
    total = sum(comb(n, i) * comb(k - 1, i - 1) << (k - i) for i in range(1, k + 1))
    count, rem = divmod(m * total, n)
    assert rem == 0, "Lagrange inversion count must be an integer"
    return count
