"""One scene on one date: surface classes, reflectance, clouds, truth and features.

Facies follow the date: snow above a transient snow line that rises through the
summer (lower on north-facing ice, wavy), firn between the snow line and the
previous years' firn line, refrozen-like patches just below the snow line, bare
ice below, debris on tongues and margins, ponds and lakes (water), off-glacier
rock (labelled debris) and snow patches (:func:`surface_classes`). At the end of
the ablation season (:func:`end_of_season_classes`, the mass-balance demo) each
glacier's snow line is placed so that its true AAR is a given one, and no firn
shows below it. The sun is at ~10:30 local solar time;
cast and self shadows and slope-dependent direct light are computed on the
scene's true surface, shadowed surfaces keep only the diffuse fraction of each
band. Class spectra (utils.demo.spectra) are drawn as correlated log-normal
fields, mixed across class boundaries; clouds are blended in with a soft
opacity; then sensor noise and L2A quantisation (1e-4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from utils import terrain as feat
from utils.demo.fields import fractal_noise, smoothstep, texture
from utils.demo.spectra import SHADOW_FACTOR, SPECTRA
from utils.demo.world import RES, Scene, sun_position
from utils.study import CLASS_INDEX, CLASSES

#: Classes of the ground surface (shadow and cloud are laid over them).
SURFACE = ("ice", "snow", "debris", "firn", "refrozen-like", "water")

#: Snow-covered fraction of the glacier area (accumulation-area ratio of the transient
#: snow line) per date index: early, mid and late summer.
SNOW_AAR = (0.80, 0.60, 0.42)


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


def _paint(scene: Scene, z: np.ndarray, sl: np.ndarray, fl: np.ndarray,
           span: float) -> np.ndarray:
    """Surface classes, uint8 (H, W), for snow-line and firn-line fields ``sl``, ``fl``
    (H, W) in metres: firn above ``fl``, snow above ``sl`` (over firn), refrozen-like
    patches within ``0.12 * span`` below ``sl``, debris, ponds and lakes, off-glacier
    rock and snow patches."""
    ice = scene.labels > 0
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
    return cls


def _waviness(scene: Scene) -> np.ndarray:
    """Snow-line offset per pixel (H, W) in units of the elevation span: lower on
    north-facing ice, wavy."""
    return 0.05 * scene.aspect_term + 0.05 * scene.sl_noise


def surface_classes(scene: Scene, aar: float) -> tuple[np.ndarray, float, float]:
    """Surface class map, uint8 (H, W) before shadow and cloud, of a summer date whose
    transient snow line leaves ``aar`` of the scene's glacier area snow-covered, and the
    snow and firn line elevations (metres).

    The firn line of earlier years lies at ``scene.firn_aar``: where the snow line is
    above it, the firn between them adds to the accumulation area (snow + firn).
    """
    z = scene.dem.astype(np.float64)
    zi = z[scene.labels > 0]
    span = float(zi.max() - zi.min())
    snow_line = float(np.quantile(zi, 1.0 - aar))
    firn_line = float(np.quantile(zi, 1.0 - scene.firn_aar))
    sl = snow_line + span * _waviness(scene)
    fl = firn_line + span * 0.04 * scene.fl_noise
    return _paint(scene, z, sl, fl, span), snow_line, firn_line


def end_of_season_classes(scene: Scene, aars: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Surface class map, uint8 (H, W) before shadow and cloud, at the end of the
    ablation season, and each glacier's mean snow-line elevation (G,) in metres.

    ``aars`` (one per ``scene.glaciers``, fractions 0..1): each glacier's snow line
    (wavy, lower on north-facing ice) is placed so that exactly that fraction of its
    pixels is above it, to within half a pixel. This year's snow covers the
    accumulation area, so no firn shows: the firn line is raised to the snow line and
    the true AAR (snow + firn over the glacier's area) equals the given one.
    """
    if len(aars) != len(scene.glaciers):
        raise ValueError(f"{len(aars)} AARs for {len(scene.glaciers)} glaciers")
    z = scene.dem.astype(np.float64)
    wavy = _waviness(scene)
    ice = scene.labels > 0
    span = float(z[ice].max() - z[ice].min())
    sl = np.full(z.shape, np.nan)
    lines = np.empty(len(aars))
    for k, (g, aar) in enumerate(zip(scene.glaciers, aars, strict=True)):
        if not 0.0 <= aar <= 1.0:
            raise ValueError(f"AAR of {g.name} is {aar}, not a fraction 0..1")
        zg = z[g.mask]
        gspan = float(zg.max() - zg.min())
        # height above the wavy line's base level; the n_snow highest pixels are snow
        h = np.sort(zg - gspan * wavy[g.mask])[::-1]
        n_snow = int(round(aar * h.size))
        top = h[0] + 1.0 if n_snow == 0 else h[n_snow - 1]
        level = top - 1.0 if n_snow == h.size else (top + h[n_snow]) / 2
        sl[g.mask] = level + gspan * wavy[g.mask]
        lines[k] = level
    sl[~ice] = float(np.mean(lines)) + span * wavy[~ice]  # off-glacier snow patches
    return _paint(scene, z, sl, sl, span), lines


