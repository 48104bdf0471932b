"""Figures of the outline system: scenes with masks, errors, training curves, outlines."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from utils.outlines.dataset import BANDS, UNLABELLED
from utils.outlines.pipeline import normalise

#: Error map colours: unlabelled, true negative, true positive, false positive, false negative.
ERROR_COLOURS = ["black", "#f2efe6", "#4a90c2", "#d7301f", "#f4a300"]
ERROR_NAMES = ["unlabelled", "not glacier (right)", "glacier (right)", "false glacier",
               "missed glacier"]


def rgb(image: np.ndarray, bands: list[str] | tuple[str, ...] = BANDS) -> np.ndarray:
    """Display colours (H, W, 3) 0..1 of red, green, blue, each per-scene normalised."""
    b = list(bands)
    x = normalise(image[..., [b.index("red"), b.index("green"), b.index("blue")]])
    return np.clip(x, 0, 1)


def error_map(pred: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """int (H, W): 0 unlabelled, 1 TN, 2 TP, 3 FP, 4 FN (ERROR_NAMES)."""
    truth = mask == 1
    out = np.where(truth, np.where(pred, 2, 4), np.where(pred, 3, 1))
    return np.where(mask == UNLABELLED, 0, out)


def plot_scenes(rows: list[dict], title: str = "") -> plt.Figure:
    """Image / truth / prediction / errors per scene; rows of dicts with id, image (H, W, 7),
    mask (H, W) uint8, pred (H, W) bool and optional text."""
    fig, axes = plt.subplots(len(rows), 4, figsize=(10, 2.6 * len(rows)), squeeze=False)
    cmap = ListedColormap(ERROR_COLOURS)
    for ax, r in zip(axes, rows, strict=True):
        ax[0].imshow(rgb(r["image"]))
        ax[1].imshow(np.where(r["mask"] == UNLABELLED, np.nan, r["mask"]), cmap="Blues",
                     vmin=0, vmax=1.3)
        ax[2].imshow(r["pred"], cmap="Blues", vmin=0, vmax=1.3)
        ax[3].imshow(error_map(r["pred"], r["mask"]), cmap=cmap, vmin=-0.5, vmax=4.5,
                     interpolation="nearest")
        ax[0].set_ylabel(r["id"], fontsize=8)
        if r.get("text"):
            ax[3].set_title(r["text"], fontsize=8)
        for a in ax:
            a.set_xticks([])
            a.set_yticks([])
    for a, t in zip(axes[0], ("image (RGB)", "expert mask", "prediction", "errors"),
                    strict=True):
        a.set_title(f"{t}\n{a.get_title()}".strip(), fontsize=9)
    fig.legend([Patch(color=c) for c in ERROR_COLOURS], ERROR_NAMES, loc="lower center",
               ncol=5, fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    return fig


def plot_training(log: list[dict[str, float]], title: str = "") -> plt.Figure:
    """Training loss and validation IoU per epoch."""
    ep = [r["epoch"] for r in log]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(ep, [r["loss"] for r in log], marker=".")
    a.set(xlabel="epoch", ylabel="focal + Dice loss", title="training loss")
    b.plot(ep, [r["val_iou"] for r in log], marker=".", color="C1")
    b.set(xlabel="epoch", ylabel="IoU", title="validation IoU (grid crops)", ylim=(0, 1))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_outlines(image: np.ndarray, gdf, transform, title: str = "") -> plt.Figure:
    """The scene (RGB) with outline polygons drawn on it (map coordinates, metres)."""
    h, w = image.shape[:2]
    left, top = transform.c, transform.f
    extent = (left, left + w * transform.a, top + h * transform.e, top)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(rgb(image), extent=extent)
    gdf.boundary.plot(ax=ax, color="#00e5ff", linewidth=0.8)
    ax.set(title=title or f"{len(gdf)} outlines", xlabel="easting (m)", ylabel="northing (m)")
    ax.ticklabel_format(style="plain", useOffset=False)
    return fig
