"""Classes and input features of the study, in its index and channel order.

Class indices (0..7) and feature channels (0..10) follow Maslov et al.; every
array in this project that has a class or feature axis uses these orders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: The 8 classes, index = class value in label arrays and output maps.
CLASSES: tuple[str, ...] = (
    "ice",
    "snow",
    "debris",
    "firn",
    "shadow",
    "refrozen-like",
    "water",
    "cloud",
)
N_CLASSES: int = len(CLASSES)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

#: Map colours (RGB, 0..255), one per class, in class order.
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "ice": (46, 117, 214),  # blue
    "snow": (255, 255, 255),  # white
    "debris": (133, 94, 56),  # brown
    "firn": (166, 216, 240),  # light blue
    "shadow": (64, 64, 64),  # dark grey
    "refrozen-like": (0, 220, 220),  # cyan
    "water": (8, 48, 107),  # dark blue
    "cloud": (200, 200, 200),  # light grey
}

#: Value of class maps where no class is given (outside glaciers, missing inputs).
CLASS_NODATA: int = -9999

#: Surface-facies classes: the only ones confident learning may prune.
FACIES_CLASSES: tuple[str, ...] = ("ice", "snow", "debris", "firn", "refrozen-like")
FACIES_INDICES: tuple[int, ...] = tuple(CLASS_INDEX[c] for c in FACIES_CLASSES)

#: Side of the study's square patches (pixels); the centre pixel is (16, 16).
PATCH_SIZE: int = 33
#: Pixels from the centre to the patch edge (16): the padding every engine needs.
HALF: int = PATCH_SIZE // 2

#: The 11 input features in channel order (H, W, C arrays use this C order).
FEATURES: tuple[str, ...] = (
    "blue",
    "green",
    "red",
    "nir",
    "swir1",
    "swir2",
    "elevation",
    "slope",
    "shadow_mask",
    "hillshade",
    "proximity",
)
N_FEATURES: int = len(FEATURES)
OPTICAL: tuple[str, ...] = FEATURES[:6]

#: The study's named feature groups -> channel indices.
FEATURE_GROUPS: dict[str, tuple[int, ...]] = {
    "optical": tuple(range(6)),
    "elevation": (6,),
    "slope": (7,),
    "shadow_mask": (8,),
    "hillshade": (9,),
    "proximity": (10,),
}

#: The study's four experimental feature sets (its weights/1 .. weights/4).
FEATURE_SETS: dict[int, tuple[str, ...]] = {
    1: ("optical",),
    2: ("optical", "elevation", "slope"),
    3: ("optical", "elevation", "slope", "shadow_mask", "hillshade"),
    4: ("optical", "elevation", "slope", "shadow_mask", "hillshade", "proximity"),
}
ALL_GROUPS: tuple[str, ...] = FEATURE_SETS[4]

#: The study's cross-validation folds are 0 .. N_FOLDS - 1 (a patch name's first field).
N_FOLDS: int = 6

#: The two training stages of each fold's model: before and after confident learning.
STAGES: tuple[str, ...] = ("beforeconfidentlearning", "afterconfidentlearning")


def model_name(fold: int, stage: str) -> str:
    """The study's name of a fold's model, e.g. ``0_cnn_afterconfidentlearning``; its
    weights are ``{name}_weights.h5`` (:func:`weights_file`), its log ``{name}_log.csv``."""
    return f"{fold}_cnn_{stage}"


def weights_file(name: str) -> str:
    """File name of a model's weights: ``{name}_weights.h5``."""
    return f"{name}_weights.h5"


def log_file(name: str) -> str:
    """File name of a model's training log: ``{name}_log.csv``."""
    return f"{name}_log.csv"


def feature_indices(groups: Iterable[str] = ALL_GROUPS) -> list[int]:
    """Channel indices (sorted, unique) for a list of group or feature names.

    Accepts the study's group names (``optical``, ``elevation``, ...) and the
    single optical band names (``blue`` ... ``swir2``).
    """
    if isinstance(groups, str):
        groups = [groups]
    idx: set[int] = set()
    for name in groups:
        if name in FEATURE_GROUPS:
            idx.update(FEATURE_GROUPS[name])
        elif name in FEATURES:
            idx.add(FEATURES.index(name))
        else:
            known = ", ".join(list(FEATURE_GROUPS) + list(OPTICAL))
            raise ValueError(f"unknown feature {name!r}; known: {known}")
    return sorted(idx)


def groups_for_count(n_features: int) -> tuple[str, ...]:
    """The study's feature set with ``n_features`` channels (6, 8, 10 or 11)."""
    for groups in FEATURE_SETS.values():
        if len(feature_indices(groups)) == n_features:
            return groups
    sizes = ", ".join(str(len(feature_indices(g))) for g in FEATURE_SETS.values())
    raise ValueError(f"no study feature set has {n_features} features (the study's: {sizes})")


def feature_names(indices: Sequence[int]) -> list[str]:
    """Feature names for channel indices."""
    return [FEATURES[i] for i in indices]
