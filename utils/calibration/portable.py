"""Calibrator files: our portable JSON format, and reading the study's pickles too.

A JSON calibrator file is one object: ``{"format": "glacier-facies-calibrator",
"format_version": 1, "type": <kind>, ...parameters}`` with the parameters of
the calibrator's ``to_dict``. :func:`load_calibrator` also reads the study's
scikit-learn ``KernelRidge`` pickles (see :mod:`utils.calibration.study_pickle`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from utils.calibration.calibrators import (
    KINDS,
    Calibrator,
    IsotonicCalibrator,
    KernelRidgeCalibrator,
    TemperatureCalibrator,
)
from utils.calibration.study_pickle import kernel_ridge_from_pickle
from utils.errors import CalibrationError
from utils.files import atomic_output

#: Identifies our JSON calibrator files.
FORMAT_NAME = "glacier-facies-calibrator"
#: Version of our JSON calibrator format (readers accept <= this).
FORMAT_VERSION = 1

_MAX_FILE_BYTES = 64 * 1024 * 1024


def calibrator_to_dict(cal: Calibrator) -> dict[str, Any]:
    """Our portable representation: format header, type and parameters."""
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "type": cal.kind,
            **cal.to_dict()}


def save_calibrator(cal: Calibrator, path: str | os.PathLike[str], overwrite: bool = True
                    ) -> Path:
    """Write ``cal`` as our JSON format; returns the path.

    Written beside ``path`` and renamed when complete (nothing half-written is
    left, also on Ctrl-C or SIGTERM). An existing file is replaced unless
    ``overwrite`` is false. Raises CalibrationError for non-finite parameters,
    OutputError / OutputExistsError (both InputError) when ``path`` cannot be written.
    """
    path = Path(path)
    if not isinstance(cal, Calibrator):
        raise TypeError(f"expected a Calibrator, got {type(cal).__name__}")
    try:
        text = json.dumps(calibrator_to_dict(cal), indent=1, allow_nan=False)
    except ValueError as exc:
        raise CalibrationError(f"{path}: calibrator has non-finite parameters ({exc})") from exc
    with atomic_output(path, overwrite=overwrite, what="calibrator") as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
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


def load_calibrator(path: str | os.PathLike[str]) -> Calibrator:
    """Read a calibrator: our JSON format or the study's scikit-learn KernelRidge pickle.

    Pickles are read by a restricted unpickler (no scikit-learn needed, nothing
    executed). Raises :class:`~utils.errors.CalibrationError` naming the file on
    any problem.
    """
    path = Path(path)
    expected = "a calibrator JSON file or a scikit-learn KernelRidge pickle"
    try:
        size = path.stat().st_size
        if size > _MAX_FILE_BYTES:
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
        return kernel_ridge_from_pickle(data)
    except (ValueError, TypeError) as exc:
        raise CalibrationError(f"{path}: expected {expected}; {exc}") from exc


def load_calibrators(paths: Sequence[str | os.PathLike[str]]) -> list[Calibrator]:
    """:func:`load_calibrator` for each path (e.g. one per fold)."""
    return [load_calibrator(p) for p in paths]
