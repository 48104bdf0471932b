"""The study's patch dataset: reading, packing, normalisation statistics and tf.data input.

Layout
------
A dataset is a folder of GeoTIFF patches, one per labelled point: 33 x 33 pixels,
11 bands in the feature order of :data:`utils.study.FEATURES`. File names are

    {fold}_{glacier}_{date}[_{id}]_{class}.tif

with fields separated by ``_``: ``fold`` is an integer 0..5, ``glacier`` and ``date``
are free text without ``_`` (the date is kept as written, not parsed), ``class`` is
one of :data:`utils.study.CLASSES` (exact spelling, lower case) and ``id`` is
everything between date and class. The id is optional: the minimal name has 4
fields (``0_aletsch_2019-08-22_ice.tif``, id ``""``); a longer id may itself contain
``_``. Only ``*.tif``/``*.tiff`` files are patches; other files and hidden files are
ignored. A folder with no patches but a ``patches/`` sub-folder (the layout of
``utils.demo.generate``) is read from that sub-folder.

A *pack* is the same patches in one HDF5 file (see :func:`pack_patches`), sorted by
fold then file name, so that one fold is one contiguous slice. Every reader here
accepts a folder or a pack; both give identical arrays and metadata, in the order
(fold, file name).

Command line
------------
``python -m utils.data.patches stats DATASET OUT.json [--folds F ...] [--skip-invalid]``
    per-feature minima and maxima of the raw patches (JSON, utils.normalisation).
``python -m utils.data.patches pack DATASET_DIR OUT.h5 [--overwrite] [--skip-invalid]``
    write the pack.

Usage errors (missing paths, existing output, bad folds) exit with code 2, invalid
patches with code 1; both print one line on stderr. With ``--skip-invalid`` invalid
patches are skipped and listed in ``OUT.skipped.csv`` (columns file, problem).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd

from utils.normalisation import Stats, load_stats
from utils.study import (
    ALL_GROUPS,
    CLASS_INDEX,
    CLASSES,
    FEATURES,
    N_CLASSES,
    N_FEATURES,
    PATCH_SIZE,
)
from utils.study import feature_indices as _feature_indices

if TYPE_CHECKING:  # TensorFlow is imported lazily: the CLI and readers do not need it.
    import tensorflow as tf

#: Patch side in pixels.
#: The study's cross-validation folds are 0 .. N_FOLDS - 1.
N_FOLDS: int = 6
#: File name suffixes of patch files (compared in lower case).
PATCH_SUFFIXES: tuple[str, ...] = (".tif", ".tiff")

#: Pack identification and layout version (checked when reading).
PACK_FORMAT: str = "glacier-facies-patch-pack"
PACK_VERSION: int = 1
#: Patches per HDF5 chunk of the pack's ``x`` (uncompressed; about 3 MB per chunk, which
#: reads as fast as a contiguous layout).
PACK_CHUNK: int = 64
#: GDAL settings for reading patch files: do not list the folder on every open (GDAL looks
#: for sidecar files otherwise, which makes each open cost O(files in the folder)).
GDAL_READ_ENV: dict[str, str] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}

#: Label smoothing of training targets (the study's 0.1).
LABEL_SMOOTHING: float = 0.1
#: Augmentation ranges (the study's): contrast factor and brightness delta.
CONTRAST_RANGE: tuple[float, float] = (0.95, 1.05)
BRIGHTNESS_DELTA: float = 0.01

_META_COLUMNS = ("fold", "glacier", "date", "id", "file")
_BLOCK = 2048  # patches per block when streaming


class PatchError(ValueError):
    """A patch file, patch name or pack is invalid; ``file`` and ``problem`` say which and why."""

    def __init__(self, file: str | os.PathLike, problem: str) -> None:
        self.file = str(file)
        self.problem = problem
        super().__init__(f"{self.file}: {problem}")


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class PatchName:
    """Fields of a patch file name; ``label`` is the class index (utils.study.CLASSES)."""

    fold: int
    glacier: str
    date: str
    id: str
    label: int
    file: str

    @property
    def class_name(self) -> str:
        return CLASSES[self.label]


def parse_patch_name(name: str | os.PathLike) -> PatchName:
    """Parse ``{fold}_{glacier}_{date}[_{id}]_{class}.tif`` (a path's directory is ignored).

    Raises :class:`PatchError` naming the file when the name does not follow the layout.
    """
    file = Path(name).name
    stem, suffix = os.path.splitext(file)
    layout = "expected {fold}_{glacier}_{date}[_{id}]_{class}.tif"
    if suffix.lower() not in PATCH_SUFFIXES:
        raise PatchError(file, f"not a .tif patch file; {layout}")
    parts = stem.split("_")
    if len(parts) < 4:
        raise PatchError(file, f"file name has {len(parts)} '_'-separated fields; {layout}")
    fold_s, glacier, date, cls = parts[0], parts[1], parts[2], parts[-1]
    if not (fold_s.isascii() and fold_s.isdigit()) or int(fold_s) >= N_FOLDS:
        raise PatchError(file, f"fold {fold_s!r} is not an integer 0..{N_FOLDS - 1}; {layout}")
    for what, value in (("glacier", glacier), ("date", date)):
        if not value:
            raise PatchError(file, f"empty {what} field; {layout}")
    if cls not in CLASS_INDEX:
        raise PatchError(file, f"unknown class {cls!r}; known: {', '.join(CLASSES)}")
    ident = "_".join(parts[3:-1])
    if len(parts) > 4 and not ident.strip("_"):
        raise PatchError(file, f"empty id field; {layout}")
    return PatchName(int(fold_s), glacier, date, ident, CLASS_INDEX[cls], file)


def check_folds(folds: int | Iterable[int] | None) -> list[int]:
    """Sorted unique fold numbers (all folds when None); ValueError for folds outside 0..5."""
    if folds is None:
        return list(range(N_FOLDS))
    if isinstance(folds, int | np.integer):
        folds = [int(folds)]
    out = sorted({int(f) for f in folds})
    bad = [f for f in out if not 0 <= f < N_FOLDS]
    if bad or not out:
        raise ValueError(f"folds must be integers 0..{N_FOLDS - 1}, got {list(folds)}")
    return out


def list_patch_files(
    folder: str | os.PathLike, skip_invalid: bool = False
) -> tuple[list[tuple[Path, PatchName]], list[tuple[str, str]]]:
    """Patch files of a folder and their parsed names, sorted by (fold, file name).

    Returns ``(entries, skipped)``; ``skipped`` holds (file, problem) for names that do
    not parse (only with ``skip_invalid``; otherwise the first one raises PatchError).
    """
    folder = resolve_patch_folder(folder)
    entries: list[tuple[Path, PatchName]] = []
    skipped: list[tuple[str, str]] = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith(".") or not e.name.lower().endswith(PATCH_SUFFIXES):
                continue
            if not e.is_file():
                continue
            try:
                entries.append((Path(e.path), parse_patch_name(e.name)))
            except PatchError as err:
                if not skip_invalid:
                    raise PatchError(Path(e.path), err.problem) from None
                skipped.append((e.name, err.problem))
    entries.sort(key=lambda pe: (pe[1].fold, pe[1].file))
    skipped.sort()
    return entries, skipped


def resolve_patch_folder(folder: str | os.PathLike) -> Path:
    """The folder holding the patch files: ``folder`` or, if it has none, ``folder/patches``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PatchError(folder, "not a folder")

    def has_patches(d: Path) -> bool:
        return any(
            p.suffix.lower() in PATCH_SUFFIXES and not p.name.startswith(".") for p in d.iterdir()
        )

    if has_patches(folder):
        return folder
    sub = folder / "patches"
    if sub.is_dir() and has_patches(sub):
        return sub
    raise PatchError(folder, "no patch files (*.tif) in this folder or in its patches/ sub-folder")


# --------------------------------------------------------------------------- patch files


def read_patch(path: str | os.PathLike) -> np.ndarray:
    """Read and check one patch GeoTIFF: returns float32 (33, 33, 11) in (H, W, C) order.

    Raises PatchError naming the file if it is unreadable, has a band count other than
    11, a size other than 33 x 33, or NaN/inf values.
    """
    import rasterio

    with rasterio.Env(**GDAL_READ_ENV):
        return _read_patch(Path(path))


def _read_patch(path: Path) -> np.ndarray:
    """:func:`read_patch` without setting up the GDAL environment."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                count, height, width = src.count, src.height, src.width
                if count != N_FEATURES:
                    raise PatchError(path, f"has {count} bands, expected {N_FEATURES}")
                if (height, width) != (PATCH_SIZE, PATCH_SIZE):
                    raise PatchError(
                        path,
                        f"is {height} x {width} pixels (rows x columns), "
                        f"expected {PATCH_SIZE} x {PATCH_SIZE}",
                    )
                data = src.read(out_dtype=np.float32)
    except PatchError:
        raise
    except (RasterioError, OSError, ValueError) as err:
        raise PatchError(path, f"unreadable as a GeoTIFF: {err}") from None
    bad = ~np.isfinite(data)
    if bad.any():
        bands = [FEATURES[i] for i in np.flatnonzero(bad.any(axis=(1, 2)))]
        raise PatchError(path, f"has {int(bad.sum())} NaN/inf values (bands: {', '.join(bands)})")
    return np.ascontiguousarray(data.transpose(1, 2, 0))


def write_patch(path: str | os.PathLike, x: np.ndarray) -> None:
    """Write one patch (33, 33, 11) (H, W, C) as a float32 GeoTIFF (no georeferencing).

    Mainly for tests and synthetic data; no size or band checks (so invalid patches can
    be written on purpose). Written to a temporary file in the same folder, then renamed.
    """
    import rasterio

    path = Path(path)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"{path}: patch must be (H, W, C), got shape {x.shape}")
    tmp = path.with_name(f".{path.name}.tmp")
    profile = {
        "driver": "GTiff",
        "width": x.shape[1],
        "height": x.shape[0],
        "count": x.shape[2],
        "dtype": "float32",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(x.transpose(2, 0, 1))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- sources


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


def _meta_frame(fold: Any, glacier: Any, date: Any, ident: Any, file: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "fold": np.asarray(fold, dtype=np.int64),
            "glacier": pd.array(list(glacier), dtype="str"),
            "date": pd.array(list(date), dtype="str"),
            "id": pd.array(list(ident), dtype="str"),
            "file": pd.array(list(file), dtype="str"),
        }
    )


def _concat_meta(metas: list[pd.DataFrame]) -> pd.DataFrame:
    if not metas:
        return _meta_frame([], [], [], [], [])
    return metas[0] if len(metas) == 1 else pd.concat(metas, ignore_index=True)


def _skipped_frame(skipped: Sequence[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "file": pd.array([s[0] for s in skipped], dtype="str"),
            "problem": pd.array([s[1] for s in skipped], dtype="str"),
        }
    )


@contextmanager
def _pack_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn HDF5 read errors (a damaged pack) into PatchError naming the pack."""
    try:
        yield
    except OSError as err:
        raise PatchError(path, f"pack unreadable (damaged?): {err}") from None


class _Pack:
    """An open, checked pack (read-only)."""

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
        remake = "re-create it with `python -m utils.data.patches pack DATASET_DIR OUT.h5`"
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
                f"pack format version {version}, this code reads version {PACK_VERSION}; {remake}",
            )
        for key, expected in (("features", FEATURES), ("classes", CLASSES)):
            got = [str(v) for v in a.get(key, [])]
            if got != list(expected):
                raise PatchError(self.path, f"pack {key} {got} differ from {list(expected)}")
        keys = ("x", "y", "fold_offsets", *_META_COLUMNS)
        missing = [k for k in keys if k not in self.h5]
        if missing:
            raise PatchError(self.path, f"pack lacks datasets {missing}; {remake}")
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
            or any(self.d[k].shape != (n,) for k in ("y", *_META_COLUMNS))
        ):
            raise PatchError(self.path, f"pack datasets have inconsistent shapes; {remake}")

    def slices(self, folds: list[int]) -> list[tuple[int, int]]:
        """Merged (start, stop) index ranges of the given folds."""
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
        """Metadata DataFrame and int64 labels of rows a:b."""
        d = self.d
        strs = [d[k].asstr()[a:b] for k in ("glacier", "date", "id", "file")]
        meta = _meta_frame(d["fold"][a:b], *strs)
        y = np.asarray(d["y"][a:b], dtype=np.int64)
        if len(y) and y.max() >= N_CLASSES:
            raise PatchError(self.path, f"pack labels {a}:{b} hold a class index >= {N_CLASSES}")
        return meta, y

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> _Pack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_patch_blocks(
    source: str | os.PathLike,
    folds: int | Iterable[int] | None = None,
    skip_invalid: bool = False,
    skipped: list[tuple[str, str]] | None = None,
    block: int = _BLOCK,
    progress: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, pd.DataFrame]]:
    """Stream raw patches of a folder or pack in (fold, file) order, in blocks.

    Yields ``(x, y, meta)``: x float32 (B, 33, 33, 11) raw values, y int64 (B,), meta a
    DataFrame (fold, glacier, date, id, file). Invalid patches raise PatchError, or with
    ``skip_invalid`` are left out and appended as (file, problem) to ``skipped``.
    """
    folds = check_folds(folds)
    skipped = [] if skipped is None else skipped
    if source_kind(source) == "pack":
        with _Pack(source) as pack, _pack_errors(source):
            total = sum(b - a for a, b in pack.slices(folds))
            bar = _bar(total, progress, "reading pack")
            for a0, b0 in pack.slices(folds):
                for a in range(a0, b0, block):
                    b = min(a + block, b0)
                    meta, y = pack.meta(a, b)
                    x = np.asarray(pack.d["x"][a:b], dtype=np.float32)
                    bar.update(b - a)
                    yield x, y, meta
            bar.close()
        return
    entries = _folder_entries(source, folds, skip_invalid, skipped)
    yield from _read_entries(entries, skip_invalid, skipped, block, progress)


