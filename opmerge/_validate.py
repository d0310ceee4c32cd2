"""Checks of user input at the public boundary of the core (private).

Every helper raises :class:`~opmerge.errors.InputTypeError` for a value of the wrong type and
:class:`~opmerge.errors.InputError` for a value out of range; the message names the parameter and
the allowed range. ``bool`` is never accepted as a number (``lam=True`` is a mistake, not ``1.0``).
The public constructors (``Schedule``, ``StudentModel``, ``Problem``, the plan types and parser,
``Spectrum``) call these once; the layers below them take validated arrays.

Masked arrays (:mod:`numpy.ma`) are refused: their mask would be silently dropped by the float64
conversion, so the hidden entries would be used as if they were data.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from .errors import InputError, InputTypeError

__all__ = ["real_array", "nonnegative_array", "finite_array", "real_number", "integer", "flag", "choice", "is_int", "is_real", "echo", "MAX_STEPS"]

#: longest user text echoed in an error message (longer texts are shortened around the point of interest)
ECHO_LIMIT = 80

#: largest number of teacher steps ``N`` (grid of ``N + 1`` points) a public function accepts: far
#: beyond any sampler, and small enough that the schedule arrays (``8 (N + 1)`` bytes each) and the
#: plan recipes fit in memory, so that a huge ``steps`` is refused by name instead of failing inside
#: numpy ("Maximum allowed size exceeded") or Python ("int too large to convert")
MAX_STEPS = 10**7


def is_int(value: object) -> bool:
    """True for a Python or numpy integer that is not a ``bool``.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value: object) -> bool:
    """True for a real number (Python or numpy) that is not a ``bool``.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def real_array(value: object, name: str) -> np.ndarray:
    """``value`` as a float64 array (any shape), refusing what is not made of real numbers.

    Parameters
    ----------
    value : number or array-like of numbers
        Python or numpy ints and floats; ``bool``, strings, ``None``, complex numbers, masked
        arrays (:mod:`numpy.ma`) and ragged or non-numeric sequences are refused.
    name : str
        The parameter's name, used in the message.

    Returns
    -------
    numpy.ndarray
        ``numpy.asarray(value, dtype=float64)`` (the same numbers, converted once).

    Raises
    ------
    InputTypeError
        When ``value`` is not a number or an array of numbers.
    """
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise InputTypeError(f"{name} must be a number or an array of numbers, got {type(value).__name__}")
    if isinstance(value, np.ma.MaskedArray) or (isinstance(value, (list, tuple)) and any(isinstance(item, np.ma.MaskedArray) for item in value)):
        raise InputTypeError(
            f"{name} must be a plain number or array of numbers, got a masked array (numpy.ma); "
            "pass value.filled(...) or value.compressed() to say what the masked entries mean"
        )
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{name} must be a number or an array of numbers (a ragged or odd sequence was given: {exc})") from None
    kind = raw.dtype.kind
    if kind in "iuf":
        return np.asarray(value, dtype=np.float64)
    if kind == "O":  # e.g. Python ints beyond int64, fractions, decimals: accept if every item is a real number
        items = raw.reshape(-1)
        if all(isinstance(item, numbers.Real) and not isinstance(item, (bool, np.bool_)) for item in items):
            return raw.astype(np.float64)
    what = {"b": "booleans", "U": "strings", "S": "bytes", "c": "complex numbers"}.get(kind, f"values of dtype {raw.dtype}")
    raise InputTypeError(f"{name} must be a number or an array of numbers, got {what}")


def finite_array(value: object, name: str) -> np.ndarray:
    """``value`` as a float64 array (any shape) of finite numbers (:func:`real_array`, then no NaN or inf).

    Parameters
    ----------
    value : number or array-like of numbers
    name : str
        The parameter's name, used in the message.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    InputTypeError
        When ``value`` is not a number or an array of numbers.
    InputError
        When an entry is NaN or infinite.
    """
    arr = real_array(value, name)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite (no NaN or inf); allowed range (-inf, inf)")
    return arr


def nonnegative_array(value: object, name: str) -> np.ndarray:
    """``value`` as a non-empty float64 array (any shape) of finite numbers ``>= 0``.

    The check of eigenvalues and variances (``lam``, ``q``) at the public boundary.

    Parameters
    ----------
    value : number or array-like of numbers
    name : str
        The parameter's name, used in the message.

    Returns
    -------
    numpy.ndarray
        0-d for a scalar.

    Raises
    ------
    InputTypeError
        When ``value`` is not a number or an array of numbers.
    InputError
        When it is empty, or an entry is NaN, infinite or negative (allowed range ``[0, inf)``).
    """
    arr = real_array(value, name)
    if arr.size == 0:
        raise InputError(f"{name} must not be empty; allowed range of each value is [0, inf)")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite (no NaN or inf); allowed range is [0, inf)")
    if np.any(arr < 0):
        raise InputError(f"{name} must be >= 0 (allowed range [0, inf)); got {float(arr.min())!r}")
    return arr


def real_number(value: object, name: str, *, low: float = -math.inf, low_open: bool = False, allow_none: bool = False) -> float | None:
    """A finite real number ``>= low`` (``> low`` with ``low_open``), as ``float``.

    Parameters
    ----------
    value : object
        The user's value; ``bool`` and non-numbers are refused.
    name : str
        The parameter's name, used in the message.
    low : float
        Lower end of the allowed range.
    low_open : bool
        Whether ``low`` itself is excluded.
    allow_none : bool
        Whether ``None`` is accepted (and returned as is).

    Raises
    ------
    InputTypeError
        When ``value`` is not a real number.
    InputError
        When it is NaN, infinite or below the range.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    bracket = "(" if low_open else "["
    allowed = f"{bracket}{low:g}, inf)"
    if not math.isfinite(number) or number < low or (low_open and number == low):
        raise InputError(f"{name} must be finite and {'>' if low_open else '>='} {low:g} (allowed range {allowed}), got {value!r}")
    return number


