"""Skip reports: the invalid patches left out by ``skip_invalid``, as a table and as CSV.

A skip report has two columns, ``file`` (the patch file name) and ``problem`` (why it
was left out). The command line writes the report of output ``OUT`` to
``OUT.skipped.csv`` (:func:`skip_report_path`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from utils.files import atomic_output


def skipped_frame(skipped: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """DataFrame (file, problem) of ``(file, problem)`` pairs, in the given order."""
    return pd.DataFrame(
        {
            "file": pd.array([s[0] for s in skipped], dtype="str"),
            "problem": pd.array([s[1] for s in skipped], dtype="str"),
        }
    )


def write_skip_report(
    skipped: pd.DataFrame | Sequence[tuple[str, str]],
    path: str | os.PathLike,
    overwrite: bool = True,
) -> None:
    """Write the skipped patches as CSV (columns file, problem), atomically.

    An existing ``path`` is replaced unless ``overwrite`` is false (then
    :class:`utils.errors.OutputExistsError`).
    """
    df = skipped if isinstance(skipped, pd.DataFrame) else skipped_frame(skipped)
    with atomic_output(path, overwrite, what="skip report") as tmp:
        df.to_csv(tmp, index=False, columns=["file", "problem"])


def skip_report_path(out: str | os.PathLike) -> Path:
    """Where the CLI writes its skip report for output ``out``: ``OUT.skipped.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.skipped.csv")
