"""Tests of utils.data.loading: patches of a folder or a pack, folds and features."""

from __future__ import annotations

import numpy as np
import pytest
from patch_samples import NAMES, make_patch, sorted_names

from utils.data.files import write_patch
from utils.data.loading import load_patches
from utils.data.names import PatchError
from utils.data.stats import compute_stats
from utils.study import CLASS_INDEX, N_FEATURES, feature_indices


def test_load_folder_raw(dataset):
    folder, raw = dataset
    ps = load_patches(folder)
    names = sorted_names()
    assert ps.x.shape == (len(names), 33, 33, N_FEATURES) and ps.x.dtype == np.float32
    assert ps.meta["file"].tolist() == names  # non-.tif and hidden files ignored
    np.testing.assert_array_equal(ps.x, np.stack([raw[n] for n in names]))
    assert ps.y.tolist() == [CLASS_INDEX[n.rsplit("_", 1)[1].split(".")[0]] for n in names]
    assert ps.meta["fold"].tolist() == [int(n[0]) for n in names]
    assert ps.meta["glacier"].tolist() == [n.split("_")[1] for n in names]
    assert ps.meta["date"].tolist() == [n.split("_")[2] for n in names]
    assert not ps.normalised and len(ps.skipped) == 0


def test_load_patches_subfolder(dataset, tmp_path):
    sub = tmp_path / "patches"
    sub.mkdir()
    write_patch(sub / NAMES[0], make_patch(0))
    ps = load_patches(tmp_path)
    assert ps.meta["file"].tolist() == [NAMES[0]]


def test_fold_and_feature_selection(dataset, pack):
    folder, raw = dataset
    groups = ("optical", "slope", "proximity")
    idx = feature_indices(groups)
    for source in (folder, pack):
        ps = load_patches(source, folds=[3, 1], features=groups)
        names = sorted_names([1, 3])
        assert ps.meta["file"].tolist() == names
        assert ps.features == tuple(idx) == (0, 1, 2, 3, 4, 5, 7, 10)
        assert ps.feature_names[-1] == "proximity"
        np.testing.assert_array_equal(ps.x, np.stack([raw[n][..., idx] for n in names]))


def test_empty_fold(dataset, pack):
    for source in dataset[0], pack:
        ps = load_patches(source, folds=5, features=["optical"])
        assert ps.x.shape == (0, 33, 33, 6) and ps.y.shape == (0,) and len(ps.meta) == 0
    with pytest.raises(PatchError, match="no valid patches"):
        compute_stats(pack, folds=[5])
    with pytest.raises(ValueError, match="folds must be"):
        load_patches(pack, folds=[6])
