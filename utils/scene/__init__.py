"""Scene inputs: rasters and their grid, glacier outlines, windowed features."""
