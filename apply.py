#!/usr/bin/env python
"""Map glacier facies in a whole scene inside glacier outlines.

Usage (the study's interface, extended)::

    python apply.py MODEL_NAME RASTER OUTPUT OUTLINES --stats STATS.json [options]

Every glacier pixel (pixel centre inside an outline of OUTLINES) is classified
by the CNN from the 33 x 33 patch of features centred on it; the class map
(int16 Cloud-Optimized GeoTIFF, nodata -9999 outside the outlines and where an
input is missing, colour table and class names for QGIS) is smoothed with a
3 x 3 mode filter unless ``--no_smoothing``.

Inputs
    MODEL_NAME  ``{weights_dir}/{MODEL_NAME}_weights.h5`` or a path to an ``.h5``
                file; its input count picks the features: 6 optical; 8 + elevation,
                slope; 10 + shadow mask, hillshade; 11 + proximity.
    RASTER      6-band GeoTIFF (blue, green, red, nir, swir1, swir2), in the units
                of the normalisation statistics (e.g. surface reflectance 0..1).
                It defines the output grid. Or a product as downloaded: a Sentinel-2
                L2A .SAFE folder (or COG folder with MTD_MSIL2A.xml), a Landsat C2 L2
                *_MTL.json/.txt, or a STAC item JSON: stacked to 10 m reflectance
                (utils.products), its sun position used when none is given.
    OUTLINES    glacier polygons (.shp, .geojson, .gpkg), any CRS (reprojected);
                invalid geometries are repaired (shapely make_valid).
    Feature rasters are single-band on the RASTER grid (or use ``--resample``):
    DEM in metres, slope in degrees, shadow mask 1 = shadow / 0 = sunlit,
    hillshade 0..1, proximity = distance to the outline (any unit: divided by its
    maximum). ``--derive_features`` computes the missing ones from the DEM, the sun
    position and the outlines (utils.terrain).

Preprocessing (as the study): elevation min-max scaled over the scene's glacier
pixels; proximity divided by its maximum; every feature min-max normalised with
the statistics (``--stats``).

Edge handling: features are normalised, NaN/nodata replaced by 0 and the scene
padded by 16 px on each side by mirror reflection (numpy ``mode="reflect"``), so
pixels within 16 px of the scene border get a full 33 x 33 patch (the study's
script truncated them). Pixels whose own value is missing in any used input are
not classified (nodata in the outputs).

Engines: every pixel gets the result the CNN gives on its own patch. The default
``dense`` engine (utils.inference.dense) computes that result with the convolutions shared
between overlapping patches, including each patch's zero-padded border, and is
about 5x faster than ``--engine patch`` (the study's per-patch method, batched);
``dense-approx`` is faster still but changes some classes (docs/BENCHMARKS.md).

Scale: the scene is processed in blocks of rows (``--block_rows``, plus a 16 px
halo), so memory stays bounded (a 10980 x 10980 Sentinel-2 scene needs a few GB).

Exit status: 0 on success, 2 for a usage or input error (one line on stderr
naming the file and the problem; no output is left behind).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence

from utils.cli import run_cli
from utils.inference.engines import DEFAULT_ENGINE, ENGINES
from utils.inference.patch import DEFAULT_BATCH
from utils.mapping.pipeline import DEFAULT_BLOCK_ROWS, MapRequest, map_scene
from utils.study import CLASSES

PROG = "apply.py"


def to_stderr(msg: str) -> None:
    """A status line for the user (stderr)."""
    print(f"{PROG}: {msg}", file=sys.stderr)


def _angle(lo: float, hi: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (lo <= v <= hi):
            raise argparse.ArgumentTypeError(f"{v} is outside {lo:g}..{hi:g} degrees")
        return v

    return parse


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be >= 1")
    return v


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (the study's, plus the options documented here)."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Map glacier facies (8 classes: " + ", ".join(CLASSES) + ") inside "
        "glacier outlines with the study's CNN. Every glacier pixel is classified from "
        "the 33 x 33 patch centred on it; near the scene border the normalised features "
        "are mirrored (numpy reflect padding, 16 px), so border pixels are classified too.",
        epilog="Exit status 2 on a usage or input error (one line naming the file; no "
        "output left behind). Example: python apply.py 0_cnn_afterconfidentlearning "
        "scene/optical.tif facies.tif scene/outlines.geojson --dem_path scene/dem.tif "
        "--derive_features --sun_azimuth 150 --sun_elevation 45 --stats stats.json",
    )
    p.add_argument("model_name", metavar="MODEL_NAME",
                   help="weights: WEIGHTS_DIR/MODEL_NAME_weights.h5, or a path to an .h5 file; "
                   "its input count picks the features (6 optical; 8 +elevation, slope; "
                   "10 +shadow_mask, hillshade; 11 +proximity)")
    p.add_argument("raster", metavar="RASTER",
                   help="6-band GeoTIFF: blue, green, red, nir, swir1, swir2 (units of the "
                   "statistics, e.g. reflectance 0..1), or a product: Sentinel-2 L2A .SAFE "
                   "folder, Landsat C2 L2 *_MTL.json/.txt, STAC item JSON (stacked to 10 m "
                   "reflectance; its sun position is used); defines the output grid")
    p.add_argument("output", metavar="OUTPUT",
                   help="class map GeoTIFF to write (int16 COG, nodata -9999, colour table)")
    p.add_argument("outlines", metavar="OUTLINES",
                   help="glacier outlines (.shp, .geojson, .gpkg; any CRS, reprojected)")
    p.add_argument("--stats", metavar="JSON",
                   help="normalisation statistics (required): our JSON or the study's "
                   "globalminmax pickle; make them with `python -m utils.data stats "
                   "DATASET_DIR OUT.json`")
    p.add_argument("--weights_dir", default="weights",
                   help="folder of MODEL_NAME_weights.h5 files (default: weights)")
    g = p.add_argument_group("feature rasters (single band, on the RASTER grid)")
    g.add_argument("--dem_path", help="DEM, metres (elevation; also the snow-line altitude "
                   "in --stats_csv)")
    g.add_argument("--slope_path", help="slope, degrees 0..90")
    g.add_argument("--shadow_path", help="shadow mask, 1 = shadow, 0 = sunlit "
                   "(together with --hillshade_path)")
    g.add_argument("--hillshade_path", help="hillshade, 0..1 (together with --shadow_path)")
    g.add_argument("--proximity_path", help="distance to the glacier outline (divided by its "
                   "maximum)")
    g.add_argument("--resample", action="store_true",
                   help="warp feature rasters on another grid or CRS onto the RASTER grid "
                   "(bilinear; nearest for the shadow mask) instead of stopping with an error")
    g = p.add_argument_group("derived features")
    g.add_argument("--derive_features", action="store_true",
                   help="compute the features the model needs and no raster gives: slope, "
                   "hillshade and shadow mask from --dem_path and the sun, proximity from "
                   "the outlines (needs a projected CRS in metres)")
    g.add_argument("--sun_azimuth", type=_angle(0, 360), metavar="DEG",
                   help="sun azimuth, degrees clockwise from north (scene metadata)")
    g.add_argument("--sun_elevation", type=_angle(0, 90), metavar="DEG",
                   help="sun elevation above the horizon, degrees (scene metadata)")
    g = p.add_argument_group("outputs")
    g.add_argument("--confidence_path", help="write a float32 confidence map (0..1, nodata "
                   "-9999 outside glaciers): max class probability, calibrated with "
                   "--calibration_model if given")
    g.add_argument("--calibration_model", help="confidence calibrator: our JSON or the "
                   "study's KernelRidge pickle")
    g.add_argument("--quicklook", metavar="PNG", help="write a PNG colour map with a legend")
    g.add_argument("--stats_csv", metavar="CSV",
                   help="write per-glacier statistics: class areas (km²), fractions of the "
                   "observed area (without shadow, cloud), AAR, mean confidence, snow-line "
                   "altitude (m, with --dem_path)")
    g.add_argument("--no_smoothing", action="store_true",
                   help="skip the 3 x 3 mode filter of the class map")
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    g = p.add_argument_group("performance")
    g.add_argument("--engine", choices=sorted(ENGINES), default=DEFAULT_ENGINE,
                   help=f"inference engine (default: {DEFAULT_ENGINE}). dense: shares the "
                        "convolutions between overlapping patches, same results as patch, "
                        "about 5x faster; patch: one 33 x 33 patch per pixel, the study's method; "
                        "dense-approx: scene-wide global max, ~100x faster but changes the "
                        "class of 9-14 %% of the pixels (see docs/BENCHMARKS.md)")
    g.add_argument("--batch_size", type=_positive, default=DEFAULT_BATCH,
                   help=f"patches per model call of the patch engine (default {DEFAULT_BATCH}; "
                   "~0.3 MB each)")
    g.add_argument("--block_rows", type=_positive, default=DEFAULT_BLOCK_ROWS,
                   help=f"scene rows processed at a time (default {DEFAULT_BLOCK_ROWS}; "
                   "memory ~ rows x width x features x 16 bytes)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 usage/input error)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed)
        return int(e.code or 0)
    fields = {f.name for f in dataclasses.fields(MapRequest)}
    request = MapRequest(**{k: v for k, v in vars(args).items() if k in fields},
                         smoothing=not args.no_smoothing)
    code, summary = run_cli(PROG, lambda: map_scene(request, progress=not args.quiet,
                                                    log=to_stderr))
    if code:
        return code
    to_stderr(f"classified {summary['classified_px']} of {summary['glacier_px']} glacier pixels "
              f"in {summary['seconds']:.1f} s; wrote {', '.join(summary['outputs'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
