"""The notebook headless on a made-up WGMS folder, the CLI on its outputs, and the demo."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import massbalance
from utils.massbalance import run_demo
from utils.massbalance.demo import load_demo_years

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """mass_balance.ipynb run headless with wgms_dir=None (a made-up WGMS folder)."""
    import papermill

    out = tmp_path_factory.mktemp("mb_nb")
    papermill.execute_notebook(str(ROOT / "mass_balance.ipynb"), str(out / "run.ipynb"),
                               parameters={"wgms_dir": None, "results_dir": str(out / "res")},
                               cwd=str(ROOT), progress_bar=False, kernel_name="python3")
    return out


def test_notebook_prints_ceiling_and_ratio(tiny_run):
    res = tiny_run / "res"
    sc = pd.read_csv(res / "ceiling_scores.csv").set_index(["predictor", "scheme"])
    assert sc.loc[("aar", "pooled_logo"), "n"] == 39  # 40 made-up years, one without balance
    assert sc.loc[("aar", "pooled_logo"), "r"] > 0.9  # balance = 2.5 AAR - 1.3 + noise
    assert sc.loc[("ela_m", "pooled_logo"), "n"] == 38  # one ELA is a bound
    text = "".join(o.get("text", "") for c in nbformat.read(tiny_run / "run.ipynb", 4).cells
                   if c.cell_type == "code" for o in c.outputs)
    assert "pooled_logo: r with the mapped AAR" in text and "ratio 1.000" in text
    for fig in ("ceiling_scatter", "series", "facies_scatter"):
        assert (res / f"{fig}.png").stat().st_size > 10_000


def test_cli_series_and_regress(tiny_run, tmp_path, capsys):
    res = tiny_run / "res"
    stats = sorted(str(p) for p in (res / "demo_stats").glob("*.csv"))
    series, eos = tmp_path / "series.csv", tmp_path / "eos.csv"
    assert massbalance.main(["series", *stats, "--out", str(series), "--eos", str(eos)]) == 0
    e = pd.read_csv(eos)
    assert len(e) == 39 and e["well_observed"].all()
    assert (tmp_path / "series_dropped.csv").exists()
    # no clobber without --overwrite: exit 2, one line naming the file
    capsys.readouterr()
    assert massbalance.main(["series", *stats, "--out", str(series), "--eos", str(eos)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "series.csv" in err[0] and "exists" in err[0]
    out = tmp_path / "reg"
    out.mkdir()
    assert massbalance.main(["regress", str(eos), "--wgms", str(res / "tiny_wgms"),
                             "--out", str(out)]) == 0
    sc = pd.read_csv(out / "scores.csv").set_index(["predictors", "scheme"])
    assert sc.loc[("aar", "pooled_logo"), "n"] == 39
    assert (out / "facies_aar_pooled_logo.pdf").exists()


def test_cli_input_errors_exit_2(tmp_path, capsys):
    p = tmp_path / "hef_stats.csv"
    p.write_text("RGIId,aar\nG1,0.5\n")
    assert massbalance.main(["series", str(p), "--out", str(tmp_path / "s.csv"),
                             "--eos", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err
    assert "hef_stats.csv: no date" in err and "Traceback" not in err
    assert not (tmp_path / "s.csv").exists()
    assert massbalance.main(["ceiling", "--wgms", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "OVERVIEW.csv: no such file" in capsys.readouterr().err


def test_demo_mapped_vs_true(tmp_path):
    years = load_demo_years()
    years = years.groupby("WGMS_ID").tail(6)
    out = run_demo(tmp_path, years=years)
    assert out["glacier_years"] == len(years) == 24
    # the stand-in maps place the snow line at the true AAR: equal up to pixel rounding
    assert out["aar_mae"] < 0.005
    assert out["ratio_pooled_logo_r"] == pytest.approx(1.0, abs=0.01)
    assert out["mapped_pooled_logo_r"] > 0.5
    json.dumps(out)
    eos = pd.read_csv(tmp_path / "massbalance" / "end_of_season.csv")
    assert (eos["date"].str.endswith("-09-05")).all()  # not July, not the clouded scene
