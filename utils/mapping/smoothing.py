"""3x3 mode filter for class maps, with the study's exact semantics.

The study smooths the predicted class map with::

    scipy.ndimage.generic_filter(classes, mode_func, size=3, mode="constant", cval=NODATA)

where ``mode_func`` ignores nodata values in the 3x3 window, returns nodata when
the window holds no valid value and otherwise returns the most frequent value,
ties going to the smallest class value. Pixels that were nodata are set back to
nodata afterwards. Outside the map counts as nodata (``cval=NODATA``).

:func:`reference_mode_filter` is that slow version (a Python callback per
pixel; for tests and benchmarks only). :func:`mode_filter_3x3` gives identical
output, vectorised: per class it counts the class's pixels in every 3x3 window
with shifted sums of a one-hot plane and keeps a running best count (a class
replaces the current best only with a strictly larger count, so ties go to the
smallest class). It works in row blocks, so extra memory stays bounded
(about ``block_pixels`` x 12 bytes) whatever the map size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from utils.study import CLASS_NODATA, N_CLASSES

NODATA: int = CLASS_NODATA

#: Pixels per row block of :func:`mode_filter_3x3` (about 12 bytes of work memory each).
DEFAULT_BLOCK_PIXELS: int = 1 << 18


def _check_classes(classes: np.ndarray) -> np.ndarray:
    arr = np.asarray(classes)
    if arr.ndim != 2:
        raise ValueError(f"class map must be 2-D (H, W), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"class map must have an integer dtype, got {arr.dtype}")
    return arr


def mode_filter_3x3(
    classes: np.ndarray,
    nodata: int = NODATA,
    n_classes: int = N_CLASSES,
    block_pixels: int = DEFAULT_BLOCK_PIXELS,
) -> np.ndarray:
    """3x3 majority (mode) filter of a class map, ignoring nodata.

    Args:
        classes: (H, W) integer class map; values are ``nodata`` or 0..n_classes-1.
        nodata: value marking pixels without a class (also assumed outside the map).
        n_classes: number of classes.
        block_pixels: approximate pixels processed per row block (bounds memory).

    Returns:
        (H, W) int16 map: for each valid pixel the most frequent valid class in
        its 3x3 window (ties -> smallest class); nodata pixels stay nodata.

    Raises:
        ValueError: a value is neither nodata nor a class in 0..n_classes-1, or
            ``nodata``/``n_classes`` do not fit int16.
    """
    arr = _check_classes(classes)
    if not -(2**15) <= nodata < 2**15 or not 0 < n_classes <= 2**15:
        raise ValueError(f"nodata ({nodata}) and classes 0..{n_classes - 1} must fit int16")
    h, w = arr.shape
    out = np.empty((h, w), dtype=np.int16)
    if h == 0 or w == 0:
        return out
    rows = max(1, int(block_pixels) // (w + 2))
    shift = max(1, int(n_classes - 1).bit_length())  # bits for the class tag
    tag_max = (1 << shift) - 1
    key_dtype = np.uint8 if (9 << shift) + tag_max < 256 else np.uint32

    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        b = r1 - r0
        # Padded block with a one-pixel halo; outside the map is nodata.
        src0, src1 = max(0, r0 - 1), min(h, r1 + 1)
        pad = np.full((b + 2, w + 2), nodata, dtype=np.int16)
        top = src0 - (r0 - 1)
        pad[top : top + (src1 - src0), 1:-1] = arr[src0:src1]
        core = arr[r0:r1]  # checked in its own dtype (no int16 wrap-around)
        valid = core != nodata
        bad = valid & ((core < 0) | (core >= n_classes))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"class map value {core[i, j]} at row {r0 + i}, col {j} is neither "
                f"nodata ({nodata}) nor a class 0..{n_classes - 1}"
            )

        # Branch-free running maximum of key = count << shift | (tag_max - class):
        # the highest count wins, and among equal counts the smallest class.
        best = np.zeros((b, w), dtype=key_dtype)
        onehot = np.empty((b + 2, w + 2), dtype=bool)
        hsum = np.empty((b + 2, w), dtype=key_dtype)
        key = np.empty((b, w), dtype=key_dtype)
        for c in range(n_classes):
            np.equal(pad, c, out=onehot)
            one = onehot.view(np.uint8)
            # Horizontal then vertical 3-sums: count of class c per 3x3 window (0..9).
            np.add(one[:, :-2], one[:, 1:-1], out=hsum)
            hsum += one[:, 2:]
            np.add(hsum[:-2], hsum[1:-1], out=key)
            key += hsum[2:]
            np.left_shift(key, shift, out=key)
            key |= key_dtype(tag_max - c)
            np.maximum(best, key, out=best)
        blk_out = out[r0:r1]
        np.subtract(tag_max, best & key_dtype(tag_max), out=blk_out, casting="unsafe")
        # No valid value in the window (count 0), or a nodata pixel: nodata.
        blk_out[(best >> shift == 0) | ~valid] = nodata
    return out


def reference_mode_filter(
    classes: np.ndarray, nodata: int = NODATA, n_classes: int = N_CLASSES
) -> np.ndarray:
    """The study's slow 3x3 mode filter (``generic_filter`` with a Python callback).

    For tests and benchmarks only; same arguments and result as
    :func:`mode_filter_3x3`. ``n_classes`` is unused (the study counts any value).
    """
    del n_classes
    arr = _check_classes(classes).astype(np.int16, copy=False)

    def mode_func(window: np.ndarray) -> float:
        vals = window[window != nodata]
        if vals.size == 0:
            return float(nodata)
        uniq, counts = np.unique(vals, return_counts=True)
        return float(uniq[np.argmax(counts)])  # unique is sorted: ties -> smallest

    out = ndimage.generic_filter(arr, mode_func, size=3, mode="constant", cval=nodata)
    out = out.astype(np.int16, copy=False)
    out[arr == nodata] = nodata
    return out
