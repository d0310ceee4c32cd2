"""Units run through an executor with the content-addressed unit cache as the source of truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..io import ResultCache, to_jsonable
from ._base import UnitExecutor

__all__ = ["CachedUnit", "run_cached"]


@dataclass(frozen=True)
class CachedUnit:
    """One unit of :func:`run_cached`.

    Parameters
    ----------
    config : Any
        Its configuration: the cache key (JSON-friendly).
    task : Any
        What ``fn(shared, task)`` needs to compute it (picklable for remote engines).
    validate : callable, optional
        This unit's shape check of a stored result (:meth:`~opmerge.io.ResultCache.load`), in
        place of :func:`run_cached`'s; module level or a :func:`functools.partial` of one for the
        ``process`` engine.
    """

    config: Any
    task: Any
    validate: Callable[[Any], Any] | None = None


def _cached_call(context: tuple, unit: CachedUnit) -> tuple[Any, bool]:
    """Worker side: the unit's cached result if a finished attempt stored it, else compute, store and return it."""
    fn, shared, cache, validate = context
    found = cache.load(unit.config, validate=unit.validate or validate)
    if found is not None:
        return found, False
    value = to_jsonable(fn(shared, unit.task), strict=False)
    cache.store(unit.config, value)
    return value, True


def run_cached(executor: UnitExecutor, cache: ResultCache, fn: Callable[[Any, Any], Any], units: Sequence[CachedUnit], *,
               shared: Any = None, validate: Callable[[Any], Any] | None = None, progress: bool = False,
               desc: str = "units") -> tuple[list, dict]:
    """The results of ``units``: read from ``cache``, or computed by ``executor`` and stored.

    Each missing unit runs ``fn(shared, unit.task)`` on a worker, which looks the unit up in the
    cache first (a resubmitted unit whose earlier attempt finished is not computed again) and
    stores its JSON result there as soon as it is done, so an interrupted run resumes from every
    finished unit. When the worker ran on another machine whose disk does not hold this cache
    folder, this process writes the entry too as the unit's result arrives.

    Parameters
    ----------
    executor : UnitExecutor
    cache : ResultCache
        The unit cache (pickled to the workers; a disabled cache computes every unit).
    fn : callable
        Module-level ``fn(shared, task) -> result``.
    units : sequence of CachedUnit
    shared : Any
        Passed to every ``fn`` call.
    validate : callable, optional
        The cache's shape check of a stored result (:meth:`ResultCache.load`) for units without
        their own.
    progress : bool
        Show the executor's progress bar.
    desc : str
        Its label.

    Returns
    -------
    results : list
        The JSON results, in the order of ``units``.
    stats : dict
        ``{"units", "cached", "computed", "executor"}``.
    """
    units = list(units)
    results: list = [cache.load(unit.config, validate=unit.validate or validate) for unit in units]
    todo = [i for i, result in enumerate(results) if result is None]
    stats = {"units": len(units), "cached": len(units) - len(todo), "computed": 0, "executor": executor.name}
    if todo:

        def keep(k: int, outcome: tuple[Any, bool]) -> None:
            # a worker on another machine wrote its entry there: keep a copy here too, as each unit finishes
            unit = units[todo[k]]
            if executor.remote and cache.enabled and not cache.path_for(unit.config).is_file():
                cache.store(unit.config, outcome[0])

        done = executor.map(_cached_call, [units[i] for i in todo], shared=(fn, shared, cache, validate), progress=progress, desc=desc,
                            on_result=keep)
        for i, (value, computed) in zip(todo, done):
            results[i] = value
            stats["computed" if computed else "cached"] += 1
    return results, stats
