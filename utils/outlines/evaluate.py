"""Scores of glacier masks: IoU, precision, recall, F1, boundary F1; and the threshold baseline.

Every score is computed from pixel counts over the labelled pixels, so per-scene
rows can be pooled (summed) over a split, a region or a sensor. The boundary F1
uses the one-pixel-wide edges of the predicted and true masks: an edge pixel
matches when an edge of the other mask lies within ``BOUNDARY_TOL`` px (2 px =
60 m).

The *debris zone* of a scene is its debris-covered glacier pixels plus the
non-glacier pixels within ``DEBRIS_ZONE_PX`` (10 px = 300 m) of them: scores
there measure both missed debris-covered ice and rock taken for glacier.

Baseline: NDSI = (green - swir1) / (green + swir1) >= 0.4 on the reflectance
(Dozier 1989; the usual glacier-mapping band ratio); without a SWIR band, the
mean of the per-scene normalised blue, green and red >= 0.5 (a brightness
threshold, the best these bands allow).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm.auto import tqdm

from utils.outlines.dataset import BANDS, UNLABELLED, load, open_dataset
from utils.outlines.pipeline import normalise

BOUNDARY_TOL = 2
DEBRIS_ZONE_PX = 10
NDSI_THRESHOLD = 0.4
BRIGHTNESS_THRESHOLD = 0.5
COUNTS = ("tp", "fp", "fn", "bp_hit", "bp_all", "bt_hit", "bt_all")


def threshold_baseline(image: np.ndarray, bands: list[str] | tuple[str, ...] = BANDS
                       ) -> np.ndarray:
    """Glacier mask (H, W) bool of the band-ratio baseline on raw (H, W, C) ``image``."""
    b = list(bands)
    if "green" in b and "swir1" in b:
        g, s = image[..., b.index("green")], image[..., b.index("swir1")]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num((g - s) / (g + s)) >= NDSI_THRESHOLD
    vis = [b.index(n) for n in ("blue", "green", "red")]
    return normalise(image[..., vis]).mean(axis=-1) >= BRIGHTNESS_THRESHOLD


def _edges(m: np.ndarray) -> np.ndarray:
    return m & ~ndimage.binary_erosion(m, border_value=1)


def counts(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> dict[str, int]:
    """Pixel and boundary counts of bool (H, W) ``pred`` vs ``truth`` over ``valid``."""
    p, t = pred & valid, truth & valid
    pe, te = _edges(pred) & valid, _edges(truth) & valid
    near_t = ndimage.distance_transform_edt(~_edges(truth)) <= BOUNDARY_TOL
    near_p = ndimage.distance_transform_edt(~_edges(pred)) <= BOUNDARY_TOL
    return {"tp": int((p & t).sum()), "fp": int((p & ~t).sum()), "fn": int((~p & t).sum()),
            "bp_hit": int((pe & near_t).sum()), "bp_all": int(pe.sum()),
            "bt_hit": int((te & near_p).sum()), "bt_all": int(te.sum())}


def scores(c: dict | pd.Series) -> dict[str, float]:
    """IoU, precision, recall, F1 and boundary F1 from (summed) counts; NaN when undefined."""
    def div(a: float, b: float) -> float:
        return a / b if b else float("nan")

    precision, recall = div(c["tp"], c["tp"] + c["fp"]), div(c["tp"], c["tp"] + c["fn"])
    bp, br = div(c["bp_hit"], c["bp_all"]), div(c["bt_hit"], c["bt_all"])
    return {"iou": div(c["tp"], c["tp"] + c["fp"] + c["fn"]), "precision": precision,
            "recall": recall, "f1": div(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"]),
            "boundary_f1": div(2 * bp * br, bp + br) if bp + br > 0 else float("nan")}


def debris_zone(debris: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Debris-covered glacier pixels and the non-glacier pixels near them, bool (H, W)."""
    near = ndimage.binary_dilation(debris, iterations=DEBRIS_ZONE_PX)
    return debris | (near & ~truth)


def scene_counts(pred: np.ndarray, mask: np.ndarray, debris: np.ndarray | None, prefix: str
                 ) -> dict[str, int]:
    """Counts of ``pred`` vs uint8 ``mask`` over its labelled pixels (``prefix`` + name),
    and with ``debris`` the same in the debris zone (``prefix`` + ``debris_`` + name)."""
    valid, truth = mask != UNLABELLED, mask == 1
    row = {f"{prefix}{k}": v for k, v in counts(pred, truth, valid).items()}
    if debris is not None:
        zone = valid & debris_zone(debris, truth)
        row |= {f"{prefix}debris_{k}": v for k, v in counts(pred, truth, zone).items()}
    return row


def predictions(model_path: str | os.PathLike, root: str | os.PathLike,
                split: str | None = None, progress: bool = True) -> Iterator[dict]:
    """Per scene of ``split`` (None: all): dict of scene, image (H, W, C) of the model's
    bands, bands, mask, debris (or None) and the model's probability (H, W)."""
    from utils.outlines.model import load_model
    from utils.outlines.predict import predict_array

    model, config = load_model(model_path)
    bands = config["bands"]
    idx = [BANDS.index(b) for b in bands]
    scenes = [s for s in open_dataset(root) if split is None or s.split == split]
    for s in tqdm(scenes, desc="predict", unit="scene", disable=not progress):
        image, mask, debris = load(s)
        image = image[..., idx]
        yield {"scene": s, "image": image, "bands": bands, "mask": mask, "debris": debris,
               "prob": predict_array(model, normalise(image))}


def evaluate_dataset(model_path: str | os.PathLike, root: str | os.PathLike,
                     split: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Per-scene counts of the model and of the baseline (one row per scene, with id,
    sensor, region, split); pool them with :func:`pooled` or :func:`by_group`."""
    rows = []
    for p in predictions(model_path, root, split, progress):
        s = p["scene"]
        row = {"id": s.id, "sensor": s.sensor, "region": s.region, "split": s.split}
        row |= scene_counts(p["prob"] >= 0.5, p["mask"], p["debris"], "model_")
        row |= scene_counts(threshold_baseline(p["image"], p["bands"]), p["mask"],
                            p["debris"], "ndsi_")
        rows.append(row)
    return pd.DataFrame(rows)


def pooled(table: pd.DataFrame, method: str, subset: str = "") -> dict[str, float]:
    """Scores of ``method`` (model, ndsi) pooled over the rows; ``subset`` '' or 'debris_'."""
    cols = {k: f"{method}_{subset}{k}" for k in COUNTS}
    if any(c not in table for c in cols.values()):
        return dict.fromkeys(("iou", "precision", "recall", "f1", "boundary_f1"), float("nan"))
    return scores({k: table[c].sum() for k, c in cols.items()})


def by_group(table: pd.DataFrame, by: str | None = None, subset: str = "") -> pd.DataFrame:
    """Pooled scores per value of ``by`` (region, sensor, id; None = all rows), model and
    baseline side by side (columns ``method``, score names)."""
    groups = [("all", table)] if by is None else list(table.groupby(by))
    rows = [{by or "pooled": name, "method": m, **pooled(g, m, subset)}
            for name, g in groups for m in ("model", "ndsi")]
    return pd.DataFrame(rows)
