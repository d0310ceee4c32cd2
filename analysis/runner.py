r"""Running batches of sweep points: cached, in-process or on one long-lived executor.

Points run on an executor of :mod:`opmerge.parallel` (a pool of worker processes by default,
``workers`` defaulting to ``os.cpu_count()``; or a Ray cluster) in chunks, with a tqdm progress bar. A batch whose estimated serial
time is below :data:`PARALLEL_MIN_SECONDS` runs in-process: starting workers would cost more than
it saves. The results are identical either way and always come back in input order. With a cache
folder every finished point is written at once to its own verified JSON file
(:func:`~opmerge.analysis.points.point_cache`); a later run reads it back instead of solving again,
so Ctrl-C loses nothing that had finished.

Signals and failures (``docs/reliability.md``): while a :class:`PointRunner` is open, SIGTERM
raises :class:`~opmerge._signals.Terminated` (exit status 143) and takes the same path as Ctrl-C
(:class:`KeyboardInterrupt`, 130): the workers are terminated at once, finished points stay in the
cache, and a rerun resumes. Workers ignore SIGINT (the parent stops them) and die with their parent
even when it is killed by SIGKILL (:func:`~opmerge._signals.die_with_parent`). An exception raised
by a point in a worker reaches the caller unchanged (same type, same message); when several points
fail, the one raised is the first failing point in input order, as in a serial run.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import ExitStack
from typing import Sequence

from opmerge._signals import sigterm_raises
from opmerge.errors import InputError, InputTypeError
from opmerge.io import ResultCache
from opmerge.parallel import ExecutorConfig, UnitExecutor, make_executor, progress_bar

from ._checks import check_workers
from .points import PointSpec, check_point_record, point_cache, solve_point

__all__ = ["PARALLEL_MIN_SECONDS", "PointRunner", "run_points"]

#: below this estimated serial time (seconds) a batch runs in-process instead of starting workers
PARALLEL_MIN_SECONDS = 1.0


def _solve_chunk(specs: list[PointSpec], cache: ResultCache) -> list[dict]:
    """Worker task: solve a chunk of points, writing each to the cache as soon as it is done.

    ``cache`` is the parent's cache object (pickled), so the worker writes under the parent's key
    even if a source file changed after the parent computed its code fingerprint.
    """
    out = []
    for spec in specs:
        record = solve_point(spec)
        cache.store(spec.config(), record)
        out.append(record)
    return out


def _solve_chunks(cache: ResultCache, chunk: list[PointSpec]) -> list[dict]:
    """The executor's unit: :func:`_solve_chunk` with the cache as the batch's shared object."""
    return _solve_chunk(chunk, cache)


def _engine_config(workers: int | None, executor: ExecutorConfig | str | None) -> ExecutorConfig:
    """The runner's engine: ``executor``, or a fork-started process pool of ``workers``."""
    if executor is None or executor == "process":
        return ExecutorConfig(kind="process", workers=check_workers(workers), start_method="fork")
    if isinstance(executor, str):
        return ExecutorConfig(kind=executor, workers=workers)
    if not isinstance(executor, ExecutorConfig):
        raise InputTypeError(f"executor must be an ExecutorConfig, an engine name or None, got {type(executor).__name__}")
    if workers is not None and executor.workers is not None and int(workers) != executor.workers:
        raise InputError(f"workers ({workers}) and executor.workers ({executor.workers}) disagree; give one")
    return executor


