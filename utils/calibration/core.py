"""Confidence estimation, reliability statistics and confidence calibration.

The CNN outputs softmax probabilities ``probs`` of shape (..., C) over the
C = 8 classes of :mod:`utils.study`. The study calibrates the max-probability
confidence per cross-validation fold with a kernel ridge regression (laplacian
kernel) fitted on the validation set's 25-bin reliability curve; this module
re-implements that calibrator in NumPy, adds temperature scaling and isotonic
regression for comparison, and reads/writes calibrators as portable JSON.

It also reads the study's published calibrators, scikit-learn 1.5.2 pickles of
``KernelRidge(kernel="laplacian")``, without scikit-learn and without running
arbitrary pickle code: a restricted unpickler admits only ``KernelRidge`` (as an
inert stand-in that captures its state) and NumPy array/dtype reconstruction
(as inert proxies rebuilt with ``np.frombuffer``), and refuses everything else.

Note on the study's fit: scikit-learn's ``KernelRidge.fit`` treats an array
``alpha`` as one penalty *per target*, not per sample. With a single target and
unequal alphas it uses only ``alpha[0]`` (``zip`` over targets); the study's
first point is the (0, 0) anchor whose alpha is 0, so its published calibrators
interpolate the reliability curve exactly. :func:`fit_kernel_ridge` reproduces
that by default (``alpha_mode="sklearn"``); ``alpha_mode="per_sample"`` solves
``(K + diag(alpha)) c = y``, the per-point ridge the weights were meant for.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import struct
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg, optimize

from utils.study import N_CLASSES

#: Identifies our JSON calibrator files.
FORMAT_NAME = "glacier-facies-calibrator"
#: Version of our JSON calibrator format (readers accept <= this).
FORMAT_VERSION = 1
#: Calibrator kinds accepted by :func:`fit_calibrator`.
KINDS: tuple[str, ...] = ("kernel_ridge", "temperature", "isotonic")
#: Kernels a :class:`KernelRidgeCalibrator` can evaluate.
KERNELS: tuple[str, ...] = ("laplacian", "rbf", "linear")

_SHANNON_EPS = 1e-6
_MAX_PICKLE_BYTES = 64 * 1024 * 1024
_PREDICT_CHUNK = 1 << 18


class CalibrationError(ValueError):
    """A calibrator file is missing, malformed, unsafe or of an unsupported kind."""


# ---------------------------------------------------------------------------
# confidence estimators
# ---------------------------------------------------------------------------


def _as_probs(probs: ArrayLike) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"probabilities must have a class axis of size >= 2, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or inf")
    return p


def max_confidence(probs: ArrayLike) -> np.ndarray:
    """Max-probability confidence: probs (..., C) -> (...,) float64."""
    return _as_probs(probs).max(axis=-1)


def shannon_confidence(probs: ArrayLike, n_classes: int = N_CLASSES) -> np.ndarray:
    """Entropy confidence ``1 - H(p) / log C``: probs (..., C) -> (...,) float64.

    Probabilities are clipped to [1e-6, 1 - 1e-6] before the entropy, so a
    one-hot vector gives a value slightly below 1 and a uniform one gives 0.
    ``n_classes`` (C, default 8) must equal the size of the class axis.
    """
    p = _as_probs(probs)
    if p.shape[-1] != n_classes:
        raise ValueError(f"probabilities have {p.shape[-1]} classes, expected {n_classes}")
    q = np.clip(p, _SHANNON_EPS, 1.0 - _SHANNON_EPS)
    entropy = -np.sum(q * np.log(q), axis=-1)
    return 1.0 - entropy / math.log(n_classes)


def _as_labels(labels: ArrayLike, probs: np.ndarray) -> np.ndarray:
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


def correctness(probs: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Whether the arg-max class equals the label: (..., C), (...) -> bool (...)."""
    p = _as_probs(probs)
    return p.argmax(axis=-1) == _as_labels(labels, p)


# ---------------------------------------------------------------------------
# reliability statistics
# ---------------------------------------------------------------------------


