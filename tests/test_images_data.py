"""Image data: digits, .npy and torchvision loaders, the seeded split, the Gaussian fit."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from opmerge.experiments.images.data import (  # noqa: E402
    ImageDataset,
    fit_gaussian,
    load_dataset,
    load_digits_dataset,
    load_npy_dataset,
    load_torchvision_dataset,
    split_indices,
)

pytestmark = pytest.mark.bridge


def test_digits_shape_range_labels_and_split():
    d = load_digits_dataset()
    assert (d.n_train, d.n_test, d.dim, d.image_shape) == (1438, 359, 64, (8, 8))
    assert d.train.dtype == np.float64 and not d.train.flags.writeable
    from sklearn.datasets import load_digits

    raw = load_digits()
    # p/8 - 1 exactly, and every image lands in exactly one split
    allx = np.concatenate([d.train, d.test])
    expected = np.sort(raw.data / 8.0 - 1.0, axis=0)
    np.testing.assert_array_equal(np.sort(allx, axis=0), expected)
    assert allx.min() == -1.0 and allx.max() == 1.0
    assert d.n_classes == 10 and set(np.unique(d.train_labels)) == set(range(10))
    tr, te = split_indices(1797, 0.2, 0)
    np.testing.assert_array_equal(d.train, raw.data[tr] / 8.0 - 1.0)
    np.testing.assert_array_equal(d.test_labels, raw.target[te])


def test_split_is_seeded_and_disjoint():
    a = split_indices(100, 0.25, 3)
    b = split_indices(100, 0.25, 3)
    c = split_indices(100, 0.25, 4)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])
    assert len(a[1]) == 25 and len(a[0]) == 75 and not set(a[0]) & set(a[1])
    assert load_digits_dataset(seed=5).fingerprint() == load_digits_dataset(seed=5).fingerprint()
    assert load_digits_dataset(seed=5).fingerprint() != load_digits_dataset(seed=6).fingerprint()
    with pytest.raises(ValueError, match="test_fraction"):
        split_indices(100, 1.0)


def test_npy_loader_uint8_float_latents_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(20, 3, 4, 4), dtype=np.uint8)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "lab.npy", np.arange(20) % 3)
    d = load_npy_dataset(tmp_path / "img.npy", 0.25, 1, labels=tmp_path / "lab.npy")
    assert d.image_shape == (3, 4, 4) and d.dim == 48 and d.n_test == 5 and d.is_image
    tr, te = split_indices(20, 0.25, 1)
    np.testing.assert_allclose(d.test, img.reshape(20, -1)[te] / 127.5 - 1.0)
    assert d.value_range == (-1.0, 1.0) and d.n_classes == 3
    lat = rng.standard_normal((30, 16))
    np.save(tmp_path / "lat.npy", lat)
    d2 = load_dataset(str(tmp_path / "lat.npy"))
    assert d2.image_shape == (16,) and d2.value_range is None and not d2.is_image and not d2.has_labels
    np.testing.assert_array_equal(np.sort(np.concatenate([d2.train, d2.test]), 0), np.sort(lat, 0))
    with pytest.raises(FileNotFoundError):
        load_npy_dataset(tmp_path / "missing.npy")
    bad = lat.copy()
    bad[0, 0] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match="NaN"):
        load_npy_dataset(tmp_path / "bad.npy")
    with pytest.raises(ValueError, match="image_shape"):
        load_npy_dataset(tmp_path / "lat.npy", image_shape=(3, 5))
    with pytest.raises(ValueError, match="digits"):
        load_dataset("imagenet")


def test_torchvision_loader_errors_are_clear(tmp_path, monkeypatch):
    # torchvision absent (as here): a ModuleNotFoundError that names it and promises no download
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ModuleNotFoundError, match="torchvision.*never downloads"):
        load_torchvision_dataset("mnist", tmp_path)
    # torchvision present but the files are not on disk: FileNotFoundError naming the root, download=False passed
    calls = []

    class FakeMNIST:
        def __init__(self, root, train, download):
            calls.append(download)
            raise RuntimeError("Dataset not found. You can use download=True to download it")

    fake = types.ModuleType("torchvision.datasets")
    fake.MNIST = FakeMNIST
    fake.CIFAR10 = FakeMNIST
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    with pytest.raises(FileNotFoundError, match="MNIST files not found") as info:
        load_torchvision_dataset("mnist", tmp_path)
    assert info.value.filename == str(tmp_path) and calls == [False]
    with pytest.raises(ValueError, match="mnist, cifar10"):
        load_torchvision_dataset("svhn", tmp_path)


def test_torchvision_loader_reads_files_when_present(monkeypatch, tmp_path):
    class FakeCIFAR:
        def __init__(self, root, train, download):
            n = 6 if train else 4
            self.data = np.full((n, 32, 32, 3), 255, dtype=np.uint8)
            self.data[:, :, :, 0] = 0
            self.targets = list(range(n))

    fake = types.ModuleType("torchvision.datasets")
    fake.CIFAR10 = FakeCIFAR
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    d = load_torchvision_dataset("cifar10", tmp_path, limit_train=5)
    assert d.image_shape == (3, 32, 32) and d.n_train == 5 and d.n_test == 4
    img = d.train[0].reshape(3, 32, 32)
    assert np.all(img[0] == -1.0) and np.all(img[1:] == 1.0)  # channels first after the transpose


def test_fit_gaussian_eigenbasis():
    d = load_digits_dataset()
    fit = fit_gaussian(d.train)
    x = d.train
    cov = (x - x.mean(0)).T @ (x - x.mean(0)) / x.shape[0]
    np.testing.assert_allclose(fit.covariance, cov, atol=1e-13)
    u = fit.basis
    np.testing.assert_allclose(u.T @ u, np.eye(64), atol=1e-12)
    np.testing.assert_allclose((u * fit.lam) @ u.T, cov, atol=1e-12)
    assert np.all(np.diff(fit.lam) <= 0) and np.all(fit.lam >= 0)
    c = fit.to_eigen(x)
    np.testing.assert_allclose(fit.from_eigen(c), x, atol=1e-12)
    np.testing.assert_allclose(np.var(c, axis=0), fit.lam, atol=1e-12)
    with pytest.raises(ValueError):
        ImageDataset(train=x, test=x[:3], image_shape=(7, 7), name="bad")
