"""Mapping a scene: the pipeline, its outputs (COG, sidecars, quicklook), smoothing, statistics."""
