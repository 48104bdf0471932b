"""The 6-band reflectance stack of a product: float32 on a 10 m grid, tiled GeoTIFF.

The output grid is the product's own (its blue band's CRS and corner) at
:data:`STACK_RES_M` (10 m, the study's resolution), optionally cropped to bounds.
Coarser bands (Sentinel-2 B11, B12 and SCL at 20 m; every Landsat band at 30 m) are
resampled by nearest neighbour: each coarse pixel becomes its 2 x 2 (3 x 3) 10 m pixels,
values unchanged, so masks never bleed and no reflectance is mixed across a cloud edge.
Every band and the quality band must cover the same extent in the same CRS, at an integer
multiple of 10 m. Reflectance = DN x scale + offset (from the metadata); DN 0 (fill) and
the quality codes of :mod:`utils.products.base` become NaN (the stack's nodata).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from utils.files import atomic_output, check_output
from utils.products.base import Product, ProductError
from utils.products.detect import is_product, open_product
from utils.scene.raster import Grid
from utils.study import HALF, OPTICAL

#: Pixel side of the stack (m).
STACK_RES_M = 10.0
#: Stack rows read and written at a time (memory ~ rows x width x 7 x 4 bytes).
BLOCK_ROWS = 1024
#: Pixels kept around the outlines' bounds when cropping to them: every glacier pixel's
#: 33 x 33 patch stays inside the crop.
CROP_MARGIN_PX = HALF


def _open(path: str, product: Product):
    try:
        return rasterio.open(path)
    except RasterioIOError as e:
        raise ProductError(f"{path}: cannot read this band of {product.source} ({e})") from None


def product_grid(product: Product) -> tuple[Grid, dict[str, int]]:
    """The full 10 m grid of ``product`` and each file's integer factor (file px / 10 m).

    Checks that every band and the quality band share the CRS and extent (to 1 mm).
    """
    files = dict(product.bands) | ({"quality": product.quality} if product.quality else {})
    ref = None
    factors = {}
    for name, path in files.items():
        if not path.startswith("/vsi") and not Path(path).is_file():
            raise ProductError(f"{path}: missing {name} band of {product.source}")
        with _open(path, product) as src:
            t, crs, bounds = src.transform, src.crs, src.bounds
            if crs is None:
                raise ProductError(f"{path}: the {name} band has no CRS")
            if t.b or t.d or not math.isclose(abs(t.a), abs(t.e)):
                raise ProductError(f"{path}: the {name} band is not on a north-up grid of "
                                   "square pixels")
            k = abs(t.a) / STACK_RES_M
            if k < 1 - 1e-9 or not math.isclose(k, round(k), abs_tol=1e-6):
                raise ProductError(f"{path}: {abs(t.a):g} m pixels of the {name} band are not "
                                   f"a multiple of {STACK_RES_M:g} m")
            factors[name] = round(k)
            if ref is None:
                ref = (name, path, crs, bounds)
                continue
            if crs != ref[2]:
                raise ProductError(f"{path}: the {name} band is in {crs}, the {ref[0]} band "
                                   f"({ref[1]}) in {ref[2]}: not one product")
            if not np.allclose(tuple(bounds), tuple(ref[3]), rtol=0, atol=1e-3):
                raise ProductError(f"{path}: the {name} band is on another grid (bounds "
                                   f"{tuple(round(b, 3) for b in bounds)}) than the {ref[0]} "
                                   f"band ({ref[1]}: {tuple(round(b, 3) for b in ref[3])})")
    _, _, crs, (left, bottom, right, top) = ref
    width = round((right - left) / STACK_RES_M)
    height = round((top - bottom) / STACK_RES_M)
    t = Affine(STACK_RES_M, 0.0, left, 0.0, -STACK_RES_M, top)
    return Grid(CRS.from_user_input(crs), t, width, height), factors


def crop_window(grid: Grid, bounds: tuple[float, float, float, float],
                source: str) -> tuple[int, int, int, int]:
    """Rows and columns (r0, r1, c0, c1) of ``grid`` covering ``bounds`` (grid CRS), snapped
    outwards to whole pixels; ProductError when they do not overlap the grid."""
    left, bottom, right, top = bounds
    t = grid.transform
    c0 = max(0, math.floor((left - t.c) / t.a))
    c1 = min(grid.width, math.ceil((right - t.c) / t.a))
    r0 = max(0, math.floor((top - t.f) / t.e))
    r1 = min(grid.height, math.ceil((bottom - t.f) / t.e))
    if c0 >= c1 or r0 >= r1:
        raise ProductError(f"{source}: the crop bounds {tuple(round(b, 1) for b in bounds)} do "
                           f"not overlap the product ({tuple(round(b, 1) for b in grid.bounds)}"
                           f", {grid.crs})").about("bounds")
    return r0, r1, c0, c1


def outlines_bounds(outlines: str | os.PathLike, crs: CRS, margin_m: float) -> tuple:
    """Bounds of the glacier outlines in ``crs`` plus ``margin_m`` metres on every side."""
    from utils.scene.outlines import read_outlines

    outl = read_outlines(outlines, crs)
    left, bottom, right, top = outl.gdf.total_bounds
    return (left - margin_m, bottom - margin_m, right + margin_m, top + margin_m)


def _read_rows(src, factor: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """10 m rows r0..r1, cols c0..c1 of a file whose pixels are ``factor`` x 10 m (nearest)."""
    sr0, sc0 = r0 // factor, c0 // factor
    sr1, sc1 = -(-r1 // factor), -(-c1 // factor)
    data = src.read(1, window=Window(sc0, sr0, sc1 - sc0, sr1 - sr0))
    if factor > 1:
        data = np.repeat(np.repeat(data, factor, axis=0), factor, axis=1)
    return data[r0 - sr0 * factor: r1 - sr0 * factor, c0 - sc0 * factor: c1 - sc0 * factor]


def write_stack(product: Product, output: str | os.PathLike,
                bounds: tuple[float, float, float, float] | None = None,
                overwrite: bool = False, progress: bool = False,
                masked: tuple[int, ...] | None = None) -> Path:
    """Write blue..swir2 surface reflectance (float32, NaN nodata) as a tiled GeoTIFF.

    ``bounds`` (left, bottom, right, top in the product's CRS) crops the stack;
    ``masked`` overrides the quality codes that become nodata (SCL classes or QA_PIXEL
    bits, see :mod:`utils.products.base`). The file carries the band names as
    descriptions and the product's metadata (sensor, date, sun) as tags.
    """
    from tqdm import tqdm

    target = check_output(output, overwrite, "stack")
    grid, factors = product_grid(product)
    r0, r1, c0, c1 = ((0, grid.height, 0, grid.width) if bounds is None
                      else crop_window(grid, bounds, product.source))
    product.invalid(np.zeros(1, dtype=np.uint16), masked)  # check ``masked`` before any work
    h, w = r1 - r0, c1 - c0
    t = grid.transform @ Affine.translation(c0, r0)
    profile = {"driver": "GTiff", "width": w, "height": h, "count": len(OPTICAL),
               "dtype": "float32", "crs": grid.crs, "transform": t, "nodata": np.nan,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
               "predictor": 3, "BIGTIFF": "IF_SAFER"}
    with contextlib.ExitStack() as files:
        srcs = {n: files.enter_context(_open(p, product)) for n, p in product.bands.items()}
        qsrc = files.enter_context(_open(product.quality, product)) if product.quality else None
        with atomic_output(target, overwrite, what="stack") as tmp, \
                rasterio.open(tmp, "w", **profile) as dst, \
                tqdm(total=h, unit="row", desc="stacking", disable=not progress) as bar:
            for b0 in range(r0, r1, BLOCK_ROWS):
                b1 = min(b0 + BLOCK_ROWS, r1)
                bad = np.zeros((b1 - b0, w), dtype=bool)
                if qsrc is not None:
                    bad |= product.invalid(_read_rows(qsrc, factors["quality"], b0, b1, c0, c1),
                                           masked)
                out = np.empty((len(OPTICAL), b1 - b0, w), dtype=np.float32)
                for i, name in enumerate(OPTICAL):
                    dn = _read_rows(srcs[name], factors[name], b0, b1, c0, c1)
                    band = (dn * product.scale[name] + product.offset[name]).astype(np.float32)
                    band[(dn == product.nodata_dn) | bad] = np.nan
                    out[i] = band
                dst.write(out, window=Window(0, b0 - r0, w, b1 - b0))
                bar.update(b1 - b0)
            dst.descriptions = OPTICAL
            dst.update_tags(**product.tags())
    return target


@contextlib.contextmanager
def open_as_stack(path: str | os.PathLike, progress: bool = False
                  ) -> Iterator[tuple[Path, Product | None]]:
    """``with open_as_stack(p) as (raster, product):`` the 6-band scene of ``p``.

    A product (SAFE folder, MTD_MSIL2A.xml, COG folder, MTL file or folder, STAC item
    JSON) is stacked into a temporary folder (``TMPDIR``), removed on exit; any other
    path is yielded as it is, with ``product`` None.
    """
    if not is_product(path):
        yield Path(path), None
        return
    product = open_product(path)
    folder = Path(tempfile.mkdtemp(prefix="glacier-stack-"))
    try:
        out = write_stack(product, folder / "stack.tif", progress=progress)
        yield out, product
    finally:
        shutil.rmtree(folder, ignore_errors=True)
