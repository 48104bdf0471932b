"""Demo dataset in the outline layout, and the end-to-end demo (:func:`run_demo`).

Synthetic scenes: a random-field DEM (m); glaciers where the terrain is high and
concave (valley tongues), cut by rock walls steeper than 40° (nunataks, holes);
snow above a scene snow line, bare ice below, debris-covered lower tongues on
some glaciers (debris reflectance, slightly darker, with ponds and ice cliffs);
bare rock (debris spectrum, textured), lakes, seasonal snow patches outside the
glaciers in some scenes. Reflectance per pixel is drawn from the measured
class spectra (:mod:`utils.demo.spectra`), lit by the terrain (direct sun on the
slope, skylight in cast and self shadow), then thin cloud / fog in some scenes
and an outside-the-swath nodata corner in others. The expert mask is the glacier
extent (debris, shadow and cloud included); ``debris/{id}.tif`` marks the
debris-covered glacier pixels.

Semi-real scenes (when ``oetztal`` is given): the real SRTM DEM of the Ötztal
Alps warped to UTM 32N at 30 m, with the real RGI outlines as the mask, the
surface drawn as above.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject
from scipy import ndimage

from utils import terrain
from utils.demo.spectra import SHADOW_FACTOR, SPECTRA
from utils.outlines.dataset import RES_M, SENSOR_BANDS, UNLABELLED

#: size -> (train scenes, validation scenes, scene side in px)
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (4, 2, 96), "small": (12, 4, 160), "full": (50, 15, 320)}
REGIONS: dict[str, tuple[int, float]] = {  # region -> (UTM EPSG, typical base elevation m)
    "high-mountain-asia": (32645, 5000.0), "alps": (32632, 2800.0),
    "alaska": (32606, 1200.0), "high-latitudes": (32633, 400.0)}
SENSOR_YEARS = {"landsat5": (1990, 2011), "landsat7": (1999, 2003), "landsat8": (2013, 2022),
                "landsat9": (2022, 2024), "sentinel2": (2016, 2024)}
CLASSES = ("rock", "snow", "ice", "debris", "water", "cloud")
NOISE = 0.5  # scale of the measured per-pixel spectral spread


def _field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), scale, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-9)


def synthetic_terrain(rng: np.random.Generator, n: int, base: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(DEM (n, n) m, glacier mask (n, n) bool) of a random glacierised landscape."""
    z = base + 700 * _field(rng, (n, n), n / 6) + 200 * _field(rng, (n, n), n / 20) \
        + 40 * _field(rng, (n, n), 3)
    concave = -ndimage.laplace(ndimage.gaussian_filter(z, 5))
    concave /= concave.std() + 1e-9
    ela = np.quantile(z, rng.uniform(0.5, 0.7))
    score = (ndimage.gaussian_filter(z, 4) - ela) / z.std() * 2.5 + 0.6 * concave \
        + 0.15 * _field(rng, (n, n), 6) + 0.5
    glacier = ndimage.gaussian_filter((score > 0).astype(np.float32), 2.5) > 0.5
    glacier &= ndimage.binary_opening(terrain.slope(z, RES_M) < 40, iterations=1)
    lab, k = ndimage.label(glacier)
    sizes = ndimage.sum(glacier, lab, np.arange(1, k + 1))
    return z.astype(np.float32), np.isin(lab, 1 + np.flatnonzero(sizes >= 60))


def surface(rng: np.random.Generator, z: np.ndarray, glacier: np.ndarray,
            debris_tongues: bool, seasonal_snow: bool) -> tuple[np.ndarray, np.ndarray]:
    """(class index (H, W) into CLASSES, debris-covered glacier (H, W) bool)."""
    shape = z.shape
    cls = np.zeros(shape, np.int8)  # rock
    zg = z[glacier] if glacier.any() else z.ravel()
    snowline = np.quantile(zg, rng.uniform(0.3, 0.6)) + 40 * _field(rng, shape, 6)
    cls[glacier & (z >= snowline)] = 1
    cls[glacier & (z < snowline)] = 2
    debris = np.zeros(shape, bool)
    if debris_tongues:
        lab, k = ndimage.label(glacier)
        for i in range(1, k + 1):
            g = lab == i
            if rng.random() < 0.7:
                debris |= g & (z < np.quantile(z[g], rng.uniform(0.25, 0.5))) & (cls == 2)
    cls[debris] = 3
    spots = rng.random(shape)
    cls[debris & (spots < 0.04)] = 4  # supraglacial ponds
    cls[debris & (spots > 0.95)] = 2  # ice cliffs
    flat = terrain.slope(z, RES_M) < 12
    cls[~glacier & flat & (_field(rng, shape, 5) > 1.8)] = 4  # lakes
    if seasonal_snow:
        patches = (_field(rng, shape, 2.5) > 1.1) & (z > np.quantile(zg, 0.2))
        cls[~glacier & patches] = 1
    return cls, debris


