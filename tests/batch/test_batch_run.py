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
from utils.products.demo import as_sentinel2

N_SCENES = 2


@pytest.fixture(scope="module")
def batch(tiny_demo, weights, tmp_path_factory):
    """Products, catalogue (2 good scenes + 1 corrupt GeoTIFF), stats, a 2-worker cluster."""
    from distributed import LocalCluster

    d = tmp_path_factory.mktemp("batch")
    scenes = sorted(p for p in (tiny_demo / "scenes").iterdir() if p.is_dir())[:N_SCENES]
    rows = [{"path": as_sentinel2(s, d / f"S2B_{s.name}"), "outlines": s / "outlines.geojson",
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
    folder = next(p for p in (Path(cfg.out) / "scenes").iterdir()
                  if p.name.endswith(Path(row["path"]).name))  # id: date_sensor_name
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
