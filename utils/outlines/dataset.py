"""The outline dataset's file layout and a reader that validates it.

Layout (one folder; documented in docs/OUTLINES.md)::

    ROOT/scenes.csv        id, sensor, date (YYYY-MM-DD), region, split (train | val)
    ROOT/images/{id}.tif   7 bands, 30 m: blue, green, red, nir, swir1, swir2 (surface
                           reflectance, any numeric type), elevation (m, AW3D30);
                           missing pixels are the raster's nodata value or NaN
    ROOT/masks/{id}.tif    1 band uint8 on the image's grid: 1 glacier, 0 not glacier,
                           255 unlabelled (ignored in training and scores)
    ROOT/debris/{id}.tif   optional, uint8 on the same grid: 1 = debris-covered glacier
                           (the demo writes it; used to score debris-covered tongues)

Band descriptions, when the image has them, must be the sensor's band names
(:data:`SENSOR_BANDS`) followed by ``elevation``. Every problem raises
:class:`~utils.outlines.OutlineError` naming the file (or the scenes.csv row).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import rasterio.errors

from utils.outlines import OutlineError

#: Channel order of the 7-channel tensor.
BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1", "swir2", "elevation")
#: The sensors' names of the six optical bands, in BANDS order.
SENSOR_BANDS: dict[str, tuple[str, ...]] = {
    "landsat5": ("SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"),
    "landsat7": ("SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"),
    "landsat8": ("SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"),
    "landsat9": ("SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"),
    "sentinel2": ("B2", "B3", "B4", "B8", "B11", "B12"),
}
COLUMNS: tuple[str, ...] = ("id", "sensor", "date", "region", "split")
SPLITS: tuple[str, ...] = ("train", "val")
RES_M = 30.0
MASK_VALUES = (0, 1, 255)
UNLABELLED = 255
#: Landsat 7 scenes only before the scan-line corrector failed (no SLC-off stripes).
LANDSAT7_YEARS = (1999, 2003)


@dataclass(frozen=True)
class Scene:
    """One row of scenes.csv with its files (``debris`` is None when absent)."""

    id: str
    sensor: str
    date: str
    region: str
    split: str
    image: Path
    mask: Path
    debris: Path | None


def _row_error(csv: Path, i: int, msg: str) -> OutlineError:
    return OutlineError(f"{csv}: row {i + 2}: {msg}")


def read_catalogue(root: str | os.PathLike) -> list[Scene]:
    """Read and check ``ROOT/scenes.csv`` (columns, ids, sensors, dates, splits, files)."""
    root = Path(root)
    csv = root / "scenes.csv"
    if not root.is_dir():
        raise OutlineError(f"{root}: dataset folder not found")
    if not csv.is_file():
        raise OutlineError(f"{csv}: scenes.csv not found (the dataset's scene list)")
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise OutlineError(f"{csv}: not a readable CSV ({e})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise OutlineError(f"{csv}: missing column(s) {', '.join(missing)}; needs "
                           f"{', '.join(COLUMNS)}")
    if df.empty:
        raise OutlineError(f"{csv}: lists no scenes")
    scenes, seen = [], set()
    for i, r in enumerate(df.itertuples(index=False)):
        sid = r.id.strip()
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", sid):
            raise _row_error(csv, i, f"id {sid!r} must be letters, digits, '_', '-', '.'")
        if sid in seen:
            raise _row_error(csv, i, f"id {sid} appears twice")
        seen.add(sid)
        if r.sensor not in SENSOR_BANDS:
            raise _row_error(csv, i, f"scene {sid}: sensor {r.sensor!r} is not one of "
                             f"{', '.join(SENSOR_BANDS)}")
        try:
            date = datetime.strptime(r.date.strip(), "%Y-%m-%d")
        except ValueError:
            raise _row_error(csv, i, f"scene {sid}: date {r.date!r} is not YYYY-MM-DD") from None
        if r.sensor == "landsat7" and not LANDSAT7_YEARS[0] <= date.year <= LANDSAT7_YEARS[1]:
            raise _row_error(csv, i, f"scene {sid}: Landsat 7 only {LANDSAT7_YEARS[0]}-"
                             f"{LANDSAT7_YEARS[1]} (SLC-off stripes after), got {r.date}")
        if r.split not in SPLITS:
            raise _row_error(csv, i, f"scene {sid}: split {r.split!r} is not train or val")
        image, mask = root / "images" / f"{sid}.tif", root / "masks" / f"{sid}.tif"
        for p, what in ((image, "image"), (mask, "mask")):
            if not p.is_file():
                raise _row_error(csv, i, f"scene {sid}: {what} {p} not found")
        debris = root / "debris" / f"{sid}.tif"
        scenes.append(Scene(sid, r.sensor, date.strftime("%Y-%m-%d"), r.region.strip(),
                            r.split, image, mask, debris if debris.is_file() else None))
    return scenes


def _open(path: Path, what: str):
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        raise OutlineError(f"{path}: {what} is not a readable raster ({e})") from None


def check_grid(src, path: Path, what: str) -> None:
    """A projected, north-up 30 m grid in metres (OutlineError otherwise)."""
    t, crs = src.transform, src.crs
    if crs is None or not crs.is_projected:
        raise OutlineError(f"{path}: {what} needs a projected CRS in metres (e.g. UTM); "
                           f"has {crs.to_string() if crs else 'none'}")
    res = abs(t.a) * (crs.linear_units_factor[1] or 1.0)
    if t.b or t.d or not math.isclose(abs(t.a), abs(t.e), rel_tol=1e-6) \
            or not math.isclose(res, RES_M, rel_tol=0.01):
        raise OutlineError(f"{path}: {what} must be a north-up grid of 30 m square pixels; "
                           f"has pixel size {t.a} x {t.e}")


def read_image(scene: Scene) -> np.ndarray:
    """The scene's image as float32 (H, W, 7) in BANDS order; missing pixels NaN."""
    with _open(scene.image, "image") as src:
        if src.count != len(BANDS):
            raise OutlineError(f"{scene.image}: image has {src.count} bands; needs 7 "
                               f"({', '.join(BANDS)})")
        want = (*SENSOR_BANDS[scene.sensor], "elevation")
        if any(src.descriptions) and tuple(src.descriptions) != want:
            raise OutlineError(f"{scene.image}: band names {list(src.descriptions)} are not "
                               f"those of {scene.sensor} {list(want)}")
        check_grid(src, scene.image, "image")
        data = src.read(masked=True).astype(np.float32)
    return np.moveaxis(data.filled(np.nan), 0, -1)


