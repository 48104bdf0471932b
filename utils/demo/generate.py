"""Synthetic but physically plausible demo dataset in the study's layout.

``python -m utils.demo.generate OUT_DIR [--seed N] [--size tiny|small] [--overwrite]``
or :func:`generate`. The same seed and size give byte-identical files.

What is simulated, per scene (a few km of a mountain massif on a real UTM grid,
10 m pixels) and per acquisition date:

- terrain: a massif (regional cone) with ridged fractal relief; valley glaciers
  radiate from it down U-shaped valleys carved along meandering centrelines;
  glacier surfaces are smooth and slightly convex; some tongues end in a
  moraine-dammed proglacial lake;
- facies: snow above a transient snow line that rises through the summer
  (date-dependent, lower on north-facing ice, wavy), firn between the snow line
  and the previous years' firn line (exposed late in summer), refrozen-like patches
  just below the snow line, bare ice below, debris on tongues and margins,
  supraglacial ponds and lakes (water), off-glacier rock (labelled debris) and
  snow patches;
- illumination: the sun at ~10:30 local solar time (Sentinel-2 overpass) for the
  scene's date and latitude; cast and self shadows (utils.terrain) and
  slope-dependent direct light computed on a "true" surface that has more fine
  detail than the DEM written out (so the DEM shadow mask is good, not perfect);
  shadowed surfaces keep only the diffuse (skylight) fraction of each band;
- spectra: class spectra from measured Sentinel-2 reflectance (utils.demo.spectra),
  drawn as correlated log-normal fields (a per-date offset plus smooth and white
  spatial texture), linearly mixed across class boundaries; clouds are blended
  in with a soft opacity; sensor noise and L2A quantisation (1e-4);
- labels: points on (and some around) each glacier, stratified by class, with
  10-15 % of the facies labels flipped among plausible confusions (listed in
  ``planted_noise.csv``; file names carry the flipped, given class).

Layout (details in :data:`README_TEXT`, written as ``OUT_DIR/README.txt``):
``patches/{fold}_{glacier}_{date}_{id}_{class}.tif`` (33 x 33 x 11 float32, the
scene's UTM CRS), ``stats.json``, ``planted_noise.csv`` and one folder per scene and
date, ``scenes/<scene>_<date>/`` (several glaciers share a scene, e.g. ``alps1``
holds ``alps1-a`` and ``alps1-b``) with ``optical.tif``, ``dem.tif``, ``truth.tif``,
``outlines.geojson`` and ``points.geojson`` (both EPSG:4326) and ``scene.json``
(sun angles for the shadow mask and hillshade).

Sizes: ``tiny`` (CI) 3 scenes of 256 x 256 px x 2 dates, 6 glaciers, ~380 patches,
a few seconds; ``small`` (``make demo``) 6 scenes of 512 x 512 px x 3 dates, 14
glaciers, ~3400 patches, ~20-40 s and ~230 MB.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry import mapping, shape
from shapely.ops import unary_union

from utils import terrain as feat
from utils.study import (
    CLASS_INDEX,
    CLASSES,
    FACIES_CLASSES,
    FEATURES,
    N_FEATURES,
    OPTICAL,
    PATCH_SIZE,
)
from utils.normalisation import Stats, save_stats, stats_from_array
from utils.demo.spectra import ATTRIBUTION, SHADOW_FACTOR, SPECTRA

PATCH = PATCH_SIZE
HALF = PATCH // 2
RES = 10.0  # metres per pixel
N_FOLDS = 6
NOISE_RATE = 0.12  # fraction of facies labels flipped
MARKER = "Glacier-facies demo dataset"

#: Plausible label confusions: true class -> (given classes, probabilities).
CONFUSIONS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "ice": (("firn", "refrozen-like", "debris"), (0.4, 0.35, 0.25)),
    "snow": (("firn",), (1.0,)),
    "firn": (("snow", "ice"), (0.6, 0.4)),
    "refrozen-like": (("ice",), (1.0,)),
    "debris": (("ice",), (1.0,)),
}

#: Share of each class among the points of one glacier and date (renormalised
#: over the classes present), and the share of those taken off the glacier.
CLASS_WEIGHTS = {
    "ice": 0.20,
    "snow": 0.19,
    "debris": 0.13,
    "firn": 0.13,
    "shadow": 0.09,
    "refrozen-like": 0.09,
    "water": 0.07,
    "cloud": 0.10,
}
OFF_GLACIER = {"snow": 0.1, "debris": 0.35, "shadow": 0.35, "water": 0.6, "cloud": 0.5}

SURFACE = ("ice", "snow", "debris", "firn", "refrozen-like", "water")


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
#: Snow-covered fraction of the glacier area (accumulation-area ratio of the transient
#: snow line) per date index: early, mid and late summer.
SNOW_AAR = (0.80, 0.60, 0.42)


@dataclass(frozen=True)
class SizeSpec:
    """A dataset size: scene edge (pixels), scenes (region, glaciers), dates, points."""

    scene_px: int
    scenes: tuple[tuple[str, int], ...]
    date_indices: tuple[int, ...]
    points_per_glacier_date: int


SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec(256, (("alps", 2), ("norway", 2), ("caucasus", 2)), (1, 2), 34),
    "small": SizeSpec(
        512,
        (("alps", 3), ("alps", 2), ("norway", 2), ("norway", 3), ("caucasus", 2), ("caucasus", 2)),
        (0, 1, 2),
        84,
    ),
}

GTIFF_PATCH = {
    "driver": "GTiff",
    "dtype": "float32",
    "count": N_FEATURES,
    "height": PATCH,
    "width": PATCH,
    "compress": "deflate",
    "predictor": 3,
    "zlevel": 6,
    "interleave": "pixel",
}


# --------------------------------------------------------------------------- noise helpers


def _unit(a: np.ndarray) -> np.ndarray:
    a = a - a.mean()
    sd = a.std()
    return a / sd if sd > 0 else a


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, zero mean, unit std, (H, W)."""
    return _unit(ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap"))


def _fractal(rng: np.random.Generator, n: int, beta: float, min_wavelength: float = 2.0):
    """Periodic power-law (1/f^beta power) noise, zero mean, unit std, (n, n)."""
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    amp[f > 1.0 / min_wavelength] = 0.0
    spec = rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)
    return _unit(np.fft.irfft2(spec * amp, s=(n, n)))


