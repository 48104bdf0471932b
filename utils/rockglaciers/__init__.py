"""Rock glaciers: the Andes rock-glacier tiles, a small CNN detector, scene maps, segmentation.

Modules: ``tiles`` (readers of the file-name, image-folder and Parquet layouts,
grouping by rock glacier, grouped folds), ``classifier`` (compact Keras CNN on
local contrast, training, calibration, saving),
``evaluation`` (metrics, baselines, grouped cross-validation), ``scene``
(probability GeoTIFF of a scene), ``segmentation`` (mask layout, small U-Net,
IoU / F1), ``demo`` (synthetic tiles, masks and a scene; :func:`run_demo`).
The command line is ``rockglaciers.py`` at the project root.
"""

from utils.rockglaciers.tiles import LABELS, TILE, RockGlacierError, TileSet, read_tiles

__all__ = ["LABELS", "TILE", "RockGlacierError", "TileSet", "read_tiles", "run_demo"]


def run_demo(*args, **kwargs) -> dict:
    """See :func:`utils.rockglaciers.demo.run_demo` (imported lazily: it loads Keras)."""
    from utils.rockglaciers.demo import run_demo as _run

    return _run(*args, **kwargs)
