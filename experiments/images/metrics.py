r"""Sample-quality metrics that need no download: a classifier trained here, Fréchet distances,
classifier score, class coverage and a nearest-neighbour memorisation check.

* **Fréchet distance** (the FID formula, here on pixels or on the classifier's penultimate features):

  .. math:: \mathrm{FD} = \|\mu_1 - \mu_2\|^2 + \operatorname{tr}\big(C_1 + C_2 - 2 (C_1 C_2)^{1/2}\big),

  the squared W2 distance between the Gaussians fitted to the two samples (means, covariances with
  :math:`1/(n-1)`); :math:`(C_1C_2)^{1/2}` by :func:`scipy.linalg.sqrtm`, its imaginary part (rounding)
  dropped; when it is not finite, :math:`\epsilon I` (:math:`\epsilon = 10^{-6}`) is added to both
  covariances first, as pytorch-fid does.
* **Classifier score** (IS-like): :math:`\exp\big(\mathbb E_x \mathrm{KL}(p(y|x)\,\|\,p(y))\big)` with
  :math:`p(y) = \mathbb E_x p(y|x)`, between 1 (all samples alike, or all uncertain) and the number of
  classes (confident and balanced).
* **Class coverage**: the fraction of classes that receive at least ``min_share`` (default 2 %, a
  fifth of the fair share of 10 classes) of the samples' arg-max predictions.
* **Memorisation** (:func:`memorization`): for every sample :math:`x`, :math:`d_\text{train}` = distance
  to its nearest training image and :math:`d_\text{test}` = distance to its nearest held-out image; the
  ratio :math:`\rho = d_\text{train}/d_\text{test}`. A sample is *memorised* when :math:`\rho < 1/\text{factor}`
  (default factor 3): it sits much closer to one training image than anything new does (a copy has
  :math:`\rho = 0`). Because the training set is larger than the test set, :math:`\rho` is somewhat below
  1 even for a model that generalises; the **baseline** is the same statistic for held-out images
  themselves (each test image against the training set and the *other* test images, leave-one-out).
* **Classifier** (:class:`ImageClassifier`): an MLP on the pixels, ``dim -> 256 -> 64 -> classes`` (ReLU),
  trained with Adam on the training split with light Gaussian input noise (so that slightly noisy
  samples are read sensibly), seeded; saved/loaded like a checkpoint (:func:`load_or_train_classifier`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
import scipy.linalg
import torch
from torch import nn

from opmerge.errors import InputError
from opmerge.io import load_torch, provenance

from .._torch import to_numpy
from ._records import device_label
from .checkpoints import save_checkpoint_atomic
from .data import ImageDataset

__all__ = [
    "frechet_distance",
    "frechet_from_samples",
    "classifier_score",
    "class_coverage",
    "memorization",
    "ClassifierConfig",
    "ImageClassifier",
    "train_classifier",
    "load_or_train_classifier",
    "evaluate_samples",
]


# =============================================================================================
# Fréchet distance
# =============================================================================================


def frechet_distance(mean1: ArrayLike, cov1: ArrayLike, mean2: ArrayLike, cov2: ArrayLike, eps: float = 1e-6) -> float:
    r"""Fréchet distance :math:`\|\mu_1-\mu_2\|^2 + \operatorname{tr}(C_1 + C_2 - 2(C_1C_2)^{1/2})` (squared W2 of Gaussians).

    Parameters
    ----------
    mean1, mean2 : arrays (d,)
    cov1, cov2 : arrays (d, d), symmetric positive semi-definite
    eps : float
        Added to the diagonals when :math:`(C_1 C_2)^{1/2}` comes out non-finite (singular product).
    """
    m1, m2 = np.atleast_1d(np.asarray(mean1, dtype=np.float64)), np.atleast_1d(np.asarray(mean2, dtype=np.float64))
    c1, c2 = np.atleast_2d(np.asarray(cov1, dtype=np.float64)), np.atleast_2d(np.asarray(cov2, dtype=np.float64))
    if m1.shape != m2.shape or c1.shape != c2.shape or c1.shape != (m1.size, m1.size):
        raise InputError(f"means (d,) and covariances (d, d) must agree, got {m1.shape}, {c1.shape}, {m2.shape}, {c2.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # singular products (constant pixels) are expected
        root = scipy.linalg.sqrtm(c1 @ c2)
        if not np.all(np.isfinite(root)):
            offset = eps * np.eye(m1.size)
            root = scipy.linalg.sqrtm((c1 + offset) @ (c2 + offset))
    root = np.real(root)
    value = float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(root))
    return max(value, 0.0)


def _moments(x) -> tuple[np.ndarray, np.ndarray]:
    arr = to_numpy(x)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise InputError(f"samples must be a 2-D array with >= 2 rows, got shape {arr.shape}")
    return arr.mean(0), np.atleast_2d(np.cov(arr, rowvar=False))


def frechet_from_samples(x: ArrayLike | torch.Tensor, y: ArrayLike | torch.Tensor) -> float:
    r"""Fréchet distance between the Gaussians fitted to two samples (:func:`frechet_distance` of their moments).

    Parameters
    ----------
    x, y : array-like or tensor (n, d), (m, d)
        Rows are samples, ``n, m >= 2``; covariances with :math:`1/(n-1)`.

    Returns
    -------
    float
    """
    m1, c1 = _moments(x)
    m2, c2 = _moments(y)
    return frechet_distance(m1, c1, m2, c2)


# =============================================================================================
# classifier-based scores
# =============================================================================================


def classifier_score(probs: ArrayLike) -> float:
    r"""IS-like classifier score of a set of class-probability rows,

    .. math:: \exp\Big(\frac1n\sum_b \mathrm{KL}(p_b \,\|\, \bar p)\Big),\qquad \bar p = \frac1n\sum_b p_b .

    Parameters
    ----------
    probs : array-like (n, classes)
        Rows of probabilities (``>= 0``, summing to 1).

    Returns
    -------
    float
        Between 1 (all rows alike, or all uniform) and the number of classes (confident and balanced).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or np.any(p < 0) or not np.allclose(p.sum(1), 1.0, atol=1e-6):
        raise InputError("probs must be a 2-D array of rows of class probabilities (>= 0, summing to 1)")
    marginal = p.mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(np.where(marginal > 0, marginal, 1.0))[None, :]), 0.0)
    return float(np.exp(np.mean(terms.sum(1))))