def _folder_entries(
    source: str | os.PathLike,
    folds: list[int],
    skip_invalid: bool,
    skipped: list[tuple[str, str]],
) -> list[tuple[Path, PatchName]]:
    entries, bad_names = list_patch_files(source, skip_invalid)
    skipped.extend(bad_names)
    return [(p, n) for p, n in entries if n.fold in folds]


def _read_entries(
    entries: list[tuple[Path, PatchName]],
    skip_invalid: bool,
    skipped: list[tuple[str, str]],
    block: int = _BLOCK,
    progress: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, pd.DataFrame]]:
    import rasterio

    bar = _bar(len(entries), progress, "reading patches")
    for i in range(0, len(entries), block):
        chunk = entries[i : i + block]
        x = np.empty((len(chunk), PATCH_SIZE, PATCH_SIZE, N_FEATURES), dtype=np.float32)
        keep: list[PatchName] = []
        with rasterio.Env(**GDAL_READ_ENV):
            for path, name in chunk:
                try:
                    x[len(keep)] = _read_patch(path)
                    keep.append(name)
                except PatchError as err:
                    if not skip_invalid:
                        bar.close()
                        raise
                    skipped.append((name.file, err.problem))
                bar.update(1)
        if keep:
            rows = [(n.fold, n.glacier, n.date, n.id, n.file) for n in keep]
            meta = _meta_frame(*zip(*rows, strict=True))
            yield x[: len(keep)], np.array([n.label for n in keep], dtype=np.int64), meta
    bar.close()


