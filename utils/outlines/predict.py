"""Sliding-window inference with blended seams, in bounded memory, and scene -> outlines.

Tiles of ``tile`` x ``tile`` px overlap by ``overlap`` px; each tile's
probabilities are weighted by a separable ramp that rises over ``overlap`` px
from every tile edge (never 0), and the weighted sum is divided by the summed
weights, so seams blend smoothly. The scene is read in strips of tile rows
(plus its per-scene normalisation statistics from a decimated read of at most
~1 M pixels), so memory is two float32 (H, W) accumulators plus one strip and
the model's working memory: 2.5 GB peak for a 3660 x 3660 scene, TensorFlow
included (docs/OUTLINES.md).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import keras
import numpy as np
import rasterio
import rasterio.errors
from rasterio.windows import Window
from tqdm.auto import tqdm

from utils.files import atomic_output, check_output
from utils.outlines import OutlineError
from utils.outlines.dataset import BANDS
from utils.outlines.model import load_model
from utils.outlines.pipeline import MAX_STAT_PIXELS, normalise, scene_stats
from utils.outlines.polygons import mask_to_polygons, write_outlines

TILE = 256
OVERLAP = 32


def ramp(height: int, width: int, overlap: int) -> np.ndarray:
    """Blending weights (height, width) float32: the product over both axes of
    min(distance to the tile edge + 1, overlap + 1) / (overlap + 1)."""
    def axis(n: int) -> np.ndarray:
        d = np.minimum(np.arange(n), np.arange(n)[::-1]) + 1.0
        return np.minimum(d, overlap + 1) / (overlap + 1)

    return np.outer(axis(height), axis(width)).astype(np.float32)


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: stride tile - overlap, the last tile flush with the end."""
    if length <= tile:
        return [0]
    s = list(range(0, length - tile, tile - overlap))
    return [*s, length - tile]


def _predict_tiles(model: keras.Model, tiles: list[np.ndarray], batch_size: int) -> np.ndarray:
    return model.predict(np.stack(tiles), batch_size=batch_size, verbose=0)[..., 0]


