"""Download the study's published files into a project folder, verified and resumable.

Each file goes to ``DEST/<its path in the study's repository>`` (``weights/``, ``weights/1/``
.. ``weights/4/``, ``logs/...``, ``confidence_calibration_models/``). It is downloaded to
``<name>.part`` beside it and renamed only when its size and SHA-256 match the table
(:mod:`utils.published.catalogue`). An interrupted download (network error, Ctrl-C)
leaves its ``.part`` behind on purpose: the next run asks the server for the missing
bytes only (HTTP ``Range``) and starts over where the server does not support that. A
download whose SHA-256 differs is removed. A file already there with the right bytes
is kept; one with other bytes is replaced only with ``overwrite``.
"""

from __future__ import annotations

import errno
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from utils.errors import InputError, OutputError, OutputExistsError
from utils.files import publish
from utils.published.catalogue import BASE_URL, PublishedFile, published_files, sha256_of

CHUNK = 1 << 16
TIMEOUT_S = 60


@dataclass
class FetchReport:
    """What :func:`fetch` did: paths (as in the table) downloaded, of which ``resumed``
    continued a partial download, and those already present with the right bytes;
    ``n_bytes`` downloaded files' total size."""

    fetched: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    n_bytes: int = 0


class _Corrupt(Exception):
    """A finished download whose size or SHA-256 differs from the table."""


def _matches(path: Path, f: PublishedFile) -> bool:
    return path.stat().st_size == f.size and sha256_of(path) == f.sha256


def _check_dest(dest: Path) -> None:
    if not dest.is_dir():
        why = "is not a folder" if dest.exists() else "does not exist"
        raise OutputError(errno.ENOENT, f"destination {why}", str(dest)).about("dest")
    if not os.access(dest, os.W_OK | os.X_OK):
        raise OutputError(errno.EACCES, "destination is not writable", str(dest)).about("dest")


def _plan(dest: Path, files: Sequence[PublishedFile], overwrite: bool,
          report: FetchReport) -> list[PublishedFile]:
    """The files to download; refuses (before any download) to replace differing files."""
    todo, differ = [], []
    for f in files:
        target = dest / f.path
        if target.is_dir():
            raise OutputError(errno.EISDIR, "is a folder where the study has a file",
                              str(target)).about("dest")
        if target.exists() and _matches(target, f):
            report.present.append(f.path)
            (dest / (f.path + ".part")).unlink(missing_ok=True)  # a stale partial copy
            continue
        if target.exists():
            differ.append(f.path)
        todo.append(f)
    if differ and not overwrite:
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        raise OutputExistsError(
            errno.EEXIST, f"{len(differ)} file(s) differ from the study's published ones: "
            f"{shown}; pass overwrite to replace them", str(dest)).about("overwrite")
    return todo


def _download(url: str, part: Path, f: PublishedFile, bar: tqdm) -> bool:
    """Bring ``part`` to the file's full length from ``url``; True when it resumed.

    Raises _Corrupt when the finished file is not the published one (``part`` removed).
    """
    have = part.stat().st_size if part.exists() else 0

    def start_over() -> int:  # the bytes held count as still to come again
        bar.total += min(have, f.size)
        bar.refresh()
        return 0

    if have > f.size:
        part.unlink()
        have = start_over()
    resumed = 0 < have < f.size
    if have < f.size:
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=TIMEOUT_S)
        except urllib.error.HTTPError as e:
            if e.code != 416 or not have:
                raise
            part.unlink()  # the server cannot serve what we hold: start over
            start_over()
            return _download(url, part, f, bar)
        with resp:
            ranged = resp.status == 206 and resp.headers.get("Content-Range", "").startswith(
                f"bytes {have}-")
            if have and not ranged:  # the server sends the whole file
                have, resumed = start_over(), False
            with open(part, "ab" if have else "wb") as out:
                while (chunk := resp.read(CHUNK)) and have <= f.size:
                    out.write(chunk)
                    have += len(chunk)
                    bar.update(len(chunk))
            if have < f.size and resp.length != 0:  # not the end of the server's file
                raise ConnectionError(f"connection closed after {have} of {f.size} bytes")
    if not _matches(part, f):
        part.unlink()
        raise _Corrupt
    return resumed


def fetch(dest: str | os.PathLike = ".", base_url: str = BASE_URL, overwrite: bool = False,
          files: Sequence[PublishedFile] | None = None, progress: bool = True) -> FetchReport:
    """Download the study's published files (default: all of ``checksums.csv``) from
    ``base_url`` (the repository root at the pinned commit) into ``dest``.

    Raises OutputError for an unusable ``dest``, OutputExistsError (before downloading
    anything) when files there differ from the published ones and ``overwrite`` is false,
    and InputError naming every file that could not be fetched (not found, interrupted:
    run again to resume, or corrupted: removed) after trying all of them.
    """
    dest = Path(dest)
    if not base_url.startswith(("http://", "https://")):
        raise InputError(f"{base_url}: base_url is not an http(s) URL").about("base_url")
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    files = published_files() if files is None else files
    _check_dest(dest)
    report = FetchReport()
    todo = _plan(dest, files, overwrite, report)
    parts = {f.path: dest / (f.path + ".part") for f in todo}
    left = sum(f.size - min(p.stat().st_size, f.size) if p.exists() else f.size
               for f, p in zip(todo, parts.values(), strict=True))
    failed: list[str] = []
    with tqdm(total=left, unit="B", unit_scale=True, desc="fetch",
              disable=not (progress and todo)) as bar:
        for i, f in enumerate(todo):
            target, part = dest / f.path, parts[f.path]
            url = base_url + f.path
            bar.set_postfix_str(f.path, refresh=False)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(e.errno or errno.EACCES, f"cannot create the folder: "
                                  f"{e.strerror or e}", str(target.parent)).about("dest") from e
            try:
                if _download(url, part, f, bar):
                    report.resumed.append(f.path)
            except _Corrupt:
                failed.append(f"{f.path}: the download's SHA-256 differs from the published "
                              "file's; it was removed")
                continue
            except urllib.error.HTTPError as e:
                failed.append(f"{f.path}: {url} answered HTTP {e.code} {e.reason}")
                continue
            except urllib.error.URLError as e:  # no answer at all: the others will fare alike
                failed.append(f"{url} cannot be reached ({e.reason}); the "
                              f"{len(todo) - i - 1} file(s) after it were not tried")
                break
            except (http.client.HTTPException, OSError) as e:
                kept = f"kept {part.name}, " if part.exists() else ""
                failed.append(f"{f.path}: download interrupted ({e}); {kept}run again to resume")
                continue
            publish(part, target, overwrite)
            report.fetched.append(f.path)
            report.n_bytes += f.size
    if failed:
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise InputError(f"{len(todo) - len(report.fetched)} of {len(todo)} file(s) could not "
                         f"be fetched from base_url {base_url}: " + "; ".join(failed[:5]) + more
                         ).about("base_url")
    return report
