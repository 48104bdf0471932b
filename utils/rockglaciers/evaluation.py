"""Metrics, baselines and grouped cross-validation of the rock-glacier classifier.

Every method is scored the same way: out-of-fold predictions of grouped k-fold
cross-validation (no rock glacier, and no run of cordillera tiles, in two folds;
:func:`utils.rockglaciers.tiles.grouped_folds`), metrics per fold, mean ± sd over
folds. Methods: ``majority`` (always the training folds' majority class, p = its
share), ``histogram`` (logistic regression on colour and texture histograms) and
``cnn`` (:mod:`utils.rockglaciers.classifier`). The CNN's probability is
calibrated by temperature scaling fitted on the *other* folds' out-of-fold
predictions (cross-fitted, so its ECE is out of sample too).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from utils.calibration import ece, max_confidence
from utils.files import check_output
from utils.rockglaciers.classifier import (
    calibrate,
    calibrator_path,
    fit_probability_calibrator,
    load_classifier,
    predict,
    save_classifier,
    train_classifier,
    two_class,
)
from utils.rockglaciers.tiles import TileSet, grouped_folds, read_tiles, site_folds

METHODS = ("majority", "histogram", "cnn")
#: ECE bins: 10 equal bins (a few hundred tiles are too few for the paper's 100).
ECE_BINS = 10


def metrics(labels: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, balanced accuracy, F1 of the rock-glacier class, ROC-AUC, ECE (10 bins).

    labels (N,) 0/1, p (N,) probability of a rock glacier; ROC-AUC is NaN when one
    class is missing.
    """
    y = np.asarray(labels, np.int64)
    pred = (np.asarray(p) >= threshold).astype(np.int64)
    probs = two_class(p)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if len(set(y)) > 1
        else float(accuracy_score(y, pred)),
        "f1_rock_glacier": float(f1_score(y, pred, zero_division=0.0)),
        "roc_auc": float(roc_auc_score(y, p)) if len(set(y)) > 1 else float("nan"),
        "ece": float(ece(max_confidence(probs), probs.argmax(-1) == y, n_bins=ECE_BINS)),
    }


def confusion(labels: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """2 x 2 counts, rows true (no, yes), columns predicted."""
    return confusion_matrix(labels, np.asarray(p) >= threshold, labels=[0, 1])


def histogram_features(images: np.ndarray, bins: int = 16) -> np.ndarray:
    """Colour and texture histograms (N, 6 * bins) of (N, H, W, 3) uint8 tiles.

    Per tile: a normalised histogram of each of R, G, B (0..255), of grey-level
    gradient magnitude (0..64 per pixel) and of local contrast (absolute difference
    to the 4-neighbour mean, 0..32), and of the blue share B/(R+G+B).
    """
    x = images.astype(np.float32)
    grey = x.mean(-1)
    gy, gx = np.gradient(grey, axis=(1, 2))
    grad = np.hypot(gx, gy)
    pad = np.pad(grey, ((0, 0), (1, 1), (1, 1)), mode="edge")
    neigh = (pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]) / 4
    contrast = np.abs(grey - neigh)
    blue = x[..., 2] / np.maximum(x.sum(-1), 1)
    chans = [(x[..., 0], 256), (x[..., 1], 256), (x[..., 2], 256), (grad, 64),
             (contrast, 32), (blue, 1)]
    feats = []
    for values, top in chans:
        edges = np.linspace(0, top, bins + 1)
        idx = np.clip(np.searchsorted(edges, values.reshape(len(x), -1), side="right") - 1,
                      0, bins - 1)
        counts = np.stack([np.bincount(r, minlength=bins) for r in idx])
        feats.append(counts / idx.shape[1])
    return np.concatenate(feats, axis=1)


def _histogram_model(train_x: np.ndarray, train_y: np.ndarray):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced",
                                                               max_iter=2000))
    return model.fit(train_x, train_y)