def _texture(rng: np.random.Generator, count: int, n: int) -> np.ndarray:
    """``count`` independent texture fields (count, n, n), unit std: white noise plus
    Gaussian-smoothed noise at ~1.5 and ~6 pixels (filtered in the Fourier domain)."""
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    f2 = (2 * np.pi) ** 2 * (fy**2 + fx**2)
    gains = []
    for sigma in (1.5, 6.0):
        g = np.exp(-0.5 * sigma**2 * f2)
        gains.append(g / np.sqrt(np.mean(g**2)))  # unit variance for unit white noise
    transfer = np.sqrt(0.2) + np.sqrt(0.45) * gains[0] + np.sqrt(0.35) * gains[1]
    spec = np.fft.rfft2(rng.standard_normal((count, n, n)), axes=(1, 2))
    out = np.fft.irfft2(spec * transfer, s=(n, n), axes=(1, 2))
    out -= out.mean(axis=(1, 2), keepdims=True)
    return out / out.std(axis=(1, 2), keepdims=True)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


# --------------------------------------------------------------------------- sun and grid


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


def _scene_transform(region: Region, scene_no: int, n: int) -> Affine:
    """North-up transform of a scene: its centre a few km apart per scene number."""
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


def _centreline(rng, centre, theta, r_head, n, w_head, w_tongue, target):
    """Meandering centreline (rows, cols, arc length) kept clear of the scene border."""
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


def _line_fields(rows, cols, arc, length, n):
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