def _bar(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="patch", file=sys.stderr)


# --------------------------------------------------------------------------- loading


@dataclass
class PatchSet:
    """Patches with labels and metadata.

    ``x`` float32 (N, 33, 33, F) (normalised unless ``stats`` was None), ``y`` int64 (N,)
    class indices, ``meta`` DataFrame (fold, glacier, date, id, file) with N rows,
    ``features`` the F channel indices into utils.study.FEATURES, ``skipped`` a
    DataFrame (file, problem) of patches left out by ``skip_invalid``.
    """

    x: np.ndarray
    y: np.ndarray
    meta: pd.DataFrame
    features: tuple[int, ...]
    normalised: bool
    skipped: pd.DataFrame = field(default_factory=lambda: _skipped_frame([]))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def feature_names(self) -> list[str]:
        return [FEATURES[i] for i in self.features]


def load_patches(
    source: str | os.PathLike,
    folds: int | Iterable[int] | None = None,
    features: Iterable[str] = ALL_GROUPS,
    stats: Stats | str | os.PathLike | None = None,
    skip_invalid: bool = False,
    report: str | os.PathLike | None = None,
) -> PatchSet:
    """Load patches of the given folds (default all) from a folder or a pack.

    ``features`` are the study's group names (``optical``, ``elevation``, ``slope``,
    ``shadow_mask``, ``hillshade``, ``proximity``) or band names; channels keep the
    FEATURES order. ``stats`` (a Stats or a statistics file) min-max normalises; None
    returns raw values. With ``skip_invalid`` invalid patches are left out and listed in
    ``PatchSet.skipped`` (also written as CSV to ``report`` if given).
    """
    folds = check_folds(folds)
    idx = _feature_indices(features)
    all_features = idx == list(range(N_FEATURES))
    if stats is not None and not isinstance(stats, Stats):
        stats = load_stats(stats)
    skipped: list[tuple[str, str]] = []

    if source_kind(source) == "pack":
        with _Pack(source) as pack, _pack_errors(source):
            slices = pack.slices(folds)
            n = sum(b - a for a, b in slices)
            x = np.empty((n, PATCH_SIZE, PATCH_SIZE, len(idx)), dtype=np.float32)
            metas, ys, pos = [], [], 0
            for a, b in slices:
                if all_features:
                    pack.d["x"].read_direct(x, np.s_[a:b], np.s_[pos : pos + b - a])
                else:
                    for s in range(a, b, _BLOCK):
                        e = min(s + _BLOCK, b)
                        x[pos + s - a : pos + e - a] = pack.d["x"][s:e][..., idx]
                meta, y = pack.meta(a, b)
                metas.append(meta)
                ys.append(y)
                pos += b - a
    else:
        metas, ys, pos = [], [], 0
        entries = _folder_entries(source, folds, skip_invalid, skipped)
        n_max = len(entries)
        x = np.empty((n_max, PATCH_SIZE, PATCH_SIZE, len(idx)), dtype=np.float32)
        for xb, y, meta in _read_entries(entries, skip_invalid, skipped):
            x[pos : pos + len(y)] = xb if all_features else xb[..., idx]
            metas.append(meta)
            ys.append(y)
            pos += len(y)
        if pos < n_max:
            x = x[:pos].copy()

    if stats is not None:
        for s in range(0, len(x), _BLOCK):
            x[s : s + _BLOCK] = stats.normalise(x[s : s + _BLOCK], idx)
    meta = _concat_meta(metas)
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)
    skipped_df = _skipped_frame(sorted(skipped))
    if report is not None:
        write_skip_report(skipped_df, report)
    return PatchSet(x, y, meta, tuple(idx), stats is not None, skipped_df)


