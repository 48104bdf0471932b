"""Fixtures of the rock-glacier tests: demo tiles and one quickly trained model per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def rg_demo_tiles(tmp_path_factory) -> Path:
    """Demo tiles in the file-name layout: 6 rock glaciers and 6 cordillera runs of 3 tiles."""
    from utils.rockglaciers.demo import write_tiles

    return write_tiles(tmp_path_factory.mktemp("rg_tiles"), n_groups=6, per_group=3, seed=0)


@pytest.fixture(scope="session")
def rg_model(rg_demo_tiles, tmp_path_factory) -> Path:
    """A classifier trained for 2 steps and saved with a calibrator (not a good model)."""
    from utils.rockglaciers.classifier import (
        fit_probability_calibrator,
        predict,
        save_classifier,
        train_classifier,
    )
    from utils.rockglaciers.tiles import read_tiles

    tiles = read_tiles(rg_demo_tiles)
    model, secs = train_classifier(tiles.images, tiles.labels, epochs=1, steps=2, batch=8,
                                   progress=False)
    assert len(secs) == 1
    p = predict(model, tiles.images)
    cal = fit_probability_calibrator(p, tiles.labels)
    return save_classifier(model, cal, tmp_path_factory.mktemp("rg_model") / "m.keras")


@pytest.fixture
def rgb_tile() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
