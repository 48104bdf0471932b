"""The demo world: regions, the sun, and a scene's terrain and glaciers (shared by all dates).

A scene is a few km of a mountain massif on a real UTM grid (10 m pixels): a
regional cone with ridged fractal relief; valley glaciers radiate from it down
U-shaped valleys carved along meandering centrelines; glacier surfaces are smooth
and slightly convex; some tongues end in a moraine-dammed proglacial lake;
supraglacial ponds lie on gentle low parts; debris covers tongues and margins.
The DEM written out is smoother than the "true" surface used for illumination
(so the DEM shadow mask is good, not perfect). Geometry is in pixel units of the
scene, elevations in metres.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import Transformer
from scipy import ndimage

from utils import terrain as feat
from utils.demo.fields import fractal_noise, smooth_noise, smoothstep, unit
from utils.study import HALF

RES = 10.0  # metres per pixel


@dataclass(frozen=True)
class Region:
    """Where a scene lies: UTM zone, RGI region, typical elevations and dates."""

    name: str
    lat: float  # degrees north
    lon: float  # degrees east
    epsg: int  # UTM zone of the scenes
    rgi: str  # RGI 6 first-order region
    z_floor: float  # metres, lowest terrain of a scene
    dates: tuple[str, str, str]  # early, mid, late summer (YYYYMMDD)


REGIONS: dict[str, Region] = {
    "alps": Region("alps", 46.85, 10.75, 32632, "11", 2300.0, ("20190712", "20190816", "20190917")),
    "norway": Region(
        "norway", 61.65, 7.10, 32632, "08", 1100.0, ("20190725", "20190822", "20190911")
    ),
    "caucasus": Region(
        "caucasus", 43.15, 42.65, 32638, "12", 2900.0, ("20200720", "20200819", "20200915")
    ),
}


def sun_position(
    lat: float, lon: float, date: str, solar_hour: float = 10.5
) -> tuple[float, float]:
    """Approximate sun ``(azimuth, elevation)`` in degrees for a date (YYYYMMDD).

    Azimuth clockwise from north, elevation above the horizon, at local mean solar
    time ``solar_hour`` (Sentinel-2 crosses the equator at 10:30). Declination from
    Cooper's formula (error < 1 degree, enough for a demo); ``lon`` is unused
    because the time is local solar time.
    """
    del lon
    doy = dt.datetime.strptime(date, "%Y%m%d").timetuple().tm_yday
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
    phi = np.radians(lat)
    h = np.radians(15.0 * (solar_hour - 12.0))
    sin_el = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(h)
    el = np.degrees(np.arcsin(sin_el))
    az = np.degrees(np.arctan2(np.sin(h), np.cos(h) * np.sin(phi) - np.tan(decl) * np.cos(phi)))
    return float((az + 180.0) % 360.0), float(el)


def scene_transform(region: Region, scene_no: int, n: int) -> Affine:
    """North-up transform (``RES`` m pixels) of an ``n x n`` scene in the region's UTM CRS.

    Scene centres lie a few km apart per scene number.
    """
    to_utm = Transformer.from_crs(4326, region.epsg, always_xy=True)
    lon = region.lon + 0.09 * scene_no
    lat = region.lat + 0.03 * (scene_no % 2)
    x, y = to_utm.transform(lon, lat)
    x0 = np.floor((x - n * RES / 2) / RES) * RES
    y0 = np.ceil((y + n * RES / 2) / RES) * RES
    return Affine(RES, 0.0, float(x0), 0.0, -RES, float(y0))


# --------------------------------------------------------------------------- terrain


@dataclass
class Glacier:
    """One glacier of a scene (all geometry in pixel units of that scene)."""

    name: str
    rgi_id: str
    index: int  # 1-based label in the scene's glacier raster
    length: float  # pixels along the centreline
    w_head: float
    w_tongue: float
    s: np.ndarray  # (H, W) along-flow coordinate, 0 head, 1 terminus, > 1 down-valley
    d: np.ndarray  # (H, W) distance to the (extended) centreline, pixels
    mask: np.ndarray | None = None
    fold: int = -1


@dataclass
class Scene:
    """Terrain and glacier geometry shared by all dates of a scene."""

    name: str
    region: Region
    n: int
    transform: Affine
    dem: np.ndarray  # float32 metres, written to dem.tif and used for the features
    true_dem: np.ndarray  # float64, with fine detail, used for illumination
    glaciers: list[Glacier]
    labels: np.ndarray  # int (H, W), 0 none, k = glaciers[k-1]
    debris: np.ndarray  # bool, debris-covered glacier ice
    lake: np.ndarray  # bool, proglacial lakes
    ponds: np.ndarray  # bool, supraglacial ponds
    aspect_term: np.ndarray  # -1 north-facing .. +1 south-facing (smooth)
    sl_noise: np.ndarray  # unit noise for the snow line
    fl_noise: np.ndarray  # unit noise for the firn line
    refrozen_noise: np.ndarray
    offsnow_noise: np.ndarray
    firn_aar: float  # glacier area fraction above the firn line


def _width(s: np.ndarray, w_head: float, w_tongue: float, length: float) -> np.ndarray:
    """Glacier half-width (pixels) along flow; elliptical snout beyond the terminus."""
    sc = np.clip(s, 0.0, 1.0)
    w = w_tongue + (w_head - w_tongue) * (1.0 - sc) ** 1.8
    beyond = np.clip((s - 1.0) * length / w_tongue, 0.0, 1.0)
    return w * np.sqrt(1.0 - beyond**2)


def _centreline(rng: np.random.Generator, centre: tuple[float, float], theta: float,
                r_head: float, n: int, w_head: float, w_tongue: float,
                target: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Meandering centreline kept clear of the scene border (pixels).

    Returns rows, cols and arc length of its points (each (K,)) and the glacier
    length along it (at most ``target``).
    """
    step = 0.5
    total = target + 0.7 * n
    arc = np.arange(0.0, total, step)
    amp = rng.uniform(0.12, 0.3)
    lam = rng.uniform(0.7, 1.3) * target
    ph = rng.uniform(0, 2 * np.pi)
    th = theta + amp * (np.sin(2 * np.pi * arc / lam + ph) - np.sin(ph))
    walk_r = np.concatenate([[0.0], np.cumsum(np.sin(th))[:-1]]) * step
    walk_c = np.concatenate([[0.0], np.cumsum(np.cos(th))[:-1]]) * step
    rows = centre[0] + r_head * np.sin(theta) + walk_r
    cols = centre[1] + r_head * np.cos(theta) + walk_c
    border = np.minimum.reduce([rows, cols, n - 1 - rows, n - 1 - cols])
    length = target
    for _ in range(40):  # shrink until glacier plus snout plus lake fit inside
        w = _width(arc / length, w_head, w_tongue, length)
        need = HALF + 3 + np.where(arc <= length, w * 1.2, 0.0)
        need = np.maximum(need, np.where(np.abs(arc - length) < 3.5 * w_tongue, 4.5 * w_tongue, 0))
        if np.all(border[arc <= length + 4.5 * w_tongue] >= need[arc <= length + 4.5 * w_tongue]):
            break
        length *= 0.93
    return rows, cols, arc, length


