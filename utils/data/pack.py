"""The HDF5 pack: a whole patch dataset in one file, read about 100x faster than the folder.

Pack layout (version :data:`PACK_VERSION`): ``x`` float32 (N, 33, 33, 11) raw values,
uncompressed, chunks of PACK_CHUNK patches; ``y`` uint8 (N,) class index; ``fold``
uint8 (N,); ``glacier``, ``date``, ``id``, ``file`` UTF-8 strings (N,);
``fold_offsets`` int64 (N_FOLDS + 1,): fold f is rows ``fold_offsets[f]:fold_offsets[f+1]``.
Rows are sorted by (fold, file), so one fold is one contiguous slice. Attributes:
format, version, features, classes, patch_size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from utils.data.files import READ_BLOCK, progress_bar, read_patch_blocks
from utils.data.names import (
    META_COLUMNS,
    PatchError,
    check_folds,
    concat_meta,
    folder_entries,
    meta_frame,
)
from utils.data.skipped import skipped_frame
from utils.files import atomic_output, check_output
from utils.study import CLASSES, FEATURES, N_CLASSES, N_FEATURES, N_FOLDS, PATCH_SIZE

#: Pack identification and layout version (checked when reading).
PACK_FORMAT: str = "glacier-facies-patch-pack"
PACK_VERSION: int = 1
#: Patches per HDF5 chunk of the pack's ``x`` (uncompressed; about 3 MB per chunk, which
#: reads as fast as a contiguous layout).
PACK_CHUNK: int = 64

_REMAKE = "re-create it with `python -m utils.data pack DATASET_DIR OUT.h5`"


def source_kind(source: str | os.PathLike) -> str:
    """``"folder"`` or ``"pack"`` (HDF5 file); PatchError if ``source`` is neither."""
    path = Path(source)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise PatchError(path, "no such folder or pack file")
    if path.is_file() and h5py.is_hdf5(path):
        return "pack"
    raise PatchError(path, "neither a folder of patch .tif files nor an HDF5 pack (.h5)")


@contextmanager
def pack_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn HDF5 read errors (a damaged pack) into PatchError naming the pack."""
    try:
        yield
    except OSError as err:
        raise PatchError(path, f"pack unreadable (damaged?): {err}") from None


class PackReader:
    """An open, checked pack (read-only); ``d`` maps dataset names to h5py datasets."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as err:
            raise PatchError(self.path, f"unreadable as an HDF5 pack: {err}") from None
        try:
            self._check()
        except Exception:
            self.h5.close()
            raise

    def _check(self) -> None:
        a = self.h5.attrs
        if a.get("format") != PACK_FORMAT:
            raise PatchError(
                self.path,
                f"not a patch pack (format attribute is "
                f"{a.get('format')!r}, expected {PACK_FORMAT!r})",
            )
        version = a.get("version")
        if version != PACK_VERSION:
            raise PatchError(
                self.path,
                f"pack format version {version}, this code reads version {PACK_VERSION}; "
                f"{_REMAKE}",
            )
        for key, expected in (("features", FEATURES), ("classes", CLASSES)):
            got = [str(v) for v in a.get(key, [])]
            if got != list(expected):
                raise PatchError(self.path, f"pack {key} {got} differ from {list(expected)}")
        keys = ("x", "y", "fold_offsets", *META_COLUMNS)
        missing = [k for k in keys if k not in self.h5]
        if missing:
            raise PatchError(self.path, f"pack lacks datasets {missing}; {_REMAKE}")
        self.d = {k: self.h5[k] for k in keys}
        self.offsets = np.asarray(self.d["fold_offsets"][:], dtype=np.int64)
        n = self.d["x"].shape[0]
        if (
            self.d["x"].shape[1:] != (PATCH_SIZE, PATCH_SIZE, N_FEATURES)
            or self.d["x"].dtype != np.float32
            or self.offsets.shape != (N_FOLDS + 1,)
            or self.offsets[0] != 0
            or self.offsets[-1] != n
            or np.any(np.diff(self.offsets) < 0)
            or any(self.d[k].shape != (n,) for k in ("y", *META_COLUMNS))
        ):
            raise PatchError(self.path, f"pack datasets have inconsistent shapes; {_REMAKE}")

    def slices(self, folds: list[int]) -> list[tuple[int, int]]:
        """Merged (start, stop) row ranges of the given folds."""
        out: list[tuple[int, int]] = []
        for f in folds:
            a, b = int(self.offsets[f]), int(self.offsets[f + 1])
            if a == b:
                continue
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return out

    def meta(self, a: int, b: int) -> tuple[pd.DataFrame, np.ndarray]:
        """Metadata DataFrame and int64 labels (b - a,) of rows a:b."""
        d = self.d
        strs = [d[k].asstr()[a:b] for k in ("glacier", "date", "id", "file")]
        meta = meta_frame(d["fold"][a:b], *strs)
        y = np.asarray(d["y"][a:b], dtype=np.int64)
        if len(y) and y.max() >= N_CLASSES:
            raise PatchError(self.path, f"pack labels {a}:{b} hold a class index >= {N_CLASSES}")
        return meta, y

    def close(self) -> None:
        """Close the HDF5 file."""
        self.h5.close()

    def __enter__(self) -> PackReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_pack_blocks(
    path: str | os.PathLike,
    folds: list[int],
    block: int = READ_BLOCK,
    progress: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, pd.DataFrame]]:
    """Stream the rows of the given folds of a pack in blocks: ``(x, y, meta)`` as
    :func:`utils.data.files.read_patch_blocks` yields them."""
    with PackReader(path) as pack, pack_errors(path):
        total = sum(b - a for a, b in pack.slices(folds))
        bar = progress_bar(total, progress, "reading pack")
        for a0, b0 in pack.slices(folds):
            for a in range(a0, b0, block):
                b = min(a + block, b0)
                meta, y = pack.meta(a, b)
                x = np.asarray(pack.d["x"][a:b], dtype=np.float32)
                bar.update(b - a)
                yield x, y, meta
        bar.close()


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack_patches` wrote: patches per fold (length N_FOLDS) and skipped files."""

    path: Path
    fold_counts: tuple[int, ...]
    skipped: pd.DataFrame

    @property
    def n_patches(self) -> int:
        """Patches in the pack."""
        return sum(self.fold_counts)


