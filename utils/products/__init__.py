"""Satellite products as published -> the 6-band reflectance stack ``apply.py`` maps.

Readers: Sentinel-2 L2A (``.SAFE`` folder or single-band COG folder,
:mod:`~utils.products.sentinel2`), Landsat 4-9 Collection 2 Level-2 (MTL JSON or text,
:mod:`~utils.products.landsat`), STAC items of either (:mod:`~utils.products.stac`).
Each returns a :class:`Product`; :func:`write_stack` writes its reflectance stack and
:func:`open_as_stack` gives ``map_scene`` a temporary one.
``python -m utils.products stack INPUT OUT.tif [--bounds | --outlines]`` on the command line.
"""

from __future__ import annotations

import os
from pathlib import Path

from utils.products.base import Product, ProductError
from utils.products.landsat import looks_like_landsat, read_landsat
from utils.products.sentinel2 import looks_like_sentinel2, read_sentinel2
from utils.products.stac import looks_like_stac_item, read_stac_item
from utils.products.stack import open_as_stack, write_stack

__all__ = ["Product", "ProductError", "is_product", "open_as_stack", "open_product",
           "write_stack"]

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
