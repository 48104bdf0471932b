"""Per-scene normalisation, crop samplers and augmentation of the outline pipeline."""

from __future__ import annotations

import numpy as np

from utils.outlines.dataset import UNLABELLED
from utils.outlines.pipeline import (
    CLIP,
    GAIN,
    GAMMA,
    NOISE_SIGMA,
    augment,
    crop,
    grid_batch,
    grid_windows,
    normalise,
    random_windows,
    sample_batch,
)


def test_per_scene_normalisation_maps_percentiles_to_0_and_1():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (50, 60, 3)).astype(np.float32)
    b = a * np.array([2.0, 10.0, 0.5], np.float32) + 100  # another gain and offset
    a[0, 0, 1] = np.nan
    na, nb = normalise(a), normalise(b)
    assert na[0, 0, 1] == 0.0  # missing -> 0
    for x in (na[1:], nb[1:]):
        p2, p98 = np.percentile(x.reshape(-1, 3), [2, 98], axis=0)
        np.testing.assert_allclose(p2, 0, atol=0.02)
        np.testing.assert_allclose(p98, 1, atol=0.02)
    # each scene by its own statistics: gain and offset are gone
    np.testing.assert_allclose(na[5:], nb[5:], atol=0.02)
    assert nb.min() >= CLIP[0] and nb.max() <= CLIP[1]


def test_random_windows_reproducible_and_inside():
    w1 = random_windows((300, 200), 64, 50, np.random.default_rng(7))
    w2 = random_windows((300, 200), 64, 50, np.random.default_rng(7))
    w3 = random_windows((300, 200), 64, 50, np.random.default_rng(8))
    assert w1 == w2 and w1 != w3
    assert all(0 <= r <= 236 and 0 <= c <= 136 for r, c in w1)
    assert random_windows((40, 40), 64, 3, np.random.default_rng(0)) == [(0, 0)] * 3


def test_grid_windows_cover_each_pixel_once_and_pad_with_zero_weight():
    mask = np.ones((100, 70), np.uint8)
    mask[0, 0] = UNLABELLED
    seen = np.zeros((100, 70), int)
    for r, c in grid_windows(mask.shape, 32):
        seen[r:r + 32, c:c + 32] += 1
    assert (seen == 1).all()
    x = np.ones((100, 70, 2), np.float32)
    xs, ys = grid_batch(x, mask, 32)
    assert xs.shape == (4 * 3, 32, 32, 2) and ys.shape == (12, 32, 32, 2)
    assert ys[..., 1].sum() == 100 * 70 - 1  # padding and the unlabelled pixel weigh 0
    _, t, w = crop(x, mask, 96, 64, 32)
    assert w[:4, :6].all() and not w[4:].any() and not w[:, 6:].any()
    assert not t[4:].any()


def test_augmentation_moves_image_and_mask_together_within_ranges():
    rng = np.random.default_rng(3)
    size = 16
    t = (rng.random((size, size)) > 0.5).astype(np.float32)
    w = np.ones((size, size), np.float32)
    x = np.stack([t * 0.8 + 0.1, t * 0.8 + 0.1, t * 500.0], axis=-1).astype(np.float32)
    for seed in range(20):
        xa, ta, wa = augment(x, t, w, np.random.default_rng(seed), n_optical=2)
        # elevation channel (not optical): geometry only, so it still equals the mask
        np.testing.assert_array_equal(xa[..., 2], ta * 500.0)
        assert xa[..., :2].min() >= CLIP[0] and xa[..., :2].max() <= CLIP[1]
        # gamma / gain / noise keep glacier brighter than the rest on average
        assert xa[..., 0][ta > 0].mean() > xa[..., 0][ta == 0].mean()
    # the extreme gamma and gain, without noise, bound the bright value
    lo = min(0.9**g for g in GAMMA) * GAIN[0] - 4 * NOISE_SIGMA[1]
    hi = max(0.9**g for g in GAMMA) * GAIN[1] + 4 * NOISE_SIGMA[1]
    xa, ta, _ = augment(x, t, w, np.random.default_rng(1), n_optical=2)
    assert lo <= xa[..., 0][ta > 0].mean() <= hi
    # reproducible from the seed
    a1 = augment(x, t, w, np.random.default_rng(5), 2)[0]
    np.testing.assert_array_equal(a1, augment(x, t, w, np.random.default_rng(5), 2)[0])


def test_sample_batch_shapes_and_reproducible():
    rng = np.random.default_rng(0)
    scenes = [(rng.random((50, 40, 3)).astype(np.float32), np.ones((50, 40), np.uint8))]
    x1, y1 = sample_batch(scenes, 5, 32, np.random.default_rng(1), 2)
    x2, y2 = sample_batch(scenes, 5, 32, np.random.default_rng(1), 2)
    assert x1.shape == (5, 32, 32, 3) and y1.shape == (5, 32, 32, 2)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
