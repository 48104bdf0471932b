"""Rasters of a scene: their grid, opening and windowed reading, and the open scene inputs.

A *scene* is the 6-band optical GeoTIFF (blue, green, red, nir, swir1, swir2)
whose grid (CRS, affine transform, H x W pixels) every other input and every
output shares. Feature rasters (DEM in metres, slope in degrees, shadow mask
0/1, hillshade 0..1, proximity) are single-band; on another grid they are an
error unless ``resample`` warps them onto the scene grid (GDAL WarpedVRT,
bilinear for continuous features, nearest for the shadow mask).

Errors a user can cause raise :class:`utils.errors.RasterReadError` (a file GDAL
cannot read) or :class:`utils.errors.SceneError` (inputs that do not fit), each
naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from utils.errors import RasterReadError, SceneError
from utils.study import OPTICAL

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


@dataclass(frozen=True)
class RasterMeta(Grid):
    """A raster's grid plus its layout: ``nodata`` (None when the file declares none),
    ``dtype`` (numpy name of the stored type of band 1) and band ``count``.
    ``crs`` may be None for a raster without georeferencing."""

    nodata: float | None = None
    dtype: str = "float32"
    count: int = 1


def meta_of(src: DatasetReader) -> RasterMeta:
    """:class:`RasterMeta` of an open rasterio dataset (nodata and dtype of band 1)."""
    return RasterMeta(crs=src.crs, transform=src.transform, width=src.width,
                      height=src.height, nodata=src.nodata, dtype=str(src.dtypes[0]),
                      count=src.count)


def pixel_areas_m2(crs: CRS, transform: Affine, rows: np.ndarray) -> np.ndarray:
    """Area (m²) of one pixel in each of ``rows`` (float64, shape of ``rows``).

    Projected CRS: |det(transform)| x (metres per CRS unit)²; geographic CRS:
    geodesic area on the CRS ellipsoid of the pixel's lon/lat cell in that row
    (north-up grids).
    """
    rows = np.asarray(rows)
    crs = CRS.from_user_input(crs)
    if crs.is_geographic:
        from pyproj import CRS as PCRS
        from pyproj import Geod

        geod = PCRS.from_wkt(crs.to_wkt()).get_geod() or Geod(ellps="WGS84")
        lon0, dlon = transform.c, abs(transform.a)
        out = np.empty(rows.shape, dtype=np.float64)
        for i, r in np.ndenumerate(rows):
            top = transform.f + r * transform.e
            bot = top + transform.e
            area, _ = geod.polygon_area_perimeter(
                [lon0, lon0 + dlon, lon0 + dlon, lon0], [top, top, bot, bot])
            out[i] = abs(area)
        return out
    factor = crs.linear_units_factor[1] if crs.is_projected else 1.0
    return np.full(rows.shape, abs(transform.determinant) * factor**2, dtype=np.float64)



# ----------------------------------------------------------------------------- reading


@contextlib.contextmanager
def open_raster(path: str | os.PathLike) -> Iterator[DatasetReader]:
    """Open a raster for (windowed) reading; use as ``with open_raster(p) as src:``.

    Raises:
        FileNotFoundError: the file does not exist.
        RasterReadError: it exists but GDAL cannot read it as a raster.
    """
    p = Path(path)
    name = str(path)
    if not name.startswith("/vsi"):
        if not p.exists():
            raise FileNotFoundError(errno.ENOENT, f"raster file not found: {p}", str(p))
        if p.is_dir():
            raise RasterReadError(f"{p} is a folder, not a raster file")
    try:
        src = rasterio.open(name)
    except RasterioIOError as e:
        raise RasterReadError(f"{p} is not a readable raster: {e}") from e
    with src:
        yield src


def _band_list(bands: int | Sequence[int] | None, count: int, path: str) -> tuple[list[int], bool]:
    """1-based band indices and whether the result is (H, W) (single band)."""
    if bands is None:
        return list(range(1, count + 1)), count == 1
    single = isinstance(bands, (int, np.integer))
    idx = [int(bands)] if single else [int(b) for b in bands]
    if not idx:
        raise ValueError(f"no bands requested from {path}")
    bad = [b for b in idx if not 1 <= b <= count]
    if bad:
        raise ValueError(f"{path} has bands 1..{count}; requested {bad} (bands are 1-based)")
    return idx, single


def _finish(data: np.ndarray, single: bool, nodata: float | None, as_float32: bool) -> np.ndarray:
    """(C, H, W) from rasterio -> (H, W) or (H, W, C), optionally float32 with NaN nodata."""
    if as_float32:
        out = data.astype(np.float32)
        if nodata is not None and not np.isnan(nodata):
            out[data == nodata] = np.nan
        data = out
    if single:
        return data[0]
    return np.ascontiguousarray(np.moveaxis(data, 0, -1))


def read_raster(
    path: str | os.PathLike,
    bands: int | Sequence[int] | None = None,
    as_float32: bool = False,
) -> tuple[np.ndarray, RasterMeta]:
    """Read a whole raster.

    Args:
        path: raster file (GeoTIFF or anything GDAL reads).
        bands: None (all bands), one 1-based band index, or a sequence of them.
        as_float32: cast to float32 and set nodata pixels to NaN.

    Returns:
        ``(array, meta)``: array (H, W) for one band (an int ``bands`` or a
        single-band file with ``bands=None``), else (H, W, C) in the order of
        ``bands``; stored dtype unless ``as_float32``.
    """
    with open_raster(path) as src:
        idx, single = _band_list(bands, src.count, str(path))
        data = src.read(idx)
        return _finish(data, single, src.nodata, as_float32), meta_of(src)


def read_window(
    src: DatasetReader,
    window: Window | tuple[int, int, int, int],
    bands: int | Sequence[int] | None = None,
    as_float32: bool = False,
) -> np.ndarray:
    """Read a window of an open raster (see :func:`open_raster`).

    Args:
        src: dataset from :func:`open_raster`.
        window: rasterio ``Window`` or ``(row_off, col_off, height, width)`` in pixels;
            must lie inside the raster.
        bands, as_float32: as in :func:`read_raster`.

    Returns:
        (h, w) or (h, w, C) array; its georeferencing is ``src.window_transform(window)``.
    """
    if not isinstance(window, Window):
        row_off, col_off, height, width = (int(v) for v in window)
        window = Window(col_off, row_off, width, height)
    r0, c0 = int(window.row_off), int(window.col_off)
    if r0 < 0 or c0 < 0 or r0 + window.height > src.height or c0 + window.width > src.width:
        raise ValueError(
            f"window rows {r0}..{r0 + window.height}, cols {c0}..{c0 + window.width} "
            f"outside {src.name} ({src.height} x {src.width})"
        )
    idx, single = _band_list(bands, src.count, src.name)
    data = src.read(idx, window=window)
    return _finish(data, single, src.nodata, as_float32)


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
                    "pass resample to warp it onto the scene grid "
                    "(bilinear; nearest for the shadow mask)"
                ).about("resample")
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
