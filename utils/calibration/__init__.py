"""Confidence calibration: confidences, reliability statistics, calibrators, their files.

Data flow: ``confidence`` (probabilities -> confidence, correctness) ->
``reliability`` (bins, ECE) -> ``calibrators`` (the calibrator types and the
calibrated confidence) -> ``fitting`` (fit them on validation predictions) ->
``portable`` (our JSON files; also reads the study's pickles through
``study_pickle``, the restricted unpickler). ``report`` compares calibrators per
fold for ``confidence_calibration.ipynb``.
"""

from utils.calibration.calibrators import (
    KERNELS,
    KINDS,
    Calibrator,
    ConfidenceCalibrator,
    IsotonicCalibrator,
    KernelRidgeCalibrator,
    TemperatureCalibrator,
    calibrated_confidence,
    kernel_matrix,
)
from utils.calibration.confidence import correctness, max_confidence, shannon_confidence
from utils.calibration.fitting import (
    fit_calibrator,
    fit_isotonic,
    fit_kernel_ridge,
    fit_kernel_ridge_points,
    fit_temperature,
    kernel_ridge_points,
)
from utils.calibration.portable import (
    FORMAT_NAME,
    FORMAT_VERSION,
    calibrator_from_dict,
    calibrator_to_dict,
    load_calibrator,
    load_calibrators,
    save_calibrator,
)
from utils.calibration.reliability import (
    Reliability,
    bin_edges,
    bin_index,
    classwise_ece,
    classwise_reliability,
    ece,
    pool_reliability,
    reliability,
)
from utils.calibration.study_pickle import (
    RestrictedPickleError,
    kernel_ridge_from_pickle,
    restricted_loads,
)
from utils.errors import CalibrationError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KERNELS",
    "KINDS",
    "CalibrationError",
    "Calibrator",
    "ConfidenceCalibrator",
    "IsotonicCalibrator",
    "KernelRidgeCalibrator",
    "Reliability",
    "RestrictedPickleError",
    "TemperatureCalibrator",
    "bin_edges",
    "bin_index",
    "calibrated_confidence",
    "calibrator_from_dict",
    "calibrator_to_dict",
    "classwise_ece",
    "classwise_reliability",
    "correctness",
    "ece",
    "fit_calibrator",
    "fit_isotonic",
    "fit_kernel_ridge",
    "fit_kernel_ridge_points",
    "fit_temperature",
    "kernel_matrix",
    "kernel_ridge_from_pickle",
    "kernel_ridge_points",
    "load_calibrator",
    "load_calibrators",
    "max_confidence",
    "pool_reliability",
    "reliability",
    "restricted_loads",
    "save_calibrator",
    "shannon_confidence",
]
