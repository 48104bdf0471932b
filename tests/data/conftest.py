"""Fixtures of the utils.data tests: the synthetic patch folder and its pack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from patch_samples import NAMES, make_patch

from utils.data.files import write_patch
from utils.data.pack import pack_patches


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """The folder of NAMES (plus a non-patch and a hidden file) and its raw arrays."""
    folder = tmp_path_factory.mktemp("patches")
    raw = {}
    for i, name in enumerate(NAMES):
        raw[name] = make_patch(i)
        write_patch(folder / name, raw[name])
    (folder / "README.txt").write_text("not a patch")
    (folder / ".hidden_0_a_d_ice.tif").write_text("ignored")
    return folder, raw


@pytest.fixture(scope="session")
def pack(dataset, tmp_path_factory) -> Path:
    """The pack of ``dataset``."""
    out = tmp_path_factory.mktemp("pack") / "patches.h5"
    pack_patches(dataset[0], out, progress=False)
    return out
