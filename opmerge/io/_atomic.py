"""Atomic, umask-honouring file writes (the only place opmerge creates a result file)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError

__all__ = ["atomic_path", "write_bytes", "write_text", "write_json"]


def _umask() -> int:
    """The process umask (read without changing it where /proc allows, else set and restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_destination(path: Path) -> None:
    """Refuse, naming the user's path, a destination that is a folder or lies in a non-folder."""
    if str(path) in ("", "."):
        raise InputError("output path is empty")
    if path.is_dir():
        raise InputError(f"{path} is a folder, expected a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{path}: {parent} exists and is not a folder")
            break


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on normal exit move it into place atomically.

    The caller writes the temporary file (``torch.save``, ``fig.savefig``, ``np.save`` ...). On
    success the file is fsynced, given mode ``0o666 & ~umask`` and renamed onto ``path``; on any
    exception (Ctrl-C included) it is removed and ``path`` is untouched.

    Parameters
    ----------
    path : path-like
        Destination file; missing parent folders are created.
    suffix : str
        Suffix of the temporary name (some writers choose the format from it, e.g. ``".png"``).

    Raises
    ------
    InputError
        The destination is a folder, lies in a non-folder, or cannot be written (no permission,
        disk full ...); the message names ``path``, never the temporary file.
    """
    path = Path(path)
    _check_destination(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OSError as exc:
            if tmp_name in (exc.filename, exc.filename2) or str(tmp) in (exc.filename, exc.filename2):
                raise _write_error(path, exc) from None  # name the user's file, not the temporary one
            raise
        try:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except OSError as exc:
            raise _write_error(path, exc) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_error(path: Path, exc: OSError) -> InputError:
    """The error of a failed write, naming the destination (never the temporary file beside it)."""
    if path.is_dir():
        return InputError(f"cannot write {path}: it is a folder, expected a file path")
    return InputError(f"cannot write {path}: {exc.strerror or type(exc).__name__}")


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1, strict: bool = True) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically; returns the path.

    Parameters
    ----------
    path : path-like
        Destination file.
    obj : Any
        Converted with :func:`opmerge.io.to_jsonable`.
    indent : int or None
        Indentation (``None``: one line).
    strict : bool
        ``True`` (result files): non-finite floats are written as ``null``. ``False`` (cache entries):
        they are written as ``NaN``/``Infinity`` and read back exactly by Python.
    """
    from ._json import dumps

    return write_text(path, dumps(obj, indent=indent, strict=strict) + "\n")
