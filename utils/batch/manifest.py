"""The run's memory: ``OUT/manifest.jsonl``, one JSON record per finished or failed scene.

A record holds the scene, its status (``done`` or ``failed`` with the error), the
fingerprints of its inputs (product, DEM, outlines; the stats, calibrator and model of
the run) and its outputs. Records are appended and synced one line at a time, so a
crash loses at most the line being written (a torn last line is ignored); the latest
record of a scene counts. A re-run skips a scene whose latest record is ``done``, whose
outputs exist and whose inputs are unchanged: a file's size and modification time
equal to the recorded ones, or else its SHA-256 equal to the recorded one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = "manifest.jsonl"


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(f for f in path.rglob("*") if f.is_file())
    return [path] if path.exists() else []


def stat_of(path: str | os.PathLike) -> list[int]:
    """[file count, total bytes, latest mtime in ns] of a file or of a folder's files."""
    files = _files(Path(path))
    stats = [f.stat() for f in files]
    return [len(files), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats),
                                                            default=0)]


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    for f in _files(p):
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as src:
            while chunk := src.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def fingerprint(path: str | os.PathLike | None) -> dict | None:
    """``{"path", "stat", "sha256"}`` of an input (None for None)."""
    if path is None:
        return None
    return {"path": str(path), "stat": stat_of(path), "sha256": sha256_of(path)}


def unchanged(fp: dict | None, path: str | os.PathLike | None) -> bool:
    """Whether ``path`` still has fingerprint ``fp`` (stat first, SHA-256 if it differs)."""
    if fp is None or path is None:
        return fp is None and path is None
    if str(path) != fp["path"] or not Path(path).exists():
        return False
    return stat_of(path) == fp["stat"] or sha256_of(path) == fp["sha256"]


class Manifest:
    """The records of ``OUT/manifest.jsonl`` (latest per scene) and appending to it."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / MANIFEST
        self.latest: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash
                if isinstance(rec, dict) and "scene" in rec:
                    self.latest[rec["scene"]] = rec

    def append(self, record: dict) -> None:
        """Add one record (one synced line); it becomes the scene's latest."""
        line = json.dumps(record, default=str) + "\n"
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():  # a torn line must not swallow this one
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
        self.latest[record["scene"]] = record

    def is_done(self, scene_id: str, inputs: dict[str, str | None], shared: dict) -> bool:
        """Whether the scene finished with these inputs (paths by role) and shared inputs
        (fingerprints by role), and its outputs still exist."""
        rec = self.latest.get(scene_id)
        if rec is None or rec.get("status") != "done":
            return False
        if any(not Path(p).exists() for p in rec.get("outputs", {}).values()):
            return False
        old_shared = rec.get("shared", {})
        if any((old_shared.get(k) or {}).get("sha256") != (fp or {}).get("sha256")
               for k, fp in shared.items()):
            return False
        recorded = rec.get("inputs", {})
        return all(unchanged(recorded.get(role), path) for role, path in inputs.items())
