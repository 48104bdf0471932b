"""Patch files: one 33 x 33 x 11 GeoTIFF per labelled point, read, checked and written.

A patch file holds 11 bands in the feature order of :data:`utils.study.FEATURES`;
arrays here are (H, W, C) = (33, 33, 11) float32. Folders are read in blocks
(:func:`read_patch_blocks`) with GDAL set up once per block.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from utils.data.names import PatchError, PatchName, meta_frame
from utils.files import atomic_output
from utils.study import FEATURES, N_FEATURES, PATCH_SIZE

#: GDAL settings for reading patch files: do not list the folder on every open (GDAL looks
#: for sidecar files otherwise, which makes each open cost O(files in the folder)).
GDAL_READ_ENV: dict[str, str] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
#: Patches per block when streaming a folder or a pack.
READ_BLOCK: int = 2048


def read_patch(path: str | os.PathLike) -> np.ndarray:
    """Read and check one patch GeoTIFF: returns float32 (33, 33, 11) in (H, W, C) order.

    Raises PatchError naming the file if it is unreadable, has a band count other than
    11, a size other than 33 x 33, or NaN/inf values.
    """
    import rasterio

    with rasterio.Env(**GDAL_READ_ENV):
        return _read_patch(Path(path))


def _read_patch(path: Path) -> np.ndarray:
    """:func:`read_patch` without setting up the GDAL environment."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                count, height, width = src.count, src.height, src.width
                if count != N_FEATURES:
                    raise PatchError(path, f"has {count} bands, expected {N_FEATURES}")
                if (height, width) != (PATCH_SIZE, PATCH_SIZE):
                    raise PatchError(
                        path,
                        f"is {height} x {width} pixels (rows x columns), "
                        f"expected {PATCH_SIZE} x {PATCH_SIZE}",
                    )
                data = src.read(out_dtype=np.float32)
    except PatchError:
        raise
    except (RasterioError, OSError, ValueError) as err:
        raise PatchError(path, f"unreadable as a GeoTIFF: {err}") from None
    bad = ~np.isfinite(data)
    if bad.any():
        bands = [FEATURES[i] for i in np.flatnonzero(bad.any(axis=(1, 2)))]
        raise PatchError(path, f"has {int(bad.sum())} NaN/inf values (bands: {', '.join(bands)})")
    return np.ascontiguousarray(data.transpose(1, 2, 0))


def write_patch(path: str | os.PathLike, x: np.ndarray, overwrite: bool = True) -> None:
    """Write one patch (33, 33, 11) (H, W, C) as a float32 GeoTIFF (no georeferencing).

    Mainly for tests and synthetic data; no size or band checks (so invalid patches can
    be written on purpose). Written atomically (utils.files.atomic_output); an existing
    file is replaced unless ``overwrite`` is false.
    """
    import rasterio

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"{path}: patch must be (H, W, C), got shape {x.shape}")
    profile = {
        "driver": "GTiff",
        "width": x.shape[1],
        "height": x.shape[0],
        "count": x.shape[2],
        "dtype": "float32",
    }
    with atomic_output(path, overwrite, what="patch") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(x.transpose(2, 0, 1))


def read_patch_blocks(
    entries: list[tuple[Path, PatchName]],
    skip_invalid: bool,
    skipped: list[tuple[str, str]],
    block: int = READ_BLOCK,
    progress: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, pd.DataFrame]]:
    """Read patch files in the given order, in blocks of up to ``block`` files.

    Yields ``(x, y, meta)``: x float32 (B, 33, 33, 11), y int64 (B,) class indices, meta
    the DataFrame of their names (utils.data.names.META_COLUMNS). Invalid patches raise
    PatchError, or with ``skip_invalid`` are left out and appended to ``skipped`` as
    (file, problem).
    """
    import rasterio

    bar = progress_bar(len(entries), progress, "reading patches")
    for i in range(0, len(entries), block):
        chunk = entries[i : i + block]
        x = np.empty((len(chunk), PATCH_SIZE, PATCH_SIZE, N_FEATURES), dtype=np.float32)
        keep: list[PatchName] = []
        with rasterio.Env(**GDAL_READ_ENV):
            for path, name in chunk:
                try:
                    x[len(keep)] = _read_patch(path)
                    keep.append(name)
                except PatchError as err:
                    if not skip_invalid:
                        bar.close()
                        raise
                    skipped.append((name.file, err.problem))
                bar.update(1)
        if keep:
            rows = [(n.fold, n.glacier, n.date, n.id, n.file) for n in keep]
            meta = meta_frame(*zip(*rows, strict=True))
            yield x[: len(keep)], np.array([n.label for n in keep], dtype=np.int64), meta
    bar.close()


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar on stderr counting patches (disabled unless ``enabled``)."""
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="patch", file=sys.stderr)
