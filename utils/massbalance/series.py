"""Glacier time series from the per-glacier statistics of many mapped scenes.

Input: one statistics CSV per scene, as ``apply.py --stats_csv`` writes them (id
column ``RGIId``, ``rgi_id`` or ``id``; ``glacier_area_km2``, ``outline_area_km2``,
``observed_km2``, ``area_<class>_km2`` for the project's 8 classes, ``aar``, and
``sla_m`` when a DEM was given). A scene's date and sensor come from

- a **catalogue**: a CSV with columns ``stats_csv`` (path, relative to the
  catalogue's folder), ``date`` (YYYY-MM-DD) and ``sensor``; or
- the **file-name rule**: the first date in the file name, written ``YYYYMMDD`` or
  ``YYYY-MM-DD`` (e.g. ``S2B_20190905_hef.csv``), and the sensor from a token of
  the name: ``S2``/``S2A``/``S2B`` -> Sentinel-2, ``L5``/``LT05`` -> Landsat 5,
  ``L7``/``LE07`` -> Landsat 7, ``L8``/``LC08`` -> Landsat 8, ``L9``/``LC09`` ->
  Landsat 9 (empty when none).

The series is one tidy table keyed by (``RGIId``, ``date``). ``observed_fraction``
= observed area (not cloud, shadow or nodata) / outline area (the mapped glacier
area where the outline area is unknown), at most 1.

End of season (:func:`end_of_season`): per glacier and hydrological year (from
1 October of the previous year in the northern hemisphere, ``start_month`` = 10;
use 4 for the southern hemisphere), the scene with the **lowest AAR among the
well-observed scenes** (observed fraction >= ``min_observed``, default 0.7): the
snow line is highest at the end of the ablation season, and fresh snow or an
unmapped snow patch only raise the AAR. Ties go to the later scene. A year
without a well-observed scene is flagged ``well_observed = False`` and keeps its
best-observed scene, for plots only; the regressions use flagged years not at all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from utils.massbalance.common import (
    MassBalanceError,
    concat_dropped,
    dropped_table,
    numeric,
    read_table,
)
from utils.study import CLASSES

AREA_COLUMNS = tuple(f"area_{c}_km2" for c in CLASSES)
STATS_COLUMNS = ("glacier_area_km2", "observed_km2", "aar", *AREA_COLUMNS)
ID_FIELDS = ("RGIId", "rgi_id", "id")
SENSORS = {"S2": "Sentinel-2", "S2A": "Sentinel-2", "S2B": "Sentinel-2", "L5": "Landsat 5",
           "LT05": "Landsat 5", "L7": "Landsat 7", "LE07": "Landsat 7", "L8": "Landsat 8",
           "LC08": "Landsat 8", "L9": "Landsat 9", "LC09": "Landsat 9"}
_DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")
MIN_OBSERVED = 0.7


def scene_from_name(path: str | os.PathLike) -> tuple[pd.Timestamp, str]:
    """(date, sensor) of a statistics CSV by the file-name rule (module docstring)."""
    name = Path(path).name
    m = _DATE.search(name)
    if m is None:
        raise MassBalanceError(f"{path}: no date (YYYYMMDD or YYYY-MM-DD) in the file name; "
                               "name the file by its scene date or list it in a catalogue")
    date = pd.Timestamp(f"{m[1]}-{m[2]}-{m[3]}")
    tokens = re.split(r"[^A-Za-z0-9]+", Path(name).stem.upper())
    sensor = next((SENSORS[t] for t in tokens if t in SENSORS), "")
    return date, sensor


def read_catalogue(path: str | os.PathLike) -> pd.DataFrame:
    """A scene catalogue: columns ``stats_csv`` (absolute Path), ``date``, ``sensor``."""
    df = read_table(path, ("stats_csv", "date", "sensor"))
    dates = pd.to_datetime(df["date"], format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        i = dates.isna().to_numpy().nonzero()[0][0]
        raise MassBalanceError(f"{path}: row {df['_row'].iloc[i]}: date "
                               f"{df['date'].iloc[i]!r} is not YYYY-MM-DD")
    base = Path(path).parent
    return pd.DataFrame({"stats_csv": [base / p for p in df["stats_csv"]], "date": dates,
                         "sensor": df["sensor"]})


def read_stats(path: str | os.PathLike, date: pd.Timestamp, sensor: str) -> pd.DataFrame:
    """One scene's statistics CSV as series rows (see :func:`collect_series`).

    Raises when an id or statistics column is missing, or the class columns are
    not the project's 8 classes (a map from another class scheme).
    """
    df = read_table(path, ())
    field = next((f for f in ID_FIELDS if f in df.columns), None)
    if field is None:
        raise MassBalanceError(f"{path}: no glacier id column ({', '.join(ID_FIELDS)})")
    area_cols = [c for c in df.columns if re.fullmatch(r"area_.+_km2", c)]
    if set(area_cols) != set(AREA_COLUMNS):
        raise MassBalanceError(f"{path}: class columns {', '.join(area_cols) or 'none'} are not "
                               f"this project's classes ({', '.join(CLASSES)}): a map from "
                               "another class scheme?")
    missing = [c for c in STATS_COLUMNS if c not in df.columns]
    if missing:
        raise MassBalanceError(f"{path}: missing column(s) {', '.join(missing)}; not the "
                               "per-glacier statistics of a facies map?")
    df[field] = df[field].str.strip()
    out = pd.DataFrame({"RGIId": df[field], "date": date, "sensor": sensor,
                        "stats_csv": str(path), "_row": df["_row"]})
    for c in ("glacier_area_km2", "observed_km2", *AREA_COLUMNS, "aar"):
        out[c] = numeric(df, c, path)
    out["sla_m"] = numeric(df, "sla_m", path) if "sla_m" in df else np.nan
    outline = numeric(df, "outline_area_km2", path) if "outline_area_km2" in df else np.nan
    whole = pd.Series(outline, index=out.index).fillna(out["glacier_area_km2"])
    out["observed_fraction"] = (out["observed_km2"] / whole.where(whole > 0)).clip(upper=1)
    for c in CLASSES:
        if c not in ("shadow", "cloud"):
            out[f"frac_{c}"] = out[f"area_{c}_km2"] / out["observed_km2"].where(
                out["observed_km2"] > 0)
    return out


def collect_series(stats_csvs: Sequence[str | os.PathLike] = (),
                   catalogue: str | os.PathLike | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collect statistics CSVs into one table keyed by (RGIId, date).

    Scenes come from ``catalogue`` (date and sensor given) and from ``stats_csvs``
    (date and sensor by the file-name rule). Returns (series, dropped): series
    columns ``RGIId``, ``date``, ``sensor``, ``glacier_area_km2``, ``observed_km2``,
    ``observed_fraction``, ``area_<class>_km2``, ``frac_<class>``, ``aar``,
    ``sla_m``, ``stats_csv``. Dropped (and reported): rows without an id, and of
    two scenes of one glacier on one day the less observed one.
    """
    scenes = [(Path(p), *scene_from_name(p)) for p in stats_csvs]
    if catalogue is not None:
        cat = read_catalogue(catalogue)
        scenes += list(cat.itertuples(index=False, name=None))
    if not scenes:
        raise MassBalanceError("no statistics CSVs given")
    parts = [read_stats(p, d, s) for p, d, s in scenes]
    t = pd.concat(parts, ignore_index=True)
    noid = t["RGIId"] == ""
    drops = [dropped_table([{"file": f, "row": r, "what": "glacier", "reason": "no glacier id"}
                            for f, r in zip(t["stats_csv"][noid], t["_row"][noid],
                                            strict=True)])]
    t = t[~noid].sort_values(["RGIId", "date", "observed_fraction"],
                             ascending=[True, True, False], na_position="last")
    dup = t.duplicated(["RGIId", "date"], keep="first")
    drops.append(dropped_table([
        {"file": f, "row": r, "what": f"{g} {d:%Y-%m-%d}",
         "reason": "another scene of the same glacier and day observes more of it"}
        for f, r, g, d in zip(t["stats_csv"][dup], t["_row"][dup], t["RGIId"][dup],
                              t["date"][dup], strict=True)]))
    t = t[~dup].drop(columns="_row").reset_index(drop=True)
    first = ["RGIId", "date", "sensor", "glacier_area_km2", "observed_km2", "observed_fraction"]
    rest = [c for c in t.columns if c not in first and c != "stats_csv"]
    return t[[*first, *rest, "stats_csv"]], concat_dropped(*drops)


