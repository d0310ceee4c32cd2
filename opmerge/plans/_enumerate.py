"""Enumeration and counting of trees and plans (private)."""

from __future__ import annotations

import itertools
from math import comb
from typing import Iterator

from ._canonical import _check_range, _check_steps_segments
from ._plan import Plan
from ._tree import MergeNode, Tree

__all__ = ["enumerate_trees", "enumerate_plans", "count_trees", "count_plans"]


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
