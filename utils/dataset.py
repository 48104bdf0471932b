"""Old import path kept for notebooks: ``from utils.dataset import load_patches``."""

from utils.data.loading import PatchSet, load_patches  # noqa: F401
