"""Tests of utils.calibration.calibrators: the calibrator types and their predictions."""

from __future__ import annotations

import numpy as np
import pytest

from utils.calibration import (
    IsotonicCalibrator,
    KernelRidgeCalibrator,
    TemperatureCalibrator,
    fit_calibrator,
    kernel_matrix,
)
from utils.study import N_CLASSES


def test_predict_clip() -> None:
    cal = KernelRidgeCalibrator([[0.5]], [2.0])
    assert cal.predict([0.5], clip=False)[0] == pytest.approx(2.0)
    assert cal.predict([0.5])[0] == 1.0
    neg = KernelRidgeCalibrator([[0.5]], [-1.0])
    assert neg.predict([0.5])[0] == 0.0
    probs = np.full((2, N_CLASSES), 0.0)
    probs[:, 0] = [0.5, 1.0]
    assert np.allclose(cal.calibrate(probs), [1.0, 1.0])
    assert cal.predict(np.full((2, 3), 0.5)).shape == (2, 3)


def test_temperature_and_isotonic_validation() -> None:
    with pytest.raises(ValueError):
        TemperatureCalibrator(0.0)
    with pytest.raises(ValueError):
        IsotonicCalibrator([0.2, 0.1], [0.0, 1.0])
    with pytest.raises(ValueError, match="unknown calibrator kind"):
        fit_calibrator("platt", np.full((2, N_CLASSES), 1 / 8), [0, 1])


def test_kernel_ridge_predict_in_chunks() -> None:
    import utils.calibration.calibrators as cal_mod

    cal = KernelRidgeCalibrator([[0.0], [0.4], [1.0]], [0.1, -0.3, 0.9])
    conf = np.random.default_rng(8).random(cal_mod._PREDICT_CHUNK + 3)
    out = cal.predict(conf, clip=False)
    direct = kernel_matrix(conf[-5:, None], cal.X_fit) @ cal.dual_coef
    assert np.allclose(out[-5:], direct, atol=1e-15)
    assert np.allclose(out[:3], np.exp(-np.abs(conf[:3, None] - cal.X_fit[:, 0])) @ cal.dual_coef)
