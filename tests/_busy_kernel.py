"""A Numba kernel that returns arrays and runs long enough for a signal to land in it (tests only).

Its return value is boxed by Numba's call-back into Python (``numba.core.serialize``), where the
range tables and the Pareto kernels used to receive a Ctrl-C as an exception Numba cannot take.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Callable

import numpy as np
import pytest


def busy_kernel(seconds: float = 0.3) -> tuple[Callable[[int], tuple], int]:
    """The compiled kernel and an argument ``n`` for which one call takes at least ``seconds``."""
    numba = pytest.importorskip("numba")

    @numba.njit
    def busy(n):
        out, other = np.zeros(2), np.zeros(3)
        x = 0.0
        for i in range(n):
            x += math.sin(i * 1e-3)
        out[0] = x
        return out, other

    busy(10)  # compile first
    n = 1
    while True:
        began = time.perf_counter()
        busy(n)
        if time.perf_counter() - began > seconds:
            return busy, n
        n *= 2


def raises_when_signalled(call: Callable[[], object], signum: int, expected: type[BaseException]) -> None:
    """Send ``signum`` to this process 50 ms into ``call()`` (a busy kernel) and check that ``expected`` is raised.

    A signal deferred because it landed in Numba's call-back is sent again 5 ms after the kernel
    returned: the 2 s wait after the call gives it the time to arrive."""
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signum))
    timer.start()
    try:
        with pytest.raises(expected):
            call()
            time.sleep(2.0)
    finally:
        timer.cancel()
