"""Glacier mask -> outline polygons -> GeoPackage.

Polygons follow the pixel edges of 4-connected glacier regions
(``rasterio.features.shapes``), in the scene's CRS. Polygons smaller than the
minimum area are dropped and holes (nunataks) smaller than it are filled; larger
holes are kept. Each polygon gets an ``id`` (1 = largest) and ``area_km2``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.features import shapes
from rasterio.transform import Affine

from utils.files import atomic_output, check_output
from utils.outlines import OutlineError

LAYER = "glacier_outlines"


def mask_to_polygons(mask: np.ndarray, transform: Affine, crs: CRS, min_area_km2: float = 0.01):
    """GeoDataFrame (id, area_km2, geometry) of the glacier regions of bool (H, W) ``mask``.

    ``transform`` maps pixel corners to ``crs`` (projected, metres).
    """
    import geopandas as gpd

    if crs is None or not crs.is_projected:
        raise OutlineError(f"polygons need a projected CRS in metres; got "
                           f"{crs.to_string() if crs else 'none'}")
    min_m2 = min_area_km2 * 1e6
    polys = []
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    for geom, _ in shapes(m, mask=m.astype(bool), transform=transform, connectivity=4):
        poly = shapely.geometry.shape(geom)
        if poly.area < min_m2:
            continue
        holes = [h for h in poly.interiors if shapely.Polygon(h).area >= min_m2]
        polys.append(shapely.Polygon(poly.exterior, holes))
    polys.sort(key=lambda p: -p.area)
    return gpd.GeoDataFrame(
        {"id": np.arange(1, len(polys) + 1, dtype=np.int32),
         "area_km2": np.array([p.area / 1e6 for p in polys], dtype=np.float64)},
        geometry=polys, crs=crs.to_wkt())


def write_outlines(gdf, path: str | os.PathLike, overwrite: bool = False) -> None:
    """Write ``gdf`` as a GeoPackage (layer glacier_outlines), atomically."""
    check_output(path, overwrite, "outlines")
    with atomic_output(path, overwrite=overwrite, what="outlines") as tmp:
        with warnings.catch_warnings():  # the temporary name does not end in .gpkg
            warnings.filterwarnings("ignore", "The filename extension", RuntimeWarning)
            gdf.to_file(tmp, driver="GPKG", layer=LAYER)
