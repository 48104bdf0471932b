"""apply.py end to end: outputs, engines, every bad input (exit 2, one line, nothing left)."""


from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from mapscene import (
    CRS,
    ND,
    RES,
    ROOT,
    H,
    T,
    W,
    base_argv,
    dem_surface,
    from_origin,
    reference,
    run_apply,
    write_raster,
)
from rasterio.features import rasterize
from rasterio.windows import Window
from shapely.geometry import box

import apply
from utils.inference.patch import patch_probs
from utils.mapping import pipeline as mapping
from utils.mapping.legend import read_class_names
from utils.mapping.smoothing import mode_filter_3x3
from utils.normalisation import Stats, save_stats
from utils.study import CLASSES, FEATURES, HALF

# ----------------------------------------------------------------------------- end to end


def test_end_to_end_outputs(scene, weights, tmp_path, capsys):
    out = tmp_path / "facies.tif"
    conf, png, csv = tmp_path / "conf.tif", tmp_path / "quick.png", tmp_path / "stats.csv"
    code, err = run_apply(base_argv(scene, weights, out) + [
        "--confidence_path", conf, "--quicklook", png, "--stats_csv", csv,
        "--block_rows", 16], capsys)
    assert code == 0, err
    with rasterio.open(scene.optical) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.transform == src.transform
        assert dst.shape == src.shape and dst.dtypes[0] == "int16" and dst.nodata == ND
        classes = dst.read(1)
        cmap = dst.colormap(1)
    assert read_class_names(out) == list(CLASSES)
    assert cmap[1][:3] == (255, 255, 255)  # snow is white
    assert np.all(classes[~scene.mask] == ND)
    assert np.all((classes[scene.mask] >= 0) & (classes[scene.mask] < 8))
    # edge pixels (row 0, last column) are classified
    assert np.all(classes[0, 2:16] != ND) and np.all(classes[24:34, W - 1] != ND)
    with rasterio.open(conf) as src:
        c = src.read(1)
        assert src.dtypes[0] == "float32" and src.transform == T
    assert np.all(c[~scene.mask] == src.nodata)
    assert np.all((c[scene.mask] >= 0) & (c[scene.mask] <= 1))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(csv)
    assert list(table["RGIId"]) == ["RGI60-11.00001", "RGI60-11.00002"]
    areas = table[[f"area_{n}_km2" for n in CLASSES]].sum(axis=1) + table["unclassified_km2"]
    np.testing.assert_allclose(areas, table["glacier_area_km2"], rtol=1e-9)
    assert table["glacier_area_km2"].sum() == pytest.approx(280 * RES * RES / 1e6)
    assert "sla_m" in table and "mean_confidence" in table
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["facies.tif", "facies.tif.aux.xml", "facies.qml", "conf.tif", "quick.png",
         "stats.csv"])


