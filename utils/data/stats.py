"""Normalisation statistics of a patch dataset: per-feature minima and maxima."""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from utils.data.loading import iter_patch_blocks
from utils.data.names import PatchError, check_folds
from utils.data.skipped import skipped_frame
from utils.normalisation import Stats
from utils.study import N_FEATURES


def compute_stats(
    source: str | os.PathLike,
    folds: int | Iterable[int] | None = None,
    skip_invalid: bool = False,
    progress: bool = False,
) -> tuple[Stats, pd.DataFrame]:
    """Per-feature minima and maxima (11 each) over the raw patches of the given folds.

    Returns ``(stats, skipped)``; ``skipped`` is a DataFrame (file, problem). Raises
    PatchError when the folds hold no valid patch.
    """
    lo = np.full(N_FEATURES, np.inf)
    hi = np.full(N_FEATURES, -np.inf)
    skipped: list[tuple[str, str]] = []
    n = 0
    for x, _, _ in iter_patch_blocks(source, folds, skip_invalid, skipped, progress=progress):
        lo = np.minimum(lo, x.min(axis=(0, 1, 2)))
        hi = np.maximum(hi, x.max(axis=(0, 1, 2)))
        n += len(x)
    if n == 0:
        raise PatchError(source, f"no valid patches in folds {check_folds(folds)}")
    return Stats(lo, hi), skipped_frame(sorted(skipped))
