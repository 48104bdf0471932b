"""Benchmark: read one fold file by file (rasterio) and from a pack, in one run.

    python benchmarks/bench_dataset.py [DATASET_DIR] [--fold F] [--repeat R]

Without DATASET_DIR a demo dataset is generated with ``python -m utils.demo.generate OUT
--size small`` in a temporary folder (or, if utils.demo.generate is not available, a
synthetic folder of ``--synthetic`` random patches). The dataset is packed into a
temporary .h5, then the fold (default: the largest) is read with
``utils.data.loading.load_patches`` from the folder and from the pack, best of ``--repeat``
(at least; fast reads are repeated for a second, as timeit does), raw values (no
normalisation). For context it also times a plain rasterio loop
with GDAL's default settings (which list the folder on every open).

The last line printed is JSON: ``{"files_per_s", "pack_per_s", "speedup", ...}``
(patches per second; speedup = pack_per_s / files_per_s).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.data.files import write_patch  # noqa: E402
from utils.data.loading import load_patches  # noqa: E402
from utils.data.names import list_patch_files  # noqa: E402
from utils.data.pack import pack_patches  # noqa: E402
from utils.study import CLASSES, N_FEATURES, N_FOLDS, PATCH_SIZE  # noqa: E402


def make_synthetic_patches(folder: Path, n: int, seed: int = 0) -> Path:
    """Write ``n`` random valid patches (33, 33, 11) into ``folder``, spread over 6 folds."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cls = CLASSES[int(rng.integers(len(CLASSES)))]
        x = rng.random((PATCH_SIZE, PATCH_SIZE, N_FEATURES), dtype=np.float32)
        write_patch(
            folder / f"{i % N_FOLDS}_glacier{i % 4}_2020-08-{1 + i % 9:02d}_{i}_{cls}.tif", x
        )
    return folder


def best_time(
    fn: Callable[[], object], repeat: int, min_total: float = 1.0, max_calls: int = 200
) -> float:
    """Shortest wall time of one call, seconds: at least ``repeat`` calls and, for fast
    functions, more until ``min_total`` seconds have passed (like timeit's autorange)."""
    times: list[float] = []
    while len(times) < repeat or (sum(times) < min_total and len(times) < max_calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def read_files_gdal_default(paths: list[Path]) -> None:
    """Plain rasterio loop with GDAL defaults (for context only)."""
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        for p in paths:
            with rasterio.open(p) as src:
                src.read()


def get_dataset(arg: str | None, tmp: Path, n_synthetic: int) -> Path:
    """The dataset folder: the argument, a generated demo dataset, or synthetic patches."""
    if arg is not None:
        return Path(arg)
    out = tmp / "demo"
    if importlib.util.find_spec("utils.demo.generate") is not None:
        cmd = [sys.executable, "-m", "utils.demo.generate", str(out), "--size", "small"]
        print("generating demo data:", " ".join(cmd[1:]), file=sys.stderr)
        subprocess.run(cmd, cwd=ROOT, check=True)
        return out / "patches"
    print(
        f"utils.demo.generate not found; writing {n_synthetic} synthetic patches instead",
        file=sys.stderr,
    )
    return make_synthetic_patches(out / "patches", n_synthetic)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", nargs="?", help="patch folder (default: generate demo data)")
    ap.add_argument("--fold", type=int, help="fold to read (default: the largest)")
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions, best counts")
    ap.add_argument("--synthetic", type=int, default=3000, help="patches if no demo data")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_dataset_") as tmpdir:
        tmp = Path(tmpdir)
        folder = get_dataset(args.dataset, tmp, args.synthetic)
        pack = tmp / "patches.h5"
        res = pack_patches(folder, pack, progress=False)
        fold = args.fold if args.fold is not None else int(np.argmax(res.fold_counts))
        n = res.fold_counts[fold]
        if n == 0:
            print(f"error: fold {fold} has no patches", file=sys.stderr)
            return 2

        a = load_patches(folder, folds=[fold])
        b = load_patches(pack, folds=[fold])
        if not (np.array_equal(a.x, b.x) and a.meta.equals(b.meta)):
            print("error: folder and pack reads differ", file=sys.stderr)
            return 1
        del a, b
        paths = [p for p, name in list_patch_files(folder)[0] if name.fold == fold]

        t_files = best_time(lambda: load_patches(folder, folds=[fold]), args.repeat)
        t_pack = best_time(lambda: load_patches(pack, folds=[fold]), args.repeat)
        t_default = best_time(lambda: read_files_gdal_default(paths), args.repeat)

    result = {
        "files_per_s": round(n / t_files, 1),
        "pack_per_s": round(n / t_pack, 1),
        "speedup": round(t_files / t_pack, 1),
        "files_gdal_default_per_s": round(n / t_default, 1),
        "speedup_vs_gdal_default": round(t_default / t_pack, 1),
        "fold": fold,
        "n_patches": int(n),
        "n_total": res.n_patches,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
