"""Tests of utils.terrain: DEM-derived features on analytic surfaces and on a real DEM."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from utils import terrain as feat
from utils.study import FEATURES, N_FEATURES

RES = 10.0

# rasterio.warp itself still composes affine transforms with `*`
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


def _grid(n: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """Easting and northing (metres) of an (n, n) north-up grid, row 0 = north."""
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float64)
    return cols * RES, (n - 1 - rows) * RES


# --------------------------------------------------------------------------- slope / aspect


@pytest.mark.parametrize("gx, gy", [(0.0, 0.0), (0.3, 0.0), (0.0, -0.5), (0.4, 0.3), (-1.2, 0.7)])
def test_slope_of_plane_is_exact_up_to_the_edges(gx: float, gy: float) -> None:
    x, y = _grid()
    dem = 1000.0 + gx * x + gy * y
    s = feat.slope(dem, RES)
    assert s.dtype == np.float32 and s.shape == dem.shape
    assert not np.isnan(s).any()
    np.testing.assert_allclose(s, np.degrees(np.arctan(np.hypot(gx, gy))), atol=1e-4)


@pytest.mark.parametrize(
    "gx, gy, expected",
    [(-0.2, 0.0, 90.0), (0.2, 0.0, 270.0), (0.0, 0.2, 180.0), (0.0, -0.2, 0.0), (-0.2, -0.2, 45.0)],
)
def test_aspect_is_the_downslope_direction(gx: float, gy: float, expected: float) -> None:
    x, y = _grid(9)
    a = feat.aspect(1000.0 + gx * x + gy * y, RES)
    diff = (a - expected + 180.0) % 360.0 - 180.0
    assert np.all(np.abs(diff) < 1e-3)


def test_aspect_of_flat_ground_is_nan() -> None:
    assert np.isnan(feat.aspect(np.full((5, 5), 3.0), RES)).all()


def test_slope_of_cone_matches_its_flank_angle() -> None:
    x, y = _grid(81)
    r = np.hypot(x - 400.0, y - 400.0)
    dem = 3000.0 - 0.7 * r  # flank angle atan(0.7) = 34.99 degrees
    s = feat.slope(dem, RES)
    away = r > 6 * RES  # Horn differences smooth the apex over a few pixels
    np.testing.assert_allclose(s[away], np.degrees(np.arctan(0.7)), atol=0.5)
    assert s[40, 40] < 20.0  # the apex is flatter than the flanks


def test_nan_only_spoils_its_neighbourhood() -> None:
    x, y = _grid(21)
    dem = 500.0 + 0.2 * x
    dem[10, 10] = np.nan
    s = feat.slope(dem, RES)
    bad = np.isnan(s)
    expected = np.zeros_like(bad)
    expected[9:12, 9:12] = True
    np.testing.assert_array_equal(bad, expected)
    dem2 = 500.0 + 0.2 * x
    dem2[0, 0] = np.nan  # a corner: no NaN ring along the borders
    assert np.isnan(feat.slope(dem2, RES)).sum() == 4


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="2-D"):
        feat.slope(np.zeros((3, 3, 2)), RES)
    with pytest.raises(ValueError, match="positive"):
        feat.slope(np.zeros((3, 3)), 0.0)


# --------------------------------------------------------------------------- hillshade


def test_hillshade_range_flat_value_and_sunward_slopes_brightest() -> None:
    x, y = _grid(81)
    r = np.hypot(x - 400.0, y - 400.0)
    dem = 3000.0 - 0.9 * r  # flanks of 42 degrees: steeper than the sun is high
    az, el = 135.0, 35.0
    hs = feat.hillshade(dem, RES, az, el)
    assert hs.dtype == np.float32
    assert hs.min() >= 0.0 and hs.max() <= 1.0
    asp = feat.aspect(dem, RES)
    facing = np.cos(np.radians(asp - az))
    brightest = hs >= np.nanpercentile(hs, 98)
    assert np.all(facing[brightest] > 0.9)  # the brightest flank faces the sun
    assert np.all(hs[(facing < -0.9) & (r > 3 * RES)] == 0.0)  # the opposite flank is dark
    flat = feat.hillshade(np.zeros((5, 5)), RES, az, el)
    np.testing.assert_allclose(flat, np.sin(np.radians(el)), atol=1e-6)


def test_hillshade_is_one_facing_the_sun_squarely() -> None:
    x, y = _grid(9)
    el = 30.0  # a slope of 60 degrees facing south, sun from the south at 30 degrees
    dem = 1000.0 + np.tan(np.radians(60.0)) * y  # rises northwards -> faces south
    np.testing.assert_allclose(feat.hillshade(dem, RES, 180.0, el), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- shadows


def _ridge(n: int = 81) -> np.ndarray:
    """An east-west ridge (rows increase southwards), 300 m high, 90 m half-width."""
    rows = np.arange(n, dtype=np.float64)[:, None]
    return np.repeat(1000.0 + 300.0 * np.exp(-(((rows - n // 2) * RES / 90.0) ** 2)), n, axis=1)


@pytest.mark.parametrize("az", [180.0, 0.0])
def test_ridge_shadows_the_side_facing_away_from_the_sun(az: float) -> None:
    dem = _ridge()  # crest on row 40
    mask = feat.shadow_mask(dem, RES, az, 20.0)
    assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    north, south = mask[:39], mask[42:]
    lee, sunward = (north, south) if az == 180.0 else (south, north)
    assert lee.min() == 1.0  # the whole flank facing away, down to the valley, is shaded
    assert sunward.max() == 0.0
    no_self = feat.shadow_mask(dem, RES, az, 20.0, include_self=False)
    assert no_self.sum() >= 0.9 * mask.sum()  # mostly cast shadow, not just self shadow


@pytest.mark.parametrize(
    "az, direction", [(270.0, (0, 1)), (90.0, (0, -1)), (180.0, (-1, 0)), (225.0, (-1, 1))]
)
def test_cast_shadow_length_of_a_tower(az: float, direction: tuple[int, int]) -> None:
    n, h, el = 121, 200.0, 30.0
    dem = np.zeros((n, n))
    dem[60, 60] = h  # a one-pixel tower on flat ground
    cast = feat.cast_shadow(dem, RES, az, el)
    length_px = h / np.tan(np.radians(el)) / RES  # 34.6 pixels on the ground
    dr, dc = direction
    step = np.hypot(dr, dc)
    along = [cast[60 + k * dr, 60 + k * dc] for k in range(1, n // 2)]
    reach = (np.argmin(along) if not all(along) else len(along)) * step  # first lit pixel
    assert abs(reach - length_px) <= 1.5 * step
    # nothing is shadowed on the sunward side
    assert not cast[60 - dr * 5, 60 - dc * 5]


def _brute_force_cast(dem: np.ndarray, az: float, el: float, step: float = 0.25) -> np.ndarray:
    """Reference: march every pixel's ray towards the sun, bilinear terrain samples."""
    n, m = dem.shape
    rows, cols = np.mgrid[0:n, 0:m].astype(np.float64)
    dr, dc = -np.cos(np.radians(az)), np.sin(np.radians(az))
    tan_el = np.tan(np.radians(el))
    shadow = np.zeros(dem.shape, dtype=bool)
    k = step
    while k < 2 * max(n, m):
        r, c = rows + k * dr, cols + k * dc
        inside = (r >= 0) & (r <= n - 1) & (c >= 0) & (c <= m - 1)
        if not inside.any():
            break
        zt = ndimage.map_coordinates(dem, [r, c], order=1, mode="nearest")
        shadow |= inside & (zt > dem + k * RES * tan_el + 1e-6)
        k += step
    return shadow


