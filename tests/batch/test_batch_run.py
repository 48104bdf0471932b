"""A 2-worker batch on tiny demo scenes packaged as Sentinel-2 L2A COG folders: equality
with apply.py, one broken scene reported and skipped, resume after a simulated crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

import apply
from utils.batch import BatchConfig, run_batch
from utils.batch.__main__ import main as batch_main
from utils.normalisation import Stats, save_stats

N_SCENES = 2

MTD = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
 <n1:General_Info><Product_Info>
  <PRODUCT_START_TIME>{date}T10:20:31.024Z</PRODUCT_START_TIME>
  <PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>
  <Datatake><SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME></Datatake>
 </Product_Info><Product_Image_Characteristics>
  <QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE>10000</BOA_QUANTIFICATION_VALUE>
  </QUANTIFICATION_VALUES_LIST><BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
 </Product_Image_Characteristics></n1:General_Info>
</n1:Level-2A_User_Product>"""
MTD_TL = """<n1:Level-2A_Tile_ID xmlns:n1="x"><n1:Geometric_Info><Tile_Angles><Mean_Sun_Angle>
<ZENITH_ANGLE unit="deg">{zen}</ZENITH_ANGLE><AZIMUTH_ANGLE unit="deg">{az}</AZIMUTH_ANGLE>
</Mean_Sun_Angle></Tile_Angles></n1:Geometric_Info></n1:Level-2A_Tile_ID>"""


