"""Reading and aligning a scene's inputs, glacier outlines, and windowed preprocessing.

A *scene* is the 6-band optical GeoTIFF (blue, green, red, nir, swir1, swir2)
whose grid (CRS, affine transform, H x W pixels) every other input and every
output shares. Feature rasters (DEM in metres, slope in degrees, shadow mask
0/1, hillshade 0..1, proximity) are single-band; on another grid they are an
error unless ``resample`` warps them onto the scene grid (GDAL WarpedVRT,
bilinear for continuous features, nearest for the shadow mask).

Outlines (any vector format GDAL reads: .shp, .geojson, .gpkg) are repaired
with shapely ``make_valid`` (keeping polygonal parts), reprojected to the scene
CRS and rasterised with ``rasterio.features.rasterize`` (a pixel is glacier
when its centre lies inside an outline, as in the study).

:class:`SceneFeatures` builds the model's input features block by block
(full-width row blocks plus a 16 px halo), so memory stays bounded on
Sentinel-2-sized scenes: a first cheap pass computes the scene-level scalings
(elevation min/max over glacier pixels, proximity maximum, relief for cast
shadows) and the proximity of every glacier pixel (a windowed distance
transform); :meth:`SceneFeatures.block` then returns the normalised, padded
(edge contract of :mod:`utils.inference.patch`) features of one block. Derived
features equal those of :func:`utils.terrain.derive_features` on the whole
scene: slope and hillshade need a 1-px margin, cast shadows a sunward margin
long enough for the longest possible shadow (scene relief / tan(sun elevation)).

All errors a user can cause raise :class:`SceneError` with a message naming
the file and the problem.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import secrets
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
import shapely
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from scipy import ndimage

from utils import terrain as feat
from utils.inference.patch import HALF, pad_window, window_rows
from utils.mapping.outputs import RasterReadError, open_raster, read_window
from utils.normalisation import Stats
from utils.study import FEATURES, OPTICAL

#: Feature rasters accepted besides the optical scene, by feature name.
TOPO_INPUTS: tuple[str, ...] = ("elevation", "slope", "shadow_mask", "hillshade", "proximity")
#: Warp resampling per input (the shadow mask is categorical).
RESAMPLING: dict[str, Resampling] = {
    "elevation": Resampling.bilinear,
    "slope": Resampling.bilinear,
    "shadow_mask": Resampling.nearest,
    "hillshade": Resampling.bilinear,
    "proximity": Resampling.bilinear,
}


class SceneError(ValueError):
    """A problem with an input or output file; the message names the file."""


# ----------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class Grid:
    """The scene grid: CRS, affine transform (pixel corner -> CRS), width and height (px)."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        return _bounds(self.transform, self.width, self.height)

    def res_m(self, what: str = "") -> float:
        """Pixel side in metres; requires a projected, north-up grid of square pixels."""
        t = self.transform
        factor = self.crs.linear_units_factor[1] if self.crs.is_projected else None
        if factor is None or t.b != 0 or t.d != 0 or not math.isclose(abs(t.a), abs(t.e),
                                                                      rel_tol=1e-6):
            raise SceneError(
                f"{what or 'this'} needs a projected, north-up grid of square pixels in "
                f"metres (e.g. UTM); the scene has CRS {self.crs.to_string()} and pixel size "
                f"{t.a} x {t.e}"
            )
        return abs(t.a) * factor

    def mismatch(self, crs: CRS | None, transform: Affine, width: int, height: int) -> str:
        """Why another raster's grid differs from this one ('' when equal)."""
        why = []
        if crs is None or not crs == self.crs:
            why.append(f"CRS {crs.to_string() if crs else 'none'} vs "
                       f"{self.crs.to_string()}")
        if (width, height) != (self.width, self.height):
            why.append(f"size {height} x {width} vs {self.height} x {self.width} px")
        tol = 1e-4 * max(abs(self.transform.a), abs(self.transform.e))
        if not np.allclose(tuple(transform)[:6], tuple(self.transform)[:6], rtol=0, atol=tol):
            why.append(f"transform {tuple(transform)[:6]} vs {tuple(self.transform)[:6]}")
        return "; ".join(why)


def _bounds(t: Affine, width: int, height: int) -> tuple[float, float, float, float]:
    xs, ys = zip(*(t @ (c, r) for c, r in ((0, 0), (width, 0), (0, height), (width, height))),
                 strict=True)
    return (min(xs), min(ys), max(xs), max(ys))


def _open(stack: contextlib.ExitStack, path: str | os.PathLike, what: str) -> Any:
    """Open a raster on ``stack``; SceneError messages name the file and its role."""
    try:
        return stack.enter_context(open_raster(path))
    except FileNotFoundError:
        raise SceneError(f"{path}: {what} not found") from None
    except RasterReadError as e:
        raise SceneError(f"{path}: {what} is not a readable raster ({e})") from None


# ----------------------------------------------------------------------------- rasters