def _make_scene(rng: np.random.Generator, name: str, region: Region, scene_no: int, n: int,
                n_glaciers: int, first_index: int) -> Scene:
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
    ridged = _unit(ndimage.gaussian_filter(1.0 - np.abs(_fractal(rng, n, 4.0, 8.0)), 1.0))
    valley = np.zeros((n, n))
    carve = np.zeros((n, n))
    depth0 = 0.045 * n * RES * rng.uniform(0.85, 1.15)
    for g in glaciers:
        w = _width(np.minimum(g.s, 1.0), g.w_head, g.w_tongue, g.length)
        wv = 2.3 * w + 0.02 * n
        depth = depth0 * (0.4 + 0.6 * _smoothstep(g.s))
        carve = np.maximum(carve, depth * np.clip(1.0 - (g.d / wv) ** 3, 0.0, 1.0))
        valley = np.maximum(valley, np.clip(1.0 - g.d / wv, 0.0, 1.0))
    z += 0.022 * n * RES * ridged * (1.0 - 0.7 * valley) - carve
    z += 0.004 * n * RES * _fractal(rng, n, 3.5, 6.0)

    # glacier masks: within the width (wavy margin), nearest centreline, a gap between
    width_noise = ndimage.gaussian_filter(rng.standard_normal((n, n)), 0.02 * n, mode="wrap")
    width_noise = _unit(width_noise)
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
    score = 1.1 * _smoothstep((s_near - 0.55) / 0.4)
    score += 0.8 * _smoothstep((d_all / w_near - 0.6) / 0.4)
    score += 0.45 * _smooth(rng, (n, n), 0.012 * n)
    debris = ice & (score > 0.95)

    asp = np.radians(feat.aspect(ndimage.gaussian_filter(z, 0.02 * n), RES))
    aspect_term = np.nan_to_num(-np.cos(asp))  # north-facing -1, south-facing +1
    true_dem = z + 2.5 * _smooth(rng, (n, n), 1.2) + 1.5 * rng.standard_normal((n, n))
    return Scene(
        name=name,
        region=region,
        n=n,
        transform=_scene_transform(region, scene_no, n),
        dem=z.astype(np.float32),
        true_dem=true_dem,
        glaciers=glaciers,
        labels=labels,
        debris=debris,
        lake=lake,
        ponds=ponds,
        aspect_term=aspect_term,
        sl_noise=_smooth(rng, (n, n), 0.03 * n),
        fl_noise=_smooth(rng, (n, n), 0.03 * n),
        refrozen_noise=_smooth(rng, (n, n), 0.012 * n),
        offsnow_noise=_smooth(rng, (n, n), 0.01 * n),
        firn_aar=float(rng.uniform(0.64, 0.74)),
    )


# --------------------------------------------------------------------------- one date


@dataclass
class Acquisition:
    """One scene on one date: reflectance, features, class abundances."""

    date: str
    sun_azimuth: float
    sun_elevation: float
    optical: np.ndarray  # float32 (H, W, 6) surface reflectance
    features: np.ndarray  # float32 (H, W, 11)
    truth: np.ndarray  # uint8 (H, W) class index
    purity: np.ndarray  # float (H, W) abundance of the truth class
    snow_line: float
    firn_line: float
    cloud_cover: float


def _surface_classes(scene: Scene, date_index: int, rng: np.random.Generator):
    """Surface class index map (before shadow/cloud) and the snow and firn line elevations."""
    z = scene.dem.astype(np.float64)
    ice = scene.labels > 0
    zi = z[ice]
    span = float(zi.max() - zi.min())
    aar = SNOW_AAR[date_index] + rng.uniform(-0.05, 0.05)
    snow_line = float(np.quantile(zi, 1.0 - aar))
    firn_line = float(np.quantile(zi, 1.0 - scene.firn_aar))
    sl = snow_line + span * (0.05 * scene.aspect_term + 0.05 * scene.sl_noise)
    fl = firn_line + span * 0.04 * scene.fl_noise
    slope_deg = feat.slope(z, RES)

    cls = np.full(z.shape, CLASS_INDEX["debris"], dtype=np.uint8)  # off glacier: rock
    cls[ice] = CLASS_INDEX["ice"]
    cls[ice & (z > fl)] = CLASS_INDEX["firn"]
    refrozen = ice & (z > sl - 0.12 * span) & (z <= sl) & (scene.refrozen_noise > 0.2)
    cls[refrozen] = CLASS_INDEX["refrozen-like"]
    cls[ice & scene.debris & (z <= sl)] = CLASS_INDEX["debris"]
    cls[ice & (z > sl)] = CLASS_INDEX["snow"]
    cls[scene.ponds & (z <= sl)] = CLASS_INDEX["water"]
    off_snow = ~ice & (z > sl + 0.1 * span - 0.08 * span * scene.offsnow_noise) & (slope_deg < 32)
    cls[off_snow] = CLASS_INDEX["snow"]
    cls[scene.lake] = CLASS_INDEX["water"]
    return cls, snow_line, firn_line


