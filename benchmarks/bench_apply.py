"""Benchmark apply.py: glacier pixels per second and peak memory (RSS).

    python benchmarks/bench_apply.py [SCENE_DIR] [--weights H5] [--large] [--keep DIR]

Small run (always): a demo scene (``SCENE_DIR`` with optical.tif, dem.tif,
outlines.geojson, scene.json and ../../stats.json; default: the first scene of
``utils.demo.generate`` size tiny, generated in a temporary folder) is mapped by
``utils.mapping.pipeline.map_scene`` in a child process with the real ``patch``
engine, an 11-feature model (``--weights``, default a random-initialised one: same
cost as a trained one) and every feature derived from the DEM (``--derive_features``),
writing confidence,
stats CSV and quicklook. Measured: glacier pixels per second end to end and in the
engine, and the child's peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``).
Also: the patch engine against Keras ``model.predict`` on the same gathered patches
(batched, and one pixel per call on a small sample).

``--large``: a synthetic 10980 x 10980 Sentinel-2-sized scene (10 m UTM; uint16
L2A-like reflectance x 10000, float32 DEM, smooth glacier blobs covering ~5 %
written as polygons) is written to a temporary folder (or ``--keep DIR``, reused
when present) and mapped with the same options, but the CNN is replaced by a fake
engine (class probabilities = softmax of the centre pixel's first 8 normalised
features) because CPU inference of ~6 M pixels takes hours. Everything else is the
real path: windowed reading, feature derivation, normalisation, padding, the
engine call per block, smoothing, statistics, and writing the COGs. Its peak RSS
is what the ``<= 4 GB`` target refers to; its pixel rate is the pipeline's
overhead without the CNN.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LARGE = 10980
LARGE_COVER = 0.05


# ----------------------------------------------------------------------------- child


def fake_engine(model, padded, rows, cols, batch_size, progress=None):
    """Cheap stand-in for the CNN: softmax of the centre pixel's first 8 features."""
    x = padded[np.asarray(rows) + 16, np.asarray(cols) + 16][:, :8].astype(np.float32)
    e = np.exp(4 * (x - x.max(axis=1, keepdims=True)))
    if progress is not None:
        progress(len(rows))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def child(spec: dict) -> None:
    """Run one map_scene in this process and print a JSON line with its peak RSS."""
    from utils.mapping.pipeline import MapRequest, map_scene

    kwargs = dict(spec["kwargs"])
    kwargs["engine"] = fake_engine if spec["engine"] == "fake" else spec["engine"]
    t0 = time.perf_counter()
    summary = map_scene(MapRequest(*spec["args"], **kwargs), progress=False)
    wall = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"summary": summary, "wall_s": wall, "peak_rss_mb": rss_mb}))


def compare_engines(spec: dict) -> None:
    """patch_probs vs Keras predict on the same patches; prints a JSON line."""
    from utils.inference.padding import gather_patches, pad_features
    from utils.inference.patch import patch_probs
    from utils.model import load_model

    model = load_model(spec["weights"])
    rng = np.random.default_rng(0)
    feats = rng.random((200, 200, 11)).astype(np.float32)
    padded = pad_features(feats)
    n = spec["n"]
    rows, cols = rng.integers(0, 200, n), rng.integers(0, 200, n)
    bs = spec["batch"]
    patch_probs(model, padded, rows[:bs], cols[:bs], bs)  # compile
    t = time.perf_counter()
    p1 = patch_probs(model, padded, rows, cols, bs)
    t_patch = time.perf_counter() - t
    patches = gather_patches(padded, rows, cols)
    model.predict(patches[:bs], batch_size=bs, verbose=0)  # warm up
    t = time.perf_counter()
    p2 = model.predict(patches, batch_size=bs, verbose=0)
    t_pred = time.perf_counter() - t
    m = spec["n_single"]
    model.predict(patches[:1], verbose=0)
    t = time.perf_counter()
    for i in range(m):
        model.predict(patches[i : i + 1], verbose=0)
    t_single = time.perf_counter() - t
    print(json.dumps({
        "patch_engine_px_per_s": n / t_patch,
        "predict_batched_px_per_s": n / t_pred,
        "predict_per_pixel_px_per_s": m / t_single,
        "max_abs_diff": float(np.abs(p1 - p2).max()),
    }))


