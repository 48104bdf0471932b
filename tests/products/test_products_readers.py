"""Product readers and the stack: values, masks, georeferencing, metadata, bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import (
    NORTH,
    SENSING,
    SUN_AZ,
    SUN_ZEN,
    TILE,
    WEST,
    expected_landsat,
    expected_s2,
    landsat_arrays,
    make_cog_folder,
    make_landsat,
    make_safe,
    s2_arrays,
    stac_item,
    write_band,
)

from utils.products import ProductError, is_product, open_as_stack, open_product, write_stack
from utils.products.base import quality_mask
from utils.study import OPTICAL


def read_stack(path: Path):
    with rasterio.open(path) as src:
        return src.read(), src.transform, src.crs, src.descriptions, src.tags()


def test_safe_jp2_values_masks_grid_and_metadata(s2, tmp_path):
    out = write_stack(open_product(s2.safe), tmp_path / "stack.tif")
    data, t, crs, desc, tags = read_stack(out)
    np.testing.assert_allclose(data, expected_s2(s2.arrays), rtol=0, atol=1e-7, equal_nan=True)
    assert (t.a, t.e, t.c, t.f) == (10.0, -10.0, WEST, NORTH)
    assert crs.to_epsg() == 32632 and desc == OPTICAL
    assert tags["SENSOR"] == "sentinel-2a" and tags["ACQUISITION_DATE"] == "2023-08-15"
    assert float(tags["SUN_AZIMUTH"]) == SUN_AZ
    assert float(tags["SUN_ELEVATION"]) == pytest.approx(90 - SUN_ZEN)
    assert tags["PROCESSING_BASELINE"] == "05.09"
    # snow/ice (SCL 11) and "not vegetated" (5) kept; cloud (9), shadow (3), cirrus (10) masked
    assert np.isfinite(data[:, 0:2, 2:4]).all() and np.isfinite(data[:, 10:12, 0:2]).all()
    assert np.isnan(data[:, 2:4, 2:4]).all() and np.isnan(data[:, 4:6, 4:6]).all()


def test_offset_is_read_from_the_metadata_and_old_baselines_have_none(tmp_path):
    arrays = s2_arrays()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    new = open_product(make_safe(tmp_path / "a", arrays, offset=-500))
    old = open_product(make_safe(tmp_path / "b", arrays, baseline="03.01", offset=None))
    assert new.offset["blue"] == pytest.approx(-0.05) and old.offset["blue"] == 0
    data, *_ = read_stack(write_stack(old, tmp_path / "old.tif"))
    np.testing.assert_allclose(data, expected_s2(arrays, offset=0), atol=1e-7, equal_nan=True)


def test_cog_folder_and_stac_items_equal_the_safe(s2, tmp_path):
    ref, *_ = read_stack(write_stack(open_product(s2.safe), tmp_path / "safe.tif"))
    cogs = make_cog_folder(tmp_path, s2.arrays)
    for i, src in enumerate([cogs, stac_item(cogs),
                             stac_item(cogs, "bare.json", raster_bands=False, sun=False)]):
        product = open_product(src)
        assert (product.sun_azimuth, product.date) == (SUN_AZ, "2023-08-15")
        data, *_ = read_stack(write_stack(product, tmp_path / f"s{i}.tif"))
        np.testing.assert_allclose(data, ref, atol=1e-7, equal_nan=True)


@pytest.mark.parametrize("mtl", ["json", "txt"])
def test_landsat8_values_qa_bits_on_10m(tmp_path, mtl):
    arrays = landsat_arrays()
    product = open_product(make_landsat(tmp_path, arrays, mtl=mtl))
    assert (product.sensor, product.sun_azimuth, product.sun_elevation) == (
        "landsat-8", 145.25, 52.75)
    data, t, *_ = read_stack(write_stack(product, tmp_path / "l8.tif"))
    assert data.shape == (6, 12, 15) and (t.a, t.c, t.f) == (10.0, WEST, NORTH)
    np.testing.assert_allclose(data, expected_landsat(arrays), atol=1e-6, equal_nan=True)
    assert np.isfinite(data[:, 9:12, 9:12]).all()  # snow bit: kept


def test_landsat5_band_mapping(tmp_path):
    arrays = landsat_arrays()
    folder = make_landsat(tmp_path, arrays, craft="LANDSAT_5")
    product = open_product(next(folder.glob("*_MTL.json")))
    assert [Path(product.bands[b]).stem[-2:] for b in OPTICAL] == ["B1", "B2", "B3", "B4",
                                                                   "B5", "B7"]


def test_masked_codes_are_configurable_but_never_snow(s2, tmp_path):
    product = open_product(s2.safe)
    data, *_ = read_stack(write_stack(product, tmp_path / "m.tif", masked=(9,)))
    assert np.isfinite(data[:, 4:6, 4:6]).all()  # cirrus kept now
    assert np.isnan(data[:, 2:4, 2:4]).all()
    with pytest.raises(ProductError, match="snow"):
        write_stack(product, tmp_path / "x.tif", masked=(9, 11))
    assert not (tmp_path / "x.tif").exists()
    with pytest.raises(ProductError, match="snow"):
        quality_mask("qa_pixel", np.zeros(3, np.uint16), (3, 5))


def _granule_r20(safe: Path) -> Path:
    return next((safe / "GRANULE").iterdir()) / "IMG_DATA" / "R20m"


def test_bad_products_name_the_file(s2, tmp_path):
    safe, r20 = s2.safe, _granule_r20(s2.safe)
    b11 = r20 / f"{TILE}_{SENSING}_B11_20m.jp2"
    b11.rename(tmp_path / "b11.jp2")
    with pytest.raises(ProductError, match=r"missing band B11"):
        open_product(safe)
    write_band(r20 / f"{TILE}_20230820T102031_B11_20m.jp2", s2.arrays.dn["swir1"], 20)
    with pytest.raises(ProductError, match="mixed products"):
        open_product(safe)
    (r20 / f"{TILE}_20230820T102031_B11_20m.jp2").unlink()
    (tmp_path / "b11.jp2").rename(b11)
    scl = r20 / f"{TILE}_{SENSING}_SCL_20m.jp2"
    write_band(scl, s2.arrays.scl, 20, west=WEST + 20)
    with pytest.raises(ProductError, match=rf"{scl.name}: the quality band is on another grid"):
        write_stack(open_product(safe), tmp_path / "s.tif")
    assert not (tmp_path / "s.tif").exists()


@pytest.mark.parametrize("baseline, offset, match", [
    ("N/A", -1000, "unknown processing baseline 'N/A'"),
    ("05.10", None, r"processing baseline 05.10 \(>= 04.00\) but no BOA_ADD_OFFSET"),
])
def test_bad_metadata(tmp_path, baseline, offset, match):
    safe = make_safe(tmp_path, s2_arrays(), baseline=baseline, offset=offset)
    with pytest.raises(ProductError, match=rf"MTD_MSIL2A.xml: {match}"):
        open_product(safe)


def test_level1_products_are_refused(tmp_path):
    safe = make_safe(tmp_path, s2_arrays(), level="Level-1C")
    with pytest.raises(ProductError, match="Level-1C"):
        open_product(safe / "MTD_MSIL2A.xml")
    folder = make_landsat(tmp_path, landsat_arrays(), level="L1TP")
    with pytest.raises(ProductError, match="L1TP has no surface reflectance"):
        open_product(folder)


def test_landsat_missing_band_and_mixed_mtls(tmp_path):
    folder = make_landsat(tmp_path, landsat_arrays())
    next(folder.glob("*_SR_B6.TIF")).unlink()
    with pytest.raises(ProductError, match=r"_SR_B6.TIF: missing band SR_B6 \(swir1\)"):
        open_product(folder)
    shutil.copy(next(folder.glob("*_MTL.json")), folder / "LC09_other_MTL.json")
    with pytest.raises(ProductError, match="MTL files of 2 products"):
        open_product(folder)


def test_open_as_stack_passes_rasters_through_and_cleans_up(s2, tmp_path):
    plain = write_band(tmp_path / "plain.tif", np.zeros((3, 3), np.float32), 10)
    assert not is_product(plain) and is_product(s2.safe)
    with open_as_stack(plain) as (path, product):
        assert path == plain and product is None
    with open_as_stack(s2.safe) as (path, product):
        assert path.is_file() and product.sun_azimuth == SUN_AZ
    assert not path.parent.exists()
