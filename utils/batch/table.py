"""One table for all scenes: the per-glacier statistics keyed by (glacier id, date).

Columns: the outline id (``RGIId`` or the outlines' id field, as in each scene's
``glaciers.csv``), ``date``, ``sensor``, ``scene``, then the statistics columns of
:mod:`utils.mapping.glacier_stats`. Rows are sorted by glacier id and date. Written as
``OUT/glaciers.parquet`` and ``OUT/glaciers.csv`` (the input of the mass-balance time
series), each atomically; only the small per-scene CSVs are read, never the maps.
"""

from __future__ import annotations

from pathlib import Path

from utils.files import atomic_output

KEYS = ("date", "sensor", "scene")


def assemble(records: list[dict]):
    """The table (pandas DataFrame) of the ``done`` records' statistics CSVs."""
    import pandas as pd

    parts = []
    for rec in records:
        if rec.get("status") != "done":
            continue
        df = pd.read_csv(rec["outputs"]["stats_csv"])
        id_col = df.columns[0]
        df = df.rename(columns={id_col: "glacier_id"}) if id_col != "RGIId" else df
        for i, k in enumerate(KEYS):
            df.insert(1 + i, k, rec.get(k) if k != "scene" else rec["scene"])
        parts.append(df)
    if not parts:
        return pd.DataFrame(columns=["RGIId", *KEYS])
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values([table.columns[0], "date", "scene"], kind="stable",
                             ignore_index=True)


def write_table(records: list[dict], out: str | Path) -> dict[str, str]:
    """Write ``glaciers.parquet`` and ``glaciers.csv`` into ``out``; returns their paths."""
    table = assemble(records)
    paths = {"parquet": Path(out) / "glaciers.parquet", "csv": Path(out) / "glaciers.csv"}
    with atomic_output(paths["parquet"], overwrite=True, what="glacier table") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_output(paths["csv"], overwrite=True, what="glacier table") as tmp:
        table.to_csv(tmp, index=False, float_format="%.10g")
    return {k: str(v) for k, v in paths.items()}