def write_skip_report(
    skipped: pd.DataFrame | Sequence[tuple[str, str]], path: str | os.PathLike
) -> None:
    """Write the skipped patches as CSV (columns file, problem), via a temporary file."""
    df = skipped if isinstance(skipped, pd.DataFrame) else _skipped_frame(skipped)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False, columns=["file", "problem"])
    os.replace(tmp, path)


def skip_report_path(out: str | os.PathLike) -> Path:
    """Where the CLI writes its skip report for output ``out``: ``OUT.skipped.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.skipped.csv")


# --------------------------------------------------------------------------- stats and pack


def compute_stats(
    source: str | os.PathLike,
    folds: int | Iterable[int] | None = None,
    skip_invalid: bool = False,
    progress: bool = False,
) -> tuple[Stats, pd.DataFrame]:
    """Per-feature minima and maxima (11 each) over the raw patches of the given folds.

    Returns ``(stats, skipped)``; ``skipped`` is a DataFrame (file, problem).
    """
    lo = np.full(N_FEATURES, np.inf)
    hi = np.full(N_FEATURES, -np.inf)
    skipped: list[tuple[str, str]] = []
    n = 0
    for x, _, _ in iter_patch_blocks(source, folds, skip_invalid, skipped, progress=progress):
        lo = np.minimum(lo, x.min(axis=(0, 1, 2)))
        hi = np.maximum(hi, x.max(axis=(0, 1, 2)))
        n += len(x)
    if n == 0:
        raise PatchError(source, f"no valid patches in folds {check_folds(folds)}")
    return Stats(lo, hi), _skipped_frame(sorted(skipped))


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack_patches` wrote: patches per fold (length 6) and skipped files."""

    path: Path
    fold_counts: tuple[int, ...]
    skipped: pd.DataFrame

    @property
    def n_patches(self) -> int:
        return sum(self.fold_counts)


