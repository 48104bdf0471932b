"""Rock-glacier segmentation: the mask layouts, a small U-Net, IoU and F1.

Two layouts of the Hugging Face ``image-segmentation`` configuration, whose
examples hold an ``image`` and a ``masks`` PNG, are read:

* **folders**: a folder with ``images/`` and ``masks/`` holding PNGs of the same names;
* **Parquet** (a local Hugging Face ``datasets`` export): one ``.parquet`` file, or a
  folder holding ``*.parquet`` files (directly or in ``data/``; read in file-name
  order) and no ``images/``, with the columns ``image`` and ``masks`` (structs
  ``{bytes: PNG, path}``) and optionally ``path``; a row is named
  ``<file>::<path>`` (or ``<file>::row <i>``) in ``MaskSet.names`` and in errors.

Tiles are 128 x 128 RGB(A) (as in :mod:`utils.rockglaciers.tiles`), masks one band
with values {0, 1} or {0, 255} (1 / 255 = rock glacier).

Only demo masks (:mod:`utils.rockglaciers.demo`) were available to train and test
it: it is untested on real image-mask pairs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import keras
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from utils.rockglaciers.classifier import TileStandardise
from utils.rockglaciers.tiles import (
    TILE,
    PngSource,
    RockGlacierError,
    decode_png,
    load_all,
    parquet_files,
    parquet_rows,
    png_bytes,
    read_png,
)


@dataclass
class MaskSet:
    """images (N, 128, 128, 3) uint8, masks (N, 128, 128) uint8 0/1, names (N,) (file
    names, or ``<file>.parquet::<row path>``), skipped: ``"name: why"`` per pair left out."""

    images: np.ndarray
    masks: np.ndarray
    names: list[str]
    skipped: list[str] = field(default_factory=list)


def _mask(im: Image.Image, name: str) -> np.ndarray:
    """(128, 128) uint8 0/1 of a loaded one-band mask; other values or sizes raise."""
    arr = np.asarray(im.convert("L") if im.mode not in ("L", "1", "P") else im)
    if arr.shape != (TILE, TILE):
        raise RockGlacierError(f"{name}: mask is {arr.shape}, expected {TILE} x {TILE}")
    values = set(np.unique(arr).tolist())
    if not values <= {0, 1} and not values <= {0, 255}:
        raise RockGlacierError(f"{name}: mask values {sorted(values)[:6]}; expected 0/1 or 0/255")
    return (arr > 0).astype(np.uint8)


def read_mask(source: PngSource, name: str | None = None) -> np.ndarray:
    """One mask (a file, or PNG bytes called ``name`` in errors) as (128, 128) uint8 0/1;
    other values or sizes raise RockGlacierError."""
    name = str(source) if name is None else name
    return decode_png(source, name, partial(_mask, name=name))


def _pair(image: PngSource, mask: PngSource, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(128, 128, 3) uint8 image and (128, 128) 0/1 mask of one Parquet row called ``name``."""
    return read_png(image, name=name), read_mask(mask, name=f"{name} (masks)")


def _folder_pairs(folder: Path) -> list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]]:
    """(name, loader) of the image-mask pairs of ``images/`` and ``masks/``."""
    img_dir, mask_dir = folder / "images", folder / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise RockGlacierError(f"{folder}: no {d.name}/ folder (segmentation layout) "
                                   "and no *.parquet files")
    names = sorted(p.name for p in img_dir.iterdir() if p.suffix.lower() == ".png")
    missing = [n for n in names if not (mask_dir / n).is_file()]
    if missing:
        raise RockGlacierError(f"{mask_dir / missing[0]}: mask missing for image "
                               f"({len(missing)} images without a mask)")
    return [(n, lambda n=n: (read_png(img_dir / n), read_mask(mask_dir / n))) for n in names]


def _parquet_pairs(files: list[Path]
                   ) -> Iterator[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]]:
    """(name, loader) of the rows (``image``, ``masks``, ``path``) of Parquet files."""
    for file in files:
        for name, row in parquet_rows(file, ("image", "masks")):
            yield name, partial(_pair, png_bytes(row["image"]), png_bytes(row["masks"]), name)


