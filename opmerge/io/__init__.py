r"""Reading and writing results: one place for atomic files, JSON, provenance and the result cache.

* :func:`atomic_path`, :func:`write_bytes`, :func:`write_text`, :func:`write_json` — every file
  opmerge writes goes through a temporary file in the destination folder that is flushed, fsynced,
  given the permissions the user's umask allows (``0o666 & ~umask``, so a group can read results in
  a shared folder) and moved into place with :func:`os.replace`: a reader never sees half a file and
  an interrupted write leaves the old file, or none.
* :func:`to_jsonable`, :func:`dumps` — the one JSON encoder (numpy types, tuples, paths, plans,
  dataclasses and objects with ``to_dict``); result files are strict JSON (non-finite floats become
  ``null``), cache entries keep them (``NaN``/``Infinity``) so that they read back exactly.
* :func:`provenance` — the block every result file and checkpoint carries: package version, git
  commit (when the code runs from a checkout), Python/numpy/scipy/numba/torch versions, device,
  date and command line.
* :func:`code_fingerprint` and :class:`ResultCache` — a content-addressed cache of finished units
  whose key hashes the unit's configuration *and* the source code that computed it, so editing a
  line of the code invalidates what it computed; entries carry a checksum and are verified on read.
* :func:`load_array`, :func:`load_json`, :func:`load_torch` — the one validated loader per kind of
  file a user (or a crash) can corrupt: ``.npy``/text arrays (``allow_pickle=False``; real numbers
  only, float64), JSON files checked by a validator, torch checkpoints (``weights_only=True``,
  torch imported only when called); every refusal is an :class:`~opmerge.errors.InputError` naming
  the file, a missing file a :class:`MissingFileError`.
"""

from ._atomic import atomic_path, write_bytes, write_json, write_text
from ._cache import ResultCache, cache_key
from ._json import dumps, loads_file, to_jsonable
from ._load import MissingFileError, load_array, load_json, load_torch, show_path
from ._provenance import code_fingerprint, provenance

__all__ = [
    "atomic_path",
    "write_bytes",
    "write_text",
    "write_json",
    "to_jsonable",
    "dumps",
    "loads_file",
    "provenance",
    "code_fingerprint",
    "ResultCache",
    "cache_key",
    "MissingFileError",
    "load_array",
    "load_json",
    "load_torch",
    "show_path",
]
