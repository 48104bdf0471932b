"""Dense scene inference (utils.inference.dense) against the per-patch model.

The reference is the Keras model itself run on each pixel's own patch
``padded[r:r+33, c:c+33]`` (``gather_patches``), with its ``latent`` output for
the taps c1, c2, g. Models have random weights and non-trivial batch-norm
statistics; scenes are small (the exact engine's graph takes ~5-10 s to trace,
once per model).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from utils.inference import dense
from utils.inference.dense import (
    PATCH,
    _quad_levels,
    _split_sparse,
    dense_features,
    dense_outputs,
    dense_probs,
    exact_macs_per_pixel,
    exact_work,
    fold_weights,
    get_engine,
)
from utils.inference.engines import ENGINES, run_engine
from utils.inference.padding import gather_patches
from utils.inference.patch import patch_probs
from utils.model import build_cnn_model, load_model

HALF = PATCH // 2
SCENE = (37, 43)  # neither side divides the tile sizes used below
ATOL = 1e-5


def _random_model(n_features: int, seed: int):
    """A (probs, latent) pair of CNNs sharing random weights and batch-norm statistics."""
    model = build_cnn_model(n_features, latent=True)
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        weights.append(rng.normal(0.0, 1.0 / np.sqrt(max(1, np.prod(w.shape[:-1]))), w.shape))
    # Batch-norm arrays come in groups of 4 of shape (64,) after each conv kernel/bias.
    arrays = model.get_weights()
    i = 0
    while i < len(arrays):
        if arrays[i].ndim == 4:  # conv kernel, bias, gamma, beta, mean, var
            c = arrays[i].shape[-1]
            weights[i + 1] = rng.normal(0.0, 0.2, c)
            weights[i + 2] = rng.uniform(0.5, 1.5, c)
            weights[i + 3] = rng.normal(0.0, 0.3, c)
            weights[i + 4] = rng.normal(0.0, 0.5, c)
            weights[i + 5] = rng.uniform(0.3, 3.0, c)
            i += 6
        else:
            i += 1
    model.set_weights([np.asarray(w, np.float32) for w in weights])
    probs_model = build_cnn_model(n_features)
    probs_model.set_weights(model.get_weights())
    return probs_model, model


def _scene(shape: tuple[int, int], n_features: int, seed: int) -> np.ndarray:
    """Padded (H + 32, W + 32, F) scene: smooth features in 0..1 with a zeroed (nodata) patch."""
    rng = np.random.default_rng(seed)
    f = np.stack(
        [ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) for _ in range(n_features)], -1
    )
    f = (f - f.min()) / (f.max() - f.min())
    f[: shape[0] // 4, -shape[1] // 5 :] = 0.0  # nodata replaced by 0, touching the edge
    return np.pad(f.astype(np.float32), ((HALF, HALF), (HALF, HALF), (0, 0)), mode="reflect")


def _reference(latent_model, padded: np.ndarray, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch probabilities (n, 8) and latent vectors (n, 192)."""
    probs, z = [], []
    for k in range(0, len(rows), 512):
        p, zz = latent_model(gather_patches(padded, rows[k : k + 512], cols[k : k + 512]))
        probs.append(np.asarray(p))
        z.append(np.asarray(zz))
    return np.concatenate(probs), np.concatenate(z)


@pytest.fixture(scope="module", params=[11, 6], ids=["F11", "F6"])
def setup(request):
    """Model, engine, padded scene and per-patch reference for every scene pixel."""
    n_features = request.param
    model, latent = _random_model(n_features, seed=n_features)
    padded = _scene(SCENE, n_features, seed=100 + n_features)
    rows, cols = (a.ravel() for a in np.indices(SCENE))
    ref_probs, ref_z = _reference(latent, padded, rows, cols)
    return {
        "model": model,
        "engine": get_engine(model),
        "padded": padded,
        "rows": rows,
        "cols": cols,
        "probs": ref_probs,
        "z": ref_z,
    }


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "approx"])
def test_centre_taps_equal_per_patch(setup, exact):
    """c1 and c2 are exact in both modes, for interior and scene-edge pixels."""
    rng = np.random.default_rng(1)
    sel = rng.choice(setup["rows"].size, 150, replace=False)
    sel = np.concatenate([sel, [0, SCENE[1] - 1, setup["rows"].size - 1]])  # scene corners
    taps = dense_features(
        setup["engine"], setup["padded"], setup["rows"][sel], setup["cols"][sel], exact=exact
    )
    ref = setup["z"][sel]
    _close(taps["c1"], ref[:, :64])
    _close(taps["c2"], ref[:, 64:128])
    assert np.abs(ref[:, :128]).max() > 0.5  # the taps are not trivially small


