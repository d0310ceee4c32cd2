"""Per-unit result cache of the validation studies (private).

A study is split into units (one training run, or one seed); each finished unit is written
atomically to ``<out>/units/<label>-<key>.json`` as ``{"config": ..., "result": ...}``, where
``key`` is the first 16 hex digits of the SHA-256 of the canonical JSON of the unit's full
configuration. A rerun loads every unit whose stored configuration is identical and trains only
the missing ones, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from opmerge.cli_options import to_jsonable, write_json_atomic

__all__ = ["UnitStore"]


def _canonical(config: dict) -> str:
    return json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))


class UnitStore:
    """Cached units under ``directory`` (``None`` disables caching).

    Attributes
    ----------
    hits, runs : int
        Units loaded from disk / computed in this session.
    """

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = None if directory is None else Path(directory)
        self.hits = 0
        self.runs = 0

    def path(self, label: str, config: dict) -> Path:
        """File of the unit ``label`` with configuration ``config``."""
        key = hashlib.sha256(_canonical(config).encode("utf-8")).hexdigest()[:16]
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
        return self.directory / "units" / f"{safe}-{key}.json"  # type: ignore[operator]

    def get_or_run(self, label: str, config: dict, compute) -> dict:
        """The cached result of the unit, or ``compute()`` (then stored atomically)."""
        if self.directory is not None:
            path = self.path(label, config)
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(stored, dict) and _canonical(stored.get("config", {})) == _canonical(config):
                    self.hits += 1
                    return stored["result"]
            except (OSError, ValueError, KeyError):
                pass
        result = to_jsonable(compute())
        self.runs += 1
        if self.directory is not None:
            write_json_atomic(self.path(label, config), {"label": label, "config": config, "result": result}, indent=None)
        return result
