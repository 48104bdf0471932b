"""Fixtures of the outline tests: a tiny demo dataset and a model trained on it briefly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ol_data(tmp_path_factory) -> Path:
    """A generated tiny outline dataset (4 train + 2 val scenes of 96 px, seed 0)."""
    from utils.outlines.demo import generate

    return generate(tmp_path_factory.mktemp("ol_data"), "tiny", seed=0)


@pytest.fixture(scope="session")
def ol_training(ol_data, tmp_path_factory) -> dict:
    """A U-Net (base 8) trained for 2 epochs of 2 steps on ``ol_data``, interrupted after
    epoch 0 and resumed; returns the model path and what the interruption left."""
    from utils.outlines.train import read_log, train

    path = tmp_path_factory.mktemp("ol_model") / "tiny.keras"
    kw = dict(epochs=2, steps=2, batch_size=4, crop_size=64, base=8, progress=False)
    best = train(ol_data, path, stop_after_epoch=0, **kw)
    stopped = {"returned": best, "returned_exists": best.exists(),
               "model_exists": path.exists(), "log": read_log(path),
               "progress": json.loads((path.with_suffix(".ckpt") / "progress.json")
                                      .read_text())}
    return {"model": train(ol_data, path, **kw), "stopped": stopped}


@pytest.fixture(scope="session")
def ol_model(ol_training) -> Path:
    """Path of the trained tiny model (NAME.keras beside NAME.json)."""
    return ol_training["model"]
