"""Confidence calibration: reliability statistics, calibrators, their file formats, reports."""

from utils.calibration.core import *  # noqa: F401,F403