def _line_fields(rows: np.ndarray, cols: np.ndarray, arc: np.ndarray, length: float,
                 n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distance (pixels) to the polyline and along-flow coordinate s = arc / length, (H, W)."""
    inside = (rows >= 0) & (rows <= n - 1) & (cols >= 0) & (cols <= n - 1)
    r = np.round(rows[inside]).astype(int)
    c = np.round(cols[inside]).astype(int)
    seeds = np.ones((n, n), dtype=bool)
    seeds[r, c] = False
    sval = np.zeros((n, n))
    sval[r, c] = arc[inside] / length
    d, (ir, ic) = ndimage.distance_transform_edt(seeds, return_indices=True)
    return d, sval[ir, ic]


def make_scene(rng: np.random.Generator, name: str, region: Region, scene_no: int, n: int,
               n_glaciers: int, first_index: int) -> Scene:
    """Terrain and ``n_glaciers`` glaciers of an ``n x n`` scene (``RES`` m pixels).

    Glaciers get RGI-like ids numbered from ``first_index``; their folds are set
    later (-1 here).
    """
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    centre = (n / 2 + rng.uniform(-0.04, 0.04) * n, n / 2 + rng.uniform(-0.04, 0.04) * n)
    theta0 = rng.uniform(0, 2 * np.pi)
    glaciers: list[Glacier] = []
    for k in range(n_glaciers):
        theta = theta0 + 2 * np.pi * k / n_glaciers + rng.uniform(-0.2, 0.2)
        w_head = 0.075 * n * rng.uniform(0.85, 1.15)
        w_tongue = 0.022 * n * rng.uniform(0.8, 1.2)
        rows, cols, arc, length = _centreline(
            rng, centre, theta, 0.08 * n, n, w_head, w_tongue, 0.40 * n * rng.uniform(0.9, 1.1)
        )
        d, s = _line_fields(rows, cols, arc, length, n)
        gid = first_index + k
        glaciers.append(
            Glacier(f"{name}-{'abcdefgh'[k]}", f"RGI60-{region.rgi}.9{gid:04d}", k + 1, length,
                    w_head, w_tongue, s, d)
        )

    # regional massif, ridged relief, U-shaped valleys
    relief = 0.16 * n * RES * rng.uniform(0.9, 1.1)
    r = np.hypot(yy - centre[0], xx - centre[1])
    z = region.z_floor + relief * (1.3 - (r / (0.5 * n)) ** 0.8)
    ridged = unit(ndimage.gaussian_filter(1.0 - np.abs(fractal_noise(rng, n, 4.0, 8.0)), 1.0))
    valley = np.zeros((n, n))
    carve = np.zeros((n, n))
    depth0 = 0.045 * n * RES * rng.uniform(0.85, 1.15)
    for g in glaciers:
        w = _width(np.minimum(g.s, 1.0), g.w_head, g.w_tongue, g.length)
        wv = 2.3 * w + 0.02 * n
        depth = depth0 * (0.4 + 0.6 * smoothstep(g.s))
        carve = np.maximum(carve, depth * np.clip(1.0 - (g.d / wv) ** 3, 0.0, 1.0))
        valley = np.maximum(valley, np.clip(1.0 - g.d / wv, 0.0, 1.0))
    z += 0.022 * n * RES * ridged * (1.0 - 0.7 * valley) - carve
    z += 0.004 * n * RES * fractal_noise(rng, n, 3.5, 6.0)

    # glacier masks: within the width (wavy margin), nearest centreline, a gap between
    width_noise = ndimage.gaussian_filter(rng.standard_normal((n, n)), 0.02 * n, mode="wrap")
    width_noise = unit(width_noise)
    near = np.argmin(np.stack([g.d for g in glaciers]), axis=0) + 1
    labels = np.zeros((n, n), dtype=np.int32)
    for g in glaciers:
        w = _width(g.s, g.w_head, g.w_tongue, g.length) * (1.0 + 0.12 * width_noise)
        m = (g.d < w) & (near == g.index)
        lab, count = ndimage.label(m)
        if count > 1:
            sizes = ndimage.sum(m, lab, index=np.arange(1, count + 1))
            m = lab == (1 + int(np.argmax(sizes)))
        labels[ndimage.binary_fill_holes(m)] = g.index
    for g in glaciers:  # keep a rock gap between neighbouring glaciers
        other = (labels > 0) & (labels != g.index)
        labels[(labels == g.index) & ndimage.binary_dilation(other, iterations=2)] = 0
    for g in glaciers:
        g.mask = labels == g.index
    ice = labels > 0

    # glacier surfaces: smooth, slightly convex, blended into the valley floor
    d_all = np.min(np.stack([g.d for g in glaciers]), axis=0)
    s_near = np.choose(near - 1, [g.s for g in glaciers])
    w_near = np.choose(near - 1, [_width(np.minimum(g.s, 1.0), g.w_head, g.w_tongue, g.length)
                                  for g in glaciers])
    bulge = 0.006 * n * RES * np.clip(1.0 - (d_all / w_near) ** 2, 0.0, 1.0)
    smooth_z = ndimage.gaussian_filter(z, 0.015 * n, mode="nearest") + bulge
    soft = np.clip(ndimage.gaussian_filter(ice.astype(float), 2.0) * 1.6, 0.0, 1.0)
    z = soft * smooth_z + (1.0 - soft) * z

    # proglacial lakes (the first glacier gets one where it fits, others by chance)
    lake = np.zeros((n, n), dtype=bool)
    for k, g in enumerate(glaciers):
        if k > 0 and rng.random() > 0.55:
            continue
        a = g.w_tongue * rng.uniform(1.4, 2.2) / g.length  # along flow, in s units
        b = g.w_tongue * rng.uniform(1.0, 1.5)  # across flow, pixels
        s0 = 1.0 + (g.w_tongue * 0.8) / g.length + a
        ell = ((g.s - s0) / a) ** 2 + (g.d / b) ** 2 < 1.0
        ell &= ~ndimage.binary_dilation(ice, iterations=2)
        ell &= (yy >= HALF) & (yy < n - HALF) & (xx >= HALF) & (xx < n - HALF)
        if ell.sum() >= 12:
            level = np.percentile(z[ell], 15)
            z[ell] = level
            lake |= ell

    # supraglacial ponds on gentle, low parts of the glaciers
    slope0 = feat.slope(z, RES)
    ponds = np.zeros((n, n), dtype=bool)
    for g in glaciers:
        inner = ndimage.binary_erosion(g.mask, iterations=3)
        cand = np.flatnonzero(inner & (g.s > 0.45) & (slope0 < 14))
        if cand.size == 0:
            continue
        count = int(rng.integers(4, 8)) if n >= 400 else int(rng.integers(2, 5))
        for idx in rng.choice(cand, size=min(count, cand.size), replace=False):
            pr, pc = divmod(int(idx), n)
            rad = rng.uniform(1.6, 3.4)
            disk = (yy - pr) ** 2 + ((xx - pc) * rng.uniform(0.7, 1.3)) ** 2 < rad**2
            ponds |= disk & g.mask
    z[ponds] -= 1.5

    # debris: tongues and lateral margins (fixed for the scene; snow may cover it)
    score = 1.1 * smoothstep((s_near - 0.55) / 0.4)
    score += 0.8 * smoothstep((d_all / w_near - 0.6) / 0.4)
    score += 0.45 * smooth_noise(rng, (n, n), 0.012 * n)
    debris = ice & (score > 0.95)

    asp = np.radians(feat.aspect(ndimage.gaussian_filter(z, 0.02 * n), RES))
    aspect_term = np.nan_to_num(-np.cos(asp))  # north-facing -1, south-facing +1
    true_dem = z + 2.5 * smooth_noise(rng, (n, n), 1.2) + 1.5 * rng.standard_normal((n, n))
    return Scene(
        name=name,
        region=region,
        n=n,
        transform=scene_transform(region, scene_no, n),
        dem=z.astype(np.float32),
        true_dem=true_dem,
        glaciers=glaciers,
        labels=labels,
        debris=debris,
        lake=lake,
        ponds=ponds,
        aspect_term=aspect_term,
        sl_noise=smooth_noise(rng, (n, n), 0.03 * n),
        fl_noise=smooth_noise(rng, (n, n), 0.03 * n),
        refrozen_noise=smooth_noise(rng, (n, n), 0.012 * n),
        offsnow_noise=smooth_noise(rng, (n, n), 0.01 * n),
        firn_aar=float(rng.uniform(0.64, 0.74)),
    )

