"""Segmentation readers (folders, Parquet), IoU / F1, a few U-Net steps on demo masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from rg_parquet import image_cell, png, write_parquet

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


def _segmentation_export(path, masks):
    """An ``image-segmentation`` export: one random tile per mask (or mask cell)."""
    rng = np.random.default_rng(3)
    cells = [m if isinstance(m, dict) else image_cell(png(m)) for m in masks]
    return write_parquet(path, {
        "image": [image_cell(png(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)))
                  for _ in masks],
        "masks": cells, "path": [f"train/{i}.png" for i in range(len(masks))]})


def test_parquet_segmentation_export(tmp_path):
    half = np.zeros((128, 128), np.uint8)
    half[:64] = 1
    export = _segmentation_export(tmp_path / "data" / "train-00000-of-00001.parquet",
                                  [half, half * 255])
    for source in (tmp_path, export):
        m = read_masks(source)
        assert m.images.shape == (2, 128, 128, 3) and m.masks.shape == (2, 128, 128)
        assert (m.masks == half).all() and m.names == [f"{export}::train/{i}.png" for i in (0, 1)]


@pytest.mark.parametrize("cell, match", [
    (image_cell(b"garbage"), "train/1.png .masks.: not a readable PNG"),
    (image_cell(png(np.full((128, 128), 7, np.uint8))), "train/1.png .masks.: mask values")])
def test_bad_parquet_masks_name_file_and_row(tmp_path, cell, match):
    export = _segmentation_export(tmp_path / "seg.parquet", [np.zeros((128, 128), np.uint8), cell])
    with pytest.raises(RockGlacierError, match=match) as err:
        read_masks(tmp_path)
    assert str(export) in str(err.value)
    m = read_masks(export, skip_invalid=True)
    assert m.names == [f"{export}::train/0.png"] and match.split(": ")[1] in m.skipped[0]


def test_parquet_segmentation_missing_column(tmp_path):
    write_parquet(tmp_path / "seg.parquet", {"image": [image_cell(b"x")], "path": ["a.png"]})
    with pytest.raises(RockGlacierError, match="seg.parquet: no column.s. masks; found image"):
        read_masks(tmp_path)
