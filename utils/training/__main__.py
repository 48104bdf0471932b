"""``python -m utils.training feature-sets RESULTS 1 2 3 4 [--study_logs LOGS]``: compare
the feature-set runs in RESULTS/1..4 (``make reproduce FEATURE_SETS=all``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.errors import InputError, cli_message


def main(argv: list[str] | None = None) -> int:
    """Write RESULTS/feature_sets.csv and .png/.pdf (and study_feature_sets.* from the
    study's logs when given); 2 on a bad request."""
    parser = argparse.ArgumentParser(prog="python -m utils.training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fs = sub.add_parser("feature-sets", help="compare the runs of several feature sets")
    fs.add_argument("results", help="folder holding one results folder per set (1..4)")
    fs.add_argument("sets", nargs="+", type=int, choices=[1, 2, 3, 4], help="feature sets")
    fs.add_argument("--study_logs", help="the study's logs folder with 1..4/ (optional)")
    args = parser.parse_args(argv)

    from utils.plots import save_figure
    from utils.training import feature_sets

    results = Path(args.results)
    try:
        table = feature_sets.comparison_table(results, args.sets)
    except InputError as e:
        print(f"python -m utils.training: {cli_message(e)}", file=sys.stderr)
        return 2
    table.round(4).to_csv(results / "feature_sets.csv")
    save_figure(feature_sets.plot_comparison(table), results / "feature_sets")
    print(table.round(3).to_string())
    if args.study_logs:
        study = feature_sets.study_log_table(args.study_logs)
        if study.empty:
            print(f"python -m utils.training: no logs in {args.study_logs}/1..4/",
                  file=sys.stderr)
            return 2
        study.round(4).to_csv(results / "study_feature_sets.csv")
        save_figure(feature_sets.plot_study_logs(study), results / "study_feature_sets")
    print(f"comparison in {results / 'feature_sets.csv'} and {results / 'feature_sets.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
