"""One home for the errors a user can cause.

Every error about the user's input (a file, a value, an output location) derives
from :class:`InputError` and names the file or the value and the problem in the
library's own words. Command-line tools catch ``InputError``, add the flag to
blame where they know it, print one line and exit with status 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: its message names the file (or the value) and what is wrong.

    ``option`` names the input concerned in library terms ("resample", "overwrite",
    ...) when a CLI flag controls it, so the CLI can point at its flag.
    """

    option: str | None = None


class OutputError(OSError, InputError):
    """An output cannot be written where asked (missing or read-only folder, bad name)."""


class OutputExistsError(FileExistsError, InputError):
    """An output exists and replacing it was not asked for."""


class StatsError(InputError):
    """Unusable normalisation statistics."""


class PatchError(InputError):
    """A patch file or patch name that is not in the study's format."""


class RasterReadError(InputError):
    """A raster that cannot be opened or read."""


class SceneError(InputError):
    """Scene inputs that do not fit together (grids, outlines, features)."""


class WeightsError(InputError):
    """A weights file that does not hold the study's CNN."""


class CalibrationError(InputError):
    """A calibrator file or calibration input that cannot be used."""


def about(err: InputError, option: str) -> InputError:
    """Tag ``err`` with the input it concerns; returns ``err`` for ``raise about(...)``."""
    err.option = option
    return err
