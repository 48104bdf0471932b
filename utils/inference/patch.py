"""The ``patch`` engine: each pixel classified from its own 33 x 33 patch (the study's method).

Patches are gathered per batch from the padded array (:mod:`utils.inference.padding`)
and run through a compiled forward pass with a fixed batch shape.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from utils.inference.padding import gather_patches
from utils.study import N_CLASSES, PATCH_SIZE

#: Patches per model call (memory grows ~0.3 MB per patch); apply.py's default too.
DEFAULT_BATCH: int = 256


# Compiled forward passes, one per (model, batch, patch, features); weak keys so a
# discarded model frees its functions.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled_forward(model: Any, batch: int, patch: int, n_features: int) -> Callable:
    """A tf.function running ``model(x, training=False)`` on (batch, patch, patch, F) float32."""
    import tensorflow as tf

    per_model = _COMPILED.setdefault(model, {})
    key = (batch, patch, n_features)
    if key not in per_model:
        spec = tf.TensorSpec((batch, patch, patch, n_features), tf.float32)

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def forward(x):
            return model(x, training=False)

        per_model[key] = forward
    return per_model[key]


def _batch_shape(n: int, batch_size: int) -> int:
    """Fixed batch for ``n`` patches: ``batch_size``, or a power of two >= n (>= 16) if smaller."""
    if n >= batch_size:
        return batch_size
    return min(batch_size, max(16, 1 << max(0, int(n - 1).bit_length())))


def patch_probs(
    model: Any,
    padded: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The ``patch`` engine: class probabilities of pixels from their 33 x 33 patches.

    Args:
        model: Keras model mapping (B, 33, 33, F) -> (B, C) softmax probabilities.
        padded: (H + 32, W + 32, F) float32 from :func:`pad_features` / :func:`pad_window`.
        rows, cols: (n,) pixel coordinates in the unpadded frame; the patch of pixel
            (r, c) is ``padded[r : r + 33, c : c + 33]``.
        batch_size: patches per model call (memory grows ~0.3 MB per patch).
        progress: called with the number of pixels finished after each batch.

    Returns:
        float32 (n, C) probabilities, in the order of ``rows``/``cols``.

    Patches are gathered per batch by fancy indexing into a reused buffer and run
    through a compiled ``tf.function`` with a fixed batch shape (the last batch is
    zero-filled), so there is no retracing and no Python work per pixel.
    """
    rows = np.asarray(rows, dtype=np.intp).ravel()
    cols = np.asarray(cols, dtype=np.intp).ravel()
    if rows.shape != cols.shape:
        raise ValueError(f"rows {rows.shape} and cols {cols.shape} differ in length")
    if padded.ndim != 3:
        raise ValueError(f"padded must be (H + 32, W + 32, F), got shape {padded.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = rows.size
    n_out = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else N_CLASSES
    out = np.empty((n, n_out), dtype=np.float32)
    if n == 0:
        return out
    patch = PATCH_SIZE
    if (rows.min() < 0 or cols.min() < 0 or rows.max() + patch > padded.shape[0]
            or cols.max() + patch > padded.shape[1]):
        raise ValueError(
            f"pixel coordinates out of range for a padded array of shape {padded.shape}"
        )
    n_feat = padded.shape[2]
    batch = _batch_shape(n, int(batch_size))
    forward = _compiled_forward(model, batch, patch, n_feat)
    buf = np.zeros((batch, patch, patch, n_feat), dtype=np.float32)
    src = padded if padded.dtype == np.float32 else padded.astype(np.float32)
    for i in range(0, n, batch):
        j = min(n, i + batch)
        gather_patches(src, rows[i:j], cols[i:j], out=buf)
        if j - i < batch:
            buf[j - i :] = 0.0
        out[i:j] = np.asarray(forward(buf))[: j - i]
        if progress is not None:
            progress(j - i)
    return out
