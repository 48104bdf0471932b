"""Patch datasets in the study's layout; data flows down this list of modules.

``names`` (file names, folds, folder layout) -> ``files`` (one patch GeoTIFF) ->
``skipped`` (skip reports) -> ``pack`` (the HDF5 pack) -> ``loading`` (PatchSet,
load_patches) -> ``stats`` (normalisation statistics); ``python -m utils.data``
is the command line (``__main__``).
"""
