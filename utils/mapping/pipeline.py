"""Map a whole scene: the work behind ``apply.py``.

:class:`MapRequest` says what to map with which inputs; :func:`map_scene` resolves
the weights, checks that the inputs give the features the model needs (before any
work), classifies every glacier pixel block by block, smooths, and writes the class
map, the confidence map, a quicklook and per-glacier statistics.

Errors about the inputs are :class:`utils.errors.InputError` subclasses whose
messages name the file and the problem; where a request field can fix it, the
error's ``options`` name that field (a command line says it as its flag).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from utils.calibration import calibrated_confidence, load_calibrator
from utils.errors import SceneError, StatsError
from utils.files import check_output, sigterm_cleans_up
from utils.inference.engines import DEFAULT_ENGINE, ENGINES, run_engine
from utils.inference.patch import DEFAULT_BATCH
from utils.mapping.glacier_stats import glacier_stats, write_stats_csv
from utils.mapping.outputs import (
    CLASS_NODATA,
    remove_outputs,
    save_quicklook,
    write_class_map,
    write_float_map,
)
from utils.mapping.smoothing import mode_filter_3x3
from utils.normalisation import HOW_TO_MAKE, load_stats
from utils.products import open_as_stack
from utils.scene.features import FeaturePlan, SceneFeatures, blocks
from utils.scene.outlines import glacier_mask, read_outlines
from utils.scene.raster import SceneRasters
from utils.study import (
    CLASSES,
    feature_indices,
    feature_names,
    groups_for_count,
    weights_file,
)

#: Scene rows classified at a time (memory ~ rows x width x features x 16 bytes).
DEFAULT_BLOCK_ROWS = 256
#: GDAL block cache while mapping (bytes), unless GDAL_CACHEMAX is set.
GDAL_CACHE_BYTES = 256 * 2**20
#: Request field of each feature raster, by feature name (elevation = the DEM).
INPUT_FIELDS: dict[str, str] = {
    "elevation": "dem_path",
    "slope": "slope_path",
    "shadow_mask": "shadow_path",
    "hillshade": "hillshade_path",
    "proximity": "proximity_path",
}

_LOG = logging.getLogger(__name__)

PathLike = str | os.PathLike


@dataclass
class MapRequest:
    """What to map: the study's four inputs plus options (paths, degrees, pixels).

    ``model_name`` is ``{weights_dir}/{model_name}_weights.h5`` or a path to an
    ``.h5``; ``raster`` the 6-band scene (its grid is the output grid); ``output``
    the class map; ``outlines`` the glacier polygons; ``stats`` the normalisation
    statistics. Feature rasters are single-band on the scene grid (or ``resample``);
    ``derive_features`` computes the missing ones from the DEM, the sun position
    (``sun_azimuth`` clockwise from north, ``sun_elevation`` above the horizon) and
    the outlines. ``engine`` is a name of :data:`utils.inference.engines.ENGINES`
    or an engine function.
    """

    model_name: str
    raster: PathLike
    output: PathLike
    outlines: PathLike
    stats: PathLike | None = None
    weights_dir: PathLike = "weights"
    dem_path: PathLike | None = None
    slope_path: PathLike | None = None
    shadow_path: PathLike | None = None
    hillshade_path: PathLike | None = None
    proximity_path: PathLike | None = None
    confidence_path: PathLike | None = None
    calibration_model: PathLike | None = None
    quicklook: PathLike | None = None
    stats_csv: PathLike | None = None
    smoothing: bool = True
    derive_features: bool = False
    sun_azimuth: float | None = None
    sun_elevation: float | None = None
    resample: bool = False
    overwrite: bool = False
    engine: str | Callable[..., np.ndarray] = DEFAULT_ENGINE
    batch_size: int = DEFAULT_BATCH
    block_rows: int = DEFAULT_BLOCK_ROWS

    def given(self) -> dict[str, PathLike | None]:
        """Feature rasters by feature name (elevation = the DEM); None when not given."""
        return {f: getattr(self, field) for f, field in INPUT_FIELDS.items()}

    def inputs(self) -> list[PathLike | None]:
        """Every input file (outputs must not overwrite one)."""
        return [self.raster, self.outlines, self.stats, self.calibration_model,
                *self.given().values()]

    def outputs(self) -> dict[str, PathLike]:
        """Requested outputs by role (``OUTPUT`` is the class map)."""
        outs = {"OUTPUT": self.output, "confidence_path": self.confidence_path,
                "quicklook": self.quicklook, "stats_csv": self.stats_csv}
        return {k: v for k, v in outs.items() if v is not None}


# ----------------------------------------------------------------------------- inputs


def resolve_weights(model_name: str, weights_dir: str | os.PathLike = "weights") -> Path:
    """MODEL_NAME -> weights: a path to an ``.h5``, else ``{weights_dir}/{NAME}_weights.h5``."""
    p = Path(model_name)
    if p.suffix == ".h5" or p.is_file():
        path = p
    else:
        path = Path(weights_dir) / weights_file(model_name)
    if path.is_file():
        return path
    hint = ""
    folder = Path(weights_dir)
    if folder.is_dir():
        suffix = weights_file("")
        names = sorted(f.name[: -len(suffix)] for f in folder.glob(f"*{suffix}"))
        hint = f"; available in {folder}: {', '.join(names[:12]) or 'none'}"
    raise SceneError(
        f"{path}: weights file not found (MODEL_NAME is a name resolved to "
        f"{folder}/NAME_weights.h5, or a path to an .h5 file){hint}"
    ).about("weights_dir")


def _request_error(message: str) -> SceneError:
    """A SceneError whose ``options`` are the request fields its message names."""
    fields = [f for f in MapRequest.__dataclass_fields__
              if f not in ("model_name", "raster", "output", "outlines")
              and re.search(rf"(?<![\w-]){f}(?![\w-])", message)]
    return SceneError(message).about(*fields)


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
    plan (features in :data:`utils.study.FEATURES` order, which to derive); raises
    SceneError naming the weights file, the features it expects and the request
    fields that would provide them.
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
    unused = [INPUT_FIELDS[f] for f in ("slope", "shadow_mask", "hillshade", "proximity")
              if given.get(f) and f not in needed]
    if unused:
        raise _request_error(
            f"{weights}: {expect}, but {', '.join(unused)} {'is' if len(unused) == 1 else 'are'}"
            " given: use the weights of a model with those features, or leave "
            f"{'it' if len(unused) == 1 else 'them'} out"
        )
    if "elevation" in needed and not given.get("elevation"):
        raise _request_error(f"{weights}: {expect}: elevation needs dem_path (DEM in metres)")
    derived: set[str] = set()
    if "slope" in needed and not given.get("slope"):
        if not derive:
            raise _request_error(
                f"{weights}: {expect}: slope needs slope_path, or derive_features "
                "(computed from dem_path)"
            )
        derived.add("slope")
    if "shadow_mask" in needed:
        has_s, has_h = bool(given.get("shadow_mask")), bool(given.get("hillshade"))
        if not derive and has_s != has_h:
            missing = "hillshade_path" if has_s else "shadow_path"
            raise _request_error(
                f"{weights}: {expect}: shadow_path and hillshade_path must be given "
                f"together (both come from the sun position); {missing} is missing (or "
                "pass derive_features with sun_azimuth and sun_elevation)"
            )
        if not derive and not has_s:
            raise _request_error(
                f"{weights}: {expect}: shadow_mask and hillshade need shadow_path and "
                "hillshade_path, or derive_features with dem_path, sun_azimuth "
                "and sun_elevation"
            )
        derived |= {f for f, has in (("shadow_mask", has_s), ("hillshade", has_h)) if not has}
        sun_derived = derived & {"shadow_mask", "hillshade"}
        if sun_derived and (sun_azimuth is None or sun_elevation is None):
            raise _request_error(
                f"{weights}: {expect}: deriving {' and '.join(sorted(sun_derived))} needs "
                "sun_azimuth and sun_elevation (degrees, from the scene metadata)"
            )
        if sun_derived and not 0 < sun_elevation <= 90:
            raise _request_error(
                f"sun_elevation {sun_elevation:g} degrees is not above the horizon (0..90): "
                "with the sun below it every pixel is in shadow; give the sun elevation of "
                "the scene's acquisition (scene metadata)"
            )
    if "proximity" in needed and not given.get("proximity"):
        if not derive:
            raise _request_error(
                f"{weights}: {expect}: proximity needs proximity_path, or "
                "derive_features (distance to the outlines)"
            )
        derived.add("proximity")
    return FeaturePlan(needed, derived, sun_azimuth, sun_elevation)


# ----------------------------------------------------------------------------- main work


def map_scene(request: MapRequest, progress: bool = True,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Classify the glacier pixels of a scene and write the outputs (see the module doc).

    ``progress`` shows progress bars (tqdm); ``log`` receives status lines (default:
    this module's logger). Returns a summary: pixel counts, seconds, output paths.
    Raises :class:`utils.errors.InputError` subclasses for input problems, before
    writing anything; outputs of a run that fails later (an error, Ctrl-C, SIGTERM)
    are removed.

    GDAL's block cache is limited to ``GDAL_CACHEMAX`` (environment; default here
    256 MB instead of GDAL's 5 % of RAM): every block is read once, and the cache
    would otherwise dominate the memory of large scenes.
    """
    import rasterio

    log = log or _LOG.warning
    if "GDAL_CACHEMAX" in os.environ:  # the user's choice
        return _map_scene(request, progress, log)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        return _map_scene(request, progress, log)


