"""Random merge plans (seeded), for checks of a planner against plans it did not pick."""

from __future__ import annotations

import numpy as np

from .._validate import integer
from ..errors import InputError, InputTypeError
from ._canonical import segment_boundaries
from ._plan import Plan
from ._tree import MergeNode

__all__ = ["random_plan"]


def random_plan(steps: int, segments: int, rng: np.random.Generator, boundaries: str = "uniform") -> Plan:
    r"""A random plan with ``segments`` segments over ``steps`` teacher steps.

    Boundaries: ``"uniform"`` — :func:`segment_boundaries`; ``"random"`` — ``M - 1`` cut points
    drawn uniformly without replacement among the ``N - 1`` gaps. Each segment of ``L >= 2``
    leaves is a random tree: the root gets ``k`` children, ``k`` uniform in ``[2, min(L, 4)]``,
    with ``k - 1`` cut points drawn uniformly without replacement among the ``L - 1`` gaps; every
    child of more than one leaf is built the same way.

    Parameters
    ----------
    steps : int
        Teacher steps ``N``.
    segments : int
        Student steps ``1 <= M <= N``.
    rng : numpy.random.Generator
    boundaries : {"uniform", "random"}

    Returns
    -------
    Plan
    """
    steps = integer(steps, "steps", low=1)
    segments = integer(segments, "segments", low=1, high=steps)
    if not isinstance(rng, np.random.Generator):
        raise InputTypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if boundaries == "uniform":
        b = list(segment_boundaries(steps, segments))
    elif boundaries == "random":
        cuts = sorted(rng.choice(np.arange(1, steps), size=segments - 1, replace=False).tolist(), reverse=True) if segments > 1 else []
        b = [steps] + cuts + [0]
    else:
        raise InputError(f"boundaries must be 'uniform' or 'random', got {boundaries!r}")

    def tree(top: int, bottom: int):
        length = top - bottom
        if length == 1:
            return top
        k = int(rng.integers(2, min(length, 4) + 1))
        cuts = sorted(rng.choice(np.arange(1, length), size=k - 1, replace=False).tolist(), reverse=True)
        edges = [top] + [bottom + c for c in cuts] + [bottom]
        return MergeNode(tuple(tree(edges[m], edges[m + 1]) for m in range(len(edges) - 1)))

    return Plan(tuple(tree(b[k], b[k + 1]) for k in range(segments)))