def bin_edges(n_bins: int) -> np.ndarray:
    """Edges ``i / n_bins`` (i = 0..n_bins) of n equal bins on [0, 1], shape (n+1,)."""
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    n = int(n_bins)
    return np.arange(n + 1, dtype=np.float64) / n


def bin_index(conf: ArrayLike, n_bins: int) -> np.ndarray:
    """Bin of each confidence in [0, 1]: bin i holds [i/n, (i+1)/n), 1.0 goes to n-1."""
    c = np.asarray(conf, dtype=np.float64)
    if not np.all(np.isfinite(c)) or np.any(c < 0.0) or np.any(c > 1.0):
        raise ValueError("confidences must be finite and lie in [0, 1]")
    idx = np.searchsorted(bin_edges(n_bins), c, side="right") - 1
    return np.clip(idx, 0, int(n_bins) - 1)


@dataclass(frozen=True)
class Reliability:
    """Per-bin reliability statistics of n equal confidence bins.

    conf, acc: (n,) mean confidence and accuracy per bin (NaN where empty);
    count: (n,) int64 number of predictions per bin; edges: (n+1,) bin edges.
    """

    conf: np.ndarray
    acc: np.ndarray
    count: np.ndarray
    edges: np.ndarray

    @property
    def n_bins(self) -> int:
        return len(self.count)

    @property
    def nonempty(self) -> np.ndarray:
        """Boolean mask (n,) of bins with at least one prediction."""
        return self.count > 0


def _from_sums(conf_sum: np.ndarray, acc_sum: np.ndarray, count: np.ndarray) -> Reliability:
    n = len(count)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(count > 0, conf_sum / count, np.nan)
        acc = np.where(count > 0, acc_sum / count, np.nan)
    return Reliability(conf=conf, acc=acc, count=count.astype(np.int64), edges=bin_edges(n))


def reliability(
    conf: ArrayLike, correct: ArrayLike, n_bins: int = 10, mask: ArrayLike | None = None
) -> Reliability:
    """Reliability statistics of confidences (N,) and correctness (N,) in ``n_bins`` bins.

    Any shapes are accepted as long as ``conf`` and ``correct`` (and the optional
    boolean ``mask`` selecting the predictions to use) have the same shape.
    """
    c = np.asarray(conf, dtype=np.float64)
    ok = np.asarray(correct)
    if ok.shape != c.shape:
        raise ValueError(f"correct has shape {ok.shape}, confidences {c.shape}")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != c.shape:
            raise ValueError(f"mask has shape {m.shape}, confidences {c.shape}")
        c, ok = c[m], ok[m]
    c, ok = c.ravel(), ok.ravel().astype(np.float64)
    idx = bin_index(c, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=c, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=ok, minlength=n_bins)
    return _from_sums(conf_sum, acc_sum, count)


def pool_reliability(rels: Iterable[Reliability]) -> Reliability:
    """Combine reliability statistics (e.g. of several folds) by pooling counts.

    The result equals :func:`reliability` of the concatenated raw data (up to
    floating-point rounding). All inputs must use the same bins.
    """
    rels = list(rels)
    if not rels:
        raise ValueError("no reliability statistics to pool")
    edges = rels[0].edges
    for r in rels[1:]:
        if r.edges.shape != edges.shape or not np.array_equal(r.edges, edges):
            raise ValueError("cannot pool reliability statistics with different bins")
    count = np.sum([r.count for r in rels], axis=0)
    conf_sum = np.sum([np.where(r.count > 0, r.conf * r.count, 0.0) for r in rels], axis=0)
    acc_sum = np.sum([np.where(r.count > 0, r.acc * r.count, 0.0) for r in rels], axis=0)
    return _from_sums(conf_sum, acc_sum, count)


