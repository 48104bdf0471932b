"""``python -m utils.published fetch`` against a local copy of the study's files.

A few of the published files (../shared/reference) are copied into a folder that an
HTTP server on 127.0.0.1 serves (with or without HTTP Range, optionally corrupting
some files); no test touches the internet.
"""

from __future__ import annotations

import shutil
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import pytest

import utils.published.download as download
from utils.errors import InputError, OutputExistsError
from utils.published import BASE_URL, COMMIT, checksum_table, fetch, published_files, sha256_of
from utils.published.__main__ import main

WEIGHTS = "weights/0_cnn_afterconfidentlearning_weights.h5"
OPTICAL = "weights/1/0_cnn_beforeconfidentlearning_weights.h5"
CALIBRATOR = "confidence_calibration_models/0_calibration_model.pickle"
SUBSET = (WEIGHTS, OPTICAL, CALIBRATOR, "logs/4/0_cnn_afterconfidentlearning_log.csv",
          "logs/2/3_cnn_beforeconfidentlearning_log.csv")


class _Handler(BaseHTTPRequestHandler):
    """GET of files under ``server.root``; ``server.ranges`` answers Range requests (206),
    ``server.corrupt`` paths get their first byte flipped, ``server.cut[path]`` bytes of a
    file are sent before the connection drops; ``server.log`` records (path, Range
    header, bytes sent)."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        srv = self.server
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        path = srv.root / rel
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if rel in srv.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        asked = self.headers.get("Range")
        start = int(asked.removeprefix("bytes=").split("-")[0]) if asked and srv.ranges else 0
        if start >= len(data) > 0:
            self.send_error(416)
            return
        self.send_response(206 if asked and srv.ranges else 200)
        if asked and srv.ranges:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:start + srv.cut.pop(rel, len(data))]
        srv.log.append((rel, asked, len(body)))  # before the client can see the body end
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A server of a copy of SUBSET of the study's files; yields it (its URL: ``.url``)."""
    root = tmp_path_factory.mktemp("served")
    for rel in SUBSET:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(reference_dir / rel, root / rel)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.root, srv.url = root, f"http://127.0.0.1:{srv.server_port}/"
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture
def srv(server, monkeypatch: pytest.MonkeyPatch):
    """The server, reset (Range supported, nothing corrupted, empty log); ``fetch``
    without ``files`` (as the command line calls it) fetches SUBSET only."""
    server.ranges, server.corrupt, server.cut, server.log = True, set(), {}, []
    subset = [f for f in published_files() if f.path in SUBSET]
    assert len(subset) == len(SUBSET)
    monkeypatch.setattr(download, "published_files", lambda: subset)
    return server


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    try:
        rc = main(["fetch", *args])
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


def _check_landed(dest: Path) -> None:
    table = {f.path: f for f in published_files()}
    for rel in SUBSET:
        assert sha256_of(dest / rel) == table[rel].sha256, rel
    assert not list(dest.rglob("*.part"))


def test_fetch_lands_in_the_study_layout_and_apply_finds_the_weights(
        srv, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    rc, err = _cli(capsys, "--dest", str(tmp_path), "--base-url", srv.url)
    assert rc == 0, err
    assert "fetched 5 file(s)" in err
    _check_landed(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if p.is_file()) == sorted(SUBSET)
    # a second run finds every file verified and downloads nothing
    srv.log.clear()
    rc, err = _cli(capsys, "--dest", str(tmp_path), "--base-url", srv.url.rstrip("/"))
    assert rc == 0 and "5 already present" in err and srv.log == []
    # apply.py 0_cnn_afterconfidentlearning ... run in that folder resolves the study's file
    from utils.calibration import load_calibrator
    from utils.mapping.pipeline import resolve_weights

    monkeypatch.chdir(tmp_path)
    assert resolve_weights("0_cnn_afterconfidentlearning") == Path(WEIGHTS)
    with h5py.File(WEIGHTS) as h5:
        assert "conv2d" in h5 and "keras_version" in h5.attrs
    assert load_calibrator(CALIBRATOR) is not None


def test_a_corrupted_download_is_detected_and_removed(srv, tmp_path: Path) -> None:
    srv.corrupt = {OPTICAL}
    with pytest.raises(InputError, match=f"{OPTICAL}: the download's SHA-256 differs") as e:
        fetch(tmp_path, base_url=srv.url, progress=False)
    assert "1 of 5" in str(e.value)
    assert not (tmp_path / OPTICAL).exists()
    assert not (tmp_path / (OPTICAL + ".part")).exists()
    assert (tmp_path / WEIGHTS).is_file()  # the others were fetched
    srv.corrupt = set()
    report = fetch(tmp_path, base_url=srv.url, progress=False)
    assert report.fetched == [OPTICAL] and len(report.present) == 4
    _check_landed(tmp_path)


def _partial(reference_dir: Path, tmp_path: Path, n: int) -> bytes:
    """Leave the first ``n`` bytes of the weights file as its ``.part``; returns all bytes."""
    data = (reference_dir / WEIGHTS).read_bytes()
    part = tmp_path / (WEIGHTS + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:n])
    return data