def hydrological_year(dates: pd.Series, start_month: int = 10) -> pd.Series:
    """The year in which each date's balance year ends (it starts on day 1 of
    ``start_month``; 10 = October, northern hemisphere)."""
    d = pd.to_datetime(dates)
    return (d.dt.year + (d.dt.month >= start_month).astype(int)).astype(int) \
        if start_month > 1 else d.dt.year


def end_of_season(series: pd.DataFrame, min_observed: float = MIN_OBSERVED,
                  start_month: int = 10) -> pd.DataFrame:
    """One row per (RGIId, year): the end-of-season scene (rule in the module docstring).

    Adds ``year``, ``n_scenes``, ``n_well_observed`` and ``well_observed``.
    """
    t = series.assign(year=hydrological_year(series["date"], start_month))
    t["_ok"] = (t["observed_fraction"] >= min_observed) & t["aar"].notna()
    # well-observed first, then lowest AAR, then latest; else best observed
    key = np.where(t["_ok"], t["aar"], np.inf)
    obs = np.where(t["_ok"], 0.0, -t["observed_fraction"].fillna(-1))
    t = t.assign(_key=key, _obs=obs, _late=-t["date"].astype("int64"))
    t = t.sort_values(["RGIId", "year", "_key", "_obs", "_late"])
    g = t.groupby(["RGIId", "year"], sort=True)
    best = g.head(1).set_index(["RGIId", "year"])
    best["n_scenes"] = g.size()
    best["n_well_observed"] = g["_ok"].sum().astype(int)
    best["well_observed"] = best["n_well_observed"] > 0
    return best.drop(columns=["_ok", "_key", "_obs", "_late"]).reset_index()