def classwise_reliability(
    probs: ArrayLike,
    labels: ArrayLike,
    cls: int,
    n_bins: int = 10,
    conf: ArrayLike | None = None,
) -> Reliability:
    """Reliability of the predictions whose arg-max class is ``cls``.

    probs (..., C), labels (...); ``conf`` (...) replaces the max probability
    (e.g. a calibrated confidence) when given.
    """
    p = _as_probs(probs)
    if not 0 <= cls < p.shape[-1]:
        raise ValueError(f"class {cls} out of range 0..{p.shape[-1] - 1}")
    pred = p.argmax(axis=-1)
    c = p.max(axis=-1) if conf is None else np.asarray(conf, dtype=np.float64)
    return reliability(c, pred == _as_labels(labels, p), n_bins, mask=pred == cls)


def ece(
    conf_or_rel: Reliability | ArrayLike, correct: ArrayLike | None = None, n_bins: int = 100
) -> float:
    """Expected calibration error ``sum count |conf - acc| / sum count`` over non-empty bins.

    Pass a :class:`Reliability` or confidences (N,) with correctness (N,); the
    default ``n_bins=100`` gives the paper's ECE_100. NaN when there is no data.
    """
    if isinstance(conf_or_rel, Reliability):
        if correct is not None:
            raise ValueError("pass either a Reliability or confidences with correctness")
        rel = conf_or_rel
    else:
        if correct is None:
            raise ValueError("correctness is required with raw confidences")
        rel = reliability(conf_or_rel, correct, n_bins)
    m = rel.nonempty
    total = rel.count[m].sum()
    if total == 0:
        return float("nan")
    return float(np.sum(rel.count[m] * np.abs(rel.conf[m] - rel.acc[m])) / total)


def classwise_ece(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 100, conf: ArrayLike | None = None
) -> np.ndarray:
    """ECE of each predicted class: probs (..., C), labels (...) -> (C,), NaN if never predicted."""
    p = _as_probs(probs)
    return np.array(
        [ece(classwise_reliability(p, labels, k, n_bins, conf)) for k in range(p.shape[-1])]
    )


# ---------------------------------------------------------------------------
# calibrators
# ---------------------------------------------------------------------------


class Calibrator(ABC):
    """Maps class probabilities (..., C) to a calibrated confidence (...)."""

    kind: str = ""

    @abstractmethod
    def calibrate(self, probs: ArrayLike) -> np.ndarray:
        """Calibrated confidence of the arg-max class: probs (..., C) -> (...,)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters (without the format header)."""


class ConfidenceCalibrator(Calibrator):
    """A calibrator that maps the max-probability confidence through a function."""

    @abstractmethod
    def _raw(self, conf: np.ndarray) -> np.ndarray: ...

    def predict(self, conf: ArrayLike, clip: bool = True) -> np.ndarray:
        """Calibrated confidence of confidences (...) -> (...); clipped to [0, 1] by default."""
        c = np.asarray(conf, dtype=np.float64)
        if not np.all(np.isfinite(c)):
            raise ValueError("confidences contain NaN or inf")
        out = self._raw(c.ravel()).reshape(c.shape)
        return np.clip(out, 0.0, 1.0) if clip else out

    def calibrate(self, probs: ArrayLike) -> np.ndarray:
        return self.predict(max_confidence(probs), clip=True)


