"""A compact Keras 3 CNN that tells rock-glacier tiles from other mountain terrain.

Input: (N, 128, 128, 3) uint8 RGB tiles (Sentinel-2 true colour, 10 m, so 1.28 km
a side); output: (N,) probability of a rock glacier. The network first turns the
tile into grey-level local contrast (:class:`LocalContrast`: texture without
brightness, colour or snow cover, which differ between acquisitions and which
the network otherwise learns instead of the landform), standardises it per tile
(:class:`TileStandardise`), averages 2 x 2 pixels (20 m: rock glaciers are
hundreds of metres long, and a quarter of the pixels makes CPU training cheap),
then four conv blocks (16, 32, 64, 128 filters), global average pooling, dropout
and one sigmoid unit; ~98 k weights, trained from scratch (no pretrained
weights, nothing downloaded).

Training augments every batch the way nadir imagery allows (random flips, 90°
rotations, brightness and contrast x U(0.9, 1.1)) and weights samples so both
classes count equally. :func:`predict` averages over the 8 flips and 90° rotations
of each tile (test-time augmentation, chosen by grouped cross-validation).
A saved classifier is a ``.keras`` file plus its probability calibrator
(``utils.calibration`` temperature scaling, JSON) beside it as
``<name>.calibration.json``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from utils.calibration import Calibrator, fit_calibrator, load_calibrator, save_calibrator
from utils.files import atomic_output, check_output
from utils.rockglaciers.tiles import TILE, RockGlacierError

#: The settings chosen by grouped cross-validation (docs/ROCK_GLACIERS.md).
EPOCHS = 45
BATCH = 32
LEARNING_RATE = 2e-3


@keras.saving.register_keras_serializable(package="rockglaciers")
class TileStandardise(keras.layers.Layer):
    """Standardise each tile's channels to mean 0, sd 1 over its pixels: (N, H, W, C).

    Removes a tile's overall brightness, contrast and colour cast (illumination,
    haze, snow cover of the scene), which grouped cross-validation showed the
    network otherwise leans on.
    """

    def call(self, x):
        mean = keras.ops.mean(x, axis=(1, 2), keepdims=True)
        sd = keras.ops.std(x, axis=(1, 2), keepdims=True)
        return (x - mean) / (sd + 1e-2)


@keras.saving.register_keras_serializable(package="rockglaciers")
class LocalContrast(keras.layers.Layer):
    """Grey-level local contrast of RGB in 0..1: (N, H, W, 3) -> (N, H, W, 1) in 0..1.

    ``(grey - local mean) / local sd`` over a ``size`` x ``size`` window (17 px =
    170 m at 10 m), mapped to 0..1 as ``0.5 + z * 40 / 255`` and clipped (|z| <= 3.2).
    Keeps the texture of ridges, furrows and fronts and drops what changes with the
    acquisition: brightness, haze, colour, snow cover's large bright patches.
    Grouped cross-validation chose it over RGB (balanced accuracy 0.84 -> 0.94,
    docs/ROCK_GLACIERS.md).
    """

    def __init__(self, size: int = 17, **kw) -> None:
        super().__init__(**kw)
        self.size = size
        self.pool = keras.layers.AveragePooling2D(size, strides=1, padding="same")

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}

    def call(self, x):
        grey = keras.ops.mean(x, axis=-1, keepdims=True)
        mean = self.pool(grey)
        var = keras.ops.maximum(self.pool(grey * grey) - mean * mean, 0.0)
        z = (grey - mean) / keras.ops.sqrt(var + (2 / 255) ** 2)
        return keras.ops.clip(0.5 + z * (40 / 255), 0.0, 1.0)


def build_classifier(seed: int = 0) -> keras.Model:
    """The untrained CNN: (N, 128, 128, 3) uint8 RGB -> (N, 1) probability of a rock glacier."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((TILE, TILE, 3))
    x = LocalContrast()(keras.layers.Rescaling(1 / 255)(inp))
    x = TileStandardise()(x)
    x = keras.layers.AveragePooling2D(2)(x)
    for filters in (16, 32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)  # few steps: 0.99 lags
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inp, out, name="rock_glacier_cnn")


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips, 90° rotations, brightness and contrast of (N, H, W, 3) uint8 -> float32."""
    out = np.empty(images.shape, np.float32)
    for i, im in enumerate(images):
        im = np.rot90(im, rng.integers(4))
        if rng.random() < 0.5:
            im = im[:, ::-1]
        im = im.astype(np.float32)
        mean = im.mean()
        im = (im - mean) * rng.uniform(0.9, 1.1) + mean * rng.uniform(0.9, 1.1)
        out[i] = np.clip(im, 0, 255)
    return out


class _Batches(keras.utils.PyDataset):
    """Shuffled, augmented, class-weighted batches of one epoch."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch: int, seed: int) -> None:
        super().__init__()
        self.images, self.labels, self.batch = images, labels.astype(np.float32), batch
        self.rng = np.random.default_rng(seed)
        counts = np.bincount(labels, minlength=2).astype(np.float64)
        self.weights = (len(labels) / (2 * np.maximum(counts, 1)))[labels].astype(np.float32)
        self.order = self.rng.permutation(len(labels))

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch)

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch:(i + 1) * self.batch]
        return augment(self.images[idx], self.rng), self.labels[idx], self.weights[idx]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.labels))


