"""Figures of the paper: confusion matrix, pruned labels, training curves."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from utils.study import CLASS_COLORS, CLASSES, N_FOLDS, log_file, model_name  # noqa: E402


def class_rgb(name: str) -> tuple[float, float, float]:
    """Matplotlib colour (0..1) of a class."""
    return tuple(v / 255 for v in CLASS_COLORS[name])


def save_figure(fig: plt.Figure, path_stem: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as PNG and PDF (``path_stem`` without suffix); returns the paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in out:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return out


def plot_confusion(cm: np.ndarray, title: str = "") -> plt.Figure:
    """Row-normalised (8, 8) confusion matrix with class names in italics."""
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(np.nan_to_num(cm), cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if np.isfinite(cm[i, j]) and cm[i, j] >= 0.005:
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > 0.5 else "black")
    ticks = range(len(CLASSES))
    ax.set_xticks(ticks, CLASSES, rotation=45, ha="right", fontstyle="italic")
    ax.set_yticks(ticks, CLASSES, fontstyle="italic")
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_pruned_per_class(counts: pd.Series, totals: pd.Series | None = None) -> plt.Figure:
    """Bar chart of pruned labels per class (with % of the class when totals given)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    names = list(counts.index)
    bars = ax.bar(names, counts.values, color=[class_rgb(c) for c in names],
                  edgecolor="black", linewidth=0.6)
    if totals is not None:
        for bar, name in zip(bars, names, strict=True):
            if totals.get(name, 0):
                ax.annotate(f"{100 * counts[name] / totals[name]:.1f} %",
                            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("pruned labels")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontstyle="italic")
    ax.set_title("Labels pruned by confident learning")
    fig.tight_layout()
    return fig


def plot_training_curves(logs: Sequence[pd.DataFrame], title: str = "") -> plt.Figure:
    """One panel per fold: train/val error rate and mIoU per epoch, best val mIoU marked.

    ``logs`` are DataFrames with the study's log columns, one per fold (6 panels).
    """
    n = len(logs)
    cols = 3 if n > 2 else n
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False,
                             sharey=True)
    for i, (ax, log) in enumerate(zip(axes.flat, logs, strict=False)):
        e = log["epoch"]
        ax.plot(e, 1 - log["categorical_accuracy"], color="tab:blue", lw=0.8,
                label="train error rate")
        ax.plot(e, 1 - log["val_categorical_accuracy"], color="tab:blue", lw=0.8, ls="--",
                label="val error rate")
        ax.plot(e, log["miou"], color="tab:orange", lw=0.8, label="train mIoU")
        ax.plot(e, log["val_miou"], color="tab:orange", lw=0.8, ls="--", label="val mIoU")
        best = int(log["val_miou"].idxmax())
        ax.plot(e[best], log["val_miou"][best], "k*", ms=9, label="best val mIoU")
        ax.set_title(f"fold {i}: best val mIoU {log['val_miou'][best]:.3f} (epoch {e[best]})",
                     fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    return fig


def read_logs(logs_dir: str | os.PathLike, stage: str, k: int = N_FOLDS) -> list[pd.DataFrame]:
    """The k training logs of one stage from ``logs_dir`` (study layout)."""
    return [pd.read_csv(Path(logs_dir) / log_file(model_name(t, stage))) for t in range(k)]


def plot_reliability(rel, ece100: float, ax: plt.Axes | None = None, title: str = "",
                     label: str = "", color: str = "tab:blue", hist: bool = True,
                     ece_y: float = 0.04) -> plt.Axes:
    """Reliability diagram of a ``utils.calibration.Reliability`` (e.g. 25 bins).

    Accuracy vs mean confidence per bin, the diagonal, ECE_100 in the lower right
    corner (at height ``ece_y``, axes fraction) and, with ``hist``, a histogram of
    bin counts in a small axis above (draw it once when overlaying curves).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.6))
    m = rel.nonempty
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":")
    ax.plot(rel.conf[m], rel.acc[m], "o-", ms=3, lw=1, color=color, label=label or None)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_aspect("equal")
    ax.text(0.97, ece_y, f"ECE$_{{100}}$ = {ece100:.3f}", transform=ax.transAxes, ha="right",
            va="bottom", fontsize=8, color=color)
    if not hist:
        return ax
    top = ax.inset_axes((0, 1.02, 1, 0.22), sharex=ax)
    centres = (rel.edges[:-1] + rel.edges[1:]) / 2
    top.bar(centres, rel.count, width=np.diff(rel.edges), color=color, alpha=0.5)
    top.set_yticks([])
    top.tick_params(labelbottom=False)
    top.set_title(title, fontsize=9)
    return ax
