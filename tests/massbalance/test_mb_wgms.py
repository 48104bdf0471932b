"""WGMS readers on a hand-made folder in the published layout, and on the real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from utils.massbalance import MassBalanceError, glacier_years, rgi_links
from utils.massbalance.run import real_ceiling
from utils.massbalance.wgms import ID_LUT, OVERVIEW

OV_HEAD = '"POLITICAL_UNIT","NAME","WGMS_ID","Year","ELA_PREFIX","ELA","AAR"'


def write_wgms(d: Path, overview: list[str], balances: dict[int, list[str]],
               links: list[str] | None = None) -> Path:
    """Hand-made WGMS folder: overview rows, mbdata rows per glacier, RGI links."""
    (d / "fog-2021-05").mkdir(parents=True)
    (d / "mbdata").mkdir()
    (d / OVERVIEW).write_text("\n".join([OV_HEAD, *overview]) + "\n", encoding="latin-1")
    (d / ID_LUT).write_text('"WGMS_ID","RGI_ID"\n3,"RGI60-11.00003"\n4,"RGI50-11.00004"\n',
                            encoding="latin-1")
    for g, rows in balances.items():
        (d / "mbdata" / f"mbdata_WGMS-{g:05d}.csv").write_text(
            "\n".join(["YEAR,WGMS_ID,ANNUAL_BALANCE", *rows]) + "\n")
    links = links or ["RGI60-11.00001,A,0001", "RGI60-11.00002,B,0002"]
    (d / "00_rgi60_links.csv").write_text("\n".join(["Two lines of", "description",
                                                      "RGIId,Name,FoGId", *links]) + "\n")
    return d


def three_glaciers(d: Path) -> Path:
    """Glaciers 1..3, AAR 0 / 100 % with balances 0/1, 1/2, 2/3 m w.e. (see the
    regression tests for the answers), plus the cases the readers must report."""
    ov = ['"CH","GLACIER Ä",1,2001,"",3000,0', '"CH","GLACIER Ä",1,2002,"",2800,100',
          '"CH","B",2,2001,"",3100,0', '"CH","B",2,2002,"",2900,100',
          '"AT","C",3,2001,">",3400,0', '"AT","C",3,2002,"",3000,100',
          '"AT","C",3,2003,"",3000,50',      # no balance that year -> reported
          '"AT","C",3,2004,"",,']            # neither AAR nor ELA -> nothing to report
    mb = {1: ["2001,1,0", "2002,1,1000"], 2: ["2001,2,1000", "2002,2,2000"],
          3: ["2001,3,2000", "2002,3,3000", "2005,3,"]}  # 2005: no balance -> reported
    return write_wgms(d, ov, mb)


def test_glacier_years_units_links_and_dropped(tmp_path):
    t, dropped = glacier_years(three_glaciers(tmp_path))
    assert len(t) == 6
    assert t["balance_mwe"].tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 3.0]  # mm -> m w.e.
    assert t["aar"].tolist() == [0.0, 1.0] * 3  # % -> fraction
    assert t.loc[0, "name"] == "GLACIER Ä"  # latin-1 read as such
    # RGI ids from 00_rgi60_links.csv, glacier 3 from the FoG lookup
    assert t["RGIId"].unique().tolist() == ["RGI60-11.00001", "RGI60-11.00002", "RGI60-11.00003"]
    assert np.isnan(t.loc[4, "ela_m"]) and t.loc[5, "ela_m"] == 3000  # '>' bound not used
    why = dict(zip(dropped["what"], dropped["reason"], strict=True))
    assert "bound" in why["WGMS 3 2001 ELA > 3400 m"]
    assert why["WGMS 3 2003 AAR/ELA"].startswith("no annual balance")
    assert why["WGMS 3 2005"] == "no annual balance"
    assert len(dropped) == 3
    rows = dict(zip(dropped["what"], dropped["row"], strict=True))
    assert rows["WGMS 3 2001 ELA > 3400 m"] == 6  # header is row 1
    assert rows["WGMS 3 2005"] == 4


def test_real_ceiling_on_the_hand_made_folder(tmp_path):
    (aar, ela), _ = real_ceiling(three_glaciers(tmp_path), min_years=2)
    s = aar.scores.loc["pooled_logo"]
    assert s["n"] == 6 and s["rmse_mwe"] == pytest.approx(np.sqrt(1.5))
    assert s["bias_mwe"] == pytest.approx(0.0, abs=1e-12)
    # ELA: glacier 3 keeps one year (2001 was a bound) -> 5 glacier-years, and glaciers
    # 1 and 2 each have a perfect own line through two points... with 2 years only
    # min_years=2 < k + 2 = 3, so there is no glacier-specific model
    assert ela.scores.loc["pooled_logo", "n"] == 5
    assert ela.scores.loc["specific_loyo", "n"] == 0


@pytest.mark.parametrize("case, message", [
    ("dup", "duplicated glacier-year .*rows? 2.*row 3"),
    ("nonnumeric", "row 3: AAR is not a number \\('lots'\\)"),
    ("range", "row 2: AAR 140 % is outside 0..100"),
    ("column", "missing column\\(s\\) ANNUAL_BALANCE"),
    ("mbdup", "duplicated glacier-year"),
    ("links", "duplicated RGI id"),
])
def test_bad_records_name_the_file_and_row(tmp_path, case, message):
    ov = ['"CH","A",1,2001,"",3000,10', '"CH","A",1,2002,"",3000,20']
    mb = {1: ["2001,1,0", "2002,1,100"]}
    links = None
    if case == "dup":
        ov[1] = ov[0]
    elif case == "nonnumeric":
        ov[1] = '"CH","A",1,2002,"",3000,lots'
    elif case == "range":
        ov[0] = '"CH","A",1,2001,"",3000,140'
    elif case == "mbdup":
        mb[2] = ["2001,1,5"]
    elif case == "links":
        links = ["RGI60-11.00001,A,0001", "RGI60-11.00001,B,0002"]
    d = write_wgms(tmp_path, ov, mb, links)
    if case == "column":
        (d / "mbdata" / "mbdata_WGMS-00001.csv").write_text("YEAR,WGMS_ID,BALANCE\n2001,1,0\n")
    with pytest.raises(MassBalanceError, match=message) as e:
        glacier_years(d)
    assert ".csv" in str(e.value)  # the file is named


@pytest.fixture(scope="module")
def real_wgms(shared_dir):
    """(folder, glacier_years table, dropped) of the real WGMS files in ../shared."""
    wgms = shared_dir / "data" / "wgms"
    if not wgms.exists():
        pytest.skip(f"{wgms} is absent")
    return (wgms, *glacier_years(wgms))


def test_real_wgms_files(real_wgms):
    wgms, t, dropped = real_wgms
    # every mbdata glacier-year with a balance; balances in m w.e., AAR as a fraction
    assert len(t) == 6537 and t["WGMS_ID"].nunique() == 290
    assert t["aar"].between(0, 1).sum() == 4786
    assert -6 < t["balance_mwe"].min() and t["balance_mwe"].max() < 5
    counts = dropped["reason"].str.split(" ").str[:3].str.join(" ").value_counts()
    assert counts.to_dict() == {"ELA given only": 567, "no annual balance": 516 + 27,
                                "no RGI 6.0": 88}
    links = rgi_links(wgms)
    assert links.set_index("RGIId").loc["RGI60-11.00897", "WGMS_ID"] == 491  # Hintereisferner


def test_committed_demo_years_are_the_real_records(real_wgms):
    from utils.massbalance.demo import choose_demo_years, load_demo_years

    pd.testing.assert_frame_equal(load_demo_years(), choose_demo_years(real_wgms[1]),
                                  check_dtype=False)
