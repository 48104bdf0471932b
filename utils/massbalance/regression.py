"""Annual balance regressed on facies predictors, scored out of sample.

Two schemes, as in Maslov et al. (global and glacier-specific calibration):

- **pooled, leave-one-glacier-out**: one linear model over all glaciers; each
  glacier's years are predicted by the model fitted to the other glaciers;
- **glacier-specific, leave-one-year-out**: one linear model per glacier (with at
  least ``min_years`` years); each year is predicted by the model fitted to that
  glacier's other years.

Scores of the out-of-sample predictions against the observed balances: Pearson r
and its two-sided p-value, RMSE and bias (mean predicted - observed) in m w.e.,
and n. The p-value treats the predictions as independent, which leave-one-out
predictions only approximately are. In-sample fits are scored too, for
comparison only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from utils.massbalance.common import MassBalanceError

TARGET = "balance_mwe"
SCHEMES = ("pooled_logo", "specific_loyo", "pooled_insample", "specific_insample")
SCHEME_NAMES = {"pooled_logo": "pooled, leave one glacier out",
                "specific_loyo": "glacier-specific, leave one year out",
                "pooled_insample": "pooled, in sample",
                "specific_insample": "glacier-specific, in sample"}


def scores(predicted: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    """n, r, p-value, RMSE (m w.e.) and bias (m w.e., predicted - observed) of two (n,) arrays."""
    p, o = np.asarray(predicted, float), np.asarray(observed, float)
    n = int(p.size)
    r, pv = (stats.pearsonr(p, o) if n >= 3 and np.ptp(p) > 0 and np.ptp(o) > 0
             else (np.nan, np.nan))
    return {"n": n, "r": float(r), "p_value": float(pv),
            "rmse_mwe": float(np.sqrt(np.mean((p - o) ** 2))) if n else np.nan,
            "bias_mwe": float(np.mean(p - o)) if n else np.nan}


def _fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Ordinary least squares with intercept: (n, k) train -> predictions for (m, k) test."""
    a = np.column_stack([np.ones(len(x_train)), x_train])
    coef, *_ = np.linalg.lstsq(a, y_train, rcond=None)
    return np.column_stack([np.ones(len(x_test)), x_test]) @ coef


@dataclass
class Evaluation:
    """Scores of one predictor set: ``scores`` (one row per scheme), ``per_glacier``
    (glacier-specific leave-one-year-out scores per glacier) and ``predictions``
    (columns glacier, year, observed, predicted, scheme)."""

    predictors: tuple[str, ...]
    scores: pd.DataFrame
    per_glacier: pd.DataFrame
    predictions: pd.DataFrame


