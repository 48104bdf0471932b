"""Read rock-glacier tiles (128 x 128 RGB PNG) with their labels and rock-glacier groups.

Three layouts of the Andes rock-glacier dataset (alcazar90/rock-glacier-detection,
Hugging Face ``alkzar90/rock-glacier-dataset``) are read:

* **file names** (the repository's ``data/ds1``): ``cordillera_<n>.png`` = no rock
  glacier (label 0), ``glaciarRoca_<site>_<k>_<n>.png`` = rock glacier (label 1),
  where ``<site>_<k>`` names one rock glacier;
* **image folders** (the Hugging Face ``image-classification`` configuration's
  ``path``, e.g. ``train/cordillera/1512.png``): a folder holding ``cordillera/``
  and ``glaciar/``;
* **Parquet** (a local Hugging Face ``datasets`` export of the ``image-classification``
  configuration): one ``.parquet`` file, or a folder holding ``*.parquet`` files
  (directly or in ``data/``; read in file-name order) and no PNG tiles. Columns:
  ``image`` (struct ``{bytes: PNG, path}``), ``labels`` (0 = cordillera, 1 = glaciar)
  and optionally ``path`` (``train/glaciar/77.png``), whose class folder, when it
  names one, must agree with ``labels``. A row is named ``<file>::<path>`` (or
  ``<file>::row <i>``) in ``TileSet.paths`` and in errors.

Groups: tiles of one rock glacier overlap heavily, so every split groups them
(group ``<site>_<k>``). ``cordillera`` names carry only a number; consecutive
numbers are neighbouring, overlapping crops (checked on the 300 real tiles:
pairs ``n, n + 1`` correlate at r ~ 1.0 after a shift, pairs across a gap mostly
do not), so a maximal run of consecutive numbers is one group. Tiles of
different runs can still overlap now and then: a caveat, not a guarantee. In the
image-folder and Parquet layouts the same run rule is applied per class folder
(to the numbers of the file stems of ``path``); whether these numbers are spatial
is not known.

Alpha: some published tiles are RGBA. Alpha is read as a validity mask: RGB of
fully transparent pixels (alpha 0) is set to 0, the same value the scene map
uses for nodata, and alpha is dropped. The 300 tiles in ``../shared`` are RGB.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from utils.errors import InputError

TILE: int = 128
#: Label names in index order (0 = no rock glacier, 1 = rock glacier).
LABELS: tuple[str, str] = ("cordillera", "glaciar")

_NAME_NEG = re.compile(r"cordillera_(\d+)\.png")
_NAME_POS = re.compile(r"glaciarRoca_([A-Za-z]+_\d+)_(\d+)\.png")

#: A PNG to decode: a file, or its bytes (``None``: a Parquet row without bytes).
PngSource = str | os.PathLike | bytes | None
_K = TypeVar("_K")
_V = TypeVar("_V")


class RockGlacierError(InputError):
    """A tile, mask, folder, model or scene of the rock-glacier system that cannot be used."""


@dataclass
class TileSet:
    """Tiles of one folder: images (N, 128, 128, 3) uint8 RGB, labels (N,) int64 (0/1),
    groups (N,) str (one rock glacier or one run of cordillera tiles), paths (N,)
    (files, or ``<file>.parquet::<row path>``), skipped: ``"file: why"`` for each
    invalid tile left out (``skip_invalid``)."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    paths: list[Path]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


class _Tile(NamedTuple):
    """A tile's name and label; its group is ``group``, or with ``num`` the run of
    consecutive numbers of ``group`` that holds ``num``."""

    path: Path
    label: int
    group: str
    num: int | None = None


