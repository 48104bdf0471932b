"""Tests of utils.calibration.portable: our JSON calibrator files, written atomically."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from utils.calibration import (
    KINDS,
    TemperatureCalibrator,
    fit_calibrator,
    load_calibrator,
    save_calibrator,
)
from utils.errors import InputError, OutputError, OutputExistsError

ROOT = Path(__file__).resolve().parents[2]


def _fitted(kind: str, synthetic):
    probs, labels = synthetic(4000, 2.5, seed=5)
    return fit_calibrator(kind, probs, labels), probs


@pytest.mark.parametrize("kind", KINDS)
def test_json_round_trip(kind: str, tmp_path: Path, synthetic) -> None:
    cal, probs = _fitted(kind, synthetic)
    path = save_calibrator(cal, tmp_path / f"{kind}.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{kind}.json"]  # no temp files left
    doc = json.loads(path.read_text())
    assert doc["type"] == kind and doc["format_version"] == 1
    back = load_calibrator(path)
    assert type(back) is type(cal)
    assert np.array_equal(back.calibrate(probs), cal.calibrate(probs))


def test_bad_json(tmp_path: Path, expect_error) -> None:
    cases = {
        "syntax.json": "{not json",
        "foreign.json": json.dumps({"format": "other", "type": "temperature"}),
        "future.json": json.dumps({"format": "glacier-facies-calibrator", "format_version": 99,
                                   "type": "temperature", "temperature": 1.0}),
        "kind.json": json.dumps({"format": "glacier-facies-calibrator", "format_version": 1,
                                 "type": "magic"}),
        "kernel.json": json.dumps({"format": "glacier-facies-calibrator", "format_version": 1,
                                   "type": "kernel_ridge", "kernel": "poly", "gamma": None,
                                   "X_fit": [[0.0]], "dual_coef": [1.0]}),
        "shape.json": json.dumps({"format": "glacier-facies-calibrator", "format_version": 1,
                                  "type": "kernel_ridge", "kernel": "laplacian",
                                  "X_fit": [[0.0], [1.0]], "dual_coef": [1.0]}),
        "temp.json": json.dumps({"format": "glacier-facies-calibrator", "format_version": 1,
                                 "type": "temperature", "temperature": -2}),
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        expect_error(tmp_path / name, "JSON")


# --------------------------------------------------------------------------- writing


def test_save_into_missing_folder(tmp_path: Path) -> None:
    """A missing output folder is one InputError naming it, not a traceback from mkstemp."""
    target = tmp_path / "no" / "such" / "cal.json"
    with pytest.raises(OutputError, match="does not exist") as info:
        save_calibrator(TemperatureCalibrator(1.5), target)
    assert isinstance(info.value, InputError)
    assert str(target.parent) in str(info.value)
    assert not (tmp_path / "no").exists()


def test_save_overwrite(tmp_path: Path) -> None:
    path = save_calibrator(TemperatureCalibrator(1.5), tmp_path / "cal.json")
    save_calibrator(TemperatureCalibrator(2.5), path)  # replacing is the default
    assert load_calibrator(path).temperature == 2.5
    with pytest.raises(OutputExistsError, match="cal.json"):
        save_calibrator(TemperatureCalibrator(3.5), path, overwrite=False)
    assert load_calibrator(path).temperature == 2.5
    assert [p.name for p in tmp_path.iterdir()] == ["cal.json"]


def test_save_long_name_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="too long"):
        save_calibrator(TemperatureCalibrator(1.5), tmp_path / ("c" * 250 + ".json"))
    assert list(tmp_path.iterdir()) == []


def test_save_interrupted_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C while writing: no temporary file, no half-written calibrator, old file kept."""
    path = save_calibrator(TemperatureCalibrator(1.5), tmp_path / "cal.json")
    before = path.read_bytes()

    def half_then_interrupt(self: Path, text: str, *args, **kwargs) -> int:
        with open(self, "w", encoding="utf-8") as fh:
            fh.write(text[:5])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_calibrator(TemperatureCalibrator(2.5), path)
    assert [p.name for p in tmp_path.iterdir()] == ["cal.json"]
    assert path.read_bytes() == before


def test_save_sigterm_leaves_nothing(tmp_path: Path) -> None:
    """SIGTERM during the write removes the temporary file (the shared atomic output)."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from utils.calibration import TemperatureCalibrator, save_calibrator\n"
        "def slow(self, text, *a, **k):\n"
        "    open(self, 'w').write(text[:5]); print('writing', flush=True); time.sleep(60)\n"
        "Path.write_text = slow\n"
        f"save_calibrator(TemperatureCalibrator(2.0), {str(tmp_path / 'cal.json')!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert len(list(tmp_path.iterdir())) == 1  # the temporary file
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_save_non_finite_refused(tmp_path: Path) -> None:
    cal = TemperatureCalibrator(1.0)
    cal.temperature = float("nan")
    with pytest.raises(InputError, match="non-finite"):
        save_calibrator(cal, tmp_path / "nan.json")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError):
        save_calibrator(np.ones(3), tmp_path / "x.json")
