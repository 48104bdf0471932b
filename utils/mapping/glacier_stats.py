"""Per-glacier statistics of a facies map: class areas, fractions, AAR, snow-line altitude.

One row per outline polygon, keyed by its id field (``RGIId`` if present, else
``rgi_id`` or ``id``, else the feature's index). Pixels belong to a polygon when
their centre lies inside it (``rasterio.features.rasterize``, as the map).

Columns (areas in km², from the pixel area of the map's CRS: constant for a
projected CRS, per row on the WGS 84 ellipsoid for a geographic one):

- ``glacier_area_km2``: the polygon's pixels inside the map;
  ``outline_area_km2``: geodesic area of the outline polygon (differs where the
  scene cuts a glacier);
- ``unclassified_km2``: pixels without a class (nodata in an input);
- ``area_<class>_km2`` for the 8 classes (they and ``unclassified_km2`` sum to
  ``glacier_area_km2``);
- ``observed_km2``: classified area excluding shadow and cloud (the surface
  that was seen); ``frac_<class>`` = class area / observed area for the other
  classes;
- ``aar``: accumulation-area ratio = (snow + firn) area / observed area;
- ``mean_confidence``: mean confidence of the classified pixels (when given);
- ``sla_m`` (with a DEM): snow-line altitude in metres, see :func:`snow_line_altitude`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.windows import Window

from utils.files import atomic_output
from utils.scene.raster import pixel_areas_m2
from utils.study import CLASS_INDEX, CLASS_NODATA, CLASSES, N_CLASSES

#: Classes whose area makes the accumulation area (AAR numerator).
ACCUMULATION: tuple[str, ...] = ("snow", "firn")
#: Classes below the snow line (the other side of the snow-line separation).
ABLATION: tuple[str, ...] = ("ice", "debris")
#: Classes that hide the surface: excluded from the observed area.
EXCLUDED: tuple[str, ...] = ("shadow", "cloud")
#: Id fields looked for, in order (exact name first, then case-insensitive).
ID_FIELDS: tuple[str, ...] = ("RGIId", "rgi_id", "id")


def outline_id_field(columns: Sequence[str]) -> str | None:
    """The id column of an outline table: RGIId, rgi_id or id (None: use the index)."""
    cols = list(columns)
    for name in ID_FIELDS:
        if name in cols:
            return name
    lower = {c.lower(): c for c in cols}
    for name in ID_FIELDS:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def snow_line_altitude(elevation: np.ndarray, accumulation: np.ndarray) -> float:
    """Snow-line altitude (m): the threshold that best separates the two groups by elevation.

    Args:
        elevation: (n,) elevations of classified pixels (finite).
        accumulation: (n,) bool, True for accumulation pixels (snow, firn),
            False for ablation pixels (ice, debris).

    Returns:
        The threshold t maximising the number of correctly separated pixels,
        #(accumulation with z >= t) + #(ablation with z < t). Candidate thresholds
        are the midpoints between consecutive distinct elevations (and the lowest and
        highest elevation, for "everything above"/"everything below"); when several
        candidates tie, the median of the tied candidates. NaN when either group is
        empty (the snow line is not on the glacier).
    """
    z = np.asarray(elevation, dtype=np.float64).ravel()
    acc = np.asarray(accumulation, dtype=bool).ravel()
    if z.shape != acc.shape:
        raise ValueError(f"elevation {z.shape} and accumulation {acc.shape} differ in shape")
    keep = np.isfinite(z)
    z, acc = z[keep], acc[keep]
    za, zb = np.sort(z[acc]), np.sort(z[~acc])
    if za.size == 0 or zb.size == 0:
        return float("nan")
    u = np.unique(z)
    # threshold candidates: u[0] (all above), midpoints, +inf (all below)
    cand = np.concatenate(([u[0]], (u[:-1] + u[1:]) / 2, [np.inf]))
    a_below = np.searchsorted(za, cand, side="left")
    b_below = np.searchsorted(zb, cand, side="left")
    score = (za.size - a_below) + b_below
    best = np.flatnonzero(score == score.max())
    t = np.where(np.isinf(cand[best]), u[-1], cand[best])
    return float(np.median(t))


def _window_of(geom: Any, transform: Affine, height: int, width: int) -> Window | None:
    """Pixel window covering ``geom``'s bounds, clipped to the map (None if outside)."""
    minx, miny, maxx, maxy = geom.bounds
    inv = ~transform
    cols, rows = zip(*(inv @ (x, y) for x in (minx, maxx) for y in (miny, maxy)), strict=True)
    r0 = max(0, int(np.floor(min(rows))))
    c0 = max(0, int(np.floor(min(cols))))
    r1 = min(height, int(np.ceil(max(rows))))
    c1 = min(width, int(np.ceil(max(cols))))
    if r1 <= r0 or c1 <= c0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _geodesic_areas_km2(outlines: Any) -> np.ndarray:
    """Geodesic area (km²) of each outline on WGS 84 (NaN where it cannot be computed)."""
    from pyproj import Geod

    try:
        geo = outlines.geometry.to_crs(4326)
    except Exception:  # noqa: BLE001 - no CRS or not convertible
        return np.full(len(outlines), np.nan)
    geod = Geod(ellps="WGS84")
    return np.array([abs(geod.geometry_area_perimeter(g)[0]) / 1e6 for g in geo])