def _class_field(rng, name: str, n: int, scene_z: np.ndarray) -> np.ndarray:
    """Reflectance field (H, W, 6) of one class: correlated log-normal bands.

    The latent standard normal per band is a per-date offset (45 % of the variance)
    plus spatial texture (smooth at two scales and white); band correlations
    follow the class covariance, marginals are log-normal with the class mean
    and standard deviation (positive reflectance).
    """
    spec = SPECTRA[name]
    chol = np.linalg.cholesky(spec.corr + 1e-9 * np.eye(6))
    tex = np.moveaxis(_texture(rng, 6, n), 0, -1)
    latent = np.sqrt(0.45) * scene_z + np.sqrt(0.55) * (tex @ chol.T)
    mean, sd = spec.mean, spec.std
    s2 = np.log1p((sd / mean) ** 2)
    mu = np.log(mean) - s2 / 2
    return np.exp(mu + np.sqrt(s2) * latent)


def _acquire(scene: Scene, date_index: int, rng: np.random.Generator) -> Acquisition:
    n = scene.n
    date = scene.region.dates[date_index]
    az, el = sun_position(scene.region.lat, scene.region.lon, date)
    cls, snow_line, firn_line = _surface_classes(scene, date_index, rng)

    # sub-pixel mixing: class abundances softened across boundaries
    present = [CLASS_INDEX[c] for c in SURFACE if (cls == CLASS_INDEX[c]).any()]
    abund = {k: ndimage.gaussian_filter((cls == k).astype(np.float64), 0.7) for k in present}

    # illumination on the true surface
    true_shadow = feat.shadow_mask(scene.true_dem, RES, az, el)
    sh = np.clip(ndimage.gaussian_filter(true_shadow, 0.6), 0.0, 1.0)
    cos_i = feat.cos_incidence(scene.true_dem, RES, az, el)
    direct = np.clip(np.maximum(cos_i, 0.0) / np.sin(np.radians(el)), 0.0, 1.5) * (1.0 - sh)
    illum = SHADOW_FACTOR + (1.0 - SHADOW_FACTOR) * direct[..., None]

    refl = np.zeros((n, n, 6))
    for k in present:
        name = CLASSES[k]
        offset = rng.standard_normal(6) @ np.linalg.cholesky(SPECTRA[name].corr).T
        refl += abund[k][..., None] * _class_field(rng, name, n, offset)
    refl *= illum * rng.normal(1.0, 0.03)

    # clouds: soft opacity from large-scale noise
    cover = float(rng.uniform(0.03, 0.14))
    field = _fractal(rng, n, 3.2, 6.0)
    thr = np.quantile(field, 1.0 - cover)
    alpha = _smoothstep((field - thr) / 0.6 + 0.5)
    cloud_z = rng.standard_normal(6) @ np.linalg.cholesky(SPECTRA["cloud"].corr).T
    cloud = _class_field(rng, "cloud", n, cloud_z)
    refl = (1.0 - alpha[..., None]) * refl + alpha[..., None] * cloud
    refl += rng.normal(0.0, 0.004, refl.shape)
    optical = (np.round(np.clip(refl, 0.0, 1.6) * 1e4) / 1e4).astype(np.float32)

    # truth: largest final abundance among cloud, shadow and the surface classes
    layers = np.zeros((len(CLASSES), n, n))
    for k in present:
        layers[k] = (1.0 - alpha) * (1.0 - sh) * abund[k]
    layers[CLASS_INDEX["shadow"]] = (1.0 - alpha) * sh
    layers[CLASS_INDEX["cloud"]] = alpha
    truth = np.argmax(layers, axis=0).astype(np.uint8)
    purity = np.max(layers, axis=0)

    ice = scene.labels > 0
    topo = feat.derive_features(scene.dem, ice, RES, az, el)
    return Acquisition(
        date=date,
        sun_azimuth=az,
        sun_elevation=el,
        optical=optical,
        features=feat.stack_features(optical, topo),
        truth=truth,
        purity=purity,
        snow_line=snow_line,
        firn_line=firn_line,
        cloud_cover=float((alpha > 0.5).mean()),
    )


# --------------------------------------------------------------------------- points