def _check_request(req: MapRequest) -> dict[str, Path]:
    """Checks that need no file read; returns the absolute output paths by role."""
    targets: dict[str, Path] = {}
    for what, p in req.outputs().items():
        t = check_output(p, req.overwrite, what, req.inputs())
        if t in targets.values():
            raise SceneError(f"{p}: {what} is the same file as another output")
        targets[what] = t
    if req.stats is None:
        raise StatsError(f"stats is required (normalisation statistics): {HOW_TO_MAKE}"
                         ).about("stats")
    if isinstance(req.engine, str) and req.engine not in ENGINES:
        raise SceneError(f"unknown engine {req.engine!r}; available: {', '.join(ENGINES)}"
                         ).about("engine")
    return targets


def _map_scene(req: MapRequest, progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """:func:`map_scene` inside its GDAL environment."""
    from tqdm import tqdm

    t_start = time.perf_counter()
    targets = _check_request(req)
    norm = load_stats(req.stats)
    weights = resolve_weights(req.model_name, req.weights_dir)
    engine_fn = ENGINES[req.engine] if isinstance(req.engine, str) else req.engine
    calibrator = None
    if req.calibration_model is not None:
        calibrator = load_calibrator(req.calibration_model)
        if req.confidence_path is None and req.stats_csv is None:
            log(f"{req.calibration_model}: the calibrator is unused: it calibrates the "
                "confidence map and the statistics CSV's mean confidence, and neither is asked")
    given = req.given()
    raster, smoothing = req.raster, req.smoothing
    confidence_path, stats_csv = req.confidence_path, req.stats_csv

    # a product (SAFE, MTL, STAC item) is stacked into a temporary GeoTIFF; its sun is used
    with open_as_stack(raster, progress) as (stacked, product), \
            SceneRasters(stacked, given, resample=req.resample) as rasters:
        if product is not None and req.sun_azimuth is None and req.sun_elevation is None:
            req = replace(req, sun_azimuth=product.sun_azimuth,
                          sun_elevation=product.sun_elevation)
        grid = rasters.grid
        for name in rasters.resampled:
            log(f"{rasters.paths[name]}: warped onto the scene grid")
        outl = read_outlines(req.outlines, grid.crs)
        for note in outl.notes:
            log(note)
        mask = glacier_mask(outl, grid, raster)

        from utils.model import input_features, kept_model

        model = kept_model(weights)  # traced engines are reused across scenes
        n_out = int(model.outputs[0].shape[-1])
        if n_out != len(CLASSES):
            raise SceneError(f"{weights}: the model has {n_out} classes, expected {len(CLASSES)}")
        plan = plan_features(input_features(model), weights, given, req.derive_features,
                             req.sun_azimuth, req.sun_elevation)
        if req.derive_features and not plan.derive:
            log(f"derive_features: nothing to derive for {weights.name} "
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
            for r0, r1 in blocks(mask, req.block_rows):
                padded, valid = scene.block(r0, r1)
                rr, cc = np.nonzero(valid)
                bar.update(int(np.count_nonzero(mask[r0:r1])) - rr.size)  # not classifiable
                if rr.size:
                    t0 = time.perf_counter()
                    probs = run_engine(engine_fn, model, padded, rr, cc, req.batch_size,
                                       progress=bar.update)
                    t_engine += time.perf_counter() - t0
                    classes[r0 + rr, cc] = np.argmax(probs, axis=1).astype(np.int16)
                    if conf_map is not None:
                        conf_map[r0 + rr, cc] = calibrated_confidence(probs, calibrator)
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
        overwrite, output, quicklook = req.overwrite, req.output, req.quicklook
        with sigterm_cleans_up():  # SIGTERM between two outputs removes both
            try:
                write_class_map(output, classes, grid.crs, grid.transform, overwrite=overwrite)
                written.append(targets["OUTPUT"])
                if quicklook is not None:
                    save_quicklook(classes, grid, quicklook, overwrite,
                                   title=f"{Path(raster).name}: {weights.name}")
                    written.append(targets["quicklook"])
                classes = None  # written: free it before the confidence map is copied
                if confidence_path is not None:
                    write_float_map(confidence_path, conf_map, grid.crs, grid.transform,
                                    overwrite=overwrite,
                                    description="calibrated confidence" if calibrator else
                                    "confidence (max probability)")
                    written.append(targets["confidence_path"])
                if table is not None:
                    write_stats_csv(table, stats_csv, overwrite=overwrite)
                    written.append(targets["stats_csv"])
            except BaseException:
                remove_outputs(written)
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
