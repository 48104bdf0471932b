"""Both notebooks run top to bottom on the tiny demo dataset and write consistent outputs;
the feature-set comparison (``python -m utils.training feature-sets``) runs on that run's
results.

CI time: each of the 12 models costs seconds of set-up whatever its data, so only feature
set 4 is trained here; the comparison is given set 4's results a second time as "set 1"
(it reads what the notebooks write). ``make reproduce FEATURE_SETS=all`` trains all four."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import utils.calibration as calibration
from utils.demo.driver import run_notebook
from utils.model import input_features, load_model
from utils.study import FACIES_CLASSES
from utils.training import crossval as training
from utils.training.__main__ import main as training_cli

EPOCHS = 1
STUDY_LOGS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "logs"


@pytest.fixture(scope="module")
def executed(tiny_demo, tmp_path_factory):
    """Feature set 4 (all 11 features) through both notebooks into results/4, with a
    region/sensor CSV; feature set 1 (optical) through main.ipynb."""
    out = tmp_path_factory.mktemp("run")
    names = [p.stem.split("_") for p in (tiny_demo / "patches").glob("*.tif")]
    groups = pd.DataFrame({"glacier": [n[1] for n in names], "date": [n[2] for n in names]})
    groups["region"] = groups["glacier"].str.extract(r"^([a-z]+)", expand=False)
    groups["sensor"] = np.where(groups["date"].str[-2:].astype(int) % 2 == 0, "S2", "L8")
    groups.drop_duplicates().to_csv(out / "groups.csv", index=False)
    results = out / "results" / "4"
    results.mkdir(parents=True)
    run_notebook("main.ipynb", results, {
        "dataset": str(tiny_demo / "patches.h5"), "stats": str(tiny_demo / "stats.json"),
        "feature_set": 4, "n_epochs": EPOCHS, "batch_size": 64,
        "weights_dir": str(out / "weights" / "4"), "logs_dir": str(out / "logs" / "4"),
        "results_dir": str(results), "planted_noise": str(tiny_demo / "planted_noise.csv"),
        "groups": str(out / "groups.csv"),
        "study_logs": str(STUDY_LOGS) if STUDY_LOGS.is_dir() else None})
    run_notebook("confidence_calibration.ipynb", results, {
        "results_dir": str(results), "calibration_dir": str(out / "calibrators")})
    shutil.copytree(results, out / "results" / "1")  # stands in for an optical-only run
    return out


def test_models_and_logs(executed):
    for t in range(6):
        for stage in training.STAGES:
            paths = training.model_paths(t, stage, executed / "weights" / "4",
                                         executed / "logs" / "4")
            assert paths.complete
            assert input_features(load_model(paths.weights)) == 11
            rows = training.read_log(paths.log)
            assert [r["epoch"] for r in rows] == list(range(EPOCHS))
    assert not (executed / "weights" / "4" / "checkpoints").exists()


def test_metrics_and_label_issues(executed, tiny_demo):
    results = executed / "results" / "4"
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
    # the alternative definitions sit beside ours: a class only predicted lowers a macro
    # mean over the union; the sample SD exceeds the population SD
    for stage in ("before", "after"):
        m = metrics[stage]
        assert m["macro_f1_unpruned_union"] <= m["macro_f1_unpruned"] + 1e-12
        assert m["glacier_macro_f1_std_sample"] > m["glacier_macro_f1_std"]


def test_per_fold_and_group_tables(executed):
    """The study's per-fold test numbers (loss, accuracy, mIoU) and macro F1 per group."""
    results = executed / "results" / "4"
    per_fold = pd.read_csv(results / "per_fold_test.csv", index_col=[0, 1])
    assert list(per_fold.index.get_level_values(0).unique()) == ["before", "after",
                                                                 "after, unpruned"]
    before = per_fold.loc["before"]
    assert list(before.index) == [str(t) for t in range(6)] + ["mean"]
    assert before[["accuracy", "miou"]].stack().between(0, 1).all()
    assert (per_fold["loss"] > 0).all()
    assert per_fold.loc[("before", "mean"), "n"] == per_fold.loc[("after, unpruned", "mean"), "n"]
    assert per_fold.loc[("after", "mean"), "n"] < per_fold.loc[("before", "mean"), "n"]
    groups = pd.read_csv(results / "group_f1.csv", index_col=[0, 1])
    assert set(groups.index.get_level_values(0)) == {"region", "sensor"}
    assert set(groups.loc["region"].index) == {"alps", "caucasus", "norway"}
    assert groups.loc["region", "n"].sum() == groups.loc["sensor", "n"].sum()
    assert groups["macro_f1"].between(0, 1).all()


def test_feature_set_comparison(executed):
    """``python -m utils.training feature-sets`` compares the runs of sets 1 and 4 (here
    set 4's results twice: the table and figure, not the training, are under test)."""
    root = executed / "results"
    assert training_cli(["feature-sets", str(root), "1", "4"]) == 0
    table = pd.read_csv(root / "feature_sets.csv", index_col=0)
    assert list(table.index) == ["1: 6 features", "4: 11 features"]
    assert table[["macro_f1_cleaned", "macro_f1_unpruned", "f1_ice"]].stack().between(0, 1).all()
    assert (root / "feature_sets.png").stat().st_size > 10_000
    # a missing run is an error naming the folder
    res = subprocess.run([sys.executable, "-m", "utils.training", "feature-sets", str(root),
                          "2"], capture_output=True, text=True)
    assert res.returncode == 2 and str(root / "2") in res.stderr


def test_predictions_and_calibration(executed):
    results = executed / "results" / "4"
    with np.load(results / "predictions.npz") as z:
        probs = z["probs_after"]
        assert np.all(np.isfinite(probs))
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)
        pruned_in_val = 0
        for t in range(6):  # the whole (unpruned) validation fold, as the study calibrates
            vi = z[f"val_index_{t}"]
            np.testing.assert_array_equal(vi, np.flatnonzero(z["fold"] == (t - 1) % 6))
            assert z[f"val_probs_{t}"].shape == (len(vi), 8)
            pruned_in_val += z["pruned"][vi].sum()
        assert pruned_in_val == z["pruned"].sum() > 0
    table = pd.read_csv(results / "calibration_comparison.csv", index_col=0)
    kinds = ["none", "kernel_ridge", "temperature", "isotonic"]
    assert list(table.columns) == [f"{v}_{k}" for v in ("unpruned", "cleaned") for k in kinds]
    assert list(table.index) == [f"fold {t}" for t in range(6)] + ["pooled"]
    # a fold of certain (conf == 1.0) predictions only has no ECE: no bin holds 1.0
    assert np.nanmin(table.to_numpy()) >= 0 and np.nanmax(table.to_numpy()) <= 1
    assert np.isfinite(table.loc["pooled"]).all()
    assert not np.allclose(table["unpruned_none"], table["cleaned_none"])
    metrics = json.loads((results / "calibration_metrics.json").read_text())
    assert metrics["calibration_data"] == "unpruned"
    assert metrics["pooled_test_ece100"]["none"] == pytest.approx(
        table.loc["pooled", "unpruned_none"], abs=1e-6)
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
        png = executed / "results" / "4" / f"study_training_curves_{stage}.png"
        assert png.stat().st_size > 50_000  # six panels of 1000 epochs
    table = pd.read_csv(executed / "results" / "4" / "study_feature_sets.csv", header=[0, 1],
                        index_col=0)
    assert table.shape == (6, 8)  # folds x (2 stages x 4 feature sets)
    # the published logs: cleaned labels validate better than the noisy ones, every set
    assert (table["after"].mean() > table["before"].mean()).all()
