"""Cross-validated training as in the study: fold rule, schedule, metrics, resumable runs.

For test fold t the validation fold is (t - 1) mod k and the others train.
Each model keeps the weights of its best validation mIoU epoch in
``{weights_dir}/{t}_cnn_{stage}_weights.h5`` and logs every epoch to
``{logs_dir}/{t}_cnn_{stage}_log.csv`` (stage = beforeconfidentlearning or
afterconfidentlearning). An interrupted model resumes from its last epoch
checkpoint (optimizer state included) and its log continues.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from utils.losses import FocalLoss
from utils.model import build_cnn_model, load_model, save_weights
from utils.study import N_CLASSES

if TYPE_CHECKING:
    from utils.data.loading import PatchSet

STAGES = ("beforeconfidentlearning", "afterconfidentlearning")
LOG_COLUMNS = ("epoch", "categorical_accuracy", "loss", "miou", "val_categorical_accuracy",
               "val_loss", "val_miou")


@dataclass(frozen=True)
class FoldSplit:
    """Folds of one cross-validation round."""

    test: int
    val: int
    train: tuple[int, ...]


def fold_split(test_fold: int, k: int = 6) -> FoldSplit:
    """The study's rule: validation = (test - 1) mod k, training = the other folds."""
    if not 0 <= test_fold < k:
        raise ValueError(f"test fold {test_fold} outside 0..{k - 1}")
    val = (test_fold - 1) % k
    return FoldSplit(test_fold, val, tuple(f for f in range(k) if f not in (test_fold, val)))


@dataclass(frozen=True)
class ModelPaths:
    """Where one model's weights, log and resume checkpoint live."""

    weights: Path
    log: Path
    checkpoint_dir: Path

    @property
    def complete(self) -> bool:
        """Final weights and log exist and no interrupted run is pending."""
        return self.weights.is_file() and self.log.is_file() and not self.checkpoint_dir.exists()