def pack_patches(
    source: str | os.PathLike,
    out: str | os.PathLike,
    overwrite: bool = False,
    skip_invalid: bool = False,
    progress: bool = True,
) -> PackResult:
    """Write all raw patches of ``source`` (folder or pack) into one HDF5 pack ``out``.

    Pack layout (version :data:`PACK_VERSION`): ``x`` float32 (N, 33, 33, 11) raw values,
    uncompressed, chunks of PACK_CHUNK patches; ``y`` uint8 (N,) class index; ``fold``
    uint8 (N,); ``glacier``, ``date``, ``id``, ``file`` UTF-8 strings (N,);
    ``fold_offsets`` int64 (7,): fold f is rows ``fold_offsets[f]:fold_offsets[f+1]``.
    Rows are sorted by (fold, file). Attributes: format, version, features, classes,
    patch_size. Written to a temporary file in ``out``'s folder and renamed on success;
    FileExistsError if ``out`` exists and not ``overwrite``.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (use --overwrite / overwrite=True)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out}: output folder {out.parent} does not exist")
    skipped: list[tuple[str, str]] = []
    folds = list(range(N_FOLDS))
    if source_kind(source) == "pack":
        with _Pack(source) as pack:
            n_max = int(pack.offsets[-1])
        blocks = iter_patch_blocks(source, None, progress=progress)
    else:
        entries = _folder_entries(source, folds, skip_invalid, skipped)
        n_max = len(entries)
        blocks = _read_entries(entries, skip_invalid, skipped, progress=progress)

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    counts = np.zeros(N_FOLDS, dtype=np.int64)
    try:
        with h5py.File(tmp, "w") as h5:
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
            meta = _concat_meta(metas)
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
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return PackResult(out, tuple(int(c) for c in counts), _skipped_frame(sorted(skipped)))


# --------------------------------------------------------------------------- training input


def sample_weights(
    labels: Sequence[int] | np.ndarray,
    glaciers: Sequence[str] | np.ndarray,
    dates: Sequence[str] | np.ndarray,
) -> np.ndarray:
    """Per-sample weights float32 (N,): class weight x scene weight, as in the study.

    class weight = N / count(class of the sample); scene weight = N / count((glacier, date)
    of the sample); counts over the given (training) samples.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if len(glaciers) != n or len(dates) != n:
        raise ValueError(
            f"labels, glaciers and dates differ in length: {n}, {len(glaciers)}, {len(dates)}"
        )
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    _, cls_inv, cls_count = np.unique(labels, return_inverse=True, return_counts=True)
    scenes = pd.MultiIndex.from_arrays(
        [np.asarray(glaciers, dtype=str), np.asarray(dates, dtype=str)]
    )
    scene_codes, _ = pd.factorize(scenes)
    scene_count = np.bincount(scene_codes)
    w = (n / cls_count[cls_inv]) * (n / scene_count[scene_codes])
    return w.astype(np.float32)