def test_a_partial_download_is_resumed_with_http_range(
        srv, reference_dir: Path, tmp_path: Path) -> None:
    data = _partial(reference_dir, tmp_path, 300_000)
    report = fetch(tmp_path, base_url=srv.url, progress=False)
    assert report.resumed == [WEIGHTS]
    assert (WEIGHTS, "bytes=300000-", len(data) - 300_000) in srv.log
    _check_landed(tmp_path)


def test_an_interrupted_download_is_kept_and_resumed_by_the_next_run(
        srv, tmp_path: Path, capsys) -> None:
    srv.cut = {CALIBRATOR: 500, WEIGHTS: 200_000}
    rc, err = _cli(capsys, "--dest", str(tmp_path), "--base-url", srv.url)
    assert rc == 2 and "2 of 5" in err and "run again to resume" in err
    assert (tmp_path / (WEIGHTS + ".part")).stat().st_size == 200_000
    assert not (tmp_path / WEIGHTS).exists()
    rc, err = _cli(capsys, "--dest", str(tmp_path), "--base-url", srv.url)
    assert rc == 0 and "fetched 2 file(s)" in err and "(2 resumed)" in err
    assert (WEIGHTS, "bytes=200000-", 863288 - 200_000) in srv.log
    _check_landed(tmp_path)


def test_without_range_support_or_with_wrong_partial_bytes_it_starts_over(
        srv, reference_dir: Path, tmp_path: Path) -> None:
    data = _partial(reference_dir, tmp_path, 300_000)
    part = tmp_path / (WEIGHTS + ".part")
    srv.ranges = False
    report = fetch(tmp_path, base_url=srv.url, progress=False)
    assert report.resumed == [] and (WEIGHTS, "bytes=300000-", len(data)) in srv.log
    _check_landed(tmp_path)
    # a partial file whose bytes are not the study's cannot be completed: removed
    (tmp_path / WEIGHTS).unlink()
    part.write_bytes(b"x" * 1000)
    srv.ranges = True
    with pytest.raises(InputError, match=f"{WEIGHTS}: the download's SHA-256 differs"):
        fetch(tmp_path, base_url=srv.url, progress=False)
    assert not part.exists() and not (tmp_path / WEIGHTS).exists()


def test_a_different_existing_file_is_kept_without_overwrite(srv, tmp_path: Path,
                                                              capsys) -> None:
    mine = tmp_path / WEIGHTS
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own weights")
    rc, err = _cli(capsys, "--dest", str(tmp_path), "--base-url", srv.url)
    assert rc == 2 and WEIGHTS in err and "--overwrite" in err
    assert mine.read_bytes() == b"my own weights" and srv.log == []  # nothing downloaded
    with pytest.raises(OutputExistsError):
        fetch(tmp_path, base_url=srv.url, progress=False)
    rc, err = _cli(capsys, "--dest", str(tmp_path), "--base-url", srv.url, "--overwrite")
    assert rc == 0, err
    _check_landed(tmp_path)


def test_errors_name_the_url_or_folder_and_the_flag(srv, tmp_path: Path, capsys) -> None:
    rc, err = _cli(capsys, "--dest", str(tmp_path), "--base-url", srv.url + "elsewhere/")
    assert rc == 2 and "HTTP 404" in err and "--base-url" in err and "5 of 5" in err
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, err = _cli(capsys, "--dest", str(tmp_path), "--base-url", f"http://127.0.0.1:{port}/")
    assert rc == 2 and "cannot be reached" in err and "the 4 file(s) after it were not" in err
    rc, err = _cli(capsys, "--dest", str(tmp_path / "missing"), "--base-url", srv.url)
    assert rc == 2 and "missing: destination does not exist" in err
    rc, err = _cli(capsys, "--dest", str(tmp_path), "--base-url", "ftp://example.org/")
    assert rc == 2 and "--base-url is not an http(s) URL" in err


def test_the_checksum_table_is_the_reference_copy(reference_dir: Path) -> None:
    assert published_files() == checksum_table(reference_dir)
    paths = [f.path for f in published_files()]
    for top in ("weights/", "logs/"):
        for fs in ("", "1/", "2/", "3/", "4/"):
            assert any(p.startswith(top + fs + "0_cnn_") for p in paths), top + fs
    assert len([p for p in paths if p.startswith("confidence_calibration_models/")]) == 6
    assert COMMIT in BASE_URL and len(COMMIT) == 40
