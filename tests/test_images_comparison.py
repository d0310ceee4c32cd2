"""The image study's comparison helpers on constructed cases: W2 parts, rank agreement, relative gain errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from opmerge.experiments.images.comparison import (  # noqa: E402
    LAM_FLOOR,
    lam_bin_labels,
    rank_agreement,
    ratio,
    relative_gain_errors,
    w2_parts,
)

pytestmark = pytest.mark.bridge


def test_w2_parts_of_a_shift_and_a_scaling():
    rng = np.random.default_rng(0)
    teacher = rng.standard_normal((4000, 3))
    c = np.array([0.3, -0.4, 1.2])
    shifted = w2_parts(teacher + c, teacher)
    # same covariance: no covariance part; the mean error is the whole distance
    assert shifted["w2_cov"] == pytest.approx(0.0, abs=1e-6)
    assert shifted["w2_full"] == pytest.approx(np.linalg.norm(c), rel=1e-9)
    assert shifted["mean_error"] == pytest.approx(np.linalg.norm(c), rel=1e-12)
    assert shifted["rms_paired"] == pytest.approx(np.linalg.norm(c), rel=1e-12)
    # scaling by 2 about the mean: W2 of the fitted Gaussians = sqrt(tr C) (sqrt(4 C) - sqrt(C) = sqrt(C))
    centred = teacher - teacher.mean(0)
    scaled = w2_parts(2.0 * centred, centred)
    assert scaled["w2_cov"] == pytest.approx(math.sqrt(np.trace(np.cov(centred, rowvar=False))), rel=1e-9)
    assert scaled["w2_full"] == pytest.approx(scaled["w2_cov"], rel=1e-12)
    assert scaled["rms_paired"] == pytest.approx(math.sqrt(np.mean(np.sum(centred**2, 1))), rel=1e-12)


def test_rank_agreement_known_orderings():
    same = rank_agreement([0.1, 0.5, 0.2, 0.9], [1.0, 3.0, 2.0, 4.0])
    assert same["spearman"] == pytest.approx(1.0) and same["kendall"] == pytest.approx(1.0)
    assert same["n"] == 4 and same["winner_agrees"]
    rev = rank_agreement([4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    assert rev["spearman"] == pytest.approx(-1.0) and rev["kendall"] == pytest.approx(-1.0) and not rev["winner_agrees"]
    # one swap among four: Spearman 1 - 6*2/(4*15) = 0.8, Kendall (5 - 1)/6
    swap = rank_agreement([1.0, 2.0, 4.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    assert swap["spearman"] == pytest.approx(0.8) and swap["kendall"] == pytest.approx(4 / 6) and swap["winner_agrees"]
    # non-finite pairs are dropped; below 3 pairs there is no correlation
    few = rank_agreement([1.0, float("nan"), 2.0], [1.0, 5.0, 2.0])
    assert few["n"] == 2 and few["spearman"] is None and few["kendall"] is None and few["winner_agrees"]


def test_relative_gain_errors_by_bin():
    lam = np.array([5e-5, 5e-3, 5e-2, 0.5, 5.0, 7.0])
    predicted = np.array([1.0, 0.5, 0.5, 0.8, 2.0, 1.0])
    measured = np.array([9.0, 0.6, 0.45, 0.8, 1.0, 1.5])
    r = relative_gain_errors(measured, predicted, lam)
    expected = np.abs(measured - predicted) / predicted  # 8, 0.2, 0.1, 0, 0.5, 0.5
    np.testing.assert_allclose(r["per_direction"], expected, rtol=1e-15)
    assert lam[0] <= LAM_FLOOR  # the first direction is left out of the medians
    assert r["median"] == pytest.approx(np.median(expected[1:]))  # 0.2
    labels = lam_bin_labels()
    assert labels == ["[0.0001, 0.01)", "[0.01, 0.1)", "[0.1, 1)", "[1, inf)"]
    assert [r["by_lambda"][k] for k in labels] == pytest.approx([0.2, 0.1, 0.0, 0.5])
    # a zero prediction gives NaN (ratio), never a division error, and an empty bin gives None
    assert np.isnan(ratio([1.0], [0.0])[0])
    sparse = relative_gain_errors(np.array([1.0, 2.0]), np.array([1.0, 1.0]), np.array([0.5, 0.7]))
    assert sparse["by_lambda"]["[1, inf)"] is None and sparse["by_lambda"]["[0.1, 1)"] == pytest.approx(0.5)
