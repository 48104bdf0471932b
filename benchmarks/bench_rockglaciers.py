"""Benchmark: rock-glacier CNN training time per epoch and inference speed.

Measures (CPU, whatever TensorFlow finds):
  * training: seconds per epoch on the 300 real tiles of ``../shared`` when present,
    else on 288 demo tiles (first epoch, which builds the graph, reported apart);
  * tiles/s of :func:`utils.rockglaciers.classifier.predict` (batch 128), warm;
  * tiles/s of the scene map (:func:`utils.rockglaciers.scene.map_scene`, stride 64)
    on a demo 1024 x 1024 scene, including reading and writing.
Prints the CPU and, as its last line, one JSON object.

Run: ``.venv/bin/python -m benchmarks.bench_rockglaciers [--epochs 4]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.rockglaciers.classifier import (  # noqa: E402
    fit_probability_calibrator,
    predict,
    save_classifier,
    train_classifier,
)
from utils.rockglaciers.demo import write_scene, write_tiles  # noqa: E402
from utils.rockglaciers.scene import map_scene  # noqa: E402
from utils.rockglaciers.tiles import read_tiles  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "rock_glaciers" / "train"


def cpu() -> tuple[str, bool]:
    """CPU model name and whether it has AVX-512F."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", False
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                 if ln.startswith("model name")), "unknown")
    return name, " avx512f " in f" {text} ".replace("\n", " ")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4, help="training epochs timed (>= 2)")
    args = ap.parse_args(argv)
    name, avx512 = cpu()
    print(f"CPU: {name}; avx512f: {avx512}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = "real" if REAL.is_dir() else "demo"
        tiles = read_tiles(REAL if source == "real" else write_tiles(tmp / "t", 36, 4))
        print(f"training on {len(tiles)} {source} tiles, {args.epochs} epochs")
        model, secs = train_classifier(tiles.images, tiles.labels, epochs=args.epochs,
                                       progress=False)
        print("seconds per epoch:", [round(s, 2) for s in secs])
        batch = np.concatenate([tiles.images] * (1024 // len(tiles) + 1))[:1024]
        predict(model, batch[:256])
        t0 = time.perf_counter()
        predict(model, batch)
        infer = len(batch) / (time.perf_counter() - t0)
        print(f"inference: {infer:.0f} tiles/s (batch 128)")
        cal = fit_probability_calibrator(predict(model, tiles.images), tiles.labels)
        path = save_classifier(model, cal, tmp / "m.keras")
        write_scene(tmp / "scene.tif", size=1024, n_rock_glaciers=12)
        res = map_scene(path, tmp / "scene.tif", tmp / "p.tif", progress=False)
        print(f"scene map 1024 x 1024, stride 64: {res['windows']} windows in "
              f"{res['seconds']:.2f} s = {res['tiles_per_s']:.0f} tiles/s")
    print(json.dumps({
        "cpu": name, "avx512f": avx512, "tiles": len(tiles), "tiles_source": source,
        "first_epoch_s": round(secs[0], 3),
        "epoch_s": round(float(np.mean(secs[1:])), 3),
        "inference_tiles_per_s": round(infer, 1),
        "scene_tiles_per_s": round(res["tiles_per_s"], 1),
    }))


if __name__ == "__main__":
    main()
