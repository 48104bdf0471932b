"""Glacier outlines: read, repaired, reprojected onto the scene grid and rasterised.

Outlines (any vector format GDAL reads: .shp, .geojson, .gpkg) are repaired
with shapely ``make_valid`` (keeping polygonal parts), reprojected to the scene
CRS and rasterised with ``rasterio.features.rasterize`` (a pixel is glacier
when its centre lies inside an outline, as in the study).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.features import rasterize

from utils.errors import SceneError
from utils.scene.raster import Grid


@dataclass
class Outlines:
    """Glacier outlines in the scene CRS.

    ``gdf``: GeoDataFrame of (Multi)Polygons, one row per input feature kept;
    ``notes``: what was repaired, dropped or assumed (for the user).
    """

    gdf: Any
    path: Path
    notes: list[str] = field(default_factory=list)


def _polygonal(geom: Any) -> Any:
    """The polygonal part of a geometry (None when it has none)."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if not merged.is_empty else None


def read_outlines(path: str | os.PathLike, crs: CRS) -> Outlines:
    """Read glacier outlines, repair invalid geometries, reproject to ``crs``.

    Invalid polygons are repaired with ``shapely.make_valid`` (polygonal parts
    kept); features without a polygon are dropped; outlines without a CRS are
    assumed to be in ``crs``. Raises :class:`SceneError` naming the file.
    """
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise SceneError(f"{path}: OUTLINES file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gdf = gpd.read_file(path)
    except Exception as e:  # noqa: BLE001 - any reader failure is the same user error
        raise SceneError(
            f"{path}: cannot read OUTLINES as a vector file (.shp, .geojson, .gpkg): {e}"
        ) from None
    notes: list[str] = []
    if "geometry" not in gdf or len(gdf) == 0:
        raise SceneError(f"{path}: OUTLINES has no features")
    if gdf.crs is None:
        notes.append(f"{path.name} has no CRS; assumed to be the scene's {crs.to_string()}")
        gdf = gdf.set_crs(crs.to_wkt())
    geoms = gdf.geometry.values
    invalid = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if invalid.any():
        geoms = np.where(invalid, shapely.make_valid(geoms), geoms)
        notes.append(f"{path.name}: repaired {int(invalid.sum())} invalid geometr"
                     f"{'y' if invalid.sum() == 1 else 'ies'} with make_valid")
    geoms = np.array([_polygonal(g) for g in geoms], dtype=object)
    keep = np.array([g is not None for g in geoms], dtype=bool)
    if not keep.all():
        notes.append(f"{path.name}: dropped {int((~keep).sum())} feature(s) without a polygon")
    if not keep.any():
        raise SceneError(f"{path}: OUTLINES contains no polygons")
    gdf = gdf.loc[keep].copy()
    gdf = gdf.set_geometry(gpd.GeoSeries(list(geoms[keep]), index=gdf.index, crs=gdf.crs))
    try:
        gdf = gdf.to_crs(crs.to_wkt())
    except Exception as e:  # noqa: BLE001
        raise SceneError(f"{path}: cannot reproject OUTLINES to {crs.to_string()}: {e}") from None
    fixed = [_polygonal(shapely.make_valid(g)) if not g.is_valid else g for g in gdf.geometry]
    gdf = gdf.set_geometry(gpd.GeoSeries(fixed, index=gdf.index, crs=gdf.crs))
    gdf = gdf.loc[[g is not None for g in gdf.geometry]]
    return Outlines(gdf, path, notes)


def glacier_mask(outlines: Outlines, grid: Grid, raster_path: str | os.PathLike) -> np.ndarray:
    """bool (H, W): pixel centre inside any outline. SceneError if no overlap with the scene."""
    left, bottom, right, top = grid.bounds
    scene_box = shapely.box(left, bottom, right, top)
    geoms = list(outlines.gdf.geometry)
    hits = [g for g in geoms if g.intersects(scene_box)]
    if not hits:
        ob = outlines.gdf.total_bounds
        raise SceneError(
            f"{outlines.path}: no outline intersects RASTER {raster_path} (outlines span "
            f"{ob[0]:.0f}..{ob[2]:.0f} x {ob[1]:.0f}..{ob[3]:.0f}, the scene "
            f"{left:.0f}..{right:.0f} x {bottom:.0f}..{top:.0f} in {grid.crs.to_string()})"
        )
    mask = rasterize(((g, 1) for g in hits), out_shape=grid.shape, transform=grid.transform,
                     fill=0, dtype="uint8", all_touched=False).view(bool)
    if not mask.any():
        raise SceneError(
            f"{outlines.path}: outlines overlap RASTER {raster_path} but no pixel centre lies "
            "inside one (outlines smaller than a pixel?)"
        )
    return mask


