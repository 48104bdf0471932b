"""Class and feature conventions of the study."""

from __future__ import annotations

import pytest

from utils import study as c


def test_class_order_and_facies():
    assert c.CLASSES == ("ice", "snow", "debris", "firn", "shadow", "refrozen-like", "water",
                         "cloud")
    assert c.FACIES_INDICES == (0, 1, 2, 3, 5)
    assert set(c.CLASS_COLORS) == set(c.CLASSES)
    assert len(set(c.CLASS_COLORS.values())) == 8  # every class its own colour


def test_feature_sets_have_study_sizes():
    sizes = [len(c.feature_indices(g)) for g in c.FEATURE_SETS.values()]
    assert sizes == [6, 8, 10, 11]
    assert c.feature_indices(["optical", "proximity"]) == [0, 1, 2, 3, 4, 5, 10]
    assert c.feature_names(c.feature_indices("slope")) == ["slope"]
    assert c.groups_for_count(10)[-1] == "hillshade"


def test_unknown_feature_is_named():
    with pytest.raises(ValueError, match="'albedo'"):
        c.feature_indices(["optical", "albedo"])
    with pytest.raises(ValueError, match="7 features"):
        c.groups_for_count(7)
