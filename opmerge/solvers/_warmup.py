"""Compile the solver's Numba kernels before a time budget starts counting (private).

The kernels are compiled on their first call in a process, or loaded from Numba's on-disk cache
(``cache=True``) after the first compilation on a machine. A cold cache costs about 20 s of
compilation, which would otherwise be charged to the first solve's ``time_budget``: a fresh
install's first ``opmerge plan --time-budget 20`` then stopped uncertified. :func:`compile_kernels`
solves a few tiny problems that reach every kernel with the argument types the drivers use,
once per process and without a time limit; :func:`~opmerge.solvers.solve` calls it before it
starts its clock, so compilation counts as start-up. With a warm cache it costs a few tens of milliseconds.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["compile_kernels"]

_state = {"done": False}


def compile_kernels(solve: Callable) -> None:
    """Compile (or load from the cache) every kernel the solvers call; a no-op after the first call.

    Parameters
    ----------
    solve : callable
        :func:`opmerge.solvers.solve` (passed in, so that this module does not import the dispatcher
        that imports it).
    """
    if _state["done"]:
        return
    _state["done"] = True  # set first: the warm-up solves below call solve() themselves
    from ..model import StudentModel
    from ..objective import Problem
    from ..schedules import make_schedule

    import warnings

    from ..errors import IndistinguishablePlansWarning
    from ..laws import _adam_error

    _adam_error(np.zeros(1), np.ones(1), 0.1, 1, 0.9, 0.999, 1e-8)
    inf = math.inf
    straddle = Problem(make_schedule("rf", 7), 1.0)  # one direction whose goal lies inside the range
    for problem in (
        straddle,
        Problem(make_schedule("vp-cosine", 6), 0.3, segments=2, target="data"),
        Problem(make_schedule("vp-cosine", 6), [0.1, 1.0, 10.0], weights=[1.0, 2.0, 1.0]),
        Problem(make_schedule("edm", 5), [0.05, 3.0], segments=2),
        Problem(make_schedule("vp-linear", 5), [0.05, 3.0], model=StudentModel(training="gd", lr=0.05, gd_steps=2), segments=2),
    ):
        with warnings.catch_warnings():  # a warm-up problem is not the user's: its warning would mislead
            warnings.simplefilter("ignore", IndistinguishablePlansWarning)
            solve(problem, time_budget=inf)
    solve(straddle, time_budget=inf, joint=False, node_budget=10)
