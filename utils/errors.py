"""One home for the errors a user can cause.

Every error about the user's input (a file, a value, an output location) derives
from :class:`InputError` and names the file or the value and the problem in the
library's own words. Command-line tools catch ``InputError``, add the flag to
blame where they know it, print one line and exit with status 2.
"""

from __future__ import annotations

import re
from typing import Self


class InputError(ValueError):
    """Bad input: its message names the file (or the value) and what is wrong.

    ``options`` are the names of the inputs the message speaks of, in library terms
    (request fields or keyword arguments such as ``resample`` or ``dem_path``), so
    a command line can say them as its flags (:func:`cli_message`).
    """

    options: tuple[str, ...] = ()

    def about(self, *options: str) -> Self:
        """Record the inputs this error speaks of; returns the error (``raise E(..).about(..)``)."""
        self.options = tuple(options)
        return self


class OutputError(OSError, InputError):
    """An output cannot be written where asked (missing or read-only folder, bad name).

    Raised as ``OutputError(errno, message, path)``; reads "path: message".
    """

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}" if self.filename else str(self.strerror)


class OutputExistsError(FileExistsError, OutputError):
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


def cli_message(err: BaseException, flags: dict[str, str] | None = None) -> str:
    """One line for a command line: ``err``'s message with each of its ``options`` written
    as that command's flag (``flags[name]``, default ``--name``); text in backquotes (a
    command to run, say) is left as it is."""
    parts = str(err).replace("\n", " ").split("`")
    for name in getattr(err, "options", ()):
        flag = (flags or {}).get(name, f"--{name}")
        word = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
        parts = [word.sub(flag, t) if i % 2 == 0 else t for i, t in enumerate(parts)]
    return "`".join(parts)
