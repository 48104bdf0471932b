"""Tiny Hugging Face ``datasets`` Parquet exports of the rock-glacier configurations."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def png(arr: np.ndarray) -> bytes:
    """PNG bytes of an (H, W[, C]) uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def image_cell(data: bytes | None, path: str | None = None) -> dict:
    """A Hugging Face Image feature cell: struct {bytes, path}."""
    return {"bytes": data, "path": path}


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    """Write ``columns`` (name -> values) to the Parquet file ``path``; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def classification_export(path: Path, tiles: dict[str, np.ndarray]) -> Path:
    """An ``image-classification`` export of ``tiles`` (row path such as
    ``train/glaciar/7.png`` -> (128, 128, 3) uint8), labelled by the path's class folder."""
    rows = list(tiles)
    return write_parquet(path, {
        "image": [image_cell(png(tiles[p]), Path(p).name) for p in rows],
        "labels": pa.array([int(Path(p).parent.name == "glaciar") for p in rows], pa.int64()),
        "path": rows})