def evaluate(table: pd.DataFrame, predictors: Sequence[str], glacier: str = "glacier",
             min_years: int = 5) -> Evaluation:
    """Score ``balance_mwe ~ predictors`` pooled (leave-one-glacier-out) and per glacier
    (leave-one-year-out), plus both in-sample fits.

    Args:
        table: one row per glacier-year with columns ``glacier``, ``year``,
            ``balance_mwe`` (m w.e.) and the predictors; rows with a missing value
            are not used.
        predictors: predictor columns (e.g. ``["aar"]``, ``["ela_m"]``).
        min_years: fewest years a glacier needs for its own model (glacier-specific
            schemes only; the pooled schemes use every glacier).
    """
    preds = tuple(predictors)
    missing = [c for c in (glacier, "year", TARGET, *preds) if c not in table.columns]
    if missing:
        raise MassBalanceError(f"regression table lacks column(s) {', '.join(missing)}")
    t = table.dropna(subset=[TARGET, *preds]).reset_index(drop=True)
    k = len(preds)
    if t[glacier].nunique() < 3:
        raise MassBalanceError(f"{t[glacier].nunique()} glacier(s) with {', '.join(preds)} and "
                               "a balance: leave-one-glacier-out needs at least 3")
    x, y, g = t[list(preds)].to_numpy(float), t[TARGET].to_numpy(float), t[glacier].to_numpy()
    out = []
    logo = np.empty(len(t))
    for gl in pd.unique(g):
        test = g == gl
        logo[test] = _fit_predict(x[~test], y[~test], x[test])
    out.append(t.assign(predicted=logo, scheme="pooled_logo"))
    out.append(t.assign(predicted=_fit_predict(x, y, x), scheme="pooled_insample"))
    counts = t[glacier].value_counts()
    enough = np.isin(g, counts.index[counts >= max(min_years, k + 2)])
    loyo, ins = np.full(len(t), np.nan), np.full(len(t), np.nan)
    for gl in pd.unique(g[enough]):
        idx = np.flatnonzero(g == gl)
        ins[idx] = _fit_predict(x[idx], y[idx], x[idx])
        for i in idx:
            train = idx[idx != i]
            loyo[i] = _fit_predict(x[train], y[train], x[[i]])[0]
    out.append(t[enough].assign(predicted=loyo[enough], scheme="specific_loyo"))
    out.append(t[enough].assign(predicted=ins[enough], scheme="specific_insample"))
    pred = pd.concat(out, ignore_index=True).rename(columns={TARGET: "observed"})
    pred = pred[[glacier, "year", "observed", "predicted", "scheme"]]
    rows = []
    for s in SCHEMES:
        p = pred[pred["scheme"] == s]
        row = {"scheme": s, **scores(p["predicted"], p["observed"]),
               "n_glaciers": int(p[glacier].nunique())}
        if s == "specific_loyo":
            per = _per_glacier(p, glacier)
            row["median_glacier_r"] = float(per["r"].median()) if len(per) else np.nan
        rows.append(row)
    sc = pd.DataFrame(rows).set_index("scheme")
    return Evaluation(preds, sc, _per_glacier(pred[pred["scheme"] == "specific_loyo"], glacier),
                      pred)


def _per_glacier(pred: pd.DataFrame, glacier: str) -> pd.DataFrame:
    rows = [{glacier: gl, **scores(p["predicted"], p["observed"])}
            for gl, p in pred.groupby(glacier, sort=True)]
    return pd.DataFrame(rows, columns=[glacier, "n", "r", "p_value", "rmse_mwe", "bias_mwe"])


def plot_scatter(ev: Evaluation, scheme: str = "pooled_logo", title: str = "",
                 glacier: str = "glacier", ax: plt.Axes | None = None) -> plt.Figure:
    """Predicted vs observed balance (m w.e.) of one scheme, one colour per glacier,
    with the 1:1 line and the scores; a legend when there are at most 12 glaciers."""
    p = ev.predictions[ev.predictions["scheme"] == scheme]
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    else:
        fig = ax.figure
    glaciers = pd.unique(p[glacier])
    cmap = plt.get_cmap("tab20" if len(glaciers) > 10 else "tab10")
    for i, gl in enumerate(glaciers):
        q = p[p[glacier] == gl]
        ax.scatter(q["observed"], q["predicted"], s=12, alpha=0.7, color=cmap(i % cmap.N),
                   label=str(gl), linewidths=0)
    lim = [min(p["observed"].min(), p["predicted"].min()),
           max(p["observed"].max(), p["predicted"].max())] if len(p) else [-1, 1]
    ax.plot(lim, lim, "k--", lw=0.8)
    s = ev.scores.loc[scheme]
    pv = f"p = {s['p_value']:.1g}" if s["p_value"] > 0 else "p < 1e-300"
    ax.text(0.03, 0.97, f"r = {s['r']:.2f} ({pv})\nRMSE = {s['rmse_mwe']:.2f} "
            f"m w.e.\nbias = {s['bias_mwe']:+.2f} m w.e.\nn = {s['n']:.0f}, "
            f"{s['n_glaciers']:.0f} glaciers", transform=ax.transAxes, va="top", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
    ax.set_xlabel("observed annual balance (m w.e.)")
    ax.set_ylabel("predicted annual balance (m w.e.)")
    ax.set_title(title or f"{' + '.join(ev.predictors)}: {SCHEME_NAMES[scheme]}", fontsize=10)
    ax.set_aspect("equal")
    if len(glaciers) <= 12:
        ax.legend(fontsize=6, loc="lower right", frameon=False)
    return fig
