"""Files of the demo dataset: patch GeoTIFFs, scene folders, GeoJSON and the README.

Every single file goes through :func:`utils.files.atomic_output` (written beside
its final name, renamed when complete). GeoJSON is EPSG:4326 (RFC 7946) with
coordinates rounded to 8 decimals; :data:`README_TEXT` documents the layout and
is written as ``README.txt``, whose first line (:data:`MARKER`) marks a folder
as a demo dataset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.features import shapes
from shapely.geometry import mapping, shape
from shapely.ops import unary_union

from utils.demo.acquisition import Acquisition
from utils.demo.spectra import ATTRIBUTION
from utils.demo.world import RES, Scene
from utils.files import atomic_output
from utils.study import CLASSES, FEATURES, N_FEATURES, OPTICAL, PATCH_SIZE

MARKER = "Glacier-facies demo dataset"

#: rasterio profile of a patch file (add ``crs`` and ``transform``).
GTIFF_PATCH = {
    "driver": "GTiff",
    "dtype": "float32",
    "count": N_FEATURES,
    "height": PATCH_SIZE,
    "width": PATCH_SIZE,
    "compress": "deflate",
    "predictor": 3,
    "zlevel": 6,
    "interleave": "pixel",
}


def write_tif(path: Path, arr: np.ndarray, profile: dict,
              descriptions: Sequence[str] | None = None) -> None:
    """Write (H, W, C) or (H, W) ``arr`` as a GeoTIFF (rasterio ``profile``), atomically."""
    data = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    with atomic_output(path, what="GeoTIFF") as tmp, rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            if descriptions:
                dst.descriptions = tuple(descriptions)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, atomically."""
    with atomic_output(path, what="text file") as tmp:
        tmp.write_text(text, encoding="utf-8")


def round_coords(obj: object, ndigits: int = 8) -> object:
    """``obj`` with every float (in nested lists/tuples, as lists) rounded to ``ndigits``."""
    if isinstance(obj, float):
        return round(obj, ndigits)
    if isinstance(obj, list | tuple):
        return [round_coords(o, ndigits) for o in obj]
    return obj


def outline_features(scene: Scene, to_wgs: Transformer) -> list[dict]:
    """One GeoJSON feature per glacier: its mask polygonised, in EPSG:4326."""
    feats = []
    polys: dict[int, list] = {}
    for geom, value in shapes(scene.labels, mask=scene.labels > 0, transform=scene.transform):
        polys.setdefault(int(value), []).append(shape(geom))
    for g in scene.glaciers:
        poly = unary_union(polys[g.index])
        gj = mapping(poly)

        def project(ring):
            xs, ys = zip(*ring, strict=True)
            lon, lat = to_wgs.transform(np.array(xs), np.array(ys))
            return [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]

        if gj["type"] == "Polygon":
            coords = [project(ring) for ring in gj["coordinates"]]
        else:
            coords = [[project(ring) for ring in part] for part in gj["coordinates"]]
        feats.append(
            {
                "type": "Feature",
                "properties": {
                    "RGIId": g.rgi_id,
                    "Name": g.name,
                    "fold": g.fold,
                    "area_km2": round(float(g.mask.sum()) * RES * RES / 1e6, 4),
                },
                "geometry": {"type": gj["type"], "coordinates": round_coords(coords)},
            }
        )
    return feats


def feature_collection(name: str, feats: list[dict]) -> str:
    """A GeoJSON FeatureCollection named ``name``, as one line of text."""
    return json.dumps({"type": "FeatureCollection", "name": name, "features": feats}) + "\n"


