"""Resumable training of the outline U-Net on a dataset in the outline layout.

Each epoch draws ``steps`` batches of random, augmented crops of the training
scenes (the random stream is seeded by (seed, epoch), so a resumed run draws the
same crops as an uninterrupted one), then scores the validation scenes on their
regular grid of crops (pooled IoU at probability 0.5). The weights of the best
validation epoch are kept.

While training, ``NAME.ckpt/`` beside the model holds the last state (weights
and optimizer) and the best weights; ``NAME.log.csv`` gets one row per epoch.
An interrupted run resumes from its last finished epoch; a finished model
(``NAME.keras`` + ``NAME.json``) is returned as is unless ``force``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from utils.outlines import OutlineError
from utils.outlines.dataset import BANDS, load, open_dataset
from utils.outlines.model import build_unet, compile_unet, save_model
from utils.outlines.pipeline import grid_batch, normalise, sample_batch

LOG_COLUMNS = ("epoch", "loss", "val_iou")


def load_split(root: str | os.PathLike, split: str, bands: list[str]
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Normalised (x (H, W, C), mask (H, W)) of every scene of ``split``, ``bands`` only."""
    idx = [BANDS.index(b) for b in bands]
    out = []
    for s in open_dataset(root):
        if s.split == split:
            image, mask, _ = load(s)
            out.append((normalise(image[..., idx]), mask))
    return out


def validation_iou(model: keras.Model, scenes: list[tuple[np.ndarray, np.ndarray]],
                   size: int, batch_size: int) -> float:
    """Pooled IoU over the labelled pixels of all regular-grid crops at probability 0.5."""
    inter = union = 0
    for x, m in scenes:
        xb, yb = grid_batch(x, m, size)
        p = model.predict(xb, batch_size=batch_size, verbose=0)[..., 0] >= 0.5
        t, w = yb[..., 0] > 0.5, yb[..., 1] > 0
        inter += int((p & t & w).sum())
        union += int(((p | t) & w).sum())
    return inter / union if union else 1.0


def train(root: str | os.PathLike, model_path: str | os.PathLike, *,
          bands: list[str] | tuple[str, ...] = BANDS, epochs: int = 30, steps: int = 40,
          batch_size: int = 8, crop_size: int = 128, learning_rate: float = 2e-3,
          base: int = 16, seed: int = 0, force: bool = False,
          stop_after_epoch: int | None = None, progress: bool = True) -> Path:
    """Train (or resume) the U-Net on ``root``; returns the path of ``NAME.keras``.

    ``crop_size`` must be a multiple of 8. ``stop_after_epoch`` ends the run after
    that epoch as an interruption would (for tests), leaving the checkpoint.
    """
    model_path = Path(model_path).with_suffix(".keras")
    bands = list(bands)
    if any(b not in BANDS for b in bands):
        raise OutlineError(f"bands {bands} must be a subset of {list(BANDS)}")
    if crop_size % 8:
        raise OutlineError(f"crop size {crop_size} must be a multiple of 8")
    ckpt, log = model_path.with_suffix(".ckpt"), model_path.with_suffix(".log.csv")
    if model_path.exists() and model_path.with_suffix(".json").exists() and not force:
        return model_path
    if force:
        shutil.rmtree(ckpt, ignore_errors=True)
        log.unlink(missing_ok=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    n_optical = sum(b != "elevation" for b in bands)
    config = dict(bands=bands, epochs=epochs, steps=steps, batch_size=batch_size,
                  crop_size=crop_size, learning_rate=learning_rate, base=base, seed=seed,
                  dataset=str(root))
    train_scenes = load_split(root, "train", bands)
    val_scenes = load_split(root, "val", bands)

    keras.utils.set_random_seed(seed)
    state = ckpt / "progress.json"
    if state.exists() and (ckpt / "state.keras").exists():
        done = json.loads(state.read_text())
        start, best = done["epoch"] + 1, done["best_val_iou"]
        model = keras.saving.load_model(ckpt / "state.keras")
        if log.exists():  # drop rows of an epoch that was cut short
            rows = [r for r in read_log(model_path) if r["epoch"] <= done["epoch"]]
            log.unlink()
            for r in rows:
                _append_log(log, {**r, "epoch": int(r["epoch"])})
    else:
        start, best = 0, -1.0
        log.unlink(missing_ok=True)
        model = build_unet(len(bands), base)
        compile_unet(model, learning_rate, epochs * steps)
    end = epochs if stop_after_epoch is None else min(epochs, stop_after_epoch + 1)
    bar = tqdm(total=epochs, initial=start, desc=model_path.stem, unit="epoch",
               disable=not progress)
    for epoch in range(start, end):
        rng = np.random.default_rng([seed, epoch])
        losses = []
        for _ in range(steps):
            x, y = sample_batch(train_scenes, batch_size, crop_size, rng, n_optical)
            losses.append(float(model.train_on_batch(x, y)))
        iou = validation_iou(model, val_scenes, crop_size, batch_size)
        if iou > best:
            best = iou
            model.save(ckpt / "best.keras")
        model.save(ckpt / "state.keras")
        _append_log(log, {"epoch": epoch, "loss": np.mean(losses), "val_iou": iou})
        state.write_text(json.dumps({"epoch": epoch, "best_val_iou": best}))
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_iou=f"{iou:.3f}")
        bar.update()
    bar.close()
    if end < epochs:
        return ckpt / "best.keras"
    best_model = keras.saving.load_model(ckpt / "best.keras", compile=False)
    save_model(best_model, model_path, {**config, "best_val_iou": best})
    shutil.rmtree(ckpt)
    return model_path


def _append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        if new:
            w.writeheader()
        w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})


def read_log(model_path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of ``NAME.log.csv`` (epoch, loss, val_iou)."""
    with open(Path(model_path).with_suffix(".log.csv"), newline="") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