def augment(x: tf.Tensor | np.ndarray, seed: tf.Tensor | Sequence[int]) -> tf.Tensor:
    """The study's random augmentation of patches (B, H, W, C) or one patch (H, W, C).

    Per patch, independently: left-right flip (p=0.5), up-down flip (p=0.5), rot90 by
    k in {0, 1, 2, 3}, contrast ``(x - mean) * f + mean`` with f in [0.95, 1.05] and the
    per-channel spatial mean (as tf.image.adjust_contrast), then a brightness delta in
    [-0.01, 0.01] added to all channels. Needs H == W. ``seed`` is a stateless seed of
    shape (2,); the same seed gives the same result.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x, dtype=tf.float32)
    single = x.shape.rank == 3
    if single:
        x = x[tf.newaxis]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5)
    b = tf.shape(x)[0]
    lr = tf.random.stateless_uniform([b, 1, 1, 1], seeds[0]) < 0.5
    ud = tf.random.stateless_uniform([b, 1, 1, 1], seeds[1]) < 0.5
    k = tf.random.stateless_uniform([b], seeds[2], minval=0, maxval=4, dtype=tf.int32)
    f = tf.random.stateless_uniform([b, 1, 1, 1], seeds[3], *CONTRAST_RANGE)
    d = tf.random.stateless_uniform([b, 1, 1, 1], seeds[4], -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    x = tf.where(lr, tf.reverse(x, axis=[2]), x)
    x = tf.where(ud, tf.reverse(x, axis=[1]), x)
    rots = tf.stack([tf.image.rot90(x, i) for i in range(4)])  # (4, B, H, W, C)
    x = tf.gather_nd(rots, tf.stack([k, tf.range(b)], axis=1))
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    x = (x - mean) * f + mean + d
    return x[0] if single else x


def make_tf_dataset(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    training: bool = False,
    batch_size: int = 512,
    seed: int | None = None,
    n_classes: int = N_CLASSES,
) -> tf.data.Dataset:
    """tf.data input: batches of (x, one-hot y[, weight]), then prefetch.

    ``x`` float32 (N, H, W, C), ``y`` int (N,) class indices, ``weights`` (N,) or None.
    Training: reshuffled every epoch, :func:`augment` per batch, label smoothing
    ``y * (1 - 0.1) + 0.1 / n_classes``. Otherwise the input order and values unchanged,
    plain one-hot. ``seed`` makes shuffling and augmentation reproducible.
    """
    import tensorflow as tf

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    n = len(x)
    if x.ndim != 4 or y.shape != (n,):
        raise ValueError(f"x must be (N, H, W, C) and y (N,); got {x.shape} and {y.shape}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != (n,):
            raise ValueError(f"weights must be (N,) = ({n},), got {weights.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    # Variables (pinned to the CPU, where tf.data runs) rather than constants: a captured
    # constant is copied into the dataset graph when tf.data optimises it (slow, and
    # limited to 2 GB); a variable is captured by reference.
    with tf.device("/CPU:0"):
        xt = tf.Variable(x, trainable=False)
        yt = tf.Variable(y.astype(np.int32), trainable=False)
        wt = None if weights is None else tf.Variable(weights, trainable=False)

    def targets(i: tf.Tensor) -> tf.Tensor:
        t = tf.one_hot(tf.gather(yt, i), n_classes, dtype=tf.float32)
        if training:
            t = t * (1.0 - LABEL_SMOOTHING) + LABEL_SMOOTHING / n_classes
        return t

    def pack(i: tf.Tensor, xb: tf.Tensor) -> tuple[tf.Tensor, ...]:
        out = (xb, targets(i))
        return out if wt is None else (*out, tf.gather(wt, i))

    idx = tf.data.Dataset.range(n)
    if training:
        idx = idx.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
        idx = idx.batch(batch_size)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(idx, seeds).map(
            lambda i, s: pack(i, augment(tf.gather(xt, i), s)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        ds = idx.batch(batch_size).map(
            lambda i: pack(i, tf.gather(xt, i)), num_parallel_calls=tf.data.AUTOTUNE
        )
    return ds.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _build_parser() -> _Parser:
    p = _Parser(prog="python -m utils.data.patches", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stats", help="per-feature min/max statistics (JSON)")
    s.add_argument("dataset", type=Path, help="patch folder or pack (.h5)")
    s.add_argument("out", type=Path, help="output JSON")
    s.add_argument("--folds", type=int, nargs="+", help="folds to use (default: all)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    s.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip invalid patches, list them in OUT.skipped.csv",
    )
    k = sub.add_parser("pack", help="pack a patch folder into one HDF5 file")
    k.add_argument("dataset", type=Path, help="patch folder (or pack)")
    k.add_argument("out", type=Path, help="output .h5")
    k.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    k.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip invalid patches, list them in OUT.skipped.csv",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 1 invalid data, 2 usage)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if source_kind(args.dataset) == "pack":
            _Pack(args.dataset).close()
        else:
            resolve_patch_folder(args.dataset)
        if args.command == "stats":
            check_folds(args.folds)
    except (PatchError, ValueError) as err:
        parser.error(str(err))
    if not args.out.parent.is_dir():
        parser.error(f"{args.out}: output folder {args.out.parent} does not exist")
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out}: already exists (use --overwrite to replace it)")

    try:
        if args.command == "stats":
            stats, skipped = compute_stats(
                args.dataset, args.folds, args.skip_invalid, progress=True
            )
            from utils.normalisation import save_stats

            save_stats(stats, args.out)
            done = f"wrote {args.out}"
        else:
            res = pack_patches(args.dataset, args.out, args.overwrite, args.skip_invalid)
            skipped = res.skipped
            done = f"wrote {args.out}: {res.n_patches} patches, per fold {list(res.fold_counts)}"
    except (PatchError, FileExistsError, FileNotFoundError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    if args.skip_invalid:
        report = skip_report_path(args.out)
        write_skip_report(skipped, report)
        done += f"; skipped {len(skipped)} invalid patches (listed in {report})"
    print(done, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
