"""Catalogues (CSV, folder, STAC ItemCollection), the manifest and the table, without Dask."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from utils.batch.catalog import CatalogError, read_catalog
from utils.batch.manifest import Manifest, fingerprint, unchanged
from utils.batch.table import assemble

MTL = {"LANDSAT_METADATA_FILE": {
    "PRODUCT_CONTENTS": {"LANDSAT_PRODUCT_ID": "LC08_L2SP_195028_20230815_20230822_02_T1",
                         "PROCESSING_LEVEL": "L2SP"},
    "IMAGE_ATTRIBUTES": {"SPACECRAFT_ID": "LANDSAT_8", "DATE_ACQUIRED": "2023-08-15"}}}


def test_csv_catalogue_relative_paths_ids_and_errors(tmp_path):
    (tmp_path / "a.tif").write_bytes(b"")
    (tmp_path / "cat.csv").write_text("path,date,sensor,sun_azimuth,sun_elevation,dem\n"
                                      "a.tif,2021-08-01,sentinel-2a,150,40,dems/x.tif\n"
                                      "b.tif,2021-08-02,landsat-8,,,\n")
    a, b = read_catalog(tmp_path / "cat.csv", tmp_path / "items")
    assert a.path == str(tmp_path / "a.tif") and a.dem == str(tmp_path / "dems" / "x.tif")
    assert (a.id, a.sun_azimuth, b.sun_elevation, b.dem) == (
        "2021-08-01_sentinel-2a_a", 150.0, None, None)
    (tmp_path / "bad.csv").write_text("path,date\na.tif,1.8.2021\n")
    with pytest.raises(CatalogError, match=r"bad.csv, line 2: date '1.8.2021' is not YYYY-MM-DD"):
        read_catalog(tmp_path / "bad.csv", tmp_path / "items")
    (tmp_path / "dup.csv").write_text("path,id\na.tif,x\nb.tif,x\n")
    with pytest.raises(CatalogError, match="the same id x"):
        read_catalog(tmp_path / "dup.csv", tmp_path / "items")
    (tmp_path / "nopath.csv").write_text("file\na.tif\n")
    with pytest.raises(CatalogError, match="no 'path' column"):
        read_catalog(tmp_path / "nopath.csv", tmp_path / "items")


def test_folder_of_products_takes_date_and_sensor_from_the_metadata(tmp_path):
    folder = tmp_path / "LC08_L2SP_195028_20230815_20230822_02_T1"
    folder.mkdir()
    mtl = json.loads(json.dumps(MTL))
    contents = mtl["LANDSAT_METADATA_FILE"]["PRODUCT_CONTENTS"]
    mtl["LANDSAT_METADATA_FILE"]["LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"] = {}
    for key in [f"FILE_NAME_BAND_{n}" for n in range(2, 8)] + ["FILE_NAME_QUALITY_L1_PIXEL"]:
        contents[key] = f"{folder.name}_{key}.TIF"
        (folder / contents[key]).write_bytes(b"")  # names are read, pixels are not
    (folder / f"{folder.name}_MTL.json").write_text(json.dumps(mtl))
    (tmp_path / "notes.txt").write_text("not a product")
    (scene,) = read_catalog(tmp_path, tmp_path / "items")
    assert (scene.date, scene.sensor, scene.path) == ("2023-08-15", "landsat-8", str(folder))
    with pytest.raises(CatalogError, match="lists no scenes"):
        read_catalog((tmp_path / "empty").mkdir() or tmp_path / "empty", tmp_path / "items2")


def test_stac_item_collection_is_split_into_items_with_absolute_hrefs(tmp_path):
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "S2B_32TMS_20230820_0_L2A",
            "geometry": None, "links": [], "stac_extensions": [],
            "properties": {"datetime": "2023-08-20T10:20:31Z", "platform": "sentinel-2b"},
            "assets": {"blue": {"href": "cogs/B02.tif"}}}
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection",
                                                     "features": [item]}))
    (scene,) = read_catalog(tmp_path / "items.json", tmp_path / "out" / "items")
    written = json.loads(Path(scene.path).read_text())
    assert scene.id == "S2B_32TMS_20230820_0_L2A"
    assert written["assets"]["blue"]["href"] == str(tmp_path / "cogs" / "B02.tif")


def test_manifest_survives_a_torn_line_and_checks_inputs(tmp_path):
    f = tmp_path / "scene.tif"
    f.write_bytes(b"abc")
    fp = fingerprint(f)
    out = tmp_path / "facies.tif"
    out.write_bytes(b"")
    m = Manifest(tmp_path)
    m.append({"scene": "s1", "status": "done", "inputs": {"scene": fp},
              "shared": {"model": {"sha256": "m1"}}, "outputs": {"facies": str(out)}})
    with open(m.path, "a") as fh:
        fh.write('{"scene": "s2", "sta')  # the crash
    m = Manifest(tmp_path)
    m.append({"scene": "s3", "status": "failed", "error": "x"})
    m = Manifest(tmp_path)
    assert sorted(m.latest) == ["s1", "s3"]
    shared = {"model": {"sha256": "m1"}}
    assert m.is_done("s1", {"scene": f}, shared)
    assert not m.is_done("s1", {"scene": f}, {"model": {"sha256": "m2"}})  # another model
    assert not m.is_done("s3", {"scene": f}, shared)
    os.utime(f, ns=(1, 1))  # touched, same content: the checksum decides
    assert unchanged(fp, f) and m.is_done("s1", {"scene": f}, shared)
    f.write_bytes(b"abd")
    assert not m.is_done("s1", {"scene": f}, shared)
    f.write_bytes(b"abc")
    out.unlink()
    assert not m.is_done("s1", {"scene": f}, shared)


def test_table_keys_rows_by_glacier_and_date(tmp_path):
    recs = []
    for i, (date, ids) in enumerate([("2021-09-01", ["RGI-2", "RGI-1"]),
                                     ("2020-08-01", ["RGI-1"])]):
        csv = tmp_path / f"{i}.csv"
        pd.DataFrame({"RGIId": ids, "aar": [0.5] * len(ids)}).to_csv(csv, index=False)
        recs.append({"scene": f"s{i}", "status": "done", "date": date, "sensor": "landsat-8",
                     "outputs": {"stats_csv": str(csv)}})
    recs.append({"scene": "bad", "status": "failed"})
    table = assemble(recs)
    assert list(table.columns) == ["RGIId", "date", "sensor", "scene", "aar"]
    assert list(zip(table.RGIId, table.date, strict=True)) == [
        ("RGI-1", "2020-08-01"), ("RGI-1", "2021-09-01"), ("RGI-2", "2021-09-01")]