@pytest.mark.parametrize("az, el", [(150.0, 25.0), (300.0, 35.0), (20.0, 15.0), (95.0, 40.0)])
def test_cast_shadow_sweep_agrees_with_brute_force(az: float, el: float) -> None:
    rng = np.random.default_rng(3)
    dem = ndimage.gaussian_filter(rng.normal(size=(48, 56)), 4.0) * 3000.0
    sweep = feat.cast_shadow(dem, RES, az, el)
    ref = _brute_force_cast(dem, az, el)
    assert 0.02 < ref.mean() < 0.9  # the case has shadows to find
    assert (sweep == ref).mean() > 0.97


def test_shadow_mask_adds_self_shadow_and_keeps_nan() -> None:
    x, y = _grid(41)
    dem = 1000.0 - 0.9 * y  # slope of 42 degrees facing north
    dem[20, 20] = np.nan
    # sun from the south at 30 degrees: the whole slope faces away (self shadow);
    # the first row (nothing towards the sun) is not cast-shadowed
    cast = feat.cast_shadow(dem, RES, 180.0, 30.0)
    full = feat.shadow_mask(dem, RES, 180.0, 30.0)
    no_self = feat.shadow_mask(dem, RES, 180.0, 30.0, include_self=False)
    assert not cast[-1].any()
    assert np.isnan(full[20, 20]) and np.isnan(no_self[20, 20])
    assert np.nansum(full) > np.nansum(no_self)
    assert np.all(full[np.isfinite(full)] == 1.0)


