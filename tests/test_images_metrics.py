"""Sample metrics on known cases: Fréchet distance, classifier score, coverage, memorisation, the classifier."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from opmerge.experiments.images.data import load_digits_dataset  # noqa: E402
from opmerge.experiments.images.metrics import (  # noqa: E402
    ClassifierConfig,
    class_coverage,
    classifier_score,
    evaluate_samples,
    frechet_distance,
    frechet_from_samples,
    load_or_train_classifier,
    memorization,
)
from opmerge.experiments.readout import gaussian_w2  # noqa: E402

pytestmark = pytest.mark.bridge



def _random_cov(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_identical_shift_and_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6))
    assert frechet_from_samples(x, x) == pytest.approx(0.0, abs=1e-9)
    c = np.array([0.5, -1.0, 2.0, 0.0, 0.25, 1.5])
    assert frechet_from_samples(x + c, x) == pytest.approx(float(c @ c), rel=1e-9)
    # diagonal covariances: sum (sqrt a - sqrt b)^2 + |m1 - m2|^2
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    m1, m2 = rng.standard_normal(5), rng.standard_normal(5)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    # general covariances: the squared Gaussian W2 by the symmetric eigen route
    c1, c2 = _random_cov(rng, 8), _random_cov(rng, 8)
    assert frechet_distance(m1[:1].repeat(8), c1, np.zeros(8), c2) == pytest.approx(
        gaussian_w2(m1[:1].repeat(8), c1, np.zeros(8), c2) ** 2, rel=1e-8)
    # singular covariances (constant pixels) stay finite and exact
    s1, s2 = np.diag([1.0, 0.0, 4.0]), np.diag([0.0, 0.0, 1.0])
    assert frechet_distance(np.zeros(3), s1, np.zeros(3), s2) == pytest.approx(1.0 + 0.0 + 1.0, abs=1e-7)
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(3))


def test_frechet_from_samples_estimates_the_population_value():
    rng = np.random.default_rng(1)
    c1, c2 = _random_cov(rng, 4), _random_cov(rng, 4)
    l1, l2 = np.linalg.cholesky(c1), np.linalg.cholesky(c2)
    x = rng.standard_normal((200_000, 4)) @ l1.T
    y = rng.standard_normal((200_000, 4)) @ l2.T + 1.0
    exact = frechet_distance(np.zeros(4), c1, np.ones(4), c2)
    assert frechet_from_samples(x, y) == pytest.approx(exact, rel=0.02)


def test_classifier_score_and_coverage_known_cases():
    k = 10
    uniform_onehot = np.eye(k)[np.arange(1000) % k]
    assert classifier_score(uniform_onehot) == pytest.approx(k, rel=1e-12)
    assert classifier_score(np.tile(np.eye(k)[3], (50, 1))) == pytest.approx(1.0)
    assert classifier_score(np.full((20, k), 1.0 / k)) == pytest.approx(1.0)
    half = np.eye(k)[np.arange(100) % 2]
    assert classifier_score(half) == pytest.approx(2.0)
    preds = np.array([0] * 50 + [1] * 45 + [2] * 5)
    assert class_coverage(preds, 10, min_share=0.02) == pytest.approx(0.3)
    assert class_coverage(preds, 10, min_share=0.06) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        classifier_score(np.array([[0.5, 0.6]]))


def test_memorization_flags_copies_not_fresh_draws():
    rng = np.random.default_rng(2)
    train, test = rng.standard_normal((800, 10)), rng.standard_normal((200, 10))
    copies = memorization(train[:100] + 1e-9, train, test)
    assert copies["fraction"] == 1.0 and copies["exact_copies"] == 1.0 and copies["median_ratio"] < 1e-6
    fresh = memorization(rng.standard_normal((300, 10)), train, test)
    assert fresh["fraction"] == 0.0 and fresh["exact_copies"] == 0.0
    # fresh draws look like held-out images: same ratio distribution as the leave-one-out baseline
    assert abs(fresh["median_ratio"] - fresh["baseline_median_ratio"]) < 0.1
    near = memorization(train[:100] + 0.05 * rng.standard_normal((100, 10)), train, test)
    assert near["fraction"] == 1.0 and near["exact_copies"] == 0.0


def test_digits_classifier_accuracy_cache_and_metrics(tmp_path):
    d = load_digits_dataset()
    cfg = ClassifierConfig(epochs=30)
    model, info = load_or_train_classifier(d, tmp_path, cfg)
    assert info["test_accuracy"] > 0.95 and not info["cached"]
    again, info2 = load_or_train_classifier(d, tmp_path, cfg)
    assert info2["cached"] and info2["test_accuracy"] == info["test_accuracy"]
    np.testing.assert_array_equal(again.predict(d.test)["probs"], model.predict(d.test)["probs"])
    m = evaluate_samples(d.test, d, model, references={"self": d.test})
    assert m["fd_pixels_self"] == pytest.approx(0.0, abs=1e-8) and m["fd_features_self"] == pytest.approx(0.0, abs=1e-6)
    assert m["classifier_score"] > 8.0 and m["coverage"] == 1.0
    assert m["memorization"]["fraction"] == 0.0
    assert set(m) >= {"fd_pixels_test", "fd_features_test", "fd_features_train", "mean_confidence", "class_histogram"}
