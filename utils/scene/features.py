"""Windowed model inputs of a scene: features built block by block in bounded memory.

:class:`SceneFeatures` builds the model's input features block by block
(full-width row blocks plus a 16 px halo), so memory stays bounded on
Sentinel-2-sized scenes: a first cheap pass computes the scene-level scalings
(elevation min/max over glacier pixels, proximity maximum, relief for cast
shadows) and the proximity of every glacier pixel (a windowed distance
transform); :meth:`SceneFeatures.block` then returns the normalised, padded
(edge contract of :mod:`utils.inference.padding`) features of one block. Derived
features equal those of :func:`utils.terrain.derive_features` on the whole
scene: slope and hillshade need a 1-px margin, cast shadows a sunward margin
long enough for the longest possible shadow (scene relief / tan(sun elevation)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from utils import terrain as feat
from utils.errors import SceneError
from utils.inference.padding import pad_window, window_rows
from utils.normalisation import Stats
from utils.scene.raster import SceneRasters
from utils.study import FEATURES, HALF, OPTICAL


def row_offsets(mask: np.ndarray) -> np.ndarray:
    """(H + 1,) int64: index of the first glacier pixel of each row in row-major order."""
    counts = np.count_nonzero(mask, axis=1)
    return np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))



# ----------------------------------------------------------------------------- features


def proximity_at_glacier(
    mask: np.ndarray, res: float, block_rows: int = 1024, halo: int = 64
) -> np.ndarray:
    """:func:`utils.terrain.proximity` (metres) at the glacier pixels, windowed.

    Returns float32 (n_glacier,) in row-major order of ``mask`` (bool (H, W)),
    equal to ``features.proximity(mask, res)[mask]`` without a full-scene distance
    transform: per block of rows, the distance transform of a window with ``halo``
    extra rows; a pixel's distance d <= halo is exact (any closer outline pixel
    lies inside the window), otherwise the halo doubles.
    """
    mask = np.asarray(mask, dtype=bool)
    h_img = mask.shape[0]
    offsets = row_offsets(mask)
    out = np.zeros(int(offsets[-1]), dtype=np.float32)
    for r0 in range(0, h_img, block_rows):
        r1 = min(h_img, r0 + block_rows)
        n0, n1 = int(offsets[r0]), int(offsets[r1])
        if n0 == n1:
            continue
        h = halo
        while True:
            if r0 - h - 1 <= 0 and r1 + h + 1 >= h_img:  # the window is the whole scene
                full = feat.proximity(mask, res)
                out[n0:n1] = full[r0:r1][mask[r0:r1]]
                break
            a0, a1 = max(0, r0 - h - 1), min(h_img, r1 + h + 1)
            m = mask[a0:a1]
            inner = m & ~feat.outline_pixels(m)
            # outline_pixels treats rows beyond the window as glacier: drop those edge rows
            c0 = 1 if a0 > 0 else 0
            c1 = inner.shape[0] - (1 if a1 < h_img else 0)
            inner = inner[c0:c1]
            b0 = a0 + c0
            core_inner = inner[r0 - b0 : r1 - b0]
            if not core_inner.any():
                break  # all zeros
            if not inner.all():
                d = ndimage.distance_transform_edt(inner, sampling=res)[r0 - b0 : r1 - b0]
                if d.max() <= h * res:
                    out[n0:n1] = d[mask[r0:r1]].astype(np.float32)
                    break
            h *= 2
    return out


def shadow_halo(relief: float, res: float, sun_azimuth: float, sun_elevation: float
                ) -> tuple[int, int]:
    """Rows (above, below) a block that can cast shadows into it.

    A shadow is at most ``relief / tan(sun_elevation)`` metres long; its row
    component is that times |cos(azimuth)|; the sun side gets it (+2 rows for
    interpolation), the other side 2 rows.
    """
    if sun_elevation <= 0 or not np.isfinite(relief):
        return (2, 2)
    el = math.radians(min(float(sun_elevation), 89.999))
    length_px = max(0.0, relief) / math.tan(el) / res
    rows = int(math.ceil(length_px * abs(math.cos(math.radians(sun_azimuth))))) + 2
    if math.cos(math.radians(sun_azimuth)) > 0:  # sun in the north: terrain above casts
        return (rows, 2)
    return (2, rows)


@dataclass
class FeaturePlan:
    """Which features a model uses and where each comes from.

    ``features``: names in :data:`utils.study.FEATURES` order; ``derive``: the
    DEM/outline-derived ones (subset of slope, shadow_mask, hillshade, proximity);
    the others come from :attr:`SceneRasters.sources` (elevation = the DEM).
    """

    features: list[str]
    derive: set[str]
    sun_azimuth: float | None = None
    sun_elevation: float | None = None


class SceneFeatures:
    """Normalised, padded model inputs of a scene, one block of rows at a time.

    Call :meth:`prepare` once (the cheap first pass), then :meth:`block` per block.
    """

    def __init__(self, rasters: SceneRasters, mask: np.ndarray, plan: FeaturePlan,
                 stats: Stats) -> None:
        self.rasters = rasters
        self.grid = rasters.grid
        self.mask = mask
        self.plan = plan
        self.stats = stats
        self.channels = [FEATURES.index(f) for f in plan.features]
        self.offsets = row_offsets(mask)
        self.elev_range: tuple[float, float] | None = None
        self.prox_max: float | None = None
        self.prox_values: np.ndarray | None = None
        self.halo_rows: tuple[int, int] = (1, 1)
        self.res = (self.grid.res_m("deriving features") if plan.derive else None)

    # -- first pass
    def check_optical_range(self, sample_rows: int = 64) -> None:
        """SceneError when the optical values inside the glaciers are far from the range of
        the statistics (their median more than twice the range beyond it in any band):
        e.g. digital numbers (0..255, 0..10000) where the statistics are reflectance 0..1.

        Reads up to ``sample_rows`` rows that contain glacier pixels, evenly spaced.
        """
        rows = np.nonzero(self.offsets[1:] > self.offsets[:-1])[0]
        if rows.size == 0:
            return
        pick = rows[np.linspace(0, rows.size - 1, min(sample_rows, rows.size)).astype(int)]
        values = np.concatenate([self.rasters.read_optical(r, r + 1)[0][self.mask[r]]
                                 for r in pick])
        if not np.isfinite(values).any():
            return
        with np.errstate(all="ignore"):
            med = np.nanmedian(values, axis=0)
        lo, hi = self.stats.min[: len(OPTICAL)], self.stats.max[: len(OPTICAL)]
        span = hi - lo
        far = np.isfinite(med) & ((med > hi + 2 * span) | (med < lo - 2 * span))
        if far.any():
            bands = ", ".join(f"{OPTICAL[i]} {med[i]:.4g} (statistics {lo[i]:.3g}..{hi[i]:.3g})"
                              for i in np.nonzero(far)[0])
            raise SceneError(
                f"{self.rasters.raster_path}: optical values inside the glaciers are far "
                f"outside the range of the normalisation statistics (median {bands}); the "
                "scene looks like digital numbers, not surface reflectance: scale it to the "
                "statistics' units (e.g. Sentinel-2 L2A reflectance = (DN - 1000) / 10000 "
                "from processing baseline 04.00, DN / 10000 before)"
            )

    def prepare(self, scan_rows: int = 1024,
                progress: Callable[[int], None] | None = None) -> None:
        """Scene-level quantities: elevation min/max over glacier pixels, DEM relief,
        proximity maximum (and derived proximity per glacier pixel). Checks the optical
        values first (:meth:`check_optical_range`)."""
        self.check_optical_range()
        feats = set(self.plan.features)
        need_dem = "elevation" in feats or self.plan.derive & {"slope", "shadow_mask",
                                                               "hillshade"}
        h = self.grid.height
        g_lo, g_hi = np.inf, -np.inf
        d_lo, d_hi = np.inf, -np.inf
        p_max = -np.inf
        need_relief = "shadow_mask" in self.plan.derive
        prox_given = "proximity" in feats and "proximity" not in self.plan.derive
        for r0 in range(0, h, scan_rows):
            r1 = min(h, r0 + scan_rows)
            has_glacier = self.offsets[r1] > self.offsets[r0]
            if need_dem and (has_glacier or need_relief):
                z = self.rasters.read("elevation", r0, r1)
                if need_relief and np.isfinite(z).any():
                    d_lo, d_hi = min(d_lo, np.nanmin(z)), max(d_hi, np.nanmax(z))
                if has_glacier:
                    vals = z[self.mask[r0:r1] & np.isfinite(z)]
                    if vals.size:
                        g_lo, g_hi = min(g_lo, vals.min()), max(g_hi, vals.max())
            if prox_given:
                p = self.rasters.read("proximity", r0, r1)
                if np.isfinite(p).any():
                    p_max = max(p_max, float(np.nanmax(p)))
            if progress is not None:
                progress(r1 - r0)
        if "elevation" in feats:
            if not np.isfinite(g_lo):
                raise SceneError(
                    f"{self.rasters.paths['elevation']}: DEM has no valid elevation on any "
                    "glacier pixel; cannot scale elevation"
                )
            self.elev_range = (float(g_lo), float(g_hi))
        if need_relief:
            self.halo_rows = shadow_halo(d_hi - d_lo, self.res, self.plan.sun_azimuth,
                                         self.plan.sun_elevation)
        if "proximity" in self.plan.derive:
            self.prox_values = proximity_at_glacier(self.mask, self.res)
            p_max = float(self.prox_values.max()) if self.prox_values.size else 0.0
        if "proximity" in feats:
            self.prox_max = p_max if np.isfinite(p_max) else 0.0

    # -- per block
    def _derived(self, e0: int, e1: int) -> dict[str, np.ndarray]:
        """Derived features of scene rows [e0, e1), float32 (e1 - e0, W) each."""
        out: dict[str, np.ndarray] = {}
        derive = self.plan.derive
        h = self.grid.height
        if derive & {"slope", "hillshade", "shadow_mask"}:
            up, down = self.halo_rows if "shadow_mask" in derive else (1, 1)
            d0, d1 = max(0, e0 - max(up, 1)), min(h, e1 + max(down, 1))
            dem = self.rasters.read("elevation", d0, d1)
            s0, s1 = max(0, e0 - 1), min(h, e1 + 1)  # 1-px margin for Horn gradients
            small = dem[s0 - d0 : s1 - d0]
            crop = slice(e0 - s0, e1 - s0)
            az, el = self.plan.sun_azimuth, self.plan.sun_elevation
            if "slope" in derive:
                out["slope"] = feat.slope(small, self.res)[crop]
            if "hillshade" in derive:
                out["hillshade"] = feat.hillshade(small, self.res, az, el)[crop]
            if "shadow_mask" in derive:
                out["shadow_mask"] = feat.shadow_mask(dem, self.res, az, el)[e0 - d0 : e1 - d0]
        if "proximity" in derive:
            p = np.zeros((e1 - e0, self.grid.width), dtype=np.float32)
            m = self.mask[e0:e1]
            p[m] = self.prox_values[self.offsets[e0] : self.offsets[e1]]
            out["proximity"] = p
        return out

    def raw_block(self, e0: int, e1: int) -> np.ndarray:
        """Unnormalised features of scene rows [e0, e1): float32 (h, W, F), NaN = missing."""
        w = self.grid.width
        x = np.empty((e1 - e0, w, len(self.channels)), dtype=np.float32)
        x[..., : len(OPTICAL)] = self.rasters.read_optical(e0, e1)
        derived = self._derived(e0, e1)
        for k, name in enumerate(self.plan.features[len(OPTICAL):], start=len(OPTICAL)):
            v = derived[name] if name in derived else self.rasters.read(name, e0, e1)
            if name == "elevation":  # as terrain.scale_elevation, with the scene's min/max
                v = feat.min_max_scale(v, *self.elev_range)
            elif name == "proximity":  # as terrain.scale_proximity, with the scene's max
                v = feat.min_max_scale(v, 0.0, self.prox_max) if self.prox_max > 0 else 0.0
            x[..., k] = v
        return x

    def block(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """Model input of rows [r0, r1).

        Returns:
            ``padded`` float32 (r1 - r0 + 32, W + 32, F): normalised features, NaN -> 0,
            reflect-padded at the scene edges (:func:`utils.inference.patch.pad_window`);
            ``valid`` bool (r1 - r0, W): glacier pixels whose features are all finite.
        """
        e0, e1 = window_rows(r0, r1, self.grid.height, HALF)
        raw = self.raw_block(e0, e1)
        core = raw[r0 - e0 : r1 - e0]
        valid = self.mask[r0:r1] & np.isfinite(core).all(axis=2)
        norm = self.stats.normalise(raw, self.channels)
        del raw, core
        return pad_window(norm, r0, r1, self.grid.height, HALF), valid


def blocks(mask: np.ndarray, block_rows: int) -> list[tuple[int, int]]:
    """Row blocks [r0, r1) of ``block_rows`` rows that contain glacier pixels."""
    h = mask.shape[0]
    offsets = row_offsets(mask)
    out = []
    for r0 in range(0, h, max(1, block_rows)):
        r1 = min(h, r0 + block_rows)
        if offsets[r1] > offsets[r0]:
            out.append((r0, r1))
    return out
