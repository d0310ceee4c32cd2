r"""Image data for the bridge: 8x8 digits (default), ``.npy`` arrays, MNIST / CIFAR-10 on disk.

Every loader returns an :class:`ImageDataset`: train and test arrays of shape ``(n, dim)`` (float64,
one flattened image or latent code per row), the shape of one image, a name and the labels when
there are any. Nothing is ever downloaded.

* ``digits`` (:func:`load_digits_dataset`) — scikit-learn's 8x8 digits (1,797 images, shipped with
  scikit-learn), pixels :math:`p \in \{0..16\}` scaled to :math:`x = p/8 - 1 \in [-1, 1]`;
* a ``.npy`` file (:func:`load_npy_dataset`) — any array of images ``(n, H, W)``, ``(n, C, H, W)``
  or latent codes ``(n, D)`` (bring your own VAE latents); ``uint8`` arrays are scaled by
  :math:`x/127.5 - 1`, float arrays are used as they are;
* ``mnist`` / ``cifar10`` (:func:`load_torchvision_dataset`) — through torchvision (imported
  lazily, ``download=False``) when the files are already under ``root``; a clear error otherwise.

The train/test split of ``digits`` and ``.npy`` data is a seeded permutation
(:func:`split_indices`); MNIST and CIFAR-10 keep their official split.

:func:`fit_gaussian` fits :math:`\mathcal N(\mu, \Sigma)` to the training images (maximum-likelihood
covariance, :math:`1/n`) and its eigenbasis :math:`\Sigma = U \operatorname{diag}(\lambda) U^\top`:
the data of ``docs/theory.md`` §1 for the Gaussian teacher and for the model's prediction.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opmerge.errors import InputError, InputTypeError
from opmerge.io import load_array, show_path

__all__ = [
    "DATASET_NAMES",
    "ImageDataset",
    "GaussianFit",
    "split_indices",
    "load_digits_dataset",
    "load_npy_dataset",
    "load_torchvision_dataset",
    "load_dataset",
    "fit_gaussian",
    "default_data_root",
]

#: named datasets accepted by :func:`load_dataset` (besides a path to a ``.npy`` file)
DATASET_NAMES = ("digits", "mnist", "cifar10")


def _frozen(array: np.ndarray | None, dtype=np.float64) -> np.ndarray | None:
    if array is None:
        return None
    out = np.ascontiguousarray(np.asarray(array, dtype=dtype)).copy()
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class ImageDataset:
    r"""A train/test split of flattened images (or latent codes).

    Parameters
    ----------
    train, test : arrays of shape (n_train, dim), (n_test, dim)
        One flattened image per row, float64 (stored read-only).
    image_shape : tuple of int
        Shape of one image: ``(H, W)`` (grey), ``(C, H, W)`` (colour) or ``(D,)`` (latent codes);
        ``prod(image_shape) == dim``.
    name : str
        ``"digits"``, ``"mnist"``, ``"cifar10"`` or ``"npy:<file name>"``.
    train_labels, test_labels : int arrays of shape (n_train,), (n_test,), optional
        Class labels when the data has them.
    value_range : (float, float) or None
        Range of valid pixel values (``(-1, 1)`` for images), ``None`` for latent codes.
    source : dict
        How the dataset was made (loader, path, split seed and fraction): the configuration that
        reproduces it.
    """

    train: np.ndarray
    test: np.ndarray
    image_shape: tuple
    name: str
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    value_range: tuple | None = (-1.0, 1.0)
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        train, test = _frozen(self.train), _frozen(self.test)
        if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
            raise InputError(f"train and test must be 2-D arrays (n, dim) of the same dim, got {train.shape} and {test.shape}")
        if train.shape[0] < 2 or test.shape[0] < 1:
            raise InputError(f"need >= 2 training rows and >= 1 test row, got {train.shape[0]} and {test.shape[0]}")
        if not (np.all(np.isfinite(train)) and np.all(np.isfinite(test))):
            raise InputError("image data must be finite (no NaN or inf)")
        shape = tuple(int(s) for s in self.image_shape)
        if int(np.prod(shape)) != train.shape[1]:
            raise InputError(f"image_shape {shape} does not match dim = {train.shape[1]}")
        object.__setattr__(self, "train", train)
        object.__setattr__(self, "test", test)
        object.__setattr__(self, "image_shape", shape)
        for label, labels, n in (("train_labels", self.train_labels, train.shape[0]), ("test_labels", self.test_labels, test.shape[0])):
            if labels is not None:
                arr = _frozen(labels, np.int64)
                if arr.shape != (n,):
                    raise InputError(f"{label} must have shape ({n},), got {arr.shape}")
                object.__setattr__(self, label, arr)
        if (self.train_labels is None) != (self.test_labels is None):
            raise InputError("give labels for both train and test, or for neither")
        if self.value_range is not None:
            lo, hi = (float(v) for v in self.value_range)
            if not lo < hi:
                raise InputError(f"value_range must be (lo, hi) with lo < hi, got {self.value_range}")
            object.__setattr__(self, "value_range", (lo, hi))
        object.__setattr__(self, "source", dict(self.source))

    @property
    def dim(self) -> int:
        """Dimension of one flattened image."""
        return int(self.train.shape[1])

    @property
    def n_train(self) -> int:
        """Number of training images."""
        return int(self.train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of held-out images."""
        return int(self.test.shape[0])

    @property
    def has_labels(self) -> bool:
        """Whether class labels are available."""
        return self.train_labels is not None

    @property
    def n_classes(self) -> int:
        """Number of classes (``max label + 1``; 0 without labels)."""
        if self.train_labels is None:
            return 0
        return int(max(self.train_labels.max(), self.test_labels.max())) + 1

    @property
    def is_image(self) -> bool:
        """Whether rows are images that can be tiled into a grid (``(H, W)`` or ``(C, H, W)``)."""
        return len(self.image_shape) in (2, 3)

    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of the train and test arrays: identifies the exact data a checkpoint saw."""
        h = hashlib.sha256()
        for arr in (self.train, self.test):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    def to_dict(self) -> dict:
        """Description without the arrays: name, shapes, sizes, labels, range, source, fingerprint."""
        return {
            "name": self.name, "image_shape": list(self.image_shape), "dim": self.dim, "n_train": self.n_train,
            "n_test": self.n_test, "n_classes": self.n_classes, "value_range": None if self.value_range is None else list(self.value_range),
            "source": dict(self.source), "fingerprint": self.fingerprint(),
        }


def _check_fraction(test_fraction: float) -> float:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.floating)):
        raise InputTypeError(f"test_fraction must be a number in (0, 1), got {type(test_fraction).__name__}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise InputError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    return float(test_fraction)


def split_indices(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""Seeded train/test split of ``n`` rows.

    A permutation :math:`\pi` of ``0..n-1`` from ``numpy.random.default_rng(seed)`` (PCG64, the same
    on every machine); the first :math:`n_{test} = \max(1, \operatorname{round}(f\, n))` entries are
    the test rows, the rest the training rows, each sorted.

    Parameters
    ----------
    n : int
        Number of rows, ``>= 3``.
    test_fraction : float
        :math:`f \in (0, 1)`.
    seed : int

    Returns
    -------
    (train_idx, test_idx) : int arrays
    """
    fraction = _check_fraction(test_fraction)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 3:
        raise InputError(f"n must be an int >= 3, got {n!r}")
    n_test = min(max(1, int(round(fraction * n))), int(n) - 2)
    perm = np.random.default_rng(int(seed)).permutation(int(n))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def load_digits_dataset(test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    r"""scikit-learn's 8x8 digits, pixels scaled by :math:`x = p/8 - 1` (range :math:`[-1, 1]`), seeded split.

    1,797 images of shape (8, 8), labels 0..9; with the default ``test_fraction = 0.2``: 1,438
    training and 359 test images.

    Parameters
    ----------
    test_fraction : float
        Share of held-out images, in ``(0, 1)``.
    seed : int
        Seed of the split (:func:`split_indices`).

    Returns
    -------
    ImageDataset
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64) / 8.0 - 1.0
    y = np.asarray(bunch.target, dtype=np.int64)
    tr, te = split_indices(x.shape[0], test_fraction, seed)
    return ImageDataset(
        train=x[tr], test=x[te], image_shape=(8, 8), name="digits", train_labels=y[tr], test_labels=y[te],
        value_range=(-1.0, 1.0), source={"loader": "digits", "test_fraction": float(test_fraction), "split_seed": int(seed)},
    )


def load_npy_dataset(path: str | os.PathLike, test_fraction: float = 0.2, seed: int = 0, *, labels: str | os.PathLike | None = None,
                     image_shape: tuple | None = None) -> ImageDataset:
    r"""Images or latent codes from a ``.npy`` file, seeded split.

    Parameters
    ----------
    path : path to a ``.npy`` file
        Array of shape ``(n, ...)``: ``(n, D)`` latent codes, ``(n, H, W)`` grey or ``(n, C, H, W)``
        colour images. ``uint8`` values are scaled by :math:`x/127.5 - 1` (value range
        :math:`[-1, 1]`); float values are used unchanged (value range: none for 1-D codes, else
        the observed min/max).
    labels : path to a ``.npy`` file of ``n`` integer labels, optional
    image_shape : tuple, optional
        Override the shape of one row (e.g. ``(4, 8, 8)`` for flattened latents); its product must be
        the row size.

    Returns
    -------
    ImageDataset

    Raises
    ------
    FileNotFoundError
        A missing file (:class:`opmerge.io.MissingFileError`, also an ``InputError``).
    InputError
        A file that :func:`opmerge.io.load_array` refuses (not a ``.npy`` array, pickled objects,
        complex, boolean or non-numeric values, NaN or inf), fewer than 3 rows, images that are all
        the same (zero variance), or bad labels; the message names the file.
    """
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise InputError(f"data file must be a .npy file, got {str(path)!r}")
    # the one validated loader: no pickles; real, finite numbers only (complex and boolean files are refused)
    raw = load_array(path, name="data file", keep_dtype=True)
    if raw.ndim < 2 or raw.shape[0] < 3:
        raise InputError(f"data file {show_path(path)}: expected an array of shape (n >= 3, ...), got {raw.shape}")
    shape = tuple(raw.shape[1:]) if image_shape is None else tuple(int(s) for s in image_shape)
    x = raw.reshape(raw.shape[0], -1)
    if raw.dtype == np.uint8:
        x = x.astype(np.float64) / 127.5 - 1.0
        value_range = (-1.0, 1.0)
    else:
        x = x.astype(np.float64)
        value_range = None if len(shape) == 1 else (float(x.min()), float(x.max()) if x.max() > x.min() else float(x.min()) + 1.0)
    if float(np.max(np.std(x, axis=0))) == 0.0:
        raise InputError(f"data file {show_path(path)}: every image is the same (zero variance); a teacher cannot learn from it")
    y = None
    if labels is not None:
        labels_path = Path(labels)
        y = load_array(labels_path, name="labels file", keep_dtype=True).reshape(-1)
        if y.shape[0] != x.shape[0] or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise InputError(f"labels file {show_path(labels_path)}: expected {x.shape[0]} integer labels >= 0, got shape {y.shape}, dtype {y.dtype}")
    tr, te = split_indices(x.shape[0], test_fraction, seed)
    return ImageDataset(
        train=x[tr], test=x[te], image_shape=shape, name=f"npy:{path.name}",
        train_labels=None if y is None else y[tr], test_labels=None if y is None else y[te], value_range=value_range,
        source={"loader": "npy", "path": str(path), "labels": None if labels is None else str(labels),
                "test_fraction": float(test_fraction), "split_seed": int(seed)},
    )


def default_data_root() -> Path:
    """Folder searched for MNIST/CIFAR-10 files: ``$OPMERGE_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("OPMERGE_DATA", "data"))


