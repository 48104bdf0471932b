"""Glacier outlines from the image: dataset, segmentation model, evaluation, polygons.

The second system of the compendium (issue 15). A binary glacier / not-glacier
U-Net on 7-channel 30 m scenes (blue, green, red, nir, swir1, swir2,
elevation) whose polygons feed ``apply.py OUTLINES``.

Modules: :mod:`~utils.outlines.dataset` (layout and validating reader),
:mod:`~utils.outlines.pipeline` (per-scene normalisation, crops, augmentation),
:mod:`~utils.outlines.model` (U-Net, focal + Dice loss), :mod:`~utils.outlines.train`
(resumable training), :mod:`~utils.outlines.evaluate` (scores, NDSI baseline),
:mod:`~utils.outlines.predict` (sliding-window inference),
:mod:`~utils.outlines.polygons` (mask -> GeoPackage), :mod:`~utils.outlines.demo`
(demo dataset and :func:`run_demo`). The layout is documented in docs/OUTLINES.md.
"""

from utils.errors import InputError


class OutlineError(InputError):
    """A problem with an outline dataset, scene, model or output; the message names the file."""