def read_mask(scene: Scene, path: Path | None = None, what: str = "mask") -> np.ndarray:
    """uint8 (H, W) mask (or debris layer) checked against the image's grid and values."""
    path = scene.mask if path is None else path
    with _open(scene.image, "image") as img, _open(path, what) as src:
        if src.count != 1:
            raise OutlineError(f"{path}: {what} has {src.count} bands; needs 1")
        if (src.crs != img.crs or src.shape != img.shape
                or not np.allclose(tuple(src.transform)[:6], tuple(img.transform)[:6])):
            raise OutlineError(f"{path}: {what} grid ({src.crs}, {src.shape[0]} x "
                               f"{src.shape[1]} px) differs from image {scene.image} "
                               f"({img.crs}, {img.shape[0]} x {img.shape[1]} px)")
        m = src.read(1)
    if not np.issubdtype(m.dtype, np.integer):
        raise OutlineError(f"{path}: {what} must be integer (uint8), is {m.dtype}")
    bad = ~np.isin(m, MASK_VALUES)
    if bad.any():
        raise OutlineError(f"{path}: {what} has values {np.unique(m[bad])[:5].tolist()}; "
                           "allowed 0 (not glacier), 1 (glacier), 255 (unlabelled)")
    return m.astype(np.uint8)


def open_dataset(root: str | os.PathLike) -> list[Scene]:
    """Read scenes.csv and validate every scene (bands, grids, mask values, split).

    Both splits must be present. Returns the scenes in the CSV's order.
    """
    scenes = read_catalogue(root)
    for s in scenes:
        read_image(s)  # band count, names, grid
        m = read_mask(s)
        if s.debris is not None:
            read_mask(s, s.debris, "debris layer")
        if not (m != UNLABELLED).any():
            raise OutlineError(f"{s.mask}: mask has no labelled pixel")
    splits = {s.split for s in scenes}
    if splits != set(SPLITS):
        raise OutlineError(f"{Path(root) / 'scenes.csv'}: needs train and val scenes; has "
                           f"only {', '.join(sorted(splits))}")
    return scenes


def load(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(image (H, W, 7) float32 with NaN, mask (H, W) uint8, debris (H, W) bool or None).

    Pixels whose image is missing in any band become unlabelled in the mask.
    """
    image, mask = read_image(scene), read_mask(scene)
    mask = np.where(np.isnan(image).any(axis=-1), UNLABELLED, mask).astype(np.uint8)
    debris = None
    if scene.debris is not None:
        debris = read_mask(scene, scene.debris, "debris layer") == 1
    return image, mask, debris
