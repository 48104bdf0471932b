"""A small 10 m UTM test scene and helpers shared by the scene, mapping and apply.py tests."""


from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import Polygon, box

import apply
from utils import terrain as feat
from utils.inference.padding import pad_features
from utils.normalisation import Stats, load_stats, save_stats


def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
    """North-up transform (rasterio's from_origin without its affine deprecation warning)."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


ROOT = Path(__file__).resolve().parents[1]  # the repository
H, W, RES = 40, 44, 10.0
CRS = "EPSG:32632"
T = from_origin(600000.0, 5100000.0, RES, RES)
SUN = (150.0, 35.0)  # azimuth, elevation (degrees)
ND = -9999


# ----------------------------------------------------------------------------- fixtures


def px_box(r0: float, r1: float, c0: float, c1: float, t=T) -> Polygon:
    """Polygon between fractional pixel rows r0..r1 and cols c0..c1."""
    x0, y0 = t @ (c0, r0)
    x1, y1 = t @ (c1, r1)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def write_raster(path: Path, data: np.ndarray, crs=CRS, transform=T, nodata=np.nan, **kw) -> Path:
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, transform=transform,
                       nodata=nodata, **kw) as dst:
        dst.write(data)
    return path


def dem_surface(h: int = H, w: int = W) -> np.ndarray:
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    z = 3000 + 15 * (h - r) + 5 * c + 40 * np.sin(r / 5) * np.cos(c / 7)
    z += 250 * np.exp(-((r - 20) ** 2 + (c - 22) ** 2) / 30)  # a peak casting shadows
    return z.astype(np.float32)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> SimpleNamespace:
    """A 40 x 44 px, 10 m UTM scene: optical, DEM, outlines (WGS 84) and stats.

    Glacier A crosses the top edge (rows 0..9, cols 2..15), glacier B the right edge
    (rows 24..33, cols 30..43): 280 glacier pixels, many within 16 px of the border.
    """
    d = tmp_path_factory.mktemp("scene")
    rng = np.random.default_rng(0)
    optical = rng.uniform(0.05, 0.95, (6, H, W)).astype(np.float32)
    write_raster(d / "optical.tif", optical)
    write_raster(d / "dem.tif", dem_surface())
    polys = [px_box(-3, 10.3, 2.3, 15.6), px_box(24.4, 33.7, 30.2, 46.0)]
    gdf = gpd.GeoDataFrame({"RGIId": ["RGI60-11.00001", "RGI60-11.00002"]}, geometry=polys,
                           crs=CRS)
    gdf.to_crs(4326).to_file(d / "outlines.geojson", driver="GeoJSON")
    gdf.to_file(d / "outlines_utm.gpkg", driver="GPKG")
    mins = [0.0] * 6 + [0.0, 0.0, 0.0, 0.0, 0.0]
    maxs = [1.0] * 6 + [1.0, 90.0, 1.0, 1.0, 1.0]
    save_stats(Stats(np.array(mins), np.array(maxs)), d / "stats.json")
    mask = rasterize([(g, 1) for g in polys], out_shape=(H, W), transform=T).astype(bool)
    assert mask.sum() == 280
    return SimpleNamespace(dir=d, optical=d / "optical.tif", dem=d / "dem.tif",
                           outlines=d / "outlines.geojson", outlines_utm=d / "outlines_utm.gpkg",
                           stats=d / "stats.json", mask=mask, polys=polys)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Folder with random-initialised models rand6_weights.h5 and rand11_weights.h5."""
    import keras

    from utils.model import build_cnn_model, save_weights

    d = tmp_path_factory.mktemp("weights")
    for n in (6, 11):
        keras.utils.set_random_seed(n)
        save_weights(build_cnn_model(n), d / f"rand{n}_weights.h5")
    return d


def run_apply(argv: list, capsys) -> tuple[int, str]:
    code = apply.main([str(a) for a in argv] + ["--quiet"])
    return code, capsys.readouterr().err


def base_argv(scene, weights, out: Path, model: str = "rand11", derive: bool = True) -> list:
    argv = [model, scene.optical, out, scene.outlines, "--weights_dir", weights,
            "--stats", scene.stats]
    if model == "rand11":
        argv += ["--dem_path", scene.dem]
    if derive and model == "rand11":
        argv += ["--derive_features", "--sun_azimuth", SUN[0], "--sun_elevation", SUN[1]]
    return argv


def reference(scene, model, sun=SUN, optical=None, dem=None):
    """Full-scene computation (no windows): features.derive_features, pad_features, engine."""
    with rasterio.open(optical or scene.optical) as src:
        opt = np.moveaxis(src.read().astype(np.float32), 0, -1)
    with rasterio.open(dem or scene.dem) as src:
        z = src.read(1).astype(np.float32)
        if src.nodata is not None and not np.isnan(src.nodata):
            z[z == src.nodata] = np.nan
    topo = feat.derive_features(z, scene.mask, RES, *sun)
    stack = feat.stack_features(opt, topo)
    norm = load_stats(scene.stats).normalise(stack)
    valid = scene.mask & np.isfinite(stack).all(axis=-1)
    return stack, pad_features(norm), valid