def _sample_points(scene: Scene, acq: Acquisition, glacier: Glacier, catchment: np.ndarray,
                   blocked: np.ndarray, n_points: int, rng: np.random.Generator):
    """Stratified random points (row, col, true class index) for one glacier and date."""
    n = scene.n
    ok = np.zeros((n, n), dtype=bool)
    ok[HALF : n - HALF, HALF : n - HALF] = True
    ok &= catchment & (acq.purity >= 0.6) & ~blocked
    on = ok & glacier.mask
    off = ok & ~(scene.labels > 0)
    avail = {}
    for name in CLASSES:
        k = CLASS_INDEX[name]
        is_k = acq.truth == k
        avail[name] = (np.flatnonzero(on & is_k), np.flatnonzero(off & is_k))
    present = [c for c in CLASSES if avail[c][0].size + avail[c][1].size >= 3]
    total_w = sum(CLASS_WEIGHTS[c] for c in present)
    points = []
    for name in present:
        want = max(1, int(round(n_points * CLASS_WEIGHTS[name] / total_w)))
        n_off = int(round(want * OFF_GLACIER.get(name, 0.0)))
        cand_on, cand_off = avail[name]
        if cand_off.size == 0:
            n_off = 0
        if cand_on.size == 0:
            n_off = want
        for cand, count in ((cand_off, n_off), (cand_on, want - n_off)):
            taken = 0
            for idx in rng.permutation(cand):
                if taken >= count:
                    break
                r, c = divmod(int(idx), n)
                if blocked[r, c]:
                    continue
                blocked[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3] = True
                points.append((r, c, CLASS_INDEX[name]))
                taken += 1
    points.sort()
    return points


def _flip_labels(true_idx: list[int], rng: np.random.Generator, rate: float) -> list[int]:
    """Given (noisy) class indices: ``rate`` of the facies labels flipped by CONFUSIONS."""
    given = list(true_idx)
    facies = [i for i, k in enumerate(true_idx) if CLASSES[k] in FACIES_CLASSES]
    n_flip = int(round(rate * len(facies)))
    for i in sorted(rng.choice(facies, size=n_flip, replace=False).tolist()) if n_flip else []:
        targets, probs = CONFUSIONS[CLASSES[true_idx[i]]]
        given[i] = CLASS_INDEX[targets[int(rng.choice(len(targets), p=probs))]]
    return given


# --------------------------------------------------------------------------- writing


def _write_tif(path: Path, arr: np.ndarray, profile: dict, descriptions=None) -> None:
    """Write (H, W, C) or (H, W) ``arr`` as GeoTIFF via a temporary name."""
    tmp = path.with_name(f".{path.name}.tmp")
    data = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            if descriptions:
                dst.descriptions = tuple(descriptions)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _round_coords(obj, ndigits: int = 8):
    if isinstance(obj, float):
        return round(obj, ndigits)
    if isinstance(obj, list | tuple):
        return [_round_coords(o, ndigits) for o in obj]
    return obj


def _outlines(scene: Scene, to_wgs: Transformer) -> list[dict]:
    """One GeoJSON feature per glacier: its mask polygonised, in EPSG:4326."""
    feats = []
    polys: dict[int, list] = {}
    for geom, value in shapes(scene.labels, mask=scene.labels > 0, transform=scene.transform):
        polys.setdefault(int(value), []).append(shape(geom))
    for g in scene.glaciers:
        poly = unary_union(polys[g.index])
        gj = mapping(poly)

        def project(ring):
            xs, ys = zip(*ring, strict=True)
            lon, lat = to_wgs.transform(np.array(xs), np.array(ys))
            return [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]

        if gj["type"] == "Polygon":
            coords = [project(ring) for ring in gj["coordinates"]]
        else:
            coords = [[project(ring) for ring in part] for part in gj["coordinates"]]
        feats.append(
            {
                "type": "Feature",
                "properties": {
                    "RGIId": g.rgi_id,
                    "Name": g.name,
                    "fold": g.fold,
                    "area_km2": round(float(g.mask.sum()) * RES * RES / 1e6, 4),
                },
                "geometry": {"type": gj["type"], "coordinates": _round_coords(coords)},
            }
        )
    return feats


def _feature_collection(name: str, feats: list[dict]) -> str:
    return json.dumps({"type": "FeatureCollection", "name": name, "features": feats}) + "\n"


