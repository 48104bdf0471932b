"""The outline dataset reader accepts the layout and names the file for every bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin

from utils.errors import InputError
from utils.outlines import OutlineError
from utils.outlines.dataset import BANDS, SENSOR_BANDS, UNLABELLED, load, open_dataset


@pytest.fixture
def copy(ol_data, tmp_path) -> Path:
    """A writable copy of the tiny dataset."""
    return Path(shutil.copytree(ol_data, tmp_path / "data"))


def _csv(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "scenes.csv", dtype=str)


def _rewrite(path: Path, data: np.ndarray, **changes) -> None:
    with rasterio.open(path) as src:
        profile = src.profile | changes
    profile.update(count=data.shape[0], dtype=data.dtype)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def test_demo_dataset_reads_with_split_and_band_names(ol_data):
    scenes = open_dataset(ol_data)
    assert [s.split for s in scenes].count("train") == 4
    assert [s.split for s in scenes].count("val") == 2
    image, mask, debris = load(scenes[0])
    assert image.shape[-1] == len(BANDS) and image.dtype == np.float32
    assert set(np.unique(mask)) <= {0, 1, UNLABELLED}
    assert debris.shape == mask.shape
    # missing pixels are unlabelled
    assert (mask[np.isnan(image).any(-1)] == UNLABELLED).all()
    with rasterio.open(scenes[0].image) as src:
        assert src.descriptions == (*SENSOR_BANDS[scenes[0].sensor], "elevation")


@pytest.mark.parametrize("edit, message", [
    (lambda df: df.drop(columns="split"), "missing column(s) split"),
    (lambda df: df.assign(sensor=["landsat6"] * len(df)), "sensor 'landsat6'"),
    (lambda df: df.assign(split=["test"] * len(df)), "split 'test'"),
    (lambda df: df.assign(sensor="landsat7", date="2010-09-01"), "Landsat 7 only 1999-2003"),
    (lambda df: df.assign(date="01/13/2020"), "is not YYYY-MM-DD"),
    (lambda df: pd.concat([df, df.iloc[:1]]), "appears twice"),
    (lambda df: df[df.split == "train"], "needs train and val scenes"),
])
def test_bad_catalogue_names_scenes_csv(copy, edit, message):
    edit(_csv(copy)).to_csv(copy / "scenes.csv", index=False)
    with pytest.raises(OutlineError, match="scenes.csv") as e:
        open_dataset(copy)
    assert message in str(e.value)
    assert isinstance(e.value, InputError)


def test_missing_files_name_the_file(copy, tmp_path):
    with pytest.raises(OutlineError, match="scenes.csv not found"):
        open_dataset(tmp_path)
    sid = _csv(copy).id[0]
    (copy / "masks" / f"{sid}.tif").unlink()
    with pytest.raises(OutlineError, match=f"mask .*{sid}.tif not found"):
        open_dataset(copy)


def test_bad_rasters_name_the_file(copy):
    sid = _csv(copy).id[0]
    image, mask = copy / "images" / f"{sid}.tif", copy / "masks" / f"{sid}.tif"
    with rasterio.open(image) as src:
        data = src.read()
    _rewrite(image, data[:6])
    with pytest.raises(OutlineError, match=f"{sid}.tif: image has 6 bands; needs 7"):
        open_dataset(copy)
    _rewrite(image, data)
    with rasterio.open(image, "r+") as dst:
        dst.set_band_description(1, "B1")
    with pytest.raises(OutlineError, match="band names"):
        open_dataset(copy)
    _rewrite(image, data)  # drops the band names
    with rasterio.open(mask) as src:
        m, t = src.read(), src.transform
    _rewrite(mask, np.where(m == 1, 2, m).astype(np.uint8))
    with pytest.raises(OutlineError, match=rf"masks/{sid}.tif: mask has values \[2\]"):
        open_dataset(copy)
    _rewrite(mask, m, transform=from_origin(t.c + 300, t.f, 30, 30))
    with pytest.raises(OutlineError, match="grid .* differs from image"):
        open_dataset(copy)
    _rewrite(mask, m)
    _rewrite(image, data, transform=from_origin(t.c, t.f, 10, 10))
    with pytest.raises(OutlineError, match="30 m square pixels"):
        open_dataset(copy)
