"""Tests of utils.calibration.confidence and the one calibrated confidence."""

from __future__ import annotations

import numpy as np
import pytest

from utils.calibration import (
    TemperatureCalibrator,
    calibrated_confidence,
    correctness,
    max_confidence,
    shannon_confidence,
)
from utils.study import N_CLASSES


def test_max_and_shannon_confidence() -> None:
    one_hot = np.eye(N_CLASSES)[[0, 3, 7]]
    uniform = np.full((2, N_CLASSES), 1.0 / N_CLASSES)
    assert np.allclose(shannon_confidence(one_hot), 1.0, atol=1e-4)
    assert np.all(shannon_confidence(one_hot) < 1.0)  # clipping at 1e-6
    assert np.allclose(shannon_confidence(uniform), 0.0, atol=1e-12)
    probs = np.array([[0.5, 0.3, 0.2, 0, 0, 0, 0, 0]])
    assert max_confidence(probs)[0] == 0.5
    s = shannon_confidence(probs)[0]
    q = np.clip(probs[0], 1e-6, 1 - 1e-6)
    assert s == pytest.approx(1 + np.sum(q * np.log(q)) / np.log(8), abs=1e-12)
    # works on maps (H, W, C)
    assert shannon_confidence(np.broadcast_to(uniform[0], (3, 4, N_CLASSES))).shape == (3, 4)
    with pytest.raises(ValueError, match="classes"):
        shannon_confidence(np.full((1, 4), 0.25))


def test_calibrated_confidence_max_probability_and_calibrated() -> None:
    """The one confidence of maps and reports: max probability or the calibrator's, clipped."""
    probs = np.array([[0.7, 0.3] + [0] * 6, [0.2, 0.5, 0.3] + [0] * 5], np.float32)
    conf = calibrated_confidence(probs)
    assert conf.dtype == np.float32 and conf.shape == (2,)
    np.testing.assert_allclose(conf, [0.7, 0.5])

    class Cal:
        def calibrate(self, p):
            return np.array([1.5, -0.2])

    np.testing.assert_allclose(calibrated_confidence(probs, Cal()), [1.0, 0.0])


def test_calibrated_confidence_edge_cases() -> None:
    empty = calibrated_confidence(np.empty((0, N_CLASSES), np.float32), TemperatureCalibrator(2))
    assert empty.shape == (0,) and empty.dtype == np.float32
    nan = np.full((2, N_CLASSES), 1 / N_CLASSES, np.float32)
    nan[0] = np.nan
    assert calibrated_confidence(nan).tolist() == [0.0, np.float32(1 / N_CLASSES)]
    # maps (H, W, C) -> (H, W), a real calibrator, float64 input
    probs = np.random.default_rng(0).dirichlet(np.ones(N_CLASSES), size=(3, 4))
    cal = TemperatureCalibrator(2.0)
    out = calibrated_confidence(probs, cal)
    assert out.shape == (3, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, cal.calibrate(probs.astype(np.float32)), rtol=1e-6)
    assert np.array_equal(calibrated_confidence(probs), max_confidence(probs).astype(np.float32))
    with pytest.raises(ValueError, match="class axis"):
        calibrated_confidence(np.float32(0.5))


def test_correctness_one_hot_labels() -> None:
    probs = np.eye(N_CLASSES)[[1, 2, 3]]
    assert correctness(probs, [1, 0, 3]).tolist() == [True, False, True]
    assert correctness(probs, np.eye(N_CLASSES)[[1, 0, 3]]).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="labels must lie"):
        correctness(probs, [1, 0, 8])
