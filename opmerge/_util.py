"""Small private helpers shared by the core modules."""

from __future__ import annotations

import contextlib
import sys

import numpy as np


def readonly_float64(values, *, copy: bool = True) -> np.ndarray:
    """``values`` as a contiguous float64 array marked read-only.

    Parameters
    ----------
    values : array-like
        Already validated numbers.
    copy : bool
        ``True``: always a fresh copy (the caller's array is never frozen). ``False``: for an array
        the caller has just made, converted only if needed and frozen in place.

    Returns
    -------
    numpy.ndarray
    """
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if copy:
        arr = arr.copy()
    arr.setflags(write=False)
    return arr


@contextlib.contextmanager
def deep_recursion(depth: int):
    """Temporarily allow Python recursion ``depth`` frames deeper (plans can be N levels deep)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, old + int(depth) + 100))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)
