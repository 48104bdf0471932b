"""Segmentation layout reader, IoU / F1, a few U-Net steps on demo masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from utils.rockglaciers.demo import write_tiles
from utils.rockglaciers.segmentation import iou_f1, read_masks, train_segmenter
from utils.rockglaciers.tiles import RockGlacierError


def test_iou_f1_known_values():
    t = np.zeros((4, 4), bool)
    t[:2] = True  # 8 px
    p = np.zeros((4, 4), bool)
    p[1:3] = True  # 8 px, 4 shared
    r = iou_f1(t, p)
    assert r["iou"] == pytest.approx(4 / 12) and r["f1"] == pytest.approx(0.5)
    assert np.isnan(iou_f1(np.zeros(3), np.zeros(3))["iou"])


def test_demo_masks_layout_and_a_few_unet_steps(tmp_path):
    folder = write_tiles(tmp_path / "seg", n_groups=2, per_group=2, seed=0, masks=True)
    m = read_masks(folder)
    assert m.images.shape == (4, 128, 128, 3) and m.masks.shape == (4, 128, 128)
    assert set(np.unique(m.masks)) == {0, 1} and m.masks.mean() > 0.05
    model = train_segmenter(m.images, m.masks, epochs=1, batch=4, progress=False)
    assert model.output_shape == (None, 128, 128, 1)


@pytest.mark.parametrize("value, match", [(7, "mask values"), (None, "mask missing")])
def test_bad_masks_name_the_file(tmp_path, value, match):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    if value is not None:
        Image.fromarray(np.full((128, 128), value, np.uint8)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(RockGlacierError, match=match) as err:
        read_masks(tmp_path)
    assert "a.png" in str(err.value)
