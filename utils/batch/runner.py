"""Map every scene of a catalogue on Dask distributed, resumable, one task per scene.

Each task calls :func:`utils.mapping.pipeline.map_scene` with the request
:func:`scene_request` builds (the code path of ``apply.py``: dense engine, features
derived from the DEM with the product's sun position, DEM and outlines warped onto the
scene grid) and writes ``OUT/scenes/<id>/facies.tif``, ``confidence.tif`` and
``glaciers.csv``. A task never raises for a bad scene: it returns a ``failed`` record
with the error, and the run goes on. A worker that dies loses only its task, which the
scheduler gives to another worker (up to ``distributed.scheduler.allowed-failures``
times). ``map_scene`` keeps loaded models per process, so each worker loads and compiles
a model once for all its scenes. The client holds only the small records and statistics tables.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from utils.batch.catalog import Scene, read_catalog
from utils.batch.manifest import Manifest, fingerprint
from utils.errors import InputError, SceneError

#: Memory per worker the default cluster plans for (bytes): a full Sentinel-2 tile
#: peaked at 3.3 GB in the dense engine, plus the stack.
WORKER_MEMORY = 6 * 2**30
OUTPUTS = {"facies": "facies.tif", "confidence": "confidence.tif", "stats_csv": "glaciers.csv"}


@dataclass(frozen=True)
class BatchConfig:
    """The run's shared inputs (paths), the output folder and the engine."""

    model: str
    outlines: str
    dem: str
    stats: str
    out: str
    weights_dir: str = "weights"
    calibration_model: str | None = None
    engine: str = "dense"


def scene_request(scene: Scene, cfg: BatchConfig):
    """The :class:`MapRequest` of a scene: what ``apply.py`` runs with the same flags
    (``--dem_path --derive_features --resample --confidence_path --stats_csv``)."""
    from utils.mapping.pipeline import MapRequest

    folder = Path(cfg.out) / "scenes" / scene.id
    return MapRequest(
        model_name=cfg.model, raster=scene.path, output=folder / OUTPUTS["facies"],
        outlines=scene.outlines or cfg.outlines, stats=cfg.stats, weights_dir=cfg.weights_dir,
        dem_path=scene.dem or cfg.dem, confidence_path=folder / OUTPUTS["confidence"],
        calibration_model=cfg.calibration_model, stats_csv=folder / OUTPUTS["stats_csv"],
        derive_features=True, sun_azimuth=scene.sun_azimuth, sun_elevation=scene.sun_elevation,
        resample=True, overwrite=True, engine=cfg.engine)


# ----------------------------------------------------------------------------- on a worker

_THREADS_SET = False


def _set_threads(threads: int) -> None:
    """In a worker process, once: TensorFlow's threads (its share of the host's cores).
    ``map_scene`` keeps loaded models per process (:func:`utils.model.kept_model`), so a
    worker loads and compiles each model once for all its scenes."""
    global _THREADS_SET
    if _THREADS_SET:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:  # TensorFlow already started in this process
        pass
    _THREADS_SET = True


