#!/usr/bin/env python
"""Rock glaciers from Sentinel-2 RGB tiles: train, evaluate, map a scene.

    python rockglaciers.py train FOLDER MODEL.keras      # grouped CV, then the final model
    python rockglaciers.py evaluate MODEL.keras FOLDER   # metrics; last line one JSON object
    python rockglaciers.py map MODEL.keras SCENE.tif PROB.tif [--polygons RG.gpkg]

FOLDER holds tiles in either layout (cordillera_<n>.png / glaciarRoca_<site>_<k>_<n>.png,
or cordillera/ and glaciar/ folders). Input and usage errors: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from utils.cli import run_cli  # noqa: E402


def _json(d: dict) -> str:
    return json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                       for k, v in d.items()})


def _parser() -> argparse.ArgumentParser:
    from utils.rockglaciers.classifier import EPOCHS

    p = argparse.ArgumentParser(prog="rockglaciers.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="grouped cross-validation, then train and save the model")
    t.add_argument("folder", help="folder of 128 x 128 RGB tiles (either layout)")
    t.add_argument("model", help="output model file (.keras); its calibrator is written "
                   "beside it as <name>.calibration.json")
    t.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs (default {EPOCHS})")
    t.add_argument("--folds", type=int, default=5, help="grouped CV folds (default 5)")
    t.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    e = sub.add_parser("evaluate", help="score a model on a folder of tiles")
    e.add_argument("model", help="model file (.keras) written by train")
    e.add_argument("folder", help="folder of tiles (either layout)")
    e.add_argument("--skip-invalid", action="store_true",
                   help="leave out unreadable or wrongly sized tiles and list them")
    m = sub.add_parser("map", help="rock-glacier probability GeoTIFF of an 8-bit RGB scene")
    m.add_argument("model", help="model file (.keras) written by train")
    m.add_argument("raster", help="8-bit RGB(A) GeoTIFF, projected CRS (Sentinel-2 TCI, 10 m)")
    m.add_argument("output", help="output probability GeoTIFF (COG; cell = stride pixels)")
    m.add_argument("--polygons", help="also write cells >= threshold as polygons (GeoPackage)")
    m.add_argument("--threshold", type=float, default=0.5, help="polygon threshold (0.5)")
    m.add_argument("--stride", type=int, default=64,
                   help="window step and output cell size in pixels: 16/32/64/128 (64)")
    m.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return p


def _run(args: argparse.Namespace) -> None:
    if args.command == "train":
        from utils.rockglaciers.evaluation import summary, train_and_save

        scores, _ = train_and_save(args.folder, args.model, k=args.folds,
                                   overwrite=args.overwrite, epochs=args.epochs)
        print(summary(scores).round(3).to_string())
        cnn = summary(scores).loc["cnn_calibrated"]
        print(_json({"model": args.model, **{k: float(v) for k, v in cnn.items()}}))
    elif args.command == "evaluate":
        from utils.rockglaciers.evaluation import evaluate_folder

        res = evaluate_folder(args.model, args.folder, skip_invalid=args.skip_invalid)
        for line in res["skipped"]:
            print(f"skipped: {line}")
        for k in ("n_tiles", "n_rock_glacier", "accuracy", "balanced_accuracy",
                  "f1_rock_glacier", "roc_auc", "ece", "ece_raw"):
            v = res[k]
            print(f"{k:18s} {v:.4f}" if isinstance(v, float) else f"{k:18s} {v}")
        print(f"confusion (rows true no/yes, cols predicted): {res['confusion']}")
        print(_json({**res, "skipped": len(res["skipped"])}))
    else:
        from utils.rockglaciers.scene import map_scene

        print(_json(map_scene(args.model, args.raster, args.output, args.polygons,
                              threshold=args.threshold, stride=args.stride,
                              overwrite=args.overwrite)))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code, _ = run_cli(f"rockglaciers.py {args.command}", lambda: _run(args))
    return code


if __name__ == "__main__":
    sys.exit(main())
