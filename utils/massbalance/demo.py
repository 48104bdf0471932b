"""The mass-balance demo: real WGMS glacier-years, demo scenes, mapped vs true AAR.

``demo_years.json`` holds a few Alpine glaciers' real glacier-years (observed
AAR, ELA and annual balance, WGMS FoG 2021-05 and OGGM's ``mbdata``; made by
:func:`choose_demo_years`; rebuild with ``python massbalance.py demo-years WGMS_DIR``).

:func:`map_demo_years` renders one end-of-season demo scene per year whose glaciers'
true AAR is the real one (:mod:`utils.demo.years`) and maps it as ``apply.py`` does,
with a facies model of the demo; :func:`run_demo` builds the glacier time series
from those statistics CSVs, picks the end-of-season scene of each year, and scores
the balance regressed on the **mapped** AAR against the same regression on the
**true** (WGMS) AAR of the same glacier-years: the ratio of their r is what the
facies mapping loses. Without statistics CSVs :func:`run_demo` writes stand-in ones
from class maps drawn straight from the placed snow line (three scenes per
glacier-year: mid-July with a lower snow line, the end of season, and late
September with cloud over the upper glacier), which check the plumbing only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from utils.files import atomic_output
from utils.massbalance.common import MassBalanceError, concat_dropped, write_csv
from utils.massbalance.regression import evaluate, plot_scatter
from utils.massbalance.series import collect_series, end_of_season
from utils.massbalance.wgms import ID_LUT as ID_LUT_NAME
from utils.massbalance.wgms import OVERVIEW as OVERVIEW_NAME
from utils.massbalance.wgms import join_balances

DEMO_YEARS = Path(__file__).with_name("demo_years.json")
ALPS = ("AT", "CH", "FR", "IT")
ATTRIBUTION = ("WGMS (2021): Fluctuations of Glaciers Database, doi 10.5904/wgms-fog-2021-05 "
               "(AAR, ELA); annual balances and RGI links from OGGM's WGMS sample data (mbdata)")
PIXEL_M = 20.0


def choose_demo_years(years: pd.DataFrame, n_glaciers: int = 4, n_years: int = 10,
                      countries: Sequence[str] = ALPS) -> pd.DataFrame:
    """Real glacier-years for the demo: of :func:`glacier_years`' table, the
    ``n_glaciers`` glaciers of ``countries`` with an RGI 6.0 id and the most years having
    both an observed AAR and a balance, each with its latest ``n_years`` such years."""
    t = years[years["country"].isin(countries) & years["RGIId"].str.startswith("RGI60-")
          & years["aar"].notna()]
    counts = t.groupby("WGMS_ID").size().sort_values(ascending=False, kind="stable")
    ids = counts.index[counts >= n_years][:n_glaciers]
    if len(ids) < n_glaciers:
        raise MassBalanceError(f"only {len(ids)} glacier(s) in {', '.join(countries)}"
                               f" with {n_years} years of AAR and balance")
    t = t[t["WGMS_ID"].isin(ids)].sort_values(["WGMS_ID", "year"])
    return t.groupby("WGMS_ID").tail(n_years).reset_index(drop=True)


def load_demo_years(path: str | Path = DEMO_YEARS) -> pd.DataFrame:
    """The committed demo glacier-years (columns as :func:`glacier_years`)."""
    return pd.DataFrame(json.loads(Path(path).read_text())["glacier_years"])


def save_demo_years(years: pd.DataFrame, path: str | Path, overwrite: bool = False) -> None:
    """Write chosen glacier-years as the demo's JSON, with attribution."""
    doc = {"source": ATTRIBUTION, "units": {"aar": "fraction 0..1", "ela_m": "m a.s.l.",
                                            "balance_mwe": "m w.e."},
           "glacier_years": json.loads(years.to_json(orient="records"))}
    with atomic_output(path, overwrite=overwrite, what="demo glacier-years") as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")


