"""Batch mapping on Dask: scenes/min with 1 and 2 workers, memory per worker, vs apply.py.

Generates tiny demo datasets (256 x 256 px scenes) until it has ``--scenes`` scenes,
writes each as a Sentinel-2 L2A product (:func:`utils.products.demo.as_sentinel2`) and
maps them with a random-weight 11-feature model (the cost does not depend on the
weights): ``python -m utils.batch``'s :func:`run_batch` on a LocalCluster of 1, then 2
workers (wall time including the cluster start), then ``python apply.py`` in a loop
(one process per scene, as a user's shell loop) on ``--apply-scenes`` of them. Prints
the measurements; the last line is one JSON object.

    .venv/bin/python benchmarks/bench_batch.py [--scenes 8] [--apply-scenes 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu() -> dict:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((x.split(":", 1)[1].strip() for x in info.splitlines()
                 if x.startswith("model name")), platform.processor())
    return {"cpu": name, "avx512f": " avx512f" in info, "cores": os.cpu_count(),
            "load_avg_1min_at_start": os.getloadavg()[0]}


def prepare(work: Path, n: int) -> tuple[Path, Path, Path, list[dict]]:
    """Products, catalogue CSV, random-weight model and stats for ``n`` demo scenes."""
    import keras
    import numpy as np
    import pandas as pd

    from utils.demo.generate import generate
    from utils.model import build_cnn_model, save_weights
    from utils.normalisation import Stats, save_stats
    from utils.products.demo import as_sentinel2

    rows, seed = [], 0
    while len(rows) < n:
        demo = work / f"demo{seed}"
        generate(demo, size="tiny", seed=seed)
        for s in sorted(p for p in (demo / "scenes").iterdir() if p.is_dir()):
            if len(rows) < n:
                rows.append({"path": as_sentinel2(s, work / f"S2_{seed}_{s.name}"),
                             "outlines": s / "outlines.geojson", "dem": s / "dem.tif"})
        seed += 1
    pd.DataFrame(rows).to_csv(work / "catalog.csv", index=False)
    weights = work / "weights"
    weights.mkdir()
    keras.utils.set_random_seed(11)
    save_weights(build_cnn_model(11), weights / "rand11_weights.h5")
    save_stats(Stats(np.array([0.0] * 6 + [1500, 0, 0, 0, 0]),
                     np.array([1.0] * 6 + [4500, 90, 1, 1, 1])), work / "stats.json")
    return work / "catalog.csv", weights, work / "stats.json", rows


def run_workers(catalog: Path, weights: Path, stats: Path, rows: list[dict], out: Path,
                workers: int) -> dict:
    """One batch run on a fresh LocalCluster; wall seconds and peak RSS per worker."""
    from distributed import Client, LocalCluster

    from utils.batch import BatchConfig, run_batch
    from utils.batch.runner import default_workers

    cfg = BatchConfig(model="rand11", weights_dir=str(weights), stats=str(stats),
                      outlines=str(rows[0]["outlines"]), dem=str(rows[0]["dem"]), out=str(out))
    n_default, memory = default_workers()
    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      memory_limit=memory * n_default // workers,
                      dashboard_address=None) as cluster:
        result = run_batch(catalog, cfg, scheduler=cluster.scheduler_address, progress=False,
                           log=lambda s: None)
        seconds = time.perf_counter() - t0

        def peak_mb() -> float:
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        with Client(cluster) as client:
            peaks = list(client.run(peak_mb).values())
    records = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert result["mapped"] == len(rows) and not result["failed"], result
    return {"workers": workers, "seconds": round(seconds, 1),
            "scenes_per_min": round(60 * len(rows) / seconds, 2),
            "task_seconds": [r["seconds"] for r in records],
            "peak_rss_mb_per_worker": [round(p) for p in peaks]}


def run_stack(work: Path, side: int = 2048) -> dict:
    """Stack a synthetic Sentinel-2 L2A SAFE of ``side`` x ``side`` 10 m px (JP2, as shipped)."""
    import numpy as np
    import rasterio
    from affine import Affine

    from utils.products import open_product, write_stack

    rng = np.random.default_rng(0)
    safe = work / "S2A_MSIL2A_20230815T102031_N0509_R065_T32TMS_20230815T150000.SAFE"
    img = safe / "GRANULE" / "L2A_T32TMS_A042417_20230815T102444" / "IMG_DATA"
    for code, res in [("B02", 10), ("B03", 10), ("B04", 10), ("B08", 10), ("B11", 20),
                      ("B12", 20), ("SCL", 20)]:
        n = side * 10 // res
        data = (rng.integers(0, 12, (n, n)) if code == "SCL"
                else rng.integers(1000, 12000, (n, n))).astype(np.uint16)
        (img / f"R{res}m").mkdir(parents=True, exist_ok=True)
        with rasterio.open(img / f"R{res}m" / f"T32TMS_20230815T102031_{code}_{res}m.jp2", "w",
                           driver="JP2OpenJPEG", width=n, height=n, count=1, dtype="uint16",
                           crs="EPSG:32632", transform=Affine(res, 0, 6e5, 0, -res, 5.1e6),
                           QUALITY=100, REVERSIBLE="YES") as dst:
            dst.write(data, 1)
    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{b}">-1000</BOA_ADD_OFFSET>' for b in range(13))
    (safe / "MTD_MSIL2A.xml").write_text(
        "<n1:Level-2A_User_Product xmlns:n1='x'><PRODUCT_START_TIME>2023-08-15T10:20:31Z"
        "</PRODUCT_START_TIME><PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>"
        "<BOA_QUANTIFICATION_VALUE>10000</BOA_QUANTIFICATION_VALUE>"
        f"{offsets}</n1:Level-2A_User_Product>")
    t0 = time.perf_counter()
    write_stack(open_product(safe), work / "stack.tif")
    seconds = time.perf_counter() - t0
    return {"side_px": side, "seconds": round(seconds, 2),
            "mpx_per_s": round(side * side / seconds / 1e6, 3),
            "full_tile_s_estimate": round(10980 ** 2 / (side * side / seconds))}


def run_apply_loop(rows: list[dict], weights: Path, stats: Path, out: Path) -> dict:
    """``python apply.py`` once per scene (same flags the batch uses)."""
    out.mkdir()
    t0 = time.perf_counter()
    for i, row in enumerate(rows):
        argv = [sys.executable, str(ROOT / "apply.py"), "rand11", str(row["path"]),
                str(out / f"f{i}.tif"), str(row["outlines"]), "--weights_dir", str(weights),
                "--stats", str(stats), "--dem_path", str(row["dem"]), "--derive_features",
                "--resample", "--confidence_path", str(out / f"c{i}.tif"), "--stats_csv",
                str(out / f"g{i}.csv"), "--quiet"]
        subprocess.run(argv, check=True, cwd=ROOT, capture_output=True)
    seconds = time.perf_counter() - t0
    return {"scenes": len(rows), "seconds": round(seconds, 1),
            "seconds_per_scene": round(seconds / len(rows), 2)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--apply-scenes", type=int, default=3)
    args = ap.parse_args(argv)
    info = cpu()
    print(f"CPU: {info['cpu']} ({info['cores']} cores, avx512f: {info['avx512f']}); "
          f"1-min load average at start {info['load_avg_1min_at_start']:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        work = Path(tmp)
        catalog, weights, stats, rows = prepare(work, args.scenes)
        runs = [run_workers(catalog, weights, stats, rows, work / f"out{w}", w) for w in (1, 2)]
        loop = run_apply_loop(rows[: args.apply_scenes], weights, stats, work / "apply")
        stack = run_stack(work)
    for r in runs:
        print(f"{r['workers']} worker(s): {args.scenes} scenes in {r['seconds']} s = "
              f"{r['scenes_per_min']} scenes/min; peak RSS per worker "
              f"{r['peak_rss_mb_per_worker']} MB; task seconds {r['task_seconds']}")
    efficiency = runs[1]["scenes_per_min"] / (2 * runs[0]["scenes_per_min"])
    batch_per_scene = runs[0]["seconds"] / args.scenes
    ratio = batch_per_scene / loop["seconds_per_scene"]
    print(f"parallel efficiency (2 workers): {efficiency:.2f}")
    print(f"apply.py in a loop: {loop['seconds_per_scene']} s/scene; batch with 1 worker: "
          f"{batch_per_scene:.2f} s/scene (ratio {ratio:.2f})")
    print(f"stacking a {stack['side_px']}^2 px SAFE (JP2): {stack['seconds']} s = "
          f"{stack['mpx_per_s']} Mpx/s; a 10980^2 tile: ~{stack['full_tile_s_estimate']} s")
    print(json.dumps({"bench": "batch", **info, "scenes": args.scenes, "runs": runs,
                      "stack": stack, "load_avg_1min_at_end": os.getloadavg()[0],
                      "parallel_efficiency": round(efficiency, 3), "apply_loop": loop,
                      "batch_seconds_per_scene_1_worker": round(batch_per_scene, 2),
                      "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
