"""Dense scene inference for the facies CNN: convolution work shared between patches.

The per-pixel ("patch") engine classifies scene pixel (r, c) from its own patch
``padded[r:r+33, c:c+33]`` (:func:`utils.inference.patch.gather_patches`) at about 201 MFLOP (100.6 M
multiply-adds) per pixel. Neighbouring patches overlap almost entirely; this
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
pixel's result does not depend on the blocking (bit-identical in tests).

Padding contract (shared with ``utils/inference.py``): ``padded`` is the
normalised (H, W, F) scene with NaN/nodata replaced by 0 and
``np.pad(features, ((16, 16), (16, 16), (0, 0)), mode="reflect")`` applied, so
(H + 32, W + 32, F); scene pixel (r, c) is classified from ``padded[r:r+33, c:c+33]``.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from utils.inference.padding import gather_patches
from utils.model import FILTERS
from utils.study import PATCH_SIZE

#: Patch side and half side of the study's CNN.
PATCH: int = PATCH_SIZE
HALF: int = PATCH // 2
#: Pooled grid side (33 / 3).
GRID: int = PATCH // 3
HALF_GRID: int = GRID // 2
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


# --------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class FoldedWeights:
    """The CNN's inference weights (float32) with batch-norm folded into the convolutions.

    Attributes:
        stage1: three (kernel (3, 3, C_in, 64), bias (64,)) pairs, C_in = F then 64.
        stage2: three (kernel (3, 3, 64, 64), bias (64,)) pairs.
        head: three dense (kernel (C_in, C_out), bias (C_out,)) pairs: 192 -> 32 -> 32 -> K.
        n_features: F.
        n_classes: K.
    """

    stage1: tuple[tuple[np.ndarray, np.ndarray], ...]
    stage2: tuple[tuple[np.ndarray, np.ndarray], ...]
    head: tuple[tuple[np.ndarray, np.ndarray], ...]
    n_features: int
    n_classes: int


def fold_weights(model: keras.Model) -> FoldedWeights:
    """Fold each BatchNormalization (inference statistics) into the Conv2D before it.

    ``model`` is a model of :func:`utils.model.build_cnn_model` (``latent`` or not):
    six Conv2D + BatchNormalization pairs, then three Dense layers, ELU with
    alpha 1. Folding is done in float64, the result cast to float32:
    ``k' = k * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``.
    """
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    denses = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    elus = [layer for layer in model.layers if isinstance(layer, keras.layers.ELU)]
    if len(convs) != 6 or len(bns) != 6 or len(denses) != 3:
        raise ValueError(
            f"expected the facies CNN (6 Conv2D, 6 BatchNormalization, 3 Dense), got "
            f"{len(convs)}, {len(bns)}, {len(denses)}"
        )
    if any(float(e.alpha) != 1.0 for e in elus):
        raise ValueError("expected ELU activations with alpha = 1")
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    if len(pools) != 1 or tuple(pools[0].pool_size) != (3, 3) or tuple(pools[0].strides) != (
        3,
        3,
    ):
        raise ValueError("expected one 3x3 / stride 3 max pooling between the stages")
    folded = []
    for conv, bn in zip(convs, bns, strict=True):
        if tuple(conv.kernel_size) != (3, 3) or conv.padding != "same" or conv.activation not in (
            None,
            keras.activations.linear,
        ):
            raise ValueError(f"{conv.name}: expected a linear 3x3 'same' convolution")
        kernel, bias = (np.asarray(w, np.float64) for w in conv.get_weights())
        gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
        scale = gamma / np.sqrt(var + float(bn.epsilon))
        folded.append(
            (
                (kernel * scale).astype(np.float32),
                ((bias - mean) * scale + beta).astype(np.float32),
            )
        )
    head = tuple((np.asarray(d.kernel, np.float32), np.asarray(d.bias, np.float32)) for d in denses)
    return FoldedWeights(
        stage1=tuple(folded[:3]),
        stage2=tuple(folded[3:]),
        head=head,
        n_features=int(folded[0][0].shape[2]),
        n_classes=int(head[-1][0].shape[1]),
    )


# --------------------------------------------------------------------------- TF building blocks


def _conv_stack(
    x: tf.Tensor, layers: tuple[tuple[np.ndarray, np.ndarray], ...], dilation: int = 1
) -> tf.Tensor:
    """Three 'valid' conv -> ELU layers: (B, H, W, C) -> (B, H - 6d, W - 6d, 64), d = dilation."""
    for kernel, bias in layers:
        x = tf.nn.elu(tf.nn.conv2d(x, kernel, 1, "VALID", dilations=dilation) + bias)
    return x


def _head(z: tf.Tensor, head: tuple[tuple[np.ndarray, np.ndarray], ...]) -> tf.Tensor:
    """Dense head (N, 192) -> softmax probabilities (N, K)."""
    (k1, b1), (k2, b2), (k3, b3) = head
    x = tf.nn.elu(tf.matmul(z, k1) + b1)
    x = tf.nn.elu(tf.matmul(x, k2) + b2)
    return tf.nn.softmax(tf.matmul(x, k3) + b3)


# --------------------------------------------------------------------------- exact engine
#
# Class maps. In the per-patch model every convolution zero-pads its input at the
# patch border (stage 1: 33 x 33 cells) or pooled-grid border (stage 2: 11 x 11).
# A cell therefore depends on where the border is, but only through its distance
# to the nearest border along each axis, and only while that distance is below a
# depth D: D = 0 for the input, +1 per convolution (stage 1: 1, 2, 3); a pooled
# cell is border-dependent only in the border row (D = 1); stage 2: 2, 3, 4.
# Along one axis a cell has a class: ("t", d) at distance d < D from the top
# (left) border, ("b", d) from the bottom (right) border, else MID. A class map
# holds, at every position, the value a cell there takes in every patch that
# gives it that class, so one map serves all patches. A 2-D class is a pair (row
# class, column class). A conv layer computes output class (cy, cx) from, per
# kernel tap, the input class of the neighbour it reads (or nothing, where the
# tap falls in the zero padding): MID-MID is the plain tile-wide convolution,
# edge classes are shared by all patches with the same top row (left column ...),
# corner classes are one cell per patch.
#
# Positions are tile-input coordinates along each axis: patch cell k of output
# pixel i is at i + k in stage 1 and at i + 3k in stage 2 (pooled cell k covers
# stage-1 positions i + 3k .. i + 3k + 2; stage-2 taps are 3 apart). A map is
# kept only over the positions some patch of the tile reads, worked out
# backwards from c1, c2 and g (:func:`_exact_plan`); for n output pixels these
# are ranges [start, n + end), the same for rows and columns.

AxisClass = tuple[str, int]
MID: AxisClass = ("m", 0)
#: A range of positions [start, n + end) along an axis of a tile of n output pixels.
Region = tuple[int, int]


def _neighbour(cls: AxisClass, dy: int, depth_in: int) -> AxisClass | None:
    """Class of the input cell at offset ``dy`` of a cell of class ``cls`` (None: padding)."""
    kind, d = cls
    if kind == "m":
        return MID
    dist = d + dy if kind == "t" else d - dy
    if dist < 0:
        return None
    return MID if dist >= depth_in else (kind, dist)


def _axis_groups(cls: AxisClass, depth_in: int) -> list[tuple[AxisClass, int, int]]:
    """Kernel taps of a cell of class ``cls``, grouped by input class: (class, dy0, dy1)."""
    groups: list[tuple[AxisClass, int, int]] = []
    for dy in (-1, 0, 1):
        n = _neighbour(cls, dy, depth_in)
        if n is None:
            continue
        if groups and groups[-1][0] == n:
            groups[-1] = (n, groups[-1][1], dy)
        else:
            groups.append((n, dy, dy))
    return groups


def _hull(a: Region | None, b: Region) -> Region:
    return b if a is None else (min(a[0], b[0]), max(a[1], b[1]))


def _backward(
    req_out: dict[AxisClass, Region], depth_in: int, stride: int
) -> dict[AxisClass, Region]:
    """Positions of each input class that a conv layer's required outputs read."""
    req_in: dict[AxisClass, Region] = {}
    for cls, (s, e) in req_out.items():
        for n, d0, d1 in _axis_groups(cls, depth_in):
            req_in[n] = _hull(req_in.get(n), (s + stride * d0, e + stride * d1))
    return req_in


