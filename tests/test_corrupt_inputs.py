"""Files a user or a crash can corrupt: every one is refused with an InputError naming it, never a traceback.

Arrays (spectrum and image-data ``.npy`` files), JSON cache/unit entries and torch checkpoints go
through the validated loaders of :mod:`opmerge.io`; each case is checked through the library and,
for the command line, in a subprocess (exit 2, one stderr line naming the file, nothing written).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import opmerge.io as io
from opmerge.errors import InputError

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _cli(args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPMERGE_DEBUG"}
    return subprocess.run([sys.executable, "-m", "opmerge", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env, stdin=subprocess.DEVNULL)


def _assert_one_line_error(proc: subprocess.CompletedProcess, *names: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opmerge: error:"), proc.stderr
    for name in names:
        assert name in lines[0]
    assert "weights_only=False" not in lines[0] and "allow_pickle=" not in lines[0]
    return lines[0]


def _bad_arrays(folder) -> dict:
    """name -> path of a corrupted or unacceptable array file."""
    files = {}
    (folder / "garbage.npy").write_bytes(b"this is not an array at all")
    files["garbage"] = folder / "garbage.npy"
    (folder / "empty.npy").write_bytes(b"")
    files["empty"] = folder / "empty.npy"
    (folder / "pickled.npy").write_bytes(pickle.dumps([1.0, 2.0]))
    files["pickled"] = folder / "pickled.npy"
    np.save(folder / "objects.npy", np.array([1.0, "a"], dtype=object), allow_pickle=True)
    files["objects"] = folder / "objects.npy"
    np.save(folder / "complex.npy", np.array([1.0 + 2.0j, 3.0 + 0.0j]))
    files["complex"] = folder / "complex.npy"
    np.save(folder / "bool.npy", np.array([True, False, True]))
    files["bool"] = folder / "bool.npy"
    np.save(folder / "strings.npy", np.array(["1", "2"]))
    files["strings"] = folder / "strings.npy"
    np.save(folder / "whole.npy", np.arange(40.0).reshape(10, 4))
    raw = (folder / "whole.npy").read_bytes()
    (folder / "truncated.npy").write_bytes(raw[: len(raw) - 50])
    files["truncated"] = folder / "truncated.npy"
    np.save(folder / "nan.npy", np.array([1.0, np.nan]))
    files["nan"] = folder / "nan.npy"
    (folder / "complex.txt").write_text("1+2j\n3\n")
    files["complex-text"] = folder / "complex.txt"
    (folder / "blank.txt").write_text("\n")
    files["blank-text"] = folder / "blank.txt"
    return files


BAD_ARRAYS = ["garbage", "empty", "pickled", "objects", "complex", "bool", "strings", "truncated", "nan", "complex-text", "blank-text"]

# ---------------------------------------------------------------------------------------------
# load_array
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_ARRAYS)
def test_load_array_refuses_corrupted_files_naming_them(tmp_path, case):
    path = _bad_arrays(tmp_path)[case]
    with pytest.raises(InputError) as info:
        io.load_array(path, name="--thing")
    message = str(info.value)
    assert str(path) in message and message.startswith("--thing")
    assert "allow_pickle=" not in message  # never advise loading pickles


def test_load_array_names_what_is_wrong(tmp_path):
    files = _bad_arrays(tmp_path)
    expected = {"complex": "complex", "bool": "booleans", "objects": "Python objects", "pickled": "pickled",
                "truncated": "truncated", "nan": "NaN", "empty": "empty", "garbage": "not a NumPy"}
    for case, words in expected.items():
        with pytest.raises(InputError, match=words):
            io.load_array(files[case], name="f")


def test_load_array_returns_contiguous_float64_and_checks_ndim(tmp_path):
    np.save(tmp_path / "ints.npy", np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)))
    arr = io.load_array(tmp_path / "ints.npy", name="f", ndim=2)
    assert arr.dtype == np.float64 and arr.flags.c_contiguous
    np.testing.assert_array_equal(arr, np.arange(6.0).reshape(2, 3))
    np.save(tmp_path / "pix.npy", np.arange(6, dtype=np.uint8))
    assert io.load_array(tmp_path / "pix.npy", name="f", keep_dtype=True).dtype == np.uint8
    with pytest.raises(InputError, match=r"1-D array, got shape \(2, 3\)"):
        io.load_array(tmp_path / "ints.npy", name="f", ndim=1)
    np.save(tmp_path / "inf.npy", np.array([np.inf]))
    assert io.load_array(tmp_path / "inf.npy", name="f", finite=False)[0] == np.inf
    (tmp_path / "v.csv").write_text("1,2\n3,4\n")
    np.testing.assert_array_equal(io.load_array(tmp_path / "v.csv", name="f"), [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(FileNotFoundError) as info:
        io.load_array(tmp_path / "missing.npy", name="f")
    assert isinstance(info.value, InputError) and "missing.npy" in str(info.value)
    with pytest.raises(InputError, match="is a folder"):
        io.load_array(tmp_path, name="f")


# ---------------------------------------------------------------------------------------------
# spectrum files and image data files (through the library)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["complex", "bool", "garbage", "pickled", "truncated"])
def test_spectrum_files_refused(tmp_path, case):
    from opmerge.spectra import load_spectrum

    path = _bad_arrays(tmp_path)[case]
    with pytest.raises(InputError) as info:
        load_spectrum(str(path))
    assert path.name in str(info.value)


def test_complex_spectrum_is_not_silently_made_real(tmp_path):
    from opmerge.spectra import load_spectrum

    np.save(tmp_path / "real_part.npy", np.array([1.0, 3.0]))
    assert load_spectrum(str(tmp_path / "real_part.npy")).dim == 2  # the same numbers without imaginary parts load
    np.save(tmp_path / "c.npy", np.array([1.0 + 0.5j, 3.0 + 0.0j]))
    with pytest.raises(InputError, match="complex"):
        load_spectrum(str(tmp_path / "c.npy"))


@pytest.mark.parametrize("case", ["garbage", "objects", "complex", "truncated"])
def test_image_data_files_refused(tmp_path, case):
    from opmerge.experiments.images.data import load_npy_dataset

    path = _bad_arrays(tmp_path)[case]
    with pytest.raises(InputError) as info:
        load_npy_dataset(path)
    assert str(path) in str(info.value)
    np.save(tmp_path / "x.npy", np.arange(15.0).reshape(5, 3))  # images that differ: only the labels are bad
    with pytest.raises(InputError, match="labels file"):
        load_npy_dataset(tmp_path / "x.npy", labels=path)


# ---------------------------------------------------------------------------------------------
# JSON files and the result cache
# ---------------------------------------------------------------------------------------------


def test_load_json_validator_and_errors(tmp_path):
    path = io.write_json(tmp_path / "unit.json", {"result": "abc"})
    assert io.load_json(path, name="unit")["result"] == "abc"

    def needs_number(value):
        if not isinstance(value["result"], float):
            raise ValueError("'result' must be a number")

    with pytest.raises(InputError, match=r"unit .*unit\.json has the wrong content: 'result' must be a number"):
        io.load_json(path, name="unit", validator=needs_number)
    with pytest.raises(InputError, match="wrong content: no entry 'x'"):
        io.load_json(path, name="unit", validator=lambda v: v["x"])  # a KeyError names the key
    (tmp_path / "bad.json").write_text('{"result": ')
    with pytest.raises(InputError, match="bad.json is not valid JSON"):
        io.load_json(tmp_path / "bad.json", name="unit")
    with pytest.raises(FileNotFoundError, match="nothere.json does not exist"):
        io.load_json(tmp_path / "nothere.json", name="unit")


@pytest.mark.parametrize("edit", ["number", "string", "null", "missing-result", "truncate"])
def test_damaged_cache_entry_is_recomputed_with_a_warning(tmp_path, capsys, edit):
    cache = io.ResultCache(tmp_path, "unit")
    cache.store({"lam": 0.5}, {"w2": 1.0})
    path = cache.path_for({"lam": 0.5})
    entry = json.loads(path.read_text())
    if edit == "number":
        entry["result"]["w2"] = 1.5  # a changed number: the checksum no longer matches
    elif edit == "string":
        entry["result"]["w2"] = "1.0"
    elif edit == "null":
        entry["result"] = None
    elif edit == "missing-result":
        del entry["result"]
    text = json.dumps(entry) if edit != "truncate" else path.read_text()[:30]
    path.write_text(text)
    capsys.readouterr()
    assert cache.get_or_compute({"lam": 0.5}, lambda: {"w2": 2.0}) == {"w2": 2.0}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("opmerge: warning:") and str(path) in err[0] and "recomputing" in err[0]
    assert cache.damaged == [path]
    assert cache.load({"lam": 0.5}) == {"w2": 2.0}  # rewritten
    assert capsys.readouterr().err == ""


def test_cache_entry_with_a_null_result_and_a_valid_checksum_is_damaged(tmp_path, capsys):
    cache = io.ResultCache(tmp_path, "unit")
    cache.store({"lam": 0.5}, None)  # e.g. written by a bug: its checksum matches, yet there is no result
    capsys.readouterr()
    assert cache.get_or_compute({"lam": 0.5}, lambda: {"w2": 2.0}) == {"w2": 2.0}
    assert "it has no result" in capsys.readouterr().err and cache.damaged == [cache.path_for({"lam": 0.5})]


def test_cache_validate_refuses_a_wrong_shape_with_a_valid_checksum(tmp_path, capsys):
    from opmerge.experiments.images.study_units import valid_plan_unit

    cache = io.ResultCache(tmp_path, "images-unit")
    good = {"plan": "4 | 2 1", "train_seconds": 1.0, "records": [], "nonlinear_residual": 0.1, "metrics": {"fd_pixels_test": 0.5},
            "w2": {"w2_cov": 0.1, "w2_full": 0.2, "w2_gain": 0.3}, "gain": [1.0, 0.5], "gain_low": [0.9, 0.4], "gain_high": [1.1, 0.6],
            "linearity": {}, "samples": []}
    bad = {**good, "train_seconds": "fast"}  # a string where a number belongs, stored with its own valid checksum
    cache.store({"unit": "plan"}, bad)
    assert cache.load({"unit": "plan"}) == bad  # without a validator the checksum alone cannot tell
    capsys.readouterr()
    assert cache.get_or_compute({"unit": "plan"}, lambda: good, validate=valid_plan_unit) == good
    assert "'train_seconds' must be a number" in capsys.readouterr().err
    assert cache.load({"unit": "plan"}, validate=valid_plan_unit) == good


def test_unit_validators_refuse_wrong_shapes():
    from opmerge.experiments.images.study_units import valid_teacher_unit, valid_trajectory_unit

    readout = {"metrics": {"fd_pixels_test": 0.5}, "w2": {"w2_cov": 0.1, "w2_full": 0.2, "w2_gain": 0.3}, "gain": [1.0],
               "gain_low": [1.0], "gain_high": [1.0], "linearity": {}, "samples": []}
    check = valid_trajectory_unit([1, 2])
    check({"train_seconds": 1.0, "history": {}, "by_steps": {"1": readout, "2": readout}})
    with pytest.raises(ValueError, match="M = 2"):
        check({"train_seconds": 1.0, "history": {}, "by_steps": {"1": readout}})
    with pytest.raises(ValueError, match="w2_cov"):
        check({"train_seconds": 1.0, "history": {}, "by_steps": {"1": readout, "2": {**readout, "w2": {"w2_cov": None}}}})
    teacher = {"metrics": {"fd_pixels_test": 0.5}, "linearity": {"gain": [1.0], "predicted": [1.0]}, "step_gains": {}, "samples": []}
    valid_teacher_unit(teacher)
    with pytest.raises(ValueError, match="predicted"):
        valid_teacher_unit({**teacher, "linearity": {"gain": [1.0], "predicted": "x"}})


def test_cache_folder_that_is_a_file(tmp_path):
    (tmp_path / "cachefile").write_text("x")
    with pytest.raises(InputError, match=r"cache folder .*cachefile exists and is not a folder"):
        io.ResultCache(tmp_path / "cachefile", "unit")


# ---------------------------------------------------------------------------------------------
# atomic writes name the user's path
# ---------------------------------------------------------------------------------------------


def test_failed_write_names_the_destination_not_the_temp_file(tmp_path):
    dest = tmp_path / "result.json"
    with pytest.raises(InputError) as info:
        with io.atomic_path(dest) as tmp:
            raise OSError(28, "No space left on device", str(tmp))
    assert str(dest) in str(info.value) and "No space left" in str(info.value)
    assert ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no temporary file, no destination
    other = OSError("something else")
    with pytest.raises(OSError) as info2:  # an error not about the temporary file passes through unchanged
        with io.atomic_path(dest):
            raise other
    assert info2.value is other


# ---------------------------------------------------------------------------------------------
# torch checkpoints
# ---------------------------------------------------------------------------------------------


def test_core_io_does_not_import_torch():
    code = "import sys, opmerge.io, opmerge.spectra; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _checkpoint_state(torch):
    from opmerge.experiments.images.checkpoints import CHECKPOINT_FORMAT
    from opmerge.experiments.images.denoiser import DenoiserMLP
    from opmerge.experiments.images.teacher_config import TeacherConfig

    config = TeacherConfig.quick(hidden=8, depth=1, train_steps=3, batch_size=4)
    gen = torch.Generator().manual_seed(0)
    net = DenoiserMLP(6, config.hidden, config.depth, config.emb_dim, config.prediction, torch.zeros(6), 1.0, gen)
    return {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "step": 0, "model": net.state_dict(), "ema": net.state_dict(),
            "optimizer": torch.optim.Adam(net.parameters()).state_dict(), "generator": gen.get_state(), "losses": [],
            "loss_block": [], "data": {"dim": 6, "fingerprint": "0" * 16}, "elapsed": 0.0}


def _bad_checkpoints(torch, folder) -> dict:
    from opmerge.experiments.images.checkpoints import save_checkpoint_atomic

    good = save_checkpoint_atomic(_checkpoint_state(torch), folder / "good.pt")
    files = {"empty": folder / "empty.pt", "random": folder / "random.pt", "truncated": folder / "truncated.pt"}
    files["empty"].write_bytes(b"")
    files["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    files["truncated"].write_bytes(good.read_bytes()[:2000])
    torch.save({"x": np.float64(1.0)}, folder / "objects.pt")  # a weights-only load refuses numpy objects
    files["objects"] = folder / "objects.pt"
    torch.save([1, 2], folder / "list.pt")
    files["list"] = folder / "list.pt"
    state = _checkpoint_state(torch)
    del state["ema"]
    torch.save(state, folder / "incomplete.pt")
    files["incomplete"] = folder / "incomplete.pt"
    state = _checkpoint_state(torch)
    state["ema"]["out_bias"] = torch.zeros(7)
    torch.save(state, folder / "shape.pt")
    files["shape"] = folder / "shape.pt"
    state = _checkpoint_state(torch)
    state["step"] = "3"
    torch.save(state, folder / "step.pt")
    files["step"] = folder / "step.pt"
    return files


CHECKPOINT_CASES = {"empty": "empty", "random": "not a torch checkpoint", "truncated": "truncated", "objects": "Python objects",
                    "list": "holds a list", "incomplete": "lacks the entries 'ema'", "shape": r"out_bias has shape \(7,\)",
                    "step": "'step' must be a int"}


def test_read_checkpoint_refuses_corrupted_files(tmp_path):
    torch = pytest.importorskip("torch")
    from opmerge.experiments.images.checkpoints import read_checkpoint

    files = _bad_checkpoints(torch, tmp_path)
    assert read_checkpoint(tmp_path / "good.pt")["step"] == 0
    for case, words in CHECKPOINT_CASES.items():
        with pytest.raises(InputError, match=words) as info:
            read_checkpoint(files[case])
        assert str(files[case]) in str(info.value)
        assert "weights_only" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        read_checkpoint(tmp_path / "nothere.pt")


def test_load_torch_required_types(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"a": 1, "b": True, "c": float("nan")}, tmp_path / "s.pt")
    assert io.load_torch(tmp_path / "s.pt", name="state", required={"a": int})["a"] == 1
    with pytest.raises(InputError, match="entry 'b' must be a int, got bool"):
        io.load_torch(tmp_path / "s.pt", name="state", required={"b": int})
    with pytest.raises(InputError, match="entry 'c' must be finite"):
        io.load_torch(tmp_path / "s.pt", name="state", required={"c": float})
    with pytest.raises(InputError, match=r"lacks the entries 'z'"):
        io.load_torch(tmp_path / "s.pt", name="state", required={"z": int})


# ---------------------------------------------------------------------------------------------
# the command line: exit 2, one line naming the file, no traceback, nothing written
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["complex", "bool", "garbage"])
def test_cli_spectrum_file(tmp_path, case):
    path = _bad_arrays(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _cli(["plan", "--spectrum", str(path), "--steps", "4", "--segments", "2", "--json"], tmp_path)
    _assert_one_line_error(proc, "--spectrum", path.name)
    assert proc.stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.slow
def test_cli_validate_images_corrupted_data_and_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    files = _bad_arrays(tmp_path)
    out = tmp_path / "out"
    proc = _cli(["validate", "images", "--data", str(files["objects"]), "--teacher", "gaussian", "--quick", "--device", "cpu",
                 "--out", str(out), "--no-progress"], tmp_path)
    _assert_one_line_error(proc, "--data", "objects.npy")
    assert not out.exists()
    checkpoints = _bad_checkpoints(torch, tmp_path)
    proc = _cli(["validate", "images", "--checkpoint", str(checkpoints["truncated"]), "--teacher", "trained", "--quick",
                 "--device", "cpu", "--out", str(out), "--no-progress"], tmp_path)
    _assert_one_line_error(proc, "truncated.pt")
    assert not out.exists()


@pytest.mark.slow
def test_cli_train_teacher_resume_of_a_corrupted_checkpoint(tmp_path):
    out = tmp_path / "teacher"
    out.mkdir()
    (out / "teacher.pt").write_bytes(b"PK\x03\x04 half a zip")
    proc = _cli(["train-teacher", "--quick", "--out", str(out), "--no-evaluate", "--no-progress", "--device", "cpu"], tmp_path)
    _assert_one_line_error(proc, "teacher.pt")
    assert sorted(p.name for p in out.iterdir()) == ["teacher.pt"]


# ---------------------------------------------------------------------------------------------
# the Gaussian bridge's --spectrum files go through the same loaders
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, content, words", [
    ("garbage.npy", b"garbage", "cannot be read"),
    ("complex.npy", None, "complex"),
    ("bad.json", b'{"lam": "ab"}', "wrong content"),
    ("notjson.json", b"[0.5,", "not valid JSON"),
])
def test_bridge_spectrum_files_are_validated(tmp_path, name, content, words):
    from opmerge.experiments.gaussian import parse_spectrum

    path = tmp_path / name
    if content is None:
        np.save(path, np.array([1 + 2j, 3.0]))
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=words) as info:
        parse_spectrum(str(path))
    assert name in str(info.value)


def test_bridge_spectrum_json_list_and_dict_are_read(tmp_path):
    from opmerge.experiments.gaussian import parse_spectrum

    (tmp_path / "a.json").write_text("[0.5, 2]")
    (tmp_path / "b.json").write_text('{"lam": [0.5, 2]}')
    np.testing.assert_array_equal(parse_spectrum(str(tmp_path / "a.json")), [0.5, 2.0])
    np.testing.assert_array_equal(parse_spectrum(str(tmp_path / "b.json")), [0.5, 2.0])
