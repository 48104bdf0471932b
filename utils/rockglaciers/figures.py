"""Figures of the rock-glacier notebook: example tiles, scores, confusion, ROC, reliability."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from utils.calibration import max_confidence, reliability
from utils.rockglaciers.classifier import two_class
from utils.rockglaciers.evaluation import ECE_BINS, confusion, metrics
from utils.rockglaciers.tiles import LABELS, TileSet, site_of

NAMES = {"majority": "majority class", "histogram": "histogram + logistic regression",
         "cnn": "CNN", "cnn_calibrated": "CNN, calibrated"}


def plot_examples(tiles: TileSet, n: int = 6, seed: int = 0) -> plt.Figure:
    """``n`` random tiles per site (rows), with their group names."""
    rng = np.random.default_rng(seed)
    sites = site_of(tiles.groups)
    names = sorted(set(sites))
    fig, axes = plt.subplots(len(names), n, figsize=(1.6 * n, 1.75 * len(names)), squeeze=False)
    for row, site in zip(axes, names, strict=True):
        idx = np.flatnonzero(sites == site)
        for ax, i in zip(row, rng.choice(idx, min(n, len(idx)), replace=False), strict=False):
            ax.imshow(tiles.images[i])
            ax.set_title(tiles.groups[i], fontsize=7)
        for ax in row:
            ax.set_axis_off()
        row[0].text(-0.08, 0.5, f"{site}\n({LABELS[tiles.labels[idx[0]]]})", rotation=90,
                    transform=row[0].transAxes, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def plot_scores(scores: pd.DataFrame, metric: str = "balanced_accuracy") -> plt.Figure:
    """Mean ± sd over folds of ``metric`` per method, fold values as dots."""
    methods = list(dict.fromkeys(scores.method))
    fig, ax = plt.subplots(figsize=(6, 2.8))
    for i, m in enumerate(methods):
        v = scores.loc[scores.method == m, metric].to_numpy()
        ax.barh(i, v.mean(), xerr=v.std(ddof=1), color="0.8", capsize=3)
        ax.plot(v, np.full(len(v), i), "o", ms=3, color="tab:blue")
        ax.text(0.01, i, f"{v.mean():.3f} ± {v.std(ddof=1):.3f}", va="center", fontsize=8)
    ax.set_yticks(range(len(methods)), [NAMES.get(m, m) for m in methods])
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{metric.replace('_', ' ')} (grouped CV, per fold)")
    fig.tight_layout()
    return fig


def plot_confusion_roc(oof: pd.DataFrame, methods: tuple[str, ...] = ("histogram", "cnn")
                       ) -> plt.Figure:
    """Pooled out-of-fold confusion matrices of ``methods`` and their ROC curves."""
    fig, axes = plt.subplots(1, len(methods) + 1, figsize=(3.3 * (len(methods) + 1), 3.2))
    y = oof.label.to_numpy()
    for ax, m in zip(axes, methods, strict=False):
        cm = confusion(y, oof[m].to_numpy())
        ax.imshow(cm, cmap="Blues")
        for (r, c), v in np.ndenumerate(cm):
            ax.text(c, r, str(v), ha="center", va="center",
                    color="white" if v > cm.max() / 2 else "black")
        ax.set_xticks([0, 1], LABELS)
        ax.set_yticks([0, 1], LABELS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(NAMES.get(m, m), fontsize=9)
    ax = axes[-1]
    for m in methods:
        fpr, tpr, _ = roc_curve(y, oof[m])
        ax.plot(fpr, tpr, label=f"{NAMES.get(m, m)} (AUC {metrics(y, oof[m])['roc_auc']:.2f})")
    ax.plot([0, 1], [0, 1], ":", color="0.6")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, pooled out-of-fold", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_reliability(oof: pd.DataFrame, methods: tuple[str, ...] = ("cnn", "cnn_calibrated")
                     ) -> plt.Figure:
    """Reliability diagram (10 bins) of the max-probability confidence, pooled out-of-fold."""
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    y = oof.label.to_numpy()
    ax.plot([0.5, 1], [0.5, 1], ":", color="0.6")
    for m in methods:
        probs = two_class(oof[m].to_numpy())
        rel = reliability(max_confidence(probs), probs.argmax(-1) == y, ECE_BINS)
        ok = rel.nonempty
        ece10 = metrics(y, oof[m].to_numpy())["ece"]
        ax.plot(rel.conf[ok], rel.acc[ok], "o-", ms=3, label=f"{NAMES[m]} (ECE {ece10:.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0.5, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
