"""Fixtures of the calibration tests: synthetic predictions, error checks, the study's pickles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from utils.calibration import CalibrationError, load_calibrator
from utils.study import N_CLASSES


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _synthetic(n: int, sharpness: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); reported probs softmax(sharpness * z).

    sharpness > 1 gives over-confident, < 1 under-confident predictions, with
    the true accuracy a known function of the logits (temperature = sharpness).
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, N_CLASSES)) * 2.0
    q = _softmax(z)
    labels = np.minimum((q.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1), N_CLASSES - 1)
    return _softmax(sharpness * z), labels


def _expect_error(path: Path, match: str) -> CalibrationError:
    with pytest.raises(CalibrationError, match=match) as info:
        load_calibrator(path)
    assert path.name in str(info.value)
    return info.value


@pytest.fixture
def synthetic() -> Callable[[int, float, int], tuple[np.ndarray, np.ndarray]]:
    """``synthetic(n, sharpness, seed)`` -> probs (n, 8), labels (n,)."""
    return _synthetic


@pytest.fixture
def expect_error() -> Callable[[Path, str], CalibrationError]:
    """``expect_error(path, match)``: load_calibrator(path) fails naming the file."""
    return _expect_error
