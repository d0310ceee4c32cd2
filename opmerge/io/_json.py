"""The one JSON encoder of opmerge."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np


__all__ = ["to_jsonable", "dumps", "loads_file"]


def to_jsonable(obj: Any, *, strict: bool = True) -> Any:
    """Recursively convert ``obj`` into plain JSON types.

    numpy scalars and arrays, tuples and sets become numbers and lists, paths become strings,
    plans and merge nodes their text notation, dataclasses and objects with ``to_dict()`` dicts.

    Parameters
    ----------
    obj : Any
        The object to convert.
    strict : bool
        ``True``: non-finite floats become ``None`` (strict JSON, readable by any parser);
        ``False``: they are kept (Python's ``json`` writes ``NaN``/``Infinity`` and reads them back).

    Raises
    ------
    TypeError
        For an object of no known JSON form (a bug in the caller).
    """
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if (math.isfinite(value) or not strict) else None
    if isinstance(obj, dict):
        return {str(key): to_jsonable(value, strict=strict) for key, value in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(value, strict=strict) for value in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), strict=strict)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if type(obj).__module__.startswith("opmerge.plans") and type(obj).__name__ in ("Plan", "MergeNode"):
        return str(obj)  # a plan's JSON form is its text notation
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_jsonable(to_dict(), strict=strict)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, strict=strict)
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def dumps(obj: Any, *, indent: int | None = 1, strict: bool = True, canonical: bool = False) -> str:
    """JSON text of ``obj`` (converted with :func:`to_jsonable`).

    ``canonical=True`` gives the form hashed by the cache: sorted keys, no spaces, one line.
    """
    value = to_jsonable(obj, strict=strict)
    if canonical:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=not strict)
    return json.dumps(value, indent=indent, allow_nan=not strict)


def loads_file(path: str | os.PathLike, *, what: str = "file") -> Any:
    """Parse the JSON file ``path``; a missing, unreadable or malformed file is an :class:`InputError`.

    Parameters
    ----------
    path : path-like
        The file.
    what : str
        How the message names it (``"--config"``, ``"cache entry"``).

    Returns
    -------
    Any
        The parsed value (see :func:`opmerge.io.load_json`, which also checks the content).
    """
    from ._load import load_json

    return load_json(path, name=what)