def write_tiny_wgms(folder: str | Path, n_glaciers: int = 5, n_years: int = 8,
                    seed: int = 0) -> Path:
    """A made-up WGMS folder in the published layout (for tests and the notebook's
    headless run without ``../shared``): balance = 2.5 x AAR - 1.3 m w.e. + noise,
    ELA from the AAR, plus one ELA bound, one year without a balance and one
    overview row without AAR or ELA. Returns ``folder``."""
    rng = np.random.default_rng(seed)
    d = Path(folder)
    (d / "fog-2021-05").mkdir(parents=True, exist_ok=True)
    (d / "mbdata").mkdir(exist_ok=True)
    ov = ['"POLITICAL_UNIT","NAME","WGMS_ID","Year","ELA_PREFIX","ELA","AAR","REMARKS"']
    lut = ['"POLITICAL_UNIT","NAME","WGMS_ID","RGI_ID"']
    links = ["Made-up RGI links", "for the tiny WGMS folder", "RGIId,Name,FoGId"]
    for g in range(n_glaciers):
        wid, rgi, name = 9000 + g, f"RGI60-11.9{g:04d}", f"GLETSCHER Ö{g}"
        lut.append(f'"CH","{name}",{wid},"{rgi}"')
        links.append(f"{rgi},{name},{wid:04d}")
        mb = ["YEAR,WGMS_ID,POLITICAL_UNIT,NAME,AREA,ANNUAL_BALANCE,RGI_ID"]
        z0 = 2800 + 150 * g
        for y in range(2010, 2010 + n_years):
            aar = float(np.clip(rng.normal(0.45, 0.18), 0.02, 0.95))
            b = 2.5 * aar - 1.3 + rng.normal(0, 0.15)
            ela, pre = z0 + 600 * (0.5 - aar) + rng.normal(0, 20), ""
            if g == 0 and y == 2011:
                pre, ela = ">", z0 + 800
            ov.append(f'"CH","{name}",{wid},{y},"{pre}",{ela:.0f},{aar * 100:.0f},""')
            mb.append(f"{y},{wid},CH,{name},1.0,{'' if g == 1 and y == 2012 else round(b * 1000)},"
                      f"{rgi}")
        ov.append(f'"CH","{name}",{wid},{2010 + n_years},"",,,"period only"')
        (d / "mbdata" / f"mbdata_WGMS-{wid:05d}.csv").write_text("\n".join(mb) + "\n")
    (d / OVERVIEW_NAME).write_text("\n".join(ov) + "\n", encoding="latin-1")
    (d / ID_LUT_NAME).write_text("\n".join(lut) + "\n", encoding="latin-1")
    (d / "00_rgi60_links.csv").write_text("\n".join(links) + "\n")
    return d


# ----------------------------------------------------------------------------- demo scenes


def _glacier(k: int) -> tuple[object, np.ndarray, object, np.ndarray]:
    """Demo glacier k: (outline polygon, DEM (H, W) in m, transform, glacier mask (H, W))."""
    from rasterio.features import rasterize
    from rasterio.transform import from_origin
    from shapely.affinity import scale
    from shapely.geometry import Point

    h, w = 48, 96
    transform = from_origin(600_000.0 + 5000 * k, 5_200_000.0, PIXEL_M, PIXEL_M)
    cx, cy = transform @ (w / 2, h / 2)
    outline = scale(Point(cx, cy).buffer(1.0), xfact=w * PIXEL_M * 0.46,
                    yfact=h * PIXEL_M * 0.42)
    rng = np.random.default_rng(k)
    cols, rows = np.meshgrid(np.arange(w), np.arange(h))
    dem = (2500.0 + 100 * k + 10.0 * cols + 0.08 * (rows - h / 2) ** 2
           + rng.normal(0, 3, (h, w)))
    mask = rasterize([(outline, 1)], out_shape=(h, w), transform=transform).astype(bool)
    return outline, dem, transform, mask