def test_sun_below_horizon_shadows_everything() -> None:
    assert feat.cast_shadow(np.zeros((4, 4)), RES, 180.0, -3.0).all()


# --------------------------------------------------------------------------- proximity


def test_proximity_zero_on_outline_and_outside_growing_inward() -> None:
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:26, 8:29] = True  # a 21 x 21 glacier
    p = feat.proximity(mask, RES)
    assert p.dtype == np.float32
    assert np.all(p[~mask] == 0.0)
    assert np.all(p[feat.outline_pixels(mask)] == 0.0)
    np.testing.assert_allclose(p[15, 8:19], np.arange(11) * RES)  # west edge to centre
    assert p.max() == pytest.approx(10 * RES)
    assert np.unravel_index(np.argmax(p), p.shape) == (15, 18)


def test_proximity_of_an_irregular_glacier_grows_with_depth() -> None:
    x, y = _grid(60)
    mask = np.hypot(x - 300.0, (y - 300.0) * 1.6) < 230.0
    p = feat.proximity(mask, RES)
    depth = ndimage.distance_transform_cdt(mask, metric="chessboard")  # 1 = outline
    means = [p[depth == d].mean() for d in range(1, 8)]
    assert means[0] == 0.0
    assert np.all(np.diff(means) > 0.5 * RES)


def test_proximity_degenerate_masks() -> None:
    assert not feat.proximity(np.zeros((5, 5), bool), RES).any()
    assert not feat.proximity(np.ones((5, 5), bool), RES).any()  # no outline inside the grid


def test_scaling_functions() -> None:
    dem = np.array([[100.0, 200.0, 300.0], [400.0, 500.0, 900.0]])
    mask = np.array([[False, True, True], [True, True, False]])
    s = feat.scale_elevation(dem, mask)
    assert s[mask].min() == 0.0 and s[mask].max() == 1.0
    assert s[0, 0] < 0.0 and s[1, 2] > 1.0  # off-glacier pixels may leave 0..1
    with pytest.raises(ValueError, match="no glacier pixel"):
        feat.scale_elevation(dem, np.zeros_like(mask))
    p = feat.scale_proximity(np.array([[0.0, 5.0], [20.0, 10.0]]))
    np.testing.assert_allclose(p, [[0.0, 0.25], [1.0, 0.5]])
    assert not feat.scale_proximity(np.zeros((3, 3))).any()


