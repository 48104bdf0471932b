"""Tests of utils.training.inputs: sample weights, augmentation, tf.data input."""

from __future__ import annotations

import numpy as np
import pytest

from utils.study import N_CLASSES
from utils.training.inputs import augment, make_tf_dataset, sample_weights


def test_sample_weights_hand_computed():
    labels = [0, 1, 1, 1, 2]
    glaciers = ["a", "a", "a", "b", "b"]
    dates = ["d1", "d1", "d2", "d2", "d2"]
    # class counts 1, 3, 1 -> 5, 5/3, 5/3, 5/3, 5; scenes (a,d1)=2 (a,d2)=1 (b,d2)=2
    # -> 5/2, 5/2, 5, 5/2, 5/2
    expected = [12.5, 25 / 6, 25 / 3, 25 / 6, 12.5]
    w = sample_weights(labels, glaciers, dates)
    assert w.dtype == np.float32 and w.shape == (5,)
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="differ in length"):
        sample_weights(labels, glaciers[:4], dates)


def _dihedral(x: np.ndarray) -> list[np.ndarray]:
    """The 8 flip/rotation variants of a patch (H, W, C)."""
    out = []
    for base in (x, x[:, ::-1]):
        out += [np.rot90(base, k, axes=(0, 1)) for k in range(4)]
    return out


def test_augment_is_flip_rot_contrast_brightness():
    x = np.random.default_rng(0).random((32, 33, 33, 3), dtype=np.float32)
    out = augment(x, seed=[1, 2]).numpy()
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, augment(x, seed=[1, 2]).numpy())
    assert not np.allclose(out, augment(x, seed=[3, 4]).numpy())
    assert augment(x[0], seed=[1, 2]).shape == x[0].shape

    used = set()
    for i in range(len(x)):
        m = x[i].mean(axis=(0, 1))
        o = out[i]
        fits = []
        for t, v in enumerate(_dihedral(x[i])):
            c = v - m
            oc = o - o.mean(axis=(0, 1))
            f = float((oc * c).sum() / (c * c).sum())
            if np.allclose(oc, f * c, atol=1e-5):
                fits.append((t, f, o.mean(axis=(0, 1)) - m))
        assert len(fits) == 1, f"patch {i}: not a unique flip/rotation of its input"
        t, f, d = fits[0]
        used.add(t)
        assert 0.95 <= f <= 1.05
        assert np.ptp(d) < 1e-5 and -0.01 <= d[0] <= 0.01  # one delta for all channels
    assert len(used) >= 4  # flips and rotations do vary


def _batches(ds) -> list[tuple[np.ndarray, ...]]:
    return [tuple(t.numpy() for t in b) for b in ds]


def test_validation_dataset_is_identity():
    n = 10
    x = np.random.default_rng(1).random((n, 33, 33, 4), dtype=np.float32)
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7, 0, 1])
    w = np.linspace(0.5, 2.0, n).astype(np.float32)
    batches = _batches(make_tf_dataset(x, y, w, training=False, batch_size=4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.eye(N_CLASSES)[y])
    np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]), w)
    no_w = _batches(make_tf_dataset(x, y, batch_size=16))
    assert len(no_w) == 1 and len(no_w[0]) == 2


def test_training_dataset_smoothing_shuffle_pairing():
    n = 40
    # constant patches keep their value under flips/rotations/contrast, + delta <= 0.01
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 33, 33, 2))
    y = np.arange(n) % N_CLASSES
    w = np.arange(n, dtype=np.float32) * 0.5
    ds = make_tf_dataset(x, y, w, training=True, batch_size=16, seed=7)
    epoch1, epoch2 = _batches(ds), _batches(ds)
    xb = np.concatenate([b[0] for b in epoch1])
    yb = np.concatenate([b[1] for b in epoch1])
    wb = np.concatenate([b[2] for b in epoch1])
    assert xb.shape == (n, 33, 33, 2) and yb.shape == (n, N_CLASSES)
    ids = np.rint(xb[:, 0, 0, 0]).astype(int)
    assert sorted(ids) == list(range(n))
    assert not np.array_equal(ids, np.arange(n))  # shuffled
    assert np.abs(xb - ids[:, None, None, None]).max() <= 0.01 + 1e-6
    np.testing.assert_allclose(wb, w[ids])  # labels and weights stay with their patch
    expected = np.full((n, N_CLASSES), 0.1 / 8, np.float32)
    expected[np.arange(n), y[ids]] = 0.9 + 0.1 / 8
    np.testing.assert_allclose(yb, expected, rtol=1e-6)
    ids2 = np.rint(np.concatenate([b[0] for b in epoch2])[:, 0, 0, 0]).astype(int)
    assert not np.array_equal(ids, ids2)  # reshuffled each epoch
    again = _batches(make_tf_dataset(x, y, w, training=True, batch_size=16, seed=7))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in again]), xb)  # reproducible
