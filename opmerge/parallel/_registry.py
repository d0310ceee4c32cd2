"""The engines by name, and the one constructor."""

from __future__ import annotations

from ..errors import InputTypeError
from ._base import ExecutorConfig, UnitExecutor
from ._local import LocalExecutor
from ._process import ProcessExecutor
from ._ray import RayExecutor

__all__ = ["EXECUTORS", "EXECUTOR_NAMES", "make_executor"]

#: engine name -> class
EXECUTORS: dict[str, type[UnitExecutor]] = {cls.name: cls for cls in (LocalExecutor, ProcessExecutor, RayExecutor)}
#: the engine names, as ``--executor`` accepts them
EXECUTOR_NAMES = tuple(EXECUTORS)


def make_executor(config: ExecutorConfig | str | None = None, **fields) -> UnitExecutor:
    """The executor of ``config``: an :class:`ExecutorConfig`, an engine name, or ``None`` for ``local``.

    Parameters
    ----------
    config : ExecutorConfig or str or None
    **fields
        With a name or ``None``: the other fields of :class:`ExecutorConfig`.

    Returns
    -------
    UnitExecutor
        Not started: workers start with its first batch.

    Raises
    ------
    InputError, InputTypeError
        For a bad field (:class:`ExecutorConfig`) or, for ``ray``, when Ray is not installed.
    """
    if config is None or isinstance(config, str):
        config = ExecutorConfig(kind=config or "local", **fields)
    elif not isinstance(config, ExecutorConfig):
        raise InputTypeError(f"executor must be an ExecutorConfig, an engine name or None, got {type(config).__name__}")
    elif fields:
        raise InputTypeError("give the executor's fields in its ExecutorConfig, not beside it")
    return EXECUTORS[config.kind](config)
