r"""Validated loaders for the files a user (or a crash) can corrupt: arrays, JSON files, torch checkpoints.

Every loader refuses a bad file with :class:`~opmerge.errors.InputError` whose message names the
file as the user gave it (never a temporary name) and what was expected; a missing file is a
:class:`MissingFileError` (both an ``InputError`` and a ``FileNotFoundError``). Nothing here runs
code stored in a file: ``.npy`` files are read with ``allow_pickle=False`` and torch checkpoints
with ``torch.load(weights_only=True)``; torch is imported inside :func:`load_torch` only, so the
core never needs it.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .._validate import echo
from ..errors import InputError

__all__ = ["MissingFileError", "load_array", "load_json", "load_torch", "show_path"]

#: the first bytes of every ``.npy`` file
_NPY_MAGIC = b"\x93NUMPY"
#: the first bytes of a zip archive (torch's file format since 1.6)
_ZIP_MAGIC = b"PK\x03\x04"
#: longest path echoed in a message (longer paths keep their end, where the file name is)
_PATH_LIMIT = 160


class MissingFileError(InputError, FileNotFoundError):
    """The file a parameter names does not exist (an :class:`InputError` and a ``FileNotFoundError``)."""


def show_path(path: str | os.PathLike) -> str:
    """``path`` as the user gave it, shortened (keeping its end) for an error message.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    str
    """
    text = os.fspath(path)
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return echo(text, position=len(text), limit=_PATH_LIMIT)


def _existing_file(path: str | os.PathLike, name: str) -> Path:
    """``Path(path)`` after checking it names an existing regular file."""
    try:
        p = Path(path)
        exists, is_dir = p.exists(), p.is_dir()
    except (OSError, ValueError, TypeError) as exc:  # NUL bytes, a name too long
        raise InputError(f"{name} {show_path(path)!r} is not a usable file name ({exc})") from None
    if not exists:
        raise MissingFileError(f"{name} {show_path(path)} does not exist")
    if is_dir:
        raise InputError(f"{name} {show_path(path)} is a folder, expected a file")
    return p


def _what_dtype(dtype: np.dtype) -> str:
    if dtype.hasobject:
        return "Python objects (pickled data, which is never loaded)"
    return {"b": "booleans", "c": "complex numbers (imaginary parts are never dropped)", "U": "strings", "S": "bytes",
            "V": "structured records", "M": "dates", "m": "time spans"}.get(dtype.kind, f"values of dtype {dtype}")


def _npy_header(fh, name: str, shown: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of an open ``.npy`` file (no data read)."""
    head = fh.read(len(_NPY_MAGIC))
    if not head:
        raise InputError(f"{name} {shown} cannot be read as numbers: the file is empty")
    if head != _NPY_MAGIC:
        if head[:1] == b"\x80":
            raise InputError(f"{name} {shown} cannot be read as numbers: it holds pickled Python objects, which are never loaded")
        raise InputError(f"{name} {shown} cannot be read as numbers: not a NumPy .npy file (no .npy header)")
    fh.seek(0)
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as exc:
        raise InputError(f"{name} {shown} cannot be read as numbers: damaged .npy header ({echo(str(exc))})") from None
    return tuple(shape), dtype


def _read_npy(path: Path, name: str, shown: str) -> np.ndarray:
    try:
        with open(path, "rb") as fh:
            shape, dtype = _npy_header(fh, name, shown)
            if dtype.kind not in "iuf" or dtype.hasobject:
                raise InputError(f"{name} {shown} holds {_what_dtype(dtype)}; expected real numbers (integers or floats)")
            fh.seek(0)
            try:
                arr = np.load(fh, allow_pickle=False)
            except (ValueError, EOFError, OSError) as exc:
                raise InputError(f"{name} {shown} cannot be read as numbers: truncated or damaged "
                                 f"(its header announces shape {shape}, dtype {dtype}; {echo(str(exc))})") from None
    except OSError as exc:
        raise InputError(f"{name} {shown} cannot be read: {exc.strerror or exc}") from None
    return arr


