"""Tests of utils.data.pack: the HDF5 pack's round trip, version check and writing."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
from patch_samples import NAMES

from utils.data.loading import load_patches
from utils.data.names import PatchError
from utils.data.pack import PACK_VERSION, pack_patches
from utils.study import FEATURES


def test_pack_round_trip(dataset, pack):
    folder, _ = dataset
    for folds in (None, [2], [0, 4]):
        a = load_patches(folder, folds=folds)
        b = load_patches(pack, folds=folds)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        pd.testing.assert_frame_equal(a.meta, b.meta)
    with h5py.File(pack) as h5:
        assert h5.attrs["version"] == PACK_VERSION
        assert list(h5.attrs["features"]) == list(FEATURES)
        offsets = h5["fold_offsets"][:]
        folds = h5["fold"][:]
    counts = [sum(n[0] == str(f) for n in NAMES) for f in range(6)]
    assert offsets.tolist() == np.concatenate([[0], np.cumsum(counts)]).tolist()
    for f in range(6):  # each fold is one contiguous slice
        assert (folds[offsets[f] : offsets[f + 1]] == f).all()


def test_pack_of_pack_identical(pack, tmp_path):
    out = tmp_path / "again.h5"
    pack_patches(pack, out, progress=False)
    a, b = load_patches(pack), load_patches(out)
    np.testing.assert_array_equal(a.x, b.x)
    pd.testing.assert_frame_equal(a.meta, b.meta)


def test_pack_version_checked(pack, tmp_path):
    bad = tmp_path / "old.h5"
    bad.write_bytes(pack.read_bytes())
    with h5py.File(bad, "a") as h5:
        h5.attrs["version"] = PACK_VERSION + 1
    with pytest.raises(PatchError, match=f"{bad}: pack format version {PACK_VERSION + 1}"):
        load_patches(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(PatchError, match=f"{other}: not a patch pack"):
        load_patches(other)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])
    with pytest.raises(PatchError, match=f"{cut}: .*unreadable"):
        load_patches(cut)