def _pool_sources(cls: AxisClass) -> list[AxisClass]:
    """Stage-1 output classes (depth 3) pooled into a pooled-grid class, at offsets 0, 1, 2."""
    kind, _ = cls
    if kind == "t":
        return [("t", 0), ("t", 1), ("t", 2)]
    if kind == "b":
        return [("b", 2), ("b", 1), ("b", 0)]
    return [MID, MID, MID]


@dataclass(frozen=True)
class _ExactPlan:
    """Per-axis classes and regions of each layer (the same for rows and columns).

    ``stage1[k]`` / ``stage2[k]``: (required output regions by class, input depth)
    of conv layer k; ``pooled``: regions of the pooled-grid classes.
    """

    stage1: tuple[tuple[dict[AxisClass, Region], int], ...]
    pooled: dict[AxisClass, Region]
    stage2: tuple[tuple[dict[AxisClass, Region], int], ...]


def _cells(cls: AxisClass, depth: int) -> list[int]:
    """Stage-2 grid cells (0..10) of a patch that have class ``cls`` at depth ``depth``."""
    kind, d = cls
    if kind == "t":
        return [d]
    if kind == "b":
        return [GRID - 1 - d]
    return list(range(depth, GRID - depth))


def _exact_plan() -> _ExactPlan:
    """Work out (backwards from g, c1, c2) which class maps are needed where."""
    depth2 = 4  # stage-2 output: pooled border (depth 1) + 3 convolutions
    req = {}
    for d in range(depth2):
        req[("t", d)] = (3 * d, 3 * d)
        req[("b", d)] = (3 * (GRID - 1 - d), 3 * (GRID - 1 - d))
    req[MID] = (3 * depth2, 3 * (GRID - 1 - depth2))  # includes c2 at 3 * 5
    stage2 = []
    for depth_in in (3, 2, 1):
        stage2.append((req, depth_in))
        req = _backward(req, depth_in, 3)
    pooled = req
    req1: dict[AxisClass, Region] = {MID: (HALF, HALF)}  # c1
    for cls, (s, e) in pooled.items():
        for off, src in enumerate(_pool_sources(cls)):
            req1[src] = _hull(req1.get(src), (s + off, e + off))
    stage1 = []
    for depth_in in (2, 1, 0):
        stage1.append((req1, depth_in))
        req1 = _backward(req1, depth_in, 1)
    if set(req1) != {MID} or req1[MID][0] < 0 or req1[MID][1] > PATCH - 1:
        raise AssertionError(f"exact plan reads outside the patches: {req1}")
    return _ExactPlan(tuple(reversed(stage1)), pooled, tuple(reversed(stage2)))


