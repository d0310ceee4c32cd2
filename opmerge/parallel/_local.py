"""The ``local`` engine: every unit in this process, one after another."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable, Hashable, Sequence

from ._base import FAILED, OK, UnitExecutor

__all__ = ["LocalExecutor"]


class LocalExecutor(UnitExecutor):
    """Runs each unit in this process when it is submitted (one in flight): a serial run.

    ``KeyboardInterrupt`` and ``SystemExit`` raised by a unit propagate at once; other exceptions
    follow the loop's rule (the first failing unit stops the batch).
    """

    name = "local"
    remote = False

    @property
    def capacity(self) -> int:
        return 1

    def _submit(self, fn: Callable[[Any, Any], Any], shared: Any, task: Any) -> Hashable:
        future: Future = Future()
        try:
            future.set_result(fn(shared, task))
        except Exception as exc:  # the loop reports it; BaseException (Ctrl-C) propagates now
            future.set_exception(exc)
        return future

    def _wait(self, handles: Sequence[Hashable]) -> list[Hashable]:
        return list(handles)

    def _outcome(self, handle: Hashable) -> tuple[str, Any]:
        error = handle.exception()  # type: ignore[attr-defined]
        return (FAILED, error) if error is not None else (OK, handle.result())  # type: ignore[attr-defined]

    def _cancel(self, handles: Sequence[Hashable]) -> None:
        pass
