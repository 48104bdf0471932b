"""Topographic input features of the study, derived from a DEM and glacier outlines.

All functions take 2-D float arrays of shape (H, W) on a projected, north-up grid
(row 0 = north, column 0 = west) with square pixels of ``res`` metres, e.g. a UTM
zone. Elevations are metres. Sun angles follow the satellite metadata convention:
``sun_azimuth`` in degrees clockwise from north (90 = east, 180 = south) and
``sun_elevation`` in degrees above the horizon.

The study's feature definitions (channels 6..10 of :data:`utils.study.FEATURES`):

- ``elevation``: DEM min-max scaled over the glacier pixels (:func:`scale_elevation`);
- ``slope``: degrees, 0..90 (:func:`slope`);
- ``shadow_mask``: 1 = shadowed (cast or self shadow), 0 = sunlit (:func:`shadow_mask`);
- ``hillshade``: cosine of the solar incidence angle clipped to 0..1 (:func:`hillshade`);
- ``proximity``: distance to the glacier outline divided by its maximum
  (:func:`proximity`, :func:`scale_proximity`).

NaN in the DEM marks missing data; derived values are NaN only in the neighbourhood
of missing pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from utils.study import FEATURES, N_FEATURES, OPTICAL

#: Names of the DEM-derived features, in channel order (channels 6..10).
TOPO_FEATURES: tuple[str, ...] = FEATURES[len(OPTICAL) :]

_FAR_BELOW = -1.0e12  # "no terrain" height for the shadow sweep (finite: keeps interp exact)


def _as_dem(dem: np.ndarray) -> np.ndarray:
    arr = np.asarray(dem, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"DEM must be a 2-D (H, W) array, got shape {arr.shape}")
    if min(arr.shape) < 2:
        raise ValueError(f"DEM must be at least 2 x 2 pixels, got {arr.shape}")
    return arr


def _check_res(res: float) -> float:
    res = float(res)
    if not np.isfinite(res) or res <= 0:
        raise ValueError(f"pixel size must be a positive number of metres, got {res}")
    return res


def gradient(dem: np.ndarray, res: float) -> tuple[np.ndarray, np.ndarray]:
    """Horn (1981) surface gradient ``(dz/dx_east, dz/dy_north)``, dimensionless, (H, W).

    The 3 x 3 Horn kernel is applied everywhere: the DEM is extended by one pixel
    by linear extrapolation (odd reflection), so the border has no NaN ring and a
    plane keeps its exact gradient up to the edge. A NaN pixel makes the gradient
    NaN in its 3 x 3 neighbourhood (itself included) only.
    """
    z = _as_dem(dem)
    res = _check_res(res)
    p = np.pad(z, 1, mode="reflect", reflect_type="odd")
    a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]
    d, f = p[1:-1, :-2], p[1:-1, 2:]
    g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * res)
    dzdy = ((a + 2 * b + c) - (g + 2 * h + i)) / (8.0 * res)  # row 0 is north
    missing = np.isnan(z)  # the Horn kernel skips the centre pixel: mark it explicitly
    dzdx[missing] = np.nan
    dzdy[missing] = np.nan
    return dzdx, dzdy


def slope(dem: np.ndarray, res: float) -> np.ndarray:
    """Terrain slope in degrees (0..90), float32 (H, W); Horn finite differences."""
    gx, gy = gradient(dem, res)
    return np.degrees(np.arctan(np.hypot(gx, gy))).astype(np.float32)


def aspect(dem: np.ndarray, res: float) -> np.ndarray:
    """Direction a slope faces (downslope), degrees clockwise from north (0..360), float32.

    Exactly flat pixels have no aspect and are NaN.
    """
    gx, gy = gradient(dem, res)
    out = np.degrees(np.arctan2(-gx, -gy)) % 360.0
    out[(gx == 0) & (gy == 0)] = np.nan
    return out.astype(np.float32)


def _sun_vector(sun_azimuth: float, sun_elevation: float) -> tuple[float, float, float]:
    az, el = np.radians(float(sun_azimuth)), np.radians(float(sun_elevation))
    if not -90.0 <= float(sun_elevation) <= 90.0:
        raise ValueError(f"sun elevation must be within -90..90 degrees, got {sun_elevation}")
    return np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)


def cos_incidence(
    dem: np.ndarray, res: float, sun_azimuth: float, sun_elevation: float
) -> np.ndarray:
    """Cosine of the solar incidence angle on the terrain (-1..1), float64 (H, W).

    Dot product of the unit surface normal (Horn gradient) and the unit vector
    towards the sun; <= 0 means the slope faces away from the sun (self shadow).
    """
    gx, gy = gradient(dem, res)
    se, sn, su = _sun_vector(sun_azimuth, sun_elevation)
    return (-gx * se - gy * sn + su) / np.sqrt(gx * gx + gy * gy + 1.0)


def hillshade(
    dem: np.ndarray, res: float, sun_azimuth: float, sun_elevation: float
) -> np.ndarray:
    """Hillshade 0..1, float32 (H, W): cosine of the solar incidence angle, clipped at 0.

    1 = slope facing the sun perpendicular to its rays, sin(elevation) on flat
    ground, 0 on slopes facing away. Cast shadows are not included (see
    :func:`shadow_mask`).
    """
    cos_i = cos_incidence(dem, res, sun_azimuth, sun_elevation)
    return np.clip(cos_i, 0.0, 1.0).astype(np.float32)


def _sweep_cast_shadow(z: np.ndarray, dc: float, rise: float) -> np.ndarray:
    """Cast shadow of ``z`` (n, m) for a sun towards row -1 (i.e. "above" row 0).

    Moving one row towards the sun shifts the column by ``dc`` pixels and raises the
    sun ray by ``rise`` metres. The shadow envelope (the highest ray surface that
    reaches each pixel) is carried row by row, each row vectorised with linear
    interpolation between columns.
    """
    n, m = z.shape
    cols = np.arange(m, dtype=np.float64)
    src = cols + dc
    shadow = np.zeros(z.shape, dtype=bool)
    env = np.where(np.isnan(z[0]), _FAR_BELOW, z[0])
    for r in range(1, n):
        carried = np.interp(src, cols, env, left=_FAR_BELOW, right=_FAR_BELOW) - rise
        row = z[r]
        shadow[r] = carried > row + 1e-6
        env = np.fmax(row, carried)
    return shadow


def cast_shadow(
    dem: np.ndarray, res: float, sun_azimuth: float, sun_elevation: float
) -> np.ndarray:
    """Cast shadows only (bool, (H, W)): terrain towards the sun rises above the sun's rays.

    A line-of-sight sweep: rows (or columns, whichever axis is closer to the sun's
    direction) are visited from the sunward edge; each carries the shadow
    envelope to the next. Terrain outside the grid casts no shadow. Runs in
    O(H * W) with a Python loop over one axis only.
    """
    z = _as_dem(dem)
    res = _check_res(res)
    if sun_elevation <= 0:
        return np.ones(z.shape, dtype=bool)
    az = np.radians(float(sun_azimuth))
    s, c = np.sin(az), np.cos(az)  # sun towards east, north
    tan_el = np.tan(np.radians(float(sun_elevation)))
    if abs(c) >= abs(s):  # sweep along rows
        dc = s / abs(c)  # one row towards the sun moves east by tan(az) columns
        rise = res / abs(c) * tan_el
        if c > 0:  # sun in the north: start at row 0
            return _sweep_cast_shadow(z, dc, rise)
        return _sweep_cast_shadow(z[::-1], dc, rise)[::-1]
    dc = -c / abs(s)  # one column towards the sun moves the row by -cot(az) (north = up)
    rise = res / abs(s) * tan_el
    if s > 0:  # sun in the east: start at the last column
        return _sweep_cast_shadow(z.T[::-1], dc, rise)[::-1].T
    return _sweep_cast_shadow(z.T, dc, rise).T


def shadow_mask(
    dem: np.ndarray,
    res: float,
    sun_azimuth: float,
    sun_elevation: float,
    include_self: bool = True,
) -> np.ndarray:
    """Shadow mask, float32 (H, W): 1 = in shadow, 0 = sunlit, NaN where the DEM is NaN.

    Cast shadows (:func:`cast_shadow`) plus, with ``include_self``, self shadow on
    slopes facing away from the sun (cosine of incidence <= 0).
    """
    z = _as_dem(dem)
    mask = cast_shadow(z, res, sun_azimuth, sun_elevation)
    if include_self:
        mask |= cos_incidence(z, res, sun_azimuth, sun_elevation) <= 0
    out = mask.astype(np.float32)
    out[np.isnan(z)] = np.nan
    return out


def outline_pixels(glacier_mask: np.ndarray) -> np.ndarray:
    """Glacier pixels touching a non-glacier pixel (8-neighbours): the rasterised outline.

    The grid border is not an outline (glaciers cut by the scene edge stay open).
    Returns bool (H, W).
    """
    mask = np.asarray(glacier_mask, dtype=bool)
    inner = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=1)
    return mask & ~inner


def proximity(glacier_mask: np.ndarray, res: float) -> np.ndarray:
    """Distance to the glacier outline in metres, float32 (H, W).

    0 on the outline pixels (:func:`outline_pixels`) and outside glaciers, growing
    inward: the Euclidean distance from each glacier pixel centre to the nearest
    outline pixel centre (scipy ``distance_transform_edt``).
    """
    res = _check_res(res)
    mask = np.asarray(glacier_mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"glacier mask must be 2-D (H, W), got shape {mask.shape}")
    inner = mask & ~outline_pixels(mask)
    if not inner.any() or inner.all():
        return np.zeros(mask.shape, dtype=np.float32)
    return ndimage.distance_transform_edt(inner, sampling=res).astype(np.float32)


def min_max_scale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(x - lo) / (hi - lo)`` as float32 (computed in float64); ``x - lo`` when hi <= lo."""
    span = hi - lo if hi > lo else 1.0
    return ((np.asarray(x, dtype=np.float64) - lo) / span).astype(np.float32)


