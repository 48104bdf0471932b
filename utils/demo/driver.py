"""`make demo`: the whole study chain on generated data, sized to a time budget.

Steps: measure this machine's training speed → generate a demo dataset → pack →
main.ipynb (12 models, confident learning, retraining, evaluation) →
confidence_calibration.ipynb → apply.py on a demo scene → the other systems'
demos (glacier outlines, rock glaciers, mass balance) → key numbers, figure
paths and each step's wall time (also in ``OUT/times.json``).

The budget rule (15 minutes on a 2-core CPU without AVX-512): the 12 facies
models may take :data:`TRAIN_BUDGET_S` of training. A few training steps of the
real CNN on random patches give this machine's seconds per training patch
(``rate``) and the extra seconds of a model's first batch (``start``); a dataset of
n patches and E epochs is predicted to take
``12 * (2 * start + rate * n * (E * 2/3 * 1.1 + 0.3))`` (training folds are 2/3 of
the data, 10 % for validation each epoch, 0.3 for predicting and saving). The largest size of
:data:`utils.demo.generate.SIZES` that fits :data:`MIN_EPOCHS` is taken, with as
many epochs as fit (at most :data:`MAX_EPOCHS`); on a machine too slow even for
that, ``tiny`` with at least 2 epochs. Every step of the chain runs.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

from utils.errors import InputError, cli_message

ROOT = Path(__file__).resolve().parents[2]
TRAIN_BUDGET_S = 330.0  #: seconds of training for the 12 facies models
MIN_EPOCHS, MAX_EPOCHS = 4, 8
# The study trains 1000 epochs with batch 512 and learning rate 1e-3. The demo has
# minutes: few epochs, small batches and a larger rate (measured on fold 0 of the
# small demo: best validation mIoU 0.54 vs 0.31 with the study's rate after 5 epochs
# of batch 32; batch 16 reached 0.46 after 2 epochs where batch 32 had 0.34, at about
# the same CPU time per epoch).
BATCH_SIZE = 16
LEARNING_RATE = 1e-2
N_MODELS = 12
#: A model's fixed cost in units of the first-batch overhead :func:`training_rate` measures
#: (its training, evaluation and prediction functions are each built once per model).
OVERHEAD_FACTOR = 2.0
#: Seconds per training patch (:func:`training_rate`) up to which the other systems'
#: demos keep their own epochs; on slower machines their epochs shrink in proportion.
#: About the 2-core AVX2 machine of issue 12, where each of them is estimated at ~1-2
#: minutes (37 CPU-seconds each for outlines and rock glaciers on the AVX-512 machine).
REFERENCE_RATE = 0.015


def run_notebook(name: str, out_dir: Path, parameters: dict, echo: bool = False) -> Path:
    """Execute a notebook of the project headless (papermill) into ``out_dir``; with
    ``echo`` its printed lines (per-epoch progress) appear on this process's stdout."""
    import papermill

    out = out_dir / name
    papermill.execute_notebook(str(ROOT / name), str(out), parameters=parameters,
                               cwd=str(ROOT), progress_bar=not echo, kernel_name="python3",
                               stdout_file=sys.stdout if echo else None)
    return out


def training_rate(n_features: int = 11, steps: int = 6) -> tuple[float, float]:
    """This machine's speed for the study's CNN: seconds per training patch (batch
    :data:`BATCH_SIZE`, augmentation included, timed over ``steps`` batches) and the
    seconds a new model's first batch takes beyond that (building its functions; timed
    on a second model, after TensorFlow's one-off start)."""
    import numpy as np

    from utils.model import build_cnn_model
    from utils.training.crossval import compile_model
    from utils.training.inputs import make_tf_dataset

    rng = np.random.default_rng(0)
    n = BATCH_SIZE * steps
    x = rng.random((n, 33, 33, n_features), dtype=np.float32)
    y = rng.integers(0, 8, n)
    ds = make_tf_dataset(x, y, np.ones(n, np.float32), training=True, batch_size=BATCH_SIZE,
                         seed=0)
    for _ in range(2):  # the second model's first batch: a model's start without TF's own
        model = build_cnn_model(n_features)
        compile_model(model, LEARNING_RATE, 100)
        t0 = time.perf_counter()
        model.fit(ds.take(1), epochs=1, verbose=0, shuffle=False)
        first = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    rate = (time.perf_counter() - t0) / n
    return rate, max(0.0, first - rate * BATCH_SIZE)


