"""Which product a path is, and reading it: the readers by kind."""

from __future__ import annotations

import os
from pathlib import Path

from utils.products.base import Product, ProductError
from utils.products.landsat import looks_like_landsat, read_landsat
from utils.products.sentinel2 import looks_like_sentinel2, read_sentinel2
from utils.products.stac import looks_like_stac_item, read_stac_item

_KINDS = ((looks_like_stac_item, read_stac_item), (looks_like_sentinel2, read_sentinel2),
          (looks_like_landsat, read_landsat))


def is_product(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a product this package reads (not a plain raster)."""
    p = Path(path)
    return any(looks(p) for looks, _ in _KINDS)


def open_product(path: str | os.PathLike) -> Product:
    """Read the product at ``path`` (names and metadata; no pixels) as a :class:`Product`."""
    p = Path(path)
    if not p.exists():
        raise ProductError(f"{p}: no such file or folder")
    for looks, read in _KINDS:
        if looks(p):
            return read(p)
    raise ProductError(f"{p}: not a product this reads (a Sentinel-2 L2A .SAFE or COG folder "
                       "with MTD_MSIL2A.xml, a Landsat C2 L2 *_MTL.json/.txt or its folder, "
                       "or a STAC item JSON)")
