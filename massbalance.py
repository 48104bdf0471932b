#!/usr/bin/env python
"""Glacier time series and mass balance from facies maps, scored against WGMS records.

Subcommands:

  series   collect per-scene statistics CSVs (apply.py --stats_csv) into one table
           keyed by (RGIId, date) and pick each glacier's end-of-season scene per year
  regress  annual WGMS balance against the end-of-season AAR, snow-line altitude and
           class fractions: pooled leave-one-glacier-out, glacier-specific
           leave-one-year-out
  ceiling  the same regressions with WGMS's own observed AAR and ELA (what a perfect
           facies map could deliver)
  demo-years  rebuild utils/massbalance/demo_years.json (the demo's real glacier-years)
              from a WGMS folder

Examples:

  python massbalance.py series maps/*_stats.csv --out series.csv --eos eos.csv
  python massbalance.py series --catalogue scenes.csv --out series.csv --eos eos.csv
  python massbalance.py regress eos.csv --wgms ../shared/data/wgms --out results/mb
  python massbalance.py ceiling --wgms ../shared/data/wgms --out results/ceiling

A scene's date and sensor come from a catalogue (CSV: stats_csv, date YYYY-MM-DD,
sensor) or from the file name (first YYYYMMDD or YYYY-MM-DD; sensor token S2, L8,
...). WGMS folder layout: fog-2021-05/ (FoG overview and id lookup, latin-1),
mbdata/mbdata_WGMS-<id>.csv, 00_rgi60_links.csv. Rows left out are listed, with
the reason, in a *_dropped.csv / dropped.csv beside the results.

Exit status: 0 on success, 2 for a usage or input error (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

PROG = "massbalance.py"


def _fraction(s: str) -> float:
    v = float(s)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{s} is not a fraction in 0..1")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("series", help="per-scene statistics CSVs -> series and end of season")
    s.add_argument("stats_csvs", nargs="*", help="statistics CSVs dated by their file names")
    s.add_argument("--catalogue", help="CSV of scenes: stats_csv, date (YYYY-MM-DD), sensor")
    s.add_argument("--out", required=True, help="series CSV (one row per glacier and scene)")
    s.add_argument("--eos", required=True, help="end-of-season CSV (one row per glacier-year)")
    s.add_argument("--min_observed", type=_fraction, default=0.7,
                   help="least observed fraction of a glacier for a usable scene (default 0.7)")
    s.add_argument("--start_month", type=int, choices=range(1, 13), default=10,
                   help="first month of the balance year (default 10: October, northern "
                   "hemisphere; 4 for the southern)")
    for name, hlp in (("regress", "end-of-season facies predictors vs WGMS balances"),
                      ("ceiling", "regressions on WGMS's own observed AAR and ELA")):
        r = sub.add_parser(name, help=hlp)
        if name == "regress":
            r.add_argument("eos", help="end-of-season CSV written by the series subcommand")
        r.add_argument("--wgms", required=True, help="WGMS folder (layout above)")
        r.add_argument("--out", required=True, help="existing folder for tables and figures")
        r.add_argument("--min_years", type=int, default=5,
                       help="fewest years for a glacier-specific model (default 5)")
    d = sub.add_parser("demo-years", help="rebuild the demo's real glacier-years")
    d.add_argument("wgms", help="WGMS folder (layout above)")
    d.add_argument("--out", help="JSON to write (default: the committed "
                   "utils/massbalance/demo_years.json)")
    for sp in sub.choices.values():
        sp.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return p


def _say(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr)


def _report_dropped(dropped) -> None:
    for reason, n in dropped["reason"].value_counts().items():
        _say(f"dropped {n} row(s): {reason}")


def run(args: argparse.Namespace) -> None:
    from utils.massbalance import run as mb

    if args.command == "series":
        res = mb.build_series(args.stats_csvs, args.catalogue, args.out, args.eos,
                              args.min_observed, args.start_month, args.overwrite)
        _report_dropped(res["dropped"])
        _say(f"{res['scenes']} scenes, {res['glaciers']} glaciers, {res['years']} glacier-years "
             f"({res['well_observed_years']} well observed); wrote {', '.join(res['outputs'])}")
        return
    if args.command == "demo-years":
        from utils.files import check_output
        from utils.massbalance.demo import DEMO_YEARS, choose_demo_years, save_demo_years

        out = args.out or DEMO_YEARS
        check_output(out, args.overwrite, "demo glacier-years")
        years = choose_demo_years(mb.glacier_years(args.wgms)[0])
        save_demo_years(years, out, args.overwrite)
        _say(f"{years['WGMS_ID'].nunique()} glaciers, {len(years)} glacier-years; wrote {out}")
        return
    if args.command == "regress":
        sc, dropped = mb.regress(args.eos, args.wgms, args.out, min_years=args.min_years,
                                 overwrite=args.overwrite)
    else:
        from utils.files import check_output

        check_output(Path(args.out) / "dropped.csv", args.overwrite, "dropped report")
        evs, dropped = mb.real_ceiling(args.wgms, args.min_years)
        sc = mb.save_evaluations(evs, args.out, glacier="WGMS_ID", label="wgms",
                                 overwrite=args.overwrite)
        mb.write_csv(dropped, Path(args.out) / "dropped.csv", args.overwrite, "dropped report")
    _report_dropped(dropped)
    cols = ["predictors", "scheme", "n", "n_glaciers", "r", "p_value", "rmse_mwe", "bias_mwe"]
    print(sc[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    _say(f"wrote scores.csv, per_glacier.csv, predictions.csv, figures, dropped.csv to {args.out}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 usage/input error)."""
    from utils.cli import run_cli

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed)
        return int(e.code or 0)
    return run_cli(PROG, lambda: run(args))[0]


if __name__ == "__main__":
    sys.exit(main())
