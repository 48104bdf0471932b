"""A compact U-Net for glacier / not-glacier masks, its focal + Dice loss, and its files.

The model maps normalised (B, H, W, C) tiles (H, W multiples of 8) to glacier
probabilities (B, H, W, 1). Three 2x down-sampling levels, each two 3x3
convolutions + batch normalisation + ReLU, ``base`` filters doubling per level
(0.48 M parameters for base 16 and 7 bands); skip connections; sigmoid output.

A trained model is two files: ``NAME.keras`` (Keras 3) and ``NAME.json`` (the
channel names it reads, in order, and the training settings).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
from keras import layers, ops

from utils.outlines import OutlineError
from utils.outlines.dataset import BANDS

LEVELS = 3


def _block(x, filters: int):
    for _ in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
    return x


def build_unet(n_channels: int, base: int = 16) -> keras.Model:
    """U-Net: (B, H, W, n_channels) -> glacier probability (B, H, W, 1)."""
    inp = keras.Input((None, None, n_channels))
    x, skips = inp, []
    for lvl in range(LEVELS):
        x = _block(x, base * 2**lvl)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = _block(x, base * 2**LEVELS)
    for lvl in reversed(range(LEVELS)):
        x = layers.Conv2DTranspose(base * 2**lvl, 2, strides=2, padding="same")(x)
        x = _block(layers.Concatenate()([x, skips[lvl]]), base * 2**lvl)
    out = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32")(x)
    return keras.Model(inp, out, name="outline_unet")


@keras.saving.register_keras_serializable(package="glacier_outlines")
class FocalDiceLoss(keras.losses.Loss):
    """Binary focal loss + soft Dice loss over weighted pixels.

    ``y_true`` (B, H, W, 2): target 0/1 and pixel weight (0 = padding or
    unlabelled); ``y_pred`` (B, H, W, 1) probabilities. Focal term: mean over
    weighted pixels of -(1 - p_t)^gamma log p_t; Dice: 1 - 2 sum(w p y) /
    (sum(w p) + sum(w y)) over the batch.
    """

    def __init__(self, gamma: float = 2.0, name: str = "focal_dice", reduction: str = "sum",
                 **kwargs) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        y, w = y_true[..., 0], y_true[..., 1]
        p = ops.clip(y_pred[..., 0], 1e-6, 1.0 - 1e-6)
        p_t = y * p + (1.0 - y) * (1.0 - p)
        focal = -ops.power(1.0 - p_t, self.gamma) * ops.log(p_t)
        n = ops.maximum(ops.sum(w), 1.0)
        dice = 1.0 - (2.0 * ops.sum(w * p * y) + 1.0) / (ops.sum(w * p) + ops.sum(w * y) + 1.0)
        return ops.sum(w * focal) / n + dice

    def get_config(self) -> dict:
        return {**super().get_config(), "gamma": self.gamma}


def compile_unet(model: keras.Model, learning_rate: float, decay_steps: int) -> None:
    """Adam with a cosine-decaying learning rate (to 5 % over ``decay_steps``) and the
    focal + Dice loss."""
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=FocalDiceLoss())


def save_model(model: keras.Model, path: Path, config: dict) -> None:
    """Write ``path`` (.keras) and its sidecar ``path.with_suffix('.json')``."""
    model.save(path)
    path.with_suffix(".json").write_text(json.dumps(config, indent=1))


def load_model(path: str | os.PathLike) -> tuple[keras.Model, dict]:
    """Load ``NAME.keras`` and ``NAME.json``; OutlineError naming the file otherwise."""
    path = Path(path)
    if path.suffix != ".keras":
        path = path.with_suffix(".keras")
    side = path.with_suffix(".json")
    for p in (path, side):
        if not p.is_file():
            raise OutlineError(f"{p}: outline model file not found (a model is NAME.keras "
                               "+ NAME.json, written by utils.outlines.train)")
    try:
        config = json.loads(side.read_text())
        bands = list(config["bands"])
    except (ValueError, KeyError, TypeError) as e:
        raise OutlineError(f"{side}: not an outline model description ({e})") from None
    if not bands or any(b not in BANDS for b in bands):
        raise OutlineError(f"{side}: bands {bands} must be a subset of {list(BANDS)}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - any Keras reader failure is the same user error
        raise OutlineError(f"{path}: cannot load the outline model ({e})") from None
    if model.input_shape[-1] != len(bands):
        raise OutlineError(f"{path}: model reads {model.input_shape[-1]} channels but "
                           f"{side} lists {len(bands)}")
    return model, config
