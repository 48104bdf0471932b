"""utils.files: the one atomic-output helper (checks up front, no half-written files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from utils.errors import InputError, OutputError, OutputExistsError, cli_message
from utils.files import TEMP_SUFFIX_MAX, atomic_output, check_output, publish

ROOT = Path(__file__).resolve().parents[1]


def test_check_output_refuses_a_name_too_long_before_any_work(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    ok = "a" * (limit - 1 - TEMP_SUFFIX_MAX - len(".tif")) + ".tif"
    assert check_output(tmp_path / ok) == (tmp_path / ok).absolute()
    for n in (limit - TEMP_SUFFIX_MAX, 248, 260):  # 248: only the temporary name too long
        name = "b" * (n - len(".tif")) + ".tif"
        with pytest.raises(OutputError, match="file name is too long") as info:
            check_output(tmp_path / name, what="OUTPUT")
        assert isinstance(info.value, InputError) and name in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_check_output_existing_missing_and_input(tmp_path):
    f = tmp_path / "x.tif"
    f.write_bytes(b"keep")
    with pytest.raises(OutputExistsError) as info:
        check_output(f, what="OUTPUT")
    assert cli_message(info.value) == f"{f}: OUTPUT exists; pass --overwrite to replace it"
    assert check_output(f, overwrite=True) == f
    with pytest.raises(OutputError, match="would overwrite an input"):
        check_output(f, overwrite=True, inputs=[f])
    with pytest.raises(OutputError, match="does not exist"):
        check_output(tmp_path / "nope" / "y.tif")
    with pytest.raises(OutputError, match="is not a folder"):
        check_output(f / "y.tif")
    assert f.read_bytes() == b"keep"


def test_atomic_output_publishes_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        Path(str(tmp) + ".src.tif").write_text("side file")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.txt.")
        tmp.write_text("whole")
    assert target.read_text() == "whole" and list(tmp_path.iterdir()) == [target]


def test_concurrent_writer_is_not_clobbered_and_the_message_says_overwrite(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(OutputExistsError) as info, atomic_output(target) as tmp:
        tmp.write_text("mine")
        target.write_text("another run's")  # appears while we write
    assert target.read_text() == "another run's"
    msg = cli_message(info.value)
    assert "--overwrite" in msg and "overwrite=True" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    tmp2 = tmp_path / "t"
    tmp2.write_text("new")
    publish(tmp2, target, overwrite=True)
    assert target.read_text() == "new"


def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path):
    """SIGTERM during the write: exit 143, no output, no temporary file (as Ctrl-C)."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from utils.files import atomic_output
        with atomic_output({str(tmp_path / "o.tif")!r}) as tmp:
            tmp.write_text("half")
            Path(str(tmp) + ".src.tif").write_text("side")
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert len(list(tmp_path.iterdir())) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert list(tmp_path.iterdir()) == []
