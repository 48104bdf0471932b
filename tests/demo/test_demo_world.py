"""Tests of utils.demo.world: the sun and the scene geometry of the demo world."""

from __future__ import annotations

import pytest

from utils.demo import world


def test_sun_position_is_plausible() -> None:
    az, el = world.sun_position(46.85, 10.75, "20190621", solar_hour=12.0)
    assert az == pytest.approx(180.0, abs=0.5) and el == pytest.approx(66.6, abs=1.0)
    az, el = world.sun_position(61.65, 7.1, "20190911")
    assert 140 < az < 170 and 25 < el < 35
