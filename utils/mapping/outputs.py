"""GeoTIFF reading and writing (rasterio) for scenes, class maps and confidence maps.

Reading: :func:`read_raster` (whole raster), :func:`open_raster` (a rasterio
dataset for windowed work) with :func:`read_window`; errors name the file.

Writing: :func:`write_class_map` and :func:`write_float_map` write
Cloud-Optimized GeoTIFFs (GDAL "COG" driver: 512 x 512 tiles, DEFLATE with a
predictor, internal overviews halving the size until it fits in one tile).
Overviews ignore nodata: class maps get a mode (ties -> smallest class)
computed here by :func:`class_overviews` (GDAL 3.10's MODE resampling turns
all-nodata blocks of int16 rasters into 0 = "ice"), float maps GDAL's AVERAGE.

How the class legend is stored (int16 GeoTIFFs cannot hold a TIFF palette, which
is only allowed for Byte/UInt16):

* ``<file>.aux.xml`` (GDAL PAM sidecar): ``ColorInterp`` Palette, the
  ``ColorTable`` of :data:`utils.study.CLASS_COLORS` and ``CategoryNames``.
  GDAL (so QGIS and rasterio's ``colormap(1)``) reads it when opening the file.
* Inside the TIFF (GDAL_METADATA tag, survives without sidecars): dataset tags
  ``CLASS_NAMES=ice,snow,...`` and ``CLASS_COLORS=#2e75d6,...`` and the band
  description.
* ``<file-without-extension>.qml``: a QGIS style (paletted renderer with class
  names and colours) that QGIS loads automatically with the raster.

Writes are atomic and non-clobbering: everything is written to temporary files
in the target folder and renamed into place on success (the GeoTIFF with a
no-clobber hard link unless ``overwrite``); on any failure no output and no
temporary file remains. Sidecars of a replaced file that the new one lacks are
removed. Publishing several files is not atomic as a whole: the GeoTIFF is
renamed first, then its sidecars (an existing ``<name>.qml`` is replaced).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio import shutil as rio_shutil
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.transform import Affine
from rasterio.windows import Window

from utils.study import CLASS_COLORS, CLASSES

CLASS_NODATA: int = -9999
FLOAT_NODATA: float = -9999.0
BLOCKSIZE: int = 512
CLASS_BAND_DESCRIPTION = "glacier surface class"
CLASS_NAMES_TAG = "CLASS_NAMES"
CLASS_COLORS_TAG = "CLASS_COLORS"

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


class RasterReadError(ValueError):
    """A file exists but is not a readable raster (the message names the file)."""


class OutputFolderError(OSError):
    """The output folder is missing, not a folder, or not writable (message names it)."""


@dataclass(frozen=True)
class RasterMeta:
    """Georeferencing and layout of a raster.

    ``transform`` maps (col, row) pixel corners to CRS coordinates; ``nodata``
    is None when the file declares none; ``dtype`` is the numpy name of the
    stored data type (before any cast by :func:`read_raster`).
    """

    crs: CRS | None
    transform: Affine
    width: int
    height: int
    nodata: float | None
    dtype: str
    count: int

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return (self.height, self.width)


def meta_of(src: DatasetReader) -> RasterMeta:
    """:class:`RasterMeta` of an open rasterio dataset (nodata and dtype of band 1)."""
    return RasterMeta(
        crs=src.crs,
        transform=src.transform,
        width=src.width,
        height=src.height,
        nodata=src.nodata,
        dtype=str(src.dtypes[0]),
        count=src.count,
    )


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


def read_class_names(path: str | os.PathLike) -> list[str] | None:
    """Class names stored with a class map (the in-TIFF ``CLASS_NAMES`` tag, else the
    ``CategoryNames`` of the ``.aux.xml`` sidecar); None if neither is present."""
    with open_raster(path) as src:
        tag = src.tags().get(CLASS_NAMES_TAG)
    if tag:
        return tag.split(",")
    aux = Path(str(path) + ".aux.xml")
    if aux.is_file():
        band = ET.parse(aux).getroot().find("PAMRasterBand[@band='1']")
        cats = band.find("CategoryNames") if band is not None else None
        if cats is not None:
            return [c.text or "" for c in cats.findall("Category")]
    return None


# ----------------------------------------------------------------------------- sidecars


def aux_xml_path(path: str | os.PathLike) -> Path:
    """GDAL PAM sidecar of a raster: ``<file>.aux.xml``."""
    return Path(str(path) + ".aux.xml")


def qml_path(path: str | os.PathLike) -> Path:
    """QGIS style sidecar that QGIS auto-loads: ``<file-without-extension>.qml``."""
    return Path(path).with_suffix(".qml")


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _write_class_pam(aux: Path) -> None:
    """Add (or replace) band 1 colour table, palette interpretation and category
    names in a PAM ``.aux.xml``, keeping anything GDAL already put there."""
    if aux.exists():
        root = ET.parse(aux).getroot()
    else:
        root = ET.Element("PAMDataset")
    band = root.find("PAMRasterBand[@band='1']")
    if band is None:
        band = ET.SubElement(root, "PAMRasterBand", band="1")
    for tag in ("CategoryNames", "ColorInterp", "ColorTable"):
        for old in band.findall(tag):
            band.remove(old)
    cats = ET.SubElement(band, "CategoryNames")
    for name in CLASSES:
        ET.SubElement(cats, "Category").text = name
    ET.SubElement(band, "ColorInterp").text = "Palette"
    table = ET.SubElement(band, "ColorTable")
    for name in CLASSES:
        r, g, b = CLASS_COLORS[name]
        ET.SubElement(table, "Entry", c1=str(r), c2=str(g), c3=str(b), c4="255")
    ET.indent(root)
    ET.ElementTree(root).write(aux, encoding="unicode")


def _write_class_qml(qml: Path) -> None:
    """QGIS style: paletted renderer on band 1 with class colours and names."""
    entries = "\n".join(
        f'        <paletteEntry value="{i}" color="{_hex(CLASS_COLORS[n])}" alpha="255" '
        f'label="{n}"/>'
        for i, n in enumerate(CLASSES)
    )
    qml.write_text(
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.28.0" styleCategories="AllStyleCategories">\n'
        "  <pipe>\n"
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" '
        'nodataColor="">\n'
        "      <rasterTransparency/>\n"
        "      <colorPalette>\n"
        f"{entries}\n"
        "      </colorPalette>\n"
        "    </rasterrenderer>\n"
        '    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
        '    <huesaturation colorizeOn="0" saturation="0" grayscaleMode="0"/>\n'
        '    <rasterresampler maxOversampling="2"/>\n'
        "  </pipe>\n"
        "  <blendMode>0</blendMode>\n"
        "</qgis>\n",
        encoding="utf-8",
    )


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


def _link_no_clobber(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; FileExistsError if ``dst`` exists (atomic where hard links work)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise FileExistsError(
            errno.EEXIST, f"{dst} exists; pass overwrite=True to replace it", str(dst)
        ) from None
    except OSError:  # no hard links on this file system: check, then rename
        if dst.exists():
            raise FileExistsError(
                errno.EEXIST, f"{dst} exists; pass overwrite=True to replace it", str(dst)
            ) from None
        os.replace(src, dst)
        return
    os.unlink(src)


def _reserve_temp(folder: Path, name: str) -> Path:
    """Create an empty, uniquely named temporary file in ``folder`` (normal permissions)."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputFolderError(
                e.errno or errno.EACCES,
                f"cannot write in output folder {folder}: {e.strerror or e}",
                str(folder),
            ) from e
        os.close(fd)
        return tmp
    raise OutputFolderError(errno.EEXIST, f"no free temporary name in {folder}", str(folder))