def glacier_stats(
    classes: np.ndarray,
    outlines: Any,
    transform: Affine,
    crs: Any,
    dem: np.ndarray | Callable[[Window], np.ndarray] | None = None,
    confidence: np.ndarray | None = None,
    nodata: int = CLASS_NODATA,
    accumulation: Sequence[str] = ACCUMULATION,
    ablation: Sequence[str] = ABLATION,
    excluded: Sequence[str] = EXCLUDED,
    id_field: str | None = None,
) -> pd.DataFrame:
    """Per-polygon statistics of a class map (see the module docstring for the columns).

    Args:
        classes: (H, W) integer class map (0..7 or ``nodata``) on the grid
            (``transform``, ``crs``).
        outlines: GeoDataFrame of polygons in ``crs`` (one row per glacier).
        dem: elevation in metres on the same grid, as an (H, W) array or a function
            returning the (h, w) float array of a rasterio ``Window`` (NaN = missing);
            enables ``sla_m``.
        confidence: (H, W) float confidence (NaN where unclassified); enables
            ``mean_confidence``.
        accumulation, ablation: class names above / below the snow line (AAR uses
            ``accumulation``).
        excluded: classes left out of the observed area.
        id_field: id column (default: :func:`outline_id_field`).

    Returns:
        DataFrame, one row per outline, index = running number.
    """
    cls = np.asarray(classes)
    h, w = cls.shape
    for group in (accumulation, ablation, excluded):
        unknown = [c for c in group if c not in CLASS_INDEX]
        if unknown:
            raise ValueError(f"unknown class(es) {unknown}; classes are {list(CLASSES)}")
    acc_idx = [CLASS_INDEX[c] for c in accumulation]
    abl_idx = [CLASS_INDEX[c] for c in ablation]
    obs_cls = [c for c in CLASSES if c not in excluded]
    field = id_field if id_field is not None else outline_id_field(outlines.columns)
    ids = (outlines[field].astype(str).tolist() if field is not None
           else [str(i) for i in range(len(outlines))])
    key = field or "index"
    outline_km2 = _geodesic_areas_km2(outlines)
    rows = []
    for k, geom in enumerate(outlines.geometry):
        row: dict[str, Any] = {key: ids[k], "glacier_area_km2": 0.0,
                               "outline_area_km2": outline_km2[k], "unclassified_km2": 0.0}
        class_km2 = np.zeros(N_CLASSES)
        win = _window_of(geom, transform, h, w) if geom is not None else None
        pm = None
        if win is not None:
            wt = transform @ Affine.translation(win.col_off, win.row_off)
            pm = rasterize([(geom, 1)], out_shape=(win.height, win.width), transform=wt,
                           fill=0, dtype="uint8", all_touched=False).view(bool)
        if pm is not None and pm.any():
            sl = (slice(win.row_off, win.row_off + win.height),
                  slice(win.col_off, win.col_off + win.width))
            c = cls[sl][pm].astype(np.int64)
            rr = np.nonzero(pm)[0]
            a = pixel_areas_m2(crs, wt, np.arange(win.height))[rr] / 1e6
            row["glacier_area_km2"] = float(a.sum())
            ok = c != nodata
            row["unclassified_km2"] = float(a[~ok].sum())
            class_km2 = np.bincount(c[ok], weights=a[ok], minlength=N_CLASSES)[:N_CLASSES]
            if confidence is not None:
                conf = np.asarray(confidence)[sl][pm][ok]
                conf = conf[np.isfinite(conf)]
                row["mean_confidence"] = float(conf.mean()) if conf.size else np.nan
            if dem is not None:
                z = dem(win) if callable(dem) else np.asarray(dem)[sl]
                z = np.asarray(z, dtype=np.float64)[pm]
                sel = np.isin(c, acc_idx + abl_idx) & np.isfinite(z)
                row["sla_m"] = snow_line_altitude(z[sel], np.isin(c[sel], acc_idx))
        else:
            if confidence is not None:
                row["mean_confidence"] = np.nan
            if dem is not None:
                row["sla_m"] = np.nan
        observed = float(sum(class_km2[CLASS_INDEX[n]] for n in obs_cls))
        row["observed_km2"] = observed
        for i, name in enumerate(CLASSES):
            row[f"area_{name}_km2"] = float(class_km2[i])
        for name in obs_cls:
            row[f"frac_{name}"] = class_km2[CLASS_INDEX[name]] / observed if observed else np.nan
        row["aar"] = (float(class_km2[acc_idx].sum()) / observed) if observed else np.nan
        rows.append(row)
    order = [key, "glacier_area_km2", "outline_area_km2", "unclassified_km2", "observed_km2"]
    order += [f"area_{n}_km2" for n in CLASSES] + [f"frac_{n}" for n in obs_cls] + ["aar"]
    order += [c for c in ("mean_confidence", "sla_m") if rows and c in rows[0]]
    return pd.DataFrame(rows, columns=order)


def write_stats_csv(df: pd.DataFrame, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the statistics as CSV via a temporary file renamed on success (no clobber)."""
    with atomic_output(path, overwrite, what="statistics CSV") as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")
    return Path(path).absolute()
