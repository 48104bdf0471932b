"""Per-fold calibration of the 'after' models and the comparison of calibrators.

Reads the predictions ``main.ipynb`` saves (``results/predictions.npz``): for
each fold t, the validation probabilities of model t and the out-of-fold test
probabilities. Calibrators are fitted on the validation fold and scored on the
test fold (ECE with 100 bins, as the paper). As the study's calibration notebook
(its ``get_folds_dataset`` calls pass no ``exclude``), both folds are *unpruned*
by default; the ``cleaned`` variant leaves the pruned labels out of both, which
raises accuracy in every bin and so gives more optimistic calibrators and ECEs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from utils.calibration.calibrators import KINDS, Calibrator, calibrated_confidence
from utils.calibration.confidence import correctness
from utils.calibration.fitting import fit_calibrator, fit_kernel_ridge_points
from utils.calibration.portable import save_calibrator
from utils.calibration.reliability import ece, pool_reliability, reliability


@dataclass
class FoldPredictions:
    """Validation and test probabilities (N, 8) with labels (N,) of one fold."""

    fold: int
    val_probs: np.ndarray
    val_labels: np.ndarray
    test_probs: np.ndarray
    test_labels: np.ndarray


VARIANTS = ("unpruned", "cleaned")


def read_predictions(path: str | os.PathLike, variant: str = "unpruned"
                     ) -> list[FoldPredictions]:
    """Per-fold predictions from ``predictions.npz``: ``unpruned`` (the study's: every
    validation and test label) or ``cleaned`` (pruned labels left out of both)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    with np.load(path) as z:
        y, fold, pruned, probs = z["y"], z["fold"], z["pruned"], z["probs_after"]
        keep = ~pruned if variant == "cleaned" else np.ones(len(y), bool)
        out = []
        for t in sorted(int(k.rsplit("_", 1)[1]) for k in z.files if k.startswith("val_index_")):
            vi, vp = z[f"val_index_{t}"], z[f"val_probs_{t}"]
            vk = keep[vi]
            te = (fold == t) & keep
            out.append(FoldPredictions(t, vp[vk], y[vi[vk]], probs[te], y[te]))
    return out


def fit_all(folds: list[FoldPredictions], out_dir: str | os.PathLike | None
            ) -> dict[str, dict[int, Calibrator]]:
    """Fit every kind of calibrator per fold and save them as portable JSON.

    The study's kernel ridge goes to ``{fold}_calibration_model.json``, the
    others to ``{fold}_{kind}_calibration_model.json``; nothing is saved when
    ``out_dir`` is None.
    """
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    fitted: dict[str, dict[int, Calibrator]] = {k: {} for k in KINDS}
    for f in folds:
        for kind in KINDS:
            c = _fit(kind, f)
            name = "" if kind == "kernel_ridge" else f"{kind}_"
            if out is not None:
                save_calibrator(c, out / f"{f.fold}_{name}calibration_model.json")
            fitted[kind][f.fold] = c
    return fitted


def _fit(kind: str, f: FoldPredictions) -> Calibrator:
    """Fit one calibrator; a kernel ridge whose validation confidences are all exactly 1.0
    (in no bin, as the study's ``conf < upper``) is fitted on the anchors (0, 0), (1, 1)."""
    if kind == "kernel_ridge" and not (np.max(f.val_probs, axis=1) < 1.0).any():
        return fit_kernel_ridge_points([0.0, 1.0], [0.0, 1.0])
    return fit_calibrator(kind, f.val_probs, f.val_labels)


def comparison_table(folds: list[FoldPredictions],
                     fitted: dict[str, dict[int, Calibrator]]) -> pd.DataFrame:
    """Test ECE_100 per fold and pooled for none / kernel ridge / temperature / isotonic."""
    rows = {}
    pooled: dict[str, list] = {k: [] for k in ("none", *KINDS)}
    for f in folds:
        ok = correctness(f.test_probs, f.test_labels)
        row = {}
        for kind in ("none", *KINDS):
            c = None if kind == "none" else fitted[kind][f.fold]
            rel = reliability(calibrated_confidence(f.test_probs, c), ok, 100)
            pooled[kind].append(rel)
            row[kind] = ece(rel)
        rows[f"fold {f.fold}"] = row
    rows["pooled"] = {k: ece(pool_reliability(v)) for k, v in pooled.items()}
    table = pd.DataFrame(rows).T
    table.index.name = "test ECE_100"
    return table


def variants_table(path: str | os.PathLike) -> pd.DataFrame:
    """Test ECE_100 of both variants side by side: columns ``{variant}_{kind}`` (unpruned
    first, the study's), rows per fold and pooled. Fits its own calibrators, saves none."""
    tables = []
    for variant in VARIANTS:
        folds = read_predictions(path, variant)
        tables.append(comparison_table(folds, fit_all(folds, None)).add_prefix(f"{variant}_"))
    return pd.concat(tables, axis=1)
