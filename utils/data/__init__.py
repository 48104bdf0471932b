"""Patch datasets in the study's layout: names, patch files, the HDF5 pack, loading, statistics."""
