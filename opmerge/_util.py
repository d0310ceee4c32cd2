"""Small private helpers shared by the core modules."""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def deep_recursion(depth: int):
    """Temporarily allow Python recursion ``depth`` frames deeper (plans can be N levels deep)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, old + int(depth) + 100))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)