def test_windowed_run_equals_full_scene_reference(scene, weights, tmp_path, capsys):
    """Unsmoothed output of 8-row blocks == full-scene features + engine; smoothing = mode."""
    from utils.model import load_model

    out, conf = tmp_path / "raw.tif", tmp_path / "conf.tif"
    code, err = run_apply(base_argv(scene, weights, out) + ["--no_smoothing", "--block_rows", 8,
                                                   "--confidence_path", conf], capsys)
    assert code == 0, err
    model = load_model(weights / "rand11_weights.h5")
    _, padded, valid = reference(scene, model)
    rr, cc = np.nonzero(valid)
    probs = patch_probs(model, padded, rr, cc, batch_size=64)
    with rasterio.open(out) as src:
        got = src.read(1)
    with rasterio.open(conf) as src:
        got_conf = src.read(1)
    top2 = np.sort(probs, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    np.testing.assert_array_equal(got[rr, cc][clear], np.argmax(probs, axis=1)[clear])
    np.testing.assert_allclose(got_conf[rr, cc], probs.max(axis=1), atol=1e-5)
    # the smoothed map is the 3x3 mode of the raw one
    smooth = tmp_path / "smooth.tif"
    code, err = run_apply(base_argv(scene, weights, smooth) + ["--block_rows", 8], capsys)
    assert code == 0, err
    with rasterio.open(smooth) as src:
        np.testing.assert_array_equal(src.read(1), mode_filter_3x3(got))


def test_default_engine_gives_the_patch_engines_map(scene, weights, tmp_path, capsys):
    """The default engine (dense) and --engine patch (the study's method): same map."""
    maps = {}
    for name, extra in (("default", []), ("patch", ["--engine", "patch"])):
        out, conf = tmp_path / f"{name}.tif", tmp_path / f"{name}_conf.tif"
        code, err = run_apply(base_argv(scene, weights, out) + ["--confidence_path", conf] + extra,
                         capsys)
        assert code == 0, err
        with rasterio.open(out) as a, rasterio.open(conf) as b:
            maps[name] = (a.read(1), b.read(1))
    assert apply.build_parser().get_default("engine") == "dense"
    np.testing.assert_array_equal(maps["default"][0], maps["patch"][0])
    np.testing.assert_allclose(maps["default"][1], maps["patch"][1], atol=1e-5)
    assert (maps["patch"][0] != ND).sum() == scene.mask.sum()


def test_nodata_pixels_are_not_classified(scene, weights, tmp_path, capsys):
    with rasterio.open(scene.optical) as src:
        opt = src.read()
    opt[2, 5, 6] = np.nan  # red missing at a glacier pixel
    optical = write_raster(tmp_path / "optical_nan.tif", opt)
    dem = dem_surface()
    dem[28, 35] = -32768  # DEM nodata value inside glacier B
    dem_path = write_raster(tmp_path / "dem_nd.tif", dem, nodata=-32768)
    out = tmp_path / "out.tif"
    argv = base_argv(scene, weights, out, derive=True)
    argv[1] = optical
    argv[argv.index("--dem_path") + 1] = dem_path
    code, err = run_apply(argv + ["--no_smoothing"], capsys)
    assert code == 0, err
    with rasterio.open(out) as src:
        classes = src.read(1)
    assert classes[5, 6] == ND
    assert np.all(classes[27:30, 34:37] == ND)  # slope/hillshade need the 3x3 neighbours
    assert (classes[scene.mask] != ND).sum() == 280 - 1 - 9


def test_feature_raster_on_other_grid_needs_resample(scene, weights, tmp_path, capsys):
    shifted = write_raster(tmp_path / "dem_shift.tif", dem_surface(), transform=from_origin(
        600005.0, 5100000.0, RES, RES))
    out = tmp_path / "out.tif"
    argv = base_argv(scene, weights, out)
    argv[argv.index("--dem_path") + 1] = shifted
    code, err = run_apply(argv, capsys)
    assert code == 2 and "dem_shift.tif" in err and "--resample" in err
    assert not out.exists()
    code, err = run_apply(argv + ["--resample"], capsys)
    assert code == 0, err
    assert "warped onto the scene grid" in err
    with rasterio.open(out) as src:
        assert src.transform == T and src.crs.to_string() == CRS
        classes = src.read(1)
    # the last column has no DEM after the 5 m shift's bilinear edge -> unclassified there
    assert (classes[scene.mask] != ND).sum() > 200


def test_calibrated_confidence_without_confidence_path(scene, weights, tmp_path, capsys):
    """The study defined confidence only with --confidence_path; here it always exists."""
    from utils.calibration import TemperatureCalibrator, save_calibrator

    cal = save_calibrator(TemperatureCalibrator(2.0), tmp_path / "cal.json")
    csv = tmp_path / "stats.csv"
    argv = ["rand6", scene.optical, tmp_path / "out.tif", scene.outlines, "--weights_dir",
            weights, "--stats", scene.stats, "--calibration_model", cal, "--stats_csv", csv,
            "--dem_path", scene.dem]
    code, err = run_apply(argv, capsys)
    assert code == 0, err
    table = pd.read_csv(csv)
    assert table["mean_confidence"].between(0, 1).all()
    assert table["sla_m"].notna().any() or table["aar"].isin([0, 1]).any()


def test_late_failure_leaves_no_output(scene, weights, tmp_path, capsys, monkeypatch):
    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mapping, "write_float_map", boom)
    out = tmp_path / "out.tif"
    with pytest.raises(OSError):
        apply.main([str(a) for a in base_argv(scene, weights, out, model="rand6")]
                   + ["--confidence_path", str(tmp_path / "c.tif"), "--quiet"])
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- bad inputs