def predicted_seconds(speed: tuple[float, float], n_patches: int, epochs: int) -> float:
    """Predicted training time of the 12 models (the rule in the module docstring)."""
    rate, overhead = speed
    return N_MODELS * (OVERHEAD_FACTOR * overhead
                       + rate * n_patches * (epochs * 2 / 3 * 1.1 + 0.3))


def approx_patches(size: str) -> int:
    """Patches of a demo size before generating it: glaciers x dates x points (a few
    percent more than generated)."""
    from utils.demo.generate import SIZES

    spec = SIZES[size]
    return sum(g for _, g in spec.scenes) * len(spec.date_indices) * spec.points_per_glacier_date


def plan(speed: tuple[float, float], budget: float = TRAIN_BUDGET_S) -> tuple[str, int]:
    """(size, epochs) for a measured ``speed`` (:func:`training_rate`) within ``budget`` s."""
    from utils.demo.generate import SIZES

    for size in sorted(SIZES, key=approx_patches, reverse=True):
        n = approx_patches(size)
        fixed = predicted_seconds(speed, n, 0)
        epochs = math.floor((budget - fixed) / (predicted_seconds(speed, n, 1) - fixed))
        if epochs >= MIN_EPOCHS:
            return size, min(epochs, MAX_EPOCHS)
    return "tiny", max(2, epochs)


def demo_scene(data_dir: Path) -> tuple[Path, int]:
    """The first demo scene and the fold of its glaciers (its out-of-sample model)."""
    import geopandas as gpd

    scene = sorted(p for p in (data_dir / "scenes").iterdir() if p.is_dir())[0]
    folds = gpd.read_file(scene / "points.geojson")["fold"]
    return scene, int(folds.mode().iloc[0])


class Steps:
    """Prints a header per step and records each step's wall time (seconds)."""

    def __init__(self, total: int):
        self.total, self.t0 = total, time.perf_counter()
        self.times: dict[str, float] = {}

    def run(self, key: str, title: str, fn, *args, **kwargs):
        print(f"\n=== {len(self.times) + 1}/{self.total} {title}", flush=True)
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        self.times[key] = round(time.perf_counter() - t, 1)
        print(f"--- {key}: {self.times[key]:.0f} s", flush=True)
        return out


def map_scene(out: Path, data: Path, calib_dir: Path) -> Path:
    """apply.py on the first demo scene with its out-of-sample model; the map's stem."""
    scene, fold = demo_scene(data)
    sun = json.loads((scene / "scene.json").read_text())
    print(f"scene {scene.name} with the fold-{fold} model (out-of-sample for that fold's "
          "glaciers)", flush=True)
    maps = out / "maps"
    maps.mkdir(exist_ok=True)
    stem = maps / f"{scene.name}_facies"
    subprocess.run([
        sys.executable, str(ROOT / "apply.py"), f"{fold}_cnn_afterconfidentlearning",
        str(scene / "optical.tif"), f"{stem}.tif", str(scene / "outlines.geojson"),
        "--weights_dir", str(out / "weights"), "--stats", str(data / "stats.json"),
        "--dem_path", str(scene / "dem.tif"), "--derive_features",
        "--sun_azimuth", str(sun["sun_azimuth_deg"]),
        "--sun_elevation", str(sun["sun_elevation_deg"]),
        "--calibration_model", str(calib_dir / f"{fold}_calibration_model.json"),
        "--confidence_path", f"{stem}_confidence.tif", "--quicklook", f"{stem}.png",
        "--stats_csv", f"{stem}_glaciers.csv", "--overwrite"], check=True, cwd=ROOT)
    return stem


OTHERS = {  # system: (title, demo function's module and name)
    "outlines": "glacier outlines (U-Net on 30 m scenes)",
    "rockglaciers": "rock glaciers (tile CNN, scene map, U-Net)",
    "massbalance": "mass balance (mapped AAR series against balances)",
}


def other_demo(name: str, out: Path, scale: float) -> dict:
    """Run one other system's demo into ``out/{name}`` (mass balance: ``out/massbalance``)
    with its own epochs, times ``scale`` (0..1] on a slow machine (~2 minutes there)."""
    if name == "massbalance":
        from utils.massbalance.demo import map_demo_years, run_demo

        model = out / "weights" / "0_cnn_afterconfidentlearning_weights.h5"
        if not model.is_file():  # --only massbalance without the facies models: stand-in
            return run_demo(out)
        csvs = map_demo_years(out, model, out / "data" / "stats.json", progress=False)
        return run_demo(out, stats_csvs=csvs)
    if name == "outlines":
        from utils.outlines.demo import run_demo
    else:
        from utils.rockglaciers.demo import run_demo
    own = inspect.signature(run_demo).parameters["epochs"].default
    epochs = max(2, round(own * scale))
    return run_demo(out / name, epochs=epochs, progress=False)


