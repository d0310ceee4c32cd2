"""The ``ray`` engine: units as Ray tasks on a local instance or an existing cluster."""

from __future__ import annotations

import logging
from typing import Any, Callable, Hashable, Sequence

from ..errors import InputError
from ._base import FAILED, LOST, OK, ExecutorConfig, UnitExecutor

__all__ = ["RayExecutor", "import_ray"]

#: seconds between two checks for finished units (Ctrl-C is handled between them)
POLL_SECONDS = 0.2


def import_ray():
    """The ``ray`` module, or an :class:`~opmerge.errors.InputError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("the ray executor needs Ray: pip install \"opmerge[cluster]\" (or pip install ray)") from None
    return ray


def _call(fn: Callable[[Any, Any], Any], shared: Any, task: Any) -> Any:
    """The Ray task of every unit: ``fn(shared, task)`` (``shared`` arrives resolved from the object store)."""
    return fn(shared, task)


class RayExecutor(UnitExecutor):
    """Units as Ray tasks, each reserving ``config.cpus_per_unit`` CPUs and ``config.gpus_per_unit`` GPUs.

    Without ``config.address`` a local Ray instance with ``config.workers`` CPUs (default: all) is
    started for the run and stopped by :meth:`close`; with it, the executor joins that cluster (and
    leaves it running). When Ray is already initialised in this process (a notebook, a test), that
    instance is used as it is. ``shared`` is put in the object store once per batch. Ray's own task
    retries are off: a unit whose worker died (``WorkerCrashedError``, a lost node) is resubmitted
    by the loop, at most ``config.retries`` times, like every engine's. Cancelling stops running
    units (``ray.cancel(force=True)``).

    Workers must be able to import ``opmerge`` (installed on every node of a cluster; a local
    instance shares this interpreter).
    """

    name = "ray"

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        super().__init__(config)
        self._ray = import_ray()
        self._owns_instance = False
        self._remote = None

    def _start(self) -> None:
        ray = self._ray
        if not ray.is_initialized():
            options: dict = {"include_dashboard": False, "logging_level": logging.WARNING}
            if self.config.address is not None:
                options["address"] = self.config.address
            else:
                options["num_cpus"] = self.config.workers
                options["num_gpus"] = None
            ray.init(**options)
            self._owns_instance = self.config.address is None
        if self._remote is None:
            self._remote = ray.remote(_call).options(num_cpus=self.config.cpus_per_unit, num_gpus=self.config.gpus_per_unit,
                                                     max_retries=0, retry_exceptions=False)

    def _share(self, shared: Any) -> Any:
        return self._ray.put(shared)

    def _submit(self, fn: Callable[[Any, Any], Any], shared: Any, task: Any) -> Hashable:
        return self._remote.remote(fn, shared, task)  # type: ignore[union-attr]

    def _wait(self, handles: Sequence[Hashable]) -> list[Hashable]:
        ray = self._ray
        while True:
            ready, _ = ray.wait(list(handles), num_returns=1, timeout=POLL_SECONDS)
            if ready:
                ready, _ = ray.wait(list(handles), num_returns=len(handles), timeout=0)
                return ready

    def _outcome(self, handle: Hashable) -> tuple[str, Any]:
        exceptions = self._ray.exceptions
        try:
            return OK, self._ray.get(handle)
        except exceptions.RayTaskError as exc:  # the unit raised: report its own exception
            cause = getattr(exc, "cause", None)
            return FAILED, cause if isinstance(cause, BaseException) else exc
        except exceptions.RayError as exc:  # the worker, its node or the object was lost
            return LOST, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    def _cancel(self, handles: Sequence[Hashable]) -> None:
        for handle in handles:
            try:
                self._ray.cancel(handle, force=True)
            except Exception:  # pragma: no cover - already finished or gone
                pass

    def close(self, cancel: bool = False) -> None:
        """Stop the local Ray instance this executor started (a joined cluster is left running)."""
        if self._owns_instance and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_instance = False
        self._remote = None
