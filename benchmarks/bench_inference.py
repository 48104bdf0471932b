"""Benchmark: dense scene inference (utils.inference.dense) vs the per-patch engine.

Both engines run in one process on the same pixels:

(a) the golden scene (``golden.npz`` ``scene/features``, 100 x 100 x 11) with the
    published fold-0 "after" model: dense probabilities of rows/cols 16..83 vs
    the study's per-patch ``scene/probs_interior``;
(b) a scene for throughput and agreement: a demo scene with a demo-trained model
    (``--demo_scene DIR --demo_weights H5``; ``DIR`` is ``OUT/scenes/<scene>_<date>``
    of ``python -m utils.demo.generate OUT``, statistics from ``OUT/stats.json`` unless
    ``--demo_stats``), or, without them, a synthetic but structured scene (the
    golden features mirror-tiled to ``--size`` px, blob-shaped glaciers) with the
    published model. The dense engines classify every glacier pixel; the patch
    engine a contiguous block of rows holding at least ``--patch_px`` of them,
    where the two are compared (labels before and after the 3x3 mode filter).

Dense engines: ``exact`` (default; equals per-patch up to float rounding) and
``approx`` (approximate global max). Prints details and, as its last line, one
JSON object for scene (b) with the exact engine in the main keys and the approximate
one under ``approx_*``.

Run: ``.venv/bin/python -m benchmarks.bench_inference [--size 640] [--patch_px 20000]``
(about 2-3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from utils.inference.dense import (  # noqa: E402
    DEFAULT_TILE_EXACT,
    dense_probs,
    exact_macs_per_pixel,
    exact_work,
    get_engine,
    per_patch_macs,
)
from utils.inference.padding import pad_features  # noqa: E402
from utils.inference.patch import patch_probs  # noqa: E402
from utils.mapping.smoothing import mode_filter_3x3  # noqa: E402
from utils.model import input_features, load_model  # noqa: E402
from utils.study import PATCH_SIZE  # noqa: E402

REFERENCE = ROOT.parent / "shared" / "reference"
PUBLISHED = REFERENCE / "weights" / "0_cnn_afterconfidentlearning_weights.h5"
NODATA = -9999
HALF = PATCH_SIZE // 2


def _timed(fn: Callable[[], np.ndarray], repeats: int) -> tuple[np.ndarray, float]:
    """Result and best wall time of ``repeats`` runs."""
    best = np.inf
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def _agreement(
    p_ref: np.ndarray,
    p_new: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    shape: tuple[int, int],
) -> dict[str, float]:
    """Max |prob diff| and label agreement before / after smoothing on a map of ``shape``."""
    a, b = p_ref.argmax(1), p_new.argmax(1)
    maps = []
    for lab in (a, b):
        m = np.full(shape, NODATA, np.int16)
        m[rows, cols] = lab
        maps.append(mode_filter_3x3(m, nodata=NODATA)[rows, cols])
    return {
        "max_abs_prob_diff": float(np.abs(p_ref - p_new).max()),
        "label_agreement": float(np.mean(a == b)),
        "label_agreement_smoothed": float(np.mean(maps[0] == maps[1])),
    }


# --------------------------------------------------------------------------- scenes


def _blob_mask(shape: tuple[int, int], seed: int, cover: float = 0.55) -> np.ndarray:
    """Glacier-like blobs (bool (H, W)): thresholded smooth noise, the largest blobs kept."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=min(shape) / 20)
    blobs = field > np.quantile(field, 1.0 - cover)
    labels, n = ndimage.label(blobs)
    if n > 8:
        sizes = ndimage.sum_labels(blobs, labels, index=np.arange(1, n + 1))
        blobs = np.isin(labels, 1 + np.argsort(sizes)[::-1][:8])
    return blobs