class SceneRasters(contextlib.ExitStack):
    """The open inputs of one scene; use as a context manager (closes every file).

    ``optical``: the 6-band scene dataset; ``grid``: its :class:`Grid`;
    ``sources``: single-band feature rasters on the scene grid, by feature name
    (``elevation`` for the DEM), each a dataset or a WarpedVRT onto the grid.
    """

    def __init__(self, raster: str | os.PathLike, inputs: dict[str, str | os.PathLike | None],
                 resample: bool = False) -> None:
        super().__init__()
        self.raster_path = Path(raster)
        self.paths: dict[str, Path] = {}
        self.sources: dict[str, Any] = {}
        self.resampled: list[str] = []
        try:
            self.optical = _open(self, raster, "RASTER (optical scene)")
            src = self.optical
            if src.count != len(OPTICAL):
                raise SceneError(
                    f"{raster}: RASTER has {src.count} band(s); expected {len(OPTICAL)} "
                    f"bands in the order {', '.join(OPTICAL)}"
                )
            if src.crs is None:
                raise SceneError(f"{raster}: RASTER has no CRS (georeferencing is required)")
            if src.transform.is_identity:
                raise SceneError(f"{raster}: RASTER has no geotransform (not georeferenced)")
            self.grid = Grid(src.crs, src.transform, src.width, src.height)
            for name, path in inputs.items():
                if path is not None:
                    self._add(name, Path(path), resample)
        except BaseException:
            self.close()
            raise

    def _add(self, name: str, path: Path, resample: bool) -> None:
        what = "DEM" if name == "elevation" else f"{name} raster"
        src = _open(self, path, what)
        if src.count != 1:
            raise SceneError(f"{path}: {what} has {src.count} bands; expected a single band")
        why = self.grid.mismatch(src.crs, src.transform, src.width, src.height)
        if why:
            if not resample:
                raise SceneError(
                    f"{path}: {what} is not on the grid of {self.raster_path.name} ({why}); "
                    "pass --resample to warp it onto the scene grid "
                    "(bilinear; nearest for the shadow mask)"
                )
            if src.crs is None:
                raise SceneError(f"{path}: {what} has no CRS, cannot be resampled")
            src = self.enter_context(WarpedVRT(
                src, crs=self.grid.crs, transform=self.grid.transform,
                width=self.grid.width, height=self.grid.height,
                resampling=RESAMPLING[name], dtype="float32", nodata=np.nan,
                src_nodata=src.nodata,
            ))
            self.resampled.append(name)
        self.paths[name] = path
        self.sources[name] = src

    def read_optical(self, r0: int, r1: int) -> np.ndarray:
        """Optical rows [r0, r1) as float32 (h, W, 6), nodata -> NaN."""
        try:
            return read_window(self.optical, (r0, 0, r1 - r0, self.grid.width),
                               as_float32=True)
        except rasterio.errors.RasterioIOError as e:
            raise SceneError(f"{self.raster_path}: cannot read rows {r0}..{r1} ({e})") from None

    def read(self, name: str, r0: int, r1: int) -> np.ndarray:
        """Feature raster ``name`` rows [r0, r1) as float32 (h, W), nodata -> NaN."""
        return self.read_window(name, Window(0, r0, self.grid.width, r1 - r0))

    def read_window(self, name: str, window: Window) -> np.ndarray:
        """Feature raster ``name`` in a window of the scene grid: float32 (h, w), NaN nodata."""
        try:
            return read_window(self.sources[name], window, bands=1, as_float32=True)
        except rasterio.errors.RasterioIOError as e:
            raise SceneError(f"{self.paths[name]}: cannot read window {window} ({e})") from None


# ----------------------------------------------------------------------------- outlines


@dataclass
class Outlines:
    """Glacier outlines in the scene CRS.

    ``gdf``: GeoDataFrame of (Multi)Polygons, one row per input feature kept;
    ``notes``: what was repaired, dropped or assumed (for the user).
    """

    gdf: Any
    path: Path
    notes: list[str] = field(default_factory=list)


