"""utils.mapping.pipeline: which features a model needs and where they come from."""


from __future__ import annotations

import re
from pathlib import Path

import pytest

from utils.errors import SceneError, cli_message
from utils.mapping import pipeline as mapping
from utils.study import FEATURES, OPTICAL

W11 = Path("w/m_weights.h5")


@pytest.mark.parametrize(
    "n, given, derive, sun, match",
    [
        (6, {"slope": "s.tif"}, False, None, "expects 6 features.*--slope_path is given"),
        (6, {"proximity": "p.tif", "hillshade": "h"}, True, None, "are given"),
        (8, {"slope": "s.tif"}, False, None, "elevation needs --dem_path"),
        (8, {"elevation": "d.tif"}, False, None, "slope needs --slope_path, or --derive"),
        (10, {"elevation": "d", "slope": "s", "shadow_mask": "m"}, False, None,
         "must be given together.*--hillshade_path is missing"),
        (10, {"elevation": "d", "slope": "s", "hillshade": "h"}, False, None,
         "--shadow_path is missing"),
        (10, {"elevation": "d", "slope": "s"}, False, None, "need --shadow_path and"),
        (10, {"elevation": "d"}, True, None, "needs --sun_azimuth and --sun_elevation"),
        (11, {"elevation": "d", "slope": "s", "shadow_mask": "m", "hillshade": "h"}, False,
         None, "proximity needs --proximity_path"),
        (7, {}, False, None, "has 7 input features"),
    ],
)
def test_plan_features_checks_fire(n, given, derive, sun, match):
    """The library names request fields (no flags); a CLI says them as its flags."""
    sun = sun or (None, None)
    with pytest.raises(SceneError) as info:
        mapping.plan_features(n, W11, given, derive, *sun)
    assert "--" not in str(info.value)
    assert re.search(match, cli_message(info.value)), cli_message(info.value)


def test_plan_features_derives_only_what_is_missing():
    plan = mapping.plan_features(11, W11, {"elevation": "d", "shadow_mask": "m"}, True, 10, 20)
    assert plan.features == list(FEATURES)
    assert plan.derive == {"slope", "hillshade", "proximity"}
    plan = mapping.plan_features(6, W11, {"elevation": "d"}, False)  # DEM allowed (stats)
    assert plan.features == list(OPTICAL) and not plan.derive
    plan = mapping.plan_features(11, W11, {"elevation": "d"}, True, 150.0, 30.0)
    assert plan.derive == {"slope", "shadow_mask", "hillshade", "proximity"}


@pytest.mark.parametrize("elevation", [-5.0, 0.0])
def test_sun_at_or_below_the_horizon_is_refused(elevation):
    with pytest.raises(SceneError, match="not above the horizon") as info:
        mapping.plan_features(11, W11, {"elevation": "d"}, True, 150.0, elevation)
    assert info.value.options == ("sun_elevation",)
