"""Per-glacier statistics (utils.mapping.glacier_stats)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine
from shapely.geometry import box

from utils.mapping.glacier_stats import (
    glacier_stats,
    outline_id_field,
    snow_line_altitude,
    write_stats_csv,
)
from utils.scene.raster import pixel_areas_m2
from utils.study import CLASS_INDEX, CLASSES


def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
    """North-up transform (rasterio's from_origin without its affine deprecation warning)."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


ND = -9999
T = from_origin(500000.0, 4000000.0, 10.0, 10.0)  # 10 m pixels, UTM
CRS = "EPSG:32633"


def _poly(r0, r1, c0, c1, t=T):
    """Polygon covering pixel rows r0..r1-1, cols c0..c1-1 (edges between pixels)."""
    x0, y0 = t @ (c0, r0)
    x1, y1 = t @ (c1, r1)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def test_snow_line_perfect_separation_is_the_gap_midpoint():
    z = np.array([3000, 3050, 3100, 3300, 3350, 3500.0])
    acc = np.array([False, False, False, True, True, True])
    assert snow_line_altitude(z, acc) == pytest.approx(3200.0)
    # shuffled order does not matter
    p = np.random.default_rng(0).permutation(6)
    assert snow_line_altitude(z[p], acc[p]) == pytest.approx(3200.0)


def test_snow_line_maximises_correctly_separated_pixels():
    # one ice pixel high up and one snow pixel low down: best threshold still between
    z = np.array([2900, 3000, 3010, 3020, 3400, 3100, 3110, 3120, 3130, 2950.0])
    acc = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], bool)
    assert snow_line_altitude(z, acc) == pytest.approx(3060.0)


def test_snow_line_undefined_without_both_groups():
    assert np.isnan(snow_line_altitude(np.array([1.0, 2.0]), np.array([True, True])))
    assert np.isnan(snow_line_altitude(np.array([]), np.array([], bool)))


def test_id_field_preference():
    assert outline_id_field(["Name", "RGIId", "id"]) == "RGIId"
    assert outline_id_field(["rgi_id", "id"]) == "rgi_id"
    assert outline_id_field(["ID", "name"]) == "ID"
    assert outline_id_field(["name"]) is None


def test_pixel_areas_projected_and_geographic():
    assert pixel_areas_m2(CRS, T, np.arange(3)) == pytest.approx([100.0] * 3)
    # 0.001 degree pixels at the equator and at 60 degrees north (WGS 84: one degree of
    # latitude is 110.574 km at the equator, 111.412 km at 60 N; of longitude 111.320, 55.800)
    tg = from_origin(10.0, 60.0, 0.001, 0.001)
    north = pixel_areas_m2("EPSG:4326", tg, np.array([0]))[0]
    te = from_origin(10.0, 0.0005, 0.001, 0.001)
    equator = pixel_areas_m2("EPSG:4326", te, np.array([0]))[0]
    assert equator == pytest.approx(111_320 * 110_574 * 1e-6, rel=2e-3)
    assert north == pytest.approx(111_412 * 55_800 * 1e-6, rel=2e-3)


@pytest.fixture()
def scene():
    """A 20 x 30 class map with two glaciers, one cut by the map's left edge."""
    cls = np.full((20, 30), ND, np.int16)
    # glacier A: rows 2..11, cols 0..9 inside the map (its outline reaches beyond col 0)
    cls[2:7, 0:10] = CLASS_INDEX["snow"]  # upper half snow (high)
    cls[7:12, 0:10] = CLASS_INDEX["ice"]
    cls[7, 0:4] = CLASS_INDEX["shadow"]
    cls[11, 0:2] = ND  # unclassified pixels inside the glacier
    # glacier B: rows 5..14, cols 15..24: firn/debris/cloud
    cls[5:10, 15:25] = CLASS_INDEX["firn"]
    cls[10:15, 15:25] = CLASS_INDEX["debris"]
    cls[14, 15:25] = CLASS_INDEX["cloud"]
    dem = np.repeat(np.linspace(3500, 3000, 20)[:, None], 30, axis=1)  # high in the north
    outlines = gpd.GeoDataFrame(
        {"RGIId": ["RGI-A", "RGI-B", "RGI-C"]},
        geometry=[_poly(2, 12, -5, 10), _poly(5, 15, 15, 25), _poly(100, 110, 100, 110)],
        crs=CRS,
    )
    return cls, dem, outlines