README_TEXT = f"""{MARKER}
{"=" * len(MARKER)}

Synthetic, physically plausible data in the layout of Maslov et al., "Automating
glacier facies classification". Made by `python -m utils.demo.generate` (size {{size}},
seed {{seed}}); the same size and seed give byte-identical files. Not real data:
use it to run and test the pipeline, not to draw scientific conclusions.

patches/{{{{fold}}}}_{{{{glacier}}}}_{{{{date}}}}_{{{{id}}}}_{{{{class}}}}.tif
    One GeoTIFF per labelled point: 33 x 33 pixels, 11 float32 bands in the order
    {", ".join(FEATURES)}
    georeferenced (the scene's UTM CRS; transform of the patch window, 10 m pixels);
    the labelled pixel is the centre (row 16, column 16).
    fold 0-5 (split by glacier), glacier name (no underscores), date YYYYMMDD,
    id = running number, class = the GIVEN label (10-15 % of facies labels are
    deliberately wrong, see planted_noise.csv).
    Bands: blue..swir2 = surface reflectance (Sentinel-2 L2A-like, 0..~1.2);
    elevation = DEM min-max scaled over the glacier pixels of the scene;
    slope = degrees; shadow_mask = 1 in cast or self shadow (from the DEM and the
    sun), 0 sunlit; hillshade = cosine of solar incidence, 0..1; proximity =
    distance to the glacier outline / its maximum over the scene.

stats.json
    Per-feature minima and maxima over all patches (utils.normalisation).

planted_noise.csv
    file, true_class, given_class of every deliberately flipped label (only
    facies classes, only plausible confusions: firn<->snow, firn<->ice,
    refrozen-like<->ice, debris<->ice).

scenes/<scene>_<date>/
    Several glaciers share a scene (a massif); <scene> is e.g. alps1, the
    glaciers in it are alps1-a, alps1-b, ... .
    optical.tif   6 bands float32 surface reflectance (blue, green, red, nir,
                  swir1, swir2), UTM CRS (EPSG:32632 Alps/Norway, EPSG:32638
                  Caucasus), 10 m pixels, nodata NaN
    dem.tif       float32 elevation in metres, same grid, nodata NaN
    truth.tif     uint8 true class index per pixel (0 ice .. 7 cloud), same grid,
                  nodata 255; for evaluating maps only, never for training
    outlines.geojson  one polygon per glacier (RGIId made up: RGI60-RR.9xxxx,
                  Name, fold), EPSG:4326 longitude/latitude (RFC 7946)
    points.geojson    the labelled points, EPSG:4326, with class (given), fold,
                  file, glacier, RGIId, row/col in the scene grid, x/y in the
                  scene CRS
    scene.json    CRS, transform, sun azimuth/elevation (degrees, azimuth
                  clockwise from north) needed for the shadow mask and
                  hillshade, snow line and firn line (metres), cloud cover

Spectra: {ATTRIBUTION}
Firn, refrozen-like and cloud spectra are set from the literature (utils/spectra.py).
"""


# --------------------------------------------------------------------------- driver


def _prepare_out(out_dir: Path, overwrite: bool) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise FileExistsError(f"{out_dir} exists and is not a folder")
        readme = out_dir / "README.txt"
        ours = readme.is_file() and readme.read_text().startswith(MARKER)
        if any(out_dir.iterdir()) and not (ours or overwrite):
            raise FileExistsError(
                f"{out_dir} exists, is not empty and is not a demo dataset; "
                "choose another folder or pass overwrite=True (--overwrite)"
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "patches").mkdir(parents=True)
    (tmp / "scenes").mkdir()
    return tmp


def _finish_out(tmp: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old)


