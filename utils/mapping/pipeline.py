"""Map a whole scene: the work behind ``apply.py`` (see its module docstring).

Resolves the weights, checks that the inputs give the features the model needs,
classifies every glacier pixel block by block, smooths, and writes the class map,
the confidence map, a quicklook and per-glacier statistics.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from utils.inference.patch import ENGINES, confidence, run_engine
from utils.mapping.glacier_stats import glacier_stats, write_stats_csv
from utils.mapping.outputs import (
    CLASS_NODATA,
    aux_xml_path,
    qml_path,
    write_class_map,
    write_float_map,
)
from utils.mapping.smoothing import mode_filter_3x3
from utils.normalisation import HOW_TO_MAKE, StatsError, load_stats
from utils.scene.features import (
    FeaturePlan,
    SceneError,
    SceneFeatures,
    SceneRasters,
    atomic_file,
    blocks,
    check_output,
    glacier_mask,
    read_outlines,
)
from utils.study import CLASSES, feature_indices, feature_names, groups_for_count

PROG = "apply.py"
DEFAULT_BATCH = 256
DEFAULT_BLOCK_ROWS = 256
#: Inference engine of apply.py: shared convolutions, the per-patch model's results
#: (utils.inference.dense; about 5x faster than "patch" on the demo scene, same classes).
DEFAULT_ENGINE = "dense"
#: GDAL block cache while mapping (bytes), unless GDAL_CACHEMAX is set.
GDAL_CACHE_BYTES = 256 * 2**20
#: Command-line flag of each feature raster.
FLAGS: dict[str, str] = {
    "elevation": "--dem_path",
    "slope": "--slope_path",
    "shadow_mask": "--shadow_path",
    "hillshade": "--hillshade_path",
    "proximity": "--proximity_path",
}


def to_stderr(msg: str) -> None:
    """Print a progress or status line for the user (stderr)."""
    print(f"{PROG}: {msg}", file=sys.stderr)


# ----------------------------------------------------------------------------- inputs


def resolve_weights(model_name: str, weights_dir: str | os.PathLike = "weights") -> Path:
    """MODEL_NAME -> weights: a path to an ``.h5``, else ``{weights_dir}/{NAME}_weights.h5``."""
    p = Path(model_name)
    if p.suffix == ".h5" or p.is_file():
        path = p
    else:
        path = Path(weights_dir) / f"{model_name}_weights.h5"
    if path.is_file():
        return path
    hint = ""
    folder = Path(weights_dir)
    if folder.is_dir():
        names = sorted(f.name[: -len("_weights.h5")] for f in folder.glob("*_weights.h5"))
        hint = f"; available in {folder}: {', '.join(names[:12]) or 'none'}"
    raise SceneError(
        f"{path}: weights file not found (MODEL_NAME is a name resolved to "
        f"{folder}/NAME_weights.h5, or a path to an .h5 file){hint}"
    )


def plan_features(
    n_features: int,
    weights: Path,
    given: dict[str, Any],
    derive: bool = False,
    sun_azimuth: float | None = None,
    sun_elevation: float | None = None,
) -> FeaturePlan:
    """Check that the inputs provide what a model with ``n_features`` inputs needs.

    ``given`` maps feature names (elevation = DEM) to paths or None. Returns the
    plan (features in :data:`FEATURES` order, which to derive); raises SceneError
    naming the weights file, the features it expects and the flags to pass.
    """
    try:
        groups = groups_for_count(n_features)
    except ValueError:
        raise SceneError(
            f"{weights}: the model has {n_features} input features; the study's feature "
            "sets have 6, 8, 10 or 11"
        ) from None
    needed = feature_names(feature_indices(groups))
    expect = f"the model expects {n_features} features ({', '.join(needed)})"
    unused = [FLAGS[f] for f in ("slope", "shadow_mask", "hillshade", "proximity")
              if given.get(f) and f not in needed]
    if unused:
        raise SceneError(
            f"{weights}: {expect}, but {', '.join(unused)} {'is' if len(unused) == 1 else 'are'}"
            " given: use the weights of a model with those features, or leave "
            f"{'it' if len(unused) == 1 else 'them'} out"
        )
    if "elevation" in needed and not given.get("elevation"):
        raise SceneError(f"{weights}: {expect}: elevation needs --dem_path (DEM in metres)")
    derived: set[str] = set()
    if "slope" in needed and not given.get("slope"):
        if not derive:
            raise SceneError(
                f"{weights}: {expect}: slope needs --slope_path, or --derive_features "
                "(computed from --dem_path)"
            )
        derived.add("slope")
    if "shadow_mask" in needed:
        has_s, has_h = bool(given.get("shadow_mask")), bool(given.get("hillshade"))
        if not derive and has_s != has_h:
            missing = "--hillshade_path" if has_s else "--shadow_path"
            raise SceneError(
                f"{weights}: {expect}: --shadow_path and --hillshade_path must be given "
                f"together (both come from the sun position); {missing} is missing (or "
                "pass --derive_features with --sun_azimuth and --sun_elevation)"
            )
        if not derive and not has_s:
            raise SceneError(
                f"{weights}: {expect}: shadow_mask and hillshade need --shadow_path and "
                "--hillshade_path, or --derive_features with --dem_path, --sun_azimuth "
                "and --sun_elevation"
            )
        derived |= {f for f, has in (("shadow_mask", has_s), ("hillshade", has_h)) if not has}
        if derived & {"shadow_mask", "hillshade"} and (sun_azimuth is None
                                                       or sun_elevation is None):
            raise SceneError(
                f"{weights}: {expect}: deriving "
                f"{' and '.join(sorted(derived & {'shadow_mask', 'hillshade'}))} needs "
                "--sun_azimuth and --sun_elevation (degrees, from the scene metadata)"
            )
    if "proximity" in needed and not given.get("proximity"):
        if not derive:
            raise SceneError(
                f"{weights}: {expect}: proximity needs --proximity_path, or "
                "--derive_features (distance to the outlines)"
            )
        derived.add("proximity")
    return FeaturePlan(needed, derived, sun_azimuth, sun_elevation)


# ----------------------------------------------------------------------------- outputs


def save_quicklook(classes: np.ndarray, grid: Any, path: str | os.PathLike, overwrite: bool,
                   title: str = "", max_px: int = 1600) -> Path:
    """PNG colour map of a class map (H, W) with a class legend (km² per class).

    Maps larger than ``max_px`` are reduced by a power-of-two mode filter
    (``raster_io.class_overviews``). Written via a temporary file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from utils.mapping.glacier_stats import pixel_areas_m2
    from utils.mapping.outputs import class_overviews
    from utils.plots import class_rgb

    h, w = classes.shape
    f = 1
    while max(h, w) / f > max_px:
        f *= 2
    small = classes if f == 1 else class_overviews(
        classes, [2**k for k in range(1, f.bit_length())])[-1]
    rgba = np.zeros(small.shape + (4,), dtype=np.float32)
    for i, name in enumerate(CLASSES):
        rgba[small == i] = (*class_rgb(name), 1.0)
    left, bottom, right, top = grid.bounds
    areas = pixel_areas_m2(grid.crs, grid.transform, np.arange(h))
    counts = [float(areas[np.nonzero(classes == i)[0]].sum()) / 1e6 for i in range(len(CLASSES))]
    fig, ax = plt.subplots(figsize=(8, 8 * min(2.0, max(0.3, h / w))))
    ax.set_facecolor("#f4f4f4")
    ax.imshow(rgba, extent=(left, right, bottom, top), interpolation="nearest")
    unit = grid.crs.linear_units if grid.crs.is_projected else "degrees"
    ax.set_xlabel(f"x ({unit}, {grid.crs.to_string()})")
    ax.set_ylabel(f"y ({unit})")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_title(title, fontsize=9)
    handles = [Patch(facecolor=class_rgb(n), edgecolor="black", linewidth=0.5,
                     label=f"{n} ({counts[i]:.3g} km²)") for i, n in enumerate(CLASSES)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8,
              frameon=False, title="class")
    fig.tight_layout()
    try:
        with atomic_file(path, overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path).absolute()


