"""Sample metrics on known cases: Fréchet distance, classifier score, coverage, memorisation, the classifier."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

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


def _psd_sqrt(c):
    """Symmetric square root of a PSD matrix by its eigendecomposition (negative rounding clipped)."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _fd_reference(x, y):
    """Fréchet distance by the symmetric route tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), independent of sqrtm(C1 C2)."""
    m1, m2 = x.mean(0), y.mean(0)
    c1, c2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    r1 = _psd_sqrt(c1)
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(_psd_sqrt(r1 @ c2 @ r1)))


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


def test_frechet_matches_the_symmetric_sqrtm_route_on_known_gaussians():
    rng = np.random.default_rng(3)
    for d in (1, 3, 10):
        c1, c2 = _random_cov(rng, d), _random_cov(rng, d)
        m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
        r1 = scipy.linalg.sqrtm(c1)
        expected = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2.0 * np.real(scipy.linalg.sqrtm(r1 @ c2 @ r1)))
        assert frechet_distance(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-9)
    # commuting covariances with a known root: C1 = diag(4, 9), C2 = diag(1, 1) -> tr = 13 + 2 - 2 (2 + 3) = 5
    assert frechet_distance([1.0, 0.0], np.diag([4.0, 9.0]), [0.0, 0.0], np.eye(2)) == pytest.approx(1.0 + 5.0, rel=1e-12)


def test_memorization_on_a_planted_line():
    # training points at 0, 10, 20, 30; held-out points at 5, 15, 25 (1-D): every distance is known
    train = np.array([[0.0], [10.0], [20.0], [30.0]])
    test = np.array([[5.0], [15.0], [25.0]])
    samples = np.array([[1.0], [2.0], [10.5], [14.0]])
    # d_train = 1, 2, 0.5, 4 ; d_test = 4, 3, 4.5, 1 -> ratios 0.25, 2/3, 1/9, 4
    m = memorization(samples, train, test, factor=3.0)
    assert m["fraction"] == pytest.approx(0.5)  # 0.25 and 1/9 are below 1/3
    assert m["median_ratio"] == pytest.approx((0.25 + 2.0 / 3.0) / 2, rel=1e-12)
    assert m["median_train_distance"] == pytest.approx(1.5) and m["median_test_distance"] == pytest.approx(3.5)
    assert m["exact_copies"] == 0.0
    # held-out points: 5 from a training point, 10 from the other held-out points -> ratio 0.5 each
    assert m["baseline_median_ratio"] == pytest.approx(0.5) and m["baseline_fraction"] == 0.0
    # the threshold 1/factor: 2/3 is below 1/1.2 but not below 1/1.6
    assert memorization(samples, train, test, factor=1.2)["fraction"] == pytest.approx(0.75)
    assert memorization(samples, train, test, factor=1.6)["fraction"] == pytest.approx(0.5)


def test_coverage_on_planted_shares():
    # 100 predictions: class 0 gets 50, 1 gets 30, 2 gets 19, 3 gets 1 (of 5 classes)
    preds = np.array([0] * 50 + [1] * 30 + [2] * 19 + [3])
    assert class_coverage(preds, 5, min_share=0.01) == pytest.approx(4 / 5)  # a share of exactly 1 % counts
    assert class_coverage(preds, 5, min_share=0.19) == pytest.approx(3 / 5)
    assert class_coverage(preds, 5, min_share=0.2) == pytest.approx(2 / 5)


def test_classifier_score_on_a_constructed_mixture():
    # half the rows certain of class 0, half uniform over 4 classes:
    # p(y) = (5/8, 1/8, 1/8, 1/8); KL(e_0 || p) = log(8/5), KL(uniform || p) = 1/4 log(2/5) + 3/4 log 2
    rows = np.vstack([np.tile([1.0, 0.0, 0.0, 0.0], (6, 1)), np.full((6, 4), 0.25)])
    expected = np.exp(0.5 * np.log(8 / 5) + 0.5 * (0.25 * np.log(0.25 / (5 / 8)) + 0.75 * np.log(0.25 / (1 / 8))))
    assert classifier_score(rows) == pytest.approx(expected, rel=1e-12)


