#!/usr/bin/env python
"""Outline the glaciers of a scene with the outline U-Net; write a GeoPackage.

Usage::

    python outline.py MODEL SCENE OUT.gpkg [--min_area_km2 0.01] [--threshold 0.5]
        [--probability_path prob.tif] [--tile 256] [--overlap 32] [--overwrite]

Inputs
    MODEL   an outline model: NAME.keras + NAME.json (written by
            ``utils.outlines.train``; the JSON lists the bands it reads).
    SCENE   GeoTIFF on a projected grid (e.g. UTM, 30 m): the 7 bands blue, green,
            red, nir, swir1, swir2 (reflectance), elevation (m), or exactly the
            model's bands in the model's order. Normalised per scene (2-98 %
            percentiles per band), as in training.

Output: polygons of the glacier regions (probability >= threshold; holes kept;
regions and holes smaller than --min_area_km2 dropped / filled) with ``id`` and
``area_km2``, in the scene's CRS, layer ``glacier_outlines``. It is a valid
OUTLINES input of ``apply.py``.

Inference runs on overlapping tiles with blended seams, reading the scene in
strips, so memory stays bounded (a 3660 x 3660 scene: docs/OUTLINES.md).

Exit status: 0 on success, 2 for a usage or input error (one line on stderr
naming the file and the problem; no output is left behind).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

PROG = "outline.py"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog=PROG, description="Outline glaciers in a scene with the outline U-Net and write "
        "the polygons (id, area_km2; scene CRS) to a GeoPackage that apply.py reads as "
        "OUTLINES.",
        epilog="Exit status 2 on a usage or input error. Example: python outline.py "
        "demo/outline_model.keras scene.tif outlines.gpkg && python apply.py MODEL "
        "scene_6band.tif facies.tif outlines.gpkg --stats stats.json")
    p.add_argument("model", metavar="MODEL", help="outline model NAME.keras (with NAME.json)")
    p.add_argument("scene", metavar="SCENE", help="7-band GeoTIFF (blue, green, red, nir, "
                   "swir1, swir2, elevation m) or the model's bands, projected CRS")
    p.add_argument("output", metavar="OUT.gpkg", help="GeoPackage of glacier outlines to write")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="glacier where the probability is at least this (default 0.5)")
    p.add_argument("--min_area_km2", type=float, default=0.01,
                   help="drop polygons and fill holes smaller than this, km² (default 0.01 "
                   "= 11 pixels of 30 m)")
    p.add_argument("--probability_path", metavar="TIF",
                   help="also write the glacier probability (float32 GeoTIFF 0..1, nodata NaN)")
    p.add_argument("--tile", type=int, default=256, help="tile side, px, multiple of 8 "
                   "(default 256)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap, px, blended "
                   "(default 32)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 usage/input error)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    from utils.cli import run_cli
    from utils.outlines.predict import outline_scene

    code, s = run_cli(PROG, lambda: outline_scene(
        args.model, args.scene, args.output, threshold=args.threshold,
        min_area_km2=args.min_area_km2, probability_path=args.probability_path, tile=args.tile,
        overlap=args.overlap, overwrite=args.overwrite, progress=not args.quiet))
    if code:
        return code
    print(f"{PROG}: {s['polygons']} glacier outlines, {s['area_km2']:.2f} km², in "
          f"{s['seconds']:.1f} s; wrote {', '.join(s['outputs'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