def model_paths(fold: int, stage: str, weights_dir: str | os.PathLike = "weights",
                logs_dir: str | os.PathLike = "logs") -> ModelPaths:
    """Paths of model ``{fold}_cnn_{stage}`` in the study's naming."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    name = f"{fold}_cnn_{stage}"
    return ModelPaths(Path(weights_dir) / f"{name}_weights.h5",
                      Path(logs_dir) / f"{name}_log.csv",
                      Path(weights_dir) / "checkpoints" / name)


def compile_model(model: keras.Model, learning_rate: float, decay_steps: int) -> None:
    """Adam with cosine-decayed learning rate, focal loss, accuracy and mIoU (argmax)."""
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, decay_steps))
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=FocalLoss(),
        metrics=[keras.metrics.CategoricalAccuracy(name="categorical_accuracy"),
                 keras.metrics.OneHotMeanIoU(num_classes=N_CLASSES, name="miou")],
    )


def read_log(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a training log CSV as dicts of floats (epoch as int)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(float(v)) if k == "epoch" else float(v)) for k, v in r.items()}
            for r in rows]


class _EpochState(keras.callbacks.Callback):
    """Per epoch: append the log row, keep the best-val-mIoU weights, save a checkpoint,
    print one progress line (shown live by ``papermill --log-output`` and ``make demo``)."""

    def __init__(self, paths: ModelPaths, best: float, n_epochs: int, desc: str):
        super().__init__()
        self.paths, self.best, self.n_epochs, self.desc = paths, best, n_epochs, desc
        self.t0, self.first = time.perf_counter(), None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch, **{c: float(logs[c]) for c in LOG_COLUMNS[1:]}}
        new = not self.paths.log.exists()
        with open(self.paths.log, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        ckpt = self.paths.checkpoint_dir
        if row["val_miou"] > self.best:
            self.best = row["val_miou"]
            save_weights(self.model, ckpt / "best_weights.h5")
        tmp = ckpt / ".state.tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, ckpt / "state.keras")
        _write_json(ckpt / "progress.json", {"epoch": epoch, "best_val_miou": self.best})
        self.first = epoch if self.first is None else self.first
        elapsed = time.perf_counter() - self.t0
        left = elapsed / (epoch - self.first + 1) * (self.n_epochs - epoch - 1)
        print(f"{self.desc}  epoch {epoch + 1}/{self.n_epochs}  loss {row['loss']:.4f}  "
              f"val mIoU {row['val_miou']:.3f} (best {self.best:.3f})  "
              f"elapsed {_clock(elapsed)}  remaining ~{_clock(left)}", flush=True)


def _clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def _truncate_log(path: Path, last_epoch: int) -> None:
    """Drop log rows after ``last_epoch`` (written after the last checkpoint)."""
    if not path.exists():
        return
    rows = [r for r in read_log(path) if r["epoch"] <= last_epoch]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r[c] for c in LOG_COLUMNS})
    os.replace(tmp, path)


def train_model(
    x_train: np.ndarray,
    y_train: np.ndarray,
    w_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    paths: ModelPaths,
    *,
    n_epochs: int = 1000,
    initial_learning_rate: float = 1e-3,
    batch_size: int = 512,
    seed: int = 0,
    force: bool = False,
    stop_after_epoch: int | None = None,
    desc: str = "",
) -> Path:
    """Train one model (or resume it) and return the path of its best weights.

    x: (N, H, W, F) normalised patches, y: (N,) class indices, w: (N,) sample
    weights. Skips a model that is complete unless ``force``. ``stop_after_epoch``
    ends the run early as an interruption would (for tests), leaving the checkpoint.
    """
    from utils.training.inputs import make_tf_dataset

    if paths.complete and not force:
        return paths.weights
    if force:
        shutil.rmtree(paths.checkpoint_dir, ignore_errors=True)
        paths.log.unlink(missing_ok=True)
        paths.weights.unlink(missing_ok=True)
    for d in (paths.weights.parent, paths.log.parent, paths.checkpoint_dir):
        d.mkdir(parents=True, exist_ok=True)

    steps = math.ceil(len(x_train) / batch_size)
    progress = paths.checkpoint_dir / "progress.json"
    keras.utils.set_random_seed(seed)
    if progress.exists() and (paths.checkpoint_dir / "state.keras").exists():
        state = json.loads(progress.read_text())
        start, best = state["epoch"] + 1, state["best_val_miou"]
        model = keras.models.load_model(paths.checkpoint_dir / "state.keras")
        _truncate_log(paths.log, state["epoch"])
    else:
        start, best = 0, -np.inf
        paths.log.unlink(missing_ok=True)
        model = build_cnn_model(x_train.shape[-1])
        compile_model(model, initial_learning_rate, n_epochs * steps)

    end = n_epochs if stop_after_epoch is None else min(n_epochs, stop_after_epoch + 1)
    if start < end:
        train_ds = make_tf_dataset(x_train, y_train, w_train, training=True,
                                   batch_size=batch_size, seed=seed)
        val_ds = make_tf_dataset(x_val, y_val, training=False, batch_size=batch_size)
        state = _EpochState(paths, best, n_epochs, desc or paths.weights.stem)
        model.fit(train_ds, validation_data=val_ds, epochs=end, initial_epoch=start,
                  shuffle=False, verbose=0, callbacks=[state])
    if end < n_epochs:
        return paths.checkpoint_dir / "best_weights.h5"
    os.replace(paths.checkpoint_dir / "best_weights.h5", paths.weights)
    shutil.rmtree(paths.checkpoint_dir)
    if not any(paths.checkpoint_dir.parent.iterdir()):
        paths.checkpoint_dir.parent.rmdir()
    return paths.weights


def predict_probs(model: keras.Model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (N, 8) float32 for patches (N, H, W, F), in batches."""
    if len(x) == 0:
        return np.zeros((0, N_CLASSES), np.float32)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def cross_validate(
    data: PatchSet,
    stage: str,
    *,
    k: int = 6,
    exclude: np.ndarray | None = None,
    weights_dir: str | os.PathLike = "weights",
    logs_dir: str | os.PathLike = "logs",
    **train_kwargs,
) -> dict:
    """Train (or reuse) the k models of one stage and predict each test fold with its model.

    ``data`` holds normalised patches with metadata; ``exclude`` (N,) bool drops
    patches (the pruned labels) from training and from the validation that picks the
    best epoch. Sample weights are computed over each training set. Returns
    out-of-fold ``probs`` (N, 8) for every patch (excluded ones too, so the unpruned
    test set can be scored) and per fold ``val_index`` / ``val_probs`` of the *whole*
    validation fold (excluded patches too: the study calibrates on the unpruned fold;
    select ``~exclude[val_index]`` for the cleaned one).
    """
    from utils.training.inputs import sample_weights

    folds = data.meta["fold"].to_numpy()
    glaciers = data.meta["glacier"].to_numpy()
    dates = data.meta["date"].to_numpy()
    keep = np.ones(len(data), bool) if exclude is None else ~np.asarray(exclude, bool)
    oof = np.full((len(data), N_CLASSES), np.nan, np.float32)
    val_probs: dict[int, np.ndarray] = {}
    val_index: dict[int, np.ndarray] = {}
    for t in range(k):
        split = fold_split(t, k)
        tr = keep & np.isin(folds, split.train)
        va = keep & (folds == split.val)
        te = folds == t
        paths = model_paths(t, stage, weights_dir, logs_dir)
        w = sample_weights(data.y[tr], glaciers[tr], dates[tr])
        path = train_model(data.x[tr], data.y[tr], w, data.x[va], data.y[va], paths,
                           desc=f"{stage[:-len('confidentlearning')]} CL, fold {t} ({t + 1}/{k})",
                           **train_kwargs)
        model = load_model(path)
        oof[te] = predict_probs(model, data.x[te])
        val_index[t] = np.flatnonzero(folds == split.val)
        val_probs[t] = predict_probs(model, data.x[val_index[t]])
    return {"probs": oof, "val_index": val_index, "val_probs": val_probs}
