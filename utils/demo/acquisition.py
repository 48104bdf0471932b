"""One scene on one date: surface classes, reflectance, clouds, truth and features.

Facies follow the date: snow above a transient snow line that rises through the
summer (lower on north-facing ice, wavy), firn between the snow line and the
previous years' firn line, refrozen-like patches just below the snow line, bare
ice below, debris on tongues and margins, ponds and lakes (water), off-glacier
rock (labelled debris) and snow patches. The sun is at ~10:30 local solar time;
cast and self shadows and slope-dependent direct light are computed on the
scene's true surface, shadowed surfaces keep only the diffuse fraction of each
band. Class spectra (utils.demo.spectra) are drawn as correlated log-normal
fields, mixed across class boundaries; clouds are blended in with a soft
opacity; then sensor noise and L2A quantisation (1e-4).
"""

from __future__ import annotations

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


def surface_classes(scene: Scene, date_index: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """Surface class index map, uint8 (H, W) before shadow and cloud, and the snow and
    firn line elevations (metres) of date ``date_index`` (0 early .. 2 late summer)."""
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
    """The scene on its region's date ``date_index``: reflectance, truth and 11 features."""
    n = scene.n
    date = scene.region.dates[date_index]
    az, el = sun_position(scene.region.lat, scene.region.lon, date)
    cls, snow_line, firn_line = surface_classes(scene, date_index, rng)

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