def _remove_outputs(paths: Sequence[Path]) -> None:
    """Delete outputs written by a failed run (with raster sidecars)."""
    for p in paths:
        for q in (p, aux_xml_path(p), qml_path(p)):
            with contextlib.suppress(OSError):
                if q.is_file():
                    q.unlink()


# ----------------------------------------------------------------------------- main work


def map_scene(
    model_name: str,
    raster: str | os.PathLike,
    output: str | os.PathLike,
    outlines: str | os.PathLike,
    stats: str | os.PathLike | None,
    *,
    weights_dir: str | os.PathLike = "weights",
    dem_path: str | os.PathLike | None = None,
    slope_path: str | os.PathLike | None = None,
    shadow_path: str | os.PathLike | None = None,
    hillshade_path: str | os.PathLike | None = None,
    proximity_path: str | os.PathLike | None = None,
    confidence_path: str | os.PathLike | None = None,
    calibration_model: str | os.PathLike | None = None,
    smoothing: bool = True,
    derive_features: bool = False,
    sun_azimuth: float | None = None,
    sun_elevation: float | None = None,
    batch_size: int = DEFAULT_BATCH,
    overwrite: bool = False,
    quicklook: str | os.PathLike | None = None,
    stats_csv: str | os.PathLike | None = None,
    resample: bool = False,
    engine: str | Callable[..., np.ndarray] = DEFAULT_ENGINE,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    progress: bool = True,
    log: Callable[[str], None] = to_stderr,
) -> dict[str, Any]:
    """Classify the glacier pixels of a scene and write the outputs (see the module doc).

    Returns a summary: pixel counts, seconds, output paths. Raises
    :class:`utils.scene.features.SceneError` (and StatsError, WeightsError,
    CalibrationError) for input problems, before writing anything; outputs of a
    run that fails later are removed.

    GDAL's block cache is limited to ``GDAL_CACHEMAX`` (environment; default here
    256 MB instead of GDAL's 5 % of RAM): every block is read once, and the cache
    would otherwise dominate the memory of large scenes.
    """
    import rasterio

    kwargs = {k: v for k, v in locals().items() if k != "rasterio"}
    if "GDAL_CACHEMAX" in os.environ:  # the user's choice
        return _map_scene(**kwargs)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        return _map_scene(**kwargs)