def test_glacier_stats_areas_fractions_aar_sla(scene):
    cls, dem, outlines = scene
    conf = np.where(cls != ND, 0.8, np.nan).astype(np.float32)
    df = glacier_stats(cls, outlines, T, CRS, dem=dem, confidence=conf)
    assert list(df["RGIId"]) == ["RGI-A", "RGI-B", "RGI-C"]
    a, b, c = (df.iloc[i] for i in range(3))
    px = 100 / 1e6  # km² per pixel
    assert a["glacier_area_km2"] == pytest.approx(100 * px)  # only the part inside the map
    assert a["outline_area_km2"] == pytest.approx(150 * px, rel=2e-3)
    assert a["unclassified_km2"] == pytest.approx(2 * px)
    assert a["area_shadow_km2"] == pytest.approx(4 * px)
    areas = [f"area_{n}_km2" for n in CLASSES]
    for row in (a, b):
        assert row[areas].sum() + row["unclassified_km2"] == pytest.approx(
            row["glacier_area_km2"])
    # observed = classified minus shadow and cloud; AAR = (snow + firn) / observed
    assert a["observed_km2"] == pytest.approx((100 - 2 - 4) * px)
    assert a["aar"] == pytest.approx(50 / 94)
    assert a["frac_snow"] + a["frac_ice"] == pytest.approx(1.0)
    assert "frac_shadow" not in df.columns and "frac_cloud" not in df.columns
    assert b["observed_km2"] == pytest.approx(90 * px)
    assert b["aar"] == pytest.approx(50 / 90)
    assert a["mean_confidence"] == pytest.approx(0.8)
    # snow rows 2..6 (z >= 3368), ice rows 7..11 (z <= 3342): threshold between rows 6 and 7
    z6, z7 = dem[6, 0], dem[7, 0]
    assert a["sla_m"] == pytest.approx((z6 + z7) / 2)
    assert b["sla_m"] == pytest.approx((dem[9, 0] + dem[10, 0]) / 2)
    # glacier C lies outside the map: zero area, undefined ratios
    assert c["glacier_area_km2"] == 0 and np.isnan(c["aar"]) and np.isnan(c["sla_m"])


def test_glacier_stats_configurable_classes_dem_callable_and_index_ids(scene):
    cls, dem, outlines = scene
    outlines = outlines.drop(columns="RGIId")

    def read(win):
        return dem[win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width]

    df = glacier_stats(cls, outlines, T, CRS, dem=read, accumulation=("snow",),
                       excluded=("cloud",))
    assert list(df["index"]) == ["0", "1", "2"]
    assert df.loc[1, "aar"] == 0.0  # firn no longer counts
    assert "frac_shadow" in df.columns and "mean_confidence" not in df.columns
    with pytest.raises(ValueError, match="unknown class"):
        glacier_stats(cls, outlines, T, CRS, accumulation=("slush",))


def test_write_stats_csv_atomic_no_clobber(tmp_path, scene):
    cls, _, outlines = scene
    df = glacier_stats(cls, outlines, T, CRS)
    path = tmp_path / "stats.csv"
    write_stats_csv(df, path)
    back = pd.read_csv(path)
    assert list(back.columns) == list(df.columns) and len(back) == 3
    with pytest.raises(FileExistsError):
        write_stats_csv(df, path)
    write_stats_csv(df.iloc[:1], path, overwrite=True)
    assert len(pd.read_csv(path)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["stats.csv"]  # no temporary left