def _bad_cases(scene, weights, d: Path) -> dict[str, tuple[list, str]]:
    """name -> (argv, text the error must contain); every case exits 2."""
    out = d / "out" / "facies.tif"
    base = base_argv(scene, weights, out)
    with rasterio.open(scene.optical) as src:
        three = write_raster(d / "three.tif", src.read()[:3])
        dn = write_raster(d / "dn.tif", (src.read() * 255).astype(np.uint8), nodata=None)
    flat = json.loads(scene.stats.read_text())
    flat["max"][FEATURES.index("hillshade")] = flat["min"][FEATURES.index("hillshade")]
    (d / "flat_stats.json").write_text(json.dumps(flat))
    (d / "junk.tif").write_text("not a raster")
    (d / "junk.geojson").write_text("{not json")
    (d / "junk_weights.h5").write_text("not hdf5")
    (d / "junk_stats.json").write_text('{"min": [0]}')
    (d / "junk_cal.json").write_text('{"kind": "nope"}')
    far = gpd.GeoDataFrame({"RGIId": ["x"]}, geometry=[box(0, 0, 1000, 1000)], crs=CRS)
    far.to_file(d / "far.gpkg")
    with rasterio.open(scene.dem) as src:
        from rasterio.warp import calculate_default_transform, reproject

        tr, w, h = calculate_default_transform(src.crs, "EPSG:32631", W, H, *src.bounds)
        other = np.zeros((h, w), np.float32)
        reproject(src.read(1), other, src_transform=T, src_crs=src.crs, dst_transform=tr,
                  dst_crs="EPSG:32631")
    other_crs = write_raster(d / "dem_32631.tif", other, crs="EPSG:32631", transform=tr)
    existing = d / "out" / "exists.tif"

    def swap(argv, flag, value):
        argv = list(argv)
        argv[argv.index(flag) + 1] = value
        return argv

    def pos(argv, i, value):
        argv = list(argv)
        argv[i] = value
        return argv

    no_derive = base_argv(scene, weights, out, derive=False)
    return {
        "raster_bands": (pos(base, 1, three), "three.tif: RASTER has 3 band"),
        "raster_missing": (pos(base, 1, d / "nope.tif"), "nope.tif: RASTER"),
        "raster_junk": (pos(base, 1, d / "junk.tif"), "junk.tif"),
        "outlines_missing": (pos(base, 3, d / "nope.gpkg"), "nope.gpkg: OUTLINES file not"),
        "outlines_junk": (pos(base, 3, d / "junk.geojson"), "junk.geojson: cannot read"),
        "outlines_disjoint": (pos(base, 3, d / "far.gpkg"), "far.gpkg: no outline intersects"),
        "dem_missing": (swap(base, "--dem_path", d / "nodem.tif"), "nodem.tif: DEM not found"),
        "dem_other_crs": (swap(base, "--dem_path", other_crs), "dem_32631.tif: DEM is not on"),
        "weights_missing": (pos(base, 0, "nomodel"), "nomodel_weights.h5: weights file not"),
        "weights_junk": (pos(base, 0, d / "junk_weights.h5"), "junk_weights.h5"),
        "weights_6_given_slope": (["rand6"] + base[1:] + ["--slope_path", scene.dem],
                                  "rand6_weights.h5: the model expects 6 features"),
        "weights_11_no_dem": (base[:8], "expects 11 features"),
        "shadow_without_hillshade": (no_derive + ["--slope_path", scene.dem, "--shadow_path",
                                                  scene.dem, "--proximity_path", scene.dem],
                                     "--hillshade_path is missing"),
        "derive_without_sun": (no_derive + ["--derive_features"], "--sun_azimuth"),
        "stats_missing": (base[:5] + base[7:], "python -m utils.data stats"),
        "stats_junk": (swap(base, "--stats", d / "junk_stats.json"), "junk_stats.json"),
        "calibration_junk": (base + ["--calibration_model", d / "junk_cal.json"],
                             "junk_cal.json"),
        "output_exists": (pos(base, 2, existing), "exists.tif: OUTPUT exists; pass --overwrite"),
        "output_folder_missing": (pos(base, 2, d / "missing" / "x.tif"), "does not exist"),
        "confidence_is_output": (base + ["--confidence_path", out], "same file"),
        "output_is_input": (pos(base, 2, scene.dem) + ["--overwrite"],
                            "dem.tif: OUTPUT would overwrite an input file"),
        "raster_digital_numbers": (pos(base, 1, dn), "dn.tif: optical values inside the "
                                   "glaciers are far outside the range"),
        "stats_min_equals_max": (swap(base, "--stats", d / "flat_stats.json"),
                                 "flat_stats.json: feature hillshade: min == max"),
        "output_name_too_long": (pos(base, 2, d / "out" / ("f" * 245 + ".tif")),
                                 "OUTPUT file name is too long"),
        "sun_below_horizon": (swap(base, "--sun_elevation", "0"),
                              "--sun_elevation 0 degrees is not above the horizon"),
    }


