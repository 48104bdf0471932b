"""Per-pixel CNN inference on feature arrays: edge padding and patch engines.

Edge handling (the contract shared by every engine; keep exactly)
------------------------------------------------------------------
The CNN classifies the centre pixel of a 33 x 33 patch. To give *every* pixel,
including those within 16 px of the scene border, a full patch:

1. the features (H, W, F) are normalised (``utils.normalisation``);
2. NaN / nodata values are replaced by 0;
3. the array is padded by 16 px on each side with numpy ``mode="reflect"``
   (mirror without repeating the edge pixel: row -k is row k) ->
   ``padded`` of shape (H + 32, W + 32, F);
4. the patch of pixel (r, c) is ``padded[r : r + 33, c : c + 33]``.

:func:`pad_features` does steps 2-3 for a whole scene; :func:`pad_window` does
them for a block of full-width rows cut from a larger scene, giving exactly the
corresponding rows of ``pad_features(scene)``.

Engines
-------
An engine is one function ``probs = engine(model, padded, rows, cols, batch_size)``
returning float32 class probabilities (n, 8) for the pixels ``(rows[i], cols[i])``
(coordinates in the *unpadded* frame). Engines may also accept a keyword
``progress`` (a callable receiving the number of pixels just finished) for
progress bars. :data:`ENGINES` maps the names accepted by ``apply.py --engine``
to engines; :func:`patch_probs` is the ``patch`` engine.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from utils.study import N_CLASSES, PATCH_SIZE

#: Patch side (pixels) and half side of the study's CNN input.
PATCH: int = PATCH_SIZE
HALF: int = PATCH // 2

#: Default patches per model call of :func:`patch_probs`.
DEFAULT_BATCH: int = 2048


class Engine(Protocol):
    """Signature of an inference engine (see the module docstring)."""

    def __call__(
        self, model: Any, padded: np.ndarray, rows: np.ndarray, cols: np.ndarray,
        batch_size: int,
    ) -> np.ndarray: ...


def pad_features(features: np.ndarray, half: int = HALF) -> np.ndarray:
    """NaN -> 0, then reflect-pad ``half`` px on every side: (H, W, F) -> (H+2h, W+2h, F).

    ``features`` are already normalised; the result is float32. The patch of
    pixel (r, c) is ``padded[r : r + 2 * half + 1, c : c + 2 * half + 1]``.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"features must be (H, W, F), got shape {x.shape}")
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return np.pad(x, ((half, half), (half, half), (0, 0)), mode="reflect")


def window_rows(r0: int, r1: int, height: int, half: int = HALF) -> tuple[int, int]:
    """Scene rows ``[e0, e1)`` to read for a block of rows ``[r0, r1)``: the block
    plus up to ``half`` rows of halo on each side, clipped to the scene."""
    return max(0, r0 - half), min(height, r1 + half)


def pad_window(
    block: np.ndarray, r0: int, r1: int, height: int, half: int = HALF
) -> np.ndarray:
    """Pad a block of full-width scene rows like :func:`pad_features` pads the scene.

    Args:
        block: normalised features (e1 - e0, W, F) of scene rows ``[e0, e1)`` from
            :func:`window_rows` ``(r0, r1, height)``, NaN allowed.
        r0, r1: the block's own rows (pixels to classify are in ``[r0, r1)``).
        height: scene height H in pixels.

    Returns:
        float32 (r1 - r0 + 2 * half, W + 2 * half, F), equal to
        ``pad_features(scene)[r0 : r1 + 2 * half]``; pixel (r, c) of the scene
        (r0 <= r < r1) has its patch at ``out[r - r0 : r - r0 + 2 * half + 1, c : ...]``.
        Rows beyond the scene are reflected only where the block touches the scene's
        top or bottom (the halo rows are real rows elsewhere).
    """
    e0, e1 = window_rows(r0, r1, height, half)
    if block.shape[0] != e1 - e0:
        raise ValueError(f"block has {block.shape[0]} rows, expected {e1 - e0} (rows {e0}..{e1})")
    if (e0, e1) == (0, height):  # the whole scene: pad_features, cropped to the block
        return pad_features(block, half)[r0 : r1 + 2 * half]
    x = np.nan_to_num(np.asarray(block, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    top = half - (r0 - e0)  # virtual rows above the scene (0 unless e0 == 0)
    bottom = half - (e1 - r1)
    return np.pad(x, ((top, bottom), (half, half), (0, 0)), mode="reflect")


def gather_patches(
    padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray | None = None,
    patch: int = PATCH,
) -> np.ndarray:
    """Patches (n, patch, patch, F) of pixels (rows, cols) from a padded array.

    One fancy-indexing gather (no Python loop per pixel); writes into ``out``
    (e.g. a reused batch buffer) when given.
    """
    r = np.asarray(rows, dtype=np.intp)
    c = np.asarray(cols, dtype=np.intp)
    off = np.arange(patch, dtype=np.intp)
    idx_r = r[:, None, None] + off[None, :, None]
    idx_c = c[:, None, None] + off[None, None, :]
    if out is None:
        return padded[idx_r, idx_c]
    out[: len(r)] = padded[idx_r, idx_c]
    return out


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
    patch = PATCH
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


def dense_exact_probs(model: Any, padded: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                      batch_size: int = DEFAULT_BATCH,
                      progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The ``dense`` engine: shared convolutions, same results as ``patch`` (utils.inference.dense)."""
    from utils.inference.dense import dense_probs

    return dense_probs(model, padded, rows, cols, exact=True, progress=progress)


def dense_approx_probs(model: Any, padded: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                       batch_size: int = DEFAULT_BATCH,
                       progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The ``dense-approx`` engine: scene-wide global max; fast, changes some labels."""
    from utils.inference.dense import dense_probs

    return dense_probs(model, padded, rows, cols, exact=False, progress=progress)


#: Engines selectable with ``apply.py --engine`` (same arguments; ``batch_size`` is
#: used by ``patch`` only). See docs/BENCHMARKS.md for their speed and agreement.
ENGINES: dict[str, Callable[..., np.ndarray]] = {
    "patch": patch_probs,
    "dense": dense_exact_probs,
    "dense-approx": dense_approx_probs,
}


def run_engine(
    engine: Callable[..., np.ndarray],
    model: Any,
    padded: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Call ``engine``; pass ``progress`` if it accepts it, else report all pixels at the end."""
    try:
        accepts = "progress" in inspect.signature(engine).parameters
    except (TypeError, ValueError):
        accepts = False
    if accepts:
        return engine(model, padded, rows, cols, batch_size, progress=progress)
    probs = engine(model, padded, rows, cols, batch_size)
    if progress is not None:
        progress(len(rows))
    return probs


def confidence(probs: np.ndarray, calibrator: Any | None = None) -> np.ndarray:
    """Confidence (n,) float32 in [0, 1]: max probability, or ``calibrator.calibrate(probs)``."""
    p = np.asarray(probs, dtype=np.float32)
    if p.shape[0] == 0:
        return np.empty(0, dtype=np.float32)
    conf = p.max(axis=1) if calibrator is None else np.asarray(calibrator.calibrate(p))
    conf = np.asarray(conf, dtype=np.float32).reshape(p.shape[0])
    return np.clip(np.nan_to_num(conf, nan=0.0), 0.0, 1.0)
