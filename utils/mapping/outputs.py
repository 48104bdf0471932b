"""Writing the maps: class and float maps as Cloud-Optimized GeoTIFFs, and quicklooks.

:func:`write_class_map` and :func:`write_float_map` write
Cloud-Optimized GeoTIFFs (GDAL "COG" driver: 512 x 512 tiles, DEFLATE with a
predictor, internal overviews halving the size until it fits in one tile).
Overviews ignore nodata: class maps get a mode (ties -> smallest class)
computed here by :func:`class_overviews` (GDAL 3.10's MODE resampling turns
all-nodata blocks of int16 rasters into 0 = "ice"), float maps GDAL's AVERAGE.

Writes are atomic and non-clobbering: everything is written to temporary files
in the target folder and renamed into place on success (the GeoTIFF with a
no-clobber hard link unless ``overwrite``); on any failure no output and no
temporary file remains. Sidecars of a replaced file that the new one lacks are
removed. Publishing several files is not atomic as a whole: the GeoTIFF is
renamed first, then its sidecars (an existing ``<name>.qml`` is replaced). The
class legend (names, colours, QGIS style) is stored as :mod:`utils.mapping.legend`
describes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio import shutil as rio_shutil
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from utils.files import atomic_output
from utils.mapping.legend import (
    CLASS_BAND_DESCRIPTION,
    CLASS_COLORS_TAG,
    CLASS_NAMES_TAG,
    aux_xml_path,
    hex_color,
    qml_path,
    write_class_pam,
    write_class_qml,
)
from utils.scene.raster import pixel_areas_m2
from utils.study import CLASS_COLORS, CLASS_NODATA, CLASSES

FLOAT_NODATA: float = -9999.0
BLOCKSIZE: int = 512

_COG_OPTIONS: dict[str, str] = {
    "BLOCKSIZE": str(BLOCKSIZE),
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "YES",  # horizontal differencing (2) for ints, floating point (3) for floats
    # Level 1: on noisy maps level 6 is ~10x slower (10980 x 10980: ~25 s vs ~3 s)
    # for files only ~5-10 % smaller; on smooth maps both are fast.
    "LEVEL": "1",
    "OVERVIEWS": "AUTO",  # halve until the overview fits in one tile
    "BIGTIFF": "IF_SAFER",
}

#: Values per row block when float maps are written (float32: 64 MB).
WRITE_BLOCK_VALUES: int = 1 << 24



# ----------------------------------------------------------------------------- writing


def _check_georef(crs: Any, transform: Any) -> tuple[CRS, Affine]:
    if crs is None:
        raise ValueError("crs is required (e.g. 'EPSG:32632' or the input scene's CRS)")
    if not isinstance(transform, Affine):
        raise TypeError(f"transform must be an affine.Affine, got {type(transform).__name__}")
    return CRS.from_user_input(crs), transform


@contextlib.contextmanager
def _cog_via_gtiff(
    tmp: Path, shape: tuple[int, int], dtype: str, crs: CRS, transform: Affine, nodata: float
) -> Iterator[Path]:
    """Yield the path of an intermediate tiled GTiff (``<tmp>.src.tif``, uncompressed,
    created with the given grid) for the caller to fill (data, tags, overviews); then
    copy it to a COG at ``tmp`` with its overviews, and delete it.

    Writing through the COG driver directly would hold a full copy of the image in
    memory (10980 x 10980 float32: +1.3 GB); this way memory stays at the blocks the
    caller writes.
    """
    src_path = Path(str(tmp) + ".src.tif")
    h, w = shape
    try:
        with rasterio.open(
            src_path, "w", driver="GTiff", width=w, height=h, count=1, dtype=dtype, crs=crs,
            transform=transform, nodata=nodata, tiled=True, blockxsize=BLOCKSIZE,
            blockysize=BLOCKSIZE, BIGTIFF="IF_SAFER",
        ):
            pass
        yield src_path
        rio_shutil.copy(
            src_path, tmp, driver="COG", **{**_COG_OPTIONS, "OVERVIEWS": "FORCE_USE_EXISTING"}
        )
    finally:
        for p in (src_path, aux_xml_path(src_path)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _write_float_cog(
    tmp: Path,
    data: np.ndarray,
    crs: CRS,
    transform: Affine,
    nodata: float,
    description: str,
) -> None:
    """Write (H, W) float ``data`` (NaN = no value) as a float32 COG at ``tmp``, in row
    blocks, with GDAL-made AVERAGE overviews (nodata ignored)."""
    h, w = data.shape
    rows = max(BLOCKSIZE, WRITE_BLOCK_VALUES // max(w, 1) // BLOCKSIZE * BLOCKSIZE)
    with _cog_via_gtiff(tmp, (h, w), "float32", crs, transform, nodata) as src_path, \
            rasterio.open(src_path, "r+") as dst:
        for r0 in range(0, h, rows):
            block = np.array(data[r0 : r0 + rows], dtype=np.float32)
            if not np.isnan(nodata):
                block[np.isnan(block)] = np.float32(nodata)
            dst.write(block, 1, window=Window(0, r0, w, block.shape[0]))
        dst.set_band_description(1, description)
        factors = overview_factors(h, w)
        if factors:
            dst.build_overviews(factors, Resampling.average)


def overview_factors(height: int, width: int, blocksize: int = BLOCKSIZE) -> list[int]:
    """Overview decimation factors (2, 4, ...) until the overview fits in one tile,
    as GDAL's COG driver chooses them; empty when the image fits in one tile."""
    factors: list[int] = []
    f = 1
    while max(-(-height // f), -(-width // f)) > blocksize:
        f *= 2
        factors.append(f)
    return factors


def class_overviews(
    classes: np.ndarray,
    factors: Sequence[int],
    nodata: int = CLASS_NODATA,
    n_classes: int = len(CLASSES),
    block_pixels: int = 1 << 20,
) -> list[np.ndarray]:
    """Mode-downsampled class maps, one per factor, ignoring nodata.

    Each overview pixel is the most frequent class among the valid pixels of its
    ``f x f`` block of ``classes`` (ties -> smallest class, as in
    :func:`utils.mapping.smoothing.mode_filter_3x3`), nodata if the block has none.
    Blocks at the right/bottom edges are partial (overview shape is
    ``(ceil(H / f), ceil(W / f))``, as GDAL's).

    Args:
        classes: (H, W) integer map, values nodata or 0..n_classes-1.
        factors: increasing powers of two (e.g. ``[2, 4, 8]``).

    Returns:
        int16 arrays (ceil(H / f), ceil(W / f)), one per factor.

    (GDAL 3.10's own MODE overview resampling writes 0, i.e. class "ice",
    for all-nodata blocks of signed-integer rasters, hence this function.)
    """
    arr = np.asarray(classes)
    h, w = arr.shape
    factors = [int(f) for f in factors]
    if not factors:
        return []
    if any(f < 2 or f & (f - 1) for f in factors) or factors != sorted(set(factors)):
        raise ValueError(f"factors must be increasing powers of two, got {factors}")
    big = factors[-1]
    shift = max(1, int(n_classes - 1).bit_length())  # bits for the class tag
    tag_max = (1 << shift) - 1
    if (big * big) << shift >= 2**32:
        raise ValueError(f"overview factor {big} too large")
    wp = -(-w // big) * big
    rows = big * max(1, block_pixels // (big * wp))
    outs = [np.full((-(-h // f), -(-w // f)), nodata, dtype=np.int16) for f in factors]
    onehot = np.empty((rows, wp), dtype=bool)
    for r0 in range(0, h, rows):
        n = min(rows, h - r0)
        hp = -(-n // big) * big
        blk = np.full((hp, wp), nodata, dtype=arr.dtype)
        blk[:n, :w] = arr[r0 : r0 + n]
        # Running maximum of key = count << shift | (tag_max - class) per level:
        # the highest count wins, ties go to the smallest class (branch-free).
        best = [np.zeros((hp // f, wp // f), dtype=np.uint32) for f in factors]
        for c in range(n_classes):
            one = np.equal(blk, c, out=onehot[:hp]).view(np.uint8)
            cnt = (one[0::2] + one[1::2]).astype(np.uint32)  # first 2x2 halving
            cnt = cnt[:, 0::2] + cnt[:, 1::2]
            f_now = 2
            for f, b in zip(factors, best, strict=True):
                while f_now < f:  # further 2x2 halvings
                    cnt = cnt[0::2] + cnt[1::2]
                    cnt = cnt[:, 0::2] + cnt[:, 1::2]
                    f_now *= 2
                np.maximum(b, (cnt << shift) | (tag_max - c), out=b)
        for f, b, out in zip(factors, best, outs, strict=True):
            level = np.where(b >> shift > 0, tag_max - (b & tag_max).astype(np.int16), nodata)
            o0 = r0 // f
            o1 = min(out.shape[0], o0 + level.shape[0])
            out[o0:o1] = level[: o1 - o0, : out.shape[1]]
    return outs


def _write_class_cog(
    tmp: Path,
    data: np.ndarray,
    crs: CRS,
    transform: Affine,
    nodata: int,
    tags: dict[str, str],
    description: str,
) -> None:
    """Write an (H, W) int16 class map as a COG at ``tmp`` with mode overviews
    (:func:`class_overviews`)."""
    h, w = data.shape
    with _cog_via_gtiff(tmp, (h, w), "int16", crs, transform, nodata) as src_path:
        with rasterio.open(src_path, "r+") as dst:
            dst.write(data, 1)
            dst.set_band_description(1, description)
            dst.update_tags(**tags)
            factors = overview_factors(h, w)
            if factors:
                dst.build_overviews(factors, Resampling.nearest)  # allocates the levels
        for level, ovr in enumerate(class_overviews(data, factors, nodata)):
            with rasterio.open(src_path, "r+", overview_level=level) as dst:
                if dst.shape != ovr.shape:
                    raise RuntimeError(f"overview {level}: GDAL {dst.shape}, ours {ovr.shape}")
                dst.write(ovr, 1)


def _atomic_write(
    path: str | os.PathLike,
    overwrite: bool,
    write: Callable[[Path], None],
    sidecars: Callable[[Path], dict[Path, Path]] | None = None,
) -> Path:
    """Run ``write(tmp)`` then ``sidecars(tmp)`` (-> {final: tmp file}) and publish all
    through :func:`utils.files.atomic_output` (with GDAL's own ``.aux.xml`` of ``tmp``).

    Sidecars of a replaced file that the new one lacks are removed.
    """
    target = Path(path).absolute()
    replaced = overwrite and target.exists()
    published: dict[Path, Path] = {}

    def all_sidecars(tmp: Path) -> dict[Path, Path]:
        extra = sidecars(tmp) if sidecars is not None else {}
        gdal_aux = aux_xml_path(tmp)
        if gdal_aux.exists() and aux_xml_path(target) not in extra:
            extra[aux_xml_path(target)] = gdal_aux
        published.update(extra)
        return extra

    with atomic_output(target, overwrite, sidecars=all_sidecars) as tmp:
        write(tmp)
    if replaced:  # the old file's sidecars would mislabel the new one
        for stale in (aux_xml_path(target), qml_path(target)):
            if stale not in published and stale.is_file():
                stale.unlink()
    return target


def write_class_map(
    path: str | os.PathLike,
    classes: np.ndarray,
    crs: Any,
    transform: Affine,
    nodata: int = CLASS_NODATA,
    overwrite: bool = False,
) -> Path:
    """Write a class map as an int16 COG with colour table, class names and QGIS style.

    Args:
        path: output ``.tif``; also written: ``<path>.aux.xml`` (colour table and
            category names, GDAL PAM) and ``<path without extension>.qml`` (QGIS style).
        classes: (H, W) integer map; values are ``nodata`` or class indices 0..7
            of :data:`utils.study.CLASSES`.
        crs: anything ``rasterio.crs.CRS.from_user_input`` accepts ("EPSG:32632", a CRS, WKT).
        transform: pixel-to-CRS affine transform of the map (e.g. the scene's).
        nodata: value outside glaciers (int16).
        overwrite: replace an existing file (else FileExistsError).

    Returns:
        Absolute path of the written GeoTIFF.

    Raises:
        OutputExistsError (a FileExistsError), OutputError, ValueError/TypeError for
        bad inputs.
    """
    arr = np.asarray(classes)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"classes must be a 2-D integer array (H, W), got {arr.dtype} {arr.shape}")
    if not -(2**15) <= nodata < 2**15:
        raise ValueError(f"nodata {nodata} does not fit int16")
    step = max(1, (1 << 20) // max(1, arr.shape[1]))
    for r0 in range(0, arr.shape[0], step):  # in row blocks: no full-size temporaries
        rows = arr[r0 : r0 + step]
        bad = (rows != nodata) & ((rows < 0) | (rows >= len(CLASSES)))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"class map value {rows[i, j]} at row {r0 + i}, col {j} is neither "
                f"nodata ({nodata}) nor a class 0..{len(CLASSES) - 1}"
            )
    crs_, transform_ = _check_georef(crs, transform)
    data = arr.astype(np.int16, copy=False)
    tags = {
        CLASS_NAMES_TAG: ",".join(CLASSES),
        CLASS_COLORS_TAG: ",".join(hex_color(CLASS_COLORS[n]) for n in CLASSES),
    }

    def write(tmp: Path) -> None:
        _write_class_cog(tmp, data, crs_, transform_, nodata, tags, CLASS_BAND_DESCRIPTION)

    def sidecars(tmp: Path) -> dict[Path, Path]:
        target = Path(path).absolute()
        write_class_pam(aux_xml_path(tmp))
        tmp_qml = Path(str(tmp) + ".qml")
        write_class_qml(tmp_qml)
        return {aux_xml_path(target): aux_xml_path(tmp), qml_path(target): tmp_qml}

    return _atomic_write(path, overwrite, write, sidecars)


def write_float_map(
    path: str | os.PathLike,
    values: np.ndarray,
    crs: Any,
    transform: Affine,
    nodata: float = FLOAT_NODATA,
    overwrite: bool = False,
    description: str = "confidence",
) -> Path:
    """Write a float map (e.g. confidence) as a float32 COG.

    Args:
        path: output ``.tif``.
        values: (H, W) values; NaN marks pixels without a value and is stored
            as ``nodata``.
        crs, transform, overwrite: as in :func:`write_class_map`.
        nodata: stored nodata value; default -9999.0 (like the class map, and
            robust in tools that mishandle NaN). ``float("nan")`` keeps NaN.
        description: band description.

    Returns:
        Absolute path of the written GeoTIFF.
    """
    arr = np.asarray(values)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"values must be a 2-D numeric array (H, W), got {arr.dtype} {arr.shape}")
    crs_, transform_ = _check_georef(crs, transform)

    def write(tmp: Path) -> None:
        _write_float_cog(tmp, arr, crs_, transform_, float(nodata), description)

    return _atomic_write(path, overwrite, write)


# ----------------------------------------------------------------------------- quicklook


def save_quicklook(classes: np.ndarray, grid: Any, path: str | os.PathLike, overwrite: bool,
                   title: str = "", max_px: int = 1600) -> Path:
    """PNG colour map of a class map (H, W) with a class legend (km² per class).

    Maps larger than ``max_px`` are reduced by a power-of-two mode filter
    (:func:`class_overviews`). Written via a temporary file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from utils.plots import class_rgb

    h, w = classes.shape
    f = 1
    while max(h, w) / f > max_px:
        f *= 2
    small = classes if f == 1 else class_overviews(
        classes, [2**k for k in range(1, f.bit_length())])[-1]
    rgba = np.zeros(small.shape + (4,), dtype=np.float32)
    for i, name in enumerate(CLASSES):
        rgba[small == i] = (*class_rgb(name), 1.0)
    left, bottom, right, top = grid.bounds
    areas = pixel_areas_m2(grid.crs, grid.transform, np.arange(h))
    counts = [float(areas[np.nonzero(classes == i)[0]].sum()) / 1e6 for i in range(len(CLASSES))]
    fig, ax = plt.subplots(figsize=(8, 8 * min(2.0, max(0.3, h / w))))
    ax.set_facecolor("#f4f4f4")
    ax.imshow(rgba, extent=(left, right, bottom, top), interpolation="nearest")
    unit = grid.crs.linear_units if grid.crs.is_projected else "degrees"
    ax.set_xlabel(f"x ({unit}, {grid.crs.to_string()})")
    ax.set_ylabel(f"y ({unit})")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_title(title, fontsize=9)
    handles = [Patch(facecolor=class_rgb(n), edgecolor="black", linewidth=0.5,
                     label=f"{n} ({counts[i]:.3g} km²)") for i, n in enumerate(CLASSES)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8,
              frameon=False, title="class")
    fig.tight_layout()
    try:
        with atomic_output(path, overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path).absolute()


def remove_outputs(paths: Sequence[Path]) -> None:
    """Delete outputs written by a failed run (with raster sidecars)."""
    for p in paths:
        for q in (p, aux_xml_path(p), qml_path(p)):
            with contextlib.suppress(OSError):
                if q.is_file():
                    q.unlink()
