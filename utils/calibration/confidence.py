"""Confidence of softmax probabilities, and whether predictions are correct.

The CNN outputs softmax probabilities ``probs`` of shape (..., C) over the
C = 8 classes of :mod:`utils.study`; a confidence is one number in [0, 1] per
prediction. :func:`calibrated_confidence` (in :mod:`utils.calibration.calibrators`)
maps these through a fitted calibrator.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from utils.study import N_CLASSES

_SHANNON_EPS = 1e-6


def as_probs(probs: ArrayLike) -> np.ndarray:
    """Finite probabilities (..., C) as float64 with C >= 2; raises ValueError otherwise."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"probabilities must have a class axis of size >= 2, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or inf")
    return p


def as_labels(labels: ArrayLike, probs: np.ndarray) -> np.ndarray:
    """Integer labels of shape probs.shape[:-1] (one-hot labels are accepted)."""
    y = np.asarray(labels)
    if y.shape == probs.shape:
        y = y.argmax(axis=-1)
    if y.shape != probs.shape[:-1]:
        raise ValueError(f"labels have shape {y.shape}, expected {probs.shape[:-1]}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("labels must be integer class indices")
        y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= probs.shape[-1]):
        raise ValueError(f"labels must lie in 0..{probs.shape[-1] - 1}")
    return y


def max_confidence(probs: ArrayLike) -> np.ndarray:
    """Max-probability confidence: probs (..., C) -> (...,) float64."""
    return as_probs(probs).max(axis=-1)


def shannon_confidence(probs: ArrayLike, n_classes: int = N_CLASSES) -> np.ndarray:
    """Entropy confidence ``1 - H(p) / log C``: probs (..., C) -> (...,) float64.

    Probabilities are clipped to [1e-6, 1 - 1e-6] before the entropy, so a
    one-hot vector gives a value slightly below 1 and a uniform one gives 0.
    ``n_classes`` (C, default 8) must equal the size of the class axis.
    """
    p = as_probs(probs)
    if p.shape[-1] != n_classes:
        raise ValueError(f"probabilities have {p.shape[-1]} classes, expected {n_classes}")
    q = np.clip(p, _SHANNON_EPS, 1.0 - _SHANNON_EPS)
    entropy = -np.sum(q * np.log(q), axis=-1)
    return 1.0 - entropy / math.log(n_classes)


def correctness(probs: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Whether the arg-max class equals the label: (..., C), (...) -> bool (...)."""
    p = as_probs(probs)
    return p.argmax(axis=-1) == as_labels(labels, p)
