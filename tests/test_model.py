"""The CNN: architecture, the study's published weights, and our .h5 writer."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from utils.model import WeightsError, build_cnn_model, input_features, load_model, save_weights

ALL_WEIGHTS = "weights/**/*_weights.h5"


def _weights_path(reference_dir, key: str):
    return reference_dir / "weights" / (key.replace("__", "/") + "_weights.h5")


def test_golden_patch_probabilities(reference_dir, golden):
    keys = [k.split("/", 1)[1] for k in golden if k.startswith("patch_inputs/")]
    assert len(keys) == 15
    for key in keys:
        model = load_model(_weights_path(reference_dir, key))
        x = golden[f"patch_inputs/{key}"]
        probs = np.asarray(model(x, training=False))
        np.testing.assert_allclose(probs, golden[f"patch_probs/{key}"], atol=1e-5, err_msg=key)


def test_every_published_file_loads_with_its_feature_count(reference_dir):
    files = sorted(reference_dir.glob(ALL_WEIGHTS))
    assert len(files) == 59
    expected_by_set = {"1": 6, "2": 8, "3": 10, "4": 11}
    for path in files:
        rel = path.relative_to(reference_dir / "weights")
        expected = expected_by_set.get(rel.parts[0], 11) if len(rel.parts) > 1 else 11
        model = load_model(path)
        assert input_features(model) == expected, rel
        assert model.outputs[0].shape[-1] == 8


def test_architecture_and_shared_elu():
    model = build_cnn_model(11)
    kinds = [type(layer).__name__ for layer in model.layers if layer.weights]
    assert kinds == ["Conv2D", "BatchNormalization"] * 6 + ["Dense"] * 3
    elus = [layer for layer in model.layers if type(layer).__name__ == "ELU"]
    assert len(elus) == 1  # one shared activation object, as in the study
    assert model.count_params() == 11 * 9 * 64 + 64 + 5 * (9 * 64 * 64 + 64) + 6 * 4 * 64 + (
        192 * 32 + 32
    ) + (32 * 32 + 32) + (32 * 8 + 8)


def test_latent_output_is_192_vector():
    model = build_cnn_model(6, latent=True)
    probs, z = model(np.zeros((2, 33, 33, 6), np.float32), training=False)
    assert probs.shape == (2, 8) and z.shape == (2, 192)


@pytest.mark.parametrize("size", [9, 15, 21, 33, 45])
def test_other_odd_patch_sizes(size):
    model = build_cnn_model(8)
    probs = np.asarray(model(np.random.default_rng(0).random((3, size, size, 8), np.float32)))
    assert probs.shape == (3, 8)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_centre_tap_sees_only_the_centre():
    """Changing a far corner pixel changes c1 only through the global max branch."""
    model = build_cnn_model(4, latent=True)
    rng = np.random.default_rng(1)
    x = rng.random((1, 33, 33, 4), np.float32)
    y = x.copy()
    y[0, 0, 0, :] += 5.0
    _, zx = model(x, training=False)
    _, zy = model(y, training=False)
    np.testing.assert_array_equal(np.asarray(zx)[:, :64], np.asarray(zy)[:, :64])


def test_save_load_round_trip_identical_predictions(tmp_path):
    model = build_cnn_model(10)
    rng = np.random.default_rng(2)
    # give batch-norm non-trivial statistics so every array matters
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) ** 2
                               for w in layer.weights])
    path = tmp_path / "0_cnn_afterconfidentlearning_weights.h5"
    save_weights(model, path)
    with h5py.File(path) as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names[:2] == ["conv2d", "batch_normalization"]
        assert [w.decode() for w in f["dense_2"].attrs["weight_names"]] == [
            "dense_2/kernel:0", "dense_2/bias:0"]
    loaded = load_model(path)
    x = rng.random((5, 33, 33, 10), np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
    assert not list(tmp_path.glob(".*tmp"))


def test_our_files_load_in_keras_legacy_reader(tmp_path):
    """Keras's own legacy-h5 reader accepts what we write (Keras-2-era compatibility)."""
    model = build_cnn_model(6)
    path = tmp_path / "m_weights.h5"
    save_weights(model, path)
    other = build_cnn_model(6)
    other.load_weights(path)
    x = np.random.default_rng(3).random((2, 33, 33, 6), np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(other(x)), atol=1e-6)


def test_missing_file_error(tmp_path):
    with pytest.raises(WeightsError, match="nope.h5: file not found"):
        load_model(tmp_path / "nope.h5")


def test_corrupt_file_error(tmp_path):
    path = tmp_path / "corrupt_weights.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    with pytest.raises(WeightsError, match="corrupt_weights.h5: cannot read as HDF5"):
        load_model(path)


def test_wrong_architecture_error(tmp_path):
    path = tmp_path / "other_weights.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"dense"])
        g = f.create_group("dense")
        g.create_dataset("dense/kernel:0", data=np.zeros((4, 2)))
        g.create_dataset("dense/bias:0", data=np.zeros(2))
        g.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
    with pytest.raises(WeightsError, match="other_weights.h5: found 1 weighted layers"):
        load_model(path)


def test_hdf5_without_layer_names(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsError, match="data.h5: no 'layer_names'"):
        load_model(path)


def test_kept_model_loads_each_file_once_and_reloads_a_changed_one(tmp_path):
    import os

    from utils.model import kept_model

    path = tmp_path / "m_weights.h5"
    save_weights(build_cnn_model(6), path)
    first = kept_model(path)
    assert kept_model(tmp_path / "." / "m_weights.h5") is first
    save_weights(build_cnn_model(8), path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = kept_model(path)
    assert second is not first and input_features(second) == 8
