r"""The content-addressed cache of finished units (sweep points, study units, computed presets).

A unit is described by a JSON-friendly configuration. Its key is

.. math:: \mathrm{key} = \mathrm{sha256}\big(\mathrm{namespace} \,\|\, \mathrm{code} \,\|\, \mathrm{canonical\ JSON}(\mathrm{config})\big),

where ``code`` is :func:`~opmerge.io.code_fingerprint` of the packages that compute the unit. The
entry ``<directory>/<key[:2]>/<key>.json`` holds ``{"key", "namespace", "code", "config",
"checksum", "result", "provenance"}``, with ``checksum`` the SHA-256 of the canonical JSON of the
result. On read, an entry whose key, configuration or checksum does not match, that does not
parse, whose result is ``null`` or that the caller's ``validate`` refuses (a result of the wrong
shape) is a miss, reported by one ``opmerge: warning:`` line on stderr naming the file, and is
overwritten by the recomputed result: a corrupted or hand-edited entry is never used. A missing
entry is a silent miss.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from ._atomic import write_json
from ._json import dumps, to_jsonable
from ._load import load_json, show_path
from ._provenance import code_fingerprint, provenance

__all__ = ["ResultCache", "cache_key"]


def cache_key(namespace: str, code: str, config: Any) -> str:
    """SHA-256 hex digest that names the cache entry of ``config`` computed by ``code`` in ``namespace``."""
    text = f"{namespace}\n{code}\n{dumps(config, strict=False, canonical=True)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _checksum(result: Any) -> str:
    return hashlib.sha256(dumps(result, strict=False, canonical=True).encode("utf-8")).hexdigest()


def _same(a: Any, b: Any) -> bool:
    """Structural equality of two JSON values where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


class ResultCache:
    """A folder of finished units, one verified JSON file per (namespace, code, configuration).

    Parameters
    ----------
    directory : path-like or None
        Cache folder (created on first write); ``None`` disables caching (every lookup misses and
        nothing is written).
    namespace : str
        What kind of unit this cache holds (``"phase-point"``, ``"gaussian-unit"``); part of the key.
    packages : tuple of str
        Packages whose source, with the core's, computes the units (see
        :func:`~opmerge.io.code_fingerprint`); part of the key.

    Attributes
    ----------
    hits, misses, writes : int
        Lookups answered from disk, lookups that missed, entries written by this object.
    damaged : list of Path
        Entries found corrupted (and recomputed) by this object.

    Raises
    ------
    InputError
        When ``directory`` exists and is not a folder.
    """

    def __init__(self, directory: str | os.PathLike | None, namespace: str, *, packages: tuple[str, ...] = ()) -> None:
        self.directory = None if directory is None else Path(directory)
        if self.directory is not None and self.directory.exists() and not self.directory.is_dir():
            raise InputError(f"cache folder {show_path(self.directory)} exists and is not a folder")
        self.damaged: list[Path] = []
        self.namespace = str(namespace)
        self.code = code_fingerprint(*packages)
        self.hits = 0
        self.misses = 0
        self.writes = 0

    @property
    def enabled(self) -> bool:
        """Whether a cache folder was given."""
        return self.directory is not None

    def key(self, config: Any) -> str:
        """The key of ``config`` (see :func:`cache_key`)."""
        return cache_key(self.namespace, self.code, config)

    def path_for(self, config: Any) -> Path:
        """File of the entry of ``config``: ``<directory>/<key[:2]>/<key>.json``."""
        if self.directory is None:
            raise ValueError("this ResultCache has no directory")
        key = self.key(config)
        return self.directory / key[:2] / f"{key}.json"

    def load(self, config: Any, *, validate: Callable[[Any], Any] | None = None) -> Any | None:
        """The verified cached result of ``config``, or ``None`` (disabled, missing, corrupt or mismatched).

        Parameters
        ----------
        config : Any
            The unit's configuration.
        validate : callable, optional
            Checks the result's shape: it refuses it by returning ``False`` or raising ``ValueError``,
            ``TypeError`` or ``KeyError``; a refused entry is a miss, like a corrupted one.

        Returns
        -------
        Any or None
        """
        if self.directory is None:
            self.misses += 1
            return None
        key = self.key(config)
        path = self.directory / key[:2] / f"{key}.json"
        try:
            if not path.is_file():
                self.misses += 1
                return None
        except OSError:
            self.misses += 1
            return None
        expected_config = to_jsonable(config, strict=False)

        def check(stored: Any) -> None:
            if not isinstance(stored, dict):
                raise ValueError(f"expected a JSON object, got {type(stored).__name__}")
            if stored.get("key") != key:
                raise ValueError("its key does not match its file name")
            if "result" not in stored or stored["result"] is None:
                raise ValueError("it has no result")
            if not _same(stored.get("config"), expected_config):
                raise ValueError("its configuration does not match its key")
            if stored.get("checksum") != _checksum(stored["result"]):
                raise ValueError("its checksum does not match its result (edited or damaged)")
            if validate is not None and validate(stored["result"]) is False:
                raise ValueError("its result has the wrong shape")

        try:
            stored = load_json(path, name="cache entry", validator=check)
        except InputError as exc:
            self.misses += 1
            self.damaged.append(path)
            sys.stderr.write(f"opmerge: warning: {exc}; recomputing it\n")
            sys.stderr.flush()
            return None
        self.hits += 1
        return stored["result"]

    def store(self, config: Any, result: Any) -> None:
        """Write the entry of ``config`` atomically (no-op when disabled).

        Raises
        ------
        InputError
            When the cache folder cannot be created or written (the message names the folder).
        """
        if self.directory is None:
            return
        key = self.key(config)
        value = to_jsonable(result, strict=False)
        entry = {
            "key": key,
            "namespace": self.namespace,
            "code": self.code,
            "config": config,
            "checksum": _checksum(value),
            "result": value,
            "provenance": provenance(),
        }
        try:
            write_json(self.directory / key[:2] / f"{key}.json", entry, indent=None, strict=False)
        except InputError as exc:
            raise InputError(f"cache folder {show_path(self.directory)} cannot be written ({exc})") from None
        self.writes += 1

    def get_or_compute(self, config: Any, compute: Callable[[], Any], *, validate: Callable[[Any], Any] | None = None) -> Any:
        """The cached result of ``config``, or ``compute()`` stored and returned (as JSON values).

        Parameters
        ----------
        config : Any
            The unit's configuration.
        compute : callable
            Computes the result on a miss.
        validate : callable, optional
            Checks a cached result's shape (see :meth:`load`).

        Returns
        -------
        Any
        """
        cached = self.load(config, validate=validate)
        if cached is not None:
            return cached
        result = to_jsonable(compute(), strict=False)
        self.store(config, result)
        return result
