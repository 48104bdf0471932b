"""End-of-season demo scenes of real glacier-years (the mass-balance demo, issue 13).

One demo massif in the Alps (:mod:`utils.demo.world`, 256 x 256 px of 10 m) holds one
demo glacier per real WGMS glacier of the given glacier-years (its outline carries
the real RGI id); each year gets one scene on 5 September whose snow lines are
placed so that every glacier's true accumulation-area ratio (snow + firn over its
area) is the real AAR WGMS observed that year
(:func:`utils.demo.acquisition.end_of_season_classes`, within half a pixel). Sun,
shadows, spectra, clouds and noise are those of the demo dataset
(:func:`utils.demo.acquisition.render`), so the demo's CNN can map the scenes.

Each scene is a folder ``<out_dir>/<scene>_<YYYYMMDD>/`` in the demo dataset's scene
layout: ``optical.tif`` (6 bands surface reflectance), ``dem.tif`` (metres),
``truth.tif`` (class index), ``outlines.geojson`` (EPSG:4326, real RGI ids) and
``scene.json`` (sun angles, and per glacier the requested and true AAR, the AAR of
the truth map as :func:`utils.mapping.glacier_stats.glacier_stats` counts it, i.e.
over the area not in shadow or cloud, the snow line and the real balance).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from pyproj import Transformer

from utils.demo.acquisition import end_of_season_classes, render
from utils.demo.world import REGIONS, RES, Scene, make_scene
from utils.demo.writer import feature_collection, outline_features
from utils.files import atomic_output
from utils.study import CLASS_INDEX, CLASSES, OPTICAL

#: Scene edge in pixels, the massif's name and each year's scene date (month, day).
SCENE_PX = 256
SCENE_NAME = "mbalps"
MONTH_DAY = "0905"
_ACC = [CLASS_INDEX["snow"], CLASS_INDEX["firn"]]
_HIDDEN = [CLASS_INDEX["shadow"], CLASS_INDEX["cloud"]]


def years_world(rgi_ids: list[str], seed: int = 0) -> Scene:
    """The demo massif with one glacier per RGI id (outlines carry the real ids)."""
    rng = np.random.default_rng([seed, 13, 0])
    scene = make_scene(rng, SCENE_NAME, REGIONS["alps"], 1, SCENE_PX, len(rgi_ids), 1)
    for g, rgi in zip(scene.glaciers, rgi_ids, strict=True):
        g.rgi_id = rgi
    return scene


def true_aar(scene: Scene, cls: np.ndarray) -> np.ndarray:
    """Per glacier (G,): (snow + firn) pixels / glacier pixels of a class map (H, W)."""
    acc = np.isin(cls, _ACC)
    return np.array([acc[g.mask].mean() for g in scene.glaciers])


def _observed_aar(scene: Scene, truth: np.ndarray) -> np.ndarray:
    """Per glacier (G,): AAR of the truth map over the area not in shadow or cloud."""
    seen = ~np.isin(truth, _HIDDEN)
    acc = np.isin(truth, _ACC)
    return np.array([acc[g.mask & seen].sum() / max((g.mask & seen).sum(), 1)
                     for g in scene.glaciers])


def _number(v: object) -> float | None:
    """A float, or None for a missing value (JSON null)."""
    return None if v is None or pd.isna(v) else float(v)


def _write_tif(path: Path, arr: np.ndarray, scene: Scene, nodata: float, names: list[str]
               ) -> None:
    """(H, W, C) or (H, W) ``arr`` as a GeoTIFF on the scene's grid (replaces ``path``)."""
    data = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    profile = {"driver": "GTiff", "height": scene.n, "width": scene.n, "count": len(data),
               "dtype": data.dtype.name, "crs": f"EPSG:{scene.region.epsg}",
               "transform": scene.transform, "nodata": nodata, "compress": "deflate"}
    with atomic_output(path, overwrite=True, what="GeoTIFF") as tmp:
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            dst.descriptions = tuple(names)


def write_year_scenes(out_dir: str | os.PathLike, years: pd.DataFrame, seed: int = 0
                      ) -> list[Path]:
    """Write one end-of-season scene folder per year of ``years`` (the demo's own folder:
    files of the same name are replaced) and return the folders, oldest first.

    Args:
        out_dir: folder for the scene folders (created).
        years: real glacier-years, columns ``RGIId``, ``year``, ``aar`` (fraction 0..1),
            ``balance_mwe`` (m w.e.) and ``name``, as
            :func:`utils.massbalance.demo.load_demo_years` returns them. A glacier
            without a record in some year gets its median AAR that year (and no
            balance).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = list(pd.unique(years["RGIId"]))
    scene = years_world(ids, seed)
    crs = f"EPSG:{scene.region.epsg}"
    outlines = feature_collection("outlines", outline_features(
        scene, Transformer.from_crs(scene.region.epsg, 4326, always_xy=True)))
    median = years.groupby("RGIId")["aar"].median()
    names = years.drop_duplicates("RGIId").set_index("RGIId")["name"]
    folders = []
    for year in sorted(pd.unique(years["year"])):
        recs = years[years["year"] == year].set_index("RGIId")
        aars = [float(recs["aar"].get(g, median[g])) for g in ids]
        cls, lines = end_of_season_classes(scene, aars)
        date = f"{int(year)}{MONTH_DAY}"
        acq = render(scene, date, cls, np.random.default_rng([seed, 13, 1, int(year)]))
        folder = out / f"{SCENE_NAME}_{date}"
        folder.mkdir(exist_ok=True)
        _write_tif(folder / "optical.tif", acq.optical, scene, np.nan, list(OPTICAL))
        _write_tif(folder / "dem.tif", scene.dem, scene, np.nan, ["elevation"])
        _write_tif(folder / "truth.tif", acq.truth, scene, 255, ["class"])
        glaciers = [{"RGIId": g, "name": str(names[g]), "demo_glacier": sg.name,
                     "aar_requested": a, "aar_true": round(float(t), 5),
                     "aar_truth_map": round(float(o), 5), "snow_line_m": round(float(z), 1),
                     "balance_mwe": _number(recs["balance_mwe"].get(g))}
                    for g, sg, a, t, o, z in zip(ids, scene.glaciers, aars,
                                                 true_aar(scene, cls),
                                                 _observed_aar(scene, acq.truth), lines,
                                                 strict=True)]
        meta = {"scene": SCENE_NAME, "date": date, "region": scene.region.name, "crs": crs,
                "res_m": RES, "width": scene.n, "height": scene.n,
                "transform": list(scene.transform)[:6],
                "sun_azimuth_deg": round(acq.sun_azimuth, 3),
                "sun_elevation_deg": round(acq.sun_elevation, 3),
                "cloud_cover": round(acq.cloud_cover, 4), "glaciers": glaciers,
                "classes": list(CLASSES)}
        for name, text in (("outlines.geojson", outlines),
                           ("scene.json", json.dumps(meta, indent=1) + "\n")):
            with atomic_output(folder / name, overwrite=True, what=name) as tmp:
                tmp.write_text(text, encoding="utf-8")
        folders.append(folder)
    return folders