def reflectance(rng: np.random.Generator, cls: np.ndarray, z: np.ndarray, sun: tuple[float, float],
                cloud: bool) -> np.ndarray:
    """Surface reflectance (H, W, 6) of the classes, lit by the terrain, with optional cloud."""
    shape = cls.shape
    out = np.empty((*shape, 6), np.float32)
    names = {0: "debris", 1: "snow", 2: "ice", 3: "debris", 4: "water"}
    for i, name in names.items():
        sel = cls == i
        if sel.any():
            s = SPECTRA[name]
            chol = np.linalg.cholesky(s.cov * NOISE**2 + 1e-9 * np.eye(6))
            out[sel] = s.mean + rng.standard_normal((int(sel.sum()), 6)) @ chol.T
    out[cls == 0] *= (1 + 0.15 * _field(rng, shape, 3))[cls == 0, None]  # rock texture
    out[cls == 3] *= 0.85  # wet, fine debris over ice
    az, el = sun
    direct = np.clip(terrain.cos_incidence(z, RES_M, az, el), 0, None) / np.sin(np.radians(el))
    lit = 1.0 - terrain.shadow_mask(z, RES_M, az, el)
    illum = SHADOW_FACTOR + (1 - SHADOW_FACTOR) * (direct * lit)[..., None]
    out *= illum.astype(np.float32)
    if cloud:
        alpha = np.clip((_field(rng, shape, shape[0] / 10) - 0.6) * 0.6, 0, 0.85)[..., None]
        out = out * (1 - alpha) + alpha * SPECTRA["cloud"].mean
    return np.clip(out, 0.0, 1.5).astype(np.float32)


def _write(path: Path, data: np.ndarray, crs: CRS, transform, descriptions=None,
           nodata=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = data if data.ndim == 3 else data[..., None]
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0],
                       count=arr.shape[2], dtype=arr.dtype, crs=crs, transform=transform,
                       compress="deflate", nodata=nodata) as dst:
        dst.write(np.moveaxis(arr, -1, 0))
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)


def _scene_meta(rng: np.random.Generator, i: int, split: str, region: str | None = None
                ) -> dict:
    region = region or list(REGIONS)[i % len(REGIONS)]
    sensor = list(SENSOR_YEARS)[int(rng.integers(len(SENSOR_YEARS)))]
    year = int(rng.integers(SENSOR_YEARS[sensor][0], SENSOR_YEARS[sensor][1] + 1))
    date = f"{year}-{int(rng.integers(8, 11)):02d}-{int(rng.integers(1, 29)):02d}"
    return dict(id=f"{split}_{i:03d}_{region}", sensor=sensor, date=date, region=region,
                split=split)


def write_scene(root: Path, meta: dict, rng: np.random.Generator, z: np.ndarray,
                glacier: np.ndarray, crs: CRS, transform, nodata_corner: bool) -> None:
    """Draw the surface and image of one scene and write image, mask and debris layer."""
    cls, debris = surface(rng, z, glacier, rng.random() < 0.8, rng.random() < 0.3)
    sun = (float(rng.uniform(120, 200)), float(rng.uniform(25, 50)))
    refl = reflectance(rng, cls, z, sun, rng.random() < 0.35)
    image = np.concatenate([refl, z[..., None]], axis=-1).astype(np.float32)
    mask = glacier.astype(np.uint8)
    if nodata_corner:
        r, c = np.indices(mask.shape)
        corner = r + c < mask.shape[0] * 0.3
        image[corner] = np.nan
        mask[corner] = UNLABELLED
    names = [*SENSOR_BANDS[meta["sensor"]], "elevation"]
    _write(root / "images" / f"{meta['id']}.tif", image, crs, transform, names, np.nan)
    _write(root / "masks" / f"{meta['id']}.tif", mask, crs, transform)
    _write(root / "debris" / f"{meta['id']}.tif", debris.astype(np.uint8), crs, transform)


