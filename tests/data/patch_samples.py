"""The synthetic patch dataset shared by the tests of utils.data (see conftest.py here)."""

from __future__ import annotations

import numpy as np

from utils.study import N_FEATURES

# Patches of the synthetic dataset: fold 5 is left empty on purpose.
NAMES = [
    "0_aletsch_2019-08-22_ice.tif",
    "0_aletsch_2019-08-22_p1_snow.tif",
    "0_hef_2020-07-30_p_2_x_debris.tif",
    "1_hef_2020-07-30_p3_firn.tif",
    "1_aletsch_2019-08-22_p4_shadow.tif",
    "2_hef_2020-07-30_p5_refrozen-like.tif",
    "2_hef_2021-08-01_p6_water.tif",
    "2_rhone_2021-08-01_p7_cloud.tiff",
    "3_rhone_2021-08-01_p8_ice.tif",
    "3_aletsch_2019-08-22_p9_snow.tif",
    "4_rhone_2021-08-01_p10_ice.tif",
    "4_hef_2021-08-01_p11_debris.tif",
]


def make_patch(i: int, shape: tuple[int, int, int] = (33, 33, N_FEATURES)) -> np.ndarray:
    """A deterministic patch whose values differ per file and per channel."""
    rng = np.random.default_rng(i)
    scale = np.arange(1, shape[2] + 1, dtype=np.float32) * 10.0
    return (rng.random(shape, dtype=np.float32) - 0.3) * scale


def sorted_names(folds=range(6)) -> list[str]:
    """NAMES of the given folds in the readers' order (fold, file name)."""
    names = [n for n in NAMES if int(n[0]) in folds]
    return sorted(names, key=lambda n: (int(n[0]), n))
