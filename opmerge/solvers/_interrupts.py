"""Ctrl-C during the Numba kernels (private).

A Numba kernel that returns new arrays calls back into Python (``numba.core.serialize._numba_unpickle``)
while it converts them to Python objects. Python runs its signal handlers at such calls: a Ctrl-C
that arrived while the kernel ran raised ``KeyboardInterrupt`` *inside* that call-back, which
Numba's C code does not expect: the solver then ended with a chain of ``SystemError: ...
returned a result with an exception set`` or, when the unfinished result was used, with a
segmentation fault (exit -11, nothing printed).

:func:`interruptible` wraps the public solver functions: for the duration of the call (main
thread only, and only when Python's default Ctrl-C handler is installed) a handler is installed
that raises ``KeyboardInterrupt`` as usual, except inside that call-back (``numba.core.serialize``):
then a helper thread sends the signal again 5 ms later, so that it is handled once
control is back in the solver's own code. The kernels themselves run in slices of about 20 ms
(:data:`opmerge.solvers.tables.SLICE_SECONDS`), so a Ctrl-C is honoured within that time.
"""

from __future__ import annotations

import functools
import signal
import threading
from typing import Callable, TypeVar

from .._signals import deferred_inside_numba

__all__ = ["interruptible"]

F = TypeVar("F", bound=Callable)

def _handler(signum, frame):
    if deferred_inside_numba(signum, frame):
        return  # sent again a moment later, once control is back in the solver's own code
    signal.default_int_handler(signum, frame)


def interruptible(fn: F) -> F:
    """Wrap a public solver function so that Ctrl-C ends it with a plain ``KeyboardInterrupt``.

    Parameters
    ----------
    fn : callable

    Returns
    -------
    callable
        ``fn`` with the handler of the module docstring installed while it runs (nested calls and
        other threads leave the handlers alone; a handler installed by the caller is respected).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return fn(*args, **kwargs)
        signal.signal(signal.SIGINT, _handler)
        try:
            return fn(*args, **kwargs)
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    return wrapper  # type: ignore[return-value]