def class_coverage(predictions: ArrayLike, n_classes: int, min_share: float = 0.02) -> float:
    r"""Fraction of the ``n_classes`` classes that get at least ``min_share`` of the arg-max ``predictions``.

    Parameters
    ----------
    predictions : array-like of int
        Predicted class per sample.
    n_classes : int
        Number of classes (``>= 1``).
    min_share : float
        Share of the samples a class needs, in ``(0, 1]`` (a class with exactly ``min_share`` counts).

    Returns
    -------
    float
    """
    pred = np.asarray(predictions).reshape(-1)
    if not 0.0 < min_share <= 1.0:
        raise InputError(f"min_share must be in (0, 1], got {min_share!r}")
    if n_classes < 1 or pred.size == 0:
        raise InputError("need n_classes >= 1 and at least one prediction")
    shares = np.bincount(pred.astype(np.int64), minlength=n_classes)[:n_classes] / pred.size
    return float(np.mean(shares >= min_share))


def _nearest(x: np.ndarray, ref: np.ndarray, batch: int = 2048) -> np.ndarray:
    ref_sq = np.sum(ref**2, 1)
    out = np.empty(x.shape[0])
    for k in range(0, x.shape[0], batch):
        xb = x[k:k + batch]
        d2 = np.sum(xb**2, 1)[:, None] + ref_sq[None, :] - 2.0 * xb @ ref.T
        out[k:k + batch] = np.sqrt(np.clip(d2.min(1), 0.0, None))
    return out


