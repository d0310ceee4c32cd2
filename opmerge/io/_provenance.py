"""Provenance of results and fingerprints of the code that computed them."""

from __future__ import annotations

import datetime
import functools
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["provenance", "code_fingerprint", "package_version", "git_commit"]

#: the folder of the core package (opmerge/); the analysis and experiments folders sit beside it
_CORE_DIR = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def package_version() -> str:
    """The installed version of opmerge (``"unknown"`` when it runs uninstalled)."""
    try:
        return importlib.metadata.version("opmerge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=None)
def git_commit() -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the checkout the code runs from, or ``None``.

    ``None`` when the package is not in a git checkout or git is not installed.
    """
    root = _CORE_DIR.parent
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, stdin=subprocess.DEVNULL)
        if sha.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _version_of(module: str) -> str | None:
    """Version of an optional library, only if it is already imported (never imports it)."""
    mod = sys.modules.get(module)
    return None if mod is None else str(getattr(mod, "__version__", "unknown"))


def provenance(*, device: str | None = None, config: Any = None) -> dict[str, Any]:
    """The provenance block of a result file or checkpoint.

    Parameters
    ----------
    device : str or None
        Where the numbers were computed (``"cpu"``, ``"cuda:0 (NVIDIA H200)"``); ``None``: ``"cpu"``.
    config : Any
        The configuration of the run, stored as given (converted by the JSON encoder).

    Returns
    -------
    dict
        ``opmerge`` (version), ``git`` (commit and dirty flag, or ``None``), ``code`` (fingerprint
        of the core's source, see :func:`code_fingerprint`), ``python``, ``numpy``, ``scipy``,
        ``numba``, ``torch`` and ``matplotlib`` (versions; ``None`` when not loaded), ``platform``,
        ``device``, ``date`` (UTC, ISO 8601), ``command`` (``sys.argv``) and ``config``.
    """
    import numpy

    block: dict[str, Any] = {
        "opmerge": package_version(),
        "git": git_commit(),
        "code": code_fingerprint(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": _version_of("scipy"),
        "numba": _version_of("numba"),
        "torch": _version_of("torch"),
        "matplotlib": _version_of("matplotlib"),
        "platform": platform.platform(),
        "device": device or "cpu",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv),
    }
    if config is not None:
        block["config"] = config
    return block


@functools.lru_cache(maxsize=None)
def _fingerprint_of(folders: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        base = Path(folder)
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(path.relative_to(base).as_posix().encode("utf-8") + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def code_fingerprint(*packages: str) -> str:
    """SHA-256 (16 hex digits) of the source of the core and of the named subpackages.

    The core is every ``.py`` file of the ``opmerge`` package folder (schedules, teacher, plans,
    model, objective, solvers, spectra ...). ``packages`` adds the folders of installed subpackages
    such as ``"opmerge.analysis"`` or ``"opmerge.experiments"``. Any edit of those files, a comment
    included, changes the fingerprint, so cached results computed by older code are not reused.

    Parameters
    ----------
    *packages : str
        Importable package names whose folders are hashed too.
    """
    folders = [str(_CORE_DIR)]
    for name in packages:
        module = sys.modules.get(name)
        if module is None:
            module = __import__(name, fromlist=["__name__"])
        paths = list(getattr(module, "__path__", [])) or [os.path.dirname(module.__file__)]
        folders.extend(str(Path(p).resolve()) for p in paths)
    return _fingerprint_of(tuple(dict.fromkeys(folders)))
