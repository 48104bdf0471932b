"""Command line: a downloaded product -> the 6-band reflectance stack ``apply.py`` maps.

``python -m utils.products stack INPUT OUT.tif [--bounds L B R T | --outlines FILE]
[--mask CODE ...] [--overwrite] [--quiet]``

INPUT is a Sentinel-2 L2A ``.SAFE`` folder (or its ``MTD_MSIL2A.xml``), a folder of
Sentinel-2 single-band COGs with their ``MTD_MSIL2A.xml``, a Landsat Collection 2 Level-2
``*_MTL.json``/``*_MTL.txt`` (or its folder) or a STAC item JSON. Input errors print one
line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from utils.errors import InputError, cli_message

PROG = "python -m utils.products"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stack", help="write blue..swir2 surface reflectance on a 10 m grid")
    s.add_argument("input", help="SAFE folder, COG folder, MTL file or folder, STAC item JSON")
    s.add_argument("output", help="output GeoTIFF (float32, NaN nodata, tiled)")
    crop = s.add_mutually_exclusive_group()
    crop.add_argument("--bounds", type=float, nargs=4, metavar=("LEFT", "BOTTOM", "RIGHT", "TOP"),
                      help="crop to these bounds (metres, in the product's CRS)")
    crop.add_argument("--outlines", help="crop to these glacier outlines (any CRS) plus 16 px")
    s.add_argument("--mask", type=int, nargs="+", metavar="CODE",
                   help="quality codes that become nodata: SCL classes (default 0 1 3 8 9 10) "
                   "or QA_PIXEL bits (default 0 2 3 4); snow/ice can never be masked")
    s.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0, or 2 after an input error)."""
    args = _parser().parse_args(argv)
    from utils.products import open_product, write_stack
    from utils.products.stack import CROP_MARGIN_PX, STACK_RES_M, outlines_bounds, product_grid

    try:
        product = open_product(args.input)
        bounds = tuple(args.bounds) if args.bounds else None
        if args.outlines:
            grid, _ = product_grid(product)
            bounds = outlines_bounds(args.outlines, grid.crs, CROP_MARGIN_PX * STACK_RES_M)
        out = write_stack(product, args.output, bounds, args.overwrite, not args.quiet,
                          tuple(args.mask) if args.mask else None)
    except (InputError, FileNotFoundError) as err:
        print(f"{PROG}: error: {cli_message(err, {'masked': '--mask'})}", file=sys.stderr)
        return 2
    sun = (f", sun azimuth {product.sun_azimuth:g} elevation {product.sun_elevation:g} deg"
           if product.sun_elevation is not None else "")
    print(f"{out}: {product.sensor} {product.date}{sun}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