def _class_map(dem: np.ndarray, mask: np.ndarray, aar: float, cloud_top: float = 0.0
               ) -> np.ndarray:
    """Snow above the altitude that makes ``aar`` of the glacier's pixels, ice below,
    debris on the lowest 5 %; cloud on the highest ``cloud_top`` fraction."""
    from utils.study import CLASS_INDEX

    z = dem[mask]
    cls = np.full(dem.shape, CLASS_INDEX["ice"], dtype=np.int16)
    n_snow = int(round(np.clip(aar, 0, 1) * z.size))
    order = np.argsort(-z)
    flat = np.full(z.size, CLASS_INDEX["ice"], dtype=np.int16)
    flat[order[:n_snow]] = CLASS_INDEX["snow"]
    flat[order[int(0.95 * z.size):]] = CLASS_INDEX["debris"]
    flat[order[:int(round(cloud_top * z.size))]] = CLASS_INDEX["cloud"]
    cls[mask] = flat
    return cls


def write_demo_stats(out_dir: str | Path, years: pd.DataFrame) -> list[Path]:
    """Statistics CSVs of the demo scenes (three per glacier-year), named by the
    file-name rule (``S2_<YYYYMMDD>.csv``, one per date, all glaciers in it)."""
    import geopandas as gpd

    from utils.mapping.glacier_stats import glacier_stats, write_stats_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = list(pd.unique(years["RGIId"]))
    glaciers = {g: _glacier(k) for k, g in enumerate(ids)}
    scenes: dict[str, list[pd.DataFrame]] = {}
    for rec in years.itertuples(index=False):
        outline, dem, transform, mask = glaciers[rec.RGIId]
        gdf = gpd.GeoDataFrame({"RGIId": [rec.RGIId]}, geometry=[outline], crs=32632)
        for date, aar, cloud in ((f"{rec.year}0715", min(1.0, rec.aar + 0.25), 0.0),
                                 (f"{rec.year}0905", rec.aar, 0.0),
                                 (f"{rec.year}0925", rec.aar, 0.5)):
            cls = _class_map(dem, mask, aar, cloud)
            st = glacier_stats(cls, gdf, transform, 32632, dem=dem)
            scenes.setdefault(date, []).append(st)
    paths = []
    for date, parts in sorted(scenes.items()):
        p = out / f"S2_{date}.csv"
        write_stats_csv(pd.concat(parts, ignore_index=True), p, overwrite=True)  # as apply.py
        paths.append(p)
    return paths


def map_demo_years(out_dir: str | Path, model: str | Path, stats: str | Path,
                   years: pd.DataFrame | None = None, seed: int = 0,
                   engine: str = "dense", progress: bool = True) -> list[Path]:
    """Render the end-of-season scenes of the demo glacier-years and map them as ``apply.py``
    does; returns the per-scene statistics CSVs, oldest first.

    Scenes (:func:`utils.demo.years.write_year_scenes`, one per year, each glacier's
    true AAR the real one) go to ``out_dir/massbalance/scenes/``; each is mapped with
    :class:`utils.mapping.pipeline.MapRequest` + :func:`~utils.mapping.pipeline.map_scene`
    (DEM, features derived from it and the scene's sun angles, 3 x 3 smoothing) into
    ``out_dir/massbalance/maps/<scene>_<date>_facies.tif`` with its statistics CSV
    ``maps/S2_<YYYYMMDD>.csv`` (dated by the file-name rule). The demo's own folders:
    files of the same names are replaced.

    Args:
        model: weights (``.h5``) of a facies model, e.g. the demo's
            ``demo/weights/0_cnn_afterconfidentlearning_weights.h5``.
        stats: the normalisation statistics it was trained with (``stats.json``).
        years: real glacier-years (default: ``demo_years.json``).
        engine: ``apply.py``'s ``--engine``; the default gives the study's labels (each
            map_scene call builds its engine anew: a few seconds per scene).
    """
    from tqdm.auto import tqdm

    from utils.demo.years import write_year_scenes
    from utils.mapping.pipeline import MapRequest, map_scene

    res = Path(out_dir) / "massbalance"
    years = load_demo_years() if years is None else years
    folders = write_year_scenes(res / "scenes", years, seed)
    maps = res / "maps"
    maps.mkdir(exist_ok=True)
    csvs = []
    for folder in tqdm(folders, desc="mapping demo years", unit="scene", disable=not progress):
        sun = json.loads((folder / "scene.json").read_text())
        date = folder.name.rsplit("_", 1)[1]
        req = MapRequest(str(model), folder / "optical.tif", maps / f"{folder.name}_facies.tif",
                         folder / "outlines.geojson", stats=stats, dem_path=folder / "dem.tif",
                         derive_features=True, sun_azimuth=sun["sun_azimuth_deg"],
                         sun_elevation=sun["sun_elevation_deg"],
                         stats_csv=maps / f"S2_{date}.csv", engine=engine, overwrite=True)
        map_scene(req, progress=False, log=lambda _msg: None)
        csvs.append(maps / f"S2_{date}.csv")
    return csvs