def predict_strip(model: keras.Model, x: np.ndarray, tile: int, overlap: int, batch_size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted probability sum and weight sum, each (h, W), of normalised (h, W, C) ``x``.

    Strips narrower or lower than a tile are zero-padded (multiples of 8).
    """
    h, w, c = x.shape
    th, tw = (tile if n >= tile else 8 * math.ceil(n / 8) for n in (h, w))
    pad = np.zeros((max(h, th), max(w, tw), c), np.float32)
    pad[:h, :w] = x
    wt = ramp(th, tw, overlap)
    acc = np.zeros(pad.shape[:2], np.float32)
    wsum = np.zeros(pad.shape[:2], np.float32)
    cols = starts(pad.shape[1], tw, overlap)
    for i in range(0, len(cols), batch_size):
        cs = cols[i:i + batch_size]
        probs = _predict_tiles(model, [pad[:th, c0:c0 + tw] for c0 in cs], batch_size)
        for c0, p in zip(cs, probs, strict=True):
            acc[:th, c0:c0 + tw] += p * wt
            wsum[:th, c0:c0 + tw] += wt
    return acc[:h, :w], wsum[:h, :w]


def predict_array(model: keras.Model, x: np.ndarray, tile: int = TILE, overlap: int = OVERLAP,
                  batch_size: int = 4) -> np.ndarray:
    """Glacier probability (H, W) float32 of normalised (H, W, C) ``x`` (in memory)."""
    h, w, _ = x.shape
    acc = np.zeros((h, w), np.float32)
    wsum = np.zeros((h, w), np.float32)
    for r0 in starts(h, tile, overlap):
        a, s = predict_strip(model, x[r0:r0 + tile], tile, overlap, batch_size)
        acc[r0:r0 + a.shape[0]] += a
        wsum[r0:r0 + a.shape[0]] += s
    return acc / wsum


def _band_indexes(src, path: Path, bands: list[str]) -> list[int]:
    """1-based band numbers of the model's ``bands`` in a 7-band or model-band scene."""
    if src.count == len(BANDS):
        return [BANDS.index(b) + 1 for b in bands]
    if src.count == len(bands):
        return list(range(1, len(bands) + 1))
    raise OutlineError(f"{path}: scene has {src.count} bands; the model needs the 7 bands "
                       f"{list(BANDS)} or its own {len(bands)} ({', '.join(bands)}) in order")


def _check_inputs(path: str | os.PathLike, tile: int, overlap: int) -> Path:
    path = Path(path)
    if not path.is_file():
        raise OutlineError(f"{path}: SCENE not found")
    if tile % 8 or not 0 <= overlap < tile // 2:
        raise OutlineError(f"tile {tile} must be a multiple of 8 and overlap {overlap} "
                           "below half of it").about("tile", "overlap")
    return path


def predict_scene(model: keras.Model, bands: list[str], path: str | os.PathLike,
                  tile: int = TILE, overlap: int = OVERLAP, batch_size: int = 4,
                  progress: bool = True) -> tuple[np.ndarray, dict]:
    """Glacier probability (H, W) float32 of a scene GeoTIFF (NaN where input is missing),
    read in strips of ``tile`` rows; returns it with the raster profile (CRS, transform)."""
    path = _check_inputs(path, tile, overlap)
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        raise OutlineError(f"{path}: SCENE is not a readable raster ({e})") from None
    with src:
        idx = _band_indexes(src, path, bands)
        if src.crs is None or not src.crs.is_projected:
            raise OutlineError(f"{path}: SCENE needs a projected CRS in metres (e.g. UTM)")
        h, w = src.height, src.width
        f = max(1, math.ceil(math.sqrt(h * w / MAX_STAT_PIXELS)))
        small = src.read(idx, out_shape=(len(idx), math.ceil(h / f), math.ceil(w / f)),
                         masked=True).astype(np.float32).filled(np.nan)
        stats = scene_stats(np.moveaxis(small, 0, -1))
        acc = np.zeros((h, w), np.float32)
        wsum = np.zeros((h, w), np.float32)
        valid = np.zeros((h, w), bool)
        for r0 in tqdm(starts(h, tile, overlap), desc=path.name, unit="strip",
                       disable=not progress):
            win = Window(0, r0, w, min(tile, h - r0))
            raw = np.moveaxis(src.read(idx, window=win, masked=True).astype(np.float32)
                              .filled(np.nan), 0, -1)
            valid[r0:r0 + raw.shape[0]] = np.isfinite(raw).all(axis=-1)
            a, s = predict_strip(model, normalise(raw, stats), tile, overlap, batch_size)
            acc[r0:r0 + a.shape[0]] += a
            wsum[r0:r0 + a.shape[0]] += s
        profile = {"crs": src.crs, "transform": src.transform, "height": h, "width": w}
    acc /= wsum
    acc[~valid] = np.nan
    return acc, profile


def outline_scene(model_path: str | os.PathLike, scene: str | os.PathLike,
                  output: str | os.PathLike, *, threshold: float = 0.5,
                  min_area_km2: float = 0.01, probability_path: str | os.PathLike | None = None,
                  tile: int = TILE, overlap: int = OVERLAP, batch_size: int = 4,
                  overwrite: bool = False, progress: bool = True) -> dict:
    """Outline the glaciers of ``scene`` with the U-Net at ``model_path``; write a GeoPackage.

    Optionally also the probability map (float32 GeoTIFF, 0..1, nodata NaN).
    Returns a summary: polygons, glacier area (km²), seconds, outputs.
    """
    t0 = time.perf_counter()
    if not 0 < threshold < 1:
        raise OutlineError(f"threshold {threshold} must be between 0 and 1").about("threshold")
    if min_area_km2 < 0:
        raise OutlineError(f"min_area_km2 {min_area_km2} must be >= 0").about("min_area_km2")
    _check_inputs(scene, tile, overlap)
    check_output(output, overwrite, "outlines", inputs=[scene])
    if probability_path is not None:
        check_output(probability_path, overwrite, "probability map", inputs=[scene, output])
    model, config = load_model(model_path)
    prob, profile = predict_scene(model, config["bands"], scene, tile, overlap, batch_size,
                                  progress)
    gdf = mask_to_polygons(np.nan_to_num(prob) >= threshold, profile["transform"],
                           profile["crs"], min_area_km2)
    write_outlines(gdf, output, overwrite)
    outputs = [str(output)]
    if probability_path is not None:
        with atomic_output(probability_path, overwrite=overwrite, what="probability map") as tmp:
            with rasterio.open(tmp, "w", driver="GTiff", dtype="float32", count=1,
                               nodata=np.nan, compress="deflate", tiled=True,
                               **profile) as dst:
                dst.write(prob, 1)
        outputs.append(str(probability_path))
    return {"polygons": len(gdf), "area_km2": float(gdf.area_km2.sum()),
            "seconds": time.perf_counter() - t0, "outputs": outputs}