def facies(out: Path, steps: Steps, size: str, epochs: int, seed: int) -> dict:
    """The study's chain on the demo dataset; returns its key numbers and paths."""
    speed = steps.run("measure", "training speed of this machine", training_rate)
    rate = speed[0]
    auto_size, auto_epochs = plan(speed)
    size = auto_size if size == "auto" else size
    epochs = epochs or (auto_epochs if size == auto_size else MIN_EPOCHS)
    n = approx_patches(size)
    print(f"{rate * 1000:.1f} ms per training patch, {speed[1]:.1f} s to start a model: "
          f"demo size {size} (~{n} patches), "
          f"{epochs} epochs, batch {BATCH_SIZE}; the 12 models are predicted to take "
          f"{predicted_seconds(speed, n, epochs) / 60:.1f} min", flush=True)
    (out / "plan.json").write_text(json.dumps(
        {"rate_ms_per_patch": round(rate * 1000, 2), "model_start_s": round(speed[1], 1),
         "size": size, "epochs": epochs,
         "batch_size": BATCH_SIZE, "predicted_training_s": round(
             predicted_seconds(speed, n, epochs))}))
    data, results = out / "data", out / "results"
    steps.run("generate", f"demo dataset ({size}) in {data}", _dataset, data, size, seed)
    results.mkdir(parents=True, exist_ok=True)
    steps.run("main_notebook", f"main.ipynb: 12 models x {epochs} epochs, confident "
              "learning, retraining, evaluation", run_notebook, "main.ipynb", results, {
                  "dataset": str(data / "patches.h5"), "stats": str(data / "stats.json"),
                  "n_epochs": epochs, "batch_size": BATCH_SIZE,
                  "initial_learning_rate": LEARNING_RATE, "seed": seed,
                  "weights_dir": str(out / "weights"), "logs_dir": str(out / "logs"),
                  "results_dir": str(results),
                  "planted_noise": str(data / "planted_noise.csv")}, echo=True)
    calib = out / "confidence_calibration_models"
    steps.run("calibration", "confidence_calibration.ipynb", run_notebook,
              "confidence_calibration.ipynb", results,
              {"results_dir": str(results), "calibration_dir": str(calib)}, echo=True)
    stem = steps.run("mapping", "apply.py: map a demo scene", map_scene, out, data, calib)
    return {"rate_s_per_patch": rate, "size": size, "epochs": epochs, "results": results,
            "map": stem}


def _dataset(data: Path, size: str, seed: int) -> None:
    """Generate and pack the demo dataset unless a finished one of this size is there."""
    from utils.data.pack import pack_patches
    from utils.demo.generate import generate

    marker = data.parent / ".demo_size"
    if (data / "patches.h5").exists() and marker.exists() and marker.read_text() == size:
        print("reusing the existing demo dataset", flush=True)
        return
    if marker.exists():  # an earlier demo of another size: its models do not fit the new data
        for folder in ("weights", "logs"):
            shutil.rmtree(data.parent / folder, ignore_errors=True)
        marker.unlink()
    generate(data, size=size, seed=seed)
    pack_patches(data / "patches", data / "patches.h5")
    marker.write_text(size)


