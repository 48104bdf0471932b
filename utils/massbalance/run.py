"""The workflows behind ``massbalance.py``: build series, regress, the real ceiling.

Each checks all its outputs before any work and writes them atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from utils.files import check_output
from utils.massbalance.common import (
    MassBalanceError,
    concat_dropped,
    numeric,
    read_table,
    write_csv,
)
from utils.massbalance.regression import SCHEME_NAMES, Evaluation, evaluate, plot_scatter
from utils.massbalance.series import MIN_OBSERVED, collect_series, end_of_season
from utils.massbalance.wgms import glacier_years, join_balances, rgi_links

#: Predictor sets regressed by default on facies series (each one model).
FACIES_PREDICTORS: tuple[tuple[str, ...], ...] = (("aar",), ("sla_m",), ("frac_snow", "frac_firn"))
#: The real ceiling: WGMS's own observed AAR and ELA.
CEILING_PREDICTORS: tuple[tuple[str, ...], ...] = (("aar",), ("ela_m",))

def build_series(stats_csvs: Sequence[str | os.PathLike], catalogue: str | os.PathLike | None,
                 out: str | os.PathLike, eos_out: str | os.PathLike,
                 min_observed: float = MIN_OBSERVED, start_month: int = 10,
                 overwrite: bool = False) -> dict:
    """Statistics CSVs -> series CSV, end-of-season CSV and ``<out stem>_dropped.csv``."""
    dropped_out = Path(out).with_name(Path(out).stem + "_dropped.csv")
    for p, what in ((out, "series CSV"), (eos_out, "end-of-season CSV"),
                    (dropped_out, "dropped report")):
        check_output(p, overwrite, what, inputs=[*stats_csvs, catalogue])
    if not 0 <= min_observed <= 1:
        raise MassBalanceError(f"min_observed {min_observed} is not a fraction in 0..1")
    series, dropped = collect_series(stats_csvs, catalogue)
    eos = end_of_season(series, min_observed, start_month)
    write_csv(series, out, overwrite, "series CSV")
    write_csv(eos, eos_out, overwrite, "end-of-season CSV")
    write_csv(dropped, dropped_out, overwrite, "dropped report")
    return {"scenes": int(series["stats_csv"].nunique()),
            "glaciers": int(series["RGIId"].nunique()),
            "years": len(eos), "well_observed_years": int(eos["well_observed"].sum()),
            "dropped": dropped, "outputs": [str(out), str(eos_out), str(dropped_out)]}


def read_end_of_season(path: str | os.PathLike) -> pd.DataFrame:
    """An end-of-season CSV written by :func:`build_series`."""
    df = read_table(path, ("RGIId", "year", "well_observed", "aar"))
    out = pd.DataFrame({"RGIId": df["RGIId"], "year": numeric(df, "year", path).astype(int),
                        "well_observed": df["well_observed"].str.lower() == "true"})
    for c in df.columns:
        if c not in out and c != "_row" and (c in ("aar", "sla_m") or c.startswith("frac_")):
            out[c] = numeric(df, c, path)
    return out


def save_evaluations(evs: Sequence[Evaluation], out_dir: str | os.PathLike, glacier: str,
                     label: str, overwrite: bool = False) -> pd.DataFrame:
    """Write ``scores.csv``, ``per_glacier.csv``, ``predictions.csv`` and one scatter figure
    (PNG + PDF) per predictor set and out-of-sample scheme into ``out_dir``; returns the
    scores (one row per predictor set and scheme)."""
    d = Path(out_dir)
    stems = {f"{label}_{'+'.join(ev.predictors)}_{s}": (ev, s)
             for ev in evs for s in ("pooled_logo", "specific_loyo")}
    names = ["scores.csv", "per_glacier.csv", "predictions.csv"]
    names += [f"{s}{e}" for s in stems for e in (".png", ".pdf")]
    for n in names:
        check_output(d / n, overwrite, n)
    sc = pd.concat([ev.scores.reset_index().assign(predictors="+".join(ev.predictors))
                    for ev in evs], ignore_index=True)
    sc = sc[["predictors", *[c for c in sc.columns if c != "predictors"]]]
    per = pd.concat([ev.per_glacier.assign(predictors="+".join(ev.predictors)) for ev in evs],
                    ignore_index=True)
    pred = pd.concat([ev.predictions.assign(predictors="+".join(ev.predictors)) for ev in evs],
                     ignore_index=True)
    write_csv(sc, d / "scores.csv", overwrite, "scores")
    write_csv(per, d / "per_glacier.csv", overwrite, "per-glacier scores")
    write_csv(pred, d / "predictions.csv", overwrite, "predictions")
    from utils.plots import save_figure

    for stem, (ev, s) in stems.items():
        fig = plot_scatter(ev, s, f"{' + '.join(ev.predictors)} ({label}): {SCHEME_NAMES[s]}",
                           glacier)
        save_figure(fig, d / stem)
        plt.close(fig)
    return sc


def regress(eos_csv: str | os.PathLike, wgms_dir: str | os.PathLike, out_dir: str | os.PathLike,
            predictor_sets: Sequence[Sequence[str]] = FACIES_PREDICTORS, min_years: int = 5,
            overwrite: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """End-of-season facies predictors vs WGMS balances; returns (scores, dropped) and
    writes the results and ``dropped.csv`` into ``out_dir``. Predictor sets absent from
    the series (e.g. ``sla_m`` without a DEM) are skipped."""
    if not Path(out_dir).is_dir():
        raise MassBalanceError(f"output folder {out_dir} does not exist")
    check_output(Path(out_dir) / "dropped.csv", overwrite, "dropped report")
    eos = read_end_of_season(eos_csv)
    years, d_wgms = glacier_years(wgms_dir)
    table, d_join = join_balances(eos, years, rgi_links(wgms_dir), source=str(eos_csv))
    sets = [tuple(p) for p in predictor_sets if all(c in table.columns for c in p)
            and table[list(p)].notna().all(axis=1).any()]
    if not sets:
        raise MassBalanceError(f"{eos_csv}: none of the predictors "
                               f"{', '.join('+'.join(p) for p in predictor_sets)} has values")
    evs = [evaluate(table, p, glacier="RGIId", min_years=min_years) for p in sets]
    sc = save_evaluations(evs, out_dir, glacier="RGIId", label="facies", overwrite=overwrite)
    dropped = concat_dropped(d_join, d_wgms)
    write_csv(dropped, Path(out_dir) / "dropped.csv", overwrite, "dropped report")
    return sc, dropped


def real_ceiling(wgms_dir: str | os.PathLike, min_years: int = 5) -> tuple[list[Evaluation],
                                                                          pd.DataFrame]:
    """The same regressions with WGMS's own observed AAR and ELA over all glacier-years
    that have them and a balance (glaciers keyed by WGMS id): (evaluations, dropped)."""
    years, dropped = glacier_years(wgms_dir)
    return [evaluate(years, p, glacier="WGMS_ID", min_years=min_years)
            for p in CEILING_PREDICTORS], dropped
