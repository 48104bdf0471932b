"""Command line: ``python -m utils.published fetch [--dest .] [--overwrite] [--base-url URL]``.

Downloads the study's published weights (every feature set), training logs and
calibrators into DEST/weights, DEST/logs and DEST/confidence_calibration_models,
verifying each file's SHA-256; a rerun resumes interrupted downloads and skips files
already there. Exit status 0 on success, 2 when a file could not be fetched or
verified, DEST is unusable, or files there differ and --overwrite was not given
(one line on stderr naming the files and the problem).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from utils.cli import OneLineParser
from utils.errors import InputError, cli_message
from utils.published.catalogue import BASE_URL
from utils.published.download import fetch

PROG = "python -m utils.published"
FLAGS = {"base_url": "--base-url", "dest": "--dest", "overwrite": "--overwrite"}


def _build_parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download and verify the study's published files",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    f.add_argument("--dest", type=Path, default=Path("."),
                   help="project folder that receives weights/, logs/ and "
                   "confidence_calibration_models/ (default: .)")
    f.add_argument("--overwrite", action="store_true",
                   help="replace files that differ from the published ones")
    f.add_argument("--base-url", default=BASE_URL,
                   help="where the study's repository files are (default: the pinned "
                   f"commit, {BASE_URL})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0. Errors exit with code 2 (SystemExit)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        report = fetch(args.dest, base_url=args.base_url, overwrite=args.overwrite)
    except InputError as err:
        parser.error(cli_message(err, FLAGS))
    resumed = f" ({len(report.resumed)} resumed)" if report.resumed else ""
    print(f"{PROG}: fetched {len(report.fetched)} file(s), {report.n_bytes / 1e6:.1f} MB"
          f"{resumed}; {len(report.present)} already present and verified; all in "
          f"{args.dest} (weights/, logs/, confidence_calibration_models/)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
