"""ASCII drawings of plans and trees (private)."""

from __future__ import annotations

from ._plan import Plan, format_plan
from ._tree import MergeNode, Tree, _check_tree, tree_bottom, tree_top

__all__ = ["draw_plan"]


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
