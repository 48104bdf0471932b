"""The system's error class and the report of what was left out.

Every reader returns its table together with a *dropped* table (one row per input
row left out: ``file``, ``row``, ``what``, ``reason``), so that nothing is dropped
silently; problems that make a whole file unusable raise :class:`MassBalanceError`.
Rows are numbered as in a spreadsheet: the header is row 1 (plus any comment lines
above it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from utils.errors import InputError

DROPPED_COLUMNS = ("file", "row", "what", "reason")


class MassBalanceError(InputError):
    """A WGMS table, statistics CSV or catalogue that cannot be used as it is."""


def dropped_table(rows: list[dict] | None = None) -> pd.DataFrame:
    """An empty (or filled) dropped table with the standard columns."""
    return pd.DataFrame(rows or [], columns=list(DROPPED_COLUMNS))


def concat_dropped(*tables: pd.DataFrame) -> pd.DataFrame:
    """Concatenate dropped tables (empty ones too) into one."""
    parts = [t for t in tables if t is not None and len(t)]
    if not parts:
        return dropped_table()
    return pd.concat(parts, ignore_index=True)[list(DROPPED_COLUMNS)]


def read_table(path: str | os.PathLike, columns: tuple[str, ...], encoding: str = "utf-8",
               header_starts: str | None = None) -> pd.DataFrame:
    """Read a CSV and check that it has ``columns``; adds ``_row`` (spreadsheet row number).

    ``header_starts``: skip lines until one starting with this text (the header), as
    for ``00_rgi60_links.csv``, which has two lines of description above its header.
    """
    p = Path(path)
    if not p.is_file():
        raise MassBalanceError(f"{p}: no such file")
    skip = 0
    if header_starts is not None:
        with open(p, encoding=encoding, errors="replace") as f:
            lines = [i for i, line in enumerate(f) if line.startswith(header_starts)]
        if not lines:
            raise MassBalanceError(f"{p}: no header line starting with {header_starts!r}")
        skip = lines[0]
    try:
        df = pd.read_csv(p, encoding=encoding, skiprows=skip, skipinitialspace=True,
                         dtype=str, keep_default_na=False)
    except UnicodeDecodeError as e:
        raise MassBalanceError(f"{p}: not {encoding} text ({e.reason} at byte {e.start})") from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise MassBalanceError(f"{p}: not a readable CSV table ({e})") from e
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        more = " ..." if df.shape[1] > 12 else ""
        raise MassBalanceError(f"{p}: missing column(s) {', '.join(missing)} "
                               f"(has {', '.join(df.columns[:12])}{more})")
    for c in columns:
        df[c] = df[c].str.strip()
    df["_row"] = range(skip + 2, skip + 2 + len(df))
    return df


def numeric(df: pd.DataFrame, column: str, path: str | os.PathLike) -> pd.Series:
    """``df[column]`` as float (empty -> NaN); a non-numeric value raises, naming file
    (``df["_file"]`` where present, else ``path``) and row."""
    raw = df[column]
    val = pd.to_numeric(raw.where(raw != ""), errors="coerce")
    bad = val.isna() & (raw != "")
    if bad.any():
        i = bad.to_numpy().nonzero()[0][0]
        where = df["_file"].iloc[i] if "_file" in df else path
        raise MassBalanceError(f"{where}: row {df['_row'].iloc[i]}: {column} is not a number "
                               f"({raw.iloc[i]!r})")
    return val.astype(float)


def check_unique(df: pd.DataFrame, keys: list[str], path: str | os.PathLike,
                 what: str) -> None:
    """Raise when a key combination (e.g. glacier-year) occurs twice, naming both rows."""
    dup = df.duplicated(keys, keep=False)
    if dup.any():
        d = df[dup].sort_values([*keys, "_row"])
        first = d.iloc[0]
        rows = d[(d[keys] == first[keys]).all(axis=1)]
        where = [f"{f}" for f in rows.get("_file", pd.Series([str(path)] * len(rows)))]
        at = ", ".join(f"{w} row {r}" for w, r in zip(where, rows["_row"], strict=True))
        key = ", ".join(f"{k}={first[k]}" for k in keys)
        raise MassBalanceError(f"{path}: duplicated {what} ({key}) in {at}")


def write_csv(df: pd.DataFrame, path: str | os.PathLike, overwrite: bool = False,
              what: str = "table") -> Path:
    """Write ``df`` as CSV atomically (temporary file renamed on success); no clobber
    unless ``overwrite``."""
    from utils.files import atomic_output

    with atomic_output(path, overwrite=overwrite, what=what) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    return Path(path).absolute()