def oetztal_terrain(oetztal: Path, n: int, count: int
                    ) -> list[tuple[np.ndarray, np.ndarray, CRS, object]]:
    """``count`` n x n windows of the real Ötztal DEM (UTM 32N, 30 m) with RGI masks.

    Windows: the non-overlapping n x n tiles with the largest glacier fraction.
    Returns (DEM m, glacier bool, CRS, transform) per window.
    """
    import geopandas as gpd

    crs = CRS.from_epsg(32632)
    with rasterio.open(oetztal / "srtm_oetztal.tif") as src:
        dem = src.read(1).astype(np.float32)
        dem[dem < -1000] = np.nan
        t, w, h = calculate_default_transform(src.crs, crs, src.width, src.height,
                                              *src.bounds, resolution=RES_M)
        z = np.full((h, w), np.nan, np.float32)
        reproject(dem, z, src_transform=src.transform, src_crs=src.crs, dst_transform=t,
                  dst_crs=crs, resampling=Resampling.bilinear, src_nodata=np.nan,
                  dst_nodata=np.nan)
    rgi = gpd.read_file(oetztal / "rgi_oetztal.shp").to_crs(crs.to_wkt())
    glacier = rasterize(((g, 1) for g in rgi.geometry), out_shape=z.shape, transform=t,
                        dtype="uint8").astype(bool)
    tiles = []
    for r in range(0, h - n + 1, n):
        for c in range(0, w - n + 1, n):
            zz = z[r:r + n, c:c + n]
            if np.isfinite(zz).all():
                tiles.append((glacier[r:r + n, c:c + n].mean(), r, c))
    out = []
    for _, r, c in sorted(tiles, reverse=True)[:count]:
        out.append((z[r:r + n, c:c + n], glacier[r:r + n, c:c + n], crs,
                    t @ rasterio.Affine.translation(c, r)))
    return out


def generate(out_dir: str | os.PathLike, size: str = "small", seed: int = 0,
             oetztal: str | os.PathLike | None = None) -> Path:
    """Write a demo dataset (scenes.csv, images/, masks/, debris/) to ``out_dir``.

    ``size``: tiny (4 + 2 scenes of 96 px, for tests), small (12 + 4 of 160 px, the
    demo) or full (50 + 15 of 320 px). With ``oetztal`` (folder of srtm_oetztal.tif
    and rgi_oetztal.shp) two training and one validation scene are semi-real.
    """
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {', '.join(SIZES)}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    n_train, n_val, n = SIZES[size]
    rng = np.random.default_rng(seed)
    real = oetztal_terrain(Path(oetztal), n, 3) if oetztal is not None else []
    rows = []
    plan = [("train", i) for i in range(n_train - 2 * bool(real))] + \
        [("val", i) for i in range(n_val - bool(real))]
    for split, i in plan:
        meta = _scene_meta(rng, i, split)
        epsg, base = REGIONS[meta["region"]]
        z, glacier = synthetic_terrain(rng, n, base)
        x0, y0 = 300000 + 30 * int(rng.integers(0, 10000)), 3000000 + 30 * int(
            rng.integers(0, 60000))
        write_scene(root, meta, rng, z, glacier, CRS.from_epsg(epsg),
                    from_origin(x0, y0, RES_M, RES_M), rng.random() < 0.2)
        rows.append(meta)
    for j, (z, glacier, crs, t) in enumerate(real):
        split = "train" if j < 2 else "val"
        meta = _scene_meta(rng, 100 + j, split, "alps-oetztal")
        write_scene(root, meta, rng, z, glacier, crs, t, False)
        rows.append(meta)
    pd.DataFrame(rows).to_csv(root / "scenes.csv", index=False)
    return root


def run_demo(out_dir: Path, oetztal: str | os.PathLike | None = None, epochs: int = 6,
             progress: bool = True) -> dict:
    """Generate the small demo dataset, train, evaluate against the NDSI baseline and map
    one validation scene's outlines to a GeoPackage; returns the key numbers."""
    from utils.outlines.dataset import open_dataset
    from utils.outlines.evaluate import evaluate_dataset, pooled
    from utils.outlines.predict import outline_scene
    from utils.outlines.train import train

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    data = generate(out_dir / "outline_data", "small", seed=0, oetztal=oetztal)
    model = train(data, out_dir / "outline_model.keras", epochs=epochs, steps=15,
                  crop_size=64, learning_rate=5e-3, progress=progress)
    table = evaluate_dataset(model, data, progress=progress)
    val = table[table.split == "val"]
    scene = next(s for s in open_dataset(data) if s.split == "val")
    gpkg = out_dir / "outlines.gpkg"
    summary = outline_scene(model, scene.image, gpkg, overwrite=True, progress=progress)
    model_all, base_all = pooled(val, "model"), pooled(val, "ndsi")
    model_deb, base_deb = pooled(val, "model", "debris_"), pooled(val, "ndsi", "debris_")
    return {"val_iou": model_all["iou"], "ndsi_val_iou": base_all["iou"],
            "debris_iou": model_deb["iou"], "ndsi_debris_iou": base_deb["iou"],
            "debris_gain": model_deb["iou"] - base_deb["iou"],
            "outlines": str(gpkg), "polygons": summary["polygons"],
            "seconds": time.perf_counter() - t0}
