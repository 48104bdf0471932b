"""Tests of utils.calibration.reliability: bins, reliability statistics, ECE."""

from __future__ import annotations

import numpy as np
import pytest

from utils.calibration import (
    Reliability,
    bin_index,
    classwise_ece,
    classwise_reliability,
    correctness,
    ece,
    pool_reliability,
    reliability,
)
from utils.study import N_CLASSES

HAND_CONF = np.array([0.1, 0.2, 0.3, 0.55, 0.6, 0.9, 1.0, 0.25])
HAND_OK = np.array([0, 1, 0, 1, 1, 1, 1, 0], dtype=bool)


def test_reliability_hand_example() -> None:
    rel = reliability(HAND_CONF, HAND_OK, n_bins=4)
    # bins [0,.25) [.25,.5) [.5,.75) [.75,1); 0.25 is on an edge -> second bin;
    # 1.0 is in no bin (the study's ``conf < upper``)
    assert rel.count.tolist() == [2, 2, 2, 1]
    assert np.allclose(rel.conf, [0.15, 0.275, 0.575, 0.9])
    assert np.allclose(rel.acc, [0.5, 0.0, 1.0, 1.0])
    assert np.allclose(rel.edges, [0, 0.25, 0.5, 0.75, 1.0])
    expected = (2 * 0.35 + 2 * 0.275 + 2 * 0.425 + 1 * 0.1) / 7
    assert ece(rel) == pytest.approx(expected, abs=1e-12)
    assert ece(HAND_CONF, HAND_OK, n_bins=4) == pytest.approx(expected, abs=1e-12)


def test_reliability_empty_bins_and_edges() -> None:
    rel = reliability(HAND_CONF, HAND_OK, n_bins=10)
    assert rel.count.sum() == len(HAND_CONF) - 1  # 1.0 is in no bin
    assert rel.count[4] == 0 and np.isnan(rel.conf[4]) and np.isnan(rel.acc[4])
    assert rel.count[9] == 1  # 0.9
    # ECE by hand over the 6 non-empty bins (each holds its own points)
    per_bin = {1: ([0.1], [0]), 2: ([0.2, 0.25], [1, 0]), 3: ([0.3], [0]), 5: ([0.55], [1]),
               6: ([0.6], [1]), 9: ([0.9], [1])}
    total = sum(len(c) * abs(np.mean(c) - np.mean(a)) for c, a in per_bin.values())
    assert ece(rel) == pytest.approx(total / 7, abs=1e-12)
    assert np.isnan(ece(reliability(np.array([]), np.array([], dtype=bool))))


def test_bin_index_edges() -> None:
    assert bin_index([1.0], 100)[0] == 99
    assert bin_index([1.0], 25)[0] == 24
    assert bin_index([0.0], 10)[0] == 0
    assert bin_index(np.arange(11) / 10, 10).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    assert bin_index([29 / 100], 100)[0] == 29  # exact edges go to the upper bin
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bin_index([1.2], 10)
    with pytest.raises(ValueError):
        bin_index([np.nan], 10)


def test_pooled_equals_concatenated() -> None:
    rng = np.random.default_rng(0)
    conf = rng.random(3000) ** 0.3
    ok = rng.random(3000) < conf
    parts = np.split(np.arange(3000), [500, 1700])
    pooled = pool_reliability(reliability(conf[i], ok[i], 25) for i in parts)
    whole = reliability(conf, ok, 25)
    assert isinstance(pooled, Reliability)
    assert np.array_equal(pooled.count, whole.count)
    m = whole.count > 0
    assert np.allclose(pooled.conf[m], whole.conf[m], rtol=0, atol=1e-12)
    assert np.allclose(pooled.acc[m], whole.acc[m], rtol=0, atol=1e-12)
    assert np.all(np.isnan(pooled.conf[~m]))
    assert ece(pooled) == pytest.approx(ece(whole), abs=1e-12)
    with pytest.raises(ValueError, match="different bins"):
        pool_reliability([reliability(conf, ok, 10), reliability(conf, ok, 20)])


def test_classwise_selection() -> None:
    probs = np.full((6, N_CLASSES), 0.02)
    pred = np.array([2, 2, 5, 2, 5, 0])
    probs[np.arange(6), pred] = [0.9, 0.5, 0.7, 0.95, 0.3, 0.8]
    labels = np.array([2, 1, 5, 2, 4, 0])
    rel = classwise_reliability(probs, labels, 2, n_bins=10)
    assert rel.count.sum() == 3
    assert rel.count[9] == 2 and rel.acc[9] == 1.0  # 0.9 and 0.95, both right
    assert rel.count[5] == 1 and rel.acc[5] == 0.0  # 0.5, wrong
    per_class = classwise_ece(probs, labels, n_bins=10)
    assert per_class.shape == (N_CLASSES,)
    assert per_class[2] == pytest.approx((0.5 + 2 * abs(0.925 - 1)) / 3)
    assert per_class[5] == pytest.approx((0.3 + 0.3) / 2)  # 0.7 right, 0.3 wrong
    assert np.isnan(per_class[1])  # never predicted
    # a replacement confidence is used when given
    rel2 = classwise_reliability(probs, labels, 2, n_bins=10, conf=np.full(6, 0.05))
    assert rel2.count[0] == 3
    assert correctness(probs, labels).tolist() == [True, False, True, True, False, True]



def test_confidence_one_falls_outside_the_last_bin() -> None:
    """As the study (``lower <= conf < upper``): a confidence of exactly 1.0 is in no bin."""
    rel = reliability([0.95, 1.0, 1.0], [False, True, True], n_bins=10)
    assert rel.count.sum() == 1 and rel.count[9] == 1
    assert rel.acc[9] == 0.0
    assert ece([0.95, 1.0, 1.0], [False, True, True], n_bins=10) == pytest.approx(0.95)
    assert np.isnan(ece([1.0], [True], n_bins=10))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability([1.2], [True], n_bins=10)
