"""Tests of utils.calibration.report: per-fold calibrators and their comparison table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from utils.calibration import (
    KINDS,
    correctness,
    ece,
    load_calibrator,
    max_confidence,
    reliability,
    report,
)


def _predictions(path: Path, synthetic, n_folds: int = 3, n: int = 3000) -> Path:
    """A ``predictions.npz`` as main.ipynb writes it (over-confident synthetic model)."""
    probs, y = synthetic(n, 2.5, seed=11)
    fold = np.arange(n) % n_folds
    pruned = np.zeros(n, dtype=bool)
    pruned[::17] = True
    arrays = {"y": y, "fold": fold, "pruned": pruned, "probs_after": probs.astype(np.float32)}
    for t in range(n_folds):
        vi = np.flatnonzero((fold == (t - 1) % n_folds) & ~pruned)
        arrays[f"val_index_{t}"] = vi
        arrays[f"val_probs_{t}"] = probs[vi].astype(np.float32)
    np.savez(path, **arrays)
    return path


def test_fit_all_and_comparison_table(tmp_path: Path, synthetic) -> None:
    folds = report.read_predictions(_predictions(tmp_path / "predictions.npz", synthetic))
    assert [f.fold for f in folds] == [0, 1, 2]
    assert all(len(f.test_probs) == len(f.test_labels) for f in folds)
    fitted = report.fit_all(folds, tmp_path / "calibrators")
    names = sorted(p.name for p in (tmp_path / "calibrators").iterdir())
    assert names == sorted(f"{t}_{'' if k == 'kernel_ridge' else k + '_'}calibration_model.json"
                           for t in range(3) for k in KINDS)
    back = load_calibrator(tmp_path / "calibrators" / "0_calibration_model.json")
    assert back.kind == "kernel_ridge"

    table = report.comparison_table(folds, fitted)
    assert list(table.columns) == ["none", *KINDS]
    assert list(table.index) == ["fold 0", "fold 1", "fold 2", "pooled"]
    f = folds[0]
    ok = correctness(f.test_probs, f.test_labels)
    assert table.loc["fold 0", "none"] == pytest.approx(
        ece(reliability(max_confidence(f.test_probs), ok, 100)), abs=1e-7)
    # every calibrator helps this over-confident model, pooled as per fold
    assert (table[list(KINDS)].to_numpy() < table[["none"]].to_numpy()).all()


def test_report_uses_the_one_confidence() -> None:
    """report has no confidence function of its own (one home: utils.calibration)."""
    from utils.calibration import calibrated_confidence

    assert report.calibrated_confidence is calibrated_confidence
