"""Command line of the patch dataset: pack a folder into one HDF5 file, or compute statistics.

``python -m utils.data stats DATASET OUT.json [--folds F ...] [--overwrite] [--skip-invalid]``
    per-feature minima and maxima of the raw patches (JSON, utils.normalisation).
``python -m utils.data pack DATASET_DIR OUT.h5 [--overwrite] [--skip-invalid]``
    write the pack (utils.data.pack).

Every input error (a missing or invalid dataset, an invalid patch, bad folds, an
output that exists or cannot be written) prints one line on stderr and exits with
code 2; outputs are checked before any reading and written atomically. With
``--skip-invalid`` invalid patches are skipped and listed in ``OUT.skipped.csv``
(columns file, problem). ``OUT.skipped.csv`` belongs to ``OUT``: an older one is
replaced, or removed when ``--skip-invalid`` is not given, and like ``OUT`` it is
only replaced with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from utils.cli import OneLineParser
from utils.data.names import check_folds, resolve_patch_folder
from utils.data.pack import PackReader, pack_patches, source_kind
from utils.data.skipped import skip_report_path, write_skip_report
from utils.data.stats import compute_stats
from utils.errors import InputError, OutputExistsError, cli_message
from utils.files import check_output
from utils.normalisation import save_stats

PROG = "python -m utils.data"


def _build_parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stats", help="per-feature min/max statistics (JSON)")
    s.add_argument("dataset", type=Path, help="patch folder or pack (.h5)")
    s.add_argument("out", type=Path, help="output JSON")
    s.add_argument("--folds", type=int, nargs="+", help="folds to use (default: all)")
    k = sub.add_parser("pack", help="pack a patch folder into one HDF5 file")
    k.add_argument("dataset", type=Path, help="patch folder (or pack)")
    k.add_argument("out", type=Path, help="output .h5")
    for q in (s, k):
        q.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
        q.add_argument(
            "--skip-invalid",
            action="store_true",
            help="skip invalid patches, list them in OUT.skipped.csv",
        )
    return p


def _message(err: InputError) -> str:
    """The one line printed for ``err``, with this command's flags."""
    if isinstance(err, OutputExistsError):
        return f"{err.filename}: already exists (use --overwrite to replace it)"
    return cli_message(err)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0. Input errors exit with code 2 (SystemExit)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        done = _run(args)
    except InputError as err:
        parser.error(_message(err))
    print(done, file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> str:
    """Check every input and output, then do the command; returns the line to print."""
    if source_kind(args.dataset) == "pack":
        PackReader(args.dataset).close()
    else:
        resolve_patch_folder(args.dataset)
    if args.command == "stats":
        check_folds(args.folds)
    what = "statistics" if args.command == "stats" else "pack"
    check_output(args.out, args.overwrite, what=what, inputs=[args.dataset])
    report = skip_report_path(args.out)
    if args.skip_invalid or report.exists():
        check_output(report, args.overwrite, what="skip report", inputs=[args.dataset])

    if args.command == "stats":
        stats, skipped = compute_stats(args.dataset, args.folds, args.skip_invalid, progress=True)
        save_stats(stats, args.out, args.overwrite)
        done = f"wrote {args.out}"
    else:
        res = pack_patches(args.dataset, args.out, args.overwrite, args.skip_invalid)
        skipped = res.skipped
        done = f"wrote {args.out}: {res.n_patches} patches, per fold {list(res.fold_counts)}"
    if args.skip_invalid:
        write_skip_report(skipped, report, args.overwrite)
        done += f"; skipped {len(skipped)} invalid patches (listed in {report})"
    elif report.exists():  # the report of the output just replaced (--overwrite was checked)
        report.unlink()
        done += f"; removed {report}, the skip report of the replaced output"
    return done


if __name__ == "__main__":
    sys.exit(main())