def print_summary(out: Path, report: dict) -> None:
    """The key numbers and where the figures are."""
    print("\n=== key numbers", flush=True)
    if "facies" in report:
        results, stem = report["facies"]["results"], report["facies"]["map"]
        metrics = json.loads((results / "metrics.json").read_text())
        calib = json.loads((results / "calibration_metrics.json").read_text())
        for stage in ("before", "after"):
            m = metrics[stage]
            print(f"macro F1 {stage:6s} confident learning: cleaned {m['macro_f1_cleaned']:.3f}, "
                  f"unpruned {m['macro_f1_unpruned']:.3f}, glacier-wise "
                  f"{m['glacier_macro_f1_mean']:.3f} ± {m['glacier_macro_f1_std']:.3f}")
        cl = metrics["confident_learning_vs_planted"]
        print(f"confident learning: pruned {cl['n_pruned']} labels; against the "
              f"{cl['n_planted']} planted flips precision {cl['precision']:.2f}, "
              f"recall {cl['recall']:.2f}")
        for variant, ece in calib["pooled_test_ece100_by_variant"].items():
            what = f"{variant} folds" + (", as the study" if variant == "unpruned" else "")
            print(f"pooled test ECE_100 ({what}): uncalibrated {ece['none']:.3f} -> "
                  f"kernel ridge {ece['kernel_ridge']:.3f} "
                  f"(temperature {ece['temperature']:.3f}, isotonic {ece['isotonic']:.3f})")
        print(f"figures and tables: {results}")
        print(f"facies map: {stem}.tif (confidence {stem}_confidence.tif, quicklook "
              f"{stem}.png, per-glacier statistics {stem}_glaciers.csv)")
    if "outlines" in report:
        r = report["outlines"]
        print(f"outlines: validation IoU {r['val_iou']:.3f} (NDSI {r['ndsi_val_iou']:.3f}), "
              f"debris IoU {r['debris_iou']:.3f} (NDSI {r['ndsi_debris_iou']:.3f}); "
              f"{r['polygons']} polygons in {r['outlines']}")
    if "rockglaciers" in report:
        r = report["rockglaciers"]
        print(f"rock glaciers: CV balanced accuracy {r['cv_balanced_accuracy_cnn']:.3f} "
              f"(histogram baseline {r['cv_balanced_accuracy_histogram']:.3f}), held-out "
              f"{r['test_balanced_accuracy']:.3f}, segmentation IoU {r['segmentation_iou']:.3f};"
              f" maps in {r['out_dir']}")
    if "massbalance" in report:
        r = report["massbalance"]
        print(f"mass balance: {r['glacier_years']} glacier-years; leave-one-glacier-out r "
              f"{r['mapped_pooled_logo_r']:.2f} on the mapped AAR (true AAR "
              f"{r['true_pooled_logo_r']:.2f}, ratio {r['ratio_pooled_logo_r']:.2f}), RMSE "
              f"{r['mapped_pooled_logo_rmse_mwe']:.2f} vs {r['true_pooled_logo_rmse_mwe']:.2f} "
              f"m w.e. (mapped with {r['mapped_with']}); figures in {r['results']}")


def main(argv: list[str] | None = None) -> int:
    """``python -m utils.demo``: run the demo; 2 on a bad request."""
    parser = argparse.ArgumentParser(prog="python -m utils.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo", help="demo folder (default: demo)")
    parser.add_argument("--size", default="auto",
                        help="facies demo dataset size (tiny, compact, medium, small; "
                             "default auto: chosen from the measured training speed)")
    parser.add_argument("--epochs", type=int, default=0,
                        help="epochs per facies model (default: chosen from the measured speed)")
    parser.add_argument("--only", choices=["facies", *OTHERS],
                        help="run only this system's demo (default: all four)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        run(Path(args.out).resolve(), args.size, args.epochs, args.only, args.seed)
    except InputError as e:
        print(f"python -m utils.demo: {cli_message(e)}", file=sys.stderr)
        return 2
    return 0


def run(out: Path, size: str = "auto", epochs: int = 0, only: str | None = None,
        seed: int = 0) -> dict[str, float]:
    """Run the demo into ``out`` (the module docstring); prints the key numbers and
    returns each step's wall time in seconds (also written to ``out/times.json``)."""
    from utils.demo.generate import SIZES

    if size != "auto" and size not in SIZES:
        raise InputError(f"size must be auto or one of {', '.join(SIZES)}, got {size!r}"
                         ).about("size")
    if epochs < 0:
        raise InputError(f"epochs must be positive, got {epochs}").about("epochs")
    systems = ["facies", *OTHERS] if only is None else [only]
    steps = Steps(5 * ("facies" in systems) + len(systems) - ("facies" in systems))
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    if "facies" in systems:
        report["facies"] = facies(out, steps, size, epochs, seed)
    rate = report.get("facies", {}).get("rate_s_per_patch")
    scale = 1.0 if rate is None else min(1.0, REFERENCE_RATE / rate)
    for name in systems[1:] if "facies" in systems else systems:
        report[name] = steps.run(name, OTHERS[name], other_demo, name, out, scale)
    print_summary(out, report)
    total = round(time.perf_counter() - steps.t0, 1)
    times = {**steps.times, "total": total}
    (out / "times.json").write_text(json.dumps(times, indent=2))
    print(f"\ndone in {total / 60:.1f} min; step times (s): {json.dumps(times)}", flush=True)
    return times
