"""Satellite products as published -> the 6-band reflectance stack ``apply.py`` maps.

Readers: Sentinel-2 L2A (``.SAFE`` folder or single-band COG folder,
:mod:`~utils.products.sentinel2`), Landsat 4-9 Collection 2 Level-2 (MTL JSON or text,
:mod:`~utils.products.landsat`), STAC items of either (:mod:`~utils.products.stac`).
Each returns a :class:`Product`; :func:`write_stack` writes its reflectance stack and
:func:`open_as_stack` gives ``map_scene`` a temporary one.
``python -m utils.products stack INPUT OUT.tif [--bounds | --outlines]`` on the command line.
"""

from __future__ import annotations

from utils.products.base import Product, ProductError
from utils.products.detect import is_product, open_product
from utils.products.stack import open_as_stack, write_stack

__all__ = ["Product", "ProductError", "is_product", "open_as_stack", "open_product",
           "write_stack"]
