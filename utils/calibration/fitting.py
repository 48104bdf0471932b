"""Fitting calibrators on validation predictions: kernel ridge, isotonic, temperature.

Note on the study's fit: scikit-learn's ``KernelRidge.fit`` treats an array
``alpha`` as one penalty *per target*, not per sample. With a single target and
unequal alphas it uses only ``alpha[0]`` (``zip`` over targets); the study's
first point is the (0, 0) anchor whose alpha is 0, so its published calibrators
interpolate the reliability curve exactly. :func:`fit_kernel_ridge` reproduces
that by default (``alpha_mode="sklearn"``); ``alpha_mode="per_sample"`` solves
``(K + diag(alpha)) c = y``, the per-point ridge the weights were meant for.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from utils.calibration.calibrators import (
    KINDS,
    Calibrator,
    IsotonicCalibrator,
    KernelRidgeCalibrator,
    TemperatureCalibrator,
    kernel_matrix,
    log_probs,
    log_softmax,
)
from utils.calibration.confidence import as_labels, as_probs, correctness
from utils.calibration.reliability import reliability


def _check_conf_correct(conf: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(conf, dtype=np.float64).ravel()
    ok = np.asarray(correct).ravel()
    if c.shape != ok.shape:
        raise ValueError(f"conf has {c.size} values, correct {ok.size}")
    if c.size == 0:
        raise ValueError("no data to fit a calibrator on")
    return c, ok.astype(np.float64)


def kernel_ridge_points(
    conf: ArrayLike, correct: ArrayLike, n_bins: int = 25
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The study's regression data: x (m,), y (m,), alpha (m,) from validation data.

    Points are the anchor (0, 0), the non-empty bins' (mean confidence, accuracy)
    in bin order, and the anchor (1, 1). Weights w = (count / max count)^0.1 (1
    for anchors), alpha = (1 - w) * 1e-2.
    """
    c, ok = _check_conf_correct(conf, correct)
    rel = reliability(c, ok, n_bins)
    m = rel.nonempty
    w = (rel.count[m] / rel.count[m].max()) ** 0.1
    x = np.concatenate([[0.0], rel.conf[m], [1.0]])
    y = np.concatenate([[0.0], rel.acc[m], [1.0]])
    alpha = (1.0 - np.concatenate([[1.0], w, [1.0]])) * 1e-2
    return x, y, alpha


def fit_kernel_ridge_points(
    x: ArrayLike,
    y: ArrayLike,
    alpha: ArrayLike | float = 0.0,
    kernel: str = "laplacian",
    gamma: float | None = None,
    alpha_mode: Literal["sklearn", "per_sample"] = "sklearn",
) -> KernelRidgeCalibrator:
    """Kernel ridge regression of y (m,) on x (m,) with ridge ``alpha`` (scalar or (m,)).

    ``alpha_mode="sklearn"`` does what ``KernelRidge(alpha=alpha).fit(x[:, None], y)``
    does: a scalar, or an array whose values are all equal, is added to the kernel
    diagonal; an array of unequal values counts as one penalty per *target*, so
    with one target only ``alpha[0]`` is used. ``"per_sample"`` solves
    ``(K + diag(alpha)) c = y``.
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), xs.shape).copy()
    if ys.shape != xs.shape or xs.size == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, got {xs.size}, {ys.size}")
    X = xs[:, None]  # noqa: N806
    K = kernel_matrix(X, X, kernel, gamma)  # noqa: N806
    if alpha_mode == "sklearn":
        diag = np.full_like(a, a[0])
    elif alpha_mode == "per_sample":
        diag = a
    else:
        raise ValueError(f"alpha_mode must be 'sklearn' or 'per_sample', got {alpha_mode!r}")
    A = K + np.diag(diag)  # noqa: N806
    from scipy import linalg  # here, not at the top: reading calibrators needs no SciPy

    try:
        dual = linalg.solve(A, ys, assume_a="pos")
    except np.linalg.LinAlgError:
        warnings.warn(
            "singular kernel matrix (repeated confidences?): using least squares",
            stacklevel=2,
        )
        dual = linalg.lstsq(A, ys)[0]
    meta = {"alpha": a.tolist(), "alpha_mode": alpha_mode}
    return KernelRidgeCalibrator(X, dual, kernel=kernel, gamma=gamma, meta=meta)


def fit_kernel_ridge(
    conf: ArrayLike,
    correct: ArrayLike,
    n_bins: int = 25,
    gamma: float | None = None,
    kernel: str = "laplacian",
    alpha_mode: Literal["sklearn", "per_sample"] = "sklearn",
) -> KernelRidgeCalibrator:
    """Fit the study's kernel ridge calibrator on validation confidences (N,) and correctness (N,).

    The regression data are :func:`kernel_ridge_points` (25-bin reliability
    curve plus anchors (0, 0) and (1, 1), alpha = (1 - w) 1e-2). With the default
    ``alpha_mode="sklearn"`` this reproduces the study's
    ``KernelRidge(kernel="laplacian", alpha=alpha).fit``, which uses only
    ``alpha[0]`` = 0 (the (0, 0) anchor), i.e. interpolates the curve exactly;
    ``"per_sample"`` applies the per-point ridge (see :func:`fit_kernel_ridge_points`).
    """
    x, y, alpha = kernel_ridge_points(conf, correct, n_bins)
    cal = fit_kernel_ridge_points(x, y, alpha, kernel=kernel, gamma=gamma, alpha_mode=alpha_mode)
    cal.meta["n_bins"] = int(n_bins)
    return cal


def _pava(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted pool-adjacent-violators: non-decreasing fit of y (n,) with weights w (n,)."""
    n = len(y)
    val = np.empty(n)
    wt = np.empty(n)
    size = np.empty(n, dtype=np.int64)
    top = 0
    for i in range(n):
        v, ww, s = float(y[i]), float(w[i]), 1
        while top > 0 and val[top - 1] > v:
            top -= 1
            tot = wt[top] + ww
            v = (val[top] * wt[top] + v * ww) / tot
            ww = tot
            s += size[top]
        val[top], wt[top], size[top] = v, ww, s
        top += 1
    return np.repeat(val[:top], size[:top])