def _polygonal(geom: Any) -> Any:
    """The polygonal part of a geometry (None when it has none)."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if not merged.is_empty else None


def read_outlines(path: str | os.PathLike, crs: CRS) -> Outlines:
    """Read glacier outlines, repair invalid geometries, reproject to ``crs``.

    Invalid polygons are repaired with ``shapely.make_valid`` (polygonal parts
    kept); features without a polygon are dropped; outlines without a CRS are
    assumed to be in ``crs``. Raises :class:`SceneError` naming the file.
    """
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise SceneError(f"{path}: OUTLINES file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gdf = gpd.read_file(path)
    except Exception as e:  # noqa: BLE001 - any reader failure is the same user error
        raise SceneError(
            f"{path}: cannot read OUTLINES as a vector file (.shp, .geojson, .gpkg): {e}"
        ) from None
    notes: list[str] = []
    if "geometry" not in gdf or len(gdf) == 0:
        raise SceneError(f"{path}: OUTLINES has no features")
    if gdf.crs is None:
        notes.append(f"{path.name} has no CRS; assumed to be the scene's {crs.to_string()}")
        gdf = gdf.set_crs(crs.to_wkt())
    geoms = gdf.geometry.values
    invalid = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if invalid.any():
        geoms = np.where(invalid, shapely.make_valid(geoms), geoms)
        notes.append(f"{path.name}: repaired {int(invalid.sum())} invalid geometr"
                     f"{'y' if invalid.sum() == 1 else 'ies'} with make_valid")
    geoms = np.array([_polygonal(g) for g in geoms], dtype=object)
    keep = np.array([g is not None for g in geoms], dtype=bool)
    if not keep.all():
        notes.append(f"{path.name}: dropped {int((~keep).sum())} feature(s) without a polygon")
    if not keep.any():
        raise SceneError(f"{path}: OUTLINES contains no polygons")
    gdf = gdf.loc[keep].copy()
    gdf = gdf.set_geometry(gpd.GeoSeries(list(geoms[keep]), index=gdf.index, crs=gdf.crs))
    try:
        gdf = gdf.to_crs(crs.to_wkt())
    except Exception as e:  # noqa: BLE001
        raise SceneError(f"{path}: cannot reproject OUTLINES to {crs.to_string()}: {e}") from None
    fixed = [_polygonal(shapely.make_valid(g)) if not g.is_valid else g for g in gdf.geometry]
    gdf = gdf.set_geometry(gpd.GeoSeries(fixed, index=gdf.index, crs=gdf.crs))
    gdf = gdf.loc[[g is not None for g in gdf.geometry]]
    return Outlines(gdf, path, notes)


def glacier_mask(outlines: Outlines, grid: Grid, raster_path: str | os.PathLike) -> np.ndarray:
    """bool (H, W): pixel centre inside any outline. SceneError if no overlap with the scene."""
    left, bottom, right, top = grid.bounds
    scene_box = shapely.box(left, bottom, right, top)
    geoms = list(outlines.gdf.geometry)
    hits = [g for g in geoms if g.intersects(scene_box)]
    if not hits:
        ob = outlines.gdf.total_bounds
        raise SceneError(
            f"{outlines.path}: no outline intersects RASTER {raster_path} (outlines span "
            f"{ob[0]:.0f}..{ob[2]:.0f} x {ob[1]:.0f}..{ob[3]:.0f}, the scene "
            f"{left:.0f}..{right:.0f} x {bottom:.0f}..{top:.0f} in {grid.crs.to_string()})"
        )
    mask = rasterize(((g, 1) for g in hits), out_shape=grid.shape, transform=grid.transform,
                     fill=0, dtype="uint8", all_touched=False).view(bool)
    if not mask.any():
        raise SceneError(
            f"{outlines.path}: outlines overlap RASTER {raster_path} but no pixel centre lies "
            "inside one (outlines smaller than a pixel?)"
        )
    return mask


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
        self.res = (self.grid.res_m("--derive_features") if plan.derive else None)

    # -- first pass
    def prepare(self, scan_rows: int = 1024,
                progress: Callable[[int], None] | None = None) -> None:
        """Scene-level quantities: elevation min/max over glacier pixels, DEM relief,
        proximity maximum (and derived proximity per glacier pixel)."""
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
                cast = feat.cast_shadow(dem, self.res, az, el)[e0 - d0 : e1 - d0]
                self_shadow = feat.cos_incidence(small, self.res, az, el)[crop] <= 0
                sm = (cast | self_shadow).astype(np.float32)
                sm[np.isnan(dem[e0 - d0 : e1 - d0])] = np.nan
                out["shadow_mask"] = sm
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
            if name == "elevation":  # as features.scale_elevation, with the scene's min/max
                lo, hi = self.elev_range
                v = ((v.astype(np.float64) - lo) / (hi - lo if hi > lo else 1.0))
            elif name == "proximity":  # as features.scale_proximity, with the scene's max
                v = v.astype(np.float64) / self.prox_max if self.prox_max > 0 else 0.0
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


# ----------------------------------------------------------------------------- outputs


def check_output(path: str | os.PathLike, overwrite: bool, what: str,
                 inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Check before any work that ``path`` can be written; returns its absolute path.

    SceneError when its folder is missing or not writable, it is a folder, it exists
    without ``overwrite``, or it is one of ``inputs``.
    """
    target = Path(path).absolute()
    folder = target.parent
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise SceneError(f"{path}: output folder {folder} of {what} {why}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SceneError(f"{path}: output folder {folder} of {what} is not writable")
    if target.is_dir():
        raise SceneError(f"{path}: {what} is a folder")
    for p in inputs:
        if p is not None and Path(p).exists() and target.exists() and \
                os.path.samefile(target, p):
            raise SceneError(f"{path}: {what} would overwrite an input file")
    if target.exists() and not overwrite:
        raise SceneError(f"{path}: {what} exists; pass --overwrite to replace it")
    return target


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; publish it as ``path`` when the block succeeds.

    Without ``overwrite`` an existing ``path`` is never replaced (FileExistsError).
    The temporary file is removed on failure.
    """
    target = Path(path).absolute()
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise FileExistsError(errno.EEXIST, f"{target} exists", str(target)) from None
            except OSError:  # no hard links here: check, then rename
                if target.exists():
                    raise FileExistsError(errno.EEXIST, f"{target} exists",
                                          str(target)) from None
                os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