README_TEXT = f"""{MARKER}
{"=" * len(MARKER)}

Synthetic, physically plausible data in the layout of Maslov et al., "Automating
glacier facies classification". Made by `python -m utils.demo.generate` (size {{size}},
seed {{seed}}); the same size and seed give byte-identical files. Not real data:
use it to run and test the pipeline, not to draw scientific conclusions.

patches/{{{{fold}}}}_{{{{glacier}}}}_{{{{date}}}}_{{{{id}}}}_{{{{class}}}}.tif
    One GeoTIFF per labelled point: 33 x 33 pixels, 11 float32 bands in the order
    {", ".join(FEATURES)}
    georeferenced (the scene's UTM CRS; transform of the patch window, 10 m pixels);
    the labelled pixel is the centre (row 16, column 16).
    fold 0-5 (split by glacier), glacier name (no underscores), date YYYYMMDD,
    id = running number, class = the GIVEN label (10-15 % of facies labels are
    deliberately wrong, see planted_noise.csv).
    Bands: blue..swir2 = surface reflectance (Sentinel-2 L2A-like, 0..~1.2);
    elevation = DEM min-max scaled over the glacier pixels of the scene;
    slope = degrees; shadow_mask = 1 in cast or self shadow (from the DEM and the
    sun), 0 sunlit; hillshade = cosine of solar incidence, 0..1; proximity =
    distance to the glacier outline / its maximum over the scene.

stats.json
    Per-feature minima and maxima over all patches (utils.normalisation).

planted_noise.csv
    file, true_class, given_class of every deliberately flipped label (only
    facies classes, only plausible confusions: firn<->snow, firn<->ice,
    refrozen-like<->ice, debris<->ice).

scenes/<scene>_<date>/
    Several glaciers share a scene (a massif); <scene> is e.g. alps1, the
    glaciers in it are alps1-a, alps1-b, ... .
    optical.tif   6 bands float32 surface reflectance (blue, green, red, nir,
                  swir1, swir2), UTM CRS (EPSG:32632 Alps/Norway, EPSG:32638
                  Caucasus), 10 m pixels, nodata NaN
    dem.tif       float32 elevation in metres, same grid, nodata NaN
    truth.tif     uint8 true class index per pixel (0 ice .. 7 cloud), same grid,
                  nodata 255; for evaluating maps only, never for training
    outlines.geojson  one polygon per glacier (RGIId made up: RGI60-RR.9xxxx,
                  Name, fold), EPSG:4326 longitude/latitude (RFC 7946)
    points.geojson    the labelled points, EPSG:4326, with class (given), fold,
                  file, glacier, RGIId, row/col in the scene grid, x/y in the
                  scene CRS
    scene.json    CRS, transform, sun azimuth/elevation (degrees, azimuth
                  clockwise from north) needed for the shadow mask and
                  hillshade, snow line and firn line (metres), cloud cover

Spectra: {ATTRIBUTION}
Firn, refrozen-like and cloud spectra are set from the literature (utils/demo/spectra.py).
"""


def write_scene(folder: Path, scene: Scene, acq: Acquisition, outlines: list[dict],
                points: list[dict], crs: str) -> None:
    """Write one scene date's files into ``folder``: optical.tif (6 bands reflectance),
    dem.tif (metres), truth.tif (class index), outlines and points GeoJSON, scene.json."""
    n = scene.n
    base = {
        "driver": "GTiff",
        "height": n,
        "width": n,
        "crs": crs,
        "transform": scene.transform,
        "compress": "deflate",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    write_tif(folder / "optical.tif", acq.optical,
               dict(base, dtype="float32", count=6, nodata=np.nan, predictor=3), OPTICAL)
    write_tif(folder / "dem.tif", scene.dem,
               dict(base, dtype="float32", count=1, nodata=np.nan, predictor=3), ("elevation",))
    write_tif(folder / "truth.tif", acq.truth,
               dict(base, dtype="uint8", count=1, nodata=255), ("class",))
    write_text(folder / "outlines.geojson", feature_collection("outlines", outlines))
    write_text(folder / "points.geojson", feature_collection("points", points))
    meta = {
        "scene": scene.name,
        "date": acq.date,
        "region": scene.region.name,
        "crs": crs,
        "res_m": RES,
        "width": n,
        "height": n,
        "transform": list(scene.transform)[:6],
        "sun_azimuth_deg": round(acq.sun_azimuth, 3),
        "sun_elevation_deg": round(acq.sun_elevation, 3),
        "snow_line_m": round(acq.snow_line, 1),
        "firn_line_m": round(acq.firn_line, 1),
        "cloud_cover": round(acq.cloud_cover, 4),
        "glaciers": [{"name": g.name, "RGIId": g.rgi_id, "fold": g.fold} for g in scene.glaciers],
        "classes": list(CLASSES),
    }
    write_text(folder / "scene.json", json.dumps(meta, indent=1) + "\n")