def as_s2_product(scene: Path, folder: Path) -> Path:
    """The demo scene's optical.tif as a Sentinel-2 L2A COG folder (B11/B12/SCL at 20 m)."""
    meta = json.loads((scene / "scene.json").read_text())
    folder.mkdir()
    with rasterio.open(scene / "optical.tif") as src:
        refl, profile = src.read(), src.profile
    dn = np.where(np.isfinite(refl), np.clip(refl * 10000 + 1000, 1, 65535), 0).astype(np.uint16)
    t = profile["transform"]
    for i, code in enumerate(["B02", "B03", "B04", "B08", "B11", "B12", "SCL"]):
        data = dn[i] if i < 4 else (dn[min(i, 5), ::2, ::2] if i < 6 else
                                    np.full((dn.shape[1] // 2, dn.shape[2] // 2), 11, np.uint8))
        k = 1 if i < 4 else 2
        with rasterio.open(folder / f"{code}.tif", "w", driver="GTiff", width=data.shape[1],
                           height=data.shape[0], count=1, dtype=data.dtype, crs=profile["crs"],
                           transform=rasterio.Affine(t.a * k, 0, t.c, 0, t.e * k, t.f)) as dst:
            dst.write(data, 1)
    d = meta["date"]
    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{b}">-1000</BOA_ADD_OFFSET>' for b in range(13))
    (folder / "MTD_MSIL2A.xml").write_text(MTD.format(date=f"{d[:4]}-{d[4:6]}-{d[6:]}",
                                                      offsets=offsets))
    (folder / "MTD_TL.xml").write_text(MTD_TL.format(zen=90 - meta["sun_elevation_deg"],
                                                     az=meta["sun_azimuth_deg"]))
    return folder


@pytest.fixture(scope="module")
def batch(tiny_demo, weights, tmp_path_factory):
    """Products, catalogue (3 good scenes + 1 corrupt GeoTIFF), stats, a 2-worker cluster."""
    from distributed import LocalCluster

    d = tmp_path_factory.mktemp("batch")
    scenes = sorted(p for p in (tiny_demo / "scenes").iterdir() if p.is_dir())[:N_SCENES]
    rows = [{"path": as_s2_product(s, d / f"S2B_{s.name}"), "outlines": s / "outlines.geojson",
             "dem": s / "dem.tif"} for s in scenes]
    (d / "broken.tif").write_bytes(b"II*\0" + bytes(range(256)) * 4)  # a corrupt GeoTIFF
    rows.append({"id": "broken", "path": d / "broken.tif", "date": "2020-01-01",
                 "sensor": "sentinel-2a", "sun_azimuth": 150, "sun_elevation": 40})
    pd.DataFrame(rows).to_csv(d / "catalog.csv", index=False)
    save_stats(Stats(np.array([0.0] * 6 + [1500, 0, 0, 0, 0]),
                     np.array([1.0] * 6 + [4500, 90, 1, 1, 1])), d / "stats.json")
    cfg = BatchConfig(model="rand11", weights_dir=str(weights), stats=str(d / "stats.json"),
                      outlines=str(scenes[0] / "outlines.geojson"), dem=str(scenes[0] / "dem.tif"),
                      out=str(d / "out"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        first = run_batch(d / "catalog.csv", cfg, scheduler=cluster.scheduler_address,
                          progress=False, log=lambda s: None)
        yield d, cfg, cluster.scheduler_address, first, scenes, rows


def read(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_batch_maps_reports_the_broken_scene_and_writes_the_table(batch):
    d, cfg, _, first, scenes, rows = batch
    assert (first["mapped"], first["skipped"]) == (N_SCENES, 0)
    assert list(first["failed"]) == ["broken"]
    assert "broken.tif" in first["failed"]["broken"]
    table = pd.read_parquet(first["parquet"])
    assert list(table.columns[:4]) == ["RGIId", "date", "sensor", "scene"]
    assert set(table["sensor"]) == {"sentinel-2b"}  # from the product metadata
    assert table["date"].nunique() == N_SCENES and table["RGIId"].str.startswith("RGI60").all()
    pd.testing.assert_frame_equal(pd.read_csv(first["csv"]), table, check_dtype=False)
    records = [json.loads(x) for x in (Path(cfg.out) / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in records) == ["done"] * N_SCENES + ["failed"]


def test_batch_scene_equals_apply_py(batch, tmp_path):
    d, cfg, _, first, scenes, rows = batch
    row = rows[1]
    scene_id = f"{json.loads((scenes[1] / 'scene.json').read_text())['date']}"
    folder = next(p for p in (Path(cfg.out) / "scenes").iterdir() if scene_id[:4] in p.name
                  and Path(row["path"]).name in p.name)
    argv = ["rand11", row["path"], tmp_path / "f.tif", row["outlines"], "--weights_dir",
            cfg.weights_dir, "--stats", cfg.stats, "--dem_path", row["dem"], "--derive_features",
            "--resample", "--confidence_path", tmp_path / "c.tif", "--stats_csv",
            tmp_path / "g.csv", "--quiet"]
    assert apply.main([str(a) for a in argv]) == 0
    np.testing.assert_array_equal(read(folder / "facies.tif"), read(tmp_path / "f.tif"))
    np.testing.assert_array_equal(read(folder / "confidence.tif"), read(tmp_path / "c.tif"))
    pd.testing.assert_frame_equal(pd.read_csv(folder / "glaciers.csv"),
                                  pd.read_csv(tmp_path / "g.csv"))


def test_resume_after_a_simulated_crash(batch):
    d, cfg, scheduler, first, scenes, rows = batch
    manifest = Path(cfg.out) / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    lost = json.loads(next(x for x in lines if '"done"' in x))
    kept = [x for x in lines if json.loads(x)["scene"] != lost["scene"]]
    # the crash: the scene's record never written, its map half-published, a torn line
    manifest.write_text("\n".join(kept) + "\n" + lines[0][: len(lines[0]) // 2])
    before = read(lost["outputs"]["facies"])
    Path(lost["outputs"]["confidence"]).unlink()
    again = run_batch(d / "catalog.csv", cfg, scheduler=scheduler, progress=False,
                      log=lambda s: None)
    assert (again["mapped"], again["skipped"], list(again["failed"])) == (1, N_SCENES - 1,
                                                                          ["broken"])
    np.testing.assert_array_equal(read(lost["outputs"]["facies"]), before)
    assert len(pd.read_parquet(again["parquet"])) == len(pd.read_parquet(first["parquet"]))
    # the CLI on the finished run: nothing left but the broken scene (exit status 1)
    argv = [str(d / "catalog.csv"), "--outlines", cfg.outlines, "--dem", cfg.dem, "--model",
            "rand11", "--weights_dir", cfg.weights_dir, "--stats", cfg.stats, "--out", cfg.out,
            "--scheduler", scheduler, "--quiet"]
    assert batch_main(argv) == 1
    assert batch_main([*argv[:4], str(d / "nodem.tif"), *argv[5:]]) == 2
