"""Training input of the CNN: sample weights, augmentation and the tf.data pipeline.

The study's recipe: per-sample weight = class weight x scene weight, random
flips/rotations/contrast/brightness per patch, label smoothing 0.1. TensorFlow is
imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from utils.study import N_CLASSES

if TYPE_CHECKING:
    import tensorflow as tf

#: Label smoothing of training targets (the study's 0.1).
LABEL_SMOOTHING: float = 0.1
#: Augmentation ranges (the study's): contrast factor and brightness delta.
CONTRAST_RANGE: tuple[float, float] = (0.95, 1.05)
BRIGHTNESS_DELTA: float = 0.01


def sample_weights(
    labels: Sequence[int] | np.ndarray,
    glaciers: Sequence[str] | np.ndarray,
    dates: Sequence[str] | np.ndarray,
) -> np.ndarray:
    """Per-sample weights float32 (N,): class weight x scene weight, as in the study.

    class weight = N / count(class of the sample); scene weight = N / count((glacier, date)
    of the sample); counts over the given (training) samples.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if len(glaciers) != n or len(dates) != n:
        raise ValueError(
            f"labels, glaciers and dates differ in length: {n}, {len(glaciers)}, {len(dates)}"
        )
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    _, cls_inv, cls_count = np.unique(labels, return_inverse=True, return_counts=True)
    scenes = pd.MultiIndex.from_arrays(
        [np.asarray(glaciers, dtype=str), np.asarray(dates, dtype=str)]
    )
    scene_codes, _ = pd.factorize(scenes)
    scene_count = np.bincount(scene_codes)
    w = (n / cls_count[cls_inv]) * (n / scene_count[scene_codes])
    return w.astype(np.float32)


def augment(x: tf.Tensor | np.ndarray, seed: tf.Tensor | Sequence[int]) -> tf.Tensor:
    """The study's random augmentation of patches (B, H, W, C) or one patch (H, W, C).

    Per patch, independently: left-right flip (p=0.5), up-down flip (p=0.5), rot90 by
    k in {0, 1, 2, 3}, contrast ``(x - mean) * f + mean`` with f in [0.95, 1.05] and the
    per-channel spatial mean (as tf.image.adjust_contrast), then a brightness delta in
    [-0.01, 0.01] added to all channels. Needs H == W. ``seed`` is a stateless seed of
    shape (2,); the same seed gives the same result.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x, dtype=tf.float32)
    single = x.shape.rank == 3
    if single:
        x = x[tf.newaxis]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5)
    b = tf.shape(x)[0]
    lr = tf.random.stateless_uniform([b, 1, 1, 1], seeds[0]) < 0.5
    ud = tf.random.stateless_uniform([b, 1, 1, 1], seeds[1]) < 0.5
    k = tf.random.stateless_uniform([b], seeds[2], minval=0, maxval=4, dtype=tf.int32)
    f = tf.random.stateless_uniform([b, 1, 1, 1], seeds[3], *CONTRAST_RANGE)
    d = tf.random.stateless_uniform([b, 1, 1, 1], seeds[4], -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    x = tf.where(lr, tf.reverse(x, axis=[2]), x)
    x = tf.where(ud, tf.reverse(x, axis=[1]), x)
    rots = tf.stack([tf.image.rot90(x, i) for i in range(4)])  # (4, B, H, W, C)
    x = tf.gather_nd(rots, tf.stack([k, tf.range(b)], axis=1))
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    x = (x - mean) * f + mean + d
    return x[0] if single else x


def make_tf_dataset(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    training: bool = False,
    batch_size: int = 512,
    seed: int | None = None,
    n_classes: int = N_CLASSES,
) -> tf.data.Dataset:
    """tf.data input: batches of (x, one-hot y[, weight]), then prefetch.

    ``x`` float32 (N, H, W, C), ``y`` int (N,) class indices, ``weights`` (N,) or None.
    Training: reshuffled every epoch, :func:`augment` per batch, label smoothing
    ``y * (1 - 0.1) + 0.1 / n_classes``. Otherwise the input order and values unchanged,
    plain one-hot. ``seed`` makes shuffling and augmentation reproducible.
    """
    import tensorflow as tf

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    n = len(x)
    if x.ndim != 4 or y.shape != (n,):
        raise ValueError(f"x must be (N, H, W, C) and y (N,); got {x.shape} and {y.shape}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != (n,):
            raise ValueError(f"weights must be (N,) = ({n},), got {weights.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    # Variables (pinned to the CPU, where tf.data runs) rather than constants: a captured
    # constant is copied into the dataset graph when tf.data optimises it (slow, and
    # limited to 2 GB); a variable is captured by reference.
    with tf.device("/CPU:0"):
        xt = tf.Variable(x, trainable=False)
        yt = tf.Variable(y.astype(np.int32), trainable=False)
        wt = None if weights is None else tf.Variable(weights, trainable=False)

    def targets(i: tf.Tensor) -> tf.Tensor:
        t = tf.one_hot(tf.gather(yt, i), n_classes, dtype=tf.float32)
        if training:
            t = t * (1.0 - LABEL_SMOOTHING) + LABEL_SMOOTHING / n_classes
        return t

    def pack(i: tf.Tensor, xb: tf.Tensor) -> tuple[tf.Tensor, ...]:
        out = (xb, targets(i))
        return out if wt is None else (*out, tf.gather(wt, i))

    idx = tf.data.Dataset.range(n)
    if training:
        idx = idx.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
        idx = idx.batch(batch_size)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(idx, seeds).map(
            lambda i, s: pack(i, augment(tf.gather(xt, i), s)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        ds = idx.batch(batch_size).map(
            lambda i: pack(i, tf.gather(xt, i)), num_parallel_calls=tf.data.AUTOTUNE
        )
    return ds.prefetch(tf.data.AUTOTUNE)