def fit_isotonic(conf: ArrayLike, correct: ArrayLike) -> IsotonicCalibrator:
    """Isotonic regression of correctness (N,) on confidence (N,); stores compact breakpoints."""
    c, ok = _check_conf_correct(conf, correct)
    if not np.all(np.isfinite(c)):
        raise ValueError("confidences contain NaN or inf")
    xu, inv, cnt = np.unique(c, return_inverse=True, return_counts=True)
    ymean = np.bincount(inv.ravel(), weights=ok, minlength=len(xu)) / cnt
    fit = _pava(ymean, cnt.astype(np.float64))
    # keep the first and last point of each constant run: same linear interpolant
    keep = np.ones(len(xu), dtype=bool)
    if len(xu) > 2:
        same_prev = fit[1:-1] == fit[:-2]
        same_next = fit[1:-1] == fit[2:]
        keep[1:-1] = ~(same_prev & same_next)
    return IsotonicCalibrator(xu[keep], fit[keep])


def fit_temperature(
    probs: ArrayLike, labels: ArrayLike, bounds: tuple[float, float] = (1e-2, 1e2)
) -> TemperatureCalibrator:
    """Temperature minimising the NLL of labels (N,) under softmax(log probs (N, C) / T)."""
    p = as_probs(probs)
    y = as_labels(labels, p)
    logp = log_probs(p).reshape(-1, p.shape[-1])
    y = y.ravel()
    if y.size == 0:
        raise ValueError("no data to fit a calibrator on")
    rows = np.arange(y.size)

    def nll(log_t: float) -> float:
        return float(-log_softmax(logp / math.exp(log_t))[rows, y].mean())

    from scipy import optimize

    res = optimize.minimize_scalar(
        nll, bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
        options={"xatol": 1e-8},
    )
    return TemperatureCalibrator(math.exp(res.x))


def fit_calibrator(
    kind: str, val_probs: ArrayLike, val_labels: ArrayLike, **kwargs: Any
) -> Calibrator:
    """Fit a calibrator of ``kind`` (kernel_ridge, temperature, isotonic) on validation data.

    val_probs (N, C) softmax probabilities, val_labels (N,) class indices;
    ``kwargs`` go to :func:`fit_kernel_ridge` / :func:`fit_temperature`.
    """
    p = as_probs(val_probs)
    if kind == "temperature":
        return fit_temperature(p, val_labels, **kwargs)
    ok = correctness(p, val_labels)
    if kind == "kernel_ridge":
        return fit_kernel_ridge(p.max(axis=-1), ok, **kwargs)
    if kind == "isotonic":
        return fit_isotonic(p.max(axis=-1), ok, **kwargs)
    raise ValueError(f"unknown calibrator kind {kind!r}; known: {', '.join(KINDS)}")

