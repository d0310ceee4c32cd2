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

__all__ = [
    "plans", "trees", "tree_over", "not_numbers", "bad_nonnegative", "other_text", "masked_arrays", "wrong_type_numbers",
    "bad_nonnegative_values", "bad_positive_numbers", "bad_finite_values", "bad_ints", "bad_choices", "not_instances",
]


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


# ---------------------------------------------------------------------------------------------
# invalid values by kind, for tests/test_library_bad_values.py
# ---------------------------------------------------------------------------------------------


def masked_arrays() -> st.SearchStrategy:
    """Masked arrays (numpy.ma) of valid-looking numbers, at least one entry masked or not."""
    import numpy as np

    return st.lists(st.floats(0.0, 10.0), min_size=1, max_size=3).flatmap(
        lambda values: st.lists(st.booleans(), min_size=len(values), max_size=len(values)).map(
            lambda mask: np.ma.array(values, mask=mask)))


def wrong_type_numbers() -> st.SearchStrategy:
    """Values that are not real numbers nor arrays of them: text, bytes, bools (scalar and numpy),
    ``None``, complex numbers with an imaginary part, masked arrays, dicts and bare objects."""
    import numpy as np

    return st.one_of(
        not_numbers(),
        st.binary(min_size=1, max_size=3),
        st.just(np.bool_(True)),
        st.complex_numbers(allow_nan=False, allow_infinity=False).filter(lambda z: z.imag != 0),
        masked_arrays(),
        st.dictionaries(st.text(max_size=2), st.floats(), max_size=2),
        st.builds(object),
    )


def bad_nonnegative_values() -> st.SearchStrategy:
    """Anything that is not a (non-empty array of) finite number(s) ``>= 0``: wrong types, and
    negatives, NaN and infinities, alone or inside a list."""
    return st.one_of(wrong_type_numbers(), bad_nonnegative(), st.lists(bad_nonnegative(), min_size=1, max_size=3).map(lambda xs: [0.5, *xs]))


def bad_positive_numbers() -> st.SearchStrategy:
    """Anything that is not one finite number ``> 0``: wrong types, ``<= 0``, NaN, infinities, lists."""
    return st.one_of(wrong_type_numbers(), st.floats(max_value=0.0), st.integers(max_value=0),
                     st.sampled_from([math.nan, math.inf, -math.inf]), st.lists(st.floats(0.1, 1.0), min_size=1, max_size=2))


def bad_finite_values() -> st.SearchStrategy:
    """Anything that is not a (array of) finite real number(s): wrong types, NaN, infinities."""
    return st.one_of(wrong_type_numbers(), st.sampled_from([math.nan, math.inf, -math.inf, [1.0, math.nan]]))


def bad_ints(low: int | None = None, high: int | None = None) -> st.SearchStrategy:
    """Anything that is not an int in ``[low, high]``: bools, floats (``2.0`` too), text, ``None``,
    complex, lists, and ints outside the range."""
    import numpy as np

    options = [st.booleans(), st.just(np.bool_(False)), st.floats(), st.floats(1.0, 8.0).map(math.floor).map(float),
               st.text(max_size=3), st.none(), st.just(2 + 0j), st.lists(st.integers(1, 3), min_size=1, max_size=2),
               st.just(np.float64(3.0))]
    if low is not None:
        options.append(st.integers(max_value=low - 1))
    if high is not None:
        options.append(st.integers(min_value=high + 1))
    return st.one_of(options)


def bad_choices(allowed) -> st.SearchStrategy:
    """Anything that is not one of the strings ``allowed``: other text, bytes, ints, ``None``, lists."""
    return st.one_of(other_text(allowed), st.binary(max_size=4), st.integers(), st.none(), st.booleans(),
                     st.lists(st.sampled_from(list(allowed)), min_size=1, max_size=1))


def not_instances() -> st.SearchStrategy:
    """Values that are no opmerge object: numbers, text, ``None``, lists, dicts."""
    return st.one_of(st.integers(), st.floats(), st.text(max_size=4), st.none(), st.booleans(),
                     st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
