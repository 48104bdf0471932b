"""Input pipeline: per-scene normalisation, random vs regular-grid crops, augmentation.

Normalisation (training, validation and inference alike): per scene and band,
``(x - p2) / (p98 - p2)`` with the 2nd and 98th percentiles of the scene's valid
pixels (a range of 0 is treated as 1), clipped to [-1, 2]; missing pixels become 0.
The elevation channel is normalised the same way (relative relief in the scene).

Crops are (row, col) top-left corners of ``size`` x ``size`` windows. Training
draws random corners (reproducible from a seed); validation tiles the scene on a
regular grid from the top-left, so every pixel is scored exactly once. Windows
that reach past the scene (or scenes smaller than a crop) are zero-padded and the
padding gets loss weight 0, as do unlabelled pixels.
"""

from __future__ import annotations

import numpy as np

from utils.outlines.dataset import UNLABELLED

PERCENTILES = (2.0, 98.0)
CLIP = (-1.0, 2.0)
#: Augmentation ranges: gamma on the optical channels, Gaussian noise sigma, gain.
GAMMA = (0.7, 1.4)
NOISE_SIGMA = (0.0, 0.04)
GAIN = (0.9, 1.1)
#: At most this many pixels enter the percentile estimate (a regular subsample).
MAX_STAT_PIXELS = 1_000_000


def scene_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (low, high) percentiles, each (C,), of valid pixels of (H, W, C) ``image``."""
    flat = image.reshape(-1, image.shape[-1])
    step = max(1, len(flat) // MAX_STAT_PIXELS)
    flat = flat[::step]
    flat = flat[np.isfinite(flat).all(axis=1)]
    if len(flat) == 0:
        return np.zeros(image.shape[-1], np.float32), np.ones(image.shape[-1], np.float32)
    lo, hi = np.percentile(flat, PERCENTILES, axis=0)
    return lo.astype(np.float32), hi.astype(np.float32)


def normalise(image: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None = None
              ) -> np.ndarray:
    """Per-scene normalised float32 (H, W, C); NaN -> 0. ``stats`` default: this image's."""
    lo, hi = scene_stats(image) if stats is None else stats
    span = np.where(hi - lo > 0, hi - lo, 1.0).astype(np.float32)
    x = np.clip((image - lo) / span, *CLIP)
    return np.nan_to_num(x, nan=0.0).astype(np.float32)


def random_windows(shape: tuple[int, int], size: int, n: int, rng: np.random.Generator
                   ) -> list[tuple[int, int]]:
    """``n`` random top-left corners of size x size windows inside (H, W) (0 if smaller)."""
    h, w = shape
    rows = rng.integers(0, max(h - size, 0) + 1, n)
    cols = rng.integers(0, max(w - size, 0) + 1, n)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]


def grid_windows(shape: tuple[int, int], size: int) -> list[tuple[int, int]]:
    """Top-left corners of the regular, non-overlapping grid covering (H, W) from (0, 0)."""
    h, w = shape
    return [(r, c) for r in range(0, h, size) for c in range(0, w, size)]


def crop(x: np.ndarray, mask: np.ndarray, r: int, c: int, size: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (S, S, C), target (S, S), weight (S, S)) of the window at (r, c), zero-padded.

    Weight is 1 on labelled pixels, 0 on unlabelled pixels and on the padding.
    """
    xs = np.zeros((size, size, x.shape[-1]), np.float32)
    ts = np.zeros((size, size), np.float32)
    ws = np.zeros((size, size), np.float32)
    win = x[r:r + size, c:c + size]
    m = mask[r:r + size, c:c + size]
    h, w = m.shape
    xs[:h, :w] = win
    ts[:h, :w] = m == 1
    ws[:h, :w] = m != UNLABELLED
    return xs, ts, ws


def augment(x: np.ndarray, t: np.ndarray, w: np.ndarray, rng: np.random.Generator,
            n_optical: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random rotation by 90° steps, flips, and on the first ``n_optical`` channels a
    gamma, a gain and Gaussian noise (ranges GAMMA, GAIN, NOISE_SIGMA). Training only.

    x: (S, S, C) normalised; t, w: (S, S). Geometry changes apply to all three.
    """
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in (x, t, w):
        a = np.rot90(a, k, axes=(0, 1))
        out.append(np.ascontiguousarray(a[:, ::-1] if flip else a))
    x, t, w = out
    opt = np.clip(x[..., :n_optical], 0.0, None) ** rng.uniform(*GAMMA)
    opt = opt * rng.uniform(*GAIN) + rng.normal(0.0, rng.uniform(*NOISE_SIGMA), opt.shape)
    x = x.copy()
    x[..., :n_optical] = np.clip(opt, *CLIP)
    return x, t, w


def sample_batch(scenes: list[tuple[np.ndarray, np.ndarray]], n: int, size: int,
                 rng: np.random.Generator, n_optical: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` augmented random crops from normalised (x, mask) ``scenes``, chosen by area.

    Returns x (n, S, S, C) and y (n, S, S, 2) = (target, weight) for the loss.
    """
    areas = np.array([m.size for _, m in scenes], np.float64)
    picks = rng.choice(len(scenes), size=n, p=areas / areas.sum())
    xs, ys = [], []
    for i in picks:
        x, m = scenes[i]
        (r, c), = random_windows(m.shape, size, 1, rng)
        xa, ta, wa = augment(*crop(x, m, r, c, size), rng, n_optical)
        xs.append(xa)
        ys.append(np.stack([ta, wa], axis=-1))
    return np.stack(xs), np.stack(ys)


def grid_batch(x: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """All regular-grid crops of one scene, no augmentation: x (N, S, S, C), y (N, S, S, 2)."""
    crops = [crop(x, mask, r, c, size) for r, c in grid_windows(mask.shape, size)]
    return (np.stack([a for a, _, _ in crops]),
            np.stack([np.stack([t, w], axis=-1) for _, t, w in crops]))