def memorization(samples: ArrayLike | torch.Tensor, train: ArrayLike | torch.Tensor, test: ArrayLike | torch.Tensor,
                 factor: float = 3.0, seed: int = 0) -> dict:
    r"""Nearest-neighbour memorisation check (module docstring): ratio :math:`\rho = d_\text{train}/d_\text{test}` per sample.

    Parameters
    ----------
    samples : array-like or tensor (n, d)
    train : array-like or tensor (n_train, d)
        Training images (``>= 1``).
    test : array-like or tensor (n_test, d)
        Held-out images (``>= 2``, for the leave-one-out baseline).
    factor : float
        A sample is memorised when :math:`\rho < 1/\text{factor}` (``factor > 1``).
    seed : int
        Unused (the check is deterministic).

    Returns
    -------
    dict
        ``fraction`` (share of samples with :math:`\rho < 1/\text{factor}`), ``median_ratio``,
        ``ratio_quantiles`` (5, 25, 50, 75, 95 %), ``median_train_distance``, ``median_test_distance``,
        ``exact_copies`` (share with :math:`d_\text{train} < 10^{-6}`), ``baseline_median_ratio`` and
        ``baseline_fraction`` (held-out images, leave-one-out), ``factor``. ``seed`` is unused (kept for
        a stable signature; the check is deterministic).
    """
    x, tr, te = to_numpy(samples), to_numpy(train), to_numpy(test)
    if not factor > 1.0:
        raise InputError(f"factor must be > 1, got {factor!r}")
    if te.shape[0] < 2 or tr.shape[0] < 1:
        raise InputError("need >= 2 test images and >= 1 training image")
    d_train, d_test = _nearest(x, tr), _nearest(x, te)
    ratio = d_train / np.maximum(d_test, 1e-300)
    te_sq = np.sum(te**2, 1)
    d2 = te_sq[:, None] + te_sq[None, :] - 2.0 * te @ te.T
    np.fill_diagonal(d2, np.inf)
    base = _nearest(te, tr) / np.maximum(np.sqrt(np.clip(d2.min(1), 0.0, None)), 1e-300)
    return {
        "factor": float(factor),
        "fraction": float(np.mean(ratio < 1.0 / factor)),
        "median_ratio": float(np.median(ratio)),
        "ratio_quantiles": {str(q): float(np.quantile(ratio, q / 100)) for q in (5, 25, 50, 75, 95)},
        "median_train_distance": float(np.median(d_train)),
        "median_test_distance": float(np.median(d_test)),
        "exact_copies": float(np.mean(d_train < 1e-6)),
        "baseline_median_ratio": float(np.median(base)),
        "baseline_fraction": float(np.mean(base < 1.0 / factor)),
    }


# =============================================================================================
# classifier
# =============================================================================================


@dataclass(frozen=True)
class ClassifierConfig:
    """Training of the metrics classifier: widths, epochs, batch, Adam step size, weight decay, input noise, seed."""

    hidden: int = 256
    features: int = 64
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    input_noise: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return asdict(self)


