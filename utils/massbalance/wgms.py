"""Readers for WGMS records as published, and the table of glacier-years they make.

- Fluctuations of Glaciers (FoG) 2021-05, latin-1 CSV:
  ``WGMS-FoG-2021-05-E-MASS-BALANCE-OVERVIEW.csv`` (per glacier and year the observed
  equilibrium-line altitude ``ELA``, m a.s.l., and accumulation-area ratio ``AAR``, %)
  and ``WGMS-FoG-2021-05-AA-GLACIER-ID-LUT.csv`` (``WGMS_ID`` -> ``RGI_ID``);
- ``mbdata/mbdata_WGMS-<id>.csv``: annual glacier-wide balance ``ANNUAL_BALANCE`` in
  mm w.e. (converted to m w.e. on reading);
- ``00_rgi60_links.csv``: RGI 6.0 ids of the WGMS glaciers (``RGIId`` -> ``FoGId``).

Years are WGMS's: the year in which the balance year ends.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from utils.massbalance.common import (
    MassBalanceError,
    check_unique,
    concat_dropped,
    dropped_table,
    numeric,
    read_table,
)

OVERVIEW = "fog-2021-05/WGMS-FoG-2021-05-E-MASS-BALANCE-OVERVIEW.csv"
ID_LUT = "fog-2021-05/WGMS-FoG-2021-05-AA-GLACIER-ID-LUT.csv"
LINKS = "00_rgi60_links.csv"
BALANCES = "mbdata"


def read_overview(path: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The FoG mass-balance overview: observed AAR and ELA per glacier-year.

    Returns (table, dropped). Table columns: ``WGMS_ID``, ``year``, ``name``,
    ``country`` (political unit), ``aar`` (fraction 0..1), ``ela_m`` (m a.s.l.),
    ``_row``. Rows with neither AAR nor ELA carry nothing for the regressions and
    are left out without a report; an ELA given as a bound (``ELA_PREFIX`` ``>``:
    above the glacier, ``<``: below it) is not a value and is set to NaN (reported).
    A duplicated glacier-year or an AAR outside 0..100 raises.
    """
    df = read_table(path, ("POLITICAL_UNIT", "NAME", "WGMS_ID", "Year", "ELA_PREFIX", "ELA",
                           "AAR"), encoding="latin-1")
    out = pd.DataFrame({"WGMS_ID": numeric(df, "WGMS_ID", path), "year": numeric(df, "Year", path),
                        "name": df["NAME"], "country": df["POLITICAL_UNIT"],
                        "aar": numeric(df, "AAR", path) / 100.0,
                        "ela_m": numeric(df, "ELA", path), "_row": df["_row"]})
    for col in ("WGMS_ID", "year"):
        if out[col].isna().any():
            raise MassBalanceError(f"{path}: row {out['_row'][out[col].isna()].iloc[0]}: "
                                   f"no {col}")
    bad = ~out["aar"].between(0, 1) & out["aar"].notna()
    if bad.any():
        i = bad.to_numpy().nonzero()[0][0]
        raise MassBalanceError(f"{path}: row {out['_row'].iloc[i]}: AAR "
                               f"{out['aar'].iloc[i] * 100:g} % is outside 0..100")
    out = out.astype({"WGMS_ID": int, "year": int})
    check_unique(out, ["WGMS_ID", "year"], path, "glacier-year")
    bound = (df["ELA_PREFIX"] != "") & out["ela_m"].notna()
    dropped = dropped_table([
        {"file": str(path), "row": r, "what": f"WGMS {g} {y} ELA {p} {e:g} m",
         "reason": "ELA given only as a bound (ELA_PREFIX > or <), not used"}
        for r, g, y, p, e in zip(out["_row"][bound], out["WGMS_ID"][bound], out["year"][bound],
                                 df["ELA_PREFIX"][bound], out["ela_m"][bound], strict=True)])
    out.loc[bound, "ela_m"] = np.nan
    out = out[out["aar"].notna() | out["ela_m"].notna()].reset_index(drop=True)
    return out, dropped


def read_id_lut(path: str | os.PathLike) -> pd.DataFrame:
    """FoG glacier-id lookup: columns ``WGMS_ID``, ``RGIId`` (RGI 6.0 ids only)."""
    df = read_table(path, ("WGMS_ID", "RGI_ID"), encoding="latin-1")
    out = pd.DataFrame({"WGMS_ID": numeric(df, "WGMS_ID", path), "RGIId": df["RGI_ID"]})
    out = out[out["RGIId"].str.startswith("RGI60-") & out["WGMS_ID"].notna()]
    return out.astype({"WGMS_ID": int}).reset_index(drop=True)