ClassMaps = dict[tuple[AxisClass, AxisClass], tuple[tf.Tensor, Region, Region]]


class _Frame:
    """Output block size (n rows, m cols; tensors) of a traced exact function, with the
    slice-size vectors it needs cached (fewer graph ops)."""

    def __init__(self, n: tf.Tensor, m: tf.Tensor) -> None:
        self.n, self.m = n, m
        self._sizes: dict[tuple[int, int], tf.Tensor] = {}

    def size(self, extra_y: int, extra_x: int) -> tf.Tensor:
        """``tf.slice`` size (-1, n + extra_y, m + extra_x, -1)."""
        key = (extra_y, extra_x)
        if key not in self._sizes:
            self._sizes[key] = tf.stack([-1, self.n + extra_y, self.m + extra_x, -1])
        return self._sizes[key]


def _crop(
    entry: tuple[tf.Tensor, Region, Region], ry: Region, rx: Region, frame: _Frame
) -> tf.Tensor:
    """Positions ry x rx of a class map."""
    x, (sy, _), (sx, _) = entry
    begin = [0, ry[0] - sy, rx[0] - sx, 0]
    return tf.slice(x, begin, frame.size(ry[1] - ry[0], rx[1] - rx[0]))


def _class_layer(
    maps: ClassMaps,
    req: dict[AxisClass, Region],
    depth_in: int,
    kernel: np.ndarray,
    bias: np.ndarray,
    stride: int,
    frame: _Frame,
) -> ClassMaps:
    """One conv -> ELU layer on every 2-D class map in ``req`` x ``req``.

    Output class (cy, cx) over positions ry x rx sums, per group of kernel taps
    that read the same input class, a 'valid' convolution with that part of the
    kernel on the input class map. Groups of different outputs that read the same
    input crop with same-sized kernel parts are run as one convolution with the
    kernel parts stacked along the output channels (fewer, larger ops).
    """
    jobs: dict[tuple, list[tuple[tuple[AxisClass, AxisClass], np.ndarray]]] = {}
    for cy, ry in req.items():
        for cx, rx in req.items():
            for ny, dy0, dy1 in _axis_groups(cy, depth_in):
                for nx, dx0, dx1 in _axis_groups(cx, depth_in):
                    crop_y = (ry[0] + stride * dy0, ry[1] + stride * dy1)
                    crop_x = (rx[0] + stride * dx0, rx[1] + stride * dx1)
                    key = (ny, nx, crop_y, crop_x, dy1 - dy0, dx1 - dx0)
                    part = kernel[dy0 + 1 : dy1 + 2, dx0 + 1 : dx1 + 2]
                    jobs.setdefault(key, []).append(((cy, cx), part))
    # Jobs run one after the other (control dependencies), each adding its pieces to
    # the pre-activations at once: memory stays at ~one map per class, not per job.
    pre: dict[tuple[AxisClass, AxisClass], tf.Tensor] = {}
    previous: list[tf.Tensor] = []
    for (ny, nx, crop_y, crop_x, _, _), members in jobs.items():
        with tf.control_dependencies(previous):
            src = _crop(maps[(ny, nx)], crop_y, crop_x, frame)
            stacked = np.concatenate([part for _, part in members], axis=3)
            out = tf.nn.conv2d(src, stacked, 1, "VALID", dilations=stride)
        split = [out] if len(members) == 1 else tf.split(out, len(members), axis=3)
        previous = []
        for (key, _), piece in zip(members, split, strict=True):
            pre[key] = pre[key] + piece if key in pre else piece + bias
            previous.append(pre[key])
    return {
        (cy, cx): (tf.nn.elu(pre[(cy, cx)]), ry, rx)
        for cy, ry in req.items()
        for cx, rx in req.items()
    }