def _map_scene(
    model_name: str,
    raster: str | os.PathLike,
    output: str | os.PathLike,
    outlines: str | os.PathLike,
    stats: str | os.PathLike | None,
    *,
    weights_dir: str | os.PathLike,
    dem_path: str | os.PathLike | None,
    slope_path: str | os.PathLike | None,
    shadow_path: str | os.PathLike | None,
    hillshade_path: str | os.PathLike | None,
    proximity_path: str | os.PathLike | None,
    confidence_path: str | os.PathLike | None,
    calibration_model: str | os.PathLike | None,
    smoothing: bool,
    derive_features: bool,
    sun_azimuth: float | None,
    sun_elevation: float | None,
    batch_size: int,
    overwrite: bool,
    quicklook: str | os.PathLike | None,
    stats_csv: str | os.PathLike | None,
    resample: bool,
    engine: str | Callable[..., np.ndarray],
    block_rows: int,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """:func:`map_scene` inside its GDAL environment."""
    from tqdm import tqdm

    t_start = time.perf_counter()
    inputs = [raster, outlines, dem_path, slope_path, shadow_path, hillshade_path,
              proximity_path, stats, calibration_model]
    outs = {"OUTPUT": output, "--confidence_path": confidence_path,
            "--quicklook": quicklook, "--stats_csv": stats_csv}
    targets: dict[str, Path] = {}
    for what, p in outs.items():
        if p is None:
            continue
        t = check_output(p, overwrite, what, inputs)
        if t in targets.values():
            raise SceneError(f"{p}: {what} is the same file as another output")
        targets[what] = t
    if stats is None:
        raise StatsError(f"--stats is required (normalisation statistics): {HOW_TO_MAKE}")
    norm = load_stats(stats)
    weights = resolve_weights(model_name, weights_dir)
    if isinstance(engine, str):
        if engine not in ENGINES:
            raise SceneError(f"unknown engine {engine!r}; available: {', '.join(ENGINES)}")
        engine_fn = ENGINES[engine]
    else:
        engine_fn = engine
    calibrator = None
    if calibration_model is not None:
        from utils.calibration.core import load_calibrator

        calibrator = load_calibrator(calibration_model)
    given = {"elevation": dem_path, "slope": slope_path, "shadow_mask": shadow_path,
             "hillshade": hillshade_path, "proximity": proximity_path}

    with SceneRasters(raster, given, resample=resample) as rasters:
        grid = rasters.grid
        for name in rasters.resampled:
            log(f"{rasters.paths[name]}: warped onto the scene grid")
        outl = read_outlines(outlines, grid.crs)
        for note in outl.notes:
            log(note)
        mask = glacier_mask(outl, grid, raster)

        from utils.model import input_features, load_model

        model = load_model(weights)
        n_out = int(model.outputs[0].shape[-1])
        if n_out != len(CLASSES):
            raise SceneError(f"{weights}: the model has {n_out} classes, expected {len(CLASSES)}")
        plan = plan_features(input_features(model), weights, given, derive_features,
                             sun_azimuth, sun_elevation)
        if derive_features and not plan.derive:
            log(f"--derive_features: nothing to derive for {weights.name} "
                f"({', '.join(plan.features)})")
        scene = SceneFeatures(rasters, mask, plan, norm)
        with tqdm(total=grid.height, unit="row", desc="scanning", disable=not progress,
                  leave=False) as bar:
            scene.prepare(progress=bar.update)

        h, w = grid.shape
        n_glacier = int(np.count_nonzero(mask))
        classes = np.full((h, w), CLASS_NODATA, dtype=np.int16)
        want_conf = confidence_path is not None or stats_csv is not None
        conf_map = np.full((h, w), np.nan, dtype=np.float32) if want_conf else None
        n_done = 0
        t_engine = 0.0
        with tqdm(total=n_glacier, unit="px", desc="classifying glacier pixels",
                  disable=not progress, smoothing=0.1) as bar:
            for r0, r1 in blocks(mask, block_rows):
                padded, valid = scene.block(r0, r1)
                rr, cc = np.nonzero(valid)
                bar.update(int(np.count_nonzero(mask[r0:r1])) - rr.size)  # not classifiable
                if rr.size:
                    t0 = time.perf_counter()
                    probs = run_engine(engine_fn, model, padded, rr, cc, batch_size,
                                       progress=bar.update)
                    t_engine += time.perf_counter() - t0
                    classes[r0 + rr, cc] = np.argmax(probs, axis=1).astype(np.int16)
                    if conf_map is not None:
                        conf_map[r0 + rr, cc] = confidence(probs, calibrator)
                    n_done += rr.size
                del padded
        scene = mask = None  # free the scene-sized mask and proximity values
        if n_done == 0:
            raise SceneError(
                f"{raster}: no glacier pixel has valid values in all inputs "
                f"({', '.join(plan.features)}); nothing to classify"
            )
        if smoothing:
            classes = mode_filter_3x3(classes, nodata=CLASS_NODATA)

        table = None
        if stats_csv is not None:
            dem_reader = ((lambda win: rasters.read_window("elevation", win))
                          if "elevation" in rasters.sources else None)
            table = glacier_stats(classes, outl.gdf, grid.transform, grid.crs, dem=dem_reader,
                                  confidence=conf_map)

        written: list[Path] = []  # only what this run published (each write is atomic)
        try:
            write_class_map(output, classes, grid.crs, grid.transform, overwrite=overwrite)
            written.append(targets["OUTPUT"])
            if quicklook is not None:
                save_quicklook(classes, grid, quicklook, overwrite,
                               title=f"{Path(raster).name}: {weights.name}")
                written.append(targets["--quicklook"])
            classes = None  # written: free it before the confidence map is copied
            if confidence_path is not None:
                write_float_map(confidence_path, conf_map, grid.crs, grid.transform,
                                overwrite=overwrite,
                                description="calibrated confidence" if calibrator else
                                "confidence (max probability)")
                written.append(targets["--confidence_path"])
            if table is not None:
                write_stats_csv(table, stats_csv, overwrite=overwrite)
                written.append(targets["--stats_csv"])
        except BaseException:
            _remove_outputs(written)
            raise
    seconds = time.perf_counter() - t_start
    return {
        "weights": str(weights),
        "features": plan.features,
        "derived": sorted(plan.derive),
        "glacier_px": n_glacier,
        "classified_px": n_done,
        "seconds": seconds,
        "engine_seconds": t_engine,
        "outputs": [str(p) for p in written],
    }


# ----------------------------------------------------------------------------- CLI
