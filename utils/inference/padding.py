"""Edge padding and patch gathering: the input contract shared by every engine.

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
"""

from __future__ import annotations

import numpy as np

from utils.study import HALF, PATCH_SIZE


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
    patch: int = PATCH_SIZE,
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