def test_digits_classifier_accuracy_cache_and_metrics(tmp_path):
    d = load_digits_dataset()
    cfg = ClassifierConfig(epochs=30)
    model, info = load_or_train_classifier(d, tmp_path, cfg)
    assert info["test_accuracy"] > 0.95 and not info["cached"]
    again, info2 = load_or_train_classifier(d, tmp_path, cfg)
    assert info2["cached"] and info2["test_accuracy"] == info["test_accuracy"]
    np.testing.assert_array_equal(again.predict(d.test)["probs"], model.predict(d.test)["probs"])
    stored = torch.load(info["path"], weights_only=True)
    assert stored["provenance"]["device"] == "cpu" and stored["provenance"]["config"] == cfg.to_dict()
    m = evaluate_samples(d.test, d, model, references={"self": d.test})
    assert m["fd_pixels_self"] == pytest.approx(0.0, abs=1e-8) and m["fd_features_self"] == pytest.approx(0.0, abs=1e-6)
    assert m["memorization"]["fraction"] == 0.0


def test_evaluate_samples_values_by_an_independent_route(tmp_path):
    d = load_digits_dataset()
    model, _ = load_or_train_classifier(d, tmp_path, ClassifierConfig(epochs=5))
    # planted samples: 40 copies of training images (memorised) and 60 held-out images (not)
    samples = np.concatenate([d.train[:40], d.test[:60]])
    m = evaluate_samples(samples, d, model)
    with torch.no_grad():
        t = torch.tensor(samples, dtype=torch.float32)
        feats = model.body(t).double().numpy()
        probs = torch.softmax(model.head(model.body(t)).double(), dim=1).numpy()
        test_feats = model.body(torch.tensor(d.test, dtype=torch.float32)).double().numpy()
        train_feats = model.body(torch.tensor(d.train, dtype=torch.float32)).double().numpy()
    assert m["n"] == 100
    assert m["fd_pixels_test"] == pytest.approx(_fd_reference(samples, d.test), rel=1e-6)
    assert m["fd_pixels_train"] == pytest.approx(_fd_reference(samples, d.train), rel=1e-6)
    assert m["fd_features_test"] == pytest.approx(_fd_reference(feats, test_feats), rel=1e-6)
    assert m["fd_features_train"] == pytest.approx(_fd_reference(feats, train_feats), rel=1e-6)
    marginal = probs.mean(0)
    kl = np.sum(np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1.0) / marginal), 0.0), axis=1)
    assert m["classifier_score"] == pytest.approx(float(np.exp(kl.mean())), rel=1e-9)
    labels = probs.argmax(1)
    histogram = np.array([np.sum(labels == k) for k in range(10)]) / 100
    np.testing.assert_allclose(m["class_histogram"], histogram, atol=0)
    assert m["coverage"] == pytest.approx(np.mean(histogram >= 0.02))
    assert m["mean_confidence"] == pytest.approx(float(probs.max(1).mean()), rel=1e-12)
    assert m["memorization"]["fraction"] == pytest.approx(0.4) and m["memorization"]["exact_copies"] == pytest.approx(0.4)
    assert m["value_range"] == [float(samples.min()), float(samples.max())]


@pytest.mark.parametrize("damage", [b"", b"\x80\x02garbage", None])
def test_a_damaged_classifier_cache_is_retrained_with_a_warning(tmp_path, capsys, damage):
    d = load_digits_dataset()
    cfg = ClassifierConfig(epochs=2)
    _, info = load_or_train_classifier(d, tmp_path, cfg)
    path = info["path"]
    if damage is None:  # truncated: the first half of a real file
        raw = open(path, "rb").read()
        damage = raw[: len(raw) // 2]
    with open(path, "wb") as fh:
        fh.write(damage)
    capsys.readouterr()
    _, again = load_or_train_classifier(d, tmp_path, cfg)
    err = capsys.readouterr().err
    assert not again["cached"] and again["test_accuracy"] == info["test_accuracy"]
    assert "classifier cache" in err and "retraining" in err and "Traceback" not in err
    # the retrained file replaced the damaged one and is read back next time
    _, third = load_or_train_classifier(d, tmp_path, cfg)
    assert third["cached"]
