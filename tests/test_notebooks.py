"""Both notebooks run top to bottom on the tiny demo dataset and write consistent outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import utils.calibration as calibration
from utils.demo.driver import run_notebook
from utils.model import input_features, load_model
from utils.study import FACIES_CLASSES
from utils.training import crossval as training

EPOCHS = 2
STUDY_LOGS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "logs"


@pytest.fixture(scope="module")
def executed(tiny_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    results = out / "results"
    results.mkdir()
    run_notebook("main.ipynb", results, {
        "dataset": str(tiny_demo / "patches.h5"), "stats": str(tiny_demo / "stats.json"),
        "n_epochs": EPOCHS, "batch_size": 64, "weights_dir": str(out / "weights"),
        "logs_dir": str(out / "logs"), "results_dir": str(results),
        "planted_noise": str(tiny_demo / "planted_noise.csv"),
        "study_logs": str(STUDY_LOGS) if STUDY_LOGS.is_dir() else None})
    run_notebook("confidence_calibration.ipynb", results, {
        "results_dir": str(results), "calibration_dir": str(out / "calibrators")})
    return out


def test_models_and_logs(executed):
    for t in range(6):
        for stage in training.STAGES:
            paths = training.model_paths(t, stage, executed / "weights", executed / "logs")
            assert paths.complete
            assert input_features(load_model(paths.weights)) == 11
            rows = training.read_log(paths.log)
            assert [r["epoch"] for r in rows] == list(range(EPOCHS))
    assert not (executed / "weights" / "checkpoints").exists()


def test_metrics_and_label_issues(executed, tiny_demo):
    results = executed / "results"
    metrics = json.loads((results / "metrics.json").read_text())
    n = len(list((tiny_demo / "patches").glob("*.tif")))
    for stage in ("before", "after"):
        m = metrics[stage]
        for key in ("macro_f1_cleaned", "macro_f1_unpruned", "glacier_macro_f1_mean",
                    "glacier_macro_f1_std"):
            assert 0.0 <= m[key] <= 1.0
        assert m["n_all"] == n
    issues = pd.read_csv(results / "label_issues.csv")
    assert set(issues["given"]) <= set(FACIES_CLASSES)
    assert metrics["n_pruned"] == len(issues)
    assert metrics["after"]["n_cleaned"] == metrics["after"]["n_all"] - len(issues)
    assert metrics["before"]["n_cleaned"] == metrics["before"]["n_all"]
    cl = metrics["confident_learning_vs_planted"]
    assert cl["n_pruned"] == len(issues) and cl["n_planted"] > 0
    for name in ("confusion_after", "pruned_per_class", "training_curves_before"):
        assert (results / f"{name}.png").stat().st_size > 5000
        assert (results / f"{name}.pdf").exists()
    per_class = pd.read_csv(results / "per_class_after.csv", index_col=0)
    assert per_class["f1"].between(0, 1).all()


def test_predictions_and_calibration(executed):
    results = executed / "results"
    with np.load(results / "predictions.npz") as z:
        probs = z["probs_after"]
        assert np.all(np.isfinite(probs))
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)
        for t in range(6):
            assert np.all(z["fold"][z[f"val_index_{t}"]] == (t - 1) % 6)
            assert not z["pruned"][z[f"val_index_{t}"]].any()
    table = pd.read_csv(results / "calibration_comparison.csv", index_col=0)
    assert list(table.columns) == ["none", "kernel_ridge", "temperature", "isotonic"]
    assert list(table.index) == [f"fold {t}" for t in range(6)] + ["pooled"]
    assert table.to_numpy().min() >= 0 and table.to_numpy().max() <= 1
    for t in range(6):
        cal = calibration.load_calibrator(executed / "calibrators" /
                                          f"{t}_calibration_model.json")
        out = cal.predict(np.linspace(0, 1, 11))
        assert np.all((out >= 0) & (out <= 1))
    for name in ("calibration_per_fold", "calibration_pooled", "calibration_classwise"):
        assert (results / f"{name}.png").exists()


def test_study_training_curves_from_the_notebook(executed, reference_dir):
    """With the study's published logs the notebook draws the paper's training curves."""
    for stage in training.STAGES:
        png = executed / "results" / f"study_training_curves_{stage}.png"
        assert png.stat().st_size > 50_000  # six panels of 1000 epochs
