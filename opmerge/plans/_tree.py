"""Merge nodes and trees of teacher steps: type, queries, text and nested forms (private; public names in :mod:`opmerge.plans`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence, Union

from .._validate import MAX_STEPS, is_int
from ..errors import InputError, InputTypeError
from ._notation import PlanParseError, _parse_segments

__all__ = [
    "Tree",
    "MergeNode",
    "tree_top",
    "tree_bottom",
    "tree_leaves",
    "tree_merges",
    "tree_depth",
    "iter_merge_nodes",
    "format_tree",
    "parse_tree",
    "tree_to_nested",
    "tree_from_nested",
]

Tree = Union[int, "MergeNode"]
"""A tree over consecutive teacher steps: a leaf (plain ``int`` step index) or a :class:`MergeNode`."""


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------


def _is_int(x: object) -> bool:
    return is_int(x)


def _check_int(value: object, name: str, minimum: int, maximum: int = MAX_STEPS) -> int:
    """An int in ``[minimum, maximum]`` (default maximum: ``MAX_STEPS``, the largest ``N`` opmerge accepts)."""
    if not _is_int(value):
        raise InputTypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)  # type: ignore[arg-type]
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    if value > maximum:
        raise InputError(f"{name} must be <= {maximum} (allowed range [{minimum}, {maximum}]), got {value}")
    return value


def _check_leaf(x: object, where: str) -> int:
    if not _is_int(x):
        raise InputTypeError(f"{where} must be an int leaf or a MergeNode, got {type(x).__name__}")
    n = int(x)  # type: ignore[arg-type]
    if n < 1:
        raise InputError(f"{where}: leaf (teacher step) must be >= 1, got {n}")
    return n


def _leaf_zero(leaf: object) -> int:
    """0, the merge count and the depth of a leaf, once ``leaf`` is checked to be one."""
    _check_leaf(leaf, "tree")
    return 0


def _check_tree(tree: object, name: str = "tree") -> Tree:
    if isinstance(tree, MergeNode):
        return tree
    return _check_leaf(tree, name)


def _check_trees(raw: object, name: str) -> tuple[Tree, ...]:
    """The trees of the sequence ``raw`` as a tuple, each leaf checked (``name``: ``"children"``, ``"segments"``)."""
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise InputTypeError(f"{name} must be a sequence of trees, got {type(raw).__name__}")
    return tuple(t if isinstance(t, MergeNode) else _check_leaf(t, f"{name}[{k}]") for k, t in enumerate(raw))


def _check_contiguous(trees: tuple[Tree, ...], name: str) -> None:
    """Each tree of ``trees`` must start where the one before it ends (noise side first)."""
    for k in range(len(trees) - 1):
        b, t = tree_bottom(trees[k]), tree_top(trees[k + 1])
        if b != t:
            raise InputError(
                f"{name} must be contiguous, noise side first: "
                f"{name}[{k}] ends at grid index {b} but {name}[{k + 1}] starts at {t}"
            )


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
        children = _check_trees(self.children, "children")
        if len(children) < 2:
            raise InputError(f"children: a merge node needs >= 2 children, got {len(children)}")
        _check_contiguous(children, "children")
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
            raise InputError(f"text describes a single leaf ({tree}), not a merge node")
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
    return tree.top if isinstance(tree, MergeNode) else _check_leaf(tree, "tree")


def tree_bottom(tree: Tree) -> int:
    """Output grid index of a tree: ``n - 1`` for the leaf ``n``, ``node.bottom`` for a node.

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    int
    """
    return tree.bottom if isinstance(tree, MergeNode) else _check_leaf(tree, "tree") - 1


def tree_leaves(tree: Tree) -> tuple[int, ...]:
    """Teacher steps covered by a tree, descending (``(n,)`` for the leaf ``n``).

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    tuple of int
    """
    return tree.leaves if isinstance(tree, MergeNode) else (_check_leaf(tree, "tree"),)


def tree_merges(tree: Tree) -> int:
    """Number of merge nodes in a tree (0 for a leaf).

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    int
    """
    return tree.n_merges if isinstance(tree, MergeNode) else _leaf_zero(tree)


def tree_depth(tree: Tree) -> int:
    """Height of a tree: 0 for a leaf, ``1 + max(child depths)`` for a node.

    Parameters
    ----------
    tree : int or MergeNode

    Returns
    -------
    int
    """
    return tree.depth if isinstance(tree, MergeNode) else _leaf_zero(tree)


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
    segments, starts = _parse_segments(text, MergeNode)
    if len(segments) != 1:
        raise PlanParseError(
            f"expected a single tree, found {len(segments)} segments (second one at position {starts[1]})",
            starts[1],
            text,
        )
    return segments[0]


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
    return _tree_from_nested(obj, "obj")


def _tree_from_nested(obj: Any, name: str) -> Tree:
    """:func:`tree_from_nested`, naming the value ``name`` in its messages."""
    if _is_int(obj):
        return _check_leaf(obj, f"{name} (a nested tree)")
    if not isinstance(obj, (list, tuple)):
        raise InputTypeError(f"{name} (a nested tree) must be an int (leaf) or a list (node), got {type(obj).__name__}")
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
                built.append(_check_leaf(item, f"{name} (a nested tree) leaf"))
            elif isinstance(item, (list, tuple)):
                frames.append((item, []))
                index.append(0)
            else:
                raise InputTypeError(
                    f"{name} (a nested tree) must contain ints (leaves) and lists (nodes), got {type(item).__name__}"
                )
            continue
        frames.pop()
        index.pop()
        node = MergeNode(tuple(built))
        if not frames:
            return node
        frames[-1][1].append(node)
