"""utils.mapping.outputs: GeoTIFF round trips, COG layout, legend sidecars, safe writes."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from utils.errors import OutputError, RasterReadError
from utils.mapping import outputs
from utils.mapping.legend import aux_xml_path, qml_path, read_class_names
from utils.mapping.outputs import write_class_map, write_float_map
from utils.scene.raster import open_raster, read_raster, read_window
from utils.study import CLASS_COLORS, CLASSES

ND = -9999
UTM32 = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5_200_000.0)
UTM45 = Affine(30.0, 0.0, 440000.0, 0.0, -30.0, 3_100_000.0)


def _class_map(h: int = 1100, w: int = 1200, seed: int = 0) -> np.ndarray:
    """Blocky class map (2x2 constant blocks) with a nodata margin."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, len(CLASSES), ((h + 1) // 2, (w + 1) // 2)).astype(np.int16)
    a = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[:h, :w].copy()
    a[: h // 10] = ND
    a[:, -7:] = ND
    return a


def _files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture(scope="module")
def class_tif(tmp_path_factory) -> tuple[Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("cls")
    a = _class_map()
    path = write_class_map(folder / "facies.tif", a, "EPSG:32632", UTM32)
    return path, a


# ----------------------------------------------------------------------------- class map


@pytest.mark.parametrize("epsg,transform", [(32632, UTM32), (32645, UTM45)])
def test_class_map_round_trip(tmp_path, epsg, transform):
    a = _class_map(300, 250, seed=epsg)
    out = write_class_map(tmp_path / "m.tif", a, f"EPSG:{epsg}", transform)
    assert out == (tmp_path / "m.tif").absolute()
    data, meta = read_raster(out)
    assert meta.crs.to_epsg() == epsg
    assert meta.transform == transform
    assert (meta.height, meta.width, meta.count) == (300, 250, 1) and meta.shape == (300, 250)
    assert meta.dtype == "int16" and data.dtype == np.int16
    assert meta.nodata == ND
    np.testing.assert_array_equal(data, a)


def test_class_map_is_tiled_compressed_cog_with_overviews(class_tif):
    path, _ = class_tif
    with rasterio.open(path) as src:
        assert src.profile["tiled"] is True
        assert src.block_shapes == [(512, 512)]
        assert src.compression == rasterio.enums.Compression.deflate
        structure = src.tags(ns="IMAGE_STRUCTURE")
        assert structure.get("LAYOUT") == "COG"
        assert structure.get("PREDICTOR") == "2"
        assert src.overviews(1) == [2, 4]


def test_class_map_overviews_hold_classes_by_mode(class_tif):
    path, a = class_tif
    with rasterio.open(path, overview_level=0) as ov:
        o = ov.read(1)
    assert o.shape == (550, 600)
    assert set(np.unique(o)) <= {ND, *range(len(CLASSES))}  # no interpolated values
    # The map is constant on aligned 2x2 blocks, so a mode overview equals subsampling
    # (away from the nodata margin, whose 2x2 blocks are all nodata or all valid too).
    np.testing.assert_array_equal(o, a[::2, ::2])


def _brute_mode_downsample(a: np.ndarray, f: int) -> np.ndarray:
    h, w = a.shape
    out = np.full((-(-h // f), -(-w // f)), ND, dtype=np.int16)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            v = a[i * f : (i + 1) * f, j * f : (j + 1) * f].ravel()
            v = v[v != ND]
            if v.size:
                vals, counts = np.unique(v, return_counts=True)
                out[i, j] = vals[np.argmax(counts)]
    return out


@pytest.mark.parametrize("shape", [(37, 29), (64, 64), (5, 70)])
def test_class_overviews_equal_brute_force_mode(shape):
    rng = np.random.default_rng(shape[0])
    a = rng.integers(0, 3, shape).astype(np.int16)  # few classes -> many ties
    a[rng.random(shape) < 0.4] = ND
    a[:8, :8] = ND  # whole all-nodata blocks
    for block_pixels in (1, 10**6):
        ovrs = outputs.class_overviews(a, [2, 4, 8], block_pixels=block_pixels)
        for f, o in zip([2, 4, 8], ovrs, strict=True):
            np.testing.assert_array_equal(o, _brute_mode_downsample(a, f))


def test_overview_factors_like_gdal():
    assert outputs.overview_factors(1100, 1200) == [2, 4]
    assert outputs.overview_factors(512, 512) == []
    assert outputs.overview_factors(10980, 10980) == [2, 4, 8, 16, 32]


def test_class_map_overviews_in_file_are_mode_with_nodata(tmp_path):
    rng = np.random.default_rng(9)
    a = rng.integers(0, 8, (1030, 700)).astype(np.int16)
    a[rng.random(a.shape) < 0.3] = ND
    a[:300] = ND  # all-nodata blocks must stay nodata (GDAL's int16 MODE gives 0)
    path = write_class_map(tmp_path / "m.tif", a, "EPSG:32632", UTM32)
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4]
    for level, f in enumerate([2, 4]):
        with rasterio.open(path, overview_level=level) as ov:
            np.testing.assert_array_equal(ov.read(1), _brute_mode_downsample(a, f))


def test_colour_table_equals_class_colors(class_tif):
    path, _ = class_tif
    with rasterio.open(path) as src:
        cmap = src.colormap(1)
        assert src.colorinterp[0] == rasterio.enums.ColorInterp.palette
    for i, name in enumerate(CLASSES):
        assert cmap[i] == (*CLASS_COLORS[name], 255)


def test_class_names_in_tiff_tags_and_sidecar(class_tif):
    path, _ = class_tif
    assert read_class_names(path) == list(CLASSES)
    with rasterio.open(path) as src:
        assert src.tags()["CLASS_NAMES"].split(",") == list(CLASSES)
        assert src.descriptions == (outputs.CLASS_BAND_DESCRIPTION,)
    band = ET.parse(aux_xml_path(path)).getroot().find("PAMRasterBand[@band='1']")
    assert [c.text for c in band.find("CategoryNames")] == list(CLASSES)


def test_class_names_survive_without_sidecars(tmp_path):
    path = write_class_map(tmp_path / "m.tif", _class_map(40, 30), "EPSG:32632", UTM32)
    aux_xml_path(path).unlink()
    qml_path(path).unlink()
    assert read_class_names(path) == list(CLASSES)
    with rasterio.open(path) as src:
        assert src.descriptions == (outputs.CLASS_BAND_DESCRIPTION,)
        with pytest.raises(ValueError):
            src.colormap(1)  # the colour table lives only in the sidecar (int16)


def test_qgis_style_sidecar(class_tif):
    path, _ = class_tif
    qml = path.with_name("facies.qml")
    assert qml_path(path) == qml and qml.is_file()
    root = ET.parse(qml).getroot()
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = renderer.findall("colorPalette/paletteEntry")
    assert [int(e.get("value")) for e in entries] == list(range(len(CLASSES)))
    assert [e.get("label") for e in entries] == list(CLASSES)
    expected = ["#{:02x}{:02x}{:02x}".format(*CLASS_COLORS[n]) for n in CLASSES]
    assert [e.get("color") for e in entries] == expected


def test_only_expected_files_written(class_tif):
    path, _ = class_tif
    assert _files(path.parent) == ["facies.qml", "facies.tif", "facies.tif.aux.xml"]


@pytest.mark.parametrize("bad", [8, -1, 300])
def test_invalid_class_values_rejected(tmp_path, bad):
    a = np.zeros((5, 5), dtype=np.int32)
    a[1, 1] = bad
    with pytest.raises(ValueError, match=str(bad)):
        write_class_map(tmp_path / "m.tif", a, "EPSG:32632", UTM32)
    assert _files(tmp_path) == []


def test_bad_georeferencing_rejected(tmp_path):
    a = np.zeros((5, 5), dtype=np.int16)
    with pytest.raises(ValueError, match="crs"):
        write_class_map(tmp_path / "m.tif", a, None, UTM32)
    with pytest.raises(TypeError, match="Affine"):
        write_class_map(tmp_path / "m.tif", a, "EPSG:32632", (10, 0, 0, 0, -10, 0))
    assert _files(tmp_path) == []


# ----------------------------------------------------------------------------- float map


def test_float_map_round_trip_with_nodata(tmp_path):
    rng = np.random.default_rng(1)
    v = rng.random((700, 600)).astype(np.float32)
    v[:20] = np.nan
    path = write_float_map(tmp_path / "conf.tif", v, "EPSG:32645", UTM45)
    data, meta = read_raster(path)
    assert meta.dtype == "float32" and meta.nodata == -9999.0
    assert meta.crs.to_epsg() == 32645 and meta.transform == UTM45
    assert (data[:20] == -9999.0).all()
    np.testing.assert_array_equal(data[20:], v[20:])
    as_nan, _ = read_raster(path, as_float32=True)
    np.testing.assert_array_equal(as_nan, v)  # NaN positions equal too
    with rasterio.open(path) as src:
        assert src.block_shapes == [(512, 512)] and src.overviews(1) == [2]
        assert src.compression == rasterio.enums.Compression.deflate
        assert src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "3"
    assert _files(tmp_path) == ["conf.tif"]


def test_float_map_overviews_average_valid_pixels_only(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "WRITE_BLOCK_VALUES", 512 * 700)  # 3 row blocks
    v = np.full((1100, 700), 0.25, dtype=np.float32)
    v[0, 0] = np.nan  # overview pixel (0, 0) averages 0.25, 0.25, 0.25 only
    v[2:4, 0:2] = np.nan  # overview pixel (1, 0) has no valid pixel
    v[1000:, :] = 0.75
    path = write_float_map(tmp_path / "c.tif", v, "EPSG:32632", UTM32)
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4]
        ovr = src.read(1, out_shape=(550, 350))  # first overview level
        full = src.read(1)
    assert ovr[0, 0] == pytest.approx(0.25) and ovr[1, 0] == -9999.0
    assert ovr[500:, :].min() == pytest.approx(0.75)
    np.testing.assert_array_equal(full[1000:], 0.75)
    assert _files(tmp_path) == ["c.tif"]


def test_float_map_nan_nodata(tmp_path):
    v = np.array([[0.5, np.nan], [1.0, 0.25]], dtype=np.float64)
    path = write_float_map(tmp_path / "c.tif", v, "EPSG:32632", UTM32, nodata=float("nan"))
    data, meta = read_raster(path)
    assert meta.nodata is not None and np.isnan(meta.nodata)
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, v.astype(np.float32))


# ----------------------------------------------------------------------------- safe writes


def test_existing_file_not_overwritten_then_replaced(tmp_path):
    target = tmp_path / "m.tif"
    a = _class_map(60, 50, seed=1)
    b = _class_map(60, 50, seed=2)
    write_class_map(target, a, "EPSG:32632", UTM32)
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match="m.tif"):
        write_class_map(target, b, "EPSG:32632", UTM32)
    assert target.read_bytes() == before
    assert _files(tmp_path) == ["m.qml", "m.tif", "m.tif.aux.xml"]
    write_class_map(target, b, "EPSG:32632", UTM32, overwrite=True)
    np.testing.assert_array_equal(read_raster(target)[0], b)
    assert _files(tmp_path) == ["m.qml", "m.tif", "m.tif.aux.xml"]


def test_replacing_class_map_by_float_map_drops_stale_sidecars(tmp_path):
    target = tmp_path / "m.tif"
    write_class_map(target, _class_map(20, 20), "EPSG:32632", UTM32)
    write_float_map(target, np.ones((20, 20)), "EPSG:32632", UTM32, overwrite=True)
    assert _files(tmp_path) == ["m.tif"]
    with rasterio.open(target) as src:
        assert src.dtypes[0] == "float32"
        with pytest.raises(ValueError):
            src.colormap(1)


def test_missing_folder_is_an_error_naming_it(tmp_path):
    folder = tmp_path / "nope"
    with pytest.raises(OutputError, match="nope"):
        write_class_map(folder / "m.tif", _class_map(8, 8), "EPSG:32632", UTM32)
    assert not folder.exists()
    assert _files(tmp_path) == []


def test_folder_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile"):
        write_float_map(tmp_path / "afile" / "c.tif", np.ones((4, 4)), "EPSG:32632", UTM32)


def test_unwritable_folder_is_an_error_naming_it(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:  # root ignores permission bits
        folder.chmod(0o555)
        try:
            with pytest.raises(OutputError, match="ro"):
                write_class_map(folder / "m.tif", _class_map(8, 8), "EPSG:32632", UTM32)
        finally:
            folder.chmod(0o755)
        assert _files(folder) == []
    real_open = os.open

    def deny(path, *args, **kwargs):
        if Path(path).parent == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(outputs.os, "open", deny)
    with pytest.raises(OutputError, match=str(folder)) as info:
        write_class_map(folder / "m.tif", _class_map(8, 8), "EPSG:32632", UTM32)
    assert isinstance(info.value, OSError)
    monkeypatch.undo()
    assert _files(folder) == []


@pytest.mark.parametrize("stage", ["cog", "pam", "qml"])
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, stage):
    def boom(*args, **kwargs):
        raise RuntimeError(f"injected failure in {stage}")

    if stage == "cog":
        real = outputs._write_class_cog

        def partial(tmp, *args, **kwargs):
            real(tmp, *args, **kwargs)  # the temp file is complete on disk, then we fail
            raise RuntimeError("injected failure after writing")

        monkeypatch.setattr(outputs, "_write_class_cog", partial)
    else:
        name = {"cog": "_write_class_cog", "pam": "write_class_pam", "qml": "write_class_qml"}
        monkeypatch.setattr(outputs, name[stage], boom)
    with pytest.raises(RuntimeError, match="injected"):
        write_class_map(tmp_path / "m.tif", _class_map(30, 30), "EPSG:32632", UTM32)
    assert _files(tmp_path) == []


def test_failure_while_publishing_rolls_back(tmp_path, monkeypatch):
    real_replace = os.replace

    def fail_on_sidecar(src, dst):
        if str(dst).endswith(".qml"):
            raise OSError(5, "injected I/O error")
        return real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", fail_on_sidecar)
    with pytest.raises(OSError, match="injected"):
        write_class_map(tmp_path / "m.tif", _class_map(30, 30), "EPSG:32632", UTM32)
    monkeypatch.undo()
    assert _files(tmp_path) == []


def test_failed_overwrite_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "m.tif"
    a = _class_map(30, 30, seed=3)
    write_class_map(target, a, "EPSG:32632", UTM32)
    before = {n: (tmp_path / n).read_bytes() for n in _files(tmp_path)}
    monkeypatch.setattr(outputs, "write_class_pam", lambda aux: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_class_map(target, _class_map(30, 30, seed=4), "EPSG:32632", UTM32, overwrite=True)
    assert {n: (tmp_path / n).read_bytes() for n in _files(tmp_path)} == before


# ----------------------------------------------------------------------------- reading


@pytest.fixture()
def multiband(tmp_path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(5)
    data = rng.integers(0, 10000, (3, 40, 30)).astype(np.uint16)
    data[:, 0, 0] = 0
    path = tmp_path / "scene.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=30,
        height=40,
        count=3,
        dtype="uint16",
        crs="EPSG:32645",
        transform=UTM45,
        nodata=0,
    ) as dst:
        dst.write(data)
    return path, data


def test_read_raster_band_selection(multiband):
    path, data = multiband
    hwc, meta = read_raster(path)
    assert hwc.shape == (40, 30, 3) and hwc.dtype == np.uint16
    np.testing.assert_array_equal(hwc, np.moveaxis(data, 0, -1))
    one, _ = read_raster(path, bands=2)
    np.testing.assert_array_equal(one, data[1])
    two, _ = read_raster(path, bands=[3, 1])
    np.testing.assert_array_equal(two, np.stack([data[2], data[0]], axis=-1))
    f, _ = read_raster(path, bands=[1], as_float32=True)
    assert f.shape == (40, 30, 1) and f.dtype == np.float32
    assert np.isnan(f[0, 0, 0]) and f[1, 1, 0] == data[0, 1, 1]
    assert (meta.count, meta.dtype, meta.nodata) == (3, "uint16", 0)
    with pytest.raises(ValueError, match="scene.tif"):
        read_raster(path, bands=4)


def test_read_window(multiband):
    path, data = multiband
    with open_raster(path) as src:
        w = read_window(src, (5, 7, 10, 12))
        np.testing.assert_array_equal(w, np.moveaxis(data[:, 5:15, 7:19], 0, -1))
        b = read_window(src, (0, 0, 3, 4), bands=1)
        np.testing.assert_array_equal(b, data[0, :3, :4])
        with pytest.raises(ValueError, match="outside"):
            read_window(src, (35, 0, 10, 5))


def test_read_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        read_raster(tmp_path / "missing.tif")


def test_read_non_raster_names_it(tmp_path):
    p = tmp_path / "notes.tif"
    p.write_text("this is not a GeoTIFF\n")
    with pytest.raises(RasterReadError, match="notes.tif"):
        read_raster(p)
    with pytest.raises(RasterReadError, match="folder"):
        read_raster(tmp_path)


def test_new_file_keeps_unrelated_sidecar(tmp_path):
    other = tmp_path / "m.qml"  # e.g. the style of an m.vrt beside it
    other.write_text("<qgis/>")
    write_float_map(tmp_path / "m.tif", np.ones((4, 4)), "EPSG:32632", UTM32)
    assert other.read_text() == "<qgis/>"


def test_no_hard_links_falls_back_without_clobbering(tmp_path, monkeypatch):
    def no_link(src, dst):
        raise PermissionError(1, "hard links not supported")

    monkeypatch.setattr(outputs.os, "link", no_link)
    target = tmp_path / "c.tif"
    write_float_map(target, np.full((4, 4), 0.5), "EPSG:32632", UTM32)
    np.testing.assert_array_equal(read_raster(target)[0], np.full((4, 4), 0.5, np.float32))
    # A file appearing at the target during the write is not clobbered.
    real = outputs._write_float_cog

    def racing(tmp, *args, **kwargs):
        real(tmp, *args, **kwargs)
        target.write_bytes(b"someone else's")

    target.unlink()
    monkeypatch.setattr(outputs, "_write_float_cog", racing)
    with pytest.raises(FileExistsError, match="c.tif"):
        write_float_map(target, np.zeros((4, 4)), "EPSG:32632", UTM32)
    assert target.read_bytes() == b"someone else's"
    assert _files(tmp_path) == ["c.tif"]


def test_file_appearing_during_write_is_not_clobbered(tmp_path, monkeypatch):
    target = tmp_path / "m.tif"
    real = outputs._write_class_cog

    def racing(tmp, *args, **kwargs):
        real(tmp, *args, **kwargs)
        target.write_bytes(b"someone else's")

    monkeypatch.setattr(outputs, "_write_class_cog", racing)
    with pytest.raises(FileExistsError, match="m.tif"):
        write_class_map(target, _class_map(10, 10), "EPSG:32632", UTM32)
    assert target.read_bytes() == b"someone else's"
    assert _files(tmp_path) == ["m.tif"]
