"""Glacier series from per-scene statistics CSVs: file-name rule, catalogue, end of season."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils.massbalance import MassBalanceError, collect_series, end_of_season, join_balances
from utils.massbalance.series import hydrological_year, scene_from_name
from utils.study import CLASSES


def stats_csv(path, rows, extra_class=False):
    """A statistics CSV like apply.py --stats_csv: rows = [(RGIId, aar, observed fraction)]
    on 1 km² glaciers, snow = AAR x observed area, the rest of it ice, the unobserved cloud."""
    out = []
    for gid, aar, obs in rows:
        r = {"RGIId": gid, "glacier_area_km2": 1.0, "outline_area_km2": 1.0,
             "unclassified_km2": 0.0, "observed_km2": obs}
        r.update({f"area_{c}_km2": 0.0 for c in CLASSES})
        r["area_snow_km2"], r["area_ice_km2"] = aar * obs, (1 - aar) * obs
        r["area_cloud_km2"] = 1 - obs
        if extra_class:
            r["area_slush_km2"] = 0.0
        r["aar"] = aar
        r["sla_m"] = 3000 - 500 * aar
        out.append(r)
    pd.DataFrame(out).to_csv(path, index=False)
    return path


def test_file_name_rule():
    date, sensor = scene_from_name("maps/S2B_20190905_hef.csv")
    assert (date, sensor) == (pd.Timestamp("2019-09-05"), "Sentinel-2")
    assert scene_from_name("LC08_2020-08-31.csv") == (pd.Timestamp("2020-08-31"), "Landsat 8")
    assert scene_from_name("hef_20210101.csv")[1] == ""
    with pytest.raises(MassBalanceError, match="hef_stats.csv: no date"):
        scene_from_name("hef_stats.csv")


def test_hydrological_year_starts_in_october():
    d = pd.Series(pd.to_datetime(["2019-09-30", "2019-10-01", "2020-03-01"]))
    assert hydrological_year(d).tolist() == [2019, 2020, 2020]
    assert hydrological_year(d, start_month=4).tolist() == [2020, 2020, 2020]


@pytest.fixture
def scenes(tmp_path):
    """Glacier G1: 2019 July (AAR .7), early September (.4), late September mostly
    clouded (.2 on 40 % observed), plus a second map of the same September day that
    sees less; 2020 only a 50 %-observed scene. Glacier G2: 2019 one scene."""
    return [
        stats_csv(tmp_path / "S2_20190715.csv", [("G1", 0.7, 0.95), ("G2", 0.5, 0.9)]),
        stats_csv(tmp_path / "S2_20190905.csv", [("G1", 0.4, 0.9)]),
        stats_csv(tmp_path / "L8_20190905.csv", [("G1", 0.45, 0.8)]),
        stats_csv(tmp_path / "S2_20190925.csv", [("G1", 0.2, 0.4)]),
        stats_csv(tmp_path / "S2_20200901.csv", [("G1", 0.3, 0.5)]),
    ]


def test_series_keyed_by_glacier_and_date(scenes):
    s, dropped = collect_series(scenes)
    assert not s.duplicated(["RGIId", "date"]).any()
    assert len(s) == 5
    # of two maps of G1 on 2019-09-05 the better observed one is kept, the other reported
    g = s[(s["RGIId"] == "G1") & (s["date"] == "2019-09-05")].iloc[0]
    assert g["sensor"] == "Sentinel-2" and g["aar"] == 0.4
    assert dropped["file"].str.endswith("L8_20190905.csv").tolist() == [True]
    assert dropped["row"].tolist() == [2]
    np.testing.assert_allclose(s["observed_fraction"], [0.95, 0.9, 0.4, 0.5, 0.9])
    assert s["frac_snow"].iloc[0] == pytest.approx(0.7)


def test_end_of_season_is_lowest_aar_among_well_observed(scenes):
    s, _ = collect_series(scenes)
    e = end_of_season(s, min_observed=0.7).set_index(["RGIId", "year"])
    # 2019: the clouded 0.2 scene is not well observed; of 0.7 and 0.4 the lower wins
    assert e.loc[("G1", 2019), "aar"] == 0.4
    assert e.loc[("G1", 2019), "date"] == pd.Timestamp("2019-09-05")
    assert e.loc[("G1", 2019), "n_scenes"] == 3 and e.loc[("G1", 2019), "n_well_observed"] == 2
    # 2020: only a 50 % scene -> flagged, kept for plots
    assert not e.loc[("G1", 2020), "well_observed"]
    assert e.loc[("G1", 2020), "aar"] == 0.3
    # a lower threshold admits the clouded scene
    assert end_of_season(s, min_observed=0.3).set_index(["RGIId", "year"]).loc[
        ("G1", 2019), "aar"] == 0.2


def test_catalogue_gives_dates_and_sensors(tmp_path):
    stats_csv(tmp_path / "hef.csv", [("G1", 0.5, 1.0)])
    (tmp_path / "scenes.csv").write_text("stats_csv,date,sensor\nhef.csv,2018-09-01,Landsat 7\n")
    s, _ = collect_series(catalogue=tmp_path / "scenes.csv")
    assert s["date"].tolist() == [pd.Timestamp("2018-09-01")] and s["sensor"][0] == "Landsat 7"
    (tmp_path / "bad.csv").write_text("stats_csv,date,sensor\nhef.csv,,S2\n")
    with pytest.raises(MassBalanceError, match="bad.csv: row 2: date '' is not YYYY-MM-DD"):
        collect_series(catalogue=tmp_path / "bad.csv")


def test_another_class_scheme_and_missing_columns_raise(tmp_path):
    p = stats_csv(tmp_path / "S2_20190905.csv", [("G1", 0.5, 1.0)], extra_class=True)
    with pytest.raises(MassBalanceError, match="S2_20190905.csv: class columns .*another class"):
        collect_series([p])
    df = pd.read_csv(stats_csv(p, [("G1", 0.5, 1.0)])).drop(columns="observed_km2")
    df.to_csv(p, index=False)
    with pytest.raises(MassBalanceError, match="S2_20190905.csv: missing column.*observed_km2"):
        collect_series([p])


def test_join_reports_unlinked_glaciers_years_without_balance_and_poor_years(scenes):
    s, _ = collect_series(scenes)
    e = end_of_season(s)
    years = pd.DataFrame({"WGMS_ID": [1], "year": [2019], "balance_mwe": [-0.5], "aar": [0.41],
                          "ela_m": [2900.0]})
    links = pd.DataFrame({"RGIId": ["G1"], "WGMS_ID": [1]})
    t, dropped = join_balances(e, years, links, source="eos.csv")
    assert t[["RGIId", "year", "balance_mwe", "aar", "wgms_aar"]].values.tolist() == [
        ["G1", 2019, -0.5, 0.4, 0.41]]
    why = dict(zip(dropped["what"], dropped["reason"], strict=True))
    assert why["G2 2019"].startswith("glacier not in the WGMS links")
    assert why["G1 2020"] == "no WGMS annual balance for this year"
    years.loc[1] = [1, 2020, 0.1, 0.3, 2950.0]
    _, dropped = join_balances(e, years, links)
    assert "too little" in dict(zip(dropped["what"], dropped["reason"], strict=True))["G1 2020"]
