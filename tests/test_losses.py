"""Focal loss against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from utils.losses import FocalLoss


def test_focal_loss_hand_values():
    y = np.array([[0, 1, 0], [1, 0, 0]], np.float32)
    p = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]], np.float32)
    loss = FocalLoss(reduction=None)(y, p)
    expected = [-(0.3**2) * math.log(0.7), -(0.5**2) * math.log(0.5)]
    np.testing.assert_allclose(np.asarray(loss), expected, rtol=1e-5)


def test_focal_loss_alpha_and_soft_labels():
    y = np.array([[0.9, 0.1]], np.float32)  # label-smoothed target
    p = np.array([[0.6, 0.4]], np.float32)
    loss = FocalLoss(alpha=[2.0, 0.5], reduction=None)(y, p)
    expected = -(2.0 * 0.9 * 0.4**2 * math.log(0.6) + 0.5 * 0.1 * 0.6**2 * math.log(0.4))
    assert float(np.asarray(loss)[0]) == pytest.approx(expected, rel=1e-5)


def test_focal_loss_clips_zero_probability():
    y = np.array([[1.0, 0.0]], np.float32)
    p = np.array([[0.0, 1.0]], np.float32)
    value = float(np.asarray(FocalLoss(reduction=None)(y, p))[0])
    assert math.isfinite(value)
    assert value == pytest.approx(-math.log(1e-7), rel=1e-3)


def test_confident_correct_prediction_costs_less_than_cross_entropy():
    y = np.array([[0, 1]], np.float32)
    p = np.array([[0.1, 0.9]], np.float32)
    value = float(np.asarray(FocalLoss(reduction=None)(y, p))[0])
    assert value == pytest.approx(0.01 * -math.log(0.9), rel=1e-5)
    assert value < -math.log(0.9)
