"""Global per-feature min-max normalisation statistics (the study's globalminmax).

Statistics are 11 minima and 11 maxima, one per feature of
:data:`utils.study.FEATURES`. Our format is a small JSON file
``{"features": [...], "min": [...], "max": [...]}``; the study's format is a
pickle of the tuple ``(mins, maxs)``, which :func:`load_stats` also reads.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.study import FEATURES, N_FEATURES

HOW_TO_MAKE = (
    "make them with `python -m utils.data.patches stats DATASET_DIR OUT.json` "
    "(or use the study's globalminmax.pickle)"
)


class StatsError(ValueError):
    """Normalisation statistics are missing or malformed."""


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


def save_stats(stats: Stats, path: str | os.PathLike) -> None:
    """Write statistics as readable JSON (via a temporary file, then renamed)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)


def load_stats(path: str | os.PathLike | None) -> Stats:
    """Read statistics from our JSON or the study's pickle ``(mins, maxs)``."""
    if path is None:
        raise StatsError(f"no normalisation statistics given: {HOW_TO_MAKE}")
    path = Path(path)
    if not path.is_file():
        raise StatsError(f"{path}: normalisation statistics not found; {HOW_TO_MAKE}")
    raw = path.read_bytes()
    try:
        if raw[:1] == b"\x80":  # pickle protocol >= 2
            mins, maxs = pickle.loads(raw)
        else:
            data = json.loads(raw)
            if list(data.get("features", FEATURES)) != list(FEATURES):
                raise StatsError(
                    f"{path}: features {data.get('features')} differ from {list(FEATURES)}"
                )
            mins, maxs = data["min"], data["max"]
        return Stats(np.asarray(mins, dtype=np.float64), np.asarray(maxs, dtype=np.float64))
    except StatsError as err:
        raise StatsError(f"{path}: {err}") from None
    except Exception as err:  # noqa: BLE001 - any parse failure is the same user error
        raise StatsError(
            f"{path}: not a statistics file (expected JSON with 'min' and 'max' lists of "
            f"{N_FEATURES} numbers, or the study's pickle of (mins, maxs)): {err}"
        ) from None
