"""Evaluation as in the paper: confusion matrix, per-class scores, macro and glacier-wise F1."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

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


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over the classes present in ``y_true`` (absent classes do not count)."""
    present = np.unique(y_true)
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def glacier_wise_f1(y_true: np.ndarray, y_pred: np.ndarray, glaciers: np.ndarray) -> pd.Series:
    """Macro F1 per glacier (classes present in that glacier's labels), indexed by glacier."""
    glaciers = np.asarray(glaciers)
    return pd.Series({g: macro_f1(y_true[glaciers == g], y_pred[glaciers == g])
                      for g in np.unique(glaciers)}, name="macro_f1")


def summarise(y_true: np.ndarray, probs: np.ndarray, glaciers: np.ndarray,
              keep: np.ndarray | None = None) -> dict:
    """Headline numbers for out-of-fold ``probs`` (N, 8): on the cleaned subset
    ``keep`` (N,) bool and on all labels."""
    y_pred = np.asarray(probs).argmax(axis=1)
    keep = np.ones(len(y_true), bool) if keep is None else np.asarray(keep, bool)
    gw = glacier_wise_f1(y_true[keep], y_pred[keep], glaciers[keep])
    return {
        "macro_f1_cleaned": macro_f1(y_true[keep], y_pred[keep]),
        "macro_f1_unpruned": macro_f1(y_true, y_pred),
        "glacier_macro_f1_mean": float(gw.mean()),
        "glacier_macro_f1_std": float(gw.std(ddof=0)),
        "n_cleaned": int(keep.sum()),
        "n_all": len(y_true),
    }
