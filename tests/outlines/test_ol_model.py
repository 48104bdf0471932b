"""The outline U-Net, its loss, and resumable training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from utils.outlines import OutlineError
from utils.outlines.dataset import BANDS
from utils.outlines.model import FocalDiceLoss, build_unet, load_model
from utils.outlines.train import read_log


def test_unet_maps_tiles_to_probabilities():
    model = build_unet(7, base=4)
    p = model.predict(np.zeros((2, 48, 40, 7), np.float32), verbose=0)
    assert p.shape == (2, 48, 40, 1)
    assert (p >= 0).all() and (p <= 1).all()


def test_loss_ignores_zero_weight_pixels_and_is_small_when_right():
    rng = np.random.default_rng(0)
    t = (rng.random((2, 8, 8)) > 0.5).astype(np.float32)
    w = np.ones_like(t)
    w[:, :, 4:] = 0  # padding
    y = np.stack([t, w], axis=-1)
    loss = FocalDiceLoss()
    right = np.where(t > 0, 0.999, 0.001)[..., None].astype(np.float32)
    wrong = (1 - right).astype(np.float32)
    assert float(loss(y, right)) < 0.01 < 1.0 < float(loss(y, wrong))
    changed = right.copy()
    changed[:, :, 4:] = 1 - changed[:, :, 4:]  # only padding changes
    assert float(loss(y, changed)) == pytest.approx(float(loss(y, right)), abs=1e-6)


def test_trained_model_files(ol_model):
    model, config = load_model(ol_model)
    assert config["bands"] == list(BANDS)
    assert model.input_shape[-1] == 7
    assert [r["epoch"] for r in read_log(ol_model)] == [0, 1]
    assert not ol_model.with_suffix(".ckpt").exists()


def test_interrupted_training_resumes_where_it_stopped(ol_training):
    stopped, path = ol_training["stopped"], ol_training["model"]
    assert stopped["returned_exists"] and not stopped["model_exists"]
    assert stopped["progress"]["epoch"] == 0
    assert [r["epoch"] for r in stopped["log"]] == [0]
    log = read_log(path)  # the resumed run continued at epoch 1
    assert [r["epoch"] for r in log] == [0, 1] and log[0] == stopped["log"][0]
    assert path.exists() and path.with_suffix(".json").exists()


def test_load_model_names_missing_files(tmp_path, ol_model):
    with pytest.raises(OutlineError, match="nope.keras: outline model file not found"):
        load_model(tmp_path / "nope.keras")
    side = tmp_path / "m.json"
    (tmp_path / "m.keras").write_bytes(ol_model.read_bytes())
    side.write_text(json.dumps({"bands": ["thermal"]}))
    with pytest.raises(OutlineError, match="m.json: bands"):
        load_model(tmp_path / "m.keras")
