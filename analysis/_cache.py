r"""On-disk cache of finished sweep points: one JSON file per point, written atomically.

A point is fully described by a JSON-friendly configuration dict (the problem's
:meth:`~opmerge.objective.Problem.config`, the solver budgets and a cache format version).
Its key is the SHA-256 of the canonical JSON text of that dict,

.. math:: \mathrm{key} = \mathrm{sha256}(\mathrm{json.dumps}(\mathrm{config}, \mathrm{sort\_keys}=True)),

and the file ``<cache_dir>/<key[:2]>/<key>.json`` holds ``{"key", "config", "result"}``. Files
are written to a temporary name in the same folder and moved into place with :func:`os.replace`,
so a crash or Ctrl-C never leaves a half-written point behind; a file that cannot be read back
(or whose stored configuration differs from the requested one) counts as a miss.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CACHE_VERSION", "config_key", "to_jsonable", "write_json_atomic", "PointCache"]

#: bump when the meaning or layout of a cached result changes (old files then become misses)
CACHE_VERSION = 1


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays, tuples and paths into plain JSON types.

    Parameters
    ----------
    obj : Any
        Nested dicts/lists/tuples of numbers, strings, booleans, ``None``, numpy values.

    Returns
    -------
    Any
        The same structure with ``dict``, ``list``, ``float``, ``int``, ``bool``, ``str``, ``None``.
        Non-finite floats are kept (Python's ``json`` writes them as ``NaN``/``Infinity``).
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def config_key(config: dict) -> str:
    """SHA-256 hex digest of the canonical JSON text of ``config`` (sorted keys, no spaces).

    Parameters
    ----------
    config : dict
        JSON-friendly configuration (see :func:`to_jsonable`).

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    text = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (temporary file in the same folder + ``os.replace``).

    Parameters
    ----------
    path : path-like
        Destination; its folder is created if needed.
    obj : Any
        JSON-friendly object (converted with :func:`to_jsonable`).
    indent : int or None
        Passed to :func:`json.dump`.

    Returns
    -------
    pathlib.Path
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(to_jsonable(obj), fh, indent=indent, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _same(a: Any, b: Any) -> bool:
    """Structural equality of two JSON values where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


class PointCache:
    """A folder of finished points, one JSON file per configuration.

    Parameters
    ----------
    directory : path-like or None
        Cache folder (created on first write). ``None`` disables caching: every lookup misses
        and :meth:`store` does nothing.

    Attributes
    ----------
    hits, misses, writes : int
        Counters for this object (lookups answered from disk, lookups that missed, files written).
    """

    def __init__(self, directory: str | os.PathLike | None):
        self.directory = None if directory is None else Path(directory)
        self.hits = 0
        self.misses = 0
        self.writes = 0

    @property
    def enabled(self) -> bool:
        """Whether a cache folder was given."""
        return self.directory is not None

    def path_for(self, key: str) -> Path:
        """File of the point with this key: ``<directory>/<key[:2]>/<key>.json``."""
        if self.directory is None:
            raise ValueError("this PointCache has no directory")
        return self.directory / key[:2] / f"{key}.json"

    def load(self, config: dict) -> dict | None:
        """The cached result for ``config``, or ``None`` (disabled, missing, unreadable or mismatched).

        Parameters
        ----------
        config : dict
            The point's full configuration (see :func:`config_key`).

        Returns
        -------
        dict or None
        """
        if self.directory is None:
            self.misses += 1
            return None
        key = config_key(config)
        try:
            with open(self.path_for(key), encoding="utf-8") as fh:
                stored = json.load(fh)
        except (OSError, ValueError):
            self.misses += 1
            return None
        if not isinstance(stored, dict) or stored.get("key") != key or not _same(stored.get("config"), to_jsonable(config)):
            self.misses += 1
            return None
        self.hits += 1
        return stored["result"]

    def store(self, config: dict, result: dict) -> None:
        """Write one finished point atomically (no-op when disabled).

        Parameters
        ----------
        config : dict
            The point's full configuration.
        result : dict
            JSON-friendly result.
        """
        if self.directory is None:
            return
        key = config_key(config)
        write_json_atomic(self.path_for(key), {"key": key, "config": config, "result": result}, indent=None)
        self.writes += 1