class PointRunner:
    r"""Solves batches of points with one cache and, when worthwhile, one long-lived executor.

    A sweep makes one runner and hands it every batch (the grid, then each bisection round), so a
    pool is started at most once. Per batch: cached points are read back; the first two points of
    the runner's life run in-process (they load or compile the Numba kernels before any fork and
    time a solve); the rest run in-process when ``workers == 1`` or the estimated serial time
    (mean in-process solve time :math:`\times` points left) is below :data:`PARALLEL_MIN_SECONDS`
    or the engine is ``local``, else on the executor (a process pool by default), in chunks of :math:`\lceil n / (4\,\mathrm{workers}) \rceil` points (at most
    64). Every finished point is written to the cache at once (by the worker that solved it). On
    any exception, ``KeyboardInterrupt`` and SIGTERM (:class:`~opmerge._signals.Terminated`)
    included, the pending chunks are cancelled, the workers are terminated and the exception
    propagates; finished points stay in the cache. A point that raises in a worker stops the batch
    with that exception (the first failing point in input order, as when run in-process).

    Parameters
    ----------
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs everything in-process.
    cache_dir : path-like, optional
        Cache folder (``None``: no cache).
    executor : ExecutorConfig or str, optional
        The engine (:mod:`opmerge.parallel`): ``process`` (default; started with ``fork`` so that
        workers share the loaded Numba kernels), ``ray``, or ``local`` (everything in-process).

    Use as a context manager (``with PointRunner(...) as runner:``) so the pool is shut down.
    """

    def __init__(self, workers: int | None = None, cache_dir: str | os.PathLike | None = None,
                 executor: ExecutorConfig | str | None = None):
        self.engine_config = _engine_config(workers, executor)
        self.workers = 1 if self.engine_config.kind == "local" else (self.engine_config.workers or check_workers(None))
        self.cache = point_cache(cache_dir)
        self.executor: UnitExecutor | None = None
        self.serial_seconds = 0.0
        self.serial_points = 0
        self.totals = {"points": 0, "cached": 0, "computed": 0, "parallel": False}
        self._signals = ExitStack()

    def __enter__(self) -> "PointRunner":
        self._signals.enter_context(sigterm_raises())
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close(cancel=exc_type is not None)
        finally:
            self._signals.close()

    def close(self, cancel: bool = False) -> None:
        """Release the executor: wait for it, or with ``cancel`` drop the queued work and stop the workers.

        Parameters
        ----------
        cancel : bool
            Cancel the chunks not yet started and terminate the workers instead of waiting.
        """
        if self.executor is not None:
            executor, self.executor = self.executor, None
            executor.close(cancel=cancel)

    def _solve_here(self, spec: PointSpec) -> dict:
        t0 = time.perf_counter()
        record = solve_point(spec)
        self.serial_seconds += time.perf_counter() - t0
        self.serial_points += 1
        self.cache.store(spec.config(), record)
        return record

    def _solve_in_pool(self, specs: Sequence[PointSpec], todo: list[int], records: list, stats: dict, bar) -> None:
        stats["parallel"] = True
        size = max(1, min(64, math.ceil(len(todo) / (4 * self.workers))))
        chunks = [todo[a : a + size] for a in range(0, len(todo), size)]
        if self.executor is None:
            self.executor = make_executor(self.engine_config)

        def finished(i: int, chunk_records: list[dict]) -> None:
            for k, record in zip(chunks[i], chunk_records):
                records[k] = record
            stats["computed"] += len(chunks[i])
            bar.update(len(chunks[i]))

        self.executor.map(_solve_chunks, [[specs[k] for k in chunk] for chunk in chunks], shared=self.cache, on_result=finished)

    def run(self, specs: Sequence[PointSpec], *, progress: bool = False, desc: str = "points") -> tuple[list[dict], dict]:
        """Solve ``specs``; returns their records in order and the batch statistics.

        Parameters
        ----------
        specs : sequence of PointSpec
        progress : bool
            Show a progress bar.
        desc : str
            Its label.

        Returns
        -------
        records : list of dict
            :func:`~opmerge.analysis.points.solve_point` records, one per spec, in order.
        stats : dict
            ``{"points", "cached", "computed", "workers", "parallel", "seconds"}``.
        """
        start = time.perf_counter()
        records: list[dict | None] = [self.cache.load(spec.config(), validate=check_point_record) for spec in specs]
        todo = [k for k, r in enumerate(records) if r is None]
        stats = {"points": len(specs), "cached": len(specs) - len(todo), "computed": 0, "workers": self.workers, "parallel": False}
        bar = progress_bar(len(specs), stats["cached"], desc, progress and len(todo) > 0, unit="pt")
        try:
            while todo and self.serial_points < 2:
                k = todo.pop(0)
                records[k] = self._solve_here(specs[k])
                stats["computed"] += 1
                bar.update(1)
            estimate = self.serial_seconds / max(self.serial_points, 1) * len(todo)
            if todo and (self.workers == 1 or estimate < PARALLEL_MIN_SECONDS):
                for k in todo:
                    records[k] = self._solve_here(specs[k])
                    stats["computed"] += 1
                    bar.update(1)
            elif todo:
                self._solve_in_pool(specs, todo, records, stats, bar)
        finally:
            bar.close()
        stats["seconds"] = time.perf_counter() - start
        for key in ("points", "cached", "computed"):
            self.totals[key] += stats[key]
        self.totals["parallel"] = self.totals["parallel"] or stats["parallel"]
        return records, stats  # type: ignore[return-value]


def run_points(
    specs: Sequence[PointSpec],
    *,
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    executor: ExecutorConfig | str | None = None,
    progress: bool = True,
    desc: str = "points",
) -> tuple[list[dict], dict]:
    r"""Solve many points (cached, in parallel when worthwhile), returning their records in input order.

    One batch of a :class:`PointRunner` (see there for the in-process / pool rule, chunking, cache
    and interrupt behaviour).

    Parameters
    ----------
    specs : sequence of PointSpec
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs everything in-process.
    cache_dir : path-like, optional
        Cache folder (``None``: no cache).
    executor : ExecutorConfig or str, optional
        The engine (see :class:`PointRunner`).
    progress : bool
        Show a tqdm progress bar (on stderr).
    desc : str
        Progress bar label.

    Returns
    -------
    records : list of dict
        :func:`~opmerge.analysis.points.solve_point` records, one per spec, in order.
    stats : dict
        ``{"points", "cached", "computed", "workers", "parallel", "seconds"}``.
    """
    with PointRunner(workers, cache_dir, executor=executor) as runner:
        return runner.run(specs, progress=progress, desc=desc)