def pack_patches(
    source: str | os.PathLike,
    out: str | os.PathLike,
    overwrite: bool = False,
    skip_invalid: bool = False,
    progress: bool = True,
) -> PackResult:
    """Write all raw patches of ``source`` (folder or pack) into one HDF5 pack ``out``.

    The layout is the module's. ``out`` is checked before any reading and written
    atomically (utils.files.atomic_output); OutputExistsError (a FileExistsError) if
    it exists and not ``overwrite``. Invalid patches raise PatchError, or with
    ``skip_invalid`` are left out and listed in ``PackResult.skipped``.
    """
    check_output(out, overwrite, what="pack", inputs=[source])
    skipped: list[tuple[str, str]] = []
    folds = check_folds(None)
    if source_kind(source) == "pack":
        with PackReader(source) as pack:
            n_max = int(pack.offsets[-1])
        blocks = iter_pack_blocks(source, folds, progress=progress)
    else:
        entries = folder_entries(source, folds, skip_invalid, skipped)
        n_max = len(entries)
        blocks = read_patch_blocks(entries, skip_invalid, skipped, progress=progress)
    with atomic_output(out, overwrite, what="pack") as tmp:
        counts = _write_pack(tmp, blocks, n_max)
    return PackResult(Path(out), counts, skipped_frame(sorted(skipped)))


def _write_pack(
    path: Path, blocks: Iterator[tuple[np.ndarray, np.ndarray, pd.DataFrame]], n_max: int
) -> tuple[int, ...]:
    """Write ``blocks`` (at most ``n_max`` patches, in (fold, file) order) as a pack at
    ``path``; returns the patches per fold."""
    with h5py.File(path, "w") as h5:
        shape = (PATCH_SIZE, PATCH_SIZE, N_FEATURES)
        dx = h5.create_dataset(
            "x",
            shape=(n_max, *shape),
            maxshape=(None, *shape),
            dtype=np.float32,
            chunks=(PACK_CHUNK, *shape),
        )
        ys, metas, pos = [], [], 0
        for x, y, meta in blocks:
            dx[pos : pos + len(y)] = x
            ys.append(y)
            metas.append(meta)
            pos += len(y)
        dx.resize(pos, axis=0)
        meta = concat_meta(metas)
        y = np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)
        counts = np.bincount(meta["fold"].to_numpy(), minlength=N_FOLDS)
        h5.create_dataset("y", data=y.astype(np.uint8))
        h5.create_dataset("fold", data=meta["fold"].to_numpy().astype(np.uint8))
        sdt = h5py.string_dtype("utf-8")
        for key in ("glacier", "date", "id", "file"):
            h5.create_dataset(key, data=np.asarray(meta[key].tolist(), dtype=object), dtype=sdt)
        h5.create_dataset("fold_offsets", data=np.concatenate([[0], np.cumsum(counts)]))
        h5.attrs["format"] = PACK_FORMAT
        h5.attrs["version"] = PACK_VERSION
        h5.attrs["features"] = list(FEATURES)
        h5.attrs["classes"] = list(CLASSES)
        h5.attrs["patch_size"] = PATCH_SIZE
    return tuple(int(c) for c in counts)