def kernel_matrix(
    x: np.ndarray,
    y: np.ndarray,
    kernel: str = "laplacian",
    gamma: float | None = None,
) -> np.ndarray:
    """Kernel between rows of x (n, d) and y (m, d) -> (n, m), scikit-learn's definitions.

    laplacian: exp(-gamma |x - y|_1); rbf: exp(-gamma |x - y|_2^2); linear: x . y.
    ``gamma=None`` means 1 / d.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"kernel inputs must be (n, d) and (m, d), got {x.shape} and {y.shape}")
    g = 1.0 / x.shape[1] if gamma is None else float(gamma)
    if kernel == "laplacian":
        d = np.abs(x[:, None, :] - y[None, :, :]).sum(axis=-1)
        return np.exp(-g * d)
    if kernel == "rbf":
        d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1)
        return np.exp(-g * d)
    if kernel == "linear":
        return x @ y.T
    raise ValueError(f"unsupported kernel {kernel!r}; supported: {', '.join(KERNELS)}")


class KernelRidgeCalibrator(ConfidenceCalibrator):
    """The study's calibrator: kernel ridge regression of accuracy on confidence.

    X_fit (m, 1) training confidences, dual_coef (m,); ``predict(x)`` is
    ``k(x, X_fit) @ dual_coef``. ``meta`` holds provenance (e.g. the ridge alphas
    and the scikit-learn version of a loaded pickle); it does not affect predictions.
    """

    kind = "kernel_ridge"

    def __init__(
        self,
        X_fit: ArrayLike,  # noqa: N803 (scikit-learn's attribute name)
        dual_coef: ArrayLike,
        kernel: str = "laplacian",
        gamma: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        x = np.asarray(X_fit, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        c = np.asarray(dual_coef, dtype=np.float64)
        if c.ndim == 2 and c.shape[1] == 1:
            c = c[:, 0]
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"X_fit must be (m, d) with m >= 1, got shape {x.shape}")
        if x.shape[1] != 1:
            raise ValueError(f"X_fit must have one feature (the confidence), got {x.shape[1]}")
        if c.shape != (x.shape[0],):
            raise ValueError(f"dual_coef must have shape ({x.shape[0]},), got {c.shape}")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(c))):
            raise ValueError("X_fit and dual_coef must be finite")
        if kernel not in KERNELS:
            raise ValueError(f"unsupported kernel {kernel!r}; supported: {', '.join(KERNELS)}")
        if gamma is not None:
            gamma = float(gamma)
            if not math.isfinite(gamma):
                raise ValueError("gamma must be finite")
        self.X_fit = x
        self.dual_coef = c
        self.kernel = kernel
        self.gamma = gamma
        self.meta = dict(meta or {})

    def _raw(self, conf: np.ndarray) -> np.ndarray:
        out = np.empty(conf.shape[0], dtype=np.float64)
        for s in range(0, conf.shape[0], _PREDICT_CHUNK):
            x = conf[s : s + _PREDICT_CHUNK, None]
            out[s : s + _PREDICT_CHUNK] = (
                kernel_matrix(x, self.X_fit, self.kernel, self.gamma) @ self.dual_coef
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "gamma": self.gamma,
            "X_fit": self.X_fit.tolist(),
            "dual_coef": self.dual_coef.tolist(),
            "meta": _jsonable(self.meta),
        }


class IsotonicCalibrator(ConfidenceCalibrator):
    """Isotonic (non-decreasing) regression of correctness on confidence.

    x, y (k,): breakpoints; ``predict`` interpolates linearly between them and
    is constant outside [x[0], x[-1]].
    """

    kind = "isotonic"

    def __init__(self, x: ArrayLike, y: ArrayLike) -> None:
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0:
            raise ValueError(f"breakpoints must be two equal-length 1-D arrays, got {xs.shape}, "
                             f"{ys.shape}")
        if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
            raise ValueError("breakpoints must be finite")
        if np.any(np.diff(xs) < 0) or np.any(np.diff(ys) < 0):
            raise ValueError("breakpoints must be non-decreasing in x and y")
        self.x = xs
        self.y = ys

    def _raw(self, conf: np.ndarray) -> np.ndarray:
        return np.interp(conf, self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}


def _log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-300, None))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class TemperatureCalibrator(Calibrator):
    """Temperature scaling: softmax(log p / T); the confidence is its max."""

    kind = "temperature"

    def __init__(self, temperature: float) -> None:
        t = float(temperature)
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
        self.temperature = t

    def calibrated_probs(self, probs: ArrayLike) -> np.ndarray:
        """Rescaled probabilities (..., C) -> (..., C)."""
        return np.exp(_log_softmax(_log_probs(_as_probs(probs)) / self.temperature))

    def calibrate(self, probs: ArrayLike) -> np.ndarray:
        return self.calibrated_probs(probs).max(axis=-1)

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature}


# ---------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------


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
    p = _as_probs(probs)
    y = _as_labels(labels, p)
    logp = _log_probs(p).reshape(-1, p.shape[-1])
    y = y.ravel()
    if y.size == 0:
        raise ValueError("no data to fit a calibrator on")
    rows = np.arange(y.size)

    def nll(log_t: float) -> float:
        return float(-_log_softmax(logp / math.exp(log_t))[rows, y].mean())

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
    p = _as_probs(val_probs)
    if kind == "temperature":
        return fit_temperature(p, val_labels, **kwargs)
    ok = correctness(p, val_labels)
    if kind == "kernel_ridge":
        return fit_kernel_ridge(p.max(axis=-1), ok, **kwargs)
    if kind == "isotonic":
        return fit_isotonic(p.max(axis=-1), ok, **kwargs)
    raise ValueError(f"unknown calibrator kind {kind!r}; known: {', '.join(KINDS)}")


# ---------------------------------------------------------------------------
# persistence: our JSON
# ---------------------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def calibrator_to_dict(cal: Calibrator) -> dict[str, Any]:
    """Our portable representation: format header, type and parameters."""
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "type": cal.kind,
            **cal.to_dict()}


def save_calibrator(cal: Calibrator, path: str | os.PathLike[str]) -> Path:
    """Write ``cal`` as our JSON format (atomically: temp file + rename). Returns the path."""
    path = Path(path)
    if not isinstance(cal, Calibrator):
        raise TypeError(f"expected a Calibrator, got {type(cal).__name__}")
    try:
        text = json.dumps(calibrator_to_dict(cal), indent=1, allow_nan=False)
    except ValueError as exc:
        raise CalibrationError(f"{path}: calibrator has non-finite parameters ({exc})") from exc
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _num_array(d: dict, key: str, ndim: int) -> np.ndarray:
    if key not in d:
        raise ValueError(f"missing field {key!r}")
    try:
        arr = np.asarray(d[key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"field {key!r} is not an array of numbers") from exc
    if arr.ndim != ndim:
        raise ValueError(f"field {key!r} must be {ndim}-D, got shape {arr.shape}")
    return arr


def calibrator_from_dict(d: Any) -> Calibrator:
    """Inverse of :func:`calibrator_to_dict`; raises ValueError on malformed input."""
    if not isinstance(d, dict):
        raise ValueError(f"expected a JSON object, got {type(d).__name__}")
    if d.get("format") != FORMAT_NAME:
        raise ValueError(f"'format' is {d.get('format')!r}, expected {FORMAT_NAME!r}")
    version = d.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version:
        raise ValueError(f"bad 'format_version' {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"format_version {version} is newer than supported ({FORMAT_VERSION})")
    kind = d.get("type")
    if kind == "kernel_ridge":
        gamma = d.get("gamma")
        if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, int | float)):
            raise ValueError(f"'gamma' must be a number or null, got {gamma!r}")
        meta = d.get("meta") or {}
        if not isinstance(meta, dict):
            raise ValueError("'meta' must be an object")
        return KernelRidgeCalibrator(
            _num_array(d, "X_fit", 2), _num_array(d, "dual_coef", 1),
            kernel=d.get("kernel"), gamma=gamma, meta=meta,
        )
    if kind == "temperature":
        t = d.get("temperature")
        if isinstance(t, bool) or not isinstance(t, int | float):
            raise ValueError(f"'temperature' must be a number, got {t!r}")
        return TemperatureCalibrator(t)
    if kind == "isotonic":
        return IsotonicCalibrator(_num_array(d, "x", 1), _num_array(d, "y", 1))
    raise ValueError(f"unknown calibrator type {kind!r}; known: {', '.join(KINDS)}")


# ---------------------------------------------------------------------------
# persistence: the study's scikit-learn pickles, read without scikit-learn
# ---------------------------------------------------------------------------


class _KernelRidgeState:
    """Inert stand-in for sklearn.kernel_ridge.KernelRidge: records its pickled state."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("KernelRidge state is not a dict")
        self.state = state