_TORCHVISION = {"mnist": ("MNIST", (28, 28)), "cifar10": ("CIFAR10", (3, 32, 32))}


def load_torchvision_dataset(name: str, root: str | os.PathLike | None = None, *, limit_train: int | None = None,
                             limit_test: int | None = None, seed: int = 0) -> ImageDataset:
    r"""MNIST or CIFAR-10 through torchvision, only when the files are already on disk (``download=False``).

    Pixels :math:`p \in \{0..255\}` are scaled by :math:`x = p/127.5 - 1`; MNIST rows have 784 values
    (shape (28, 28)), CIFAR-10 rows 3,072 (shape (3, 32, 32)). The official train/test split is
    kept; ``limit_train`` / ``limit_test`` keep a seeded random subset (rows sorted).

    Parameters
    ----------
    name : {"mnist", "cifar10"}
    root : path-like, optional
        Folder of the torchvision files (default ``$OPMERGE_DATA`` or ``./data``).
    limit_train, limit_test : int, optional
        Keep this many rows (``>= 1``) of each split.
    seed : int
        Seed of the subsets.

    Returns
    -------
    ImageDataset

    Raises
    ------
    ModuleNotFoundError
        torchvision is not installed (it is optional and imported only here).
    FileNotFoundError
        The dataset files are not under ``root`` (``$OPMERGE_DATA`` or ``./data`` by default);
        the message says where torchvision looked. Nothing is downloaded.
    """
    key = str(name).lower()
    if key not in _TORCHVISION:
        raise InputError(f"name must be one of {', '.join(_TORCHVISION)}, got {name!r}")
    cls_name, shape = _TORCHVISION[key]
    root = default_data_root() if root is None else Path(root)
    try:
        datasets = importlib.import_module("torchvision.datasets")
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"the {key} loader needs torchvision, which is not installed (pip install torchvision); "
            "this project never downloads data: put the files under the data root yourself",
            name="torchvision",
        ) from exc
    cls = getattr(datasets, cls_name)
    arrays = {}
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=False)
        except RuntimeError as exc:  # torchvision: "Dataset not found. You can use download=True to download it"
            raise FileNotFoundError(
                2, f"{cls_name} files not found under the data root (torchvision: {' '.join(str(exc).split())}); "
                   f"this project never downloads: place the {cls_name} files there, or set OPMERGE_DATA", str(root),
            ) from exc
        data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
        if key == "cifar10":
            data = np.transpose(np.asarray(data), (0, 3, 1, 2))  # (n, H, W, C) -> (n, C, H, W)
        x = np.asarray(data, dtype=np.float64).reshape(len(data), -1) / 127.5 - 1.0
        y = np.asarray(ds.targets, dtype=np.int64)
        limit = limit_train if train else limit_test
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
                raise InputError(f"limit_train / limit_test must be an int >= 1, got {limit!r}")
            keep = np.sort(np.random.default_rng([int(seed), int(train)]).permutation(x.shape[0])[: int(limit)])
            x, y = x[keep], y[keep]
        arrays[train] = (x, y)
    return ImageDataset(
        train=arrays[True][0], test=arrays[False][0], image_shape=shape, name=key, train_labels=arrays[True][1],
        test_labels=arrays[False][1], value_range=(-1.0, 1.0),
        source={"loader": "torchvision", "name": key, "root": str(root), "limit_train": limit_train, "limit_test": limit_test,
                "split_seed": int(seed)},
    )


