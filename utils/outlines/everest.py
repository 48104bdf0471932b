"""The real-data check: a Landsat 7 scene near Everest against its 86 RGI outlines.

``../shared/data/landsat7_everest/``: ``LE71400412000304SGS00_RGB.TIF`` (bands red,
green, blue: the blue band has the largest haze floor), ``..._B4_crop.TIF``
(nir), uint8 DN on the same 30 m UTM 45N grid, 30 Oct 2000; no SWIR, no DEM.
So the model is one trained on the demo data with the bands blue, green, red,
nir only, and the baseline is the brightness threshold (no SWIR for NDSI).

RGI is not the truth here: its outlines are older than the scene and, on this
debris-covered region, disagree with any image-based outline; seasonal snow
outside RGI counts as false positive. The scores are a measurement, not a pass
mark. Never train on this scene.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio

from utils.outlines import OutlineError
from utils.outlines.evaluate import scene_counts, scores, threshold_baseline
from utils.outlines.model import load_model
from utils.outlines.pipeline import normalise
from utils.outlines.predict import predict_array

BANDS_AVAILABLE = ["blue", "green", "red", "nir"]
RGB = "LE71400412000304SGS00_RGB.TIF"
NIR = "LE71400412000304SGS00_B4_crop.TIF"
OUTLINES = "glacier_outlines.gpkg"


def everest_scene(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """(image (H, W, 4) float32 DN in BANDS_AVAILABLE order, RGI mask (H, W) uint8, grid)."""
    from rasterio.features import rasterize

    from utils.scene.outlines import read_outlines

    folder = Path(folder)
    for name in (RGB, NIR, OUTLINES):
        if not (folder / name).is_file():
            raise OutlineError(f"{folder / name}: file of the Everest scene not found")
    with rasterio.open(folder / RGB) as rgb, rasterio.open(folder / NIR) as nir:
        if (rgb.transform, rgb.shape) != (nir.transform, nir.shape):
            raise OutlineError(f"{folder / NIR}: not on the grid of {folder / RGB}")
        red, green, blue = rgb.read().astype(np.float32)
        image = np.stack([blue, green, red, nir.read(1).astype(np.float32)], axis=-1)
        grid = {"crs": rgb.crs, "transform": rgb.transform, "shape": rgb.shape}
    gdf = read_outlines(folder / OUTLINES, grid["crs"]).gdf
    mask = rasterize(((g, 1) for g in gdf.geometry), out_shape=grid["shape"],
                     transform=grid["transform"], dtype="uint8")
    return image, mask, grid


def measure_everest(model_path: str | os.PathLike, folder: str | os.PathLike) -> dict:
    """Scores of the model and of the brightness baseline against the RGI outlines."""
    model, config = load_model(model_path)
    if config["bands"] != BANDS_AVAILABLE:
        raise OutlineError(f"{model_path}: the Everest scene has only {BANDS_AVAILABLE}; the "
                           f"model reads {config['bands']}")
    image, mask, _ = everest_scene(folder)
    prob = predict_array(model, normalise(image))
    out = {"glacier_fraction_rgi": float(mask.mean())}
    for name, pred in (("model", prob >= 0.5), ("baseline", threshold_baseline(
            image, BANDS_AVAILABLE))):
        s = scores(scene_counts(pred, mask, None, ""))
        out |= {f"{name}_{k}": v for k, v in s.items()}
    return out
