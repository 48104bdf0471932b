"""Tests of ``python -m utils.data``: stats and pack, overwrite checks, usage errors."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from patch_samples import NAMES, make_patch, sorted_names

from utils.data.__main__ import main
from utils.data.files import write_patch
from utils.data.loading import load_patches
from utils.data.pack import pack_patches
from utils.data.skipped import skip_report_path
from utils.normalisation import load_stats, stats_from_array
from utils.study import N_FEATURES

ROOT = Path(__file__).resolve().parents[2]


def test_stats_cli_json_and_pickle(dataset, pack, tmp_path):
    folder, raw = dataset
    out = tmp_path / "stats.json"
    assert main(["stats", str(folder), str(out)]) == 0
    expected = stats_from_array(np.stack(list(raw.values())))
    got = load_stats(out)
    np.testing.assert_allclose(got.min, expected.min, rtol=0, atol=0)
    np.testing.assert_allclose(got.max, expected.max, rtol=0, atol=0)

    # the same statistics from the pack, and for a subset of folds
    out_pack = tmp_path / "stats_pack.json"
    assert main(["stats", str(pack), str(out_pack), "--folds", "1", "3"]) == 0
    sub = stats_from_array(np.stack([raw[n] for n in sorted_names([1, 3])]))
    np.testing.assert_array_equal(load_stats(out_pack).max, sub.max)
    assert not np.array_equal(sub.max, expected.max)

    # the study's pickle (mins, maxs) normalises exactly like our JSON
    pkl = tmp_path / "globalminmax.pickle"
    pkl.write_bytes(pickle.dumps((got.min.astype(np.float32), got.max.astype(np.float32))))
    from_pickle = load_patches(pack, stats=pkl)
    from_json = load_patches(folder, stats=out)
    assert from_pickle.normalised
    np.testing.assert_allclose(from_pickle.x, from_json.x, atol=1e-6)
    x = from_json.x.reshape(-1, N_FEATURES)
    np.testing.assert_allclose(x.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(x.max(axis=0), 1, atol=1e-6)
    names = sorted_names()
    manual = (raw[names[0]] - got.min) / (got.max - got.min)
    np.testing.assert_allclose(from_json.x[0], manual, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("command", ["pack", "stats"])
def test_cli_refuses_to_overwrite(dataset, tmp_path, capsys, command):
    folder, _ = dataset
    out = tmp_path / "out.json"
    out.write_text("keep me")
    with pytest.raises(SystemExit) as ex:
        main([command, str(folder), str(out)])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "keep me"
    assert main([command, str(folder), str(out), "--overwrite"]) == 0
    assert out.read_bytes() != b"keep me"


def test_pack_cli_refuses_overwrite(dataset, tmp_path, capsys):
    folder, _ = dataset
    out = tmp_path / "out.h5"
    out.write_text("keep me")
    with pytest.raises(SystemExit) as ex:
        main(["pack", str(folder), str(out)])
    assert ex.value.code == 2
    assert out.read_text() == "keep me"
    with pytest.raises(FileExistsError):
        pack_patches(folder, out, progress=False)
    assert out.read_text() == "keep me"

    assert main(["pack", str(folder), str(out), "--overwrite"]) == 0
    assert len(load_patches(out)) == len(NAMES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # no temporary left


@pytest.mark.parametrize(
    "args",
    [
        ["stats", "/no/such/folder", "{tmp}/s.json"],
        ["pack", "/no/such/folder", "{tmp}/p.h5"],
        ["stats", "{data}", "/no/such/dir/s.json"],
        ["stats", "{data}", "{tmp}/s.json", "--folds", "7"],
        ["stats", "{data}"],
        ["pack", "{tmp}", "{tmp}/p.h5"],  # a folder without patches
    ],
)
def test_cli_usage_errors(args, dataset, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, data=dataset[0]) for a in args]
    with pytest.raises(SystemExit) as ex:
        main(argv)
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error:" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_subprocess_bad_path(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "utils.data",
            "stats",
            str(tmp_path / "nope"),
            str(tmp_path / "s.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "nope") in proc.stderr


# --------------------------------------------------------------------------- defects (issue 11)


def _folder_with_bad(root: Path, name: str, bad: str) -> Path:
    """A patch folder ``root/name`` of two valid patches and the invalid file ``bad``."""
    folder = root / name
    folder.mkdir()
    for i, n in enumerate(["0_aletsch_2019_p0_ice.tif", "1_hef_2020_p2_snow.tif"]):
        write_patch(folder / n, make_patch(i))
    (folder / bad).write_bytes(b"this is not a GeoTIFF")
    return folder


@pytest.mark.parametrize(("command", "out_name"), [("pack", "p.h5"), ("stats", "s.json")])
def test_old_skip_report_replaced_or_removed(tmp_path, capsys, command, out_name):
    """Writing OUT again leaves no skip report of the replaced OUT beside it."""
    a = _folder_with_bad(tmp_path, "a", "0_a_2019_p7_ice.tif")
    b = _folder_with_bad(tmp_path, "b", "2_b_2019_p8_firn.tif")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / out_name
    report = skip_report_path(out)
    assert main([command, str(a), str(out), "--skip-invalid"]) == 0
    assert pd.read_csv(report)["file"].tolist() == ["0_a_2019_p7_ice.tif"]

    # replaced by the new run's report
    assert main([command, str(b), str(out), "--skip-invalid", "--overwrite"]) == 0
    assert pd.read_csv(report)["file"].tolist() == ["2_b_2019_p8_firn.tif"]

    # removed when the new run skips nothing (nothing to report)
    good = tmp_path / "good"
    good.mkdir()
    write_patch(good / "0_c_2019_p0_ice.tif", make_patch(0))
    assert main([command, str(good), str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == [out_name]
    assert "removed" in capsys.readouterr().err

    # an old report is not replaced without --overwrite, like OUT itself
    assert main([command, str(a), str(out), "--skip-invalid", "--overwrite"]) == 0
    out.unlink()
    before = report.read_bytes()
    capsys.readouterr()
    for extra in ([], ["--skip-invalid"]):
        with pytest.raises(SystemExit) as ex:
            main([command, str(good), str(out), *extra])
        assert ex.value.code == 2
        err = capsys.readouterr().err
        assert f"{report}: already exists" in err and len(err.strip().splitlines()) == 1
        assert report.read_bytes() == before and not out.exists()


@pytest.mark.parametrize("command", ["pack", "stats"])
def test_cli_invalid_patch_exits_2(tmp_path, command):
    """An invalid patch is an input error like any other: one line, exit 2, nothing left."""
    folder = _folder_with_bad(tmp_path, "data", "0_a_2019_p7_ice.tif")
    out = tmp_path / "out" / ("p.h5" if command == "pack" else "s.json")
    out.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "utils.data", command, str(folder), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "0_a_2019_p7_ice.tif: unreadable as a GeoTIFF" in lines[0]
    assert "Traceback" not in proc.stderr
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("command", ["pack", "stats"])
def test_cli_checks_output_before_reading(dataset, tmp_path, capsys, monkeypatch, command):
    """A name too long for the file system is refused up front, before any patch is read."""
    import utils.data.loading as loading_module
    import utils.data.pack as pack_module

    def no_reading(*args, **kwargs):
        raise AssertionError("patches were read before the output was checked")

    monkeypatch.setattr(loading_module, "read_patch_blocks", no_reading)
    monkeypatch.setattr(pack_module, "read_patch_blocks", no_reading)
    out = tmp_path / ("x" * 250 + ".h5")
    with pytest.raises(SystemExit) as ex:
        main([command, str(dataset[0]), str(out)])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert "file name is too long" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_stats_written_atomically(dataset, tmp_path, monkeypatch):
    """A failure while writing the statistics leaves neither OUT nor a temporary file."""
    from utils.normalisation import Stats

    def broken(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Stats, "to_dict", broken)
    with pytest.raises(OSError, match="No space left"):
        main(["stats", str(dataset[0]), str(tmp_path / "s.json")])
    assert list(tmp_path.iterdir()) == []
