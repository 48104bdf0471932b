"""The study's published weights, logs and calibrators, fetched in one command.

``python -m utils.published fetch [--dest .] [--overwrite] [--base-url URL]`` downloads
them from the study's code repository at a pinned commit (``catalogue``) into
``weights/``, ``logs/`` and ``confidence_calibration_models/`` with the study's layout,
each verified against the committed SHA-256 table (``checksums.csv``); see
docs/PUBLISHED.md.
"""

from utils.published.catalogue import (
    BASE_URL,
    COMMIT,
    REPOSITORY,
    PublishedFile,
    checksum_table,
    published_files,
    sha256_of,
)
from utils.published.download import FetchReport, fetch

__all__ = [
    "BASE_URL",
    "COMMIT",
    "REPOSITORY",
    "FetchReport",
    "PublishedFile",
    "checksum_table",
    "fetch",
    "published_files",
    "sha256_of",
]
