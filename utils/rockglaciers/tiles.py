"""Read rock-glacier tiles (128 x 128 RGB PNG) with their labels and rock-glacier groups.

Two layouts of the Andes rock-glacier dataset (alcazar90/rock-glacier-detection,
Hugging Face ``alkzar90/rock-glacier-dataset``) are read:

* **file names** (the repository's ``data/ds1``): ``cordillera_<n>.png`` = no rock
  glacier (label 0), ``glaciarRoca_<site>_<k>_<n>.png`` = rock glacier (label 1),
  where ``<site>_<k>`` names one rock glacier;
* **image folders** (the Hugging Face ``image-classification`` configuration's
  ``path``, e.g. ``train/cordillera/1512.png``): a folder holding ``cordillera/``
  and ``glaciar/``.

Groups: tiles of one rock glacier overlap heavily, so every split groups them
(group ``<site>_<k>``). ``cordillera`` names carry only a number; consecutive
numbers are neighbouring, overlapping crops (checked on the 300 real tiles:
pairs ``n, n + 1`` correlate at r ~ 1.0 after a shift, pairs across a gap mostly
do not), so a maximal run of consecutive numbers is one group. Tiles of
different runs can still overlap now and then: a caveat, not a guarantee. In the
image-folder layout the same run rule is applied per class folder; whether its
numbers are spatial is not known.

Alpha: some published tiles are RGBA. Alpha is read as a validity mask: RGB of
fully transparent pixels (alpha 0) is set to 0, the same value the scene map
uses for nodata, and alpha is dropped. The 300 tiles in ``../shared`` are RGB.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from sklearn.model_selection import StratifiedGroupKFold

from utils.errors import InputError

TILE: int = 128
#: Label names in index order (0 = no rock glacier, 1 = rock glacier).
LABELS: tuple[str, str] = ("cordillera", "glaciar")

_NAME_NEG = re.compile(r"cordillera_(\d+)\.png")
_NAME_POS = re.compile(r"glaciarRoca_([A-Za-z]+_\d+)_(\d+)\.png")


class RockGlacierError(InputError):
    """A tile, mask, folder, model or scene of the rock-glacier system that cannot be used."""


@dataclass
class TileSet:
    """Tiles of one folder: images (N, 128, 128, 3) uint8 RGB, labels (N,) int64 (0/1),
    groups (N,) str (one rock glacier or one run of cordillera tiles), paths (N,),
    skipped: ``"file: why"`` for each invalid tile left out (``skip_invalid``)."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    paths: list[Path]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def read_png(path: str | os.PathLike, size: int = TILE) -> np.ndarray:
    """One tile as (size, size, 3) uint8 RGB; RGBA alpha 0 -> RGB 0 (see module doc)."""
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode not in ("RGB", "RGBA", "L", "LA", "P"):
                raise RockGlacierError(f"{path}: unsupported PNG mode {mode} (expected RGB/RGBA)")
            arr = np.asarray(im.convert("RGBA"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, RockGlacierError):
            raise
        raise RockGlacierError(f"{path}: not a readable PNG image ({e})") from e
    if arr.shape[:2] != (size, size):
        raise RockGlacierError(f"{path}: tile is {arr.shape[0]} x {arr.shape[1]} px, "
                               f"expected {size} x {size}")
    rgb = arr[..., :3].copy()
    rgb[arr[..., 3] == 0] = 0
    return rgb


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


def _entries(folder: Path) -> list[tuple[Path, int, str, int | None]]:
    """(path, label, group stem, number for run grouping or None) of a folder's tiles."""
    pngs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    subdirs = {p.name for p in folder.iterdir() if p.is_dir()}
    if pngs:
        out = []
        for p in pngs:
            if m := _NAME_NEG.fullmatch(p.name):
                out.append((p, 0, "cordillera", int(m.group(1))))
            elif m := _NAME_POS.fullmatch(p.name):
                out.append((p, 1, m.group(1), None))
            else:
                raise RockGlacierError(f"{p}: unknown label: name is neither cordillera_<n>.png "
                                       "nor glaciarRoca_<site>_<k>_<n>.png")
        return out
    if set(LABELS) <= subdirs:
        out = []
        for sub in sorted(subdirs):
            if sub not in LABELS:
                raise RockGlacierError(f"{folder / sub}: unknown label folder "
                                       f"(expected {' and '.join(LABELS)})")
            for p in sorted((folder / sub).iterdir()):
                if p.suffix.lower() != ".png":
                    continue
                num = int(p.stem) if p.stem.isdigit() else None
                out.append((p, LABELS.index(sub), sub, num))
        return out
    raise RockGlacierError(f"{folder}: no tiles: expected cordillera_<n>.png / glaciarRoca_*.png "
                           "files or the folders cordillera/ and glaciar/")


def read_tiles(folder: str | os.PathLike, skip_invalid: bool = False) -> TileSet:
    """Read every tile of ``folder`` in either layout (see module doc).

    A corrupt PNG, a wrong size or an unknown label raises :class:`RockGlacierError`
    naming the file; with ``skip_invalid`` unreadable or wrongly sized tiles are left
    out and listed in ``TileSet.skipped`` instead (unknown labels always raise).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RockGlacierError(f"{folder}: tile folder does not exist or is not a folder")
    entries = _entries(folder)
    images, kept, skipped = [], [], []
    for entry in entries:
        try:
            images.append(read_png(entry[0]))
            kept.append(entry)
        except RockGlacierError as e:
            if not skip_invalid:
                raise
            skipped.append(str(e))
    if not kept:
        raise RockGlacierError(f"{folder}: no readable tiles ({len(skipped)} invalid)")
    groups = []
    runs = {stem: _runs([n for _, _, s, n in kept if s == stem and n is not None])
            for stem in {e[2] for e in kept}}
    for p, _, stem, num in kept:
        groups.append(f"{stem}_run{runs[stem][num]}" if num is not None else
                      stem if stem not in LABELS else f"{stem}_{p.stem}")
    return TileSet(images=np.stack(images), labels=np.array([e[1] for e in kept]),
                   groups=np.array(groups), paths=[e[0] for e in kept], skipped=skipped)


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
