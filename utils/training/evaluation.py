"""Evaluation as in the paper: confusion matrix, per-class, per-fold, macro and glacier-wise F1.

The study's code computes only loss, accuracy and mIoU per test fold; the paper's
macro F1 and glacier-wise F1 are defined here (and in docs/STUDY.md):

- **Macro F1** is the unweighted mean of the per-class F1 over the classes present
  in the *labels* being scored. A class that never occurs in the labels does not
  enter the mean, even if the model predicts it (its false positives still lower
  the precision of the classes they were taken from). The alternative, the
  classes in labels *or* predictions (scikit-learn's default), is reported beside
  it as ``*_union`` because it scores such a class with F1 = 0.
- **Glacier-wise F1** is the macro F1 of each glacier's labels (the classes that
  glacier's labels hold), then mean ± *population* standard deviation (ddof = 0)
  over glaciers; the sample standard deviation (ddof = 1) is reported beside it.
- **Per-fold test scores** are those of the study's ``model.evaluate`` on each
  test fold: focal loss (unweighted mean over patches), accuracy and mIoU (mean
  over classes of TP / (TP + FP + FN), classes with an empty union left out, as
  ``keras.metrics.OneHotMeanIoU``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from utils.errors import InputError
from utils.study import CLASSES, N_CLASSES


def normalised_confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(8, 8) confusion matrix, rows = true class normalised to sum 1 (NaN rows if absent)."""
    cm = confusion_matrix(y_true, y_pred, labels=range(N_CLASSES)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cm / cm.sum(axis=1, keepdims=True)


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Per class: one-vs-rest accuracy, precision, recall, F1 and support (true count)."""
    labels = list(range(N_CLASSES))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                 zero_division=0)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    acc = [float(np.mean((y_true == c) == (y_pred == c))) for c in labels]
    return pd.DataFrame({"accuracy": acc, "precision": p, "recall": r, "f1": f,
                         "support": s}, index=pd.Index(CLASSES, name="class"))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, union: bool = False) -> float:
    """Macro F1 over the classes present in ``y_true`` (ours), or with ``union`` over the
    classes in ``y_true`` or ``y_pred`` (scikit-learn's default; a predicted class absent
    from the labels counts with F1 = 0). NaN for no labels."""
    if len(y_true) == 0:
        return float("nan")
    classes = np.union1d(y_true, y_pred) if union else np.unique(y_true)
    return float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0))


def glacier_wise_f1(y_true: np.ndarray, y_pred: np.ndarray, glaciers: np.ndarray,
                    union: bool = False) -> pd.Series:
    """Macro F1 per glacier (classes present in that glacier's labels), indexed by glacier."""
    glaciers = np.asarray(glaciers)
    return pd.Series({g: macro_f1(y_true[glaciers == g], y_pred[glaciers == g], union)
                      for g in np.unique(glaciers)}, name="macro_f1")


def summarise(y_true: np.ndarray, probs: np.ndarray, glaciers: np.ndarray,
              keep: np.ndarray | None = None) -> dict:
    """Headline numbers for out-of-fold ``probs`` (N, 8): on the cleaned subset
    ``keep`` (N,) bool and on all labels, with the alternative definitions beside them."""
    y_pred = np.asarray(probs).argmax(axis=1)
    keep = np.ones(len(y_true), bool) if keep is None else np.asarray(keep, bool)
    yk, pk, gk = y_true[keep], y_pred[keep], np.asarray(glaciers)[keep]
    gw, gw_union = glacier_wise_f1(yk, pk, gk), glacier_wise_f1(yk, pk, gk, union=True)
    return {
        "macro_f1_cleaned": macro_f1(yk, pk),
        "macro_f1_unpruned": macro_f1(y_true, y_pred),
        "glacier_macro_f1_mean": float(gw.mean()),
        "glacier_macro_f1_std": float(gw.std(ddof=0)),
        "glacier_macro_f1_std_sample": float(gw.std(ddof=1)) if len(gw) > 1 else float("nan"),
        "macro_f1_cleaned_union": macro_f1(yk, pk, union=True),
        "macro_f1_unpruned_union": macro_f1(y_true, y_pred, union=True),
        "glacier_macro_f1_mean_union": float(gw_union.mean()),
        "n_cleaned": int(keep.sum()),
        "n_all": len(y_true),
    }


def evaluate_scores(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The study's ``model.evaluate`` numbers for labels (N,) and probabilities (N, 8):
    focal loss (mean over patches, no sample weights), accuracy, mIoU (keras' definition)."""
    from utils.losses import FocalLoss

    y_true = np.asarray(y_true, int)
    probs = np.asarray(probs, np.float32)
    onehot = np.eye(N_CLASSES, dtype=np.float32)[y_true]
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, labels=range(N_CLASSES)).astype(float)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1) - tp
    return {"loss": float(FocalLoss()(onehot, probs)),
            "accuracy": float(np.mean(y_pred == y_true)),
            "miou": float(np.mean(tp[denom > 0] / denom[denom > 0])),
            "n": len(y_true)}


def fold_table(y_true: np.ndarray, folds: np.ndarray, runs: dict[str, tuple]) -> pd.DataFrame:
    """Per test fold and run: loss, accuracy, mIoU, n.

    ``runs`` maps a run name (e.g. ``before``) to ``(probs (N, 8), keep (N,) bool or
    None)``; each fold's model is scored on its test fold's kept patches. Rows
    (run, fold) plus (run, ``mean``).
    """
    rows = []
    for name, (probs, keep) in runs.items():
        keep = np.ones(len(y_true), bool) if keep is None else np.asarray(keep, bool)
        part = [{"run": name, "fold": str(t), **evaluate_scores(y_true[sel], probs[sel])}
                for t in np.unique(folds) if (sel := keep & (folds == t)).any()]
        mean = pd.DataFrame(part)[["loss", "accuracy", "miou"]].mean()
        rows += part + [{"run": name, "fold": "mean", **mean, "n": sum(p["n"] for p in part)}]
    return pd.DataFrame(rows).set_index(["run", "fold"])


def read_groups(path: str | os.PathLike, glaciers: np.ndarray, dates: np.ndarray
                ) -> pd.DataFrame:
    """Region and sensor of every patch from a CSV (columns ``glacier``, ``region`` and
    optionally ``date``, ``sensor``; one row per glacier or per glacier and date).

    ``glaciers``, ``dates`` (N,) of the patches; returns (N,) columns ``region`` and,
    when the CSV has them, ``sensor``. Raises InputError naming the file when a column
    is missing, a glacier has two regions, or a patch's glacier (date) is not listed.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the groups CSV ({e})").about("groups") from e
    missing = {"glacier", "region"} - set(table.columns)
    if missing:
        raise InputError(f"{path}: the groups CSV lacks the column(s) {sorted(missing)} "
                         "(needs glacier, region; optionally date, sensor)").about("groups")
    regions = table.drop_duplicates(["glacier", "region"])
    if regions["glacier"].duplicated().any():
        twice = sorted(regions.loc[regions["glacier"].duplicated(), "glacier"])[:5]
        raise InputError(f"{path}: glaciers with two regions: {twice}").about("groups")
    out = pd.DataFrame({"region": pd.Series(glaciers).map(regions.set_index("glacier")["region"])})
    if {"date", "sensor"} <= set(table.columns):
        key = table["glacier"] + "_" + table["date"]
        keys = pd.Series(glaciers).astype(str) + "_" + pd.Series(dates).astype(str)
        out["sensor"] = keys.map(pd.Series(table["sensor"].to_numpy(), index=key).groupby(
            level=0).first())
    for col in out.columns:
        if out[col].isna().any():
            what = (keys if col == "sensor" else pd.Series(glaciers))[out[col].isna()]
            raise InputError(f"{path}: no {col} for {sorted(set(what))[:5]} "
                             f"({out[col].isna().sum()} patches)").about("groups")
    return out


def group_f1(y_true: np.ndarray, y_pred: np.ndarray, groups: pd.DataFrame) -> pd.DataFrame:
    """Macro F1 and patch count per group value of each column of ``groups`` (N rows)."""
    rows = [{"by": col, "group": g, "macro_f1": macro_f1(y_true[sel], y_pred[sel]),
             "n": int(sel.sum())}
            for col in groups.columns for g in sorted(groups[col].unique())
            if (sel := (groups[col] == g).to_numpy()).any()]
    return pd.DataFrame(rows).set_index(["by", "group"])