def integer(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer in ``[low, high]`` (either end optional), as ``int``; ``bool`` is refused.

    Parameters
    ----------
    value : object
        The user's value.
    name : str
        The parameter's name, used in the message.
    low, high : int or None
        The allowed range, both ends included.

    Raises
    ------
    InputTypeError
        When ``value`` is not an integer.
    InputError
        When it is out of range.
    """
    if not is_int(value):
        raise InputTypeError(f"{name} must be an int, got {type(value).__name__}")
    number = int(value)  # type: ignore[arg-type]
    if (low is not None and number < low) or (high is not None and number > high):
        if high is None:
            raise InputError(f"{name} must be >= {low} (allowed range [{low}, inf)), got {number}")
        if low is None:
            raise InputError(f"{name} must be <= {high} (allowed range (-inf, {high}]), got {number}")
        side = f">= {low}" if number < low else f"<= {high}"
        raise InputError(f"{name} must be {side} (allowed range [{low}, {high}]), got {number}")
    return number


def flag(value: object, name: str) -> bool:
    """``value`` as ``bool`` when it is a Python or numpy ``bool``.

    Parameters
    ----------
    value : object
        The user's value.
    name : str
        The parameter's name, used in the message.

    Raises
    ------
    InputTypeError
        For anything else (``joint=1``, ``quick="no"``).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def choice(value: object, name: str, allowed: Sequence[str]) -> str:
    """One of the strings ``allowed``.

    Parameters
    ----------
    value : object
        The user's value.
    name : str
        The parameter's name, used in the message.
    allowed : sequence of str
        The accepted values.

    Returns
    -------
    str

    Raises
    ------
    InputTypeError
        When ``value`` is not a ``str``.
    InputError
        When it is not one of ``allowed``.
    """
    if not isinstance(value, str):
        raise InputTypeError(f"{name} must be a str, one of {', '.join(allowed)}; got {type(value).__name__}")
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {echo(value)!r}")
    return value


def echo(text: str, position: int | None = None, limit: int = ECHO_LIMIT) -> str:
    """``text`` shortened to about ``limit`` characters for an error message.

    Long texts keep a window around ``position`` (or their start) with ``...`` marking what was
    cut, so that a 10,000-character plan is never copied whole into a message.

    Parameters
    ----------
    text : str
        The user's text.
    position : int, optional
        Where the interesting part is (e.g. a parse error).
    limit : int
        About how many characters to keep.

    Returns
    -------
    str
    """
    text = str(text)
    if len(text) <= limit:
        return text
    half = limit // 2
    center = half if position is None else min(max(int(position), half), len(text) - half)
    start, end = max(center - half, 0), min(center + half, len(text))
    return ("..." if start > 0 else "") + text[start:end] + ("..." if end < len(text) else "")