def _build_exact_tile(w: FoldedWeights, spec_x: tf.TensorSpec, spec_idx: tf.TensorSpec):
    """The compiled exact function ``(x, idx) -> (z (k, 192), probs (k, K))`` on a batch of
    blocks: x (B, h + 32, w + 32, F), idx (k, 3) = (block, row, col) block-local."""
    plan = _exact_plan()

    @tf.function(input_signature=[spec_x, spec_idx], reduce_retracing=True)
    def exact_tile(x: tf.Tensor, idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        # x: (B, h + 32, w + 32, F) for B blocks of (h, w) output pixels.
        frame = _Frame(tf.shape(x)[1] - (PATCH - 1), tf.shape(x)[2] - (PATCH - 1))
        full = (0, PATCH - 1)
        maps: ClassMaps = {(MID, MID): (x, full, full)}
        for (req, depth_in), (kernel, bias) in zip(plan.stage1, w.stage1, strict=True):
            maps = _class_layer(maps, req, depth_in, kernel, bias, 1, frame)
        c1 = _crop(maps[(MID, MID)], (HALF, HALF), (HALF, HALF), frame)
        pooled: ClassMaps = {}
        for cy, ry in plan.pooled.items():
            for cx, rx in plan.pooled.items():
                if cy == MID and cx == MID:
                    src = _crop(maps[(MID, MID)], (ry[0], ry[1] + 2), (rx[0], rx[1] + 2), frame)
                    val = tf.nn.max_pool2d(src, 3, 1, "VALID")
                else:
                    val = None
                    for a, sy in enumerate(_pool_sources(cy)):
                        for b, sx in enumerate(_pool_sources(cx)):
                            ya, xb = (ry[0] + a, ry[1] + a), (rx[0] + b, rx[1] + b)
                            part = _crop(maps[(sy, sx)], ya, xb, frame)
                            val = part if val is None else tf.maximum(val, part)
                pooled[(cy, cx)] = (val, ry, rx)
        maps = pooled
        *inner, (req_last, depth_last) = plan.stage2
        for (req, depth_in), (kernel, bias) in zip(inner, w.stage2[:-1], strict=True):
            maps = _class_layer(maps, req, depth_in, kernel, bias, 3, frame)
        # Last layer: the global max over each patch's cells, each cell read from
        # the map of its class.
        kernel, bias = w.stage2[-1]
        maps = _class_layer(maps, req_last, depth_last, kernel, bias, 3, frame)
        g = None
        for (cy, cx), entry in maps.items():
            for ky in _cells(cy, depth_last + 1):
                for kx in _cells(cx, depth_last + 1):
                    part = _crop(entry, (3 * ky, 3 * ky), (3 * kx, 3 * kx), frame)
                    g = part if g is None else tf.maximum(g, part)
        centre = (3 * HALF_GRID, 3 * HALF_GRID)
        c2 = _crop(maps[(MID, MID)], centre, centre, frame)
        z = tf.gather_nd(tf.concat([c1, c2, g], axis=-1), idx)
        return z, _head(z, w.head)

    return exact_tile


def per_patch_macs(n_features: int = 11) -> int:
    """Convolution multiply-adds of the per-patch model for one pixel (100.6 M for F = 11)."""
    stage1 = PATCH**2 * 9 * (n_features + 2 * FILTERS) * FILTERS
    return stage1 + GRID**2 * 3 * 9 * FILTERS**2


def exact_macs_per_pixel(tile: int, n_features: int = 11) -> float:
    """Convolution multiply-adds per output pixel of the exact engine on tile x tile blocks.

    Counted from the class-map plan (each output class's taps x its region); the
    per-patch model needs 100.6 M (F = 11).
    """
    plan = _exact_plan()
    total = 0
    for layers, cins in (
        (plan.stage1, (n_features, FILTERS, FILTERS)),
        (plan.stage2, (FILTERS,) * 3),
    ):
        for (req, depth_in), cin in zip(layers, cins, strict=True):
            for cy, ry in req.items():
                ty = sum(d1 - d0 + 1 for _, d0, d1 in _axis_groups(cy, depth_in))
                for cx, rx in req.items():
                    tx = sum(d1 - d0 + 1 for _, d0, d1 in _axis_groups(cx, depth_in))
                    positions = (tile + ry[1] - ry[0]) * (tile + rx[1] - rx[0])
                    total += positions * ty * tx * cin * FILTERS
    return total / tile**2


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
            s1 = _conv_stack(x, w.stage1)  # (1, h + 50, w + 50, 64); index s <-> x row s + 3
            pooled = tf.nn.max_pool2d(s1, 3, 1, "VALID")  # (1, h + 48, ...); m <-> x row m + 3
            s2 = _conv_stack(pooled, w.stage2, dilation=3)  # (1, h + 30, ...); z <-> m + 9
            g = tf.nn.pool(s2, [GRID, GRID], "MAX", padding="VALID", dilations=[3, 3])
            # pixel i (x rows i .. i + 32 + 24): c1 at x row i + 28 -> s1 index i + 25;
            # pooled cell a at x row i + 12 + 3a -> m index i + 9 + 3a; c2 (a = 5) at
            # z index i + 15; g over z indices i + 3a, a = 0..10 -> g index i.
            o = APPROX_HALO
            c1 = tf.gather_nd(s1, idx + [0, o + HALF - 3, o + HALF - 3])
            c2 = tf.gather_nd(s2, idx + [0, o + 3, o + 3])
            gg = tf.gather_nd(g, idx)
            z = tf.concat([c1, c2, gg], axis=1)
            return z, _head(z, w.head)

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
            return z, _head(z, w.head)

        #: Compiled functions ``(x (B, h', w', F), idx (k, 3)) -> (z (k, 192), probs (k, K))``.
        self.approx_tile = approx_tile
        self.exact_tile = _build_exact_tile(w, spec_x, spec_idx)
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