def _read_text(path: Path, name: str, shown: str) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name} {shown} cannot be read as numbers: not a text file of numbers (and not a .npy file)") from None
    except OSError as exc:
        raise InputError(f"{name} {shown} cannot be read: {exc.strerror or exc}") from None
    delimiter = "," if path.suffix.lower() == ".csv" or "," in text else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns about a file without data: refused below instead
            arr = np.loadtxt(text.splitlines(), delimiter=delimiter, ndmin=1, dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise InputError(f"{name} {shown} cannot be read as numbers: {echo(str(exc))}") from None
    if arr.size == 0:
        raise InputError(f"{name} {shown} cannot be read as numbers: the file holds no numbers")
    return arr


def load_array(path: str | os.PathLike, *, name: str = "file", ndim: int | tuple[int, ...] | None = None, finite: bool = True,
               keep_dtype: bool = False) -> np.ndarray:
    r"""A validated array of real numbers from a ``.npy`` file (or a text/CSV file of numbers).

    ``.npy`` files are read with ``allow_pickle=False`` after their header is checked; any other
    suffix is read as text with ``numpy.loadtxt`` (comma-separated for ``.csv`` or when the text
    has commas).

    Parameters
    ----------
    path : path-like
        The file, named in every message as given.
    name : str
        What the file is, for the message (``"spectrum file"``, ``"--data"``).
    ndim : int or tuple of int, optional
        Accepted numbers of dimensions (``None``: any).
    finite : bool
        Refuse NaN and infinities.
    keep_dtype : bool
        Return the stored integer or float dtype (e.g. to scale ``uint8`` pixels) instead of float64.

    Returns
    -------
    numpy.ndarray
        C-contiguous, float64 unless ``keep_dtype``.

    Raises
    ------
    MissingFileError
        The file does not exist.
    InputError
        Unreadable, empty, truncated or not an array; pickled objects; complex, boolean or
        non-numeric values; the wrong number of dimensions; NaN or inf (with ``finite``).
    """
    p = _existing_file(path, name)
    shown = show_path(path)
    arr = _read_npy(p, name, shown) if p.suffix.lower() == ".npy" else _read_text(p, name, shown)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{k}-D" for k in allowed)
            raise InputError(f"{name} {shown} must hold a {want} array, got shape {arr.shape}")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputError(f"{name} {shown} contains NaN or inf; allowed: finite numbers")
    return np.ascontiguousarray(arr) if keep_dtype else np.ascontiguousarray(arr, dtype=np.float64)


def load_json(path: str | os.PathLike, *, name: str = "file", validator: Callable[[Any], Any] | None = None) -> Any:
    """A parsed JSON file whose content ``validator`` accepts.

    Parameters
    ----------
    path : path-like
        The file.
    name : str
        What the file is, for the message (``"cache entry"``, ``"--config"``).
    validator : callable, optional
        Called with the parsed value; it refuses the content by returning ``False`` or raising
        ``ValueError``, ``TypeError``, ``KeyError`` or ``IndexError`` (whose text says what is wrong).

    Returns
    -------
    Any
        The parsed value (``NaN``/``Infinity`` read back as floats).

    Raises
    ------
    MissingFileError
        The file does not exist.
    InputError
        Unreadable, not UTF-8, not JSON, or refused by ``validator``.
    """
    p = _existing_file(path, name)
    shown = show_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name} {shown} is not a UTF-8 text file") from None
    except OSError as exc:
        raise InputError(f"{name} {shown} cannot be read: {exc.strerror or exc}") from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{name} {shown} is not valid JSON: {echo(str(exc))}") from None
    if validator is not None:
        try:
            ok = validator(value)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            reason = f"no entry {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else exc
            raise InputError(f"{name} {shown} has the wrong content: {echo(str(reason), limit=200)}") from None
        if ok is False:
            raise InputError(f"{name} {shown} has the wrong content")
    return value


def _type_names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def load_torch(path: str | os.PathLike, *, name: str = "checkpoint", required: Mapping[str, type | tuple[type, ...]] | None = None) -> dict:
    """A torch checkpoint dict, read safely (``torch.load(weights_only=True)``, on the CPU).

    torch is imported here, only when called. A file that a weights-only load refuses (one that
    would need arbitrary Python objects) is refused too: opmerge never loads such files.

    Parameters
    ----------
    path : path-like
        The ``.pt`` file.
    name : str
        What the file is, for the message (``"teacher checkpoint"``).
    required : mapping of str to type, optional
        Keys the dict must hold and the type (or tuple of types) of each value; ``bool`` never
        counts as ``int``.

    Returns
    -------
    dict

    Raises
    ------
    MissingFileError
        The file does not exist.
    InputError
        Empty, truncated, damaged or not a torch file; a file holding objects a weights-only load
        refuses; not a dict; a required key missing or of the wrong type.
    """
    p = _existing_file(path, name)
    shown = show_path(path)
    import torch

    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"{name} {shown} cannot be read: {exc.strerror or exc}") from None
    if size == 0:
        raise InputError(f"{name} {shown} is empty (0 bytes), not a torch checkpoint")
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(f"{name} {shown} cannot be read: {exc.strerror or exc}") from None
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(b"\x80")):  # torch's zip format, or its legacy pickle format
        raise InputError(f"{name} {shown} is not a torch checkpoint file (neither torch's zip format nor its legacy format)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch makes of a damaged file is the file's fault
        if isinstance(exc, PermissionError):
            raise InputError(f"{name} {shown} cannot be read: {exc.strerror or exc}") from None
        if isinstance(exc, pickle.UnpicklingError) and "weights" in str(exc).lower():
            raise InputError(f"{name} {shown} is not an opmerge checkpoint: it holds Python objects that a safe "
                             "(weights-only) load refuses, and opmerge never loads such files") from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in reason or "pickle" in reason.lower():
            reason = type(exc).__name__
        raise InputError(f"{name} {shown} is not a readable torch checkpoint (truncated or damaged: {echo(reason)})") from None
    if not isinstance(state, dict):
        raise InputError(f"{name} {shown} holds a {type(state).__name__}, expected a checkpoint dict")
    for key, kind in (required or {}).items():
        if key not in state:
            missing = [k for k in (required or {}) if k not in state]
            raise InputError(f"{name} {shown} lacks the entries {', '.join(map(repr, missing))}: not a complete checkpoint")
        value = state[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise InputError(f"{name} {shown}: entry {key!r} must be a {_type_names(kind)}, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{name} {shown}: entry {key!r} must be finite, got {value!r}")
    return state
