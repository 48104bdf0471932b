"""Training steps, saving, metrics, baselines, grouped CV and the evaluate command."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import rockglaciers
from utils.rockglaciers.classifier import LocalContrast, augment, load_classifier, predict
from utils.rockglaciers.evaluation import cross_validate, histogram_features, metrics, summary
from utils.rockglaciers.tiles import RockGlacierError, read_tiles


def test_metrics_known_values():
    y = np.array([0, 0, 1, 1])
    m = metrics(y, np.array([0.1, 0.6, 0.9, 0.8]))
    assert m["accuracy"] == 0.75 and m["balanced_accuracy"] == 0.75
    assert m["f1_rock_glacier"] == pytest.approx(0.8) and m["roc_auc"] == 1.0
    assert metrics(y, np.array([0.0, 0.0, 1.0, 1.0]))["ece"] == pytest.approx(0.0, abs=1e-6)


def test_augment_keeps_tile_content(rgb_tile):
    out = augment(rgb_tile[None], np.random.default_rng(0))
    assert out.shape == (1, 128, 128, 3) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 255
    assert abs(out.mean() - rgb_tile.mean()) < 0.15 * rgb_tile.mean()


def _local_contrast(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(LocalContrast()(rgb[None].astype(np.float32) / 255))[0, ..., 0]


def test_local_contrast_matches_numpy_reference_inside(rgb_tile):
    from scipy.ndimage import uniform_filter

    grey = rgb_tile.astype(np.float64).mean(-1) / 255
    mean = uniform_filter(grey, 17)
    var = np.maximum(uniform_filter(grey * grey, 17) - mean * mean, 0)
    ref = np.clip(0.5 + (grey - mean) / np.sqrt(var + (2 / 255) ** 2) * 40 / 255, 0, 1)
    out = _local_contrast(rgb_tile)
    assert out.shape == (128, 128)
    # away from the border (where the window is cut differently) within float32 round-off
    np.testing.assert_allclose(out[8:-8, 8:-8], ref[8:-8, 8:-8], atol=5e-3)


def test_local_contrast_ignores_brightness_and_colour():
    # ridges (texture) under a bright-to-dark ramp (illumination, snow line)
    yy, xx = np.mgrid[:128, :128].astype(np.float32)
    grey = 60 + 40 * np.sin(xx / 3) + 1.2 * yy
    bright = np.repeat(grey[..., None], 3, -1).round().astype(np.uint8)
    # a darker, hazier, bluer acquisition of the same terrain looks the same
    dark = np.clip(bright * 0.4 + np.array([10, 15, 40]), 0, 255).round().astype(np.uint8)
    a, b = _local_contrast(bright), _local_contrast(dark)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    assert abs(np.corrcoef(yy.ravel(), a.ravel())[0, 1]) < 0.1  # the ramp is gone


def test_histogram_features_are_normalised(rg_demo_tiles):
    t = read_tiles(rg_demo_tiles)
    f = histogram_features(t.images[:5])
    assert f.shape == (5, 96)
    np.testing.assert_allclose(f.reshape(5, 6, 16).sum(-1), 1.0)


def test_saved_model_round_trip(rg_model, rg_demo_tiles):
    t = read_tiles(rg_demo_tiles)
    model, cal = load_classifier(rg_model)
    p = predict(model, t.images)
    assert p.shape == (len(t),) and ((0 <= p) & (p <= 1)).all()
    assert cal.kind == "temperature"


def test_predict_averages_over_flips_and_turns(rg_model, rg_demo_tiles):
    model, _ = load_classifier(rg_model)
    x = read_tiles(rg_demo_tiles).images[:4]
    turned = np.rot90(x, 1, axes=(1, 2))[:, :, ::-1]  # one of the 8 symmetries
    np.testing.assert_allclose(predict(model, turned), predict(model, x), atol=1e-5)


def test_load_rejects_bad_model(tmp_path, rg_model):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    shutil.copy(rg_model.with_suffix(".calibration.json"), bad.with_suffix(".calibration.json"))
    with pytest.raises(RockGlacierError, match="bad.keras"):
        load_classifier(bad)
    with pytest.raises(RockGlacierError, match="calibrator file not found"):
        load_classifier(shutil.copy(rg_model, tmp_path / "alone.keras"))


def test_grouped_cross_validation_runs_all_methods(rg_demo_tiles):
    t = read_tiles(rg_demo_tiles)
    scores, oof = cross_validate(t, k=2, progress=False, epochs=1, steps=1, batch=8)
    assert set(scores.method) == {"majority", "histogram", "cnn", "cnn_calibrated"}
    assert (oof.fold >= 0).all() and oof[["histogram", "cnn", "cnn_calibrated"]].notna().all().all()
    for _, part in oof.groupby("group"):
        assert part.fold.nunique() == 1  # a group never spans two folds
    s = summary(scores)
    assert s.loc["majority", "balanced_accuracy_mean"] == 0.5
    assert np.isfinite(s.loc["cnn", "ece_mean"])
    assert (scores[scores.method == "cnn"].epoch_s > 0).all()


def test_evaluate_command_prints_json(rg_model, rg_demo_tiles, capsys):
    assert rockglaciers.main(["evaluate", str(rg_model), str(rg_demo_tiles)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    res = json.loads(last)
    assert res["n_tiles"] == 36 and res["n_rock_glacier"] == 18
    assert 0 <= res["balanced_accuracy"] <= 1 and np.sum(res["confusion"]) == 36


def test_evaluate_command_input_error_exits_2(rg_model, tmp_path, capsys):
    assert rockglaciers.main(["evaluate", str(rg_model), str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none" in err and "Traceback" not in err