def read_links(path: str | os.PathLike) -> pd.DataFrame:
    """``00_rgi60_links.csv``: columns ``RGIId``, ``WGMS_ID`` (one WGMS glacier may have
    several RGI outlines); an RGI id linked to two WGMS glaciers raises."""
    df = read_table(path, ("RGIId", "FoGId"), header_starts="RGIId")
    out = pd.DataFrame({"RGIId": df["RGIId"], "WGMS_ID": numeric(df, "FoGId", path),
                        "_row": df["_row"]})
    if out["WGMS_ID"].isna().any():
        raise MassBalanceError(f"{path}: row {out['_row'][out['WGMS_ID'].isna()].iloc[0]}: "
                               "no FoGId")
    out = out.astype({"WGMS_ID": int})
    check_unique(out, ["RGIId"], path, "RGI id")
    return out[["RGIId", "WGMS_ID"]]


def read_balances(paths: str | os.PathLike | list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Annual balances from ``mbdata_WGMS-<id>.csv`` files (a folder or a list of files).

    Returns (table, dropped). Table columns: ``WGMS_ID``, ``year``, ``balance_mwe``
    (m w.e.), ``_file``, ``_row``. Years without an annual balance are dropped and
    reported; a glacier-year in two rows (also across files) raises.
    """
    if isinstance(paths, (str, os.PathLike)):
        folder = Path(paths)
        if not folder.is_dir():
            raise MassBalanceError(f"{folder}: not a folder of mbdata_WGMS-<id>.csv files")
        files = sorted(folder.glob("*.csv"))
        if not files:
            raise MassBalanceError(f"{folder}: no CSV files")
    else:
        files = [Path(p) for p in paths]
    cols = ["YEAR", "WGMS_ID", "ANNUAL_BALANCE"]
    df = pd.concat([read_table(f, tuple(cols))[[*cols, "_row"]].assign(_file=str(f))
                    for f in files], ignore_index=True)
    t = pd.DataFrame({"WGMS_ID": numeric(df, "WGMS_ID", files[0]),
                      "year": numeric(df, "YEAR", files[0]),
                      "balance_mwe": numeric(df, "ANNUAL_BALANCE", files[0]) / 1000.0,
                      "_file": df["_file"], "_row": df["_row"]})
    for col in ("WGMS_ID", "year"):
        if t[col].isna().any():
            i = t[col].isna().to_numpy().nonzero()[0][0]
            raise MassBalanceError(f"{t['_file'].iloc[i]}: row {t['_row'].iloc[i]}: no {col}")
    t = t.astype({"WGMS_ID": int, "year": int})
    none = t["balance_mwe"].isna()
    dropped = dropped_table([
        {"file": f, "row": r, "what": f"WGMS {g} {y}", "reason": "no annual balance"}
        for f, r, g, y in zip(t["_file"][none], t["_row"][none], t["WGMS_ID"][none],
                              t["year"][none], strict=True)])
    out = t[~none].reset_index(drop=True)
    check_unique(out, ["WGMS_ID", "year"], files[0].parent, "glacier-year")
    return out, dropped


def glacier_years(wgms_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All glacier-years of a WGMS folder laid out as ``../shared/data/wgms``.

    Returns (table, dropped). One row per glacier-year with an annual balance:
    ``WGMS_ID``, ``RGIId`` (RGI 6.0 via ``00_rgi60_links.csv``, else the FoG lookup;
    the first one where a WGMS glacier has several outlines; empty when none),
    ``name``, ``country``, ``year``, ``balance_mwe``, ``aar`` (0..1), ``ela_m``
    (NaN where the overview has none). Reported in ``dropped``: overview AAR/ELA
    of years without a balance, ELA bounds, years without a balance, and glaciers
    with no RGI 6.0 id (kept here, but no facies series can be joined to them).
    """
    d = Path(wgms_dir)
    ov, drop_ov = read_overview(d / OVERVIEW)
    bal, drop_bal = read_balances(d / BALANCES)
    links = rgi_links(d)
    t = bal.merge(ov.drop(columns="_row"), on=["WGMS_ID", "year"], how="left")
    first = links.drop_duplicates("WGMS_ID").set_index("WGMS_ID")["RGIId"]
    t["RGIId"] = t["WGMS_ID"].map(first).fillna("")
    names = ov.drop_duplicates("WGMS_ID").set_index("WGMS_ID")
    for col in ("name", "country"):
        t[col] = t[col].fillna(t["WGMS_ID"].map(names[col])).fillna("")
    nobal = ov.merge(bal[["WGMS_ID", "year"]], on=["WGMS_ID", "year"], how="left",
                     indicator=True)
    nobal = nobal[nobal["_merge"] == "left_only"]
    drop_nobal = dropped_table([
        {"file": str(d / OVERVIEW), "row": r, "what": f"WGMS {g} {y} AAR/ELA",
         "reason": "no annual balance for this glacier-year in mbdata"}
        for r, g, y in zip(nobal["_row"], nobal["WGMS_ID"], nobal["year"], strict=True)])
    unlinked = t[t["RGIId"] == ""].drop_duplicates("WGMS_ID")
    drop_unlinked = dropped_table([
        {"file": f, "row": None, "what": f"WGMS {g}",
         "reason": "no RGI 6.0 id in 00_rgi60_links.csv or the FoG lookup: in the ceiling, "
                   "but cannot be joined to facies series"}
        for f, g in zip(unlinked["_file"], unlinked["WGMS_ID"], strict=True)])
    cols = ["WGMS_ID", "RGIId", "name", "country", "year", "balance_mwe", "aar", "ela_m"]
    t = t[cols].sort_values(["WGMS_ID", "year"]).reset_index(drop=True)
    return t, concat_dropped(drop_ov, drop_bal, drop_nobal, drop_unlinked)


def rgi_links(wgms_dir: str | os.PathLike) -> pd.DataFrame:
    """RGIId -> WGMS_ID: ``00_rgi60_links.csv``, completed by the FoG lookup for WGMS
    glaciers it lacks (columns ``RGIId``, ``WGMS_ID``)."""
    d = Path(wgms_dir)
    links = read_links(d / LINKS)
    lut = read_id_lut(d / ID_LUT)
    lut = lut[~lut["WGMS_ID"].isin(links["WGMS_ID"]) & ~lut["RGIId"].isin(links["RGIId"])]
    return pd.concat([links, lut], ignore_index=True).drop_duplicates("RGIId")


def join_balances(eos: pd.DataFrame, years: pd.DataFrame, links: pd.DataFrame,
                  source: str = "series") -> tuple[pd.DataFrame, pd.DataFrame]:
    """End-of-season facies rows joined to the WGMS balance of the same glacier-year.

    Args:
        eos: :func:`utils.massbalance.series.end_of_season` output (``RGIId``, ``year``,
            ``well_observed``, predictors ...).
        years: :func:`glacier_years` output (``WGMS_ID``, ``year``, ``balance_mwe``,
            ``aar``, ``ela_m``).
        links: :func:`rgi_links` output (``RGIId`` -> ``WGMS_ID``).
        source: how the dropped report names the series.

    Returns (table, dropped): the eos columns plus ``WGMS_ID``, ``balance_mwe``,
    ``wgms_aar``, ``wgms_ela_m``. Dropped (reported): glaciers not in the links,
    years without a WGMS balance, years flagged as too little observed.
    """
    e = eos.merge(links[["RGIId", "WGMS_ID"]].drop_duplicates("RGIId"), on="RGIId", how="left")
    y = years[["WGMS_ID", "year", "balance_mwe", "aar", "ela_m"]].rename(
        columns={"aar": "wgms_aar", "ela_m": "wgms_ela_m"})
    t = e.merge(y, on=["WGMS_ID", "year"], how="left")
    unlinked = t["WGMS_ID"].isna()
    nobal = ~unlinked & t["balance_mwe"].isna()
    poor = ~unlinked & ~nobal & ~t["well_observed"]
    reasons = [(unlinked, "glacier not in the WGMS links (RGI id -> WGMS id)"),
               (nobal, "no WGMS annual balance for this year"),
               (poor, "too little of the glacier observed in every scene of the year")]
    drops = dropped_table([
        {"file": source, "row": None, "what": f"{g} {yr}", "reason": why}
        for mask, why in reasons
        for g, yr in zip(t["RGIId"][mask], t["year"][mask], strict=True)])
    t = t[~(unlinked | nobal | poor)].astype({"WGMS_ID": int}).reset_index(drop=True)
    return t, drops
