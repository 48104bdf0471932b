"""Map where rock glaciers are: slide the classifier over an RGB GeoTIFF.

Input: an 8-bit true-colour GeoTIFF (Sentinel-2 TCI-like, bands R, G, B and an
optional alpha; 10 m, any projected CRS), as the tiles the classifier learned
from. 128 x 128 windows step by ``stride`` px (default 64: half overlap); each
window's calibrated probability goes to the ``stride`` x ``stride`` cells it
covers, and a cell's value is the mean over its windows (4 with the default).
Windows with any nodata pixel (GDAL mask: nodata value or alpha 0) are not
classified; cells no window reached are nodata.

Output: a float32 Cloud-Optimized GeoTIFF on the cell grid (the scene's CRS,
pixel size ``stride`` times the scene's, same origin; nodata -9999, written by
:func:`utils.mapping.outputs.write_float_map`), a QGIS style beside it
(``<name>.qml``: white -> red ramp over 0..1), and optionally a GeoPackage of
polygons of the cells at or above ``threshold``. Memory: one strip of 128 rows
of the scene and two cell grids, never the whole scene.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.features import geometry_mask, shapes
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely.geometry import shape
from tqdm.auto import tqdm

from utils.files import atomic_output, check_output
from utils.mapping.legend import qml_path
from utils.mapping.outputs import write_float_map
from utils.rockglaciers.classifier import calibrate, load_classifier, predict
from utils.rockglaciers.tiles import TILE, RockGlacierError

_QML = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1"
        classificationMin="0" classificationMax="1">
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0">
          <item value="0" color="#ffffff" alpha="0" label="0"/>
          <item value="0.5" color="#fdae61" alpha="255" label="0.5"/>
          <item value="1" color="#d7191c" alpha="255" label="1 (rock glacier)"/>
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def _open(path: Path):
    if not path.is_file():
        raise RockGlacierError(f"{path}: scene raster not found")
    try:
        src = rasterio.open(path)
    except RasterioIOError as e:
        raise RockGlacierError(f"{path}: not a readable raster ({e})") from e
    problem = None
    if src.count not in (3, 4) or src.dtypes[0] != "uint8":
        problem = (f"has {src.count} band(s) of {src.dtypes[0]}; expected 8-bit RGB "
                   "(3 bands, or 4 with alpha) like the tiles")
    elif src.crs is None or src.transform == Affine.identity():
        problem = "has no georeferencing (CRS and transform)"
    elif not src.crs.is_projected:
        problem = f"is in {src.crs}, not a projected CRS in metres (e.g. UTM)"
    elif min(src.height, src.width) < TILE:
        problem = f"is {src.height} x {src.width} px, smaller than one {TILE} x {TILE} tile"
    if problem:
        src.close()
        raise RockGlacierError(f"{path}: scene {problem}")
    return src


def map_scene(model_path: str | os.PathLike, raster: str | os.PathLike,
              output: str | os.PathLike, polygons: str | os.PathLike | None = None,
              threshold: float = 0.5, stride: int = 64, overwrite: bool = False,
              batch: int = 64, progress: bool = True) -> dict:
    """Write the rock-glacier probability map of ``raster`` (see module doc).

    Returns counts and timing: windows classified, cells, cells >= threshold,
    polygons, seconds, tiles_per_s.
    """
    raster, output = Path(raster), Path(output)
    if stride not in (16, 32, 64, 128):
        raise RockGlacierError(f"stride {stride} px: must be 16, 32, 64 or 128")
    if not 0 < threshold < 1:
        raise RockGlacierError(f"threshold {threshold}: must lie strictly between 0 and 1")
    outs = [(output, "probability map"), (qml_path(output), "QGIS style")]
    if polygons is not None:
        outs.append((Path(polygons), "polygons"))
    for path, what in outs:
        check_output(path, overwrite, what, inputs=[raster, model_path])
    model, cal = load_classifier(model_path)
    t0 = time.perf_counter()
    per = TILE // stride
    with _open(raster) as src:
        n_r, n_c = (src.height - TILE) // stride + 1, (src.width - TILE) // stride + 1
        total = np.zeros((n_r + per - 1, n_c + per - 1))
        count = np.zeros_like(total)
        n_windows = 0
        for r in tqdm(range(n_r), desc="window rows", disable=not progress):
            win = Window(0, r * stride, src.width, TILE)
            strip = np.moveaxis(src.read([1, 2, 3], window=win), 0, -1)
            valid = src.dataset_mask(window=win) > 0
            cols = [c for c in range(n_c)
                    if valid[:, c * stride:c * stride + TILE].all()]
            if not cols:
                continue
            tiles = np.stack([strip[:, c * stride:c * stride + TILE] for c in cols])
            p = calibrate(cal, predict(model, tiles, batch))
            n_windows += len(cols)
            for c, pc in zip(cols, p, strict=True):
                total[r:r + per, c:c + per] += pc
                count[r:r + per, c:c + per] += 1
        crs, transform = src.crs, src.transform @ Affine.scale(stride)
    with np.errstate(invalid="ignore"):
        prob = np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)
    seconds = time.perf_counter() - t0
    write_float_map(output, prob, crs, transform, overwrite=overwrite,
                    description="rock glacier probability")
    with atomic_output(qml_path(output), overwrite=overwrite, what="QGIS style") as tmp:
        tmp.write_text(_QML, encoding="utf-8")
    hot = np.nan_to_num(prob) >= threshold
    n_poly = 0
    if polygons is not None:
        geoms = [shape(g) for g, v in shapes(hot.astype(np.uint8), mask=hot, transform=transform)
                 if v == 1]
        gdf = gpd.GeoDataFrame({"area_km2": [g.area / 1e6 for g in geoms]}, geometry=geoms,
                               crs=crs)
        gdf["mean_probability"] = [float(np.nanmean(prob[_cells(g, transform, prob.shape)]))
                                   for g in geoms]
        with atomic_output(polygons, overwrite=overwrite, what="polygons") as tmp:
            gpkg_tmp = tmp.parent / (tmp.name + ".gpkg")  # GDAL wants the extension
            gdf.to_file(gpkg_tmp, driver="GPKG", layer="rock_glaciers")
            gpkg_tmp.replace(tmp)
        n_poly = len(gdf)
    return {"windows": n_windows, "cells": int(np.isfinite(prob).sum()),
            "cells_above_threshold": int(hot.sum()), "polygons": n_poly,
            "seconds": seconds, "tiles_per_s": n_windows / max(seconds, 1e-9)}


def _cells(geom, transform: Affine, shape_: tuple[int, int]) -> np.ndarray:
    """Boolean (h, w) mask of the cells inside ``geom``."""
    return geometry_mask([geom], shape_, transform, invert=True)
