"""Confident learning: find and prune ambiguous facies labels (cleanlab)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.study import CLASSES, FACIES_INDICES


def find_label_issues(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    files: np.ndarray | None = None,
    prunable: tuple[int, ...] = FACIES_INDICES,
) -> pd.DataFrame:
    """Label issues found by confident learning, restricted to ``prunable`` classes.

    ``labels`` (N,) given class indices, ``pred_probs`` (N, 8) out-of-fold
    probabilities. Calls ``cleanlab.filter.find_label_issues`` with
    ``filter_by="confident_learning"`` ranked by self-confidence (the study's
    call), then keeps only issues whose *given* label is a facies class (shadow,
    water and cloud labels are never pruned). Returns one row per issue, most
    suspicious first: index, file, given, predicted, self_confidence, rank (1-based).
    """
    from cleanlab.filter import find_label_issues as cl_find

    labels = np.asarray(labels, dtype=int)
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    if pred_probs.shape != (len(labels), len(CLASSES)) or not np.all(np.isfinite(pred_probs)):
        raise ValueError(
            f"pred_probs must be finite with shape ({len(labels)}, {len(CLASSES)}), "
            f"got {pred_probs.shape}"
        )
    ranked = cl_find(labels, pred_probs, filter_by="confident_learning",
                     return_indices_ranked_by="self_confidence")
    ranked = np.asarray(ranked, dtype=int)
    ranked = ranked[np.isin(labels[ranked], prunable)]
    return pd.DataFrame({
        "index": ranked,
        "file": (np.asarray(files)[ranked] if files is not None else ranked.astype(str)),
        "given": [CLASSES[i] for i in labels[ranked]],
        "predicted": [CLASSES[i] for i in pred_probs[ranked].argmax(axis=1)],
        "self_confidence": pred_probs[ranked, labels[ranked]],
        "rank": np.arange(1, len(ranked) + 1),
    })


def pruned_per_class(issues: pd.DataFrame) -> pd.Series:
    """Number of pruned labels per given class (all 8 classes, in class order)."""
    return issues["given"].value_counts().reindex(list(CLASSES), fill_value=0)


def score_against_planted(issues: pd.DataFrame, planted_files: set[str]) -> dict[str, float]:
    """Precision and recall of the pruned files against deliberately flipped ones."""
    found = set(issues["file"])
    hits = len(found & set(planted_files))
    return {
        "n_pruned": len(found),
        "n_planted": len(planted_files),
        "precision": hits / len(found) if found else float("nan"),
        "recall": hits / len(planted_files) if planted_files else float("nan"),
    }