def _atomic_write(
    path: str | os.PathLike,
    overwrite: bool,
    write: Callable[[Path], None],
    sidecars: Callable[[Path], dict[Path, Path]] | None = None,
) -> Path:
    """Run ``write(tmp)`` then ``sidecars(tmp)`` (-> {final: tmp file}) and publish.

    Every temporary file starts with the name of ``tmp``; all are removed on failure.
    """
    target = Path(path).absolute()
    folder = target.parent
    if not folder.is_dir():
        code, why = (
            (errno.ENOTDIR, "is not a folder")
            if folder.exists()
            else (errno.ENOENT, "does not exist")
        )
        raise OutputFolderError(code, f"output folder {folder} {why}", str(folder))
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{target} is a folder", str(target))
    if target.exists() and not overwrite:
        raise FileExistsError(
            errno.EEXIST, f"{target} exists; pass overwrite=True to replace it", str(target)
        )
    tmp = _reserve_temp(folder, target.name)
    published: list[Path] = []
    try:
        write(tmp)
        extra = sidecars(tmp) if sidecars is not None else {}
        gdal_aux = aux_xml_path(tmp)
        if gdal_aux.exists() and aux_xml_path(target) not in extra:
            extra[aux_xml_path(target)] = gdal_aux
        replaced = overwrite and target.exists()
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_no_clobber(tmp, target)
        published.append(target)
        for final, src in extra.items():
            os.replace(src, final)
            published.append(final)
        if replaced:  # the old file's sidecars would mislabel the new one
            for stale in (aux_xml_path(target), qml_path(target)):
                if stale not in extra and stale.is_file():
                    stale.unlink()
    except BaseException:
        for name in os.listdir(folder):
            if name.startswith(tmp.name):
                with contextlib.suppress(OSError):
                    (folder / name).unlink()
        if not overwrite:  # what we published is ours alone: take it back
            for p in published:
                with contextlib.suppress(OSError):
                    p.unlink()
        raise
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
        FileExistsError, OutputFolderError, ValueError/TypeError for bad inputs.
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
        CLASS_COLORS_TAG: ",".join(_hex(CLASS_COLORS[n]) for n in CLASSES),
    }

    def write(tmp: Path) -> None:
        _write_class_cog(tmp, data, crs_, transform_, nodata, tags, CLASS_BAND_DESCRIPTION)

    def sidecars(tmp: Path) -> dict[Path, Path]:
        target = Path(path).absolute()
        _write_class_pam(aux_xml_path(tmp))
        tmp_qml = Path(str(tmp) + ".qml")
        _write_class_qml(tmp_qml)
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
