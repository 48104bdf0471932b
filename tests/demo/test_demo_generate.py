"""Tests of utils.demo.generate on the ``tiny`` size (generated once per module)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from utils import terrain as feat
from utils.demo import generate as demo_data
from utils.normalisation import load_stats
from utils.study import CLASS_INDEX, CLASSES, FACIES_CLASSES, FEATURES, N_FEATURES, OPTICAL

pytestmark = pytest.mark.slow

ALLOWED_FLIPS = {
    ("firn", "snow"), ("snow", "firn"), ("firn", "ice"), ("ice", "firn"),
    ("refrozen-like", "ice"), ("ice", "refrozen-like"), ("debris", "ice"), ("ice", "debris"),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "tiny"
    summary = demo_data.generate(out, size="tiny", seed=0)
    return out, summary


@pytest.fixture(scope="module")
def tiny(generated) -> Path:
    return generated[0]


@pytest.fixture(scope="module")
def patches(tiny) -> dict:
    """All patches: arrays (N, 33, 33, 11), parsed names, CRS and transforms."""
    files = sorted((tiny / "patches").glob("*.tif"), key=lambda p: int(p.stem.split("_")[3]))
    arrays, meta = [], []
    for f in files:
        with rasterio.open(f) as src:
            arrays.append(np.moveaxis(src.read(), 0, -1))
            meta.append((src.crs, src.transform, src.dtypes, src.descriptions))
    names = [f.stem.split("_") for f in files]
    return {"files": files, "x": np.stack(arrays), "names": names, "meta": meta}


@pytest.fixture(scope="module")
def planted(tiny) -> dict[str, tuple[str, str]]:
    with open(tiny / "planted_noise.csv", newline="") as fh:
        return {r["file"]: (r["true_class"], r["given_class"]) for r in csv.DictReader(fh)}


def _tree(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_same_seed_gives_identical_bytes(tiny, tmp_path) -> None:
    again = tmp_path / "again"
    demo_data.generate(again, size="tiny", seed=0)
    first, second = _tree(tiny), _tree(again)
    assert sorted(first) == sorted(second)
    different = [name for name in first if first[name] != second[name]]
    assert different == []
    assert not list(tmp_path.glob(".*partial*"))  # no temporary folder left behind


def test_different_seed_gives_different_data(tiny, tmp_path) -> None:
    other = tmp_path / "other"
    demo_data.generate(other, size="tiny", seed=1)
    assert (other / "stats.json").read_bytes() != (tiny / "stats.json").read_bytes()
    a = sorted(p.name for p in (tiny / "patches").iterdir())
    b = sorted(p.name for p in (other / "patches").iterdir())
    assert a != b


def test_file_names_follow_the_study_layout(patches) -> None:
    ids = []
    for parts in patches["names"]:
        assert len(parts) == 5
        fold, glacier, date, pid, cls = parts
        assert fold.isdigit() and 0 <= int(fold) <= 5
        assert glacier and "_" not in glacier
        dt.datetime.strptime(date, "%Y%m%d")
        ids.append(int(pid))
        assert cls in CLASSES
    assert sorted(ids) == list(range(1, len(ids) + 1))  # a running number
    assert 300 <= len(ids) <= 500


def test_patches_are_georeferenced_float32_with_11_bands(patches, tiny) -> None:
    x = patches["x"]
    assert x.shape[1:] == (33, 33, N_FEATURES) and x.dtype == np.float32
    assert np.isfinite(x).all()
    for crs, transform, dtypes, descriptions in patches["meta"]:
        assert crs is not None and crs.to_epsg() in (32632, 32638)
        assert transform.a == 10.0 and transform.e == -10.0
        assert set(dtypes) == {"float32"} and descriptions == FEATURES
    # the centre pixel of each patch is its labelled point
    points = {}
    for f in (tiny / "scenes").glob("*/points.geojson"):
        for feature in json.loads(f.read_text())["features"]:
            points[feature["properties"]["file"]] = feature["properties"]
    assert set(points) == {f.name for f in patches["files"]}
    for f, (_, transform, _, _) in zip(patches["files"], patches["meta"], strict=True):
        px, py = transform @ (16.5, 16.5)
        assert (px, py) == pytest.approx((points[f.name]["x"], points[f.name]["y"]))


def test_band_contents_follow_the_study_preprocessing(patches) -> None:
    x = patches["x"]
    band = {name: x[..., i] for i, name in enumerate(FEATURES)}
    optical = x[..., : len(OPTICAL)]
    assert optical.min() >= 0.0 and optical.max() <= 1.6
    assert np.percentile(optical, 99) < 1.2  # surface reflectance ~0..1.2
    assert band["slope"].min() >= 0.0 and band["slope"].max() <= 90.0
    assert set(np.unique(band["shadow_mask"])) == {0.0, 1.0}
    assert band["hillshade"].min() >= 0.0 and band["hillshade"].max() <= 1.0
    assert band["proximity"].min() >= 0.0 and band["proximity"].max() <= 1.0
    centre = x[:, 16, 16]
    on_glacier = centre[:, FEATURES.index("proximity")] > 0
    elev = centre[on_glacier, FEATURES.index("elevation")]
    assert elev.min() >= 0.0 and elev.max() <= 1.0 and elev.max() - elev.min() > 0.5


def test_patches_equal_features_derived_from_the_scene_files(tiny, patches) -> None:
    """Patches are windows of utils.terrain applied to dem.tif and outlines.geojson."""
    import geopandas as gpd
    from rasterio.features import rasterize

    folder = sorted((tiny / "scenes").iterdir())[0]
    meta = json.loads((folder / "scene.json").read_text())
    with rasterio.open(folder / "optical.tif") as src:
        optical = np.moveaxis(src.read(), 0, -1)
        crs, transform, shape = src.crs, src.transform, (src.height, src.width)
    with rasterio.open(folder / "dem.tif") as src:
        dem = src.read(1)
    outlines = gpd.read_file(folder / "outlines.geojson").to_crs(crs)
    mask = rasterize(((g, 1) for g in outlines.geometry), out_shape=shape,
                     transform=transform).astype(bool)
    topo = feat.derive_features(dem, mask, 10.0, meta["sun_azimuth_deg"],
                                meta["sun_elevation_deg"])
    stack = feat.stack_features(optical, topo)
    points = json.loads((folder / "points.geojson").read_text())["features"]
    assert points
    index = {f.name: i for i, f in enumerate(patches["files"])}
    for p in points:
        r, c = p["properties"]["row"], p["properties"]["col"]
        assert 16 <= r < shape[0] - 16 and 16 <= c < shape[1] - 16
        expected = stack[r - 16 : r + 17, c - 16 : c + 17]
        got = patches["x"][index[p["properties"]["file"]]]
        np.testing.assert_allclose(got, expected, atol=2e-4)


def _true_classes(patches, planted) -> np.ndarray:
    given = [parts[4] for parts in patches["names"]]
    return np.array(
        [CLASS_INDEX[planted.get(f.name, (g, g))[0]] for f, g in zip(patches["files"], given,
                                                                    strict=True)]
    )


def test_spectra_are_physically_plausible(patches, planted) -> None:
    centre = patches["x"][:, 16, 16, :6]
    y = _true_classes(patches, planted)
    mean = {c: centre[y == CLASS_INDEX[c]].mean(axis=0) for c in CLASSES}
    green, nir, swir1 = OPTICAL.index("green"), OPTICAL.index("nir"), OPTICAL.index("swir1")
    assert mean["snow"][green] > mean["ice"][green] + 0.1
    assert min(CLASSES, key=lambda c: mean[c][nir]) == "water"
    assert mean["snow"][swir1] < 0.15 * mean["snow"][green]
    assert mean["cloud"][swir1] > 3 * mean["snow"][swir1]  # the NDSI snow/cloud contrast
    assert mean["debris"][swir1] > mean["ice"][swir1]
    sunlit = centre[y == CLASS_INDEX["snow"]][:, green].mean()
    assert mean["shadow"][green] < 0.7 * sunlit


def test_every_class_present_and_every_fold_has_the_facies(patches, generated) -> None:
    given = [parts[4] for parts in patches["names"]]
    assert set(given) == set(CLASSES)
    folds = {}
    glacier_fold = {}
    for fold, glacier, *_, cls in patches["names"]:
        folds.setdefault(int(fold), set()).add(cls)
        assert glacier_fold.setdefault(glacier, fold) == fold  # folds split by glacier
    assert sorted(folds) == list(range(6))
    for classes in folds.values():
        assert set(FACIES_CLASSES) <= classes
    assert len(glacier_fold) >= 6
    summary = generated[1]
    assert summary["n_patches"] == len(given)
    assert summary["class_counts"] == {c: given.count(c) for c in CLASSES}


def test_planted_noise_is_10_to_15_percent_of_facies_labels(patches, planted, tiny) -> None:
    y = _true_classes(patches, planted)
    n_facies = sum(CLASSES[k] in FACIES_CLASSES for k in y)
    assert 0.10 <= len(planted) / n_facies <= 0.15
    names = {f.name for f in patches["files"]}
    for file, (true, given) in planted.items():
        assert file in names
        assert file.rsplit("_", 1)[1] == f"{given}.tif"  # file names carry the given class
        assert (true, given) in ALLOWED_FLIPS
    header = (tiny / "planted_noise.csv").read_text().splitlines()[0]
    assert header == "file,true_class,given_class"


def test_stats_are_the_min_and_max_over_all_patches(patches, tiny) -> None:
    stats = load_stats(tiny / "stats.json")
    flat = patches["x"].reshape(-1, N_FEATURES)
    np.testing.assert_allclose(stats.min, flat.min(axis=0))
    np.testing.assert_allclose(stats.max, flat.max(axis=0))


def test_scene_folders(tiny) -> None:
    import geopandas as gpd

    folders = sorted(p for p in (tiny / "scenes").iterdir() if p.is_dir())
    assert len(folders) >= 6
    glaciers = set()
    for folder in folders:
        scene, date = folder.name.split("_")
        dt.datetime.strptime(date, "%Y%m%d")
        with rasterio.open(folder / "optical.tif") as opt, rasterio.open(folder / "dem.tif") as dem:
            assert opt.count == 6 and opt.dtypes == ("float32",) * 6
            assert opt.crs.to_epsg() in (32632, 32638) and opt.res == (10.0, 10.0)
            assert np.isnan(opt.nodata) and np.isnan(dem.nodata)
            assert opt.descriptions == OPTICAL
            assert dem.count == 1 and dem.crs == opt.crs and dem.transform == opt.transform
            z = dem.read(1)
            assert 300.0 < z.min() < z.max() < 5000.0
        with rasterio.open(folder / "truth.tif") as truth:
            assert truth.dtypes == ("uint8",) and truth.read(1).max() < len(CLASSES)
        outlines = gpd.read_file(folder / "outlines.geojson")
        assert outlines.crs.to_epsg() == 4326 and len(outlines) >= 2
        assert outlines["RGIId"].str.match(r"^RGI60-\d\d\.\d{5}$").all()
        assert outlines.is_valid.all()
        points = gpd.read_file(folder / "points.geojson")
        assert {"class", "fold", "file"} <= set(points.columns)
        assert set(points["glacier"]) <= set(outlines["Name"])
        meta = json.loads((folder / "scene.json").read_text())
        assert 0 < meta["sun_elevation_deg"] < 90 and 90 < meta["sun_azimuth_deg"] < 180
        glaciers |= set(outlines["Name"])
    assert len(glaciers) >= 6


def test_refuses_to_replace_a_foreign_folder(tmp_path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(FileExistsError):
        demo_data.generate(foreign, size="tiny")
    assert (foreign / "thesis.txt").read_text() == "precious"
    assert not list(tmp_path.glob(".*partial*"))