def cross_validate(tiles: TileSet, k: int = 5, seed: int = 0, progress: bool = True,
                   **train_kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grouped k-fold CV of the three methods on ``tiles``.

    ``train_kw`` go to :func:`train_classifier` (epochs, batch, learning_rate, steps).
    Returns ``(scores, oof)``: scores has one row per (method, fold) with the
    :func:`metrics` columns (method ``cnn_calibrated`` too) and ``epoch_s`` (mean
    seconds per CNN epoch); oof has one row per tile (path, label, group, fold and
    each method's out-of-fold probability).
    """
    folds = grouped_folds(tiles.labels, tiles.groups, k, seed)
    hist = histogram_features(tiles.images)
    oof = pd.DataFrame({"path": [p.name for p in tiles.paths], "label": tiles.labels,
                        "group": tiles.groups, "fold": -1})
    for m in METHODS:
        oof[m] = np.nan
    epoch_s = []
    for f, (tr, te) in enumerate(tqdm(folds, desc="folds", disable=not progress)):
        oof.loc[te, "fold"] = f
        oof.loc[te, "majority"] = tiles.labels[tr].mean()
        oof.loc[te, "histogram"] = _histogram_model(hist[tr], tiles.labels[tr]).predict_proba(
            hist[te])[:, 1]
        model, secs = train_classifier(tiles.images[tr], tiles.labels[tr], seed=seed + f,
                                       progress=False, **train_kw)  # the folds bar is enough
        oof.loc[te, "cnn"] = predict(model, tiles.images[te])
        epoch_s.append(float(np.mean(secs)))
    oof["cnn_calibrated"] = np.nan
    for f in range(k):
        rest, here = oof.fold != f, oof.fold == f
        cal = fit_probability_calibrator(oof.cnn[rest].to_numpy(), oof.label[rest].to_numpy())
        oof.loc[here, "cnn_calibrated"] = calibrate(cal, oof.cnn[here].to_numpy())
    rows = []
    for m in (*METHODS, "cnn_calibrated"):
        for f in range(k):
            here = oof.fold == f
            rows.append({"method": m, "fold": f,
                         **metrics(oof.label[here].to_numpy(), oof[m][here].to_numpy()),
                         "epoch_s": epoch_s[f] if m.startswith("cnn") else np.nan})
    return pd.DataFrame(rows), oof


def cross_site(tiles: TileSet, seed: int = 0, progress: bool = True,
               **train_kw) -> pd.DataFrame:
    """Train on all but one site, test on it (:func:`site_folds`): histogram and CNN.

    A stricter check than :func:`cross_validate`: the groups ``<site>_<k>`` of one
    site can be one area on several dates, so grouped CV still shows the network
    the test terrain; here it never saw it. One row per (method, test site) with
    the :func:`metrics` columns and the test tiles' rock-glacier recall and specificity.
    """
    hist = histogram_features(tiles.images)
    rows = []
    for f, (site, tr, te) in enumerate(tqdm(site_folds(tiles.labels, tiles.groups),
                                            desc="sites", disable=not progress)):
        y = tiles.labels[te]
        model, _ = train_classifier(tiles.images[tr], tiles.labels[tr], seed=seed + f,
                                    progress=False, **train_kw)
        probs = {"histogram": _histogram_model(hist[tr], tiles.labels[tr]).predict_proba(
            hist[te])[:, 1], "cnn": predict(model, tiles.images[te])}
        for m, p in probs.items():
            rows.append({"method": m, "test_site": site, **metrics(y, p),
                         "recall": float((p[y == 1] >= 0.5).mean()),
                         "specificity": float((p[y == 0] < 0.5).mean())})
    return pd.DataFrame(rows)


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over folds per method: columns ``<metric>_mean``, ``<metric>_sd``."""
    cols = ["accuracy", "balanced_accuracy", "f1_rock_glacier", "roc_auc", "ece"]
    g = scores.groupby("method", sort=False)[cols]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_sd"))
    return out[[f"{c}_{s}" for c in cols for s in ("mean", "sd")]]


def evaluate_folder(model_path: str | os.PathLike, folder: str | os.PathLike,
                    skip_invalid: bool = False) -> dict:
    """Score a saved classifier on every tile of ``folder`` (either layout).

    Returns :func:`metrics` of the calibrated probability (``ece``; ``ece_raw`` before
    calibration; temperature scaling leaves the 0.5 decision unchanged), tile counts,
    the confusion matrix (rows true no/yes, columns predicted) and skipped tiles.
    """
    model, cal = load_classifier(model_path)
    tiles = read_tiles(folder, skip_invalid)
    raw = predict(model, tiles.images)
    p = calibrate(cal, raw)
    return {**metrics(tiles.labels, p), "ece_raw": metrics(tiles.labels, raw)["ece"],
            "n_tiles": len(tiles), "n_rock_glacier": int(tiles.labels.sum()),
            "confusion": confusion(tiles.labels, p).tolist(), "skipped": tiles.skipped}


def train_and_save(folder: str | os.PathLike, model_path: str | os.PathLike, k: int = 5,
                   seed: int = 0, overwrite: bool = False, progress: bool = True,
                   **train_kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-validate on ``folder``, then train on all its tiles and save model + calibrator.

    The calibrator is fitted on the CNN's out-of-fold probabilities (the final model
    has seen every tile, so its own outputs on them would be over-confident).
    Outputs are checked before any work. Returns ``(scores, oof)`` of
    :func:`cross_validate`.
    """
    check_output(model_path, overwrite, "model")
    check_output(calibrator_path(model_path), overwrite, "calibrator")
    tiles = read_tiles(folder)
    scores, oof = cross_validate(tiles, k, seed, progress, **train_kw)
    model, _ = train_classifier(tiles.images, tiles.labels, seed=seed, progress=progress,
                                **train_kw)
    cal = fit_probability_calibrator(oof.cnn.to_numpy(), oof.label.to_numpy())
    save_classifier(model, cal, model_path, overwrite)
    return scores, oof