def load_dataset(spec: str | os.PathLike = "digits", *, test_fraction: float = 0.2, seed: int = 0,
                 root: str | os.PathLike | None = None) -> ImageDataset:
    """Dataset from a short spec: ``"digits"``, ``"mnist"``, ``"cifar10"`` or a path to a ``.npy`` file.

    Parameters
    ----------
    spec : str or path-like
        ``"digits"``, ``"mnist"``, ``"cifar10"`` or a ``.npy`` path.
    test_fraction, seed : float, int
        The split of ``digits`` and ``.npy`` data (:func:`split_indices`).
    root : path-like, optional
        Folder of the torchvision files (see :func:`load_torchvision_dataset`).

    Returns
    -------
    ImageDataset
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("data must be 'digits', 'mnist', 'cifar10' or a path to a .npy file")
    key = spec.strip()
    if key.lower() == "digits":
        return load_digits_dataset(test_fraction, seed)
    if key.lower() in _TORCHVISION:
        return load_torchvision_dataset(key.lower(), root, seed=seed)
    if key.lower().endswith(".npy"):
        return load_npy_dataset(key, test_fraction, seed)
    raise InputError(f"data must be one of {', '.join(DATASET_NAMES)} or a path to a .npy file, got {spec!r}")


@dataclass(frozen=True, eq=False)
class GaussianFit:
    r"""The Gaussian :math:`\mathcal N(\mu, \Sigma)` fitted to training images, with its eigenbasis.

    Attributes
    ----------
    mean : (dim,)                :math:`\mu = \frac1n \sum_b x_b`
    covariance : (dim, dim)      :math:`\Sigma = \frac1n \sum_b (x_b - \mu)(x_b - \mu)^\top` (maximum likelihood)
    lam : (dim,)                 eigenvalues, descending, clipped at 0 (rounding can make a zero one slightly negative)
    basis : (dim, dim)           orthonormal eigenvectors as columns, :math:`\Sigma = U \operatorname{diag}(\lambda) U^\top`;
                                 each column's entry of largest magnitude is positive (a fixed sign)
    """

    mean: np.ndarray
    covariance: np.ndarray
    lam: np.ndarray
    basis: np.ndarray

    @property
    def dim(self) -> int:
        """Dimension."""
        return int(self.mean.size)

    def to_eigen(self, x: np.ndarray, shift: float = 1.0) -> np.ndarray:
        r"""Centred eigen-coordinates :math:`c = (x - s\mu) U` of row vectors.

        Parameters
        ----------
        x : array-like (n, dim)
        shift : float
            :math:`s`, e.g. :math:`\alpha_n` for a noisy state :math:`z_n`.
        """
        return (np.asarray(x, dtype=np.float64) - shift * self.mean) @ self.basis

    def from_eigen(self, c: np.ndarray, shift: float = 1.0) -> np.ndarray:
        r"""Back from eigen-coordinates: :math:`x = c U^\top + s\mu`.

        Parameters
        ----------
        c : array-like (n, dim)
        shift : float
            :math:`s`.
        """
        return np.asarray(c, dtype=np.float64) @ self.basis.T + shift * self.mean

    def to_dict(self) -> dict:
        """Eigenvalues and summary numbers (no matrices)."""
        return {"dim": self.dim, "lam": self.lam.tolist(), "trace": float(self.lam.sum()),
                "mean_norm": float(np.linalg.norm(self.mean))}


def fit_gaussian(x: np.ndarray) -> GaussianFit:
    r"""Fit :math:`\mathcal N(\mu, \Sigma)` to the rows of ``x`` (maximum-likelihood covariance) and diagonalise it.

    :math:`\Sigma = U \operatorname{diag}(\lambda) U^\top` by ``numpy.linalg.eigh`` of the symmetrised
    matrix; eigenvalues sorted descending and clipped at 0; each eigenvector's largest-magnitude entry
    made positive so the basis is a deterministic function of the data.

    Parameters
    ----------
    x : array-like (n, dim)
        Rows, ``n >= 2``.

    Returns
    -------
    GaussianFit
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise InputError(f"x must be a 2-D array with >= 2 rows, got shape {arr.shape}")
    mean = arr.mean(axis=0)
    centred = arr - mean
    cov = centred.T @ centred / arr.shape[0]
    cov = 0.5 * (cov + cov.T)
    w, v = np.linalg.eigh(cov)
    order = np.argsort(w)[::-1]
    w, v = w[order], v[:, order]
    signs = np.sign(v[np.argmax(np.abs(v), axis=0), np.arange(v.shape[1])])
    signs[signs == 0] = 1.0
    v = v * signs[None, :]
    return GaussianFit(mean=_frozen(mean), covariance=_frozen(cov), lam=_frozen(np.clip(w, 0.0, None)), basis=_frozen(v))