def map_one(scene: Scene, cfg: BatchConfig, shared_inputs: dict,
            threads: dict[str, int] | None = None) -> dict:
    """Map one scene (a Dask task); returns its manifest record, ``done`` or ``failed``.

    ``threads`` gives the TensorFlow threads of each worker (by address): its host's
    cores shared among the host's workers.
    """
    from distributed import get_worker

    from utils.mapping.pipeline import map_scene

    try:
        address = get_worker().address
        _set_threads((threads or {}).get(address, 1))
    except ValueError:  # not on a worker (called directly): TensorFlow's defaults
        pass
    t0 = time.perf_counter()
    req = scene_request(scene, cfg)
    rec = {"scene": scene.id, "path": scene.path, "date": scene.date, "sensor": scene.sensor,
           "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        Path(req.output).parent.mkdir(parents=True, exist_ok=True)
        rec["inputs"] = {
            "scene": fingerprint(scene.path),
            "dem": fingerprint(scene.dem) if scene.dem else shared_inputs["dem"],
            "outlines": fingerprint(scene.outlines) if scene.outlines
            else shared_inputs["outlines"]}
        notes: list[str] = []
        summary = map_scene(req, progress=False, log=notes.append)
        rec |= {"status": "done", "glacier_px": summary["glacier_px"],
                "classified_px": summary["classified_px"], "notes": notes,
                "outputs": {k: str(Path(req.output).parent / v) for k, v in OUTPUTS.items()}}
    except InputError as e:
        rec |= {"status": "failed", "error": str(e)}
    except Exception as e:  # a bug or an unreadable file: reported, the run goes on
        rec |= {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    rec["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return rec


# ----------------------------------------------------------------------------- the client


def default_workers() -> tuple[int, int]:
    """(workers, memory limit per worker in bytes) of a LocalCluster on this machine: one
    worker per 4 cores and :data:`WORKER_MEMORY`, 90 % of the memory shared among them."""
    cpus = os.cpu_count() or 1
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    workers = max(1, min(cpus // 4 or 1, int(mem * 0.9 // WORKER_MEMORY)))
    return workers, int(mem * 0.9 // workers)


def worker_threads(client) -> dict[str, int]:
    """TensorFlow threads per worker address: its host's cores / the host's workers."""
    from collections import Counter

    workers = client.scheduler_info()["workers"]
    cores = client.run(os.cpu_count)
    per_host = Counter(w["host"] for w in workers.values())
    return {a: max(1, (cores.get(a) or 1) // per_host[w["host"]]) for a, w in workers.items()}


def check_inputs(cfg: BatchConfig) -> None:
    """Shared inputs exist and the output folder can be made (before any work)."""
    from utils.mapping.pipeline import resolve_weights

    for field in ("outlines", "dem", "stats", "calibration_model"):
        path = getattr(cfg, field)
        if path is not None and not Path(path).is_file():
            raise SceneError(f"{path}: {field} file not found").about(field)
    resolve_weights(cfg.model, cfg.weights_dir)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise SceneError(f"{out}: the output folder is a file").about("out")
    if not out.parent.is_dir():
        raise SceneError(f"{out}: its parent folder does not exist").about("out")


def run_batch(catalog: str | os.PathLike, cfg: BatchConfig, scheduler: str | None = None,
              workers: int | None = None, progress: bool = True,
              log: Callable[[str], None] = print) -> dict:
    """Map the catalogue's scenes not yet done; write the per-glacier table of all.

    ``scheduler`` is the address of a running Dask scheduler; without it a LocalCluster
    of ``workers`` processes (default :func:`default_workers`) is started and stopped.
    Returns counts (``mapped``, ``failed``, ``skipped``), the failed scenes' errors and
    the table paths.
    """
    from utils.batch.table import write_table
    from utils.mapping.pipeline import resolve_weights

    check_inputs(cfg)
    out = Path(cfg.out)
    out.mkdir(exist_ok=True)
    scenes = read_catalog(catalog, out / "items")
    n_default, memory = default_workers()
    n_workers = workers or n_default
    if workers:
        memory = memory * n_default // workers
    manifest = Manifest(out)
    shared = {"model": fingerprint(resolve_weights(cfg.model, cfg.weights_dir)),
              "stats": fingerprint(cfg.stats), "calibration": fingerprint(cfg.calibration_model)}
    shared_inputs = {"dem": fingerprint(cfg.dem), "outlines": fingerprint(cfg.outlines)}
    todo = [s for s in scenes if not manifest.is_done(
        s.id, {"scene": s.path, "dem": s.dem or cfg.dem,
               "outlines": s.outlines or cfg.outlines}, shared)]
    log(f"{len(scenes)} scenes: {len(scenes) - len(todo)} already done, {len(todo)} to map")
    failed: dict[str, str] = {}
    if todo:
        failed = _run_tasks(todo, cfg, shared, shared_inputs, manifest, scheduler, n_workers,
                            memory, progress, log)
    table = write_table([manifest.latest.get(s.id, {}) for s in scenes], out)
    return {"scenes": len(scenes), "skipped": len(scenes) - len(todo),
            "mapped": len(todo) - len(failed), "failed": failed, **table}


def _run_tasks(todo: list[Scene], cfg: BatchConfig, shared: dict, shared_inputs: dict,
               manifest: Manifest, scheduler: str | None, n_workers: int, memory: int,
               progress: bool, log: Callable[[str], None]) -> dict[str, str]:
    from distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               memory_limit=memory, dashboard_address=":0")
    failed: dict[str, str] = {}
    try:
        with Client(scheduler or cluster) as client:
            log(f"Dask dashboard: {client.dashboard_link}")
            threads = worker_threads(client)
            futures = {client.submit(map_one, s, cfg, shared_inputs, threads, key=f"map-{s.id}",
                                     pure=False): s for s in todo}
            with tqdm(total=len(todo), unit="scene", desc="mapping", disable=not progress,
                      smoothing=0) as bar:
                for fut in as_completed(futures):
                    scene = futures[fut]
                    try:
                        rec = fut.result()
                    except Exception as e:  # the task's worker died too often (KilledWorker)
                        rec = {"scene": scene.id, "path": scene.path, "status": "failed",
                               "error": f"{type(e).__name__}: {e}"}
                    rec["shared"] = shared
                    manifest.append(rec)
                    if rec["status"] != "done":
                        failed[scene.id] = rec["error"]
                        bar.write(f"{scene.id}: failed: {rec['error']}")
                    bar.update(1)
                    bar.set_postfix(done=bar.n - len(failed), failed=len(failed))
    finally:
        if cluster is not None:
            cluster.close()
    return failed
