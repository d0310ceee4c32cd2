"""Spectra (opmerge.spectra): loaders, validation, the shipped digits preset, duplicates and binning."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmerge import spectra
from opmerge.objective import Problem, evaluate_plan
from opmerge.plans import canonical_plan, parse_plan
from opmerge.schedules import make_schedule
from opmerge.spectra import (
    BinnedSpectrum,
    Spectrum,
    bin_spectrum,
    binning_w2_error,
    digits_spectrum,
    load_spectrum,
    merge_duplicates,
    spectrum_from_covariance,
    spectrum_from_data,
    spectrum_from_list,
)


def random_covariance(dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    lam = np.sort(rng.uniform(0.1, 5.0, dim))[::-1]
    return (q * lam) @ q.T, lam


# ---------------------------------------------------------------------------------------------
# the dataclass and the list form
# ---------------------------------------------------------------------------------------------


def test_spectrum_is_validated_and_read_only():
    s = Spectrum([2.0, 0.5, 0.0], [1.0, 2.0, 3.0], "x")
    assert s.dim == 3 and s.trace == pytest.approx(3.0) and s.lam.tolist() == [2.0, 0.5, 0.0]  # input order kept
    with pytest.raises(ValueError):
        s.lam[0] = 1.0
    for lam, weights in (([], []), ([1.0, np.nan], [1, 1]), ([1.0, -0.1], [1, 1]), ([1.0, np.inf], [1, 1]),
                         ([1.0, 2.0], [1.0]), ([1.0], [-1.0]), ([1.0], [np.nan]), ([[1.0, 2.0]], [[1.0, 1.0]])):
        with pytest.raises(ValueError):
            Spectrum(lam, weights)
    with pytest.raises(TypeError):
        Spectrum([1.0], [1.0], name=3)
    out = json.loads(json.dumps(s.to_dict()))
    assert out == {"name": "x", "dim": 3, "lam": [2.0, 0.5, 0.0], "weights": [1.0, 2.0, 3.0], "trace": 3.0}


def test_spectrum_schedule_and_problem_freeze_copies_not_the_callers_arrays():
    from opmerge.schedules import Schedule

    lam, weights = np.array([2.0, 0.5]), np.array([1.0, 3.0])
    alpha, sigma = np.array([1.0, 0.6, 0.0]), np.array([0.0, 0.8, 1.0])
    spectrum = Spectrum(lam, weights)
    schedule = Schedule(alpha, sigma)
    problem = Problem(schedule, lam, weights=weights)
    for stored in (spectrum.lam, spectrum.weights, schedule.alpha, schedule.sigma, problem.lam, problem.weights,
                   problem.step_values, problem.teacher, problem.scale):
        assert stored.dtype == np.float64 and stored.flags.c_contiguous and not stored.flags.writeable
    for given in (lam, weights, alpha, sigma):
        assert given.flags.writeable  # the caller's arrays are never frozen
    lam[0] = 7.0
    assert spectrum.lam[0] == problem.lam[0] == 2.0  # copies, not views


def test_spectrum_problem():
    s = spectrum_from_list([0.3, 3.0], [1.0, 2.0])
    problem = s.problem(make_schedule("vp-cosine", 5), segments=2)
    assert isinstance(problem, Problem) and problem.segments == 2
    np.testing.assert_array_equal(problem.lam, s.lam)
    np.testing.assert_array_equal(problem.weights, s.weights)
    with pytest.raises(TypeError):
        s.problem(make_schedule("vp-cosine", 5), lam=[1.0])


def test_load_list_forms():
    s = load_spectrum("0.5,2,10")
    assert s.lam.tolist() == [0.5, 2.0, 10.0] and s.weights.tolist() == [1.0, 1.0, 1.0]
    s = load_spectrum(" 0.5:3, 2:1 ,10 ")
    assert s.lam.tolist() == [0.5, 2.0, 10.0] and s.weights.tolist() == [3.0, 1.0, 1.0]
    assert load_spectrum("4").lam.tolist() == [4.0]
    assert load_spectrum("1e-3:0.5").weights.tolist() == [0.5]
    for bad in ("0.5,,2", "0.5,abc", "0.5:x", "1:2:3", "-1,2"):
        with pytest.raises(ValueError):
            load_spectrum(bad)


def test_unknown_spec_lists_the_accepted_forms():
    with pytest.raises(ValueError) as info:
        load_spectrum("mnist")
    message = str(info.value)
    assert "comma list" in message and ".npy" in message and "digits" in message
    with pytest.raises(ValueError):
        load_spectrum("   ")
    with pytest.raises(TypeError):
        load_spectrum(3.0)


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def test_load_npy_forms(tmp_path):
    eig = tmp_path / "eig.npy"
    np.save(eig, np.array([3.0, 1.0, 0.25]))
    assert load_spectrum(str(eig)).lam.tolist() == [3.0, 1.0, 0.25]
    assert load_spectrum(eig).name == "eig.npy"  # os.PathLike accepted
    cov, lam = random_covariance(5, seed=1)
    path = tmp_path / "cov.npy"
    np.save(path, cov)
    np.testing.assert_allclose(load_spectrum(str(path)).lam, lam, rtol=1e-10)
    data = np.random.default_rng(2).normal(size=(40, 3)) * [1.0, 2.0, 3.0]
    path = tmp_path / "data.npy"
    np.save(path, data)
    want = np.sort(np.linalg.eigvalsh(np.cov(data, rowvar=False)))[::-1]
    np.testing.assert_allclose(load_spectrum(str(path)).lam, want, rtol=1e-10)


def test_load_text_forms(tmp_path):
    (tmp_path / "row.txt").write_text("0.5 2 10\n")
    assert load_spectrum(str(tmp_path / "row.txt")).lam.tolist() == [0.5, 2.0, 10.0]
    (tmp_path / "col.txt").write_text("0.5\n2\n10\n")
    assert load_spectrum(str(tmp_path / "col.txt")).lam.tolist() == [0.5, 2.0, 10.0]
    cov, lam = random_covariance(4, seed=3)
    np.savetxt(tmp_path / "cov.csv", cov, delimiter=",")
    np.testing.assert_allclose(load_spectrum(str(tmp_path / "cov.csv")).lam, lam, rtol=1e-8)
    data = np.random.default_rng(4).normal(size=(30, 2))
    np.savetxt(tmp_path / "data.txt", data)
    want = np.sort(np.linalg.eigvalsh(np.cov(data, rowvar=False)))[::-1]
    np.testing.assert_allclose(load_spectrum(str(tmp_path / "data.txt")).lam, want, rtol=1e-8)
    with pytest.raises(FileNotFoundError):
        load_spectrum(str(tmp_path / "missing.npy"))


def test_load_bad_array_shapes(tmp_path):
    path = tmp_path / "cube.npy"
    np.save(path, np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        load_spectrum(str(path))
    path = tmp_path / "one_sample.npy"
    np.save(path, np.ones((1, 3)))
    with pytest.raises(ValueError, match="n_samples >= 2"):
        load_spectrum(str(path))


# ---------------------------------------------------------------------------------------------
# covariance and data
# ---------------------------------------------------------------------------------------------


@settings(max_examples=25)
@given(st.integers(1, 8), st.integers(0, 10**6))
def test_covariance_eigenvalues(dim, seed):
    cov, lam = random_covariance(dim, seed)
    s = spectrum_from_covariance(cov)
    np.testing.assert_allclose(s.lam, lam, rtol=1e-10, atol=1e-12)
    assert s.trace == pytest.approx(np.trace(cov), rel=1e-12)
    assert np.all(np.diff(s.lam) <= 0)  # descending


def test_covariance_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        spectrum_from_covariance(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        spectrum_from_covariance(np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        spectrum_from_covariance(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="NaN or inf"):
        spectrum_from_covariance(np.array([[1.0, 0.0], [0.0, np.inf]]))
    with pytest.raises(ValueError, match="symmetric"):
        spectrum_from_covariance(np.array([[1.0, 0.5], [0.0, 1.0]]))
    # eigenvalues 3 and -1: the message names the most negative one
    with pytest.raises(ValueError, match=r"-1\b"):
        spectrum_from_covariance(np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_covariance_rounding_is_clipped_to_zero():
    v = np.array([1.0, 2.0, 2.0]) / 3.0
    cov = 4.0 * np.outer(v, v)  # rank one: eigenvalues 4, 0, 0 up to rounding
    s = spectrum_from_covariance(cov)
    assert s.lam[0] == pytest.approx(4.0) and s.lam[1] == 0.0 and s.lam[2] == 0.0
    tiny = np.diag([1.0, -1e-13])  # negative at the rounding level: clipped
    assert spectrum_from_covariance(tiny).lam.tolist() == [1.0, 0.0]


def test_data_spectrum_and_shape_errors():
    rng = np.random.default_rng(5)
    data = rng.normal(size=(50, 4))
    s = spectrum_from_data(data)
    centred = data - data.mean(axis=0)
    assert s.trace == pytest.approx(float(np.sum(centred**2)) / (len(data) - 1), rel=1e-12)
    assert spectrum_from_data(data[:, :1]).dim == 1
    with pytest.raises(ValueError, match=r"\(50,\)"):
        spectrum_from_data(data[:, 0])
    with pytest.raises(ValueError, match=r"\(5, 2, 2\).*flatten"):
        spectrum_from_data(np.ones((5, 2, 2)))
    with pytest.raises(ValueError, match="n_samples >= 2"):
        spectrum_from_data(np.ones((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        spectrum_from_data(np.array([[1.0, np.nan], [2.0, 3.0]]))


# ---------------------------------------------------------------------------------------------
# the digits preset, shipped as package data
# ---------------------------------------------------------------------------------------------


def test_shipped_digits_spectrum_equals_a_fresh_computation():
    """The shipped eigenvalues are what the documented computation gives, to the accuracy of a
    symmetric eigensolver (d eps max|lambda|): OpenBLAS picks its kernels by CPU, and the last bits
    differ between kernel paths (measured: the Haswell and Zen paths reproduce the file bit for bit,
    the SkylakeX path differs by 3.1e-15). The zeroed directions are the same."""
    pytest.importorskip("sklearn")
    fresh = spectra._compute_digits_eigenvalues()
    shipped = digits_spectrum().lam
    assert shipped.dtype == fresh.dtype == np.float64 and shipped.shape == fresh.shape == (64,)
    assert np.array_equal(shipped == 0.0, fresh == 0.0)
    assert np.max(np.abs(shipped - fresh)) <= 64 * np.finfo(np.float64).eps * np.max(shipped)


def test_digits_spectrum_properties():
    s = digits_spectrum()
    assert s.name == "digits" and s.dim == 64 and np.all(s.lam >= 0) and np.all(np.diff(s.lam) <= 0)
    assert np.all(s.weights == 1.0)
    assert int(np.sum(s.lam == 0.0)) >= 2  # constant border pixels: exact zeros
    assert s.lam[0] == pytest.approx(2.797, abs=1e-3) and s.trace == pytest.approx(18.78, abs=1e-2)
    assert digits_spectrum() is s  # read once per process
    assert load_spectrum("digits").lam.tolist() == s.lam.tolist()


def test_digits_spectrum_needs_neither_sklearn_nor_torch(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name.split(".")[0] in ("sklearn", "torch"):
            raise ImportError(f"no {name} here")
        return real_import(name, *args, **kwargs)

    spectra._digits_cached.cache_clear()
    monkeypatch.setattr(builtins, "__import__", refuse)
    try:
        s = digits_spectrum()
    finally:
        spectra._digits_cached.cache_clear()
    assert s.dim == 64
    assert spectra.digits_data_path().name == "digits_spectrum.npy"


def test_digits_data_is_declared_as_package_data():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["opmerge"]
    relative = spectra.digits_data_path().relative_to(root / "opmerge").as_posix()
    assert any(Path(relative).match(pattern) for pattern in patterns)


# ---------------------------------------------------------------------------------------------
# duplicates and binning
# ---------------------------------------------------------------------------------------------


def test_merge_duplicates_keeps_w2():
    s = spectrum_from_list([2.0, 0.5, 2.0 * (1 + 1e-15), 0.0, 0.0, 0.5], [1.0, 2.0, 3.0, 1.0, 1.0, 0.5])
    merged = merge_duplicates(s)
    assert merged.lam.tolist() == [2.0, 0.5, 0.0]  # first occurrences, input order
    assert merged.weights.tolist() == [4.0, 2.5, 2.0]
    exact = spectrum_from_list([2.0, 0.5, 2.0, 0.5], [1.0, 2.0, 3.0, 0.5])
    schedule = make_schedule("vp-cosine", 5)
    for kind in ("boot", "vanilla", "pd"):
        plan = canonical_plan(kind, 5)
        full = evaluate_plan(exact.problem(schedule), plan).w2
        assert evaluate_plan(merge_duplicates(exact).problem(schedule), plan).w2 == pytest.approx(full, rel=1e-14)


@settings(max_examples=40)
@given(st.lists(st.floats(-6, 2), min_size=1, max_size=30), st.integers(1, 12), st.integers(0, 10**6))
def test_binning_conserves_weights_and_variance(log_lams, bins, seed):
    rng = np.random.default_rng(seed)
    lam = 10.0 ** np.array(log_lams)
    lam[rng.random(lam.size) < 0.15] = 0.0
    weights = rng.uniform(0.0, 3.0, lam.size)
    s = spectrum_from_list(lam, weights)
    b = bin_spectrum(s, bins)
    assert isinstance(b, BinnedSpectrum) and b.source is s
    assert b.spectrum.dim <= bins + 1 and b.spectrum.dim == b.error["directions"]
    assert b.spectrum.weights.sum() == pytest.approx(weights.sum(), rel=1e-12)
    for k in range(b.spectrum.dim):
        members = b.assignment == k
        assert members.any()  # empty bins are dropped
        total = weights[members].sum()
        assert b.spectrum.weights[k] == pytest.approx(total, rel=1e-12)
        if total > 0:
            assert b.spectrum.lam[k] * total == pytest.approx(float(np.sum(weights[members] * lam[members])), rel=1e-12, abs=1e-300)
        lo, hi = lam[members].min(), lam[members].max()
        assert lo * (1 - 1e-12) <= b.spectrum.lam[k] <= hi * (1 + 1e-12)
    assert b.error["trace_relative_error"] <= 1e-12
    assert np.all(np.diff(b.spectrum.lam) <= 0)  # descending, zero bin last


def test_binning_with_enough_bins_returns_the_spectrum():
    # one eigenvalue per decade; with 10 bins (two per decade) each sits alone on a bin's lower edge
    # (the largest one, on the last edge, belongs to the last bin). Log bins are not adaptive: B >= d
    # alone does not separate every eigenvalue (5 bins here would put 10 and 100 together).
    lam = 10.0 ** np.arange(-3, 3)
    s = spectrum_from_list(lam[::-1], np.arange(1.0, 7.0))
    assert bin_spectrum(s, 5).spectrum.dim == 5
    b = bin_spectrum(s, 10)
    np.testing.assert_allclose(b.spectrum.lam, s.lam, rtol=1e-12)
    np.testing.assert_array_equal(b.spectrum.weights, s.weights)
    np.testing.assert_array_equal(b.assignment, np.arange(6))
    assert b.error["max_relative_lam_error"] < 1e-12 and b.error["weighted_log_lam_spread"] < 1e-12
    schedule = make_schedule("vp-cosine", 6)
    out = binning_w2_error(s, b, {"schedule": schedule})
    assert set(out["plans"]) == {str(canonical_plan(k, 6)) for k in ("vanilla", "boot", "cd", "pd")}
    assert out["max_relative_error"] < 1e-12


def test_binning_error_numbers_by_hand():
    s = spectrum_from_list([1.0, 4.0, 0.0], [1.0, 3.0, 2.0])
    b = bin_spectrum(s, 1)  # one positive bin and the zero bin
    assert b.spectrum.lam.tolist() == [pytest.approx(13.0 / 4.0), 0.0]
    assert b.spectrum.weights.tolist() == [4.0, 2.0]
    assert b.assignment.tolist() == [0, 0, 1]
    assert b.error["max_relative_lam_error"] == pytest.approx(2.25)  # |3.25 - 1| / 1
    rms = math.sqrt((1.0 * math.log(1.0 / 3.25) ** 2 + 3.0 * math.log(4.0 / 3.25) ** 2) / 4.0)
    assert b.error["weighted_log_lam_spread"] == pytest.approx(rms)
    assert b.error["bins_requested"] == 1 and b.error["directions"] == 2
    json.dumps(b.to_dict())
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            bin_spectrum(s, bad)


def test_binning_w2_error_of_given_plans():
    s = spectrum_from_list(np.geomspace(0.01, 5.0, 12))
    b = bin_spectrum(s, 3)
    schedule = make_schedule("vp-cosine", 6)
    plans = ["boot", canonical_plan("vanilla", 6), "((6 5) (4 3) (2 1))"]
    out = binning_w2_error(s, b, {"schedule": schedule, "target": "data"}, plans)
    assert len(out["plans"]) == 3
    for text, entry in out["plans"].items():
        full = Problem(schedule, s.lam, weights=s.weights, target="data")
        coarse = Problem(schedule, b.spectrum.lam, weights=b.spectrum.weights, target="data")
        plan = parse_plan(text)
        assert entry["w2"] == evaluate_plan(full, plan).w2
        assert entry["w2_binned"] == evaluate_plan(coarse, plan).w2
        assert entry["relative_error"] == pytest.approx(abs(entry["w2_binned"] - entry["w2"]) / entry["w2"])
    assert out["max_relative_error"] == max(e["relative_error"] for e in out["plans"].values())
    with pytest.raises(ValueError):
        binning_w2_error(s, b, {"target": "data"})
    with pytest.raises(TypeError):
        binning_w2_error(s, b, {"schedule": schedule}, [3])


def test_load_spectrum_bad_inputs_are_input_errors(tmp_path):
    from opmerge.errors import InputError

    long_list = "1," * 5000 + "x"
    with pytest.raises(InputError, match="cannot read 'x'") as info:
        load_spectrum(long_list)  # too long to be a file name: read as a list, not an OSError
    assert len(str(info.value)) < 600
    bad_npy = tmp_path / "bad.npy"
    bad_npy.write_bytes(b"not an array")
    bad_txt = tmp_path / "bad.txt"
    bad_txt.write_text("a b c\n")
    for path in (bad_npy, bad_txt):
        with pytest.raises(InputError, match="cannot be read as numbers"):
            load_spectrum(str(path))
    with pytest.raises(FileNotFoundError):
        load_spectrum(str(tmp_path / "missing.npy"))