BAD = ["raster_bands", "raster_missing", "raster_junk", "outlines_missing", "outlines_junk",
       "outlines_disjoint", "dem_missing", "dem_other_crs", "weights_missing", "weights_junk",
       "weights_6_given_slope", "weights_11_no_dem", "shadow_without_hillshade",
       "derive_without_sun", "stats_missing", "stats_junk", "calibration_junk",
       "output_exists", "output_folder_missing", "confidence_is_output", "output_is_input",
       "raster_digital_numbers", "stats_min_equals_max", "output_name_too_long",
       "sun_below_horizon"]


@pytest.fixture(scope="module")
def bad_dir(scene, weights, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "out").mkdir()
    return d, _bad_cases(scene, weights, d)


@pytest.mark.parametrize("case", BAD)
def test_bad_input_exits_2_naming_the_problem(case, bad_dir, capsys):
    d, cases = bad_dir
    existing = d / "out" / "exists.tif"
    existing.write_bytes(b"keep me")
    argv, text = cases[case]
    code, err = run_apply(argv, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("apply.py: error: "), err
    assert text in lines[0], lines[0]
    assert sorted(p.name for p in (d / "out").iterdir()) == ["exists.tif"]
    assert existing.read_bytes() == b"keep me"


def test_negative_sun_elevation_is_a_usage_error(scene, weights, tmp_path, capsys):
    """The sun below the horizon is refused by the command line (the library: test_pipeline)."""
    argv = base_argv(scene, weights, tmp_path / "o.tif")
    argv[argv.index("--sun_elevation") + 1] = "-5"
    code, err = run_apply(argv, capsys)
    assert code == 2 and "--sun_elevation: -5.0 is outside 0..90 degrees" in err
    assert list(tmp_path.iterdir()) == []


def test_unused_calibrator_is_said(scene, weights, tmp_path, capsys):
    from utils.calibration import TemperatureCalibrator, save_calibrator

    cal = save_calibrator(TemperatureCalibrator(2.0), tmp_path / "cal.json")
    argv = base_argv(scene, weights, tmp_path / "o.tif", model="rand6") + [
        "--calibration_model", cal]
    code, err = run_apply(argv, capsys)
    assert code == 0, err
    assert "cal.json: the calibrator is unused" in err


def test_derive_features_needs_projected_crs(bad_dir, weights, scene, tmp_path, capsys):
    geo = write_raster(tmp_path / "geo.tif", np.ones((6, 40, 40), np.float32), crs="EPSG:4326",
                 transform=from_origin(9.0, 46.0, 0.001, 0.001))
    write_raster(tmp_path / "geo_dem.tif", np.ones((40, 40), np.float32), crs="EPSG:4326",
           transform=from_origin(9.0, 46.0, 0.001, 0.001))
    gpd.GeoDataFrame({"id": [1]}, geometry=[box(9.005, 45.97, 9.02, 45.99)],
                     crs=4326).to_file(tmp_path / "o.gpkg")
    code, err = run_apply(["rand11", geo, tmp_path / "o.tif", tmp_path / "o.gpkg", "--weights_dir",
                      weights, "--stats", scene.stats, "--dem_path", tmp_path / "geo_dem.tif",
                      "--derive_features", "--sun_azimuth", 150, "--sun_elevation", 30], capsys)
    assert code == 2 and "projected" in err and "EPSG:4326" in err
    assert not (tmp_path / "o.tif").exists()


def test_unwritable_output_folder(scene, weights, tmp_path, capsys, monkeypatch):
    import utils.files

    real = utils.files.os.access
    monkeypatch.setattr(utils.files.os, "access",
                        lambda p, m: False if Path(p) == tmp_path else real(p, m))
    code, err = run_apply(base_argv(scene, weights, tmp_path / "out.tif"), capsys)
    assert code == 2 and f"{tmp_path} of OUTPUT is not writable" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_subprocess_exit_code_and_help(scene, weights, tmp_path):
    """The real command line: exit status 2, one line, no traceback; --help documents."""
    bad = write_raster(tmp_path / "two.tif", np.zeros((2, 5, 5), np.float32))
    r = subprocess.run([sys.executable, str(ROOT / "apply.py"), str(weights / "rand6_weights.h5"),
                        str(bad),
                        str(tmp_path / "o.tif"), str(scene.outlines), "--stats",
                        str(scene.stats)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"apply.py: error: {bad}: RASTER has 2 band(s); expected 6 bands in the order "
        "blue, green, red, nir, swir1, swir2"]
    assert not (tmp_path / "o.tif").exists()
    r = subprocess.run([sys.executable, str(ROOT / "apply.py"), "--help"], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0
    for text in ("reflect", "degrees clockwise from north", "--resample", "--stats_csv"):
        assert text in r.stdout


# ----------------------------------------------------------------------------- real data


def test_real_landsat_scene_plumbing(shared_dir, reference_dir, tmp_path, capsys):
    """Landsat 7 Khumbu: RGB + NIR (+ 2 zero SWIR) with the published optical model."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    data = shared_dir / "data" / "landsat7_everest"
    win = Window(220, 166, 80, 64)  # col_off, row_off, width, height
    with rasterio.open(data / "LE71400412000304SGS00_RGB.TIF") as src:
        rgb = src.read(window=win).astype(np.float32)
        tr = src.window_transform(win)
        crs = src.crs
    with rasterio.open(data / "LE71400412000304SGS00_B4_crop.TIF") as src, WarpedVRT(
            src, crs=crs, transform=tr, width=win.width, height=win.height,
            resampling=Resampling.bilinear) as vrt:
        nir = vrt.read(1).astype(np.float32)
    stack = np.concatenate([rgb, nir[None], np.zeros((2, win.height, win.width), np.float32)])
    raster = write_raster(tmp_path / "khumbu6.tif", stack, crs=crs, transform=tr, nodata=None)
    mins, maxs = [0.0] * 11, [255.0] * 4 + [1.0] * 7
    save_stats(Stats(np.array(mins), np.array(maxs)), tmp_path / "stats.json")
    weights = reference_dir / "weights" / "1" / "0_cnn_afterconfidentlearning_weights.h5"
    outlines = data / "glacier_outlines.gpkg"
    crop2 = data / "LE71400412000304SGS00_B4_crop2.TIF"  # another grid: as a stand-in "DEM"
    out, csv = tmp_path / "khumbu_facies.tif", tmp_path / "khumbu.csv"
    argv = [weights, raster, out, outlines, "--stats", tmp_path / "stats.json",
            "--dem_path", crop2, "--stats_csv", csv]
    code, err = run_apply(argv, capsys)
    assert code == 2 and "B4_crop2.TIF: DEM is not on the grid" in err
    code, err = run_apply(argv + ["--resample"], capsys)
    assert code == 0, err
    # reference mask: outlines reprojected from EPSG:4326, pixel centres inside
    gdf = gpd.read_file(outlines).to_crs(crs)
    mask = rasterize([(g, 1) for g in gdf.geometry], out_shape=(win.height, win.width),
                     transform=tr).astype(bool)
    assert 0 < mask.sum() < mask.size
    with rasterio.open(out) as src:
        assert src.crs == crs and src.transform == tr and src.shape == mask.shape
        classes = src.read(1)
    np.testing.assert_array_equal(classes != ND, mask)  # every glacier pixel, edges included
    edge = np.zeros_like(mask)
    edge[:HALF], edge[-HALF:], edge[:, :HALF], edge[:, -HALF:] = True, True, True, True
    assert (mask & edge).sum() > 100
    table = pd.read_csv(csv)
    inside = table[table["glacier_area_km2"] > 0]
    assert inside["glacier_area_km2"].sum() == pytest.approx(mask.sum() * 900 / 1e6)
    assert table["RGIId"].str.startswith("RGI60-15.").all()
    assert json.dumps(list(table.columns))  # serialisable header


@pytest.mark.parametrize("kind", ["kernel_ridge", "temperature", "isotonic", "study_pickle"])
def test_every_calibrator_kind_is_accepted(kind, scene, weights, tmp_path, capsys, request):
    """apply.py takes our three portable calibrators and the study's sklearn pickle."""
    import utils.calibration as calibration

    if kind == "study_pickle":
        reference_dir = request.getfixturevalue("reference_dir")
        cal = reference_dir / "confidence_calibration_models" / "0_calibration_model.pickle"
    else:
        rng = np.random.default_rng(0)
        probs = rng.dirichlet(np.full(8, 0.3), size=500)
        labels = np.where(rng.random(500) < 0.6, probs.argmax(1), rng.integers(0, 8, 500))
        cal = calibration.save_calibrator(
            calibration.fit_calibrator(kind, probs, labels), tmp_path / f"{kind}.json")
    conf_path = tmp_path / "conf.tif"
    argv = ["rand6", scene.optical, tmp_path / "out.tif", scene.outlines, "--weights_dir",
            weights, "--stats", scene.stats, "--calibration_model", cal,
            "--confidence_path", conf_path]
    code, err = run_apply(argv, capsys)
    assert code == 0, err
    with rasterio.open(conf_path) as src:
        conf = src.read(1)
        nodata = src.nodata
    inside = conf[scene.mask]
    assert np.all((inside >= 0) & (inside <= 1))
    assert np.all(conf[~scene.mask] == nodata)