def synthetic_scene(size: int, seed: int, golden: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 11) normalised features and a glacier mask.

    Features: the golden scene mirror-tiled (seamless), or smooth random fields in
    0..1 without ``golden``.
    """
    if golden is not None:
        f = golden["scene/features"].astype(np.float32)
        quad = np.concatenate(
            [np.concatenate([f, f[:, ::-1]], 1), np.concatenate([f[::-1], f[::-1, ::-1]], 1)], 0
        )
        reps = -(-size // quad.shape[0])
        features = np.tile(quad, (reps, reps, 1))[:size, :size]
    else:
        rng = np.random.default_rng(seed)
        planes = [ndimage.gaussian_filter(rng.standard_normal((size, size)), 4) for _ in range(11)]
        features = np.stack(planes, -1)
        lo, hi = features.min((0, 1)), features.max((0, 1))
        features = ((features - lo) / (hi - lo)).astype(np.float32)
    return features, _blob_mask((size, size), seed)


def demo_scene(scene_dir: Path, weights: Path, stats: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Padded features and glacier mask of a demo scene, built as apply.py builds them
    (features derived from the DEM and outlines, sun angles from ``scene.json``)."""
    from utils.mapping.pipeline import plan_features
    from utils.normalisation import load_stats
    from utils.scene.features import SceneFeatures
    from utils.scene.outlines import glacier_mask, read_outlines
    from utils.scene.raster import SceneRasters

    meta = json.loads((scene_dir / "scene.json").read_text())
    stats = stats or scene_dir.parents[1] / "stats.json"
    optical = scene_dir / "optical.tif"
    given = {"elevation": scene_dir / "dem.tif", "slope": None, "shadow_mask": None,
             "hillshade": None, "proximity": None}
    model = load_model(weights)
    with SceneRasters(optical, given) as rasters:
        outlines = read_outlines(scene_dir / "outlines.geojson", rasters.grid.crs)
        mask = glacier_mask(outlines, rasters.grid, optical)
        plan = plan_features(
            input_features(model), weights, given, True,
            meta["sun_azimuth_deg"], meta["sun_elevation_deg"],
        )
        features = SceneFeatures(rasters, mask, plan, load_stats(stats))
        features.prepare()
        padded, valid = features.block(0, rasters.grid.height)
    return padded, valid


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=640, help="synthetic scene side (px)")
    ap.add_argument("--patch_px", type=int, default=20000, help="pixels for the patch engine")
    ap.add_argument("--tile", type=int, default=None, help="dense tile side (default per mode)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per engine (best kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", type=Path, default=PUBLISHED, help="model for (a)/fallback (b)")
    ap.add_argument("--demo_scene", type=Path, default=None)
    ap.add_argument("--demo_weights", type=Path, default=None)
    ap.add_argument("--demo_stats", type=Path, default=None)
    args = ap.parse_args(argv)

    golden = None
    if (REFERENCE / "golden.npz").is_file():
        with np.load(REFERENCE / "golden.npz") as z:
            golden = {k: z[k] for k in ("scene/features", "scene/probs_interior")}
    model = load_model(args.weights) if args.weights.is_file() else None

    # (a) golden scene ------------------------------------------------------------
    if golden is not None and model is not None:
        padded = pad_features(golden["scene/features"])
        inner = np.arange(HALF, 100 - HALF)
        rows, cols = (a.ravel() for a in np.meshgrid(inner, inner, indexing="ij"))
        ref = golden["scene/probs_interior"].reshape(-1, 8).astype(np.float32)
        ours = patch_probs(model, padded, rows, cols)
        print(f"(a) golden: patch engine vs golden probs: max diff "
              f"{np.abs(ours - ref).max():.2e}")
        for exact in (True, False):
            probs = dense_probs(model, padded, rows, cols, exact=exact)
            res = _agreement(ref, probs, rows - HALF, cols - HALF, (68, 68))
            print(json.dumps({"scene": "golden", "engine": "exact" if exact else "approx",
                              **res}))
    else:
        print("(a) golden: skipped (../shared/reference absent)")

    # (b) throughput / agreement scene --------------------------------------------
    if args.demo_scene is not None and args.demo_weights is not None:
        scene_name = f"demo scene {args.demo_scene.name} with {args.demo_weights.name}"
        model = load_model(args.demo_weights)
        padded, mask = demo_scene(args.demo_scene, args.demo_weights, args.demo_stats)
    else:
        if model is None:
            from utils.model import build_cnn_model

            model = build_cnn_model(11)
            weights_name = "random weights (published model absent)"
        else:
            weights_name = args.weights.name
        source = "golden features mirror-tiled" if golden is not None else "smooth random"
        scene_name = (f"synthetic structured scene {args.size}x{args.size} ({source}, blob "
                      f"glaciers) with {weights_name}")
        print("(b) no --demo_scene/--demo_weights given: falling back to a synthetic scene")
        features, mask = synthetic_scene(args.size, args.seed, golden)
        padded = pad_features(features)
    h, w = mask.shape
    rows, cols = np.nonzero(mask)
    print(f"(b) {scene_name}: {h}x{w}, {rows.size} glacier px")

    # patch engine: a contiguous block of rows around the middle with >= patch_px pixels
    counts = np.bincount(rows, minlength=h)
    r0 = r1 = h // 2
    while counts[r0:r1].sum() < args.patch_px and (r0 > 0 or r1 < h):
        r0, r1 = max(0, r0 - 1), min(h, r1 + 1)
    in_block = (rows >= r0) & (rows < r1)
    br, bc = rows[in_block], cols[in_block]

    engine = get_engine(model)
    dense_probs(engine, padded, br[:64], bc[:64], exact=True)  # compile (excluded from timing)
    dense_probs(engine, padded, br[:64], bc[:64], exact=False)
    patch_probs(model, padded, br[:2048], bc[:2048])
    p_patch, t_patch = _timed(lambda: patch_probs(model, padded, br, bc), args.repeats)
    patch_rate = br.size / t_patch
    print(f"patch: {br.size} px (rows {r0}..{r1 - 1}) in {t_patch:.1f} s: {patch_rate:.0f} px/s")

    results = {}
    for mode, exact in (("exact", True), ("approx", False)):
        probs, t = _timed(
            lambda exact=exact: dense_probs(engine, padded, rows, cols, tile=args.tile,
                                            exact=exact),
            args.repeats,
        )
        rate = rows.size / t
        res = _agreement(p_patch, probs[in_block], br - r0, bc, (r1 - r0, w))
        results[mode] = {"px_per_s": rate, "speedup": rate / patch_rate, **res}
        print(f"dense {mode}: {rows.size} px in {t:.1f} s: {rate:.0f} px/s, "
              f"speed-up {rate / patch_rate:.1f}x; on the patch block: {json.dumps(res)}")
    tile = args.tile or DEFAULT_TILE_EXACT
    macs = exact_macs_per_pixel(tile, input_features(model))
    patch_macs = per_patch_macs(input_features(model))
    print(f"exact engine: {macs / 1e6:.2f} M multiply-adds/px at tile {tile} "
          f"(per-patch: {patch_macs / 1e6:.1f} M, ratio {patch_macs / macs:.1f}x)")
    work = exact_work(rows, cols, (h, w), tile, input_features(model))
    print(f"exact engine on scene (b): blocks cover {work['block_px']:.0f} px for "
          f"{rows.size} glacier px, {work['lone_px']:.0f} px one patch each; "
          f"{work['macs_per_px'] / 1e6:.2f} M multiply-adds per glacier px")

    ex, ap_ = results["exact"], results["approx"]
    summary = {
        "patch_px_per_s": round(patch_rate, 1),
        "dense_px_per_s": round(ex["px_per_s"], 1),
        "speedup": round(ex["speedup"], 2),
        "max_abs_prob_diff": ex["max_abs_prob_diff"],
        "label_agreement": ex["label_agreement"],
        "label_agreement_smoothed": ex["label_agreement_smoothed"],
        "dense_engine": "exact",
        "approx_px_per_s": round(ap_["px_per_s"], 1),
        "approx_speedup": round(ap_["speedup"], 2),
        "approx_max_abs_prob_diff": ap_["max_abs_prob_diff"],
        "approx_label_agreement": ap_["label_agreement"],
        "approx_label_agreement_smoothed": ap_["label_agreement_smoothed"],
        "patch_px": int(br.size),
        "dense_px": int(rows.size),
        "scene": scene_name,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
