"""The ``process`` engine: a pool of local worker processes that die with their parent."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Hashable, Sequence

from .._signals import die_with_parent
from ._base import FAILED, LOST, OK, ExecutorConfig, UnitExecutor

__all__ = ["ProcessExecutor", "stop_pool"]


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued units and terminate the workers now (a unit in progress is abandoned)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5.0)
        if process.is_alive():  # pragma: no cover - SIGTERM is not ignored by workers
            process.kill()
            process.join(timeout=5.0)


class ProcessExecutor(UnitExecutor):
    """Units in a long-lived :class:`~concurrent.futures.ProcessPoolExecutor` of ``config.workers`` processes.

    Workers ignore SIGINT (the parent stops them), take SIGTERM's default action and are killed
    when the parent dies, even by SIGKILL (:func:`opmerge._signals.die_with_parent`). A worker that
    dies breaks the pool: every unit in flight is then *lost*, the pool is replaced and those units
    are submitted again (each at most ``config.retries`` times). ``shared`` is pickled with every
    unit.
    """

    name = "process"

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        super().__init__(config)
        self.workers = self.config.workers or max(1, os.cpu_count() or 1)
        self.pool: ProcessPoolExecutor | None = None

    @property
    def capacity(self) -> int:
        return 4 * self.workers

    def _context(self):
        method = self.config.start_method or "spawn"
        if method not in multiprocessing.get_all_start_methods():  # pragma: no cover - fork on Windows
            method = "spawn"
        return multiprocessing.get_context(method)

    def _start(self) -> None:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context(), initializer=die_with_parent,
                                            initargs=(os.getpid(),))

    def _submit(self, fn: Callable[[Any, Any], Any], shared: Any, task: Any) -> Hashable:
        self._start()
        try:
            return self.pool.submit(fn, shared, task)  # type: ignore[union-attr]
        except BrokenProcessPool as exc:  # broken between two submissions: report the unit lost
            future: Future = Future()
            future.set_exception(exc)
            return future

    def _wait(self, handles: Sequence[Hashable]) -> list[Hashable]:
        done, _ = wait(handles, return_when=FIRST_COMPLETED)  # type: ignore[arg-type]
        return list(done)

    def _outcome(self, handle: Hashable) -> tuple[str, Any]:
        if handle.cancelled():  # type: ignore[attr-defined]
            return LOST, "cancelled"
        error = handle.exception()  # type: ignore[attr-defined]
        if isinstance(error, BrokenProcessPool):
            return LOST, "a worker process died"
        return (FAILED, error) if error is not None else (OK, handle.result())  # type: ignore[attr-defined]

    def _recover(self) -> None:
        if self.pool is not None and getattr(self.pool, "_broken", False):
            pool, self.pool = self.pool, None
            stop_pool(pool)

    def _cancel(self, handles: Sequence[Hashable]) -> None:
        for handle in handles:
            handle.cancel()  # type: ignore[attr-defined]

    def close(self, cancel: bool = False) -> None:
        """Shut the pool down: wait for it, or with ``cancel`` drop the queued units and terminate the workers."""
        if self.pool is not None:
            pool, self.pool = self.pool, None
            if cancel:
                stop_pool(pool)
            else:
                pool.shutdown(wait=True)
