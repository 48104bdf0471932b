"""The study's feature-set experiment: the same chain on 6, 8, 10 and 11 features.

Runs live in sub-folders named by the set number (the study's ``weights/1..4/`` and
``logs/1..4/`` layout): ``results/{s}/``, ``weights/{s}/``, ``logs/{s}/`` for set s
of :data:`utils.study.FEATURE_SETS` (1 optical, 2 + elevation and slope, 3 + shadow
mask and hillshade, 4 + proximity). ``make reproduce FEATURE_SETS=all`` runs them;
:func:`comparison_table` and :func:`study_log_table` summarise ours and the study's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from utils.errors import InputError
from utils.study import CLASSES, FEATURE_SETS, feature_indices

STAGES = ("beforeconfidentlearning", "afterconfidentlearning")


def set_label(s: int) -> str:
    """``'2: 8 features'`` for feature set 2."""
    return f"{s}: {len(feature_indices(FEATURE_SETS[s]))} features"


def comparison_table(results_root: str | os.PathLike, sets: list[int]) -> pd.DataFrame:
    """One row per feature set from ``results_root/{s}/`` (metrics.json, per_class_after.csv):
    macro F1 cleaned / unpruned, glacier-wise mean and SD after confident learning, and
    the per-class F1 (cleaned labels) as ``f1_{class}``."""
    rows = {}
    for s in sets:
        d = Path(results_root) / str(s)
        try:
            after = json.loads((d / "metrics.json").read_text())["after"]
            per_class = pd.read_csv(d / "per_class_after.csv", index_col=0)["f1"]
        except (OSError, KeyError, ValueError) as e:
            raise InputError(f"{d}: no finished run of feature set {s} "
                             f"(metrics.json, per_class_after.csv): {e}") from e
        rows[set_label(s)] = {
            **{k: after[k] for k in ("macro_f1_cleaned", "macro_f1_unpruned",
                                     "glacier_macro_f1_mean", "glacier_macro_f1_std")},
            **{f"f1_{c}": float(per_class.get(c, float("nan"))) for c in CLASSES}}
    table = pd.DataFrame(rows).T
    table.index.name = "feature set"
    return table


def plot_comparison(table: pd.DataFrame) -> plt.Figure:
    """Bars per feature set: headline macro F1s (left) and per-class F1 (right)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 2]})
    head = table[["macro_f1_cleaned", "macro_f1_unpruned", "glacier_macro_f1_mean"]]
    head.set_axis(["macro F1 cleaned", "macro F1 unpruned", "glacier-wise F1"], axis=1).plot.bar(
        ax=a, rot=0, yerr={"glacier-wise F1": table["glacier_macro_f1_std"]})
    per_class = table[[f"f1_{c}" for c in CLASSES]].set_axis(list(CLASSES), axis=1).T
    per_class.plot.bar(ax=b, rot=30)
    for ax, title in ((a, "after confident learning"), (b, "per-class F1 (cleaned)")):
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def study_log_table(logs_root: str | os.PathLike) -> pd.DataFrame:
    """Best validation mIoU per fold (rows) and (stage, feature set) (columns) from the
    study's published logs ``logs_root/{1..4}/{fold}_cnn_{stage}_log.csv``; sets or
    folds without a log are left out. Empty when none is found."""
    cols = {}
    for s in FEATURE_SETS:
        for stage in STAGES:
            best = {}
            for log in sorted((Path(logs_root) / str(s)).glob(f"*_cnn_{stage}_log.csv")):
                fold = int(log.name.split("_", 1)[0])
                best[fold] = float(pd.read_csv(log)["val_miou"].max())
            if best:
                cols[(stage[: -len("confidentlearning")], set_label(s))] = pd.Series(best)
    table = pd.DataFrame(cols)
    table.index.name = "fold"
    return table


def plot_study_logs(table: pd.DataFrame) -> plt.Figure:
    """Best validation mIoU per fold, one bar per feature set, a panel per stage."""
    stages = list(dict.fromkeys(table.columns.get_level_values(0)))
    fig, axes = plt.subplots(1, len(stages), figsize=(6 * len(stages), 3.8), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=True):
        table[stage].plot.bar(ax=ax, rot=0)
        ax.set_ylim(0, 1)
        ax.set_ylabel("best validation mIoU")
        ax.set_title(f"study logs, {stage} confident learning", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
