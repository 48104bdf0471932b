"""The inference engines by name, with apply.py's defaults.

An engine is one function ``probs = engine(model, padded, rows, cols, batch_size)``
returning float32 class probabilities (n, 8) for the pixels ``(rows[i], cols[i])``
(coordinates in the *unpadded* frame; ``padded`` follows the contract of
:mod:`utils.inference.padding`). Engines may also accept a keyword ``progress``
(a callable receiving the number of pixels just finished) for progress bars.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from utils.inference.patch import DEFAULT_BATCH, patch_probs

#: Engine of apply.py: shared convolutions, the per-patch model's results
#: (utils.inference.dense; about 5x faster than "patch" on the demo scene, same classes).
DEFAULT_ENGINE = "dense"


def dense_exact_probs(model: Any, padded: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                      batch_size: int = DEFAULT_BATCH,
                      progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The ``dense`` engine: shared convolutions, the same results as ``patch``."""
    from utils.inference.dense import dense_probs

    return dense_probs(model, padded, rows, cols, exact=True, progress=progress)


def dense_approx_probs(model: Any, padded: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                       batch_size: int = DEFAULT_BATCH,
                       progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The ``dense-approx`` engine: scene-wide global max; fast, changes some labels."""
    from utils.inference.dense import dense_probs

    return dense_probs(model, padded, rows, cols, exact=False, progress=progress)


#: Engines selectable with ``apply.py --engine`` (same arguments; ``batch_size`` is
#: used by ``patch`` only). See docs/BENCHMARKS.md for their speed and agreement.
ENGINES: dict[str, Callable[..., np.ndarray]] = {
    "patch": patch_probs,
    "dense": dense_exact_probs,
    "dense-approx": dense_approx_probs,
}


def run_engine(
    engine: Callable[..., np.ndarray],
    model: Any,
    padded: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Call ``engine``; pass ``progress`` if it accepts it, else report all pixels at the end."""
    try:
        accepts = "progress" in inspect.signature(engine).parameters
    except (TypeError, ValueError):
        accepts = False
    if accepts:
        return engine(model, padded, rows, cols, batch_size, progress=progress)
    probs = engine(model, padded, rows, cols, batch_size)
    if progress is not None:
        progress(len(rows))
    return probs
