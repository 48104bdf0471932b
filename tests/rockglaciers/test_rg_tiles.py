"""Readers of the three tile layouts, bad inputs, grouping and grouped folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rg_parquet import classification_export, image_cell, png, write_parquet

from utils.errors import InputError
from utils.rockglaciers.tiles import (
    RockGlacierError,
    grouped_folds,
    read_png,
    read_tiles,
    site_folds,
)


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def test_file_name_layout_labels_and_groups(tmp_path, rgb_tile):
    for name in ("cordillera_0.png", "cordillera_1.png", "cordillera_2.png", "cordillera_7.png",
                 "glaciarRoca_loshelados_1_0.png", "glaciarRoca_loshelados_1_3.png",
                 "glaciarRoca_maranceles_10_2.png"):
        _save(tmp_path / name, rgb_tile)
    t = read_tiles(tmp_path)
    assert t.images.shape == (7, 128, 128, 3) and t.images.dtype == np.uint8
    by_name = {p.name: (int(y), g) for p, y, g in zip(t.paths, t.labels, t.groups, strict=True)}
    assert by_name["cordillera_0.png"] == (0, "cordillera_run0")
    assert by_name["cordillera_2.png"] == (0, "cordillera_run0")  # 0, 1, 2: one run
    assert by_name["cordillera_7.png"] == (0, "cordillera_run7")  # after a gap: a new run
    assert by_name["glaciarRoca_loshelados_1_3.png"] == (1, "loshelados_1")
    assert by_name["glaciarRoca_maranceles_10_2.png"] == (1, "maranceles_10")


def test_image_folder_layout(tmp_path, rgb_tile):
    _save(tmp_path / "train" / "cordillera" / "1512.png", rgb_tile)
    _save(tmp_path / "train" / "cordillera" / "1513.png", rgb_tile)
    _save(tmp_path / "train" / "glaciar" / "20.png", rgb_tile)
    t = read_tiles(tmp_path / "train")
    assert sorted(t.labels.tolist()) == [0, 0, 1]
    assert len(set(t.groups[t.labels == 0])) == 1  # consecutive numbers: one run


def test_rgba_alpha_zero_becomes_black(tmp_path, rgb_tile):
    rgba = np.dstack([rgb_tile, np.full((128, 128), 255, np.uint8)])
    rgba[:10, :, 3] = 0
    img = read_png(_save(tmp_path / "cordillera_0.png", rgba))
    assert img.shape == (128, 128, 3)
    assert (img[:10] == 0).all() and (img[10:] == rgb_tile[10:]).all()


@pytest.mark.parametrize("problem, match", [
    ("corrupt", "not a readable PNG"), ("size", "64 x 64 px"), ("label", "unknown label")])
def test_bad_tiles_name_the_file(tmp_path, rgb_tile, problem, match):
    _save(tmp_path / "cordillera_0.png", rgb_tile)
    if problem == "corrupt":
        bad = tmp_path / "cordillera_1.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif problem == "size":
        bad = _save(tmp_path / "cordillera_1.png", rgb_tile[:64, :64])
    else:
        bad = _save(tmp_path / "glacier_1.png", rgb_tile)
    with pytest.raises(RockGlacierError, match=match) as err:
        read_tiles(tmp_path)
    assert bad.name in str(err.value) and isinstance(err.value, InputError)
    if problem != "label":  # skip_invalid leaves the bad tile out and reports it
        t = read_tiles(tmp_path, skip_invalid=True)
        assert len(t) == 1 and len(t.skipped) == 1 and bad.name in t.skipped[0]


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(RockGlacierError, match="does not exist"):
        read_tiles(tmp_path / "nope")
    with pytest.raises(RockGlacierError, match="no tiles"):
        read_tiles(tmp_path)


def test_grouped_folds_keep_groups_together():
    rng = np.random.default_rng(0)
    groups = np.array([f"g{i}" for i in rng.integers(0, 30, 200)])
    labels = np.array([int(g[1:]) % 2 for g in groups])
    folds = grouped_folds(labels, groups, k=5)
    seen = np.zeros(len(labels), int)
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
        seen[te] += 1
    assert (seen == 1).all()
    with pytest.raises(RockGlacierError, match="groups per class"):
        grouped_folds(labels, groups, k=20)


def test_site_folds_hold_out_whole_sites():
    groups = np.array([f"{s}_{k}" for s in ("north", "south") for k in range(4) for _ in range(3)]
                      + [f"cordillera_run{r}" for r in range(6) for _ in range(2)])
    labels = np.array([1] * 24 + [0] * 12)
    folds = site_folds(labels, groups)
    assert [site for site, _, _ in folds] == ["north", "south"]
    seen = np.zeros(len(labels), int)
    for site, tr, te in folds:
        assert {g.split("_")[0] for g in groups[te][labels[te] == 1]} == {site}
        assert not any(g.startswith(site) for g in groups[tr])  # never saw the site
        assert not set(groups[tr]) & set(groups[te]) and 0 < labels[tr].sum() < len(tr)
        assert sorted(np.concatenate([tr, te])) == list(range(len(labels)))
        seen[te] += 1
    assert (seen[labels == 0] == 1).all()  # each cordillera tile tested once
    with pytest.raises(RockGlacierError, match="2 rock-glacier sites"):
        site_folds(labels[12:], groups[12:])  # south only


def test_real_tiles(shared_dir):
    folder = shared_dir / "data" / "rock_glaciers" / "train"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    t = read_tiles(folder)
    assert len(t) == 300 and int(t.labels.sum()) == 138
    assert len(set(t.groups[t.labels == 1])) == 20  # 10 rock glaciers at each of 2 sites
    for tr, te in grouped_folds(t.labels, t.groups, k=5):
        assert not set(t.groups[tr]) & set(t.groups[te])
        assert 0.3 < t.labels[te].mean() < 0.6


def _tree_and_export(tmp_path):
    """The same 5 tiles as an image-folder tree and as a Parquet export (``data/``)."""
    rng = np.random.default_rng(2)
    tiles = {f"train/{cls}/{n}.png": rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
             for cls, n in (("cordillera", 1512), ("cordillera", 1513), ("cordillera", 1600),
                            ("glaciar", 77), ("glaciar", "a"))}
    for rel, arr in tiles.items():
        _save(tmp_path / "tree" / rel, arr)
    export = classification_export(
        tmp_path / "hf" / "data" / "train-00000-of-00001.parquet", tiles)
    return tmp_path / "tree" / "train", export


def _by_row(t):
    """Row path (``train/<class>/<name>``) -> (image, label, group) of a TileSet."""
    return {"/".join(Path(str(p).split("::")[-1]).parts[-3:]): (img, int(y), g)
            for p, img, y, g in zip(t.paths, t.images, t.labels, t.groups, strict=True)}


def test_parquet_export_reads_like_the_image_folder_tree(tmp_path):
    tree, export = _tree_and_export(tmp_path)
    a, b = _by_row(read_tiles(tree)), _by_row(read_tiles(export.parents[1]))
    assert a.keys() == b.keys() and len(a) == 5
    for key, (img, y, g) in a.items():
        assert (b[key][0] == img).all() and b[key][1:] == (y, g)
    assert b["train/cordillera/1513.png"][2] == "cordillera_run1512"
    t = read_tiles(export)  # the .parquet file itself
    assert len(t) == 5 and str(t.paths[0]) == f"{export}::train/cordillera/1512.png"


def _export_with(tmp_path, rgb_tile, **bad):
    """A 2-row export whose second row has ``bad`` columns instead of a good tile."""
    row = {"image": image_cell(png(rgb_tile)), "labels": 0, "path": "train/cordillera/1.png"}
    cols = {k: [v, bad.get(k, v)] for k, v in row.items()}
    cols["path"][1] = bad.get("path", "train/cordillera/2.png")
    return write_parquet(tmp_path / "train.parquet", cols)


@pytest.mark.parametrize("bad, match, skippable", [
    ({"image": image_cell(b"\x89PNG\r\n\x1a\n garbage")}, "not a readable PNG", True),
    ({"image": image_cell(None)}, "no PNG bytes", True),
    ({"image": image_cell(png(np.zeros((64, 64, 3), np.uint8)))}, "64 x 64 px", True),
    ({"image": image_cell(png(np.zeros((128, 128), np.uint16)))}, "unsupported PNG mode", True),
    ({"path": "train/glaciar/2.png"}, "disagrees with the class folder glaciar", False),
    ({"labels": 2}, "label 2, expected 0", False)])
def test_bad_parquet_rows_name_file_and_row(tmp_path, rgb_tile, bad, match, skippable):
    export = _export_with(tmp_path, rgb_tile, **bad)
    row = f"{export}::{bad.get('path', 'train/cordillera/2.png')}"
    with pytest.raises(RockGlacierError, match=match) as err:
        read_tiles(tmp_path)
    assert row in str(err.value)
    if skippable:
        t = read_tiles(tmp_path, skip_invalid=True)
        assert len(t) == 1 and len(t.skipped) == 1 and row in t.skipped[0]
    else:
        with pytest.raises(RockGlacierError, match=match):
            read_tiles(tmp_path, skip_invalid=True)


def test_parquet_without_path_names_the_row(tmp_path, rgb_tile):
    bad = image_cell(b"garbage")
    export = write_parquet(tmp_path / "t.parquet", {"image": [image_cell(png(rgb_tile)), bad],
                                                    "labels": [0, 1]})
    with pytest.raises(RockGlacierError, match="row 1"):
        read_tiles(export)
    t = read_tiles(export, skip_invalid=True)
    assert t.labels.tolist() == [0] and str(t.paths[0]) == f"{export}::row 0"


def test_parquet_missing_column_or_unreadable_file(tmp_path, rgb_tile):
    export = write_parquet(tmp_path / "t.parquet", {"image": [image_cell(png(rgb_tile))],
                                                    "path": ["train/glaciar/1.png"]})
    with pytest.raises(RockGlacierError, match="no column.s. labels; found image, path") as e:
        read_tiles(tmp_path)
    assert str(export) in str(e.value)
    export.write_bytes(b"not parquet")
    with pytest.raises(RockGlacierError, match="not a readable Parquet file") as e:
        read_tiles(export, skip_invalid=True)
    assert str(export) in str(e.value)