def scale_elevation(dem: np.ndarray, glacier_mask: np.ndarray) -> np.ndarray:
    """``(dem - min) / (max - min)`` with min and max over the glacier pixels, float32 (H, W).

    0..1 on the glacier (the study's preprocessing); pixels off the glacier may lie
    outside 0..1. A glacier of constant elevation gives ``dem - min``.
    """
    z = np.asarray(dem, dtype=np.float64)
    mask = np.asarray(glacier_mask, dtype=bool)
    if z.shape != mask.shape:
        raise ValueError(f"DEM {z.shape} and glacier mask {mask.shape} differ in shape")
    vals = z[mask & np.isfinite(z)]
    if vals.size == 0:
        raise ValueError("no glacier pixel with a valid elevation: cannot scale elevation")
    return min_max_scale(z, vals.min(), vals.max())


def scale_proximity(prox: np.ndarray) -> np.ndarray:
    """Proximity divided by its maximum (0..1), float32; all zeros if the maximum is 0."""
    p = np.asarray(prox, dtype=np.float64)
    top = np.nanmax(p) if np.isfinite(p).any() else 0.0
    if not top > 0:
        return np.zeros(p.shape, dtype=np.float32)
    return min_max_scale(p, 0.0, top)


def derive_features(
    dem: np.ndarray,
    glacier_mask: np.ndarray,
    res: float,
    sun_azimuth: float,
    sun_elevation: float,
) -> dict[str, np.ndarray]:
    """The five DEM-derived features as float32 (H, W) arrays, keyed by :data:`TOPO_FEATURES`.

    ``dem`` in metres, ``glacier_mask`` bool (True = glacier, all glaciers of the
    scene), both on the same projected grid of ``res`` metre pixels.
    """
    z = _as_dem(dem)
    return {
        "elevation": scale_elevation(z, glacier_mask),
        "slope": slope(z, res),
        "shadow_mask": shadow_mask(z, res, sun_azimuth, sun_elevation),
        "hillshade": hillshade(z, res, sun_azimuth, sun_elevation),
        "proximity": scale_proximity(proximity(glacier_mask, res)),
    }


def stack_features(optical: np.ndarray, topo: dict[str, np.ndarray]) -> np.ndarray:
    """Stack optical (H, W, 6) reflectance and :func:`derive_features` output into (H, W, 11).

    Channel order is :data:`utils.study.FEATURES`; returns float32.
    """
    opt = np.asarray(optical, dtype=np.float32)
    if opt.ndim != 3 or opt.shape[-1] != len(OPTICAL):
        raise ValueError(f"optical must be (H, W, {len(OPTICAL)}), got {opt.shape}")
    out = np.empty(opt.shape[:2] + (N_FEATURES,), dtype=np.float32)
    out[..., : len(OPTICAL)] = opt
    for k, name in enumerate(TOPO_FEATURES, start=len(OPTICAL)):
        if topo[name].shape != opt.shape[:2]:
            raise ValueError(f"{name} has shape {topo[name].shape}, expected {opt.shape[:2]}")
        out[..., k] = topo[name]
    return out
