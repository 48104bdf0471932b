"""Benchmark the outline system: demo validation scores, debris gain, Everest, peak memory.

    python benchmarks/bench_outlines.py [--out results/bench_outlines] [--epochs 30]
        [--steps 40] [--everest_epochs 12] [--skip_memory]

1. The full demo dataset (``utils.outlines.demo.generate`` size full, seed 0: 50
   training / 15 validation scenes of 320 px at 30 m; with ../shared present,
   three of them semi-real on the Ötztal DEM and RGI outlines) in ``OUT/data``.
2. The 7-band U-Net trained on it (``OUT/outline_model.keras``; resumable: a rerun
   continues an interrupted training and reuses a finished one).
3. Validation scores, pooled over the 15 scenes: model and NDSI >= 0.4 baseline,
   on all labelled pixels and in the debris zone; per region and sensor.
4. The Everest check (../shared/data/landsat7_everest): a 4-band (blue, green,
   red, nir) U-Net trained on the same demo data, and the brightness baseline,
   scored against RGI (a measurement, with the caveat in utils/outlines/everest.py).
5. Peak memory of ``outline.py`` on a 3660 x 3660 7-band scene (a mosaic of the
   validation images, float32, 375 MB on disk uncompressed): the child process's
   peak RSS (``ru_maxrss``), TensorFlow included, and its run time.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import rasterio  # noqa: E402

from utils.outlines.dataset import open_dataset, read_image  # noqa: E402
from utils.outlines.demo import generate  # noqa: E402
from utils.outlines.evaluate import by_group, evaluate_dataset, pooled  # noqa: E402
from utils.outlines.everest import BANDS_AVAILABLE, measure_everest  # noqa: E402
from utils.outlines.train import train  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
BIG = 3660


def cpu() -> str:
    """CPU model name and whether it has AVX-512."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                 if ln.startswith("model name")), platform.processor())
    return f"{name}, {os.cpu_count()} cores, avx512f {'yes' if 'avx512f' in text else 'no'}"


def mosaic(data: Path, path: Path) -> None:
    """Write a BIG x BIG 7-band scene tiled from the validation images."""
    scenes = [s for s in open_dataset(data) if s.split == "val"]
    images = [np.nan_to_num(read_image(s), nan=0.0) for s in scenes]
    n = images[0].shape[0]
    k = -(-BIG // n)
    rows = [np.concatenate([images[(i * k + j) % len(images)] for j in range(k)], axis=1)
            for i in range(k)]
    big = np.concatenate(rows, axis=0)[:BIG, :BIG]
    with rasterio.open(scenes[0].image) as src:
        crs, t = src.crs, src.transform
    with rasterio.open(path, "w", driver="GTiff", width=BIG, height=BIG, count=7,
                       dtype="float32", crs=crs, transform=t, tiled=True) as dst:
        dst.write(np.moveaxis(big, -1, 0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="results/bench_outlines")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--everest_epochs", type=int, default=12,
                   help="epochs of the 4-band model for the Everest check")
    p.add_argument("--skip_memory", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    oetztal = SHARED / "oetztal" if (SHARED / "oetztal").is_dir() else None
    data = out / "data"
    if not (data / "scenes.csv").exists():
        generate(data, "full", seed=0, oetztal=oetztal)
    kw = dict(epochs=args.epochs, steps=args.steps, batch_size=8, crop_size=128)
    t0 = time.perf_counter()
    model = train(data, out / "outline_model.keras", **kw)
    train_s = time.perf_counter() - t0
    table = evaluate_dataset(model, data, split="val")
    table.to_csv(out / "val_counts.csv", index=False)
    pd.set_option("display.width", 160)
    pd.set_option("display.precision", 3)
    print(by_group(table))
    print("debris zone:")
    print(by_group(table, subset="debris_"))
    print(by_group(table, "region"))
    print(by_group(table, "sensor"))
    m, b = pooled(table, "model"), pooled(table, "ndsi")
    md, bd = pooled(table, "model", "debris_"), pooled(table, "ndsi", "debris_")
    result = {"date": date.today().isoformat(), "cpu": cpu(), "train_seconds": round(train_s),
              "epochs": args.epochs, "steps": args.steps, "val_scenes": len(table),
              "val_iou": m["iou"], "val_boundary_f1": m["boundary_f1"],
              "ndsi_val_iou": b["iou"], "debris_iou": md["iou"], "ndsi_debris_iou": bd["iou"],
              "debris_gain": md["iou"] - bd["iou"]}
    everest = SHARED / "landsat7_everest"
    if everest.is_dir():
        model4 = train(data, out / "outline_model_bgrn.keras", bands=BANDS_AVAILABLE,
                       **(kw | {"epochs": args.everest_epochs}))
        ev = measure_everest(model4, everest)
        print("Everest vs RGI:", json.dumps(ev))
        result |= {f"everest_{k}": v for k, v in ev.items()}
    if not args.skip_memory:
        big = out / "scene_3660.tif"
        if not big.exists():
            mosaic(data, big)
        gpkg = out / "scene_3660.gpkg"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "outline.py"), str(model), str(big),
                        str(gpkg), "--overwrite", "--quiet"], check=True)
        result["big_scene_seconds"] = round(time.perf_counter() - t0, 1)
        result["big_scene_peak_mb"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                      for k, v in result.items()}))


if __name__ == "__main__":
    main()
