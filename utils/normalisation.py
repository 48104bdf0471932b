"""Global per-feature min-max normalisation statistics (the study's globalminmax).

Statistics are 11 minima and 11 maxima, one per feature of
:data:`utils.study.FEATURES`. Our format is a small JSON file
``{"features": [...], "min": [...], "max": [...]}``; the study's format is a
pickle of the tuple ``(mins, maxs)``, which :func:`load_stats` also reads.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.errors import StatsError
from utils.files import atomic_output
from utils.study import FEATURES, N_FEATURES

HOW_TO_MAKE = (
    "make them with `python -m utils.data stats DATASET_DIR OUT.json` "
    "(or use the study's globalminmax.pickle)"
)


@dataclass(frozen=True)
class Stats:
    """Per-feature minima and maxima, float64 arrays of shape (11,)."""

    min: np.ndarray
    max: np.ndarray

    def __post_init__(self) -> None:
        for name in ("min", "max"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (N_FEATURES,) or not np.all(np.isfinite(arr)):
                raise StatsError(f"{name} must be {N_FEATURES} finite numbers, got {arr!r}")
            object.__setattr__(self, name, arr)

    def normalise(self, x: np.ndarray, channels: list[int] | None = None) -> np.ndarray:
        """Scale ``x`` (..., C) to ``(x - min) / (max - min)`` as float32.

        ``channels`` are the feature indices of x's last axis (default: all 11).
        A feature with max == min is scaled by 1 (its values become x - min).
        """
        idx = list(range(N_FEATURES)) if channels is None else list(channels)
        if x.shape[-1] != len(idx):
            raise ValueError(f"array has {x.shape[-1]} channels, expected {len(idx)}")
        lo = self.min[idx].astype(np.float32)
        span = (self.max[idx] - self.min[idx]).astype(np.float32)
        span[span == 0] = 1.0
        return (np.asarray(x, dtype=np.float32) - lo) / span

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "min": self.min.tolist(), "max": self.max.tolist()}


def stats_from_array(x: np.ndarray) -> Stats:
    """Statistics of an (N, H, W, 11) or (..., 11) array, ignoring NaN."""
    flat = np.asarray(x).reshape(-1, x.shape[-1])
    return Stats(np.nanmin(flat, axis=0), np.nanmax(flat, axis=0))


def save_stats(stats: Stats, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Write statistics as readable JSON (via a temporary file, then renamed)."""
    with atomic_output(path, overwrite, what="statistics") as tmp:
        tmp.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")


def check_ranges(stats: Stats) -> None:
    """StatsError naming the first feature whose range is empty (max == min) or inverted."""
    for name, lo, hi in zip(FEATURES, stats.min, stats.max, strict=True):
        if hi < lo:
            raise StatsError(f"feature {name}: max {hi:g} is below min {lo:g}")
        if hi == lo:
            raise StatsError(f"feature {name}: min == max ({lo:g}), so every value of it "
                             "would normalise to the same number")


def load_stats(path: str | os.PathLike | None) -> Stats:
    """Read statistics from our JSON or the study's pickle ``(mins, maxs)``."""
    if path is None:
        raise StatsError(f"no normalisation statistics given: {HOW_TO_MAKE}")
    path = Path(path)
    if not path.is_file():
        raise StatsError(f"{path}: normalisation statistics not found; {HOW_TO_MAKE}")
    raw = path.read_bytes()
    try:
        if raw[:1] == b"\x80":  # pickle protocol >= 2: numbers and arrays only, no code
            from utils.calibration.study_pickle import restricted_loads

            mins, maxs = restricted_loads(raw)
        else:
            data = json.loads(raw)
            if list(data.get("features", FEATURES)) != list(FEATURES):
                raise StatsError(
                    f"{path}: features {data.get('features')} differ from {list(FEATURES)}"
                )
            mins, maxs = data["min"], data["max"]
        stats = Stats(np.asarray(mins, dtype=np.float64), np.asarray(maxs, dtype=np.float64))
        check_ranges(stats)
        return stats
    except StatsError as err:
        raise StatsError(f"{path}: {err}") from None
    except Exception as err:  # noqa: BLE001 - any parse failure is the same user error
        raise StatsError(
            f"{path}: not a statistics file (expected JSON with 'min' and 'max' lists of "
            f"{N_FEATURES} numbers, or the study's pickle of (mins, maxs)): {err}"
        ) from None