def generate(
    out_dir: str | os.PathLike,
    size: str = "small",
    seed: int = 0,
    noise_rate: float = NOISE_RATE,
    overwrite: bool = False,
    verbose: bool = False,
) -> dict:
    """Write the demo dataset to ``out_dir`` and return a summary dict.

    ``size`` is ``"tiny"`` (6 glaciers, ~400 patches, 256 px scenes, for CI) or
    ``"small"`` (14 glaciers, ~3500 patches, 512 px scenes). The folder is built
    under a temporary name beside ``out_dir`` and renamed when complete; an
    existing demo dataset there is replaced, any other non-empty folder only with
    ``overwrite``.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    if not 0.0 <= noise_rate <= 0.5:
        raise ValueError(f"noise_rate must be within 0..0.5, got {noise_rate}")
    spec = SIZES[size]
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    tmp = _prepare_out(out_dir, overwrite)
    try:
        summary = _generate_into(tmp, spec, size, int(seed), noise_rate, verbose)
        _finish_out(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary["out_dir"] = str(out_dir)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def _generate_into(out: Path, spec: SizeSpec, size: str, seed: int, noise_rate: float,
                   verbose: bool) -> dict:
    n = spec.scene_px
    # scenes and their glaciers
    scenes: list[Scene] = []
    per_region: dict[str, int] = {}
    gid = 1
    for i, (region_name, n_glaciers) in enumerate(spec.scenes):
        region = REGIONS[region_name]
        per_region[region_name] = per_region.get(region_name, 0) + 1
        name = f"{region_name}{per_region[region_name]}"
        rng = np.random.default_rng([seed, 1, i])
        scenes.append(_make_scene(rng, name, region, per_region[region_name], n, n_glaciers, gid))
        gid += n_glaciers
    glaciers = [g for s in scenes for g in s.glaciers]
    order = np.random.default_rng([seed, 2]).permutation(len(glaciers))
    for rank, gi in enumerate(order):
        glaciers[int(gi)].fold = rank % N_FOLDS

    counts = dict.fromkeys(CLASSES, 0)
    true_counts = dict.fromkeys(CLASSES, 0)
    fold_classes: dict[int, set[str]] = {f: set() for f in range(N_FOLDS)}
    fold_counts = dict.fromkeys(range(N_FOLDS), 0)
    noise_rows: list[tuple[str, str, str]] = []
    stats: Stats | None = None
    running_id = 0
    n_facies = 0
    n_acq = 0
    for si, scene in enumerate(scenes):
        crs = f"EPSG:{scene.region.epsg}"
        to_wgs = Transformer.from_crs(scene.region.epsg, 4326, always_xy=True)
        outlines = _outlines(scene, to_wgs)
        # catchments: pixels whose nearest glacier (within a buffer) is this one
        dists = np.stack([ndimage.distance_transform_edt(~g.mask) for g in scene.glaciers])
        nearest = np.argmin(dists, axis=0)
        buffer_px = 0.07 * n
        for di in spec.date_indices:
            rng = np.random.default_rng([seed, 3, si, di])
            acq = _acquire(scene, di, rng)
            n_acq += 1
            folder = out / "scenes" / f"{scene.name}_{acq.date}"
            folder.mkdir()
            blocked = np.zeros((n, n), dtype=bool)
            point_feats = []
            patches = []
            for k, g in enumerate(scene.glaciers):
                catchment = (nearest == k) & (dists[k] <= buffer_px)
                pts = _sample_points(scene, acq, g, catchment, blocked,
                                     spec.points_per_glacier_date, rng)
                true_idx = [p[2] for p in pts]
                given_idx = _flip_labels(true_idx, rng, noise_rate)
                n_facies += sum(CLASSES[t] in FACIES_CLASSES for t in true_idx)
                for (r, c, t), gv in zip(pts, given_idx, strict=True):
                    running_id += 1
                    cname = CLASSES[gv]
                    fname = f"{g.fold}_{g.name}_{acq.date}_{running_id}_{cname}.tif"
                    patch = acq.features[r - HALF : r + HALF + 1, c - HALF : c + HALF + 1]
                    window = Affine.translation(c - HALF, r - HALF)
                    profile = dict(GTIFF_PATCH, crs=crs, transform=scene.transform @ window)
                    _write_tif(out / "patches" / fname, patch, profile, FEATURES)
                    patches.append(patch)
                    counts[cname] += 1
                    true_counts[CLASSES[t]] += 1
                    fold_counts[g.fold] += 1
                    fold_classes[g.fold].add(cname)
                    if gv != t:
                        noise_rows.append((fname, CLASSES[t], cname))
                    x, y = scene.transform @ (c + 0.5, r + 0.5)
                    lon, lat = to_wgs.transform(x, y)
                    point_feats.append({
                        "type": "Feature",
                        "properties": {
                            "id": running_id, "class": cname, "fold": g.fold, "file": fname,
                            "glacier": g.name, "RGIId": g.rgi_id, "date": acq.date,
                            "row": r, "col": c, "x": float(x), "y": float(y),
                        },
                        "geometry": {"type": "Point",
                                     "coordinates": _round_coords([float(lon), float(lat)])},
                    })
            if patches:
                part = stats_from_array(np.stack(patches))
                stats = part if stats is None else Stats(
                    np.minimum(stats.min, part.min), np.maximum(stats.max, part.max))
            _write_scene(folder, scene, acq, outlines, point_feats, crs)
            if verbose:
                print(f"  {folder.name}: {len(patches)} patches", file=sys.stderr)

    if stats is None:
        raise RuntimeError("no patches were generated")
    missing = [c for c in CLASSES if counts[c] == 0]
    if missing:
        raise RuntimeError(f"generated data lacks classes {missing}; try another seed")
    save_stats(stats, out / "stats.json")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "true_class", "given_class"])
    writer.writerows(noise_rows)
    _write_text(out / "planted_noise.csv", buf.getvalue())
    _write_text(out / "README.txt", README_TEXT.format(size=size, seed=seed))
    return {
        "size": size,
        "seed": seed,
        "n_patches": running_id,
        "n_glaciers": len(glaciers),
        "n_scenes": len(scenes),
        "n_acquisitions": n_acq,
        "scene_px": n,
        "class_counts": counts,
        "true_class_counts": true_counts,
        "fold_counts": {int(k): v for k, v in fold_counts.items()},
        "fold_classes": {int(k): sorted(v, key=CLASSES.index) for k, v in fold_classes.items()},
        "n_flipped": len(noise_rows),
        "flipped_fraction_of_facies": round(len(noise_rows) / max(n_facies, 1), 4),
    }


def _write_scene(folder: Path, scene: Scene, acq: Acquisition, outlines: list[dict],
                 points: list[dict], crs: str) -> None:
    n = scene.n
    base = {
        "driver": "GTiff",
        "height": n,
        "width": n,
        "crs": crs,
        "transform": scene.transform,
        "compress": "deflate",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    _write_tif(folder / "optical.tif", acq.optical,
               dict(base, dtype="float32", count=6, nodata=np.nan, predictor=3), OPTICAL)
    _write_tif(folder / "dem.tif", scene.dem,
               dict(base, dtype="float32", count=1, nodata=np.nan, predictor=3), ("elevation",))
    _write_tif(folder / "truth.tif", acq.truth,
               dict(base, dtype="uint8", count=1, nodata=255), ("class",))
    _write_text(folder / "outlines.geojson", _feature_collection("outlines", outlines))
    _write_text(folder / "points.geojson", _feature_collection("points", points))
    meta = {
        "scene": scene.name,
        "date": acq.date,
        "region": scene.region.name,
        "crs": crs,
        "res_m": RES,
        "width": n,
        "height": n,
        "transform": list(scene.transform)[:6],
        "sun_azimuth_deg": round(acq.sun_azimuth, 3),
        "sun_elevation_deg": round(acq.sun_elevation, 3),
        "snow_line_m": round(acq.snow_line, 1),
        "firn_line_m": round(acq.firn_line, 1),
        "cloud_cover": round(acq.cloud_cover, 4),
        "glaciers": [{"name": g.name, "RGIId": g.rgi_id, "fold": g.fold} for g in scene.glaciers],
        "classes": list(CLASSES),
    }
    _write_text(folder / "scene.json", json.dumps(meta, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.demo.generate",
        description="Write a synthetic glacier-facies dataset in the study's layout.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT_DIR even if it is not a demo dataset")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        s = generate(args.out_dir, args.size, args.seed, overwrite=args.overwrite,
                     verbose=args.verbose)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{s['out_dir']}: {s['n_patches']} patches, {s['n_glaciers']} glaciers, "
          f"{s['n_acquisitions']} scene dates ({s['size']}, seed {s['seed']}, {s['seconds']} s)")
    print("classes: " + ", ".join(f"{k} {v}" for k, v in s["class_counts"].items()))
    print("folds:   " + ", ".join(f"{k}: {v}" for k, v in s["fold_counts"].items()))
    print(f"planted noise: {s['n_flipped']} labels "
          f"({100 * s['flipped_fraction_of_facies']:.1f} % of facies labels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