def class_field(rng: np.random.Generator, name: str, n: int,
                scene_z: np.ndarray) -> np.ndarray:
    """Reflectance field (n, n, 6) of one class: correlated log-normal bands.

    The latent standard normal per band is a per-date offset ``scene_z`` (6,; 45 % of the variance)
    plus spatial texture (smooth at two scales and white); band correlations
    follow the class covariance, marginals are log-normal with the class mean
    and standard deviation (positive reflectance).
    """
    spec = SPECTRA[name]
    chol = np.linalg.cholesky(spec.corr + 1e-9 * np.eye(6))
    tex = np.moveaxis(texture(rng, 6, n), 0, -1)
    latent = np.sqrt(0.45) * scene_z + np.sqrt(0.55) * (tex @ chol.T)
    mean, sd = spec.mean, spec.std
    s2 = np.log1p((sd / mean) ** 2)
    mu = np.log(mean) - s2 / 2
    return np.exp(mu + np.sqrt(s2) * latent)


def acquire(scene: Scene, date_index: int, rng: np.random.Generator) -> Acquisition:
    """The scene on its region's date ``date_index`` (0 early .. 2 late summer; snow
    cover :data:`SNOW_AAR` +- 0.05): reflectance, truth and 11 features."""
    aar = SNOW_AAR[date_index] + rng.uniform(-0.05, 0.05)
    cls, snow_line, firn_line = surface_classes(scene, aar)
    return render(scene, scene.region.dates[date_index], cls, rng, snow_line, firn_line)


def render(scene: Scene, date: str, cls: np.ndarray, rng: np.random.Generator,
           snow_line: float = float("nan"), firn_line: float = float("nan")) -> Acquisition:
    """The scene with surface classes ``cls`` (H, W) on ``date`` (YYYYMMDD): sun,
    mixing, shadows, spectra, clouds and noise; the 11 features. ``snow_line`` and
    ``firn_line`` (metres) are recorded in the result."""
    n = scene.n
    az, el = sun_position(scene.region.lat, scene.region.lon, date)

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
        refl += abund[k][..., None] * class_field(rng, name, n, offset)
    refl *= illum * rng.normal(1.0, 0.03)

    # clouds: soft opacity from large-scale noise
    cover = float(rng.uniform(0.03, 0.14))
    field = fractal_noise(rng, n, 3.2, 6.0)
    thr = np.quantile(field, 1.0 - cover)
    alpha = smoothstep((field - thr) / 0.6 + 0.5)
    cloud_z = rng.standard_normal(6) @ np.linalg.cholesky(SPECTRA["cloud"].corr).T
    cloud = class_field(rng, "cloud", n, cloud_z)
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

