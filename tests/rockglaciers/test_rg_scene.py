"""Scene map: georeferencing round trip, nodata, polygons, output and input checks."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine, from_origin

import rockglaciers
from utils.errors import OutputExistsError
from utils.rockglaciers.demo import write_scene
from utils.rockglaciers.scene import map_scene
from utils.rockglaciers.tiles import RockGlacierError


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    path = tmp_path_factory.mktemp("rg_scene") / "scene.tif"
    write_scene(path, size=320, n_rock_glaciers=2, seed=0)
    return path


def test_georeferencing_round_trip(scene, rg_model, tmp_path):
    out = tmp_path / "prob.tif"
    res = map_scene(rg_model, scene, out, tmp_path / "rg.gpkg", threshold=0.01, stride=64,
                    progress=False)
    with rasterio.open(scene) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs
        assert dst.transform == src.transform @ Affine.scale(64)
        assert (dst.height, dst.width) == (5, 5)  # 4 window steps + 2 cells per window - 1
        assert dst.nodata == -9999 and dst.dtypes[0] == "float32"
        prob = dst.read(1)
        assert ((prob >= 0) & (prob <= 1)).all()
        assert dst.bounds.left == src.bounds.left and dst.bounds.top == src.bounds.top
    assert res["windows"] == 16 and res["cells"] == 25
    assert (tmp_path / "prob.qml").is_file()
    gdf = gpd.read_file(tmp_path / "rg.gpkg")
    assert gdf.crs == rasterio.crs.CRS.from_epsg(32719)
    assert len(gdf) == res["polygons"] >= 1
    with rasterio.open(scene) as src:
        assert gdf.total_bounds[0] >= src.bounds.left and gdf.total_bounds[3] <= src.bounds.top


def test_alpha_nodata_windows_are_skipped(tmp_path, rg_model):
    path = tmp_path / "alpha.tif"
    data = np.full((4, 256, 256), 120, np.uint8)
    data[3] = 255
    data[3, :, :128] = 0  # left half transparent
    profile = {"driver": "GTiff", "height": 256, "width": 256, "count": 4, "dtype": "uint8",
               "crs": "EPSG:32719", "transform": from_origin(390000, 6310000, 10, 10),
               "photometric": "RGB", "alpha": "YES"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    res = map_scene(rg_model, path, tmp_path / "p.tif", stride=64, progress=False)
    with rasterio.open(tmp_path / "p.tif") as dst:
        prob = dst.read(1)
    assert res["windows"] == 3  # only windows inside the opaque right half
    assert (prob[:, :2] == -9999).all() and (prob[:, 2:] != -9999).all()


def test_bad_scene_and_existing_output(tmp_path, rg_model, scene):
    grey = tmp_path / "grey.tif"
    with rasterio.open(grey, "w", driver="GTiff", height=200, width=200, count=1, dtype="uint16",
                       crs="EPSG:32719", transform=from_origin(0, 0, 10, 10)) as dst:
        dst.write(np.zeros((1, 200, 200), np.uint16))
    with pytest.raises(RockGlacierError, match="grey.tif.*8-bit RGB"):
        map_scene(rg_model, grey, tmp_path / "o.tif", progress=False)
    (tmp_path / "exists.tif").write_bytes(b"x")
    with pytest.raises(OutputExistsError):
        map_scene(rg_model, scene, tmp_path / "exists.tif", progress=False)
    assert (tmp_path / "exists.tif").read_bytes() == b"x"
    assert rockglaciers.main(["map", str(rg_model), str(grey), str(tmp_path / "o.tif")]) == 2
