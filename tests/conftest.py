"""Shared test set-up.

* ``tests/`` is put on ``sys.path`` so that test modules can ``from strategies import ...``
  (the hypothesis strategies of ``tests/strategies.py``) whatever pytest's import mode.
* Hypothesis profiles: ``ci`` (loaded by default) has no deadline (the first call of a Numba
  kernel compiles or loads it) and is derandomised, so every run draws the same examples and a
  failure reproduces bit for bit; ``dev`` draws fresh random examples. Pick one with the
  environment variable ``HYPOTHESIS_PROFILE=dev``.
* matplotlib, when installed, is switched to the Agg backend before any test imports pyplot.
* ``MKL_CBWR=AUTO,STRICT`` is set before anything loads MKL (torch's BLAS on x86), as the command
  line does: MKL then picks the same kernels whatever the memory alignment, so CPU results are bit
  for bit the same from one process to the next (``docs/parallel.md`` §2).
* BLAS thread pools are limited to one thread per test process (with ``threadpoolctl``, installed
  with scikit-learn): under ``pytest -n auto`` every core already runs a worker, and OpenBLAS's
  spinning threads on an oversubscribed machine make a small matrix product up to 200 times slower
  (the mixture regime's least-squares fits).
* A session-wide autouse fixture warms the Numba JIT (compiles, or loads from the on-disk cache,
  the kernels of the extreme, one-direction and several-direction paths of ``solve``) so that no
  single test pays for it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# as the command line does: MKL's kernel choice must not depend on memory alignment (bit-for-bit CPU results)
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import pytest
from hypothesis import settings

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # comes with scikit-learn (the bridge extras)
    pass
else:
    threadpool_limits(limits=1, user_api="blas")

try:
    import matplotlib
except ImportError:  # the plot extras are optional
    pass
else:
    matplotlib.use("Agg")


@pytest.fixture(scope="session", autouse=True)
def warm_numba_jit() -> None:
    """Solve three tiny problems once per session: every ``@njit`` kernel of ``solve`` is then ready."""
    from opmerge import Problem, make_schedule, solve

    solve(Problem(make_schedule("vp-cosine", 4), 0.5))  # goal outside the range: DP + extreme plan
    solve(Problem(make_schedule("rf", 7), 1.0))  # straddling one-direction search
    solve(Problem(make_schedule("vp-cosine", 5), [0.3, 3.0]))  # several directions: branch and bound


@pytest.fixture(autouse=True)
def one_torch_thread(request):
    """Tests marked ``bridge`` run torch on one thread: small tensors on a shared 2-core machine are
    15-60x slower with two threads (and timings less stable)."""
    if request.node.get_closest_marker("bridge") is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
