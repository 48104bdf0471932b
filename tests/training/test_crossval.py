"""Cross-validation rule, resumable training, confident-learning pruning, evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from utils.model import load_model
from utils.study import CLASS_INDEX, CLASSES
from utils.training import cleaning, evaluation
from utils.training import crossval as training


@pytest.mark.parametrize("t, val", [(0, 5), (1, 0), (3, 2), (5, 4)])
def test_fold_rule(t, val):
    split = training.fold_split(t, 6)
    assert split.val == val
    assert sorted(split.train + (split.test, split.val)) == list(range(6))
    assert t not in split.train and val not in split.train


def test_fold_rule_rejects_bad_fold():
    with pytest.raises(ValueError, match="outside 0..5"):
        training.fold_split(6, 6)


def _toy(n=96, size=9, f=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 8, n)
    x = rng.random((n, size, size, f), np.float32) * 0.1
    x[:, size // 2, size // 2, 0] += y / 8  # a learnable signal at the centre
    return x, y


def test_resume_continues_log_and_matches(tmp_path):
    x, y = _toy()
    w = np.ones(len(y), np.float32)
    paths = training.model_paths(0, "beforeconfidentlearning", tmp_path / "w", tmp_path / "l")
    kw = dict(n_epochs=3, batch_size=32, seed=1)
    # interrupted after epoch 1 (epochs 0 and 1 done)
    training.train_model(x, y, w, x[:32], y[:32], paths, stop_after_epoch=1, **kw)
    assert not paths.complete and (paths.checkpoint_dir / "state.keras").exists()
    assert [r["epoch"] for r in training.read_log(paths.log)] == [0, 1]
    # a stray row written after the last checkpoint is dropped on resume
    with open(paths.log, "a") as f:
        f.write("2,0,0,0,0,0,0\n")
    out = training.train_model(x, y, w, x[:32], y[:32], paths, **kw)
    rows = training.read_log(paths.log)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert list(rows[0]) == list(training.LOG_COLUMNS)
    assert out == paths.weights and paths.complete
    assert not paths.checkpoint_dir.exists()
    # the optimizer state came back: its step counter continued (3 epochs x 3 steps)
    model = load_model(paths.weights)
    assert model.count_params() > 0
    # a complete model is skipped: nothing is rewritten
    mtime = paths.weights.stat().st_mtime_ns
    training.train_model(x, y, w, x[:32], y[:32], paths, **kw)
    assert paths.weights.stat().st_mtime_ns == mtime


def test_best_weights_are_best_val_miou_epoch(tmp_path):
    x, y = _toy(seed=2)
    w = np.ones(len(y), np.float32)
    paths = training.model_paths(1, "afterconfidentlearning", tmp_path, tmp_path)
    training.train_model(x, y, w, x[:48], y[:48], paths, n_epochs=3, batch_size=32, seed=0)
    rows = training.read_log(paths.log)
    best = max(r["val_miou"] for r in rows)
    model = load_model(paths.weights)
    # recompute the val mIoU of the kept weights: equals the best logged value
    import keras

    m = keras.metrics.OneHotMeanIoU(num_classes=8)
    m.update_state(keras.utils.to_categorical(y[:48], 8), model.predict(x[:48], verbose=0))
    assert float(m.result()) == pytest.approx(best, abs=1e-5)


def test_pruning_restricted_to_facies():
    rng = np.random.default_rng(0)
    n = 800
    labels = rng.integers(0, 8, n)
    probs = np.full((n, 8), 0.01)
    probs[np.arange(n), labels] = 0.93
    # flip 60 labels of every class: confident learning finds them
    flipped = rng.choice(n, 240, replace=False)
    given = labels.copy()
    given[flipped] = (labels[flipped] + 1) % 8
    issues = cleaning.find_label_issues(given, probs / probs.sum(1, keepdims=True))
    assert len(issues) > 0
    assert set(issues["given"]) <= {"ice", "snow", "debris", "firn", "refrozen-like"}
    kept_classes = {CLASS_INDEX[c] for c in ("shadow", "water", "cloud")}
    flipped_nonfacies = [i for i in flipped if given[i] in kept_classes]
    assert flipped_nonfacies and not set(flipped_nonfacies) & set(issues["index"])
    assert list(issues["rank"]) == list(range(1, len(issues) + 1))
    assert issues["self_confidence"].is_monotonic_increasing
    score = cleaning.score_against_planted(issues, set(issues["file"][:5]) | {"x"})
    assert score["precision"] == pytest.approx(5 / len(issues))
    assert score["recall"] == pytest.approx(5 / 6)


def test_macro_and_glacier_f1_against_sklearn():
    y_true = np.array([0, 0, 1, 1, 2, 2, 3, 3, 0, 1])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 3, 2, 0, 1])
    glaciers = np.array(list("aaaaabbbbb"))
    assert evaluation.macro_f1(y_true, y_pred) == pytest.approx(
        f1_score(y_true, y_pred, labels=[0, 1, 2, 3], average="macro"))
    gw = evaluation.glacier_wise_f1(y_true, y_pred, glaciers)
    for g in "ab":
        m = glaciers == g
        assert gw[g] == pytest.approx(f1_score(y_true[m], y_pred[m], labels=np.unique(
            y_true[m]), average="macro", zero_division=0))
    probs = np.eye(8)[y_pred]
    keep = np.array([True] * 8 + [False] * 2)
    s = evaluation.summarise(y_true, probs, glaciers, keep)
    assert s["macro_f1_unpruned"] == pytest.approx(evaluation.macro_f1(y_true, y_pred))
    assert s["macro_f1_cleaned"] == pytest.approx(evaluation.macro_f1(y_true[keep],
                                                                      y_pred[keep]))
    assert s["glacier_macro_f1_std"] == pytest.approx(np.std(
        evaluation.glacier_wise_f1(y_true[keep], y_pred[keep], glaciers[keep]).to_numpy()))


def test_confusion_and_per_class_table():
    y_true = np.array([0, 0, 0, 1, 1, 7])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    cm = evaluation.normalised_confusion(y_true, y_pred)
    assert cm[0, 0] == pytest.approx(2 / 3) and cm[7, 0] == 1.0
    assert np.all(np.isnan(cm[2]))
    table = evaluation.per_class_table(y_true, y_pred)
    assert list(table.index) == list(CLASSES)
    assert table.loc["snow", "precision"] == pytest.approx(2 / 3)
    assert table.loc["ice", "recall"] == pytest.approx(2 / 3)
    assert table.loc["ice", "accuracy"] == pytest.approx(4 / 6)


def test_study_training_curves_render(reference_dir, tmp_path):
    from utils import plots

    logs = plots.read_logs(reference_dir / "logs", "afterconfidentlearning")
    assert [len(log) for log in logs] == [1000] * 6
    fig = plots.plot_training_curves(logs, "study")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 6
    out = plots.save_figure(fig, tmp_path / "curves")
    assert all(p.stat().st_size > 10_000 for p in out)
    study_log = reference_dir / "logs" / "0_cnn_afterconfidentlearning_log.csv"
    assert pd.read_csv(study_log).columns.tolist() == list(training.LOG_COLUMNS)
