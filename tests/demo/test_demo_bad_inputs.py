"""Bad inputs to the demo-dataset generator: one line, exit status 2, nothing left behind.

Each case is tried through the library (an InputError subclass, raised before any
work) and through ``python -m utils.demo.generate`` (issue 11, defect 6: a negative
seed and an unwritable parent folder used to end in tracebacks with exit 1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from utils.demo.generate import DemoError, generate, main
from utils.errors import InputError, OutputError, OutputExistsError

ROOT = Path(__file__).resolve().parents[2]


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in-process; its exit status and stderr."""
    status = main(argv)
    return status, capsys.readouterr().err


def _assert_one_line(err: str, *words: str) -> None:
    assert err.count("\n") == 1 and err.startswith("python -m utils.demo.generate: error: ")
    assert "Traceback" not in err
    for word in words:
        assert word in err


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_library_refuses_a_seed_that_is_not_a_non_negative_integer(tmp_path, seed) -> None:
    with pytest.raises(DemoError, match="seed must be a non-negative integer") as info:
        generate(tmp_path / "out", size="tiny", seed=seed)
    assert isinstance(info.value, InputError) and info.value.options == ("seed",)
    assert list(tmp_path.iterdir()) == []


def test_library_refuses_an_unknown_size_and_noise_rate(tmp_path) -> None:
    with pytest.raises(DemoError, match="size must be one of") as info:
        generate(tmp_path / "out", size="huge")
    assert info.value.options == ("size",)
    with pytest.raises(DemoError, match="noise_rate"):
        generate(tmp_path / "out", size="tiny", noise_rate=0.9)
    assert list(tmp_path.iterdir()) == []


def test_cli_negative_seed_is_one_line_with_exit_2(tmp_path) -> None:
    """The reported case, as a user runs it (a fresh interpreter, the real exit status)."""
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "utils.demo.generate", str(out), "--size",
                          "tiny", "--seed", "-1"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2
    _assert_one_line(run.stderr, "--seed", "non-negative", "-1")
    assert run.stdout == "" and list(tmp_path.iterdir()) == []


def test_cli_read_only_parent_folder_is_one_line_with_exit_2(tmp_path, capsys) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable anyway "
                        "(test_cli_parent_under_a_regular_file covers the path)")
        with pytest.raises(OutputError, match="not writable"):
            generate(parent / "out", size="tiny")
        status, err = _cli([str(parent / "out"), "--size", "tiny"], capsys)
        assert status == 2
        _assert_one_line(err, str(parent), "not writable")
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)


@pytest.mark.parametrize("below", [("out",), ("sub", "out")])
def test_cli_parent_under_a_regular_file_is_one_line_with_exit_2(tmp_path, capsys,
                                                                 below) -> None:
    """A parent that cannot be a folder fails for every user, root included."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    out = afile.joinpath(*below)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        generate(out, size="tiny")
    status, err = _cli([str(out), "--size", "tiny"], capsys)
    assert status == 2
    _assert_one_line(err, str(out), "afile is a file")
    assert afile.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_cli_output_that_is_a_file_is_one_line_with_exit_2(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.write_text("mine")
    status, err = _cli([str(out), "--size", "tiny", "--overwrite"], capsys)
    assert status == 2
    _assert_one_line(err, str(out), "is not a folder")
    assert out.read_text() == "mine" and _leftovers(tmp_path) == []


def test_cli_foreign_folder_names_the_overwrite_flag(tmp_path, capsys) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(OutputExistsError) as info:
        generate(foreign, size="tiny")
    assert info.value.options == ("overwrite",)
    status, err = _cli([str(foreign), "--size", "tiny"], capsys)
    assert status == 2
    _assert_one_line(err, str(foreign), "not a demo dataset", "--overwrite")
    assert (foreign / "thesis.txt").read_text() == "precious" and _leftovers(tmp_path) == []


def test_cli_too_long_folder_name_is_one_line_with_exit_2(tmp_path, capsys) -> None:
    """The temporary folder's name is the longest; it fails before any work."""
    out = tmp_path / ("d" * 250)
    status, err = _cli([str(out), "--size", "tiny"], capsys)
    assert status == 2
    _assert_one_line(err, "too long")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigterm_during_writing_removes_the_temporary_folder(tmp_path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "utils.demo.generate", str(out), "--size",
                             "tiny"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not any(tmp_path.glob(".out.partial-*/patches/*.tif")):
            assert proc.poll() is None, "finished before any patch was written"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor its temporary folder
