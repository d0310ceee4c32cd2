"""opmerge.io: atomic writes that honour the umask, the one JSON encoder, provenance, the code-keyed cache."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

import opmerge.io as io
from opmerge.errors import InputError
from opmerge.io import _provenance


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_write_json_is_group_readable_under_the_umask(tmp_path, umask_027):
    path = io.write_json(tmp_path / "sub" / "r.json", {"a": 1})
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o640  # 0o666 & ~0o027: the group reads, others do not, nobody executes
    assert json.loads(path.read_text()) == {"a": 1}


def test_interrupted_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = io.write_text(tmp_path / "r.txt", "old")
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]


def test_destination_errors_name_the_users_path(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="afile"):
        io.write_text(tmp_path / "afile" / "r.json", "x")
    with pytest.raises(InputError, match="is a folder"):
        io.write_text(tmp_path, "x")
    with pytest.raises(InputError, match="empty"):
        io.write_text("", "x")


def test_encoder_strict_and_exact():
    value = {"x": np.float64(0.1), "n": np.int64(3), "b": np.bool_(True), "arr": np.arange(3.0), "t": (1, 2),
             "nan": float("nan"), "inf": -np.inf}
    strict = json.loads(io.dumps(value))
    assert strict == {"x": 0.1, "n": 3, "b": True, "arr": [0.0, 1.0, 2.0], "t": [1, 2], "nan": None, "inf": None}
    kept = json.loads(io.dumps(value, strict=False))
    assert math.isnan(kept["nan"]) and kept["inf"] == -math.inf
    third = 1.0 / 3.0
    assert json.loads(io.dumps(third)) == third  # floats round-trip bit for bit
    with pytest.raises(TypeError, match="object"):
        io.to_jsonable(object())


def test_plans_are_written_in_text_notation():
    from opmerge.plans import parse_plan

    assert io.to_jsonable({"plan": parse_plan("((4 3) 2) | 1")}) == {"plan": "((4 3) 2) | 1"}


def test_loads_file_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        io.loads_file(tmp_path / "missing.json", what="--config")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        io.loads_file(bad)


def test_provenance_block():
    block = io.provenance(device="cpu", config={"k": 1})
    assert block["opmerge"] == io._provenance.package_version()
    assert block["numpy"] == np.__version__
    assert block["config"] == {"k": 1} and block["device"] == "cpu"
    assert block["code"] == io.code_fingerprint()
    assert len(block["code"]) == 16 and block["date"].endswith("+00:00")


def test_cache_round_trip_keeps_non_finite_values(tmp_path):
    cache = io.ResultCache(tmp_path, "unit")
    calls = []

    def compute():
        calls.append(1)
        return {"w2": np.float64(0.25), "ratio": math.inf, "gap": math.nan}

    first = cache.get_or_compute({"lam": 0.5}, compute)
    second = cache.get_or_compute({"lam": 0.5}, compute)
    assert len(calls) == 1 and cache.hits == 1 and cache.writes == 1
    assert second["w2"] == 0.25 and second["ratio"] == math.inf and math.isnan(second["gap"])
    assert first["ratio"] == math.inf


def test_cache_key_depends_on_config_namespace_and_code(tmp_path, monkeypatch):
    cache = io.ResultCache(tmp_path, "unit")
    cache.store({"lam": 0.5}, {"w2": 1.0})
    assert cache.load({"lam": 0.5}) == {"w2": 1.0}
    assert cache.load({"lam": 0.25}) is None
    assert io.ResultCache(tmp_path, "other").load({"lam": 0.5}) is None
    # a changed line of the core changes the fingerprint, and the old entry is not reused
    _provenance._fingerprint_of.cache_clear()
    real = _provenance._fingerprint_of.__wrapped__
    monkeypatch.setattr(_provenance, "_fingerprint_of", lambda folders: "edited" + real(folders)[6:])
    assert io.ResultCache(tmp_path, "unit").load({"lam": 0.5}) is None


def test_fingerprint_follows_the_source(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    before = _provenance._fingerprint_of.__wrapped__((str(pkg),))
    (pkg / "a.py").write_text("x = 2\n")
    assert _provenance._fingerprint_of.__wrapped__((str(pkg),)) != before


@pytest.mark.parametrize("edit", ["number", "truncate", "shape", "null"])
def test_corrupted_cache_entries_are_misses(tmp_path, edit):
    cache = io.ResultCache(tmp_path, "unit")
    cache.store({"lam": 0.5}, {"w2": 1.0})
    path = cache.path_for({"lam": 0.5})
    entry = json.loads(path.read_text())
    if edit == "number":
        entry["result"]["w2"] = 1.5  # a hand-edited number: the checksum no longer matches
        path.write_text(json.dumps(entry))
    elif edit == "truncate":
        path.write_text(path.read_text()[:20])
    elif edit == "shape":
        path.write_text(json.dumps(["not", "a", "dict"]))
    else:
        entry["result"] = None
        path.write_text(json.dumps(entry))
    assert cache.load({"lam": 0.5}) is None
    assert cache.get_or_compute({"lam": 0.5}, lambda: {"w2": 2.0}) == {"w2": 2.0}
    assert cache.load({"lam": 0.5}) == {"w2": 2.0}


def test_disabled_cache(tmp_path):
    cache = io.ResultCache(None, "unit")
    assert cache.get_or_compute({"a": 1}, lambda: {"v": 1}) == {"v": 1}
    assert cache.load({"a": 1}) is None and cache.writes == 0


def test_missing_entry_is_a_silent_miss_and_loads_file_uses_load_json(tmp_path, capsys):
    cache = io.ResultCache(tmp_path / "units", "unit")
    assert cache.load({"lam": 0.5}) is None and cache.misses == 1 and cache.damaged == []
    assert capsys.readouterr().err == ""  # only a damaged entry warns
    path = io.write_json(tmp_path / "r.json", {"a": [1, 2]})
    assert io.loads_file(path) == io.load_json(path) == {"a": [1, 2]}
    with pytest.raises(FileNotFoundError, match="--config .*missing.json does not exist"):
        io.loads_file(tmp_path / "missing.json", what="--config")
