"""Checks of the user input of the sweeps (done once, at the public functions of :mod:`.sweeps`).

Every failed check raises :class:`~opmerge.errors.InputError` (a ``ValueError``) or
:class:`~opmerge.errors.InputTypeError` (also a ``TypeError``) whose message names the parameter
and the range it must lie in.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from opmerge.errors import InputError, InputTypeError
from opmerge.model import StudentModel
from opmerge.objective import TARGETS
from opmerge.schedules import Schedule, make_schedule
from opmerge.teacher import SOLVERS

__all__ = ["check_grid", "check_schedule", "check_common", "check_workers", "check_rel_tol"]


def _is_int(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def check_grid(values: Iterable[float], name: str, positive: bool = False) -> np.ndarray:
    """A non-empty, finite, strictly increasing 1-D grid of values ``>= 0`` (``> 0`` when ``positive``).

    Parameters
    ----------
    values : sequence of float
        The grid.
    name : str
        Parameter name for the messages.
    positive : bool
        Require every value ``> 0``.

    Returns
    -------
    (n,) float64 ndarray
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{name} must be a 1-D sequence of numbers") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite")
    if positive and np.any(arr <= 0):
        raise InputError(f"{name} must be > 0")
    if np.any(arr < 0):
        raise InputError(f"{name} must be >= 0")
    if arr.size > 1 and np.any(np.diff(arr) <= 0):
        raise InputError(f"{name} must be strictly increasing")
    return arr


def check_schedule(schedule: Schedule | str, steps: int | None) -> Schedule:
    """The schedule itself, or ``make_schedule(schedule, steps)`` for a name.

    Parameters
    ----------
    schedule : Schedule or str
        A schedule, or a schedule name.
    steps : int or None
        ``N`` (required with a name; must agree with a schedule's own ``N``).

    Returns
    -------
    Schedule
    """
    if isinstance(schedule, Schedule):
        if steps is not None and steps != schedule.steps:
            raise InputError(f"steps = {steps} contradicts the schedule's N = {schedule.steps}")
        return schedule
    if isinstance(schedule, str):
        if steps is None:
            raise InputError("a schedule given by name needs steps (the number of teacher steps N)")
        return make_schedule(schedule, steps)
    raise InputTypeError(f"schedule must be an opmerge Schedule or a schedule name, got {type(schedule).__name__}")


def check_rel_tol(tol: object, name: str = "tol") -> float:
    """A relative tolerance in ``(0, 1)``.

    Parameters
    ----------
    tol : float
        The value to check.
    name : str
        Parameter name for the message.

    Returns
    -------
    float
    """
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise InputError(f"{name} (relative bisection tolerance) must be in (0, 1), got {tol!r}")
    return float(tol)


def check_common(model, solver, target, segments, tol, node_budget, time_budget) -> StudentModel:
    """Check the options every sweep shares; returns the model (``StudentModel()`` for ``None``).

    Parameters
    ----------
    model : StudentModel or None
    solver : {"ddim", "heun"}
    target : {"teacher", "data"}
    segments : int
        ``>= 1``.
    tol : float
        Relative bisection tolerance in ``(0, 1)``.
    node_budget : int
        ``>= 1``.
    time_budget : float
        ``> 0`` seconds.

    Returns
    -------
    StudentModel
    """
    model = StudentModel() if model is None else model
    if not isinstance(model, StudentModel):
        raise InputTypeError(f"model must be a StudentModel, got {type(model).__name__}")
    if solver not in SOLVERS:
        raise InputError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if target not in TARGETS:
        raise InputError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if not _is_int(segments) or segments < 1:
        raise InputError(f"segments must be an int >= 1, got {segments!r}")
    check_rel_tol(tol)
    if not _is_int(node_budget) or node_budget < 1:
        raise InputError(f"node_budget must be an int >= 1, got {node_budget!r}")
    if isinstance(time_budget, bool) or not isinstance(time_budget, (int, float)) or not time_budget > 0:
        raise InputError(f"time_budget must be > 0 seconds, got {time_budget!r}")
    return model


def check_workers(workers: int | None) -> int:
    """Number of worker processes: an int ``>= 1``, or ``None`` for ``os.cpu_count()``.

    Parameters
    ----------
    workers : int or None

    Returns
    -------
    int
    """
    if workers is None:
        return max(1, os.cpu_count() or 1)
    if not _is_int(workers):
        raise InputTypeError(f"workers must be an int >= 1 or None, got {type(workers).__name__}")
    if workers < 1:
        raise InputError(f"workers must be >= 1 (or None for os.cpu_count()), got {workers}")
    return int(workers)