def test_exact_equals_per_patch_everywhere(setup, labels_agree):
    """All pixels incl. the scene edges and the nodata block: g and probabilities."""
    z, probs = dense_outputs(setup["engine"], setup["padded"], setup["rows"], setup["cols"])
    _close(z, setup["z"])
    np.testing.assert_allclose(probs, setup["probs"], atol=ATOL)
    assert probs.dtype == np.float32 and probs.shape == (setup["rows"].size, 8)
    labels_agree(probs, setup["probs"], ATOL)


def test_approx_only_g_differs(setup):
    """The approximate engine's global max is not the per-patch one (that is the point)."""
    taps = dense_features(setup["engine"], setup["padded"], setup["rows"], setup["cols"],
                          exact=False)
    assert np.abs(taps["g"] - setup["z"][:, 128:]).max() > 1e-2


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "approx"])
def test_windowed_equals_unwindowed(setup, exact, labels_agree):
    """Tiles that do not divide the scene give the same results (no seams).

    The same values up to float32 rounding, not bit-identical: oneDNN picks its
    convolution kernels by CPU and tensor shape, so tiles of another size may sum in
    another order (seen: 3e-7 absolute, 1e-5 relative on an AVX2-only CPU). A seam
    would be an error of the order of the values themselves.
    """
    args = (setup["engine"], setup["padded"], setup["rows"], setup["cols"])
    whole = dense_outputs(*args, tile=1000, exact=exact)
    for tile in (9, 16):
        tiled = dense_outputs(*args, tile=tile, exact=exact)
        np.testing.assert_allclose(tiled[0], whole[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(tiled[1], whole[1], rtol=1e-5, atol=1e-6)
        labels_agree(tiled[1], whole[1], 1e-6)


@pytest.mark.parametrize("per_patch", [False, True], ids=["class-maps", "per-patch"])
def test_order_subsets_and_duplicates(setup, per_patch, monkeypatch):
    """Any order, sparse subsets and repeated pixels: each result is that pixel's.

    With tile 32 the sparse pixels are covered by 32- and 16-px blocks (quadtree
    split); with the sparse-block rule off they are all computed with class maps,
    with it on (default) the sparse 16-px blocks' pixels one patch each.
    """
    if not per_patch:
        monkeypatch.setattr(dense, "SPARSE_BLOCK_PIXELS", 0)
    rng = np.random.default_rng(2)
    sel = rng.integers(0, setup["rows"].size, 60)
    sel = np.concatenate([sel, sel[:5]])
    rows, cols = setup["rows"][sel], setup["cols"][sel]
    levels = _quad_levels(rows, cols, 32)
    assert {side for side, _ in levels} == {32, 16}
    alone = _split_sparse(rows, cols, levels)[1]
    assert (alone.size > 0) == per_patch
    for tile in (10, 32):
        probs = dense_probs(setup["engine"], setup["padded"], rows, cols, tile=tile)
        np.testing.assert_allclose(probs, setup["probs"][sel], atol=ATOL)


def test_dense_block_and_isolated_pixels(setup):
    """A full 16 x 16 block (class maps) and isolated pixels (one patch each) together."""
    block_r, block_c = (a.ravel() for a in np.indices((16, 16)))
    lone_r, lone_c = np.array([20, 36, 30]), np.array([40, 0, 20])
    rows, cols = np.concatenate([block_r, lone_r]), np.concatenate([block_c, lone_c])
    levels, alone = _split_sparse(rows, cols, _quad_levels(rows, cols, 16))
    assert sorted(alone) == [256, 257, 258] and [s for s, _ in levels] == [16]
    z, probs = dense_outputs(setup["engine"], setup["padded"], rows, cols, tile=16)
    ref = rows * SCENE[1] + cols
    _close(z, setup["z"][ref])
    np.testing.assert_allclose(probs, setup["probs"][ref], atol=ATOL)


def test_registered_engine_matches_patch_engine(setup):
    """``ENGINES["dense"]`` (apply.py's engine contract) vs the ``patch`` engine."""
    rows = np.concatenate([setup["rows"][:50], setup["rows"][-50:]])  # top and bottom edges
    cols = np.concatenate([setup["cols"][:50], setup["cols"][-50:]])
    done: list[int] = []
    probs = run_engine(
        ENGINES["dense"], setup["model"], setup["padded"], rows, cols, 2048,
        progress=done.append,
    )
    ref = patch_probs(setup["model"], setup["padded"], rows, cols)
    np.testing.assert_allclose(probs, ref, atol=ATOL)
    assert sum(done) == rows.size
    assert "dense-approx" in ENGINES


def test_keras_model_argument_caches_engine():
    """Passing the Keras model reuses its engine, and notices changed weights."""
    model, _ = _random_model(6, seed=7)
    padded = _scene((12, 9), 6, seed=8)
    rows, cols = (a.ravel() for a in np.indices((12, 9)))
    first = dense_probs(model, padded, rows, cols, exact=False)
    engine = get_engine(model)
    assert get_engine(model) is engine
    changed = [w.copy() for w in model.get_weights()]
    changed[-1] = changed[-1] + np.arange(changed[-1].size, dtype=np.float32)  # last bias
    model.set_weights(changed)
    assert get_engine(model) is not engine
    after = dense_probs(model, padded, rows, cols, exact=False)
    assert np.abs(after - first).max() > 1e-3


def test_input_validation(setup):
    engine, padded = setup["engine"], setup["padded"]
    h, w = SCENE
    with pytest.raises(ValueError, match="outside"):
        dense_probs(engine, padded, np.array([h]), np.array([0]))
    with pytest.raises(ValueError, match="outside"):
        dense_probs(engine, padded, np.array([0]), np.array([-1]))
    with pytest.raises(ValueError, match="padded must be"):
        dense_probs(engine, padded[..., :3], np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="differ in length"):
        dense_probs(engine, padded, np.array([0, 1]), np.array([0]))
    with pytest.raises(TypeError):
        dense_probs(engine, padded, np.array([0.5]), np.array([0]))
    with pytest.raises(ValueError, match="tile"):
        dense_probs(engine, padded, np.array([0]), np.array([0]), tile=0)
    empty = dense_probs(engine, padded, np.array([], int), np.array([], int))
    assert empty.shape == (0, 8) and empty.dtype == np.float32


def test_fold_weights_rejects_other_models():
    import keras

    other = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match="facies CNN"):
        fold_weights(other)


def test_exact_cost_is_an_order_below_per_patch():
    per_patch = PATCH**2 * 9 * (11 + 2 * 64) * 64 + 11**2 * 3 * 9 * 64 * 64  # 100.6 M
    for tile in (32, 64, 128):
        macs = exact_macs_per_pixel(tile)
        assert 5e6 < macs < per_patch / 10


def test_exact_work_counts_blocks_and_lone_pixels():
    rows, cols = (a.ravel() for a in np.indices((64, 64)))
    full = exact_work(rows, cols, (64, 64), tile=64)
    assert full == {"block_px": 4096.0, "lone_px": 0.0,
                    "macs_per_px": pytest.approx(exact_macs_per_pixel(64))}
    lone = exact_work(np.array([0, 40, 63]), np.array([5, 20, 63]), (64, 64), tile=64)
    per_patch = PATCH**2 * 9 * (11 + 2 * 64) * 64 + 11**2 * 3 * 9 * 64 * 64
    assert lone == {"block_px": 0.0, "lone_px": 3.0, "macs_per_px": pytest.approx(per_patch)}


def _golden_probs(reference_dir, golden, exact: bool):
    model = load_model(reference_dir / "weights" / "0_cnn_afterconfidentlearning_weights.h5")
    features = golden["scene/features"]
    padded = np.pad(features, ((HALF, HALF), (HALF, HALF), (0, 0)), mode="reflect")
    inner = np.arange(HALF, features.shape[0] - HALF)
    rows, cols = (a.ravel() for a in np.meshgrid(inner, inner, indexing="ij"))
    probs = dense_probs(model, padded, rows, cols, tile=29, exact=exact)
    ref = golden["scene/probs_interior"].reshape(-1, 8)
    return probs, ref


def test_golden_scene_exact(reference_dir, golden, labels_agree):
    """Published fold-0 model: the study's per-pixel probabilities and labels."""
    probs, ref = _golden_probs(reference_dir, golden, exact=True)
    np.testing.assert_allclose(probs, ref, atol=ATOL)
    labels_agree(probs, ref, ATOL)


def test_golden_scene_approx_agreement(reference_dir, golden):
    """The approximate engine: 90.6 % of the golden labels (as the benchmark reports)."""
    probs, ref = _golden_probs(reference_dir, golden, exact=False)
    agreement = float(np.mean(probs.argmax(1) == ref.argmax(1)))
    assert 0.90 <= agreement < 1.0