class _NDArrayType:
    """Stands for ``numpy.ndarray`` as the subtype argument of ``_reconstruct``."""


_ALLOWED_DTYPE_KINDS = "biuf"


class _DtypeProxy:
    """Inert stand-in for a pickled numpy dtype (plain numeric dtypes only)."""

    def __init__(self, obj: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(obj, str) or len(obj) > 8:
            raise pickle.UnpicklingError(f"unsupported dtype spec {obj!r}")
        try:
            dt = np.dtype(obj)
        except TypeError as exc:
            raise pickle.UnpicklingError(f"unsupported dtype spec {obj!r}") from exc
        if dt.kind not in _ALLOWED_DTYPE_KINDS or dt.fields is not None or dt.subdtype:
            raise pickle.UnpicklingError(f"refusing non-numeric dtype {obj!r}")
        self.dtype = dt

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2:
            raise pickle.UnpicklingError("malformed dtype state")
        byteorder = state[1]
        if byteorder not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"malformed dtype byte order {byteorder!r}")
        if any(s is not None for s in state[2:5]):
            raise pickle.UnpicklingError("refusing structured or sub-array dtype")
        if byteorder in "<>":
            self.dtype = self.dtype.newbyteorder(byteorder)


def _dtype_of(obj: Any) -> np.dtype:
    dtype = getattr(obj, "dtype", None) if isinstance(obj, _DtypeProxy) else None
    if dtype is None:
        raise pickle.UnpicklingError("array dtype is not a numpy dtype")
    return dtype


