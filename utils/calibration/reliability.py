"""Reliability statistics: equal confidence bins, per-bin accuracy, expected calibration error.

Confidences lie in [0, 1]; ``n`` equal bins hold [i/n, (i+1)/n). As in the
study's notebook (``lower <= conf < upper``), a confidence of exactly 1.0 falls
outside the last bin: :func:`reliability` (and so ECE and the calibrators'
fitting points) leaves such predictions out. The paper's ECE uses 100 bins
(ECE_100); the study's calibrators are fitted on a 25-bin reliability curve.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from utils.calibration.confidence import as_labels, as_probs


def bin_edges(n_bins: int) -> np.ndarray:
    """Edges ``i / n_bins`` (i = 0..n_bins) of n equal bins on [0, 1], shape (n+1,)."""
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    n = int(n_bins)
    return np.arange(n + 1, dtype=np.float64) / n


def bin_index(conf: ArrayLike, n_bins: int) -> np.ndarray:
    """Bin of each confidence in [0, 1]: bin i holds [i/n, (i+1)/n), 1.0 goes to n-1."""
    c = np.asarray(conf, dtype=np.float64)
    if not np.all(np.isfinite(c)) or np.any(c < 0.0) or np.any(c > 1.0):
        raise ValueError("confidences must be finite and lie in [0, 1]")
    idx = np.searchsorted(bin_edges(n_bins), c, side="right") - 1
    return np.clip(idx, 0, int(n_bins) - 1)


@dataclass(frozen=True)
class Reliability:
    """Per-bin reliability statistics of n equal confidence bins.

    conf, acc: (n,) mean confidence and accuracy per bin (NaN where empty);
    count: (n,) int64 number of predictions per bin; edges: (n+1,) bin edges.
    """

    conf: np.ndarray
    acc: np.ndarray
    count: np.ndarray
    edges: np.ndarray

    @property
    def n_bins(self) -> int:
        return len(self.count)

    @property
    def nonempty(self) -> np.ndarray:
        """Boolean mask (n,) of bins with at least one prediction."""
        return self.count > 0


def _from_sums(conf_sum: np.ndarray, acc_sum: np.ndarray, count: np.ndarray) -> Reliability:
    n = len(count)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(count > 0, conf_sum / count, np.nan)
        acc = np.where(count > 0, acc_sum / count, np.nan)
    return Reliability(conf=conf, acc=acc, count=count.astype(np.int64), edges=bin_edges(n))


def reliability(
    conf: ArrayLike, correct: ArrayLike, n_bins: int = 10, mask: ArrayLike | None = None
) -> Reliability:
    """Reliability statistics of confidences (N,) and correctness (N,) in ``n_bins`` bins.

    Any shapes are accepted as long as ``conf`` and ``correct`` (and the optional
    boolean ``mask`` selecting the predictions to use) have the same shape. A
    confidence of exactly 1.0 is counted in no bin, as in the study (``conf < upper``).
    """
    c = np.asarray(conf, dtype=np.float64)
    ok = np.asarray(correct)
    if ok.shape != c.shape:
        raise ValueError(f"correct has shape {ok.shape}, confidences {c.shape}")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != c.shape:
            raise ValueError(f"mask has shape {m.shape}, confidences {c.shape}")
        c, ok = c[m], ok[m]
    c, ok = c.ravel(), ok.ravel().astype(np.float64)
    c, ok = c[c != 1.0], ok[c != 1.0]  # the study's ``conf < upper``: 1.0 is in no bin
    idx = bin_index(c, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=c, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=ok, minlength=n_bins)
    return _from_sums(conf_sum, acc_sum, count)


def pool_reliability(rels: Iterable[Reliability]) -> Reliability:
    """Combine reliability statistics (e.g. of several folds) by pooling counts.

    The result equals :func:`reliability` of the concatenated raw data (up to
    floating-point rounding). All inputs must use the same bins.
    """
    rels = list(rels)
    if not rels:
        raise ValueError("no reliability statistics to pool")
    edges = rels[0].edges
    for r in rels[1:]:
        if r.edges.shape != edges.shape or not np.array_equal(r.edges, edges):
            raise ValueError("cannot pool reliability statistics with different bins")
    count = np.sum([r.count for r in rels], axis=0)
    conf_sum = np.sum([np.where(r.count > 0, r.conf * r.count, 0.0) for r in rels], axis=0)
    acc_sum = np.sum([np.where(r.count > 0, r.acc * r.count, 0.0) for r in rels], axis=0)
    return _from_sums(conf_sum, acc_sum, count)


def classwise_reliability(
    probs: ArrayLike,
    labels: ArrayLike,
    cls: int,
    n_bins: int = 10,
    conf: ArrayLike | None = None,
) -> Reliability:
    """Reliability of the predictions whose arg-max class is ``cls``.

    probs (..., C), labels (...); ``conf`` (...) replaces the max probability
    (e.g. a calibrated confidence) when given.
    """
    p = as_probs(probs)
    if not 0 <= cls < p.shape[-1]:
        raise ValueError(f"class {cls} out of range 0..{p.shape[-1] - 1}")
    pred = p.argmax(axis=-1)
    c = p.max(axis=-1) if conf is None else np.asarray(conf, dtype=np.float64)
    return reliability(c, pred == as_labels(labels, p), n_bins, mask=pred == cls)


def ece(
    conf_or_rel: Reliability | ArrayLike, correct: ArrayLike | None = None, n_bins: int = 100
) -> float:
    """Expected calibration error ``sum count |conf - acc| / sum count`` over non-empty bins.

    Pass a :class:`Reliability` or confidences (N,) with correctness (N,); the
    default ``n_bins=100`` gives the paper's ECE_100. NaN when there is no data.
    """
    if isinstance(conf_or_rel, Reliability):
        if correct is not None:
            raise ValueError("pass either a Reliability or confidences with correctness")
        rel = conf_or_rel
    else:
        if correct is None:
            raise ValueError("correctness is required with raw confidences")
        rel = reliability(conf_or_rel, correct, n_bins)
    m = rel.nonempty
    total = rel.count[m].sum()
    if total == 0:
        return float("nan")
    return float(np.sum(rel.count[m] * np.abs(rel.conf[m] - rel.acc[m])) / total)


def classwise_ece(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 100, conf: ArrayLike | None = None
) -> np.ndarray:
    """ECE of each predicted class: probs (..., C), labels (...) -> (C,), NaN if never predicted."""
    p = as_probs(probs)
    return np.array(
        [ece(classwise_reliability(p, labels, k, n_bins, conf)) for k in range(p.shape[-1])]
    )

