"""Metric definitions with hand-worked answers, per-fold scores, groups, calibration variants,
the study-log feature-set table."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from utils.calibration import report
from utils.errors import InputError
from utils.training import evaluation, feature_sets


def test_macro_f1_over_label_classes_and_union():
    # labels hold ice (0) and snow (1); the model also predicts debris (2) once
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 2, 1, 1])
    f1_ice, f1_snow = 2 / 3, 1.0  # ice: P 1, R 1/2; snow: P 1, R 1
    assert evaluation.macro_f1(y, p) == pytest.approx((f1_ice + f1_snow) / 2)
    assert evaluation.macro_f1(y, p, union=True) == pytest.approx((f1_ice + f1_snow + 0) / 3)
    assert np.isnan(evaluation.macro_f1(np.array([], int), np.array([], int)))


def test_glacier_wise_sd_population_and_sample():
    y = np.array([0, 1, 0, 1, 0, 1])
    p = np.array([0, 1, 0, 0, 1, 0])
    glaciers = np.array(["a", "a", "b", "b", "c", "c"])
    gw = evaluation.glacier_wise_f1(y, p, glaciers)
    # a: perfect; b: ice P 1/2 R 1 -> 2/3, snow 0 -> 1/3; c: both 0
    np.testing.assert_allclose(gw.to_numpy(), [1.0, 1 / 3, 0.0])
    probs = np.eye(8)[p]
    m = evaluation.summarise(y, probs, glaciers)
    assert m["glacier_macro_f1_mean"] == pytest.approx(4 / 9)
    assert m["glacier_macro_f1_std"] == pytest.approx(np.std([1, 1 / 3, 0]))
    assert m["glacier_macro_f1_std_sample"] == pytest.approx(np.std([1, 1 / 3, 0], ddof=1))


def test_evaluate_scores_match_keras():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)  # classes 5..7 absent: left out of mIoU as in keras
    logits = rng.normal(size=(200, 8)) + 2 * np.eye(8)[y]
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    scores = evaluation.evaluate_scores(y, probs)
    miou = keras.metrics.OneHotMeanIoU(num_classes=8)
    miou.update_state(np.eye(8)[y], probs)
    assert scores["miou"] == pytest.approx(float(miou.result()), abs=1e-6)
    assert scores["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))
    p_true = np.clip(probs[np.arange(200), y], 1e-7, 1 - 1e-7)
    assert scores["loss"] == pytest.approx(np.mean(-(1 - p_true) ** 2 * np.log(p_true)),
                                           rel=1e-5)


def test_fold_table_rows():
    y = np.array([0, 1, 0, 1, 2, 2])
    folds = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(8)[[0, 1, 1, 1, 2, 0]].astype(np.float32)
    keep = np.array([True, True, True, False, True, True])
    table = evaluation.fold_table(y, folds, {"before": (probs, None), "after": (probs, keep)})
    assert table.loc[("before", "1"), "accuracy"] == 0.5
    assert table.loc[("after", "1"), "accuracy"] == 0.0 and table.loc[("after", "1"), "n"] == 1
    assert table.loc[("before", "mean"), "accuracy"] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_groups_csv(tmp_path):
    glaciers = np.array(["a", "a", "b", "b"])
    dates = np.array(["d1", "d2", "d1", "d1"])
    csv = tmp_path / "groups.csv"
    pd.DataFrame({"glacier": ["a", "a", "b"], "date": ["d1", "d2", "d1"],
                  "region": ["alps", "alps", "norway"], "sensor": ["S2", "L8", "S2"]}
                 ).to_csv(csv, index=False)
    groups = evaluation.read_groups(csv, glaciers, dates)
    assert groups["region"].tolist() == ["alps", "alps", "norway", "norway"]
    assert groups["sensor"].tolist() == ["S2", "L8", "S2", "S2"]
    table = evaluation.group_f1(np.array([0, 1, 0, 0]), np.array([0, 1, 1, 0]), groups)
    assert table.loc[("region", "alps"), "macro_f1"] == 1.0
    assert table.loc[("sensor", "S2"), "n"] == 3
    with pytest.raises(InputError, match=r"groups.csv: no region for \['c'\]"):
        evaluation.read_groups(csv, np.array(["a", "c"]), np.array(["d1", "d1"]))
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"glacier": ["a", "a"], "region": ["alps", "norway"]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match="bad.csv: glaciers with two regions"):
        evaluation.read_groups(bad, glaciers, dates)
    pd.DataFrame({"glacier": ["a"]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match=r"lacks the column\(s\) \['region'\]"):
        evaluation.read_groups(bad, glaciers, dates)


def test_calibration_variants(tmp_path):
    """Unpruned (the study's) folds keep every label; cleaned ones drop the pruned."""
    rng = np.random.default_rng(1)
    n = 600
    y = rng.integers(0, 8, n)
    probs = rng.dirichlet(np.ones(8), n).astype(np.float32)
    fold = np.arange(n) % 3
    pruned = rng.random(n) < 0.2
    arrays = {"y": y, "fold": fold, "pruned": pruned, "probs_after": probs}
    for t in range(3):
        vi = np.flatnonzero(fold == (t - 1) % 3)
        arrays[f"val_index_{t}"], arrays[f"val_probs_{t}"] = vi, probs[vi]
    np.savez(tmp_path / "p.npz", **arrays)
    unpruned = report.read_predictions(tmp_path / "p.npz")
    cleaned = report.read_predictions(tmp_path / "p.npz", "cleaned")
    assert len(unpruned[0].test_labels) == (fold == 0).sum()
    assert len(cleaned[0].test_labels) == ((fold == 0) & ~pruned).sum()
    assert len(cleaned[0].val_labels) == ((fold == 2) & ~pruned).sum()
    table = report.variants_table(tmp_path / "p.npz")
    assert table.columns[0] == "unpruned_none" and "cleaned_isotonic" in table.columns
    with pytest.raises(ValueError, match="variant"):
        report.read_predictions(tmp_path / "p.npz", "pruned")


def test_study_log_table(tmp_path):
    for s, best in ((1, 0.5), (4, 0.7)):
        (tmp_path / str(s)).mkdir()
        for fold in range(2):
            for stage in feature_sets.STAGES:
                pd.DataFrame({"epoch": [0, 1], "val_miou": [0.1, best + fold / 10]}).to_csv(
                    tmp_path / str(s) / f"{fold}_cnn_{stage}_log.csv", index=False)
    table = feature_sets.study_log_table(tmp_path)
    assert table.shape == (2, 4)
    np.testing.assert_allclose(table[("after", "4: 11 features")], [0.7, 0.8])
    np.testing.assert_allclose(table[("before", "1: 6 features")], [0.5, 0.6])
    assert feature_sets.study_log_table(tmp_path / "none").empty


def test_kernel_ridge_on_a_fold_of_certain_predictions(tmp_path):
    """Confidences of exactly 1.0 are in no bin (the study's rule): such a fold's kernel
    ridge falls back to the anchors instead of failing, and its ECE is undefined."""
    probs = np.zeros((30, 8), np.float32)
    probs[:, 0] = 1.0
    y = np.r_[np.zeros(20, int), np.ones(10, int)]
    fold = np.zeros(30, int)
    np.savez(tmp_path / "p.npz", y=y, fold=fold, pruned=np.zeros(30, bool),
             probs_after=probs, val_index_0=np.arange(30), val_probs_0=probs)
    folds = report.read_predictions(tmp_path / "p.npz")
    fitted = report.fit_all(folds, tmp_path / "cal")
    np.testing.assert_allclose(fitted["kernel_ridge"][0].predict([0.0, 1.0]), [0.0, 1.0],
                               atol=1e-9)
    assert np.isnan(report.comparison_table(folds, fitted).loc["fold 0", "none"])
