"""Ctrl-C during the Numba kernels (private).

A Numba kernel that returns new arrays calls back into Python (``numba.core.serialize._numba_unpickle``)
while it converts them, and LLVM calls llvmlite's Python call-backs while a kernel is compiled
(first use without a cache). Python runs its signal handlers at such calls: a Ctrl-C that arrived
then raised ``KeyboardInterrupt`` *inside* the call-back, which the C code does not expect: the
solver then ended with a chain of ``SystemError: ... returned a result with an exception set``, a
segmentation fault (exit -11, nothing printed), or, during a compilation, "Exception ignored on
calling ctypes callback function" with a traceback and ``RuntimeError: no compiled object yet``.

:func:`interruptible` wraps the public solver functions in :func:`opmerge._signals.sigint_raises`:
for the duration of the call (main thread only, and only when Python's default Ctrl-C handler is
installed) Ctrl-C raises ``KeyboardInterrupt`` as usual, except inside those call-backs: then a
helper thread sends the signal again 5 ms later, so that it is handled once control is back in
the solver's own code. The kernels themselves run in slices of about 20 ms
(:data:`opmerge.solvers.tables.SLICE_SECONDS`), so a Ctrl-C is honoured within that time.
"""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

from .._signals import sigint_raises

__all__ = ["interruptible"]

F = TypeVar("F", bound=Callable)


def interruptible(fn: F) -> F:
    """Wrap a public solver function so that Ctrl-C ends it with a plain ``KeyboardInterrupt``.

    Parameters
    ----------
    fn : callable

    Returns
    -------
    callable
        ``fn`` run inside :func:`opmerge._signals.sigint_raises` (nested calls and other threads
        leave the handlers alone; a handler installed by the caller is respected).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with sigint_raises():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
