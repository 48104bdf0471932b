"""Edge padding and the patch engine (utils.inference.patch), incl. the golden scene."""

from __future__ import annotations

import numpy as np
import pytest

from utils.inference.engines import run_engine
from utils.inference.padding import gather_patches, pad_features, pad_window, window_rows
from utils.inference.patch import patch_probs
from utils.study import HALF, PATCH_SIZE


@pytest.fixture(scope="module")
def model6():
    import keras

    from utils.model import build_cnn_model

    keras.utils.set_random_seed(1)
    return build_cnn_model(6)


def test_pad_features_reflects_and_zeroes_nan():
    rng = np.random.default_rng(0)
    x = rng.random((20, 25, 3)).astype(np.float32)
    x[0, 0, 1] = np.nan
    p = pad_features(x)
    assert p.shape == (20 + 2 * HALF, 25 + 2 * HALF, 3) and p.dtype == np.float32
    core = p[HALF:-HALF, HALF:-HALF]
    assert core[0, 0, 1] == 0 and not np.isnan(p).any()
    np.testing.assert_array_equal(core[1:], x[1:])
    for k in range(1, HALF + 1):  # row -k is row k, col -k is col k (edge not repeated)
        np.testing.assert_array_equal(p[HALF - k, HALF:-HALF], np.nan_to_num(x[k]))
        np.testing.assert_array_equal(p[HALF:-HALF, HALF - k], np.nan_to_num(x[:, k]))
        np.testing.assert_array_equal(p[-HALF - 1 + k, HALF:-HALF], x[-1 - k])


@pytest.mark.parametrize("height", [1, 5, 16, 17, 18, 40, 73])
@pytest.mark.parametrize("block", [1, 7, 32, 100])
def test_pad_window_equals_rows_of_full_padding(height, block):
    rng = np.random.default_rng(height * 100 + block)
    x = rng.random((height, 9, 2)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    full = pad_features(x)
    for r0 in range(0, height, block):
        r1 = min(height, r0 + block)
        e0, e1 = window_rows(r0, r1, height)
        got = pad_window(x[e0:e1], r0, r1, height)
        np.testing.assert_array_equal(got, full[r0 : r1 + 2 * HALF])


def test_pad_window_rejects_wrong_block():
    with pytest.raises(ValueError, match="rows"):
        pad_window(np.zeros((5, 4, 1), np.float32), 20, 30, 100)


def test_gather_patches_matches_slicing():
    rng = np.random.default_rng(2)
    padded = rng.random((50, 60, 4)).astype(np.float32)
    rows = np.array([0, 3, 17, 17])
    cols = np.array([0, 27, 5, 6])
    got = gather_patches(padded, rows, cols)
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        np.testing.assert_array_equal(got[i], padded[r : r + PATCH_SIZE, c : c + PATCH_SIZE])


def test_patch_probs_equals_model_on_each_patch(model6):
    rng = np.random.default_rng(3)
    feats = rng.random((24, 30, 6)).astype(np.float32)
    padded = pad_features(feats)
    rows, cols = np.nonzero(rng.random((24, 30)) < 0.1)
    rows = np.concatenate([rows, [0, 23, 0, 23]])  # corners: reflected patches
    cols = np.concatenate([cols, [0, 29, 29, 0]])
    seen: list[int] = []
    got = patch_probs(model6, padded, rows, cols, batch_size=16, progress=seen.append)
    assert got.shape == (rows.size, 8) and got.dtype == np.float32
    assert sum(seen) == rows.size
    patches = np.stack([padded[r : r + PATCH_SIZE, c : c + PATCH_SIZE] for r, c in zip(rows, cols,
                                                                             strict=True)])
    ref = model6.predict(patches, verbose=0)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_patch_probs_reuses_compiled_function(model6):
    from utils.inference.patch import _COMPILED

    padded = pad_features(np.zeros((10, 10, 6), np.float32))
    for n in (40, 33, 64):  # all >= batch: one fixed batch shape
        r = np.arange(n) % 10
        patch_probs(model6, padded, r, r[::-1], batch_size=32)
    fn = _COMPILED[model6][(32, PATCH_SIZE, 6)]
    assert fn.experimental_get_tracing_count() == 1


def test_patch_probs_empty_and_bad_coordinates(model6):
    padded = pad_features(np.zeros((10, 10, 6), np.float32))
    assert patch_probs(model6, padded, [], []).shape == (0, 8)
    with pytest.raises(ValueError, match="out of range"):
        patch_probs(model6, padded, [10], [0])


def test_run_engine_without_progress_support():
    calls = []

    def engine(model, padded, rows, cols, batch_size):
        calls.append(batch_size)
        return np.full((len(rows), 8), 1 / 8, np.float32)

    seen: list[int] = []
    out = run_engine(engine, None, np.zeros((40, 40, 1)), np.arange(5), np.arange(5), 7,
                     progress=seen.append)
    assert out.shape == (5, 8) and calls == [7] and seen == [5]


def test_golden_scene_interior(golden, reference_dir, labels_agree):
    """The published fold-0 model on the golden scene, through pad_features + the engine."""
    from utils.model import load_model

    model = load_model(reference_dir / "weights" / "0_cnn_afterconfidentlearning_weights.h5")
    feats = golden["scene/features"]
    ref = golden["scene/probs_interior"]
    padded = pad_features(feats)
    rr, cc = np.mgrid[16:84, 16:84]
    got = patch_probs(model, padded, rr.ravel(), cc.ravel(), batch_size=512)
    got = got.reshape(68, 68, 8)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    labels_agree(got, ref, 1e-5)
