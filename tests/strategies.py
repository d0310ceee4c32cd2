"""Hypothesis strategies for merge plans (docs/theory.md §3), shared by the test files.

Usage::

    from strategies import plans, trees      # tests/ on sys.path (pytest's default "prepend" mode)

Every tree and every plan up to the size limits has positive probability: a node over
``top -> bottom`` picks a non-empty set of interior cut points (its children's boundaries) and
recurses into each child; a plan picks ``N``, then ``M`` and the segment boundaries, then a tree
per segment. Shrinking goes towards small ``N``, one segment and flat nodes.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from opmerge.plans import MergeNode, Plan, Tree

__all__ = ["plans", "trees", "tree_over", "not_numbers", "bad_nonnegative", "other_text"]


def _draw_tree(draw: st.DrawFn, top: int, bottom: int) -> Tree:
    if top - bottom == 1:
        return top
    cuts = draw(st.sets(st.integers(bottom + 1, top - 1), min_size=1))
    bounds = [top, *sorted(cuts, reverse=True), bottom]
    return MergeNode(tuple(_draw_tree(draw, bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)))


@st.composite
def tree_over(draw: st.DrawFn, top: int, bottom: int) -> Tree:
    """A random tree over the steps ``top -> bottom`` (leaves ``top, ..., bottom + 1``)."""
    return _draw_tree(draw, top, bottom)


@st.composite
def trees(draw: st.DrawFn, max_leaves: int = 12, max_top: int = 20) -> Tree:
    """A random tree with 1..``max_leaves`` leaves at a random position below ``max_top``."""
    size = draw(st.integers(1, max_leaves))
    bottom = draw(st.integers(0, max(0, max_top - size)))
    return _draw_tree(draw, bottom + size, bottom)


@st.composite
def plans(draw: st.DrawFn, max_steps: int = 12, min_steps: int = 1, max_segments: int | None = None) -> Plan:
    """A random plan with ``min_steps <= N <= max_steps`` and ``1 <= M <= min(N, max_segments)``."""
    n = draw(st.integers(min_steps, max_steps))
    m_max = n if max_segments is None else min(n, max_segments)
    m = draw(st.integers(1, m_max))
    interior = draw(st.sets(st.integers(1, n - 1), min_size=m - 1, max_size=m - 1)) if m > 1 else set()
    bounds = [n, *sorted(interior, reverse=True), 0]
    return Plan(tuple(_draw_tree(draw, bounds[k], bounds[k + 1]) for k in range(m)))


# ---------------------------------------------------------------------------------------------
# invalid user input, for the tests of the checks at the public boundary
# ---------------------------------------------------------------------------------------------


def not_numbers() -> st.SearchStrategy:
    """Values that are not numbers: text, booleans (never a number in opmerge), ``None``, lists of text."""
    return st.one_of(st.text(max_size=5), st.booleans(), st.none(), st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=3))


def bad_nonnegative() -> st.SearchStrategy:
    """Numbers outside ``[0, inf)``: finite negatives, NaN and the infinities."""
    return st.one_of(st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False),
                     st.sampled_from([math.nan, math.inf, -math.inf]))


def other_text(allowed) -> st.SearchStrategy:
    """Strings that are none of ``allowed``."""
    return st.text(max_size=12).filter(lambda text: text not in allowed)