def run_child(mode: str, spec: dict) -> dict:
    """Run this script in a fresh process (``--_child``/``--_engines``); parse its last line."""
    r = subprocess.run([sys.executable, __file__, mode, json.dumps(spec)], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-4000:])
        raise SystemExit(f"child {mode} failed with exit status {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- inputs


def random_weights(folder: Path) -> Path:
    """A random-initialised 11-feature model (same compute cost as a trained one)."""
    path = folder / "random11_weights.h5"
    if not path.exists():
        code = ("import keras; from utils.model import build_cnn_model, save_weights; "
                "keras.utils.set_random_seed(0); "
                f"save_weights(build_cnn_model(11), {str(path)!r})")
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                       capture_output=True)
    return path


def demo_scene(folder: Path) -> Path:
    from utils.demo.generate import generate

    generate(folder / "demo", size="tiny", seed=0)
    return sorted((folder / "demo" / "scenes").iterdir())[0]


def write_large_scene(folder: Path, n: int = LARGE, cover: float = LARGE_COVER,
                      seed: int = 0) -> dict:
    """Synthetic Sentinel-2-sized scene in ``folder`` (reused when complete)."""
    import geopandas as gpd
    import rasterio
    from affine import Affine
    from rasterio.features import shapes
    from scipy import ndimage
    from shapely.geometry import shape

    from utils.normalisation import Stats, save_stats

    def from_origin(west: float, north: float, size: float) -> Affine:
        return Affine(size, 0.0, west, 0.0, -size, north)

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    rng = np.random.default_rng(seed)
    f = 10  # low-resolution factor
    m = n // f + (n % f > 0)
    t = from_origin(600000.0, 5200020.0, 10.0)
    t_low = from_origin(600000.0, 5200020.0, 10.0 * f)
    field = ndimage.gaussian_filter(rng.standard_normal((m, m)), 6)
    low_mask = field > np.quantile(field, 1 - cover)
    low_mask = ndimage.binary_opening(low_mask, iterations=1)
    polys = [shape(g) for g, v in shapes(low_mask.astype(np.uint8), mask=low_mask,
                                         transform=t_low) if v == 1]
    gdf = gpd.GeoDataFrame({"RGIId": [f"RGI60-11.{i:05d}" for i in range(len(polys))]},
                           geometry=polys, crs="EPSG:32632")
    gdf.to_file(folder / "outlines.gpkg", driver="GPKG")
    dem_low = 2000 + 2500 * (ndimage.gaussian_filter(rng.standard_normal((m, m)), 20) + 0.5)
    dem_low = np.clip(dem_low, 500, 5000) + 300 * field
    refl_low = rng.uniform(500, 6000, (6, m, m))
    prof = dict(driver="GTiff", width=n, height=n, crs="EPSG:32632", transform=t, tiled=True,
                blockxsize=512, blockysize=512, compress="deflate")
    step = 512
    with rasterio.open(folder / "optical.tif", "w", count=6, dtype="uint16", nodata=0,
                       **prof) as opt, rasterio.open(folder / "dem.tif", "w", count=1,
                                                     dtype="float32", nodata=-32768,
                                                     predictor=3, **prof) as dem:
        cols = np.arange(n) // f
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            rows = np.arange(r0, r1) // f
            block = refl_low[:, rows][:, :, cols]
            block += rng.normal(0, 100, block.shape)
            opt.write(np.clip(block, 1, 10000).astype(np.uint16),
                      window=rasterio.windows.Window(0, r0, n, r1 - r0))
            rr, cc = np.meshgrid((np.arange(r0, r1) + 0.5) / f - 0.5,
                                 (np.arange(n) + 0.5) / f - 0.5, indexing="ij")
            z = ndimage.map_coordinates(dem_low, [rr, cc], order=1, mode="nearest")
            dem.write(z.astype(np.float32)[None], window=rasterio.windows.Window(0, r0, n,
                                                                              r1 - r0))
    mins = [0.0] * 6 + [0.0, 0.0, 0.0, 0.0, 0.0]
    maxs = [10000.0] * 6 + [1.0, 90.0, 1.0, 1.0, 1.0]
    save_stats(Stats(np.array(mins), np.array(maxs)), folder / "stats.json")
    info = {"size": n, "polygons": len(polys), "cover_low_res": float(low_mask.mean())}
    done.write_text(json.dumps(info))
    return info


# ----------------------------------------------------------------------------- main


