"""Labelled points of the demo data: stratified sampling and planted label flips.

Points lie on (and some around) each glacier, stratified by class
(:data:`CLASS_WEIGHTS`, :data:`OFF_GLACIER`); then 10-15 % of the facies labels
are flipped among plausible confusions (:data:`CONFUSIONS`), as the study's
manual labels are noisy.
"""

from __future__ import annotations

import numpy as np

from utils.demo.acquisition import Acquisition
from utils.demo.world import HALF, Glacier, Scene
from utils.study import CLASS_INDEX, CLASSES, FACIES_CLASSES

NOISE_RATE = 0.12  # fraction of facies labels flipped

#: Plausible label confusions: true class -> (given classes, probabilities).
CONFUSIONS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "ice": (("firn", "refrozen-like", "debris"), (0.4, 0.35, 0.25)),
    "snow": (("firn",), (1.0,)),
    "firn": (("snow", "ice"), (0.6, 0.4)),
    "refrozen-like": (("ice",), (1.0,)),
    "debris": (("ice",), (1.0,)),
}

#: Share of each class among the points of one glacier and date (renormalised
#: over the classes present), and the share of those taken off the glacier.
CLASS_WEIGHTS = {
    "ice": 0.20,
    "snow": 0.19,
    "debris": 0.13,
    "firn": 0.13,
    "shadow": 0.09,
    "refrozen-like": 0.09,
    "water": 0.07,
    "cloud": 0.10,
}
OFF_GLACIER = {"snow": 0.1, "debris": 0.35, "shadow": 0.35, "water": 0.6, "cloud": 0.5}


def sample_points(scene: Scene, acq: Acquisition, glacier: Glacier, catchment: np.ndarray,
                  blocked: np.ndarray, n_points: int,
                  rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Stratified random points (row, col, true class index) for one glacier and date.

    About ``n_points`` points, on the glacier and within ``catchment`` (bool (H, W))
    off it, where one class covers >= 60 % of the pixel and a whole patch fits;
    each point blocks a 5 x 5 pixel neighbourhood in ``blocked`` (bool (H, W),
    updated in place) so points stay apart across glaciers.
    """
    n = scene.n
    ok = np.zeros((n, n), dtype=bool)
    ok[HALF : n - HALF, HALF : n - HALF] = True
    ok &= catchment & (acq.purity >= 0.6) & ~blocked
    on = ok & glacier.mask
    off = ok & ~(scene.labels > 0)
    avail = {}
    for name in CLASSES:
        k = CLASS_INDEX[name]
        is_k = acq.truth == k
        avail[name] = (np.flatnonzero(on & is_k), np.flatnonzero(off & is_k))
    present = [c for c in CLASSES if avail[c][0].size + avail[c][1].size >= 3]
    total_w = sum(CLASS_WEIGHTS[c] for c in present)
    points = []
    for name in present:
        want = max(1, int(round(n_points * CLASS_WEIGHTS[name] / total_w)))
        n_off = int(round(want * OFF_GLACIER.get(name, 0.0)))
        cand_on, cand_off = avail[name]
        if cand_off.size == 0:
            n_off = 0
        if cand_on.size == 0:
            n_off = want
        for cand, count in ((cand_off, n_off), (cand_on, want - n_off)):
            taken = 0
            for idx in rng.permutation(cand):
                if taken >= count:
                    break
                r, c = divmod(int(idx), n)
                if blocked[r, c]:
                    continue
                blocked[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3] = True
                points.append((r, c, CLASS_INDEX[name]))
                taken += 1
    points.sort()
    return points


def flip_labels(true_idx: list[int], rng: np.random.Generator, rate: float) -> list[int]:
    """Given (noisy) class indices: ``rate`` of the facies labels flipped by CONFUSIONS."""
    given = list(true_idx)
    facies = [i for i, k in enumerate(true_idx) if CLASSES[k] in FACIES_CLASSES]
    n_flip = int(round(rate * len(facies)))
    for i in sorted(rng.choice(facies, size=n_flip, replace=False).tolist()) if n_flip else []:
        targets, probs = CONFUSIONS[CLASSES[true_idx[i]]]
        given[i] = CLASS_INDEX[targets[int(rng.choice(len(targets), p=probs))]]
    return given

