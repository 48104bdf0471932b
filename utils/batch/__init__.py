"""Many scenes on Dask distributed: catalogue, manifest (resume), runner, one glacier table.

``python -m utils.batch CATALOG --outlines ... --dem ... --model ... --stats ... --out DIR``;
:func:`run_batch` from Python. See ``docs/BATCH.md``.
"""

from utils.batch.catalog import Scene, read_catalog
from utils.batch.runner import BatchConfig, run_batch, scene_request

__all__ = ["BatchConfig", "Scene", "read_catalog", "run_batch", "scene_request"]
