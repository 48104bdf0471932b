"""Where the study's published files are, and what each one must be.

The study (Maslov et al., GPL-2.0) publishes its weights, training logs and
calibrators in its code repository. ``checksums.csv`` beside this module lists
every one of them (path relative to the repository root, size in bytes, SHA-256),
computed from ``../shared/reference``, the project's copy of those files.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = "konstantin-a-maslov/glacier_facies_classification"
# The newest commit of the repository's README that we could identify (its final text, with
# the dataset DOI); the weights and logs came in 5780f828, the calibrators in 83577144.
COMMIT = "b81cdc8589439e7599d45d32ec9bd4d2e9f20ac5"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/"
CHECKSUMS = Path(__file__).with_name("checksums.csv")
FOLDERS = ("weights", "logs", "confidence_calibration_models")


@dataclass(frozen=True)
class PublishedFile:
    """One published file: ``path`` relative to the repository root (``/``-separated,
    e.g. ``weights/1/0_cnn_afterconfidentlearning_weights.h5``), ``size`` in bytes,
    ``sha256`` as 64 lower-case hex digits."""

    path: str
    size: int
    sha256: str


def published_files(table: str | os.PathLike = CHECKSUMS) -> list[PublishedFile]:
    """The files of the checksum table (lines starting with ``#`` are comments)."""
    with open(table, newline="", encoding="utf-8") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return [PublishedFile(r["path"], int(r["size"]), r["sha256"]) for r in rows]


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def checksum_table(reference_dir: str | os.PathLike) -> list[PublishedFile]:
    """Every file under ``FOLDERS`` of a copy of the study's repository, sorted by path:
    what ``checksums.csv`` holds when computed from ``reference_dir``."""
    root = Path(reference_dir)
    files = [p for folder in FOLDERS for p in (root / folder).rglob("*") if p.is_file()]
    return sorted((PublishedFile(p.relative_to(root).as_posix(), p.stat().st_size, sha256_of(p))
                   for p in files), key=lambda f: f.path)
