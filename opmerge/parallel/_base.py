"""The executor's configuration and the base class that owns the loop over units."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Hashable, Iterable, Sequence

from .._validate import choice, integer, is_int, real_number
from ..errors import InputError, InputTypeError

__all__ = ["ExecutorConfig", "UnitExecutor", "UnitLost", "progress_bar", "OK", "FAILED", "LOST"]

#: outcome of a unit: it returned a value
OK = "ok"
#: outcome of a unit: it raised (the value is the exception)
FAILED = "failed"
#: outcome of a unit: its worker was lost (the value describes how); the unit is submitted again
LOST = "lost"

#: the engines, in the order the documentation lists them
KINDS = ("local", "process", "ray")
#: upper bound of ``workers`` (as the command line's ``--workers``)
MAX_WORKERS = 1_024
#: upper bound of ``retries``
MAX_RETRIES = 100


class UnitLost(RuntimeError):
    """A unit's worker was lost more often than :attr:`ExecutorConfig.retries` allows.

    Parameters
    ----------
    index : int
        The unit's position in the batch.
    attempts : int
        How many times it was submitted.
    reason : str
        What happened to its last worker.
    """

    def __init__(self, index: int, attempts: int, reason: str) -> None:
        super().__init__(f"unit {index} lost its worker {attempts} times (last: {reason}); rerun to resume from the finished units")
        self.index = index
        self.attempts = attempts
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.index, self.attempts, self.reason))


def _nonnegative_real(value: object, name: str) -> float:
    if isinstance(value, bool):
        raise InputTypeError(f"{name} must be a real number, got bool")
    return float(real_number(value, name, low=0.0))


@dataclass(frozen=True)
class ExecutorConfig:
    """Which engine runs the units, and with what.

    Parameters
    ----------
    kind : {"local", "process", "ray"}
        The engine (see :mod:`opmerge.parallel`).
    workers : int, optional
        ``process``: worker processes (default ``os.cpu_count()``). ``ray``: the CPUs of the local
        instance it starts (default all; ignored with ``address``). ``local``: ignored.
    address : str, optional
        ``ray`` only: the address of a running cluster (``"auto"``, ``"ray://head:10001"``,
        ``"10.0.0.1:6379"``); default: start a local instance for the run and stop it after.
    cpus_per_unit : float
        ``ray``: CPUs reserved per unit (default 1).
    gpus_per_unit : float
        ``ray``: GPUs reserved per unit, a fraction to share one (default 0).
    retries : int
        How often a unit whose worker was lost is submitted again before :class:`UnitLost` (default 3).
    start_method : {"spawn", "fork", "forkserver"}, optional
        ``process``: how workers start (default ``spawn``: safe after torch or OpenMP have run;
        ``fork`` shares the parent's loaded modules and compiled kernels).

    Raises
    ------
    InputError, InputTypeError
        Naming the field and its range.
    """

    kind: str = "local"
    workers: int | None = None
    address: str | None = None
    cpus_per_unit: float = 1.0
    gpus_per_unit: float = 0.0
    retries: int = 3
    start_method: str | None = None

    def __post_init__(self) -> None:
        choice(self.kind, "executor", KINDS)
        if self.workers is not None:
            if not is_int(self.workers):
                raise InputTypeError(f"workers must be an int >= 1 or None, got {type(self.workers).__name__}")
            integer(self.workers, "workers", low=1, high=MAX_WORKERS)
        if self.address is not None:
            if not isinstance(self.address, str):
                raise InputTypeError(f"address must be a string or None, got {type(self.address).__name__}")
            if not self.address.strip():
                raise InputError("address must not be empty (leave it out to start a local Ray instance)")
            if self.kind != "ray":
                raise InputError(f"address is for the ray executor only, not {self.kind!r}")
        object.__setattr__(self, "cpus_per_unit", _nonnegative_real(self.cpus_per_unit, "cpus_per_unit"))
        object.__setattr__(self, "gpus_per_unit", _nonnegative_real(self.gpus_per_unit, "gpus_per_unit"))
        if not is_int(self.retries):
            raise InputTypeError(f"retries must be an int >= 0, got {type(self.retries).__name__}")
        integer(self.retries, "retries", low=0, high=MAX_RETRIES)
        if self.start_method is not None:
            choice(self.start_method, "start_method", ("spawn", "fork", "forkserver"))

    def to_dict(self) -> dict:
        """The fields as a JSON object (recorded with a run's configuration)."""
        return {"kind": self.kind, "workers": self.workers, "address": self.address, "cpus_per_unit": self.cpus_per_unit,
                "gpus_per_unit": self.gpus_per_unit, "retries": self.retries, "start_method": self.start_method}


def progress_bar(total: int | None, initial: int, desc: str, enabled: bool, unit: str = "unit"):
    """A tqdm bar on stderr, shown only when ``enabled`` and stderr is a terminal.

    Parameters
    ----------
    total : int or None
        Number of steps (``None``: unknown).
    initial : int
        Steps already done.
    desc : str
        Label.
    enabled : bool
        ``False`` disables the bar.
    unit : str
        Unit label.

    Returns
    -------
    tqdm.tqdm
    """
    # disable=None: tqdm shows the bar only when stderr is a terminal (no noise in logs and pipes)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=None if enabled else True, leave=False,
                file=sys.stderr, dynamic_ncols=True)


class UnitExecutor(ABC):
    """Runs independent units; the base class owns the loop, an engine supplies the steps.

    Subclasses set :attr:`name` and implement :meth:`_submit`, :meth:`_wait`, :meth:`_outcome`
    and :meth:`_cancel` (and, when they hold workers, :meth:`_start` and :meth:`close`); the loop
    in :meth:`map` — order, first failure in input order, resubmission of lost units, progress,
    cancellation — is the same for every engine.

    Use as a context manager: ``with make_executor(config) as executor: executor.map(fn, tasks)``;
    leaving the block after an exception stops the workers at once (:meth:`close` with ``cancel``).

    Parameters
    ----------
    config : ExecutorConfig
    """

    #: the engine's name in :data:`~opmerge.parallel.EXECUTORS`
    name: ClassVar[str] = ""
    #: whether units run outside this process (so ``fn`` and ``shared`` must pickle)
    remote: ClassVar[bool] = True

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        config = ExecutorConfig(kind=self.name) if config is None else config
        if not isinstance(config, ExecutorConfig):
            raise InputTypeError(f"config must be an ExecutorConfig, got {type(config).__name__}")
        if config.kind != self.name:
            raise InputError(f"config.kind is {config.kind!r}, but this is the {self.name!r} executor")
        self.config = config
        #: units finished, units resubmitted after a lost worker, over this executor's life
        self.totals = {"units": 0, "resubmitted": 0}

    # ------------------------------------------------------------------ the engine's steps
    def _start(self) -> None:
        """Start the workers if they are not running (called before each batch)."""

    @property
    def capacity(self) -> int:
        """How many units may be in flight at once (the rest wait in :meth:`map`)."""
        return sys.maxsize

    def _share(self, shared: Any) -> Any:
        """What is passed to every unit of a batch in place of ``shared`` (e.g. a reference to one stored copy)."""
        return shared

    @abstractmethod
    def _submit(self, fn: Callable[[Any, Any], Any], shared: Any, task: Any) -> Hashable:
        """Start ``fn(shared, task)``; return a handle for :meth:`_wait` and :meth:`_outcome`."""

    @abstractmethod
    def _wait(self, handles: Sequence[Hashable]) -> list[Hashable]:
        """Block until at least one of ``handles`` is finished; return the finished ones."""

    @abstractmethod
    def _outcome(self, handle: Hashable) -> tuple[str, Any]:
        """``(OK, result)``, ``(FAILED, exception)`` or ``(LOST, reason)`` of a finished handle."""

    @abstractmethod
    def _cancel(self, handles: Sequence[Hashable]) -> None:
        """Cancel units not finished (those already running may be left to finish or stopped)."""

    def close(self, cancel: bool = False) -> None:
        """Release the workers: wait for them, or with ``cancel`` stop them at once."""

    # ------------------------------------------------------------------ the loop
    def __enter__(self) -> "UnitExecutor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)

    def map(self, fn: Callable[[Any, Any], Any], tasks: Iterable[Any], *, shared: Any = None, progress: bool = False,
            desc: str = "units", unit: str = "unit", on_result: Callable[[int, Any], None] | None = None) -> list:
        """Run ``fn(shared, task)`` for every task; the results in input order.

        Parameters
        ----------
        fn : callable
            A module-level function ``fn(shared, task) -> result`` (it is pickled by reference
            for remote engines).
        tasks : iterable
            One entry per unit.
        shared : Any
            Passed to every unit (sent once per batch where the engine allows it).
        progress : bool
            Show a progress bar (on a terminal).
        desc, unit : str
            The bar's label and unit.
        on_result : callable, optional
            ``on_result(index, result)``, called in this process as each unit finishes.

        Returns
        -------
        list
            ``[fn(shared, task) for task in tasks]``.

        Raises
        ------
        Exception
            The first failing unit's exception, in input order.
        UnitLost
            A unit's worker was lost more than ``config.retries`` times.
        """
        tasks = list(tasks)
        results: list = [None] * len(tasks)
        if not tasks:
            return results
        self._start()
        handle_shared = self._share(shared)
        attempts = [0] * len(tasks)
        pending: dict[Hashable, int] = {}
        queue = list(range(len(tasks)))  # indices not yet submitted, in input order (resubmissions go first)
        failed: tuple[int, BaseException] | None = None
        bar = progress_bar(len(tasks), 0, desc, progress, unit)
        try:
            while queue or pending:
                while queue and len(pending) < self.capacity:
                    i = queue.pop(0)
                    attempts[i] += 1
                    pending[self._submit(fn, handle_shared, tasks[i])] = i
                for handle in sorted(self._wait(list(pending)), key=pending.__getitem__):
                    i = pending.pop(handle)
                    status, value = self._outcome(handle)
                    if status == OK:
                        results[i] = value
                        self.totals["units"] += 1
                        bar.update(1)
                        if on_result is not None:
                            on_result(i, value)
                    elif status == LOST:
                        if attempts[i] > self.config.retries:
                            error = UnitLost(i, attempts[i], str(value))
                            if failed is None or i < failed[0]:
                                failed = (i, error)
                        else:
                            self.totals["resubmitted"] += 1
                            self._recover()
                            queue.insert(0, i)
                    elif failed is None or i < failed[0]:
                        failed = (i, value)
                if failed is not None:
                    # units after the first failure are not needed; earlier ones may still fail first
                    later = [h for h, i in pending.items() if i > failed[0]]
                    self._cancel(later)
                    for h in later:
                        del pending[h]
                    queue = [i for i in queue if i < failed[0]]
            if failed is not None:
                raise failed[1]
        except BaseException:
            if pending:
                self._cancel(list(pending))
            raise
        finally:
            bar.close()
        return results

    def _recover(self) -> None:
        """Make the engine usable again after a lost worker (e.g. replace a broken pool)."""