def run_demo(out_dir: Path, stats_csvs: Sequence[Path] | None = None,
             years: pd.DataFrame | None = None) -> dict:
    """Series, end-of-season pick and regressions on the demo glacier-years.

    Args:
        out_dir: demo folder; results go to ``out_dir/massbalance/``.
        stats_csvs: per-scene statistics CSVs of the mapped demo scenes (named by
            the file-name rule), e.g. from :func:`map_demo_years`; default: stand-in
            CSVs written from class maps of the placed snow line (module docstring).
        years: real glacier-years (default: ``demo_years.json``).

    Returns the key numbers: r and RMSE (m w.e.) of the pooled leave-one-glacier-out
    and glacier-specific leave-one-year-out regressions on the mapped AAR and on the
    true AAR of the same glacier-years, and the ratios mapped r / true r.
    """
    import matplotlib.pyplot as plt

    from utils.plots import save_figure

    res = Path(out_dir) / "massbalance"
    res.mkdir(parents=True, exist_ok=True)
    years = load_demo_years() if years is None else years
    stand_in = stats_csvs is None
    if stand_in:
        stats_csvs = write_demo_stats(res / "stats", years)
    series, d1 = collect_series(stats_csvs)
    eos = end_of_season(series)
    links = years[["RGIId", "WGMS_ID"]].drop_duplicates()
    table, d2 = join_balances(eos, years, links, source="demo series")
    mapped = evaluate(table, ["aar"], glacier="RGIId")
    true = evaluate(table, ["wgms_aar"], glacier="RGIId")
    out = {"glacier_years": len(table), "glaciers": int(table["RGIId"].nunique()),
           "mapped_with": "demo class maps (stand-in)" if stand_in else "given statistics CSVs",
           "aar_mae": float((table["aar"] - table["wgms_aar"]).abs().mean())}
    for name, ev in (("mapped", mapped), ("true", true)):
        for scheme in ("pooled_logo", "specific_loyo"):
            s = ev.scores.loc[scheme]
            out[f"{name}_{scheme}_r"] = float(s["r"])
            out[f"{name}_{scheme}_rmse_mwe"] = float(s["rmse_mwe"])
    for scheme in ("pooled_logo", "specific_loyo"):
        out[f"ratio_{scheme}_r"] = out[f"mapped_{scheme}_r"] / out[f"true_{scheme}_r"]
    for name, df in (("series.csv", series), ("end_of_season.csv", eos),
                     ("dropped.csv", concat_dropped(d1, d2))):
        write_csv(df, res / name, overwrite=True, what=name)  # the demo's own folder
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    plot_scatter(mapped, "pooled_logo", "mapped AAR, leave one glacier out", "RGIId", axes[0])
    plot_scatter(true, "pooled_logo", "true AAR, leave one glacier out", "RGIId", axes[1])
    save_figure(fig, res / "demo_scatter")
    plt.close(fig)
    out["results"] = str(res)
    return out

