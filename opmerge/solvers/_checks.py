"""Checks of the user input of the solvers (private; done once, in the public functions).

Every failed check raises :class:`~opmerge.errors.InputTypeError` (a ``TypeError`` too) for a value
of the wrong type, or :class:`~opmerge.errors.InputError` (a ``ValueError`` too) for a value out of
range; the message names the parameter and the range it must lie in. ``bool`` is never accepted
as a number (``node_budget=True`` is a mistake, not ``1``). The functions below the public ones
(``_solve_by_search``, ``_solve_joint``, the kernels) take validated values.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .._validate import choice, flag, is_int, is_real, real_number
from ..errors import InputError, InputTypeError
from ..objective import Problem
from ..plans import Plan

__all__ = [
    "check_problem",
    "check_plan",
    "check_int",
    "check_groups",
    "check_node_budget",
    "check_time_budget",
    "check_tolerances",
    "check_choice",
    "check_flag",
    "check_progress",
    "check_tables",
]


def check_problem(problem: object) -> Problem:
    """``problem`` itself when it is an :class:`~opmerge.objective.Problem`.

    Raises
    ------
    InputTypeError
        For anything else (a schedule, a dict, a string...).
    """
    if not isinstance(problem, Problem):
        raise InputTypeError(f"problem must be an opmerge Problem, got {type(problem).__name__}")
    return problem


def check_plan(plan: object) -> Plan:
    """``plan`` itself when it is an :class:`~opmerge.plans.Plan`.

    Raises
    ------
    InputTypeError
        For anything else (use :func:`~opmerge.plans.parse_plan` for text).
    """
    if not isinstance(plan, Plan):
        raise InputTypeError(f"plan must be an opmerge Plan, got {type(plan).__name__}")
    return plan


def check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    """``value`` as ``int`` when it is a Python or numpy integer in ``[low, high]``.

    Raises
    ------
    InputTypeError
        When ``value`` is not an integer (floats and ``bool`` included).
    InputError
        When it lies outside ``[low, high]`` (``high=None``: no upper end).
    """
    allowed = f"[{low}, {'inf' if high is None else high}]"
    if not is_int(value):
        raise InputTypeError(f"{name} must be an int in {allowed}, got {type(value).__name__} {value!r}")
    number = int(value)  # type: ignore[arg-type]
    if number < low or (high is not None and number > high):
        raise InputError(f"{name} must be an int in {allowed}, got {number}")
    return number


def check_node_budget(value: object) -> int:
    """``node_budget``: an int ``>= 1`` (returned as ``int``)."""
    return check_int(value, "node_budget", 1)


def check_time_budget(value: object, name: str = "time_budget") -> float:
    """A time budget in seconds: a real number ``> 0`` (``inf``: no limit), returned as ``float``.

    Raises
    ------
    InputTypeError
        When ``value`` is not a real number.
    InputError
        When it is NaN or ``<= 0``.
    """
    if not is_real(value):
        raise InputTypeError(f"{name} must be a number of seconds > 0, got {type(value).__name__} {value!r}")
    seconds = float(value)  # type: ignore[arg-type]
    if not seconds > 0:  # also refuses NaN
        raise InputError(f"{name} must be a number of seconds in (0, inf], got {value!r}")
    return seconds


def check_tolerances(rtol: object, atol: object) -> None:
    """``rtol`` (``None`` or a finite real ``>= 0``) and ``atol`` (a finite real ``>= 0``), checked by
    the core's ``opmerge._validate.real_number``.

    The values are not converted (the tolerance is computed from them exactly as given).

    Raises
    ------
    InputTypeError
        When either is not a real number (``rtol=None`` is allowed).
    InputError
        When either is negative, NaN or infinite.
    """
    real_number(rtol, "rtol", low=0.0, allow_none=True)
    real_number(atol, "atol", low=0.0)


def check_groups(value: object) -> int | str | None:
    """``groups`` of :func:`~opmerge.solvers.solve_joint`: ``"auto"``, ``None`` or an int ``>= 1``.

    Raises
    ------
    InputTypeError, InputError
    """
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    if isinstance(value, str):
        raise InputError(f"groups must be 'auto', None or an integer >= 1, got {value!r}")
    return check_int(value, "groups", 1)


def check_choice(value: object, name: str, allowed: Sequence[str]) -> str:
    """``value`` when it is one of the strings ``allowed`` (the core's check, ``opmerge._validate.choice``).

    Raises
    ------
    InputTypeError
        When ``value`` is not a ``str``.
    InputError
        When it is not one of ``allowed`` (a long value is shortened in the message).
    """
    return choice(value, name, allowed)


def check_flag(value: object, name: str) -> bool:
    """``value`` as ``bool`` when it is a Python or numpy ``bool`` (:func:`opmerge._validate.flag`).

    Raises
    ------
    InputTypeError
        For anything else (``joint=1``, ``joint="no"``).
    """
    return flag(value, name)


def check_progress(value: object) -> object:
    """``progress``: ``None`` or a callable taking a :class:`~opmerge.solvers.progress.Progress`.

    Raises
    ------
    InputTypeError
        For anything else.
    """
    if value is not None and not callable(value):
        raise InputTypeError(f"progress must be None or a callable taking a Progress, got {type(value).__name__} {value!r}")
    return value


_TABLE_ROWS = {"v_lo": "N", "v_hi": "N", "f_lo": "N", "f_hi": "N", "g_lo": "M", "g_hi": "M"}


def check_tables(tables: object, problem: Problem) -> dict | None:
    """``tables``: ``None`` or the output of :func:`~opmerge.solvers.range_tables` for ``problem``.

    A dict with the six arrays ``v_lo, v_hi, f_lo, f_hi`` of shape ``(d, N + 1, N + 1)`` and
    ``g_lo, g_hi`` of shape ``(d, M + 1, N + 1)``.

    Raises
    ------
    InputTypeError
        When ``tables`` is not a dict of arrays.
    InputError
        When a table is missing or has another shape.
    """
    if tables is None:
        return None
    if not isinstance(tables, dict):
        raise InputTypeError(f"tables must be None or the dict of range_tables(problem), got {type(tables).__name__}")
    d, n1, m1 = problem.dim, problem.steps + 1, problem.segments + 1
    for name, rows in _TABLE_ROWS.items():
        if name not in tables:
            raise InputError(f"tables must be the dict of range_tables(problem): the table {name!r} is missing")
        table = tables[name]
        if not isinstance(table, np.ndarray):
            raise InputTypeError(f"tables[{name!r}] must be a numpy array, got {type(table).__name__}")
        shape = (d, n1 if rows == "N" else m1, n1)
        if table.shape != shape:
            raise InputError(f"tables[{name!r}] must have the shape {shape} of this problem (d, {rows} + 1, N + 1), got {table.shape}")
    return tables
