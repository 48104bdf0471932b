"""Windowed scene preprocessing (utils.scene): features, proximity, shadows, outlines."""


from __future__ import annotations

from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from mapscene import (
    CRS,
    RES,
    H,
    T,
    W,
    dem_surface,
    from_origin,
    reference,
    write_raster,
)
from shapely.geometry import LineString, Polygon

from utils import terrain as feat
from utils.errors import SceneError
from utils.normalisation import load_stats
from utils.scene.features import (
    FeaturePlan,
    SceneFeatures,
    blocks,
    proximity_at_glacier,
    shadow_halo,
)
from utils.scene.outlines import glacier_mask, read_outlines
from utils.scene.raster import SceneRasters
from utils.study import FEATURES, HALF

# ----------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("sun", [(150.0, 35.0), (20.0, 12.0), (95.0, 25.0), (265.0, 8.0)])
def test_block_features_equal_full_scene_derivation(scene, sun):
    """Windowed features (blocks of 8 rows) == derive_features on the whole scene, padded."""
    _, ref_padded, ref_valid = reference(scene, None, sun)
    with SceneRasters(scene.optical, {"elevation": scene.dem}) as rasters:
        outl = read_outlines(scene.outlines, rasters.grid.crs)
        mask = glacier_mask(outl, rasters.grid, scene.optical)
        np.testing.assert_array_equal(mask, scene.mask)
        plan = FeaturePlan(list(FEATURES), {"slope", "shadow_mask", "hillshade", "proximity"},
                           *sun)
        sf = SceneFeatures(rasters, mask, plan, load_stats(scene.stats))
        sf.prepare(scan_rows=7)
        for r0, r1 in blocks(mask, 8):
            padded, valid = sf.block(r0, r1)
            np.testing.assert_array_equal(valid, ref_valid[r0:r1])
            np.testing.assert_allclose(padded, ref_padded[r0 : r1 + 2 * HALF], atol=1e-6)


def test_proximity_windowed_equals_full():
    from scipy import ndimage

    rng = np.random.default_rng(5)
    field = ndimage.gaussian_filter(rng.standard_normal((150, 60)), 6)
    mask = field > np.quantile(field, 0.6)
    ref = feat.proximity(mask, 30.0)[mask]
    got = proximity_at_glacier(mask, 30.0, block_rows=7, halo=1)  # forces halo doubling
    np.testing.assert_array_equal(got, ref)
    full = np.ones((20, 20), bool)  # whole scene glacier: no outline, proximity 0
    np.testing.assert_array_equal(proximity_at_glacier(full, 10.0, block_rows=3, halo=1),
                                  feat.proximity(full, 10.0)[full])


def test_shadow_halo_is_on_the_sun_side():
    # 1000 m relief, sun 45 degrees high: shadows up to 1000 m = 100 px long (+2 rows)
    up, down = shadow_halo(1000.0, 10.0, 0.0, 45.0)  # sun in the north
    assert 102 <= up <= 103 and down == 2
    up, down = shadow_halo(1000.0, 10.0, 180.0, 45.0)
    assert up == 2 and 102 <= down <= 103
    assert shadow_halo(1000.0, 10.0, 90.0, 45.0)[1] <= 3  # sun in the east: rows barely


def test_resample_bilinear_and_nearest_for_the_shadow_mask(scene, tmp_path):
    shifted = from_origin(600005.0, 5099995.0, RES, RES)  # half a pixel off
    rng = np.random.default_rng(1)
    shadow = (rng.random((H, W)) < 0.3).astype(np.float32)
    s_path = write_raster(tmp_path / "shadow.tif", shadow, transform=shifted)
    d_path = write_raster(tmp_path / "dem.tif", dem_surface(), transform=shifted)
    with pytest.raises(SceneError, match="shadow.tif: shadow_mask raster is not on the grid"):
        SceneRasters(scene.optical, {"shadow_mask": s_path})
    with SceneRasters(scene.optical, {"shadow_mask": s_path, "elevation": d_path},
                      resample=True) as rasters:
        assert sorted(rasters.resampled) == ["elevation", "shadow_mask"]
        s = rasters.read("shadow_mask", 0, H)
        z = rasters.read("elevation", 0, H)
    assert set(np.unique(s[np.isfinite(s)])) <= {0.0, 1.0}  # nearest: still a mask
    inner = z[2:-2, 2:-2]
    # bilinear at half a pixel: the mean of the 4 neighbours of the shifted grid
    d = dem_surface()
    expect = (d[1:-3, 1:-3] + d[2:-2, 1:-3] + d[1:-3, 2:-2] + d[2:-2, 2:-2]) / 4
    np.testing.assert_allclose(inner, expect, rtol=1e-5)


def test_outlines_reprojected_repaired_and_filtered(scene, tmp_path):
    crs = rasterio.crs.CRS.from_string(CRS)
    grid = SimpleNamespace(crs=crs, transform=T, width=W, height=H, shape=(H, W),
                           bounds=(600000.0, 5100000.0 - H * RES, 600000.0 + W * RES, 5100000.0))
    m_utm = glacier_mask(read_outlines(scene.outlines_utm, crs), grid, "scene.tif")
    m_geo = glacier_mask(read_outlines(scene.outlines, crs), grid, "scene.tif")
    np.testing.assert_array_equal(m_geo, m_utm)
    np.testing.assert_array_equal(m_utm, scene.mask)
    # a self-intersecting bow-tie is repaired, a line is dropped
    bowtie = Polygon([T @ (2, 20), T @ (12, 30), T @ (12, 20), T @ (2, 30)])
    assert not bowtie.is_valid
    path = tmp_path / "bad.gpkg"
    gpd.GeoDataFrame({"id": [1, 2]}, geometry=[bowtie, LineString([T @ (0, 0), T @ (5, 5)])],
                     crs=CRS).to_file(path)
    outl = read_outlines(path, crs)
    assert len(outl.gdf) == 1 and outl.gdf.geometry.iloc[0].is_valid
    assert any("repaired 1 invalid" in n for n in outl.notes)
    assert any("dropped 1" in n for n in outl.notes)
    assert glacier_mask(outl, grid, "scene.tif").sum() > 30
    # a shapefile without .prj: assumed to be in the scene's CRS, with a note
    shp = tmp_path / "noprj.shp"
    gpd.GeoDataFrame({"RGIId": ["a", "b"]}, geometry=scene.polys).to_file(shp)
    assert not shp.with_suffix(".prj").exists()
    outl = read_outlines(shp, crs)
    assert any("has no CRS; assumed" in n for n in outl.notes)
    np.testing.assert_array_equal(glacier_mask(outl, grid, "scene.tif"), scene.mask)