def decode_png(source: PngSource, name: str,
               convert: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """``convert`` applied to the PNG of a file or bytes; unreadable -> RockGlacierError
    naming ``name`` (``convert`` may raise RockGlacierError itself)."""
    if source is None:
        raise RockGlacierError(f"{name}: no PNG bytes")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            im.load()
            return convert(im)
    except RockGlacierError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise RockGlacierError(f"{name}: not a readable PNG image ({e})") from e


def _rgb(im: Image.Image, name: str, size: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB of a loaded image; RGBA alpha 0 -> RGB 0."""
    if im.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        raise RockGlacierError(f"{name}: unsupported PNG mode {im.mode} (expected RGB/RGBA)")
    arr = np.asarray(im.convert("RGBA"))
    if arr.shape[:2] != (size, size):
        raise RockGlacierError(f"{name}: tile is {arr.shape[0]} x {arr.shape[1]} px, "
                               f"expected {size} x {size}")
    rgb = arr[..., :3].copy()
    rgb[arr[..., 3] == 0] = 0
    return rgb


def read_png(source: PngSource, size: int = TILE, name: str | None = None) -> np.ndarray:
    """One tile (a file, or PNG bytes called ``name`` in errors) as (size, size, 3) uint8
    RGB; RGBA alpha 0 -> RGB 0 (see module doc)."""
    name = str(source) if name is None else name
    return decode_png(source, name, partial(_rgb, name=name, size=size))


def parquet_files(source: Path) -> list[Path]:
    """The Parquet files of ``source``: itself if a ``.parquet`` file, else the
    ``*.parquet`` files in it (or, if none, in its ``data/``), sorted by name."""
    if source.suffix.lower() == ".parquet" and source.is_file():
        return [source]
    for folder in (source, source / "data"):
        if files := sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            return files
    return []


def png_bytes(cell: dict | bytes | None) -> bytes | None:
    """The PNG bytes of a Hugging Face Image cell (struct ``{bytes, path}``, or bytes)."""
    return cell if isinstance(cell, bytes) or cell is None else cell.get("bytes")


def parquet_rows(file: Path, required: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    """(name, row) of each row of ``file``: the ``required`` columns and ``path`` (the
    row's ``path``, else the path in its ``image`` cell, else None); name is
    ``<file>::<path>`` or ``<file>::row <i>``. Read in batches: memory stays small."""
    try:
        pf = pq.ParquetFile(file)
        found = pf.schema_arrow.names
        if missing := [c for c in required if c not in found]:
            raise RockGlacierError(f"{file}: no column(s) {', '.join(missing)}; "
                                   f"found {', '.join(found) or 'none'}")
        columns = [*required, "path"] if "path" in found else list(required)
        i = 0
        for batch in pf.iter_batches(batch_size=256, columns=columns):
            for row in batch.to_pylist():
                cell = row.get("image")
                row["path"] = row.get("path") or (cell.get("path") if isinstance(cell, dict)
                                                  else None)
                yield f"{file}::{row['path'] or f'row {i}'}", row
                i += 1
    except (pa.ArrowException, OSError) as e:
        raise RockGlacierError(f"{file}: not a readable Parquet file ({e})") from e


def load_all(items: Iterable[tuple[_K, Callable[[], _V]]], skip_invalid: bool
             ) -> tuple[list[_K], list[_V], list[str]]:
    """Call the loader of each (key, loader): (keys kept, their values, ``str`` of each
    RockGlacierError of a loader). A loader's error raises unless ``skip_invalid``."""
    kept, values, skipped = [], [], []
    for key, load in items:
        try:
            values.append(load())
            kept.append(key)
        except RockGlacierError as e:
            if not skip_invalid:
                raise
            skipped.append(str(e))
    return kept, values, skipped


def _runs(numbers: list[int]) -> dict[int, int]:
    """Map each number to the first number of its run of consecutive numbers."""
    start: dict[int, int] = {}
    first = prev = None
    for n in sorted(set(numbers)):
        if prev is None or n != prev + 1:
            first = n
        start[n] = first
        prev = n
    return start


def _class_tile(path: Path, label: int, rel: str | None) -> _Tile:
    """A tile of class folder ``LABELS[label]`` (image folders, Parquet) whose file is
    ``rel``: grouped by the run of its number, or alone when its stem is no number."""
    stem = Path(rel).stem if rel else str(path)
    cls = LABELS[label]
    if stem.isdigit():
        return _Tile(path, label, cls, int(stem))
    return _Tile(path, label, f"{cls}_{stem}")


def _name_tiles(pngs: list[Path]) -> Iterator[tuple[_Tile, Callable[[], np.ndarray]]]:
    """Tiles of the file-name layout, each with its loader."""
    for p in pngs:
        if m := _NAME_NEG.fullmatch(p.name):
            yield _Tile(p, 0, "cordillera", int(m.group(1))), partial(read_png, p)
        elif m := _NAME_POS.fullmatch(p.name):
            yield _Tile(p, 1, m.group(1)), partial(read_png, p)
        else:
            raise RockGlacierError(f"{p}: unknown label: name is neither cordillera_<n>.png "
                                   "nor glaciarRoca_<site>_<k>_<n>.png")


def _folder_tiles(folder: Path, subdirs: set[str]
                  ) -> Iterator[tuple[_Tile, Callable[[], np.ndarray]]]:
    """Tiles of the image-folder layout (``cordillera/``, ``glaciar/``), each with its loader."""
    for sub in sorted(subdirs):
        if sub not in LABELS:
            raise RockGlacierError(f"{folder / sub}: unknown label folder "
                                   f"(expected {' and '.join(LABELS)})")
        for p in sorted((folder / sub).iterdir()):
            if p.suffix.lower() == ".png":
                yield _class_tile(p, LABELS.index(sub), p.name), partial(read_png, p)


def _row_label(name: str, row: dict) -> int:
    """The row's ``labels`` (0/1), checked against the class folder of its ``path``."""
    label, cls = row["labels"], Path(row["path"] or "").parent.name
    if label not in (0, 1):
        raise RockGlacierError(f"{name}: label {label!r}, expected 0 (cordillera) or 1 (glaciar)")
    if cls in LABELS and LABELS.index(cls) != label:
        raise RockGlacierError(f"{name}: label {label} ({LABELS[label]}) disagrees with "
                               f"the class folder {cls}/ of its path")
    return int(label)


def _parquet_tiles(files: list[Path]) -> Iterator[tuple[_Tile, Callable[[], np.ndarray]]]:
    """Tiles of the Parquet layout (``image``, ``labels``, ``path``), each with its loader."""
    for file in files:
        for name, row in parquet_rows(file, ("image", "labels")):
            tile = _class_tile(Path(name), _row_label(name, row), row["path"])
            yield tile, partial(read_png, png_bytes(row["image"]), name=name)


def _tiles(folder: Path) -> Iterable[tuple[_Tile, Callable[[], np.ndarray]]]:
    """The tiles of ``folder`` (or of one ``.parquet`` file) in its layout, with loaders."""
    if folder.is_file() and (files := parquet_files(folder)):
        return _parquet_tiles(files)
    if not folder.is_dir():
        raise RockGlacierError(f"{folder}: tile folder does not exist or is not a folder")
    pngs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    subdirs = {p.name for p in folder.iterdir() if p.is_dir()}
    if pngs:
        return _name_tiles(pngs)
    if set(LABELS) <= subdirs:
        return _folder_tiles(folder, subdirs)
    if files := parquet_files(folder):
        return _parquet_tiles(files)
    raise RockGlacierError(f"{folder}: no tiles: expected cordillera_<n>.png / glaciarRoca_*.png "
                           "files, the folders cordillera/ and glaciar/, or *.parquet files")


def read_tiles(folder: str | os.PathLike, skip_invalid: bool = False) -> TileSet:
    """Read every tile of ``folder`` (or of one ``.parquet`` file) in any layout (see
    module doc).

    A corrupt PNG, a wrong size or an unknown label raises :class:`RockGlacierError`
    naming the file (and the Parquet row); with ``skip_invalid`` unreadable or wrongly
    sized tiles are left out and listed in ``TileSet.skipped`` instead (unknown or
    contradictory labels and unreadable Parquet files always raise).
    """
    folder = Path(folder)
    kept, images, skipped = load_all(_tiles(folder), skip_invalid)
    if not kept:
        raise RockGlacierError(f"{folder}: no readable tiles ({len(skipped)} invalid)")
    runs = {g: _runs([t.num for t in kept if t.group == g and t.num is not None])
            for g in {t.group for t in kept}}
    groups = [t.group if t.num is None else f"{t.group}_run{runs[t.group][t.num]}"
              for t in kept]
    return TileSet(images=np.stack(images), labels=np.array([t.label for t in kept]),
                   groups=np.array(groups), paths=[t.path for t in kept], skipped=skipped)


def grouped_folds(labels: np.ndarray, groups: np.ndarray, k: int = 5,
                  seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train index, test index) pairs; no group in two folds, classes stratified."""
    n_groups = [len(set(groups[labels == c])) for c in (0, 1)]
    if min(n_groups) < k:
        raise RockGlacierError(f"{k}-fold cross-validation needs >= {k} groups per class; "
                               f"have {n_groups[0]} (no rock glacier) and {n_groups[1]} "
                               "(rock glacier)")
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(labels)), labels, groups))


def site_of(groups: np.ndarray) -> np.ndarray:
    """Site of each tile from its group: ``loshelados``, ``maranceles`` or ``cordillera``."""
    return np.array([g.split("_")[0] for g in groups])


def site_folds(labels: np.ndarray, groups: np.ndarray
               ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """One (site, train index, test index) per rock-glacier site: a stricter split.

    The test set is every rock-glacier tile of one site plus one of ``n_sites``
    grouped shares of the no-rock-glacier tiles; training is the rest, so the
    network never saw the test site on any date. Needs >= 2 sites.
    """
    sites = site_of(groups)
    rg_sites = sorted(set(sites[labels == 1]))
    neg = np.flatnonzero(labels == 0)
    if len(rg_sites) < 2 or len(set(groups[neg])) < len(rg_sites):
        raise RockGlacierError(f"a by-site split needs >= 2 rock-glacier sites and as many "
                               f"no-rock-glacier groups; have sites {rg_sites}")
    shares = GroupKFold(len(rg_sites)).split(neg, groups=groups[neg])
    out = []
    for site, (_, neg_te) in zip(rg_sites, shares, strict=True):
        test = np.sort(np.concatenate([np.flatnonzero((labels == 1) & (sites == site)),
                                       neg[neg_te]]))
        out.append((site, np.setdiff1d(np.arange(len(labels)), test), test))
    return out