class _ArrayProxy:
    """Inert stand-in for a pickled numpy array, rebuilt from raw bytes."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed ndarray state")
        if len(state) == 5:
            state = state[1:]
        shape, dtype_proxy, fortran, data = state
        if not isinstance(shape, tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise pickle.UnpicklingError(f"malformed ndarray shape {shape!r}")
        dtype = _dtype_of(dtype_proxy)
        if not isinstance(data, bytes | bytearray):
            raise pickle.UnpicklingError("ndarray data is not raw bytes")
        n = math.prod(shape)
        if len(data) != n * dtype.itemsize:
            raise pickle.UnpicklingError(
                f"ndarray data has {len(data)} bytes, expected {n * dtype.itemsize}"
            )
        arr = np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order="F" if fortran else "C")
        self.array = arr.astype(dtype.newbyteorder("="), copy=True)


def _safe_globals() -> dict[tuple[str, str], Any]:
    """The globals a KernelRidge pickle may name, as inert stand-ins.

    Fresh classes and functions per load, so that a crafted pickle that sets
    attributes on them (BUILD) cannot affect later loads.
    """
    nd_type = type("ndarray", (_NDArrayType,), {})

    def reconstruct(subtype: Any, shape: Any = None, typecode: Any = None) -> _ArrayProxy:
        if subtype is not nd_type:
            raise pickle.UnpicklingError("only plain numpy arrays can be reconstructed")
        return _ArrayProxy()

    def scalar(dtype_proxy: Any, data: Any = None) -> Any:
        dtype = _dtype_of(dtype_proxy)
        if not isinstance(data, bytes) or len(data) != dtype.itemsize:
            raise pickle.UnpicklingError("malformed numpy scalar")
        return np.frombuffer(data, dtype=dtype)[0].item()

    found: dict[tuple[str, str], Any] = {
        ("sklearn.kernel_ridge", "KernelRidge"): type("KernelRidge", (_KernelRidgeState,), {}),
        ("numpy", "ndarray"): nd_type,
        ("numpy", "dtype"): type("dtype", (_DtypeProxy,), {}),
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[(module, "_reconstruct")] = reconstruct
        found[(module, "scalar")] = scalar
    return found


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of a scikit-learn KernelRidge pickle."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self._globals = _safe_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name} (only a scikit-learn "
                "KernelRidge with numpy arrays is allowed)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing persistent ids")


def _unproxy(obj: Any) -> Any:
    """Array/dtype proxies -> numpy objects (top level only; other values unchanged)."""
    if isinstance(obj, _ArrayProxy):
        if getattr(obj, "array", None) is None:
            raise ValueError("incomplete ndarray in the pickle")
        return obj.array
    if isinstance(obj, _DtypeProxy):
        return _dtype_of(obj)
    return obj


def _meta_value(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return repr(type(v).__name__)


def _kernel_ridge_from_state(state: dict[str, Any]) -> KernelRidgeCalibrator:
    state = {k: _unproxy(v) for k, v in state.items()}
    for key in ("X_fit_", "dual_coef_"):
        if key not in state:
            raise ValueError(f"the KernelRidge is not fitted (no {key})")
    kernel = state.get("kernel", "linear")
    if not isinstance(kernel, str):
        raise ValueError(f"unsupported kernel {kernel!r} (a callable or non-string)")
    if kernel not in KERNELS:
        raise ValueError(f"unsupported kernel {kernel!r}; supported: {', '.join(KERNELS)}")
    if state.get("kernel_params"):
        raise ValueError(f"unsupported kernel_params {state['kernel_params']!r}")
    gamma = state.get("gamma")
    if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, int | float)):
        raise ValueError(f"unsupported gamma {gamma!r}")
    x, c = state["X_fit_"], state["dual_coef_"]
    if not isinstance(x, np.ndarray) or not isinstance(c, np.ndarray):
        raise ValueError("X_fit_ and dual_coef_ must be numpy arrays")
    if c.ndim == 2 and c.shape[1] != 1:
        raise ValueError(f"multi-target KernelRidge (dual_coef_ {c.shape}) is not supported")
    meta: dict[str, Any] = {"source": "sklearn-pickle"}
    for key in ("alpha", "degree", "coef0", "_sklearn_version", "n_features_in_"):
        if key in state:
            meta[key.lstrip("_")] = _meta_value(state[key])
    return KernelRidgeCalibrator(x, c, kernel=kernel, gamma=gamma, meta=meta)


def _load_pickle(data: bytes) -> KernelRidgeCalibrator:
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data)).load()
        if not isinstance(obj, _KernelRidgeState):
            raise ValueError(f"the pickle holds a {type(obj).__name__}, not a KernelRidge")
        if getattr(obj, "state", None) is None:
            raise ValueError("the KernelRidge pickle has no state")
        return _kernel_ridge_from_state(obj.state)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"unsafe or malformed pickle: {exc}") from exc
    except (EOFError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            MemoryError, RecursionError, struct.error) as exc:
        raise ValueError(f"corrupt or truncated pickle ({type(exc).__name__}: {exc})") from exc


def load_calibrator(path: str | os.PathLike[str]) -> Calibrator:
    """Read a calibrator: our JSON format or the study's scikit-learn KernelRidge pickle.

    Pickles are read by a restricted unpickler (no scikit-learn needed, nothing
    executed). Raises :class:`CalibrationError` naming the file on any problem.
    """
    path = Path(path)
    expected = "a calibrator JSON file or a scikit-learn KernelRidge pickle"
    try:
        size = path.stat().st_size
        if size > _MAX_PICKLE_BYTES:
            raise CalibrationError(f"{path}: {size} bytes is too large for {expected}")
        data = path.read_bytes()
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise CalibrationError(f"{path}: empty file, expected {expected}")
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            return calibrator_from_dict(json.loads(data.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"{path}: not valid JSON ({exc})") from exc
        except (ValueError, TypeError) as exc:
            raise CalibrationError(f"{path}: not a valid calibrator JSON: {exc}") from exc
    try:
        return _load_pickle(data)
    except (ValueError, TypeError) as exc:
        raise CalibrationError(f"{path}: expected {expected}; {exc}") from exc


def load_calibrators(paths: Sequence[str | os.PathLike[str]]) -> list[Calibrator]:
    """:func:`load_calibrator` for each path (e.g. one per fold)."""
    return [load_calibrator(p) for p in paths]
