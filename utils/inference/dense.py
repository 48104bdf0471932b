"""Dense scene inference for the facies CNN: convolution work shared between patches.

The per-pixel ("patch") engine classifies scene pixel (r, c) from its own patch
``padded[r:r+33, c:c+33]`` (:func:`utils.inference.padding.gather_patches`) at about
201 MFLOP (100.6 M multiply-adds) per pixel. Neighbouring patches overlap almost entirely; this
module computes the shared work once per scene tile instead.

What is shared exactly (both modes):

* **Stage 1** (three 3x3 convolutions) runs tile-wide; a patch cell more than
  2 px from the patch edge never sees the per-patch zero padding, so it equals
  the tile-wide value, and the centre tap **c1** is exact.
* The 3x3 / stride 3 **max pool** is aligned to the patch corner (9 phases); a
  stride-1 3x3 max over tile-wide stage 1 holds all phases: pooled cell (a, b)
  of pixel (r, c) sits at (r + 3a, c + 3b). Cells 1..9 are exact.
* **Stage 2** runs tile-wide on that map as convolutions with dilation 3 (all
  phases at once); the centre tap **c2** only reads pooled cells 2..8: exact.

The **global max g** over the 11x11 stage-2 map is where the patch border
matters: every convolution of both stages zero-pads at the patch (pooled-grid)
border, and the model's g is very often attained in border and corner cells.

* ``exact=True`` (default): border effects are computed exactly with *class
  maps* ("Class maps" comment in the exact-engine section): a cell depends on
  the patch border only through its distance to the nearest border per axis,
  and only while that distance is below a depth that grows by one per conv. Per
  layer, one map per (row class, column class) is computed tile-wide: the
  middle class is the plain tile-wide convolution, edge classes are shared by
  all patches with the same top row (left column, ...), corner classes are one
  cell per patch. Results equal the per-patch model up to float32 rounding
  (tests: probabilities within 1e-5), at about 7.5 M multiply-adds per pixel
  (:func:`exact_macs_per_pixel`), i.e. about 13x fewer than per-patch. Corner
  classes are inherently per-patch work (most of the 7.5 M), which bounds the
  speed-up of any exact scheme.
* ``exact=False``: g is the 11x11 (dilation 3) running max of the tile-wide
  stage-2 map, i.e. every stage-2 cell computed as if the patch continued beyond
  its border (context beyond ``padded`` near the scene edge: its reflection,
  :data:`APPROX_HALO`). About 0.2 M multiply-adds per pixel, but it changes g
  substantially: it changed 9 % of the labels on the golden scene (the study's
  published fold-0 model) and 14 % on a demo scene (a demo-trained model;
  ``benchmarks/bench_inference.py``). Use it only where that is acceptable.

Everything is float32 TensorFlow (batch-norm folded into the convolutions),
compiled once per model (:class:`DenseEngine`; the exact graph takes several
seconds to trace, on its first use). Memory stays bounded: work is done per block of
output pixels plus the 32-px halo their 33x33 patches need, and only blocks
holding requested pixels are computed. Exact engine: grid-aligned ``tile`` x
``tile`` blocks (default 64), split down to 16 x 16 where the requested pixels
are sparse (mask edges); pixels of 16 x 16 blocks holding fewer than
:data:`SPARSE_BLOCK_PIXELS` are classified one patch each; same-sized blocks
are batched (:data:`EXACT_BATCH_PIXELS` pixels per call; about 1 GB of working
memory, ``benchmarks/bench_apply.py --large``). Approximate engine: ``tile`` x
``tile`` tiles (default 256) trimmed to the requested pixels' bounding box. A
pixel's result does not depend on the blocking (up to float32 rounding: oneDNN
may pick other kernels for other block shapes).

Padding contract (:mod:`utils.inference.padding`): ``padded`` is the
normalised (H, W, F) scene with NaN/nodata replaced by 0 and
``np.pad(features, ((16, 16), (16, 16), (0, 0)), mode="reflect")`` applied, so
(H + 32, W + 32, F); scene pixel (r, c) is classified from ``padded[r:r+33, c:c+33]``.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from utils.inference.dense_plan import (
    GRID,
    HALF,
    HALF_GRID,
    PATCH,
    build_exact_tile,
    conv_stack,
    dense_head,
    exact_macs_per_pixel,
    fold_weights,
    per_patch_macs,
)
from utils.inference.padding import gather_patches

#: Extra context (px) beyond each patch that the approximate g needs: stage-2
#: cells at the pooled border (a = 0, 10) computed tile-wide see 3 pooled cells
#: (9 px) beyond the patch, plus 3 px of stage-1 receptive field.
APPROX_HALO: int = 12
#: Default block / tile sides (output pixels): the exact engine is fastest with
#: small blocks (its many class maps stay in cache), the approximate one with large.
DEFAULT_TILE_EXACT: int = 64
DEFAULT_TILE_APPROX: int = 256
#: Output pixels per call of the exact engine (blocks of the same size are batched).
EXACT_BATCH_PIXELS: int = 4096


class DenseEngine:
    """Compiled dense inference for one model (see the module docstring).

    Build once per model (``DenseEngine(model)``) and reuse; :func:`dense_probs`
    keeps one per model automatically.
    """

    def __init__(self, model: keras.Model) -> None:
        self.weights = fold_weights(model)
        w = self.weights
        f = w.n_features
        spec_x = tf.TensorSpec([None, None, None, f], tf.float32)
        spec_idx = tf.TensorSpec([None, 3], tf.int32)

        @tf.function(input_signature=[spec_x, spec_idx], reduce_retracing=True)
        def approx_tile(x: tf.Tensor, idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            # x: (1, h + 32 + 2*APPROX_HALO, w + 32 + 2*APPROX_HALO, F) for an (h, w)
            # block of output pixels (B = 1); idx: (n, 3) requested pixels, (0, row, col).
            s1 = conv_stack(x, w.stage1)  # (1, h + 50, w + 50, 64); index s <-> x row s + 3
            pooled = tf.nn.max_pool2d(s1, 3, 1, "VALID")  # (1, h + 48, ...); m <-> x row m + 3
            s2 = conv_stack(pooled, w.stage2, dilation=3)  # (1, h + 30, ...); z <-> m + 9
            g = tf.nn.pool(s2, [GRID, GRID], "MAX", padding="VALID", dilations=[3, 3])
            # pixel i (x rows i .. i + 32 + 24): c1 at x row i + 28 -> s1 index i + 25;
            # pooled cell a at x row i + 12 + 3a -> m index i + 9 + 3a; c2 (a = 5) at
            # z index i + 15; g over z indices i + 3a, a = 0..10 -> g index i.
            o = APPROX_HALO
            c1 = tf.gather_nd(s1, idx + [0, o + HALF - 3, o + HALF - 3])
            c2 = tf.gather_nd(s2, idx + [0, o + 3, o + 3])
            gg = tf.gather_nd(g, idx)
            z = tf.concat([c1, c2, gg], axis=1)
            return z, dense_head(z, w.head)

        @tf.function(input_signature=[tf.TensorSpec([None, PATCH, PATCH, f], tf.float32)])
        def patch_batch(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            # x: (k, 33, 33, F) patches; the per-patch model with folded weights.
            s1 = x
            for kernel, bias in w.stage1:
                s1 = tf.nn.elu(tf.nn.conv2d(s1, kernel, 1, "SAME") + bias)
            s2 = tf.nn.max_pool2d(s1, 3, 3, "VALID")
            for kernel, bias in w.stage2:
                s2 = tf.nn.elu(tf.nn.conv2d(s2, kernel, 1, "SAME") + bias)
            centre1, centre2 = s1[:, HALF, HALF], s2[:, HALF_GRID, HALF_GRID]
            z = tf.concat([centre1, centre2, tf.reduce_max(s2, axis=[1, 2])], axis=1)
            return z, dense_head(z, w.head)

        #: Compiled functions ``(x (B, h', w', F), idx (k, 3)) -> (z (k, 192), probs (k, K))``.
        self.approx_tile = approx_tile
        self.exact_tile = build_exact_tile(w, spec_x, spec_idx)
        #: ``(patches (k, 33, 33, F)) -> (z, probs)``: isolated pixels of the exact engine.
        self.patch_batch = patch_batch


# --------------------------------------------------------------------------- public API


_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_engine(model: keras.Model | DenseEngine) -> DenseEngine:
    """The :class:`DenseEngine` of ``model``, cached per model (rebuilt if its weights changed)."""
    if isinstance(model, DenseEngine):
        return model
    current = model.get_weights()
    cached = _ENGINES.get(model)
    if cached is not None:
        engine, weights = cached
        if len(weights) == len(current) and all(
            np.array_equal(a, b) for a, b in zip(weights, current, strict=True)
        ):
            return engine
    engine = DenseEngine(model)
    _ENGINES[model] = (engine, current)
    return engine


def _check_inputs(
    padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_features: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    padded = np.asarray(padded, np.float32)
    if padded.ndim != 3 or padded.shape[2] != n_features:
        raise ValueError(f"padded must be (H + 32, W + 32, {n_features}), got {padded.shape}")
    h, w = padded.shape[0] - 2 * HALF, padded.shape[1] - 2 * HALF
    if h < 1 or w < 1:
        raise ValueError(f"padded {padded.shape} is smaller than one 33 x 33 patch")
    rows = np.asarray(rows).reshape(-1)
    cols = np.asarray(cols).reshape(-1)
    if rows.shape != cols.shape:
        raise ValueError(f"rows and cols differ in length: {rows.shape} vs {cols.shape}")
    if not (np.issubdtype(rows.dtype, np.integer) or rows.size == 0) or not (
        np.issubdtype(cols.dtype, np.integer) or cols.size == 0
    ):
        raise TypeError("rows and cols must be integer arrays")
    rows = rows.astype(np.int64)
    cols = cols.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= h or cols.min() < 0 or cols.max() >= w):
        raise ValueError(f"pixel indices outside the {h} x {w} scene")
    return padded, rows, cols


def _window(padded: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """``padded[r0:r1, c0:c1]`` where out-of-range parts are reflected about its edges.

    Only the approximate engine reads outside ``padded`` (at most
    :data:`APPROX_HALO` px), for pixels near the scene edge.
    """
    hp, wp = padded.shape[:2]
    s0, s1, t0, t1 = max(r0, 0), min(r1, hp), max(c0, 0), min(c1, wp)
    win = padded[s0:s1, t0:t1]
    pads = ((s0 - r0, r1 - s1), (t0 - c0, c1 - t1), (0, 0))
    if any(p for pair in pads for p in pair):
        win = np.pad(win, pads, mode="reflect")
    return np.ascontiguousarray(win, dtype=np.float32)


def _blocks(rows: np.ndarray, cols: np.ndarray, tile: int):
    """Yield (positions, r0, r1, c0, c1): the requested pixels of each tile x tile tile
    and their bounding box."""
    key = (rows // tile) * (int(cols.max()) // tile + 1) + cols // tile
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for sel in np.split(order, bounds):
        r, c = rows[sel], cols[sel]
        yield sel, int(r.min()), int(r.max()) + 1, int(c.min()), int(c.max()) + 1


#: Smallest block side the exact engine splits sparse blocks into.
MIN_BLOCK: int = 16
#: A MIN_BLOCK x MIN_BLOCK block with fewer requested pixels than this is not
#: computed with class maps; its pixels are classified each from its own patch
#: (same result). One 16 x 16 block costs as many multiply-adds as ~24 patches
#: (:func:`exact_macs_per_pixel`), and its many small convolutions run less
#: efficiently than a batch of patches.
SPARSE_BLOCK_PIXELS: int = 32
#: Patches per call for those isolated pixels.
PATCH_BATCH: int = 256


@functools.lru_cache(maxsize=64)
def _block_cost(side: int) -> float:
    """Relative cost of one exact side x side block (multiply-adds)."""
    return side * side * exact_macs_per_pixel(side)


def _quad_levels(rows: np.ndarray, cols: np.ndarray, side: int) -> list[tuple[int, np.ndarray]]:
    """Cover the requested pixels with grid-aligned blocks: (block side, pixel positions).

    A block of the ``side`` grid is split into its four half-size children (down
    to :data:`MIN_BLOCK`) when the children that hold requested pixels cost less
    than the whole block, so sparse parts of a mask get small blocks.
    """
    levels = []
    pos = np.arange(rows.size)
    while pos.size:
        r, c = rows[pos], cols[pos]
        half = side // 2
        if side % 2 or half < MIN_BLOCK:
            levels.append((side, pos))
            break
        width = int(c.max()) // half + 2
        parent = (r // side) * width + c // side
        child = (r // half) * width + c // half
        _, parent_id = np.unique(parent, return_inverse=True)
        pairs = np.unique(np.stack([parent_id, child], 1), axis=0)
        children = np.bincount(pairs[:, 0], minlength=parent_id.max() + 1)
        split = children * _block_cost(half) < _block_cost(side)
        keep = ~split[parent_id]
        if keep.any():
            levels.append((side, pos[keep]))
        pos = pos[~keep]
        side = half
    return levels


def _split_sparse(
    rows: np.ndarray, cols: np.ndarray, levels: list[tuple[int, np.ndarray]]
) -> tuple[list[tuple[int, np.ndarray]], np.ndarray]:
    """Move the pixels of sparse :data:`MIN_BLOCK` blocks out of ``levels``.

    Returns the remaining levels and the positions of the moved pixels (to be
    classified one patch each).
    """
    kept, alone = [], []
    for side, pos in levels:
        if side == MIN_BLOCK:
            br, bc = rows[pos] // side, cols[pos] // side
            _, block, count = np.unique(
                br * (int(bc.max()) + 1) + bc, return_inverse=True, return_counts=True
            )
            sparse = count[block] < SPARSE_BLOCK_PIXELS
            alone.append(pos[sparse])
            pos = pos[~sparse]
        if pos.size:
            kept.append((side, pos))
    return kept, np.concatenate(alone) if alone else np.empty(0, np.int64)


def _grid_blocks(rows: np.ndarray, cols: np.ndarray, side: int, per_call: int):
    """Yield (positions, corners, block): the requested pixels of up to ``per_call``
    grid-aligned side x side blocks, the blocks' top-left corners (k, 2) and, per pixel,
    the index of its block among them."""
    br, bc = rows // side, cols // side
    key = br * (int(bc.max()) + 1) + bc
    order = np.argsort(key, kind="stable")
    _, first, counts = np.unique(key[order], return_index=True, return_counts=True)
    corners = np.stack([br[order[first]], bc[order[first]]], 1) * side
    block_of = np.repeat(np.arange(first.size), counts)  # per element of ``order``
    for k in range(0, first.size, per_call):
        stop = min(k + per_call, first.size)
        part = slice(first[k], first[stop] if stop < first.size else order.size)
        yield order[part], corners[k:stop], block_of[part] - k


def _exact_schedule(
    rows: np.ndarray, cols: np.ndarray, scene_shape: tuple[int, int], tile: int
) -> tuple[list[tuple[int, np.ndarray]], np.ndarray]:
    """Block levels (side, pixel positions) and lone pixel positions of an exact run."""
    top = min(tile, max(scene_shape))
    return _split_sparse(rows, cols, _quad_levels(rows, cols, top))


def exact_work(
    rows: np.ndarray, cols: np.ndarray, scene_shape: tuple[int, int],
    tile: int = DEFAULT_TILE_EXACT, n_features: int = 11,
) -> dict[str, float]:
    """What the exact engine computes for these pixels of an (H, W) scene.

    Returns ``block_px`` (pixels covered by class-map blocks), ``lone_px`` (pixels
    classified one patch each) and ``macs_per_px`` (convolution multiply-adds per
    requested pixel; a patch costs 100.6 M with 11 features).
    """
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    levels, alone = _exact_schedule(rows, cols, scene_shape, tile)
    area = macs = 0.0
    for side, pos in levels:
        n_blocks = np.unique((rows[pos] // side) * (int(cols.max()) // side + 1)
                             + cols[pos] // side).size
        area += n_blocks * side * side
        macs += n_blocks * side * side * exact_macs_per_pixel(side, n_features)
    macs += alone.size * per_patch_macs(n_features)
    return {"block_px": area, "lone_px": float(alone.size),
            "macs_per_px": macs / max(rows.size, 1)}


def dense_outputs(
    model: keras.Model | DenseEngine,
    padded: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    tile: int | None = None,
    exact: bool = True,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Latent vectors and probabilities of scene pixels: ((n, 192), (n, K)) float32.

    The 192-vector is [c1, c2, g] (64 each), the model's ``latent`` output. See
    :func:`dense_probs` for the arguments.
    """
    engine = get_engine(model)
    padded, rows, cols = _check_inputs(padded, rows, cols, engine.weights.n_features)
    if tile is None:
        tile = DEFAULT_TILE_EXACT if exact else DEFAULT_TILE_APPROX
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    n = rows.size
    width = 3 * engine.weights.stage1[0][0].shape[3]
    feats = np.empty((n, width), np.float32)
    probs = np.empty((n, engine.weights.n_classes), np.float32)
    if n == 0:
        return feats, probs
    if exact:
        scene_shape = (padded.shape[0] - (PATCH - 1), padded.shape[1] - (PATCH - 1))
        levels, alone = _exact_schedule(rows, cols, scene_shape, tile)
        for k in range(0, alone.size, PATCH_BATCH):
            sel = alone[k : k + PATCH_BATCH]
            z, p = engine.patch_batch(tf.constant(gather_patches(padded, rows[sel], cols[sel])))
            feats[sel], probs[sel] = z.numpy(), p.numpy()
            if progress is not None:
                progress(int(sel.size))
        for side, pos in levels:
            per_call = max(1, EXACT_BATCH_PIXELS // side**2)
            for part, corners, block in _grid_blocks(rows[pos], cols[pos], side, per_call):
                sel = pos[part]
                x = np.stack(
                    [_window(padded, r0, r0 + side + PATCH - 1, c0, c0 + side + PATCH - 1)
                     for r0, c0 in corners]
                )
                local = np.stack([block, rows[sel] % side, cols[sel] % side], 1)
                z, p = engine.exact_tile(tf.constant(x), tf.constant(local.astype(np.int32)))
                feats[sel], probs[sel] = z.numpy(), p.numpy()
                if progress is not None:
                    progress(int(sel.size))
        return feats, probs
    o = APPROX_HALO
    for sel, r0, r1, c0, c1 in _blocks(rows, cols, tile):
        local = np.stack([np.zeros_like(sel), rows[sel] - r0, cols[sel] - c0], 1).astype(np.int32)
        x = _window(padded, r0 - o, r1 + PATCH - 1 + o, c0 - o, c1 + PATCH - 1 + o)
        z, p = engine.approx_tile(tf.constant(x[None]), tf.constant(local))
        feats[sel], probs[sel] = z.numpy(), p.numpy()
        if progress is not None:
            progress(int(sel.size))
    return feats, probs


def dense_probs(
    model: keras.Model | DenseEngine,
    padded: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    tile: int | None = None,
    exact: bool = True,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Class probabilities (n, K) float32 of scene pixels, each from its 33x33 patch.

    Args:
        model: the CNN (:func:`utils.model.build_cnn_model` / ``load_model``) or a
            :class:`DenseEngine` built from it (one is cached per model).
        padded: (H + 32, W + 32, F) padded scene (padding contract in the module
            docstring).
        rows, cols: (n,) integer scene coordinates, 0 <= rows < H, 0 <= cols < W.
        tile: block side in output pixels (default :data:`DEFAULT_TILE_EXACT` or
            :data:`DEFAULT_TILE_APPROX`); results do not depend on it.
        exact: True: the per-patch model's result (up to float32 rounding)
            everywhere; False: approximate global max (fast, changes labels; see
            the module docstring).
        progress: called with the number of pixels finished after each call.

    Returns:
        (n, K) float32 probabilities in the order of ``rows``/``cols``: the same
        semantics as running the model on ``gather_patches(padded, rows, cols)``.
    """
    return dense_outputs(model, padded, rows, cols, tile=tile, exact=exact, progress=progress)[1]


def dense_features(
    model: keras.Model | DenseEngine,
    padded: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    tile: int | None = None,
    exact: bool = True,
) -> dict[str, np.ndarray]:
    """The latent taps of scene pixels: ``{"c1", "c2", "g"}``, each (n, 64) float32.

    c1 (stage-1 centre cell) and c2 (stage-2 centre cell) are exact in both
    modes; g (global max over stage 2) only with ``exact=True``.
    """
    z = dense_outputs(model, padded, rows, cols, tile=tile, exact=exact)[0]
    c = z.shape[1] // 3
    return {"c1": z[:, :c], "c2": z[:, c : 2 * c], "g": z[:, 2 * c :]}