def _spec(weights: Path, scene: Path, stats: Path, out: Path, outlines: Path,
          sun: tuple[float, float], engine: str) -> dict:
    return {
        "args": [str(weights), str(scene / "optical.tif"), str(out / "facies.tif"),
                 str(outlines), str(stats)],
        "kwargs": {
            "dem_path": str(scene / "dem.tif"), "derive_features": True,
            "sun_azimuth": sun[0], "sun_elevation": sun[1],
            "confidence_path": str(out / "confidence.tif"),
            "stats_csv": str(out / "stats.csv"), "quicklook": str(out / "quicklook.png"),
            "overwrite": True,
        },
        "engine": engine,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene_dir", nargs="?", type=Path,
                    help="demo scene folder (default: generate utils.demo.generate tiny)")
    ap.add_argument("--weights", type=Path, help="11-feature .h5 (default: random-initialised)")
    ap.add_argument("--large", action="store_true",
                    help="also the synthetic 10980 x 10980 scene (minutes with the fake engine)")
    ap.add_argument("--large_engine", default="fake", choices=["fake", "patch", "dense"],
                    help="engine for the large scene: fake (a cheap stand-in for the CNN, "
                         "default), or a real one (dense: ~15 min, patch: hours)")
    ap.add_argument("--keep", type=Path, help="folder for the large scene (reused)")
    ap.add_argument("--compare_n", type=int, default=2048,
                    help="pixels for the engine comparison")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_apply_") as tmp:
        tmp = Path(tmp)
        weights = args.weights or random_weights(tmp)
        scene = args.scene_dir or demo_scene(tmp)
        meta = json.loads((scene / "scene.json").read_text())
        sun = (meta["sun_azimuth_deg"], meta["sun_elevation_deg"])
        out = tmp / "out_small"
        out.mkdir()
        small = run_child("--_child", _spec(weights, scene, scene.parents[1] / "stats.json",
                                            out, scene / "outlines.geojson", sun, "patch"))
        s = small["summary"]
        print(f"demo scene {scene.name}: {s['classified_px']} glacier px in {small['wall_s']:.1f}"
              f" s ({s['classified_px'] / small['wall_s']:.0f} px/s end to end, "
              f"{s['classified_px'] / s['engine_seconds']:.0f} px/s in the engine), "
              f"peak RSS {small['peak_rss_mb']:.0f} MB")
        eng = run_child("--_engines", {"weights": str(weights), "n": args.compare_n,
                                       "batch": 256, "n_single": 64})
        print(f"patch engine {eng['patch_engine_px_per_s']:.0f} px/s; model.predict batched "
              f"{eng['predict_batched_px_per_s']:.0f} px/s, one pixel per call "
              f"{eng['predict_per_pixel_px_per_s']:.1f} px/s (max |diff| "
              f"{eng['max_abs_diff']:.1e})")
        result = {
            "scene": scene.name,
            "glacier_px": s["classified_px"],
            "px_per_s": round(s["classified_px"] / small["wall_s"], 1),
            "engine_px_per_s": round(s["classified_px"] / s["engine_seconds"], 1),
            "peak_rss_mb": round(small["peak_rss_mb"]),
            "patch_engine_px_per_s": round(eng["patch_engine_px_per_s"], 1),
            "predict_batched_px_per_s": round(eng["predict_batched_px_per_s"], 1),
            "predict_per_pixel_px_per_s": round(eng["predict_per_pixel_px_per_s"], 1),
        }
        if args.large:
            folder = args.keep or tmp / "large"
            t0 = time.perf_counter()
            info = write_large_scene(folder)
            print(f"large scene {info} ready in {time.perf_counter() - t0:.0f} s")
            out = tmp / "out_large"
            out.mkdir()
            big = run_child("--_child", _spec(weights, folder, folder / "stats.json", out,
                                              folder / "outlines.gpkg", (150.0, 40.0),
                                              args.large_engine))
            b = big["summary"]
            print(f"large scene ({args.large_engine} engine): {b['classified_px']} of "
                  f"{LARGE}x{LARGE} px "
                  f"in {big['wall_s']:.0f} s, peak RSS {big['peak_rss_mb']:.0f} MB")
            result.update({
                "large_size": LARGE,
                "large_glacier_px": b["classified_px"],
                "large_glacier_fraction": round(b["glacier_px"] / LARGE**2, 4),
                "large_wall_s": round(big["wall_s"], 1),
                "large_engine": args.large_engine,
                "large_px_per_s": round(b["classified_px"] / big["wall_s"], 1),
                "large_peak_rss_mb": round(big["peak_rss_mb"]),
            })
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--_child":
        child(json.loads(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--_engines":
        compare_engines(json.loads(sys.argv[2]))
    else:
        main()
