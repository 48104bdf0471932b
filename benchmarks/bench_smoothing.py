"""Benchmark: vectorised 3x3 mode filter vs the study's generic_filter version.

Builds a realistic synthetic class map (default 2000 x 2000, fixed seed): a few
blob-shaped "glaciers" (valid pixels) in nodata, inside them smooth class
regions with salt-and-pepper noise and small nodata holes. Runs
:func:`utils.mapping.smoothing.mode_filter_3x3` and
:func:`utils.mapping.smoothing.reference_mode_filter`, prints details and, as its last
line, one JSON object
``{"speedup": ..., "identical": ..., "fast_s": ..., "reference_s": ...}``.

Run: ``.venv/bin/python -m benchmarks.bench_smoothing [--size 2000] [--seed 0]``
(the reference takes about a minute at 2000 x 2000).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.mapping.smoothing import NODATA, mode_filter_3x3, reference_mode_filter  # noqa: E402
from utils.study import CLASSES, N_CLASSES  # noqa: E402


def synthetic_class_map(size: int = 2000, seed: int = 0, noise: float = 0.15) -> np.ndarray:
    """A (size, size) int16 class map: noisy class regions inside blob glaciers, nodata outside."""
    rng = np.random.default_rng(seed)
    # Glacier outlines: thresholded smooth noise, keeping the few largest blobs.
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=size / 25)
    blobs = field > np.quantile(field, 0.65)
    labels, n = ndimage.label(blobs)
    if n > 0:
        sizes = ndimage.sum_labels(blobs, labels, index=np.arange(1, n + 1))
        keep = 1 + np.argsort(sizes)[::-1][:6]
        blobs = np.isin(labels, keep)
    # Class regions: argmax of smooth random fields, one per class.
    planes = np.stack(
        [
            ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), size / 80)
            for _ in range(N_CLASSES)
        ]
    )
    classes = np.argmax(planes, axis=0).astype(np.int16)
    # Salt-and-pepper noise (what the filter removes) and small nodata holes.
    flip = rng.random((size, size)) < noise
    classes[flip] = rng.integers(0, N_CLASSES, int(flip.sum()), dtype=np.int16)
    holes = rng.random((size, size)) < 0.01
    classes[~blobs | holes] = NODATA
    return classes


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2000, help="map side in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="fast-filter runs (best is kept)")
    args = ap.parse_args(argv)

    classes = synthetic_class_map(args.size, args.seed)
    valid = classes != NODATA
    print(f"map {classes.shape}, valid pixels {valid.mean():.1%}")
    counts = np.bincount(classes[valid], minlength=N_CLASSES)
    print("class counts:", dict(zip(CLASSES, counts.tolist(), strict=True)))

    fast_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fast = mode_filter_3x3(classes)
        fast_times.append(time.perf_counter() - t0)
    fast_s = min(fast_times)
    print(f"mode_filter_3x3: best of {args.repeats}: {fast_s:.3f} s")

    t0 = time.perf_counter()
    ref = reference_mode_filter(classes)
    ref_s = time.perf_counter() - t0
    print(f"reference_mode_filter (generic_filter + Python callback): {ref_s:.1f} s")

    identical = bool(np.array_equal(fast, ref) and fast.dtype == ref.dtype)
    changed = float(((fast != classes) & valid).sum() / max(1, valid.sum()))
    print(f"identical: {identical}; valid pixels changed by smoothing: {changed:.1%}")
    result = {
        "speedup": round(ref_s / fast_s, 1),
        "identical": identical,
        "fast_s": round(fast_s, 4),
        "reference_s": round(ref_s, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
