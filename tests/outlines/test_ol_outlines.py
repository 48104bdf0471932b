"""Sliding-window inference, the polygoniser, outline.py, and apply.py reading its output."""

from __future__ import annotations

import geopandas as gpd
import keras
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.transform import from_origin

import outline
from utils.errors import OutputExistsError
from utils.outlines.dataset import open_dataset
from utils.outlines.polygons import LAYER, mask_to_polygons, write_outlines
from utils.outlines.predict import predict_array, ramp, starts
from utils.scene.outlines import glacier_mask, read_outlines
from utils.scene.raster import Grid

UTM = CRS.from_epsg(32632)


def test_tiles_cover_the_scene_and_weights_blend():
    assert starts(100, 32, 8) == [0, 24, 48, 68]
    assert starts(20, 32, 8) == [0]
    w = ramp(32, 24, 8)
    assert w.shape == (32, 24) and w.min() > 0 and w.max() == 1
    np.testing.assert_allclose(w, w[::-1, ::-1])


def test_blended_windows_reproduce_a_pixelwise_model_exactly():
    inp = keras.Input((None, None, 2))
    model = keras.Model(inp, keras.layers.Lambda(lambda x: x[..., :1])(inp))
    x = np.random.default_rng(0).random((70, 90, 2)).astype(np.float32)
    np.testing.assert_allclose(predict_array(model, x, tile=32, overlap=8), x[..., 0],
                               atol=1e-6)
    small = x[:20, :13]  # smaller than a tile: padded
    np.testing.assert_allclose(predict_array(model, small, tile=32, overlap=8),
                               small[..., 0], atol=1e-6)


def test_known_mask_gives_known_polygons(tmp_path):
    m = np.zeros((40, 40), bool)
    m[2:22, 2:22] = True      # 20 x 20 px = 0.36 km² at 30 m
    m[8:14, 8:14] = False     # hole 6 x 6 px = 0.0324 km²: kept
    m[4, 4] = False           # hole of one pixel: filled (< min area)
    m[30:32, 30:32] = True    # 4 px = 0.0036 km²: dropped
    m[25:35, 2:5] = True      # 30 px = 0.027 km²
    t = from_origin(600000, 5200000, 30, 30)
    gdf = mask_to_polygons(m, t, UTM, min_area_km2=0.01)
    assert list(gdf.id) == [1, 2]
    np.testing.assert_allclose(gdf.area_km2, [0.36 - 0.0324, 0.027])
    big = gdf.geometry.iloc[0]
    assert len(big.interiors) == 1
    assert shapely.Polygon(big.interiors[0]).area == pytest.approx(0.0324e6)
    assert big.bounds == (600060.0, 5200000 - 22 * 30.0, 600000 + 22 * 30.0, 5199940.0)
    out = tmp_path / "o.gpkg"
    write_outlines(gdf, out)
    back = gpd.read_file(out, layer=LAYER)
    assert back.crs.to_epsg() == 32632 and list(back.id) == [1, 2]
    with pytest.raises(OutputExistsError):
        write_outlines(gdf, out)
    assert [p.name for p in tmp_path.iterdir()] == ["o.gpkg"]  # no temporary left


def test_outline_cli_output_is_read_by_apply(ol_model, ol_data, tmp_path, capsys):
    scene = next(s for s in open_dataset(ol_data) if s.split == "val")
    out, prob = tmp_path / "outlines.gpkg", tmp_path / "prob.tif"
    # threshold 0.3: the briefly trained model is not confident yet
    assert outline.main([str(ol_model), str(scene.image), str(out), "--tile", "64",
                         "--overlap", "8", "--threshold", "0.3", "--min_area_km2", "0",
                         "--probability_path", str(prob), "--quiet"]) == 0
    with rasterio.open(scene.image) as src:
        grid = Grid(src.crs, src.transform, src.width, src.height)
        missing = np.isnan(src.read()).any(axis=0)
    with rasterio.open(prob) as src:
        p = src.read(1)
        assert src.crs == grid.crs and src.transform == grid.transform
    np.testing.assert_array_equal(np.isnan(p), missing)  # nodata where the input is missing
    gdf = gpd.read_file(out)
    assert len(gdf) > 0 and gdf.crs == grid.crs
    # apply.py's outline reader rasterises the polygons back to the thresholded mask
    mask = glacier_mask(read_outlines(out, grid.crs), grid, scene.image)
    np.testing.assert_array_equal(mask, np.nan_to_num(p) >= 0.3)
    # an existing output is not replaced unasked: exit 2, one line naming the file
    capsys.readouterr()
    assert outline.main([str(ol_model), str(scene.image), str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "--overwrite" in err


@pytest.mark.parametrize("args, message", [
    (["missing.tif"], "missing.tif: SCENE not found"),
    (["SCENE", "--threshold", "1.5"], "--threshold 1.5"),
    (["SCENE", "--tile", "60"], "--tile 60 must be a multiple of 8"),
])
def test_outline_cli_input_errors(ol_model, ol_data, tmp_path, capsys, args, message):
    scene = str(open_dataset(ol_data)[0].image)
    args = [scene if a == "SCENE" else str(tmp_path / a) if a.endswith(".tif") else a
            for a in args]
    assert outline.main([str(ol_model), args[0], str(tmp_path / "o.gpkg"), *args[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("outline.py: error:")
    assert not (tmp_path / "o.gpkg").exists()
