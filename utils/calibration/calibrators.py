"""Calibrators: map class probabilities (..., C) to a calibrated confidence (...) in [0, 1].

The study's calibrator is a kernel ridge regression (laplacian kernel) of the
accuracy on the max-probability confidence; temperature scaling and isotonic
regression are here for comparison. Fitting lives in :mod:`utils.calibration.fitting`,
the file formats in :mod:`utils.calibration.portable` and
:mod:`utils.calibration.study_pickle`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from utils.calibration.confidence import as_probs, max_confidence

#: Calibrator kinds accepted by :func:`utils.calibration.fit_calibrator`.
KINDS: tuple[str, ...] = ("kernel_ridge", "temperature", "isotonic")
#: Kernels a :class:`KernelRidgeCalibrator` can evaluate.
KERNELS: tuple[str, ...] = ("laplacian", "rbf", "linear")

_PREDICT_CHUNK = 1 << 18


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



def calibrated_confidence(probs: ArrayLike, calibrator: Calibrator | None = None) -> np.ndarray:
    """Confidence (...,) float32 in [0, 1] of probabilities (..., C), e.g. (N, 8) -> (N,).

    The max probability, or ``calibrator.calibrate(probs)`` when a calibrator is
    given; values outside [0, 1] are clipped and NaN becomes 0. The one home of
    the confidence written to maps and scored in the calibration reports.
    """
    p = np.asarray(probs, dtype=np.float32)
    if p.ndim < 1:
        raise ValueError(f"probabilities must have a class axis, got shape {p.shape}")
    shape = p.shape[:-1]
    if math.prod(shape) == 0:
        return np.empty(shape, dtype=np.float32)
    conf = p.max(axis=-1) if calibrator is None else calibrator.calibrate(p)
    conf = np.asarray(conf, dtype=np.float32).reshape(shape)
    return np.clip(np.nan_to_num(conf, nan=0.0), 0.0, 1.0)

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


def log_probs(probs: np.ndarray) -> np.ndarray:
    """Natural log of probabilities (..., C), zeros clipped to 1e-300."""
    return np.log(np.clip(probs, 1e-300, None))


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis of logits (..., C)."""
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
        return np.exp(log_softmax(log_probs(as_probs(probs)) / self.temperature))

    def calibrate(self, probs: ArrayLike) -> np.ndarray:
        return self.calibrated_probs(probs).max(axis=-1)

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature}


def _jsonable(obj: Any) -> Any:
    """Numpy arrays and scalars inside dicts and lists -> plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