def plot_series(series: pd.DataFrame, eos: pd.DataFrame, rgi_ids: Sequence[str],
                min_observed: float = MIN_OBSERVED) -> plt.Figure:
    """AAR and snow-line altitude over time of a few glaciers (one row each): every scene
    (marker shade = observed fraction) and the end-of-season picks (red; hollow when
    the year is flagged as too little observed)."""
    fig, axes = plt.subplots(len(rgi_ids), 2, figsize=(10, 2.4 * len(rgi_ids)), squeeze=False,
                             sharex=True)
    for (ax_a, ax_s), gid in zip(axes, rgi_ids, strict=True):
        s, e = series[series["RGIId"] == gid], eos[eos["RGIId"] == gid]
        for ax, col, label in ((ax_a, "aar", "AAR"), (ax_s, "sla_m", "snow-line altitude (m)")):
            sc = ax.scatter(s["date"], s[col], c=s["observed_fraction"], cmap="Greys",
                            vmin=0, vmax=1, s=14, edgecolors="0.5", linewidths=0.3)
            ok = e["well_observed"]
            ax.plot(e["date"][ok], e[col][ok], "o-", color="tab:red", ms=4, lw=0.8,
                    label="end of season")
            ax.plot(e["date"][~ok], e[col][~ok], "o", mfc="none", color="tab:red", ms=5,
                    label=f"observed < {min_observed:.0%}")
            ax.set_ylabel(label)
        ax_a.set_title(gid, fontsize=9, loc="left")
    for ax in axes[-1]:
        loc = mdates.AutoDateLocator(maxticks=6)
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.colorbar(sc, ax=axes[:, 1], label="observed fraction", shrink=0.8)
    return fig
