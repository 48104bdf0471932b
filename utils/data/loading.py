"""Loading patches from a folder or a pack: streamed in blocks, or whole as a PatchSet.

Every reader here accepts a patch folder (utils.data.names) or an HDF5 pack
(utils.data.pack); both give identical arrays and metadata, in the order (fold, file
name).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from utils.data.files import READ_BLOCK, read_patch_blocks
from utils.data.names import check_folds, concat_meta, folder_entries
from utils.data.pack import PackReader, iter_pack_blocks, pack_errors, source_kind
from utils.data.skipped import skipped_frame, write_skip_report
from utils.normalisation import Stats, load_stats
from utils.study import ALL_GROUPS, FEATURES, N_FEATURES, PATCH_SIZE, feature_indices


def iter_patch_blocks(
    source: str | os.PathLike,
    folds: int | Iterable[int] | None = None,
    skip_invalid: bool = False,
    skipped: list[tuple[str, str]] | None = None,
    block: int = READ_BLOCK,
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
        yield from iter_pack_blocks(source, folds, block, progress)
        return
    entries = folder_entries(source, folds, skip_invalid, skipped)
    yield from read_patch_blocks(entries, skip_invalid, skipped, block, progress)


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
    skipped: pd.DataFrame = field(default_factory=lambda: skipped_frame([]))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def feature_names(self) -> list[str]:
        """Names of the F channels (utils.study.FEATURES)."""
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
    idx = feature_indices(features)
    all_features = idx == list(range(N_FEATURES))
    if stats is not None and not isinstance(stats, Stats):
        stats = load_stats(stats)
    skipped: list[tuple[str, str]] = []

    if source_kind(source) == "pack":
        with PackReader(source) as pack, pack_errors(source):
            slices = pack.slices(folds)
            n = sum(b - a for a, b in slices)
            x = np.empty((n, PATCH_SIZE, PATCH_SIZE, len(idx)), dtype=np.float32)
            metas, ys, pos = [], [], 0
            for a, b in slices:
                if all_features:
                    pack.d["x"].read_direct(x, np.s_[a:b], np.s_[pos : pos + b - a])
                else:
                    for s in range(a, b, READ_BLOCK):
                        e = min(s + READ_BLOCK, b)
                        x[pos + s - a : pos + e - a] = pack.d["x"][s:e][..., idx]
                meta, y = pack.meta(a, b)
                metas.append(meta)
                ys.append(y)
                pos += b - a
    else:
        metas, ys, pos = [], [], 0
        entries = folder_entries(source, folds, skip_invalid, skipped)
        n_max = len(entries)
        x = np.empty((n_max, PATCH_SIZE, PATCH_SIZE, len(idx)), dtype=np.float32)
        for xb, y, meta in read_patch_blocks(entries, skip_invalid, skipped):
            x[pos : pos + len(y)] = xb if all_features else xb[..., idx]
            metas.append(meta)
            ys.append(y)
            pos += len(y)
        if pos < n_max:
            x = x[:pos].copy()

    if stats is not None:
        for s in range(0, len(x), READ_BLOCK):
            x[s : s + READ_BLOCK] = stats.normalise(x[s : s + READ_BLOCK], idx)
    meta = concat_meta(metas)
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)
    skipped_df = skipped_frame(sorted(skipped))
    if report is not None:
        write_skip_report(skipped_df, report)
    return PatchSet(x, y, meta, tuple(idx), stats is not None, skipped_df)
