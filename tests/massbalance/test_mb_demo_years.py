"""End-of-season demo scenes of real glacier-years: true AAR as requested; mapped with
apply.py's code path; series and regressions on the mapped statistics CSVs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio

from utils.demo.acquisition import end_of_season_classes, surface_classes
from utils.demo.world import REGIONS, make_scene
from utils.demo.years import true_aar
from utils.massbalance.demo import load_demo_years, map_demo_years, run_demo
from utils.study import CLASS_INDEX, FEATURES

GREEN_SNOW = 0.6  # reflectance: the hand-made model's snow / ice threshold
REFL_MAX = 1.6  # the hand-made statistics' reflectance maximum


def threshold_model(path, stats_path):
    """The study's CNN with hand-set weights: snow where the centre pixel's green
    reflectance exceeds GREEN_SNOW, else ice (never shadow or cloud); and its min-max
    statistics (reflectance 0..REFL_MAX)."""
    import keras

    from utils.model import build_cnn_model, save_weights
    from utils.normalisation import Stats, save_stats

    n_f = len(FEATURES)
    model = build_cnn_model(n_f)
    convs = [la for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    for i, conv in enumerate(convs):  # stage 1 passes the features through, stage 2 gives 0
        k, b = (np.zeros(w.shape, np.float32) for w in conv.get_weights())
        if i < 3:
            k[1, 1, np.arange(n_f), np.arange(n_f)] = 1.0
        conv.set_weights([k, b])
    for bn in (la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)):
        bn.set_weights([np.ones(bn.gamma.shape), np.zeros(bn.gamma.shape),
                        np.zeros(bn.gamma.shape), np.ones(bn.gamma.shape)])
    d1, d2, d3 = (la for la in model.layers if isinstance(la, keras.layers.Dense))
    k1 = np.zeros(d1.kernel.shape)
    k1[FEATURES.index("green"), 0] = 1.0  # c1 (the centre cell) comes first
    k2 = np.zeros(d2.kernel.shape)
    k2[0, 0] = 1.0
    k3, b3 = np.zeros(d3.kernel.shape), np.full(d3.bias.shape, -20.0)
    k3[0, CLASS_INDEX["snow"]] = 200.0
    b3[CLASS_INDEX["snow"]] = -200.0 * GREEN_SNOW / REFL_MAX
    b3[CLASS_INDEX["ice"]] = 0.0
    for layer, k, b in ((d1, k1, np.zeros(d1.bias.shape)), (d2, k2, np.zeros(d2.bias.shape)),
                        (d3, k3, b3)):
        layer.set_weights([k, b])
    save_weights(model, path)
    hi = [REFL_MAX] * 6 + [1.0, 90.0, 1.0, 1.0, 1.0]
    save_stats(Stats(np.zeros(n_f), np.array(hi)), stats_path)
    return path, stats_path


def test_end_of_season_classes_give_the_requested_aar():
    scene = make_scene(np.random.default_rng(5), "t", REGIONS["alps"], 1, 128, 3, 1)
    for aars in ([0.0, 0.37, 1.0], [0.01, 0.5, 0.78]):
        cls, lines = end_of_season_classes(scene, aars)
        got = true_aar(scene, cls)
        tol = [0.5 / g.mask.sum() + 1e-12 for g in scene.glaciers]
        assert np.all(np.abs(got - aars) <= tol), (got, aars)
        ice = scene.labels > 0
        assert not (cls[ice] == CLASS_INDEX["firn"]).any()  # no firn below this year's snow
        assert lines.shape == (3,) and np.isfinite(lines).all()
    with pytest.raises(ValueError, match="not a fraction"):
        end_of_season_classes(scene, [0.2, 1.2, 0.3])
    # the summer scenes' transient snow line: firn below it adds to the accumulation area
    cls, snow_line, firn_line = surface_classes(scene, 0.2)
    assert firn_line < snow_line and true_aar(scene, cls).mean() > 0.3


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """Three demo glaciers x five real years, rendered and mapped with the threshold model."""
    d = tmp_path_factory.mktemp("mb_years")
    years = load_demo_years()
    years = years[years["WGMS_ID"].isin([491, 507, 573]) & (years["year"] >= 2016)]
    years = years[~((years["WGMS_ID"] == 507) & (years["year"] == 2018))]  # a missing record
    model, stats = threshold_model(d / "snowice_weights.h5", d / "stats.json")
    # the threshold model reads only the centre pixel: the fast approximate engine gives
    # exactly the study's labels for it
    csvs = map_demo_years(d, model, stats, years=years, engine="dense-approx", progress=False)
    return d, years, csvs, run_demo(d, stats_csvs=csvs, years=years)


def test_year_scenes_have_the_real_aar_and_are_mapped(mapped):
    d, years, csvs, _ = mapped
    assert [p.name for p in csvs] == [f"S2_{y}0905.csv" for y in range(2016, 2021)]
    for p in csvs:
        folder = d / "massbalance" / "scenes" / f"mbalps_{p.stem[3:]}"
        meta = json.loads((folder / "scene.json").read_text())
        with rasterio.open(folder / "truth.tif") as src:
            assert src.crs.to_epsg() == 32632
        for g in meta["glaciers"]:
            real = years[(years["RGIId"] == g["RGIId"]) & (years["year"] == int(p.stem[3:7]))]
            if real.empty:  # no record: the glacier's median AAR, no balance
                median = years.loc[years["RGIId"] == g["RGIId"], "aar"].median()
                assert g["aar_requested"] == median and g["balance_mwe"] is None
            else:
                assert g["aar_requested"] == pytest.approx(real["aar"].item())
                assert g["balance_mwe"] == pytest.approx(real["balance_mwe"].item())
            assert g["aar_true"] == pytest.approx(g["aar_requested"], abs=5e-4)
        stats = pd.read_csv(p)
        assert sorted(stats["RGIId"]) == sorted(g["RGIId"] for g in meta["glaciers"])
        with rasterio.open(d / "massbalance" / "maps" / f"{folder.name}_facies.tif") as src:
            classes = set(np.unique(src.read(1))) - {src.nodata}
        assert classes <= {CLASS_INDEX["snow"], CLASS_INDEX["ice"]}


def test_series_and_regressions_run_on_the_mapped_csvs(mapped):
    d, years, _, out = mapped
    assert out["mapped_with"] == "given statistics CSVs"
    # never cloud or shadow: every year observed; the year without a record is reported
    assert out["glaciers"] == 3 and out["glacier_years"] == 14
    dropped = pd.read_csv(d / "massbalance" / "dropped.csv")
    assert dropped["what"].tolist() == ["RGI60-11.00787 2018"]
    assert "no WGMS annual balance" in dropped["reason"].item()
    for key in ("mapped_pooled_logo_r", "true_specific_loyo_r", "ratio_pooled_logo_r"):
        assert np.isfinite(out[key])
    eos = pd.read_csv(d / "massbalance" / "end_of_season.csv")
    t = eos.merge(years, on=["RGIId", "year"], suffixes=("_mapped", "_true"))
    assert len(t) == 14 and (t["date"].str.endswith("-09-05")).all()
    # green > 0.6 finds the sunlit snow: the mapped AAR follows the true one
    assert np.corrcoef(t["aar_mapped"], t["aar_true"])[0, 1] > 0.8