def test_derive_and_stack_features() -> None:
    x, y = _grid(30)
    dem = 2000.0 + 0.5 * x - 0.3 * y
    mask = np.zeros(dem.shape, bool)
    mask[5:25, 5:25] = True
    topo = feat.derive_features(dem, mask, RES, 150.0, 40.0)
    assert tuple(topo) == feat.TOPO_FEATURES == FEATURES[6:]
    assert all(v.dtype == np.float32 and v.shape == dem.shape for v in topo.values())
    assert topo["proximity"].max() == 1.0 and topo["elevation"][mask].max() == 1.0
    optical = np.full((30, 30, 6), 0.5, np.float32)
    stack = feat.stack_features(optical, topo)
    assert stack.shape == (30, 30, N_FEATURES) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack[..., 7], topo["slope"])
    with pytest.raises(ValueError):
        feat.stack_features(optical[..., :5], topo)


# --------------------------------------------------------------------------- real DEM


@pytest.fixture(scope="module")
def oetztal(shared_dir):
    """SRTM of the Ötztal Alps reprojected to UTM 32N at 90 m, and its RGI glacier mask."""
    import geopandas as gpd
    import rasterio
    from rasterio.features import rasterize
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    folder = shared_dir / "data" / "oetztal"
    with rasterio.open(folder / "srtm_oetztal.tif") as src:
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:32632", src.width, src.height, *src.bounds, resolution=90.0
        )
        dem = np.full((height, width), np.nan, np.float32)
        reproject(
            src.read(1).astype(np.float32), dem, src_transform=src.transform, src_crs=src.crs,
            dst_transform=transform, dst_crs="EPSG:32632", resampling=Resampling.bilinear,
            dst_nodata=np.nan,
        )
    outlines = gpd.read_file(folder / "rgi_oetztal.shp").to_crs(32632)
    mask = rasterize(((g, 1) for g in outlines.geometry), out_shape=dem.shape,
                     transform=transform).astype(bool)
    return dem, mask


def test_real_dem_slope_and_hillshade(oetztal) -> None:
    dem, _ = oetztal
    assert np.isnan(dem).any()  # reprojection leaves NaN corners: a real test of NaN handling
    s = feat.slope(dem, 90.0)
    assert np.nanmin(s) >= 0.0 and np.nanmax(s) <= 90.0
    assert 15.0 < np.nanmean(s) < 35.0  # Alpine relief at 90 m
    # NaN only where the DEM (or a neighbour) is NaN
    near_nan = ndimage.binary_dilation(np.isnan(dem), np.ones((3, 3), bool))
    assert not np.isnan(s[~near_nan]).any()
    hs = feat.hillshade(dem, 90.0, 150.0, 30.0)
    assert np.nanmin(hs) >= 0.0 and np.nanmax(hs) <= 1.0


def test_real_dem_shadows_fall_on_slopes_facing_away(oetztal) -> None:
    dem, _ = oetztal
    az, el = 150.0, 25.0
    mask = feat.shadow_mask(dem, 90.0, az, el)
    valid = np.isfinite(mask)
    assert 0.05 < mask[valid].mean() < 0.5
    asp = feat.aspect(dem, 90.0)
    away = np.cos(np.radians(asp - az)) < 0
    shaded = (mask == 1) & np.isfinite(asp)
    lit = (mask == 0) & np.isfinite(asp)
    assert away[shaded].mean() > 0.85
    assert away[lit].mean() < 0.5
    cast = feat.cast_shadow(dem, 90.0, az, el)
    assert 0.0 < cast.mean() < mask[valid].mean()  # self shadow adds to cast shadow


def test_real_outlines_proximity(oetztal) -> None:
    _, glaciers = oetztal
    assert glaciers.sum() > 1000
    p = feat.proximity(glaciers, 90.0)
    edge = feat.outline_pixels(glaciers)
    assert np.all(p[edge] == 0.0) and np.all(p[~glaciers] == 0.0)
    depth = ndimage.distance_transform_cdt(glaciers, metric="chessboard")
    means = [p[depth == d].mean() for d in (1, 2, 3, 4)]
    assert means[0] == 0.0 and np.all(np.diff(means) >= 80.0)
    assert 500.0 < p.max() < 5000.0  # the largest glaciers are a few km wide
    scaled = feat.scale_proximity(p)
    assert scaled.max() == 1.0 and scaled.min() == 0.0
