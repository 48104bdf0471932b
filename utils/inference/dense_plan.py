"""The dense engine's building blocks: folded weights, convolution stacks, the exact plan.

:func:`fold_weights` folds batch normalisation into the convolutions of the study's
CNN; :func:`build_exact_tile` compiles the exact engine's tile function from the
"distance-to-border class maps" plan (:func:`_exact_plan`): every stage-1/stage-2
cell of a patch whose receptive field reaches the patch's zero padding is computed
once per class of distance to the border instead of once per patch.
:func:`per_patch_macs` and :func:`exact_macs_per_pixel` count the work. The engine
and its scheduling are in :mod:`utils.inference.dense`.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from utils.model import FILTERS
from utils.study import HALF, PATCH_SIZE

#: Patch side and half side of the study's CNN.
PATCH: int = PATCH_SIZE
#: Pooled grid side (33 / 3).
GRID: int = PATCH // 3
HALF_GRID: int = GRID // 2

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


def conv_stack(
    x: tf.Tensor, layers: tuple[tuple[np.ndarray, np.ndarray], ...], dilation: int = 1
) -> tf.Tensor:
    """Three 'valid' conv -> ELU layers: (B, H, W, C) -> (B, H - 6d, W - 6d, 64), d = dilation."""
    for kernel, bias in layers:
        x = tf.nn.elu(tf.nn.conv2d(x, kernel, 1, "VALID", dilations=dilation) + bias)
    return x


def dense_head(z: tf.Tensor, head: tuple[tuple[np.ndarray, np.ndarray], ...]) -> tf.Tensor:
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


def build_exact_tile(w: FoldedWeights, spec_x: tf.TensorSpec, spec_idx: tf.TensorSpec):
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
        return z, dense_head(z, w.head)

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
