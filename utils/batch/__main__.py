"""Command line: map every scene of a catalogue on Dask and write one per-glacier table.

``python -m utils.batch CATALOG --outlines RGI.gpkg --dem DEM.tif --model MODEL
--stats STATS.json --out DIR [--scheduler ADDRESS | --workers N] [--calibration_model F]``

CATALOG: a CSV (columns path, date, sensor; optional id, sun_azimuth, sun_elevation,
outlines, dem), a folder of products, or a STAC ItemCollection JSON. Writes
``DIR/scenes/<id>/{facies,confidence}.tif`` and ``glaciers.csv``, ``DIR/glaciers.parquet``
and ``DIR/glaciers.csv`` (all scenes, keyed by glacier id and date) and
``DIR/manifest.jsonl``; a re-run skips finished scenes. Exit status 0 when every scene
is mapped, 1 when some failed (listed, and in the manifest), 2 for an input error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from utils.errors import InputError, cli_message

PROG = "python -m utils.batch"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("catalog", help="CSV, folder of products or STAC ItemCollection JSON")
    p.add_argument("--outlines", required=True, help="glacier outlines (any CRS), e.g. RGI")
    p.add_argument("--dem", required=True, help="DEM in metres (any CRS; warped per scene)")
    p.add_argument("--model", required=True, help="weights name (in --weights_dir) or .h5")
    p.add_argument("--stats", required=True, help="normalisation statistics JSON")
    p.add_argument("--out", required=True, help="output folder (created; reused to resume)")
    p.add_argument("--weights_dir", default="weights", help="folder of NAME_weights.h5")
    p.add_argument("--calibration_model", help="calibrator JSON for the confidence maps")
    p.add_argument("--engine", default="dense", help="inference engine (default dense)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", help="address of a running Dask scheduler "
                       "(tcp://host:8786); default: a LocalCluster on this machine")
    where.add_argument("--workers", type=int, help="LocalCluster worker processes (default: "
                       "one per 4 cores and 6 GB of memory)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 all mapped, 1 some failed, 2 input error)."""
    args = _parser().parse_args(argv)
    from utils.batch.runner import BatchConfig, run_batch

    cfg = BatchConfig(model=args.model, outlines=args.outlines, dem=args.dem, stats=args.stats,
                      out=args.out, weights_dir=args.weights_dir,
                      calibration_model=args.calibration_model, engine=args.engine)
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    try:
        result = run_batch(args.catalog, cfg, args.scheduler, args.workers,
                           progress=not args.quiet, log=log)
    except (InputError, FileNotFoundError) as err:
        print(f"{PROG}: error: {cli_message(err)}", file=sys.stderr)
        return 2
    for scene, error in result["failed"].items():
        print(f"{PROG}: {scene} failed: {error}", file=sys.stderr)
    print(f"{result['mapped']} mapped, {len(result['failed'])} failed, {result['skipped']} "
          f"already done; table: {result['parquet']} and {result['csv']}", file=sys.stderr)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