class _Progress(keras.callbacks.Callback):
    def __init__(self, bar: tqdm) -> None:
        super().__init__()
        self.bar, self.seconds, self._t = bar, [], 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._t)
        self.bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.3f}")
        self.bar.update()


def train_classifier(images: np.ndarray, labels: np.ndarray, epochs: int = EPOCHS,
                     batch: int = BATCH, learning_rate: float = LEARNING_RATE, seed: int = 0,
                     steps: int | None = None, progress: bool = True
                     ) -> tuple[keras.Model, list[float]]:
    """Train a fresh CNN on (N, 128, 128, 3) uint8 tiles and (N,) 0/1 labels.

    ``steps`` caps the batches per epoch (for quick tests). Returns the model and
    the wall time of each epoch in seconds.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(np.unique(labels)) != 2:
        raise RockGlacierError("training needs tiles of both classes (rock glacier and not)")
    model = build_classifier(seed)
    data = _Batches(images, labels, batch, seed)
    steps = min(steps or len(data), len(data))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy")
    with tqdm(total=epochs, desc="epochs", disable=not progress, leave=False) as bar:
        cb = _Progress(bar)
        model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=[cb])
    return model, cb.seconds


def predict(model: keras.Model, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """Probability of a rock glacier (N,) float64 for (N, 128, 128, 3) uint8 tiles.

    Test-time augmentation: the mean over the tile's 8 flips and 90° rotations (a
    nadir tile has no up or left, and the network was trained on all 8), so 8 passes.
    """
    if len(images) == 0:
        return np.zeros(0)
    total = np.zeros(len(images))
    for k in range(4):
        turned = np.rot90(images, k, axes=(1, 2))
        for view in (turned, turned[:, :, ::-1]):
            view = np.ascontiguousarray(view, np.float32)
            total += np.concatenate([np.asarray(model(view[i:i + batch], training=False))
                                     for i in range(0, len(view), batch)])[:, 0]
    return total / 8


def two_class(p: np.ndarray) -> np.ndarray:
    """(N,) probability of a rock glacier -> (N, 2) probabilities [no, yes]."""
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.stack([1 - p, p], axis=-1)


def fit_probability_calibrator(p: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Temperature scaling (utils.calibration) of out-of-sample probabilities (N,)."""
    return fit_calibrator("temperature", two_class(p), np.asarray(labels, np.int64))


def calibrate(cal: Calibrator, p: np.ndarray) -> np.ndarray:
    """Calibrated probability of a rock glacier (N,) from raw probabilities (N,)."""
    return cal.calibrated_probs(two_class(p))[:, 1]


def calibrator_path(model_path: str | os.PathLike) -> Path:
    """``<name>.calibration.json`` beside the ``<name>.keras`` model file."""
    return Path(model_path).with_suffix(".calibration.json")


def save_classifier(model: keras.Model, cal: Calibrator, path: str | os.PathLike,
                    overwrite: bool = False) -> Path:
    """Write ``path`` (.keras) and its calibrator JSON; both checked before writing."""
    path = Path(path)
    if path.suffix != ".keras":
        raise RockGlacierError(f"{path}: model file name must end in .keras")
    check_output(path, overwrite, "model")
    check_output(calibrator_path(path), overwrite, "calibrator")
    with atomic_output(path, overwrite=overwrite, what="model") as tmp:
        keras_tmp = tmp.parent / (tmp.name + ".keras")  # Keras wants the suffix
        model.save(keras_tmp)
        keras_tmp.replace(tmp)
    with atomic_output(calibrator_path(path), overwrite=overwrite, what="calibrator") as tmp:
        save_calibrator(cal, tmp)
    return path


def load_classifier(path: str | os.PathLike) -> tuple[keras.Model, Calibrator]:
    """Read a model saved by :func:`save_classifier` and its calibrator."""
    path, cal_path = Path(path), calibrator_path(path)
    for p, what in ((path, "model"), (cal_path, "calibrator")):
        if not p.is_file():
            raise RockGlacierError(f"{p}: {what} file not found")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad file
        raise RockGlacierError(f"{path}: not a readable Keras model ({e})") from e
    if tuple(model.input_shape[1:]) != (TILE, TILE, 3) or model.output_shape[1:] != (1,):
        raise RockGlacierError(f"{path}: model maps {model.input_shape} -> {model.output_shape}, "
                               f"expected (None, {TILE}, {TILE}, 3) -> (None, 1)")
    try:
        cal = load_calibrator(cal_path)
    except Exception as e:
        raise RockGlacierError(f"{cal_path}: not a readable calibrator ({e})") from e
    if not hasattr(cal, "calibrated_probs"):
        raise RockGlacierError(f"{cal_path}: a {cal.kind} calibrator; expected temperature")
    return model, cal
