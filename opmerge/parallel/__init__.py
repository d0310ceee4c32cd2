r"""One executor for independent units: study units, sweep chunks, calibration pilots.

A *unit* is one call ``fn(shared, task)`` of a module-level function: ``shared`` is what every unit
of a batch needs (a teacher, a dataset, a cache), sent to each worker once per batch where the
engine allows it, and ``task`` is what tells one unit from another. Every executor answers the same
verb, :meth:`UnitExecutor.map`, with the same contract:

* results come back in input order, whatever order the units finish in;
* a unit that raises stops the batch with that exception (same type, same message); when several
  raise, it is the first failing unit in input order, as in a serial run;
* a unit whose *worker* is lost (a killed process, a lost cluster node) is submitted again, at most
  :attr:`ExecutorConfig.retries` times, then :class:`UnitLost` is raised;
* on any other exception in the caller (Ctrl-C, SIGTERM) the units not yet finished are cancelled,
  and leaving the executor's ``with`` block stops its workers.

Engines (:data:`EXECUTORS`, :func:`make_executor`):

====================  ==============================================================================
``local``             in this process, one unit after another (the default; no start-up cost)
``process``           a pool of local worker processes (:mod:`concurrent.futures`) that die with
                      their parent
``ray``               a Ray cluster (``pip install "opmerge[cluster]"``): a local instance started
                      for the run, or an existing cluster at ``address``; per-unit CPU and GPU
                      resources
====================  ==============================================================================

:func:`run_cached` joins an executor to the content-addressed unit cache
(:class:`opmerge.io.ResultCache`), the source of truth: the units already cached are read, the rest
run through the executor, and each worker writes its unit to the cache the moment it is finished and
looks the unit up before computing it — so an interrupted run or one that loses workers resumes with
nothing lost and nothing computed twice, and which engine ran a unit does not change its result.
"""

from ._base import ExecutorConfig, UnitExecutor, UnitLost, progress_bar
from ._cached import CachedUnit, run_cached
from ._local import LocalExecutor
from ._process import ProcessExecutor
from ._ray import RayExecutor, import_ray
from ._registry import EXECUTORS, EXECUTOR_NAMES, make_executor

__all__ = ["ExecutorConfig", "UnitExecutor", "UnitLost", "LocalExecutor", "ProcessExecutor", "RayExecutor", "EXECUTORS",
           "EXECUTOR_NAMES", "make_executor", "run_cached", "CachedUnit", "progress_bar", "import_ray"]