class ImageClassifier(nn.Module):
    r"""MLP ``dim -> hidden -> features -> classes`` with ReLU; :meth:`features` is the penultimate layer."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 256, features: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, features), nn.ReLU())
        self.head = nn.Linear(features, n_classes)
        self.dim, self.n_classes = int(dim), int(n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (the feature space of the FID-like distance).

        Parameters
        ----------
        x : tensor (n, dim)
        """
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Parameters
        ----------
        x : tensor (n, dim)
        """
        return self.head(self.body(x))

    @torch.no_grad()
    def predict(self, x: ArrayLike | torch.Tensor) -> dict:
        """Predictions for the rows of ``x`` (run in float32, returned as float64).

        Parameters
        ----------
        x : array-like or tensor (n, dim)

        Returns
        -------
        dict
            ``probs`` (n, classes), ``labels`` (n,), ``features`` (n, features).
        """
        t = torch.tensor(np.array(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x), dtype=torch.float32)
        self.eval()
        feats = self.features(t)
        probs = torch.softmax(self.head(feats).double(), dim=1)
        return {"probs": probs.numpy(), "labels": probs.argmax(1).numpy(), "features": feats.double().numpy()}

    def accuracy(self, x: ArrayLike | torch.Tensor, labels: ArrayLike) -> float:
        """Share of correct arg-max predictions.

        Parameters
        ----------
        x : array-like or tensor (n, dim)
        labels : array-like (n,)
        """
        return float(np.mean(self.predict(x)["labels"] == np.asarray(labels)))


def train_classifier(dataset: ImageDataset, config: ClassifierConfig = ClassifierConfig()) -> ImageClassifier:
    r"""Train :class:`ImageClassifier` on ``dataset.train`` (CPU, float32, one seeded generator).

    Every epoch visits the training rows in a seeded random order; inputs get Gaussian noise of
    standard deviation ``input_noise``; loss: cross-entropy; Adam with weight decay.

    Parameters
    ----------
    dataset : ImageDataset
        Labelled data (``dataset.has_labels``).
    config : ClassifierConfig

    Returns
    -------
    ImageClassifier
        In eval mode.
    """
    if not dataset.has_labels:
        raise InputError(f"dataset {dataset.name!r} has no labels: the classifier metrics need labelled data")
    gen = torch.Generator().manual_seed(config.seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)  # nn.Linear's default initialisation draws from the global generator
    model = ImageClassifier(dataset.dim, dataset.n_classes, config.hidden, config.features)
    torch.random.set_rng_state(torch_state)
    x = torch.tensor(np.array(dataset.train), dtype=torch.float32)
    y = torch.tensor(np.array(dataset.train_labels), dtype=torch.int64)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = x.shape[0]
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=gen)
        for k in range(0, n, config.batch_size):
            idx = order[k:k + config.batch_size]
            xb = x[idx] + config.input_noise * torch.randn(len(idx), x.shape[1], generator=gen)
            loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


def _classifier_key(dataset: ImageDataset, config: ClassifierConfig) -> str:
    text = json.dumps({"data": dataset.fingerprint(), "config": config.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_or_train_classifier(dataset: ImageDataset, cache_dir: str | os.PathLike | None = None,
                             config: ClassifierConfig = ClassifierConfig()) -> tuple[ImageClassifier, dict]:
    """The classifier for ``dataset`` from ``cache_dir/classifier-<key>.pt``, or trained and saved there.

    Parameters
    ----------
    dataset : ImageDataset
        Labelled data.
    cache_dir : path-like, optional
        Folder of the cache file (``None``: train, do not save). The key hashes the data fingerprint
        and the configuration; the file holds the weights, the configuration, the fingerprint and a
        provenance block, written atomically.
    config : ClassifierConfig

    Returns
    -------
    (ImageClassifier, dict)
        The model and a record: ``test_accuracy``, ``train_accuracy``, ``config``, ``cached`` (bool), ``path``.
    """
    path = None if cache_dir is None else Path(cache_dir) / f"classifier-{_classifier_key(dataset, config)}.pt"
    model = None
    cached = False
    if path is not None and path.is_file():
        try:
            state = load_torch(path, name="classifier cache", required={"model": dict})
            model = ImageClassifier(dataset.dim, dataset.n_classes, config.hidden, config.features)
            model.load_state_dict(state["model"])
            model.eval()
            cached = True
        except (InputError, RuntimeError, KeyError, ValueError) as exc:
            # a damaged or stale cache file is retrained, never trusted and never fatal
            print(f"opmerge: warning: {exc}; retraining the classifier", file=sys.stderr)
            model = None
    if model is None:
        model = train_classifier(dataset, config)
        if path is not None:
            save_checkpoint_atomic({"model": model.state_dict(), "config": config.to_dict(), "data": dataset.fingerprint(),
                                    "provenance": provenance(device=device_label("cpu"), config=config.to_dict())}, path)
    model.identity = {"config": config.to_dict(), "data": dataset.fingerprint()}
    record = {"test_accuracy": model.accuracy(dataset.test, dataset.test_labels),
              "train_accuracy": model.accuracy(dataset.train, dataset.train_labels),
              "config": config.to_dict(), "cached": cached, "path": None if path is None else str(path)}
    return model, record


def _reference_features(classifier: ImageClassifier, dataset: ImageDataset, split: str) -> np.ndarray:
    """Classifier features of the training or test images, cached on the classifier per dataset fingerprint."""
    cache = classifier.__dict__.setdefault("_reference_features", {})
    key = (dataset.fingerprint(), split)
    if key not in cache:
        cache[key] = classifier.predict(dataset.train if split == "train" else dataset.test)["features"]
    return cache[key]


def evaluate_samples(samples: ArrayLike | torch.Tensor, dataset: ImageDataset, classifier: ImageClassifier | None = None, references: dict | None = None,
                     min_share: float = 0.02, factor: float = 3.0, seed: int = 0, check_memorization: bool = True) -> dict:
    r"""All sample metrics of one set of samples.

    Pixel Fréchet distance to the held-out images (``fd_pixels_test``) and to the training images
    (``fd_pixels_train``); with a classifier also the feature Fréchet distances, the classifier score,
    class coverage, the class histogram and the mean confidence; the memorisation check (unless
    ``check_memorization=False``); and for every
    named reference sample in ``references`` (e.g. the teacher's samples) ``fd_pixels_<name>`` and
    ``fd_features_<name>``.

    Parameters
    ----------
    samples : array-like or tensor (n, d)
    dataset : ImageDataset
        Supplies the training and held-out images.
    classifier : ImageClassifier, optional
        Enables the feature distances, score, coverage, histogram and confidence.
    references : dict of name -> array (m, d), optional
        Further sample sets to measure the distance to.
    min_share : float
        Coverage threshold (:func:`class_coverage`).
    factor : float
        Memorisation threshold (:func:`memorization`).
    seed : int
        Passed to :func:`memorization`.
    check_memorization : bool
        Run the memorisation check.

    Returns
    -------
    dict
        ``n``, ``fd_pixels_test``, ``fd_pixels_train``, ``fd_pixels_<name>``; with a classifier
        ``fd_features_test``, ``fd_features_train``, ``fd_features_<name>``, ``classifier_score``,
        ``coverage``, ``coverage_min_share``, ``class_histogram``, ``mean_confidence``; ``memorization``;
        ``value_range``.
    """
    x = to_numpy(samples)
    out: dict = {"n": int(x.shape[0]), "fd_pixels_test": frechet_from_samples(x, dataset.test),
                 "fd_pixels_train": frechet_from_samples(x, dataset.train)}
    refs = {k: to_numpy(v) for k, v in (references or {}).items()}
    for name, ref in refs.items():
        out[f"fd_pixels_{name}"] = frechet_from_samples(x, ref)
    if classifier is not None:
        pred = classifier.predict(x)
        out["fd_features_test"] = frechet_from_samples(pred["features"], _reference_features(classifier, dataset, "test"))
        out["fd_features_train"] = frechet_from_samples(pred["features"], _reference_features(classifier, dataset, "train"))
        for name, ref in refs.items():
            out[f"fd_features_{name}"] = frechet_from_samples(pred["features"], classifier.predict(ref)["features"])
        out["classifier_score"] = classifier_score(pred["probs"])
        out["coverage"] = class_coverage(pred["labels"], classifier.n_classes, min_share)
        out["coverage_min_share"] = float(min_share)
        out["class_histogram"] = (np.bincount(pred["labels"], minlength=classifier.n_classes) / x.shape[0]).tolist()
        out["mean_confidence"] = float(np.mean(pred["probs"].max(1)))
    if check_memorization:
        out["memorization"] = memorization(x, dataset.train, dataset.test, factor, seed)
    out["value_range"] = [float(x.min()), float(x.max())]
    return out