def read_masks(folder: str | os.PathLike, skip_invalid: bool = False) -> MaskSet:
    """Read the image/mask pairs of ``folder`` (``images/`` and ``masks/``, or Parquet
    files) or of one ``.parquet`` file; see the module doc."""
    folder = Path(folder)
    files = [] if (folder / "images").is_dir() else parquet_files(folder)
    pairs = _parquet_pairs(files) if files else _folder_pairs(folder)
    kept, loaded, skipped = load_all(pairs, skip_invalid)
    if not kept:
        raise RockGlacierError(f"{folder}: no readable image-mask pairs ({len(skipped)} invalid)")
    images, masks = zip(*loaded, strict=True)
    return MaskSet(np.stack(images), np.stack(masks), kept, skipped)


def build_unet(seed: int = 0) -> keras.Model:
    """Small U-Net: (N, 128, 128, 3) uint8 RGB -> (N, 128, 128, 1) rock-glacier probability.

    Works at 20 m (2 x 2 average in, bilinear upsampling out: rock glaciers are tens
    of pixels wide) with three levels of 16, 32 and 64 filters and BatchNorm.
    """
    keras.utils.set_random_seed(seed)
    L = keras.layers  # noqa: N806

    def block(x, f):
        for _ in range(2):
            x = L.Conv2D(f, 3, padding="same", use_bias=False)(x)
            x = L.ReLU()(L.BatchNormalization(momentum=0.9)(x))
        return x

    inp = keras.Input((TILE, TILE, 3))
    x = L.AveragePooling2D(2)(TileStandardise()(L.Rescaling(1 / 255)(inp)))
    x0 = block(x, 16)
    x1 = block(L.MaxPooling2D(2)(x0), 32)
    x2 = block(L.MaxPooling2D(2)(x1), 64)
    u1 = block(L.Concatenate()([L.UpSampling2D(2)(x2), x1]), 32)
    u0 = block(L.Concatenate()([L.UpSampling2D(2)(u1), x0]), 16)
    logits = L.UpSampling2D(2, interpolation="bilinear")(L.Conv2D(1, 1)(u0))
    return keras.Model(inp, L.Activation("sigmoid")(logits), name="rock_glacier_unet")


def _augment_pairs(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator):
    xs, ys = [], []
    for im, m in zip(images, masks, strict=True):
        k, flip = rng.integers(4), rng.random() < 0.5
        im, m = np.rot90(im, k), np.rot90(m, k)
        if flip:
            im, m = im[:, ::-1], m[:, ::-1]
        xs.append(np.clip(im.astype(np.float32) * rng.uniform(0.9, 1.1), 0, 255))
        ys.append(m[..., None].astype(np.float32))
    return np.stack(xs), np.stack(ys)


def bce_dice(y_true, y_pred):
    """Binary cross-entropy plus soft Dice loss of the batch (Dice counters the small
    share of rock-glacier pixels, which alone drives a short training to all background)."""
    ops = keras.ops
    inter = ops.sum(y_true * y_pred)
    dice = 1 - (2 * inter + 1) / (ops.sum(y_true) + ops.sum(y_pred) + 1)
    return ops.mean(keras.losses.binary_crossentropy(y_true, y_pred)) + dice


def train_segmenter(images: np.ndarray, masks: np.ndarray, epochs: int = 10, batch: int = 16,
                    learning_rate: float = 2e-3, seed: int = 0, progress: bool = True
                    ) -> keras.Model:
    """Train the U-Net on (N, 128, 128, 3) uint8 tiles and (N, 128, 128) 0/1 masks."""
    model = build_unet(seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=bce_dice)
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(epochs), desc="U-Net epochs", disable=not progress, leave=False):
        order = rng.permutation(len(images))
        for i in range(0, len(order), batch):
            x, y = _augment_pairs(images[order[i:i + batch]], masks[order[i:i + batch]], rng)
            model.train_on_batch(x, y)
    return model


def evaluate_segmenter(model: keras.Model, images: np.ndarray, masks: np.ndarray,
                       threshold: float = 0.5) -> dict[str, float]:
    """Pixel IoU and F1 of the rock-glacier class over all tiles (masks (N, 128, 128) 0/1)."""
    prob = np.concatenate([np.asarray(model(images[i:i + 32].astype(np.float32)))
                           for i in range(0, len(images), 32)])[..., 0]
    return iou_f1(masks, prob >= threshold)


def iou_f1(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """IoU and F1 (Dice) of boolean/0-1 arrays of equal shape; NaN when both are empty."""
    t, p = np.asarray(truth, bool), np.asarray(pred, bool)
    tp, fp, fn = (t & p).sum(), (~t & p).sum(), (t & ~p).sum()
    denom = tp + fp + fn
    return {"iou": float(tp / denom) if denom else float("nan"),
            "f1": float(2 * tp / (2 * tp + fp + fn)) if denom else float("nan")}
