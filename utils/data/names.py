"""Patch file names and the dataset folder layout.

A dataset is a folder of GeoTIFF patches, one per labelled point. File names are

    {fold}_{glacier}_{date}[_{id}]_{class}.tif

with fields separated by ``_``: ``fold`` is an integer 0 .. N_FOLDS - 1, ``glacier`` and
``date`` are free text without ``_`` (the date is kept as written, not parsed),
``class`` is one of :data:`utils.study.CLASSES` (exact spelling, lower case) and ``id``
is everything between date and class. The id is optional: the minimal name has 4
fields (``0_aletsch_2019-08-22_ice.tif``, id ``""``); a longer id may itself contain
``_``. Only ``*.tif``/``*.tiff`` files are patches; other files and hidden files are
ignored. A folder with no patches but a ``patches/`` sub-folder (the layout of
``utils.demo.generate``) is read from that sub-folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from utils import errors
from utils.study import CLASS_INDEX, CLASSES, N_FOLDS

#: File name suffixes of patch files (compared in lower case).
PATCH_SUFFIXES: tuple[str, ...] = (".tif", ".tiff")
#: Columns of the metadata DataFrame of loaded patches (the name fields and the file).
META_COLUMNS: tuple[str, ...] = ("fold", "glacier", "date", "id", "file")


class PatchError(errors.PatchError):
    """A patch file, patch name or pack is invalid; ``file`` and ``problem`` say which and why."""

    def __init__(self, file: str | os.PathLike, problem: str) -> None:
        self.file = str(file)
        self.problem = problem
        super().__init__(f"{self.file}: {problem}")


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
        """The class name of ``label``."""
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
    """Sorted unique fold numbers (all folds when None).

    Raises :class:`utils.errors.InputError` (a ValueError) for folds outside
    0 .. N_FOLDS - 1 or an empty list.
    """
    if folds is None:
        return list(range(N_FOLDS))
    if isinstance(folds, int | np.integer):
        folds = [int(folds)]
    folds = list(folds)
    out = sorted({int(f) for f in folds})
    bad = [f for f in out if not 0 <= f < N_FOLDS]
    if bad or not out:
        raise errors.InputError(f"folds must be integers 0..{N_FOLDS - 1}, got {folds}").about(
            "folds"
        )
    return out


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


def folder_entries(
    folder: str | os.PathLike,
    folds: list[int],
    skip_invalid: bool,
    skipped: list[tuple[str, str]],
) -> list[tuple[Path, PatchName]]:
    """:func:`list_patch_files` of the given folds; bad names are appended to ``skipped``."""
    entries, bad_names = list_patch_files(folder, skip_invalid)
    skipped.extend(bad_names)
    return [(p, n) for p, n in entries if n.fold in folds]


def meta_frame(fold: Any, glacier: Any, date: Any, ident: Any, file: Any) -> pd.DataFrame:
    """Metadata DataFrame (META_COLUMNS) from one sequence per column."""
    return pd.DataFrame(
        {
            "fold": np.asarray(fold, dtype=np.int64),
            "glacier": pd.array(list(glacier), dtype="str"),
            "date": pd.array(list(date), dtype="str"),
            "id": pd.array(list(ident), dtype="str"),
            "file": pd.array(list(file), dtype="str"),
        }
    )


def concat_meta(metas: list[pd.DataFrame]) -> pd.DataFrame:
    """Metadata blocks concatenated in order (an empty frame for none)."""
    if not metas:
        return meta_frame([], [], [], [], [])
    return metas[0] if len(metas) == 1 else pd.concat(metas, ignore_index=True)
