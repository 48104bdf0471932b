"""Derive per-class Sentinel-2 surface-reflectance spectra for the demo data generator.

Reads the measured training points of glacier-snow-cover-mapping (R. Aberle et al.,
MIT licence) once and writes per-class means and 6 x 6 covariances of the bands
B2, B3, B4, B8, B11, B12 (= blue, green, red, nir, swir1, swir2) to
``utils/demo/spectra_s2.json``. That JSON is committed; the generator never needs
the CSV.

Usage::

    python scripts/derive_spectra.py [CSV] [--out utils/demo/spectra_s2.json]

CSV defaults to ``../shared/data/spectra/Sentinel-2_SR_training_data.csv``.
Robustness: per class, points with a missing band or any band outside that
class's 0.5-99.5 percentile range are dropped (removes e.g. cloud-contaminated
"snow" points with SWIR reflectance > 1) before the mean and covariance.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "spectra" / "Sentinel-2_SR_training_data.csv"
DEFAULT_OUT = ROOT / "utils" / "demo" / "spectra_s2.json"

#: Sentinel-2 band of each optical feature (utils.study.OPTICAL order).
BANDS: dict[str, str] = {
    "blue": "B2",
    "green": "B3",
    "red": "B4",
    "nir": "B8",
    "swir1": "B11",
    "swir2": "B12",
}
#: The CSV's class codes -> our names.
CODES: dict[int, str] = {
    1: "snow",
    2: "shadowed-snow",
    3: "ice",
    4: "debris",
    5: "water",
}
TRIM = (0.5, 99.5)  # percentiles kept per band and class

ATTRIBUTION = (
    "Derived from Sentinel-2_SR_training_data.csv of glacier-snow-cover-mapping "
    "(R. Aberle, E. Enderlin et al., Boise State University; https://github.com/RaineyAbe/"
    "glacier-snow-cover-mapping), MIT licence, Copyright (c) 2024 Rainey Aberle. "
    "Sites: Gulkana, Wolverine (Alaska), South Cascade (Washington), Sperry (Montana)."
)


def derive(csv_path: Path) -> dict:
    """Per-class trimmed mean (6,) and covariance (6, 6) of surface reflectance (0..~1)."""
    data = pd.read_csv(csv_path)
    cols = list(BANDS.values())
    missing = [c for c in ["class", *cols] if c not in data.columns]
    if missing:
        raise ValueError(f"{csv_path}: missing columns {missing}")
    classes = {}
    for code, name in CODES.items():
        x = data.loc[data["class"] == code, cols].to_numpy(dtype=np.float64)
        n_all = len(x)
        x = x[np.all(np.isfinite(x), axis=1)]
        lo, hi = np.percentile(x, TRIM, axis=0)
        x = x[np.all((x >= lo) & (x <= hi), axis=1)]
        sites = data.loc[data["class"] == code, "site_name"].value_counts().sort_index()
        classes[name] = {
            "code": code,
            "n_points": int(n_all),
            "n_used": int(len(x)),
            "sites": {str(k): int(v) for k, v in sites.items()},
            "mean": [round(float(v), 6) for v in x.mean(axis=0)],
            "cov": [[round(float(v), 8) for v in row] for row in np.cov(x, rowvar=False)],
        }
    return {
        "attribution": ATTRIBUTION,
        "source_file": "Sentinel-2_SR_training_data.csv",
        "licence": "MIT",
        "quantity": "Sentinel-2 L2A surface reflectance (0..~1)",
        "bands": BANDS,
        "trim_percentiles": list(TRIM),
        "classes": classes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        print(f"{args.csv}: not found (the measured spectra live in ../shared)", file=sys.stderr)
        return 1
    result = derive(args.csv)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, args.out)
    for name, c in result["classes"].items():
        mean = ", ".join(f"{v:.3f}" for v in c["mean"])
        print(f"{name:14s} n={c['n_used']:5d}/{c['n_points']:5d}  mean [{mean}]")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
