"""utils.normalisation: statistics files are data, never code, and must make sense."""

from __future__ import annotations

import json
import os
import pickle
import re

import numpy as np
import pytest

from utils.errors import StatsError
from utils.normalisation import Stats, load_stats, save_stats
from utils.study import FEATURES


class _RunsCode:
    """Unpickling this calls os.system (what a crafted stats file would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "globalminmax.pickle"
    path.write_bytes(pickle.dumps((_RunsCode(marker), [1.0] * 11), protocol=4))
    with pytest.raises(StatsError, match="globalminmax.pickle: not a statistics file"):
        load_stats(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_study_pickle_of_arrays_loads(tmp_path, protocol):
    mins = np.arange(11, dtype=np.float32)
    maxs = mins + 2.5
    path = tmp_path / "globalminmax.pickle"
    path.write_bytes(pickle.dumps((mins, maxs), protocol=protocol))
    stats = load_stats(path)
    np.testing.assert_array_equal(stats.min, mins)
    np.testing.assert_array_equal(stats.max, maxs)


@pytest.mark.parametrize("feature, lo, hi, text", [
    ("hillshade", 0.5, 0.5, "feature hillshade: min == max (0.5)"),
    ("slope", 90.0, 0.0, "feature slope: max 0 is below min 90"),
])
def test_degenerate_ranges_are_refused_by_name(tmp_path, feature, lo, hi, text):
    mins, maxs = [0.0] * 11, [1.0] * 11
    i = FEATURES.index(feature)
    mins[i], maxs[i] = lo, hi
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"features": list(FEATURES), "min": mins, "max": maxs}))
    with pytest.raises(StatsError, match=re.escape(f"stats.json: {text}")):
        load_stats(path)


def test_save_and_load_round_trip(tmp_path):
    stats = Stats(np.zeros(11), np.linspace(1, 2, 11))
    save_stats(stats, tmp_path / "s.json")
    back = load_stats(tmp_path / "s.json")
    np.testing.assert_array_equal(back.max, stats.max)
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
