"""Scores, the threshold baseline, the debris zone; the real-data readers on ../shared."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.crs import CRS

from utils.outlines.dataset import UNLABELLED, load, open_dataset
from utils.outlines.demo import oetztal_terrain
from utils.outlines.evaluate import (
    counts,
    debris_zone,
    evaluate_dataset,
    pooled,
    scene_counts,
    scores,
    threshold_baseline,
)
from utils.outlines.everest import BANDS_AVAILABLE, everest_scene


def _square(shift: int = 0) -> np.ndarray:
    m = np.zeros((40, 40), bool)
    m[10 + shift:30 + shift, 10:30] = True
    return m


def test_scores_of_known_masks():
    truth, valid = _square(), np.ones((40, 40), bool)
    s = scores(counts(truth, truth, valid))
    assert s == {"iou": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "boundary_f1": 1.0}
    s = scores(counts(_square(2), truth, valid))  # 2 px shift: area 360 of 400 overlaps
    assert s["iou"] == pytest.approx(360 / 440)
    assert s["precision"] == s["recall"] == pytest.approx(0.9)
    assert s["boundary_f1"] == 1.0  # within the 2 px tolerance
    assert scores(counts(_square(5), truth, valid))["boundary_f1"] < 0.6
    # unlabelled pixels do not count
    valid[:, :20] = False
    assert counts(_square(2), truth, valid)["fp"] == 20


def test_ndsi_baseline_and_debris_zone():
    # green, swir1 of snow (NDSI 0.92), ice (0.90), debris (-0.25), cloud (0.21)
    green = np.array([0.79, 0.37, 0.14, 0.70])
    swir1 = np.array([0.033, 0.021, 0.236, 0.46])
    image = np.zeros((1, 4, 7))
    image[0, :, 1], image[0, :, 4] = green, swir1
    assert threshold_baseline(image).tolist() == [[True, True, False, False]]
    rgbn = np.zeros((1, 4, 4))
    rgbn[0, :, :3] = np.array([[200], [190], [40], [50]])
    assert threshold_baseline(rgbn, BANDS_AVAILABLE).tolist() == [[True, True, False, False]]
    debris = np.zeros((30, 30), bool)
    debris[10:12, 10:12] = True
    truth = debris.copy()
    truth[5:10, 10:12] = True
    zone = debris_zone(debris, truth)
    assert zone[debris].all() and not zone[5:10, 10:12].any()  # clean ice is not in it
    assert zone[21, 11] and not zone[22, 11]  # 10 px (city-block) of rock around it
    mask = truth.astype(np.uint8)
    mask[0] = UNLABELLED
    row = scene_counts(truth, mask, debris, "m_")
    assert row["m_debris_tp"] == 4 and row["m_fn"] == 0 and row["m_debris_fp"] == 0


def test_evaluate_dataset_counts_every_labelled_pixel(ol_model, ol_data):
    table = evaluate_dataset(ol_model, ol_data, split="val", progress=False)
    assert len(table) == 2 and set(table.split) == {"val"}
    glacier = sum(int((load(s)[1] == 1).sum()) for s in open_dataset(ol_data)
                  if s.split == "val")
    for m in ("model", "ndsi"):  # every glacier pixel is found or missed, by both
        assert table[f"{m}_tp"].sum() + table[f"{m}_fn"].sum() == glacier
    assert 0 <= pooled(table, "ndsi")["iou"] <= 1
    assert table.ndsi_debris_tp.sum() < table.ndsi_tp.sum()


def test_everest_scene_bands_and_rgi_mask(shared_dir):
    image, mask, grid = everest_scene(shared_dir / "data" / "landsat7_everest")
    assert image.shape == (655, 800, 4) and grid["crs"] == CRS.from_epsg(32645)
    # haze lifts the blue floor most: blue first, as BANDS_AVAILABLE says
    floors = np.percentile(image.reshape(-1, 4), 1, axis=0)
    assert floors[0] > floors[1] > floors[2]
    assert 0.3 < mask.mean() < 0.7  # 86 RGI outlines over about half the scene


def test_oetztal_windows_are_utm_30m_with_rgi_glaciers(shared_dir):
    tiles = oetztal_terrain(shared_dir / "data" / "oetztal", 96, 2)
    assert len(tiles) == 2
    for z, glacier, crs, t in tiles:
        assert crs.to_epsg() == 32632 and t.a == 30
        assert 1500 < np.nanmin(z) and np.nanmax(z) < 4000  # Ötztal Alps, metres
        assert glacier.mean() > 0.2
