"""Tests of utils.calibration.study_pickle: the restricted unpickler and the study's calibrators."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from utils.calibration import (
    CalibrationError,
    KernelRidgeCalibrator,
    RestrictedPickleError,
    TemperatureCalibrator,
    fit_kernel_ridge_points,
    kernel_matrix,
    load_calibrator,
    restricted_loads,
    save_calibrator,
)
from utils.calibration.study_pickle import KERNEL_RIDGE, PickledObject
from utils.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
FOLDS = range(6)


def test_sklearn_current_pickle(tmp_path: Path) -> None:
    """A pickle of the installed scikit-learn's KernelRidge also loads (numpy 2 names)."""
    from sklearn.kernel_ridge import KernelRidge

    x = np.array([[0.0], [0.3], [0.7], [1.0]])
    model = KernelRidge(kernel="laplacian", alpha=1e-3).fit(x, [0.0, 0.4, 0.6, 1.0])
    path = tmp_path / "current.pickle"
    path.write_bytes(pickle.dumps(model))
    cal = load_calibrator(path)
    grid = np.linspace(0, 1, 11)
    assert np.allclose(cal.predict(grid, clip=False), model.predict(grid[:, None]), atol=1e-12)

    poly = KernelRidge(kernel="poly").fit(x, [0.0, 0.4, 0.6, 1.0])
    (tmp_path / "poly.pickle").write_bytes(pickle.dumps(poly))
    with pytest.raises(CalibrationError, match=r"poly\.pickle.*unsupported kernel 'poly'"):
        load_calibrator(tmp_path / "poly.pickle")


class _Evil:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_bad_files(tmp_path: Path, expect_error) -> None:
    from sklearn.kernel_ridge import KernelRidge

    good = pickle.dumps(KernelRidge(kernel="laplacian").fit([[0.0], [1.0]], [0.0, 1.0]))
    (tmp_path / "trunc.pickle").write_bytes(good[: len(good) // 2])
    expect_error(tmp_path / "trunc.pickle", "corrupt or truncated|malformed")

    rng = np.random.default_rng(7)
    (tmp_path / "random.bin").write_bytes(b"\x80\x04" + rng.bytes(300))
    expect_error(tmp_path / "random.bin", "KernelRidge")

    marker = tmp_path / "pwned"
    (tmp_path / "evil.pickle").write_bytes(pickle.dumps(_Evil(f"touch {marker}")))
    expect_error(tmp_path / "evil.pickle", r"refusing to load global (posix|nt|os)\.system")
    assert not marker.exists()

    (tmp_path / "dict.pickle").write_bytes(pickle.dumps({"X_fit_": [1.0]}))
    expect_error(tmp_path / "dict.pickle", "holds a dict, not a KernelRidge")

    (tmp_path / "objarr.pickle").write_bytes(pickle.dumps(np.array([1, None], dtype=object)))
    expect_error(tmp_path / "objarr.pickle", "non-numeric dtype")

    # BUILD on the allowed globals themselves (set attributes on the class / function):
    # refused or confined to that load; a good file still loads afterwards
    for i, glob in enumerate((b"sklearn.kernel_ridge\nKernelRidge", b"numpy\nndarray",
                              b"numpy.core.multiarray\n_reconstruct")):
        tamper = (b"\x80\x02c" + glob + b"\nN}X\x0c\x00\x00\x00__setstate__K\x01s\x86b.")
        (tmp_path / f"tamper{i}.pickle").write_bytes(tamper)
        expect_error(tmp_path / f"tamper{i}.pickle", "KernelRidge")
    (tmp_path / "good.pickle").write_bytes(good)
    assert isinstance(load_calibrator(tmp_path / "good.pickle"), KernelRidgeCalibrator)

    (tmp_path / "empty.pickle").write_bytes(b"")
    expect_error(tmp_path / "empty.pickle", "empty")
    expect_error(tmp_path / "missing.json", "cannot read")


# --------------------------------------------------------------------------- golden


def _study_pickle(reference_dir: Path, fold: int) -> Path:
    return reference_dir / "confidence_calibration_models" / f"{fold}_calibration_model.pickle"


@pytest.mark.parametrize("fold", FOLDS)
def test_study_pickles(fold: int, reference_dir: Path, golden: dict, tmp_path: Path) -> None:
    cal = load_calibrator(_study_pickle(reference_dir, fold))
    assert isinstance(cal, KernelRidgeCalibrator)
    assert cal.kernel == "laplacian" and cal.gamma is None
    assert cal.meta["sklearn_version"] == "1.5.2"
    assert np.array_equal(cal.X_fit, golden[f"calibration/{fold}_X_fit"])
    assert np.array_equal(cal.dual_coef, golden[f"calibration/{fold}_dual_coef"])
    grid = golden["calibration/grid"]
    expected = golden[f"calibration/{fold}_grid_output"]
    assert np.allclose(cal.predict(grid, clip=False), expected, rtol=0, atol=1e-9)

    back = load_calibrator(save_calibrator(cal, tmp_path / f"{fold}.json"))
    assert np.allclose(back.predict(grid, clip=False), cal.predict(grid, clip=False),
                       rtol=0, atol=1e-12)
    assert back.meta["alpha"] == cal.meta["alpha"]


@pytest.mark.parametrize("fold", FOLDS)
def test_study_pickles_interpolate(fold: int, reference_dir: Path) -> None:
    """The study's alpha array acts as alpha[0] = 0: the curve is interpolated exactly."""
    cal = load_calibrator(_study_pickle(reference_dir, fold))
    alpha = np.asarray(cal.meta["alpha"])
    x = cal.X_fit[:, 0]
    y = kernel_matrix(cal.X_fit, cal.X_fit) @ cal.dual_coef  # fitted values at the points
    assert alpha[0] == 0 and np.any(alpha > 0)
    assert y[0] == pytest.approx(0, abs=1e-12) and y[-1] == pytest.approx(1, abs=1e-12)
    # the sparsest bin's accuracy is a small fraction (k / n), as an exact fit gives
    frac = Fraction(float(y[1])).limit_denominator(40)
    assert abs(y[1] - float(frac)) < 1e-9
    refit = fit_kernel_ridge_points(x, y, alpha)
    assert np.allclose(refit.dual_coef, cal.dual_coef, rtol=0, atol=1e-9)
    per_sample = fit_kernel_ridge_points(x, y, alpha, alpha_mode="per_sample")
    assert np.max(np.abs(per_sample.dual_coef - cal.dual_coef)) > 1e-4


def test_study_pickle_without_sklearn(reference_dir: Path) -> None:
    """Loading the study's pickles neither needs nor imports scikit-learn."""
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from utils.calibration import load_calibrator\n"
        f"cal = load_calibrator({str(_study_pickle(reference_dir, 0))!r})\n"
        "print(cal.X_fit.shape[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 2


def test_truncated_study_pickle(reference_dir: Path, tmp_path: Path, expect_error) -> None:
    data = _study_pickle(reference_dir, 0).read_bytes()
    for cut in (10, 200, len(data) - 1):
        path = tmp_path / f"cut{cut}.pickle"
        path.write_bytes(data[:cut])
        expect_error(path, "expected a calibrator JSON file or a scikit-learn KernelRidge")


# --------------------------------------------------------------------------- restricted_loads


def test_restricted_loads_study_stats() -> None:
    """The study's globalminmax.pickle: a tuple (mins, maxs) of float32 arrays, any protocol."""
    mins = np.linspace(-1, 0, 11, dtype=np.float32)
    maxs = np.linspace(1, 2, 11, dtype=np.float32)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        got = restricted_loads(pickle.dumps((mins, maxs), protocol=protocol))
        assert type(got) is tuple and len(got) == 2
        for a, b in zip(got, (mins, maxs), strict=True):
            assert type(a) is np.ndarray and a.dtype == np.float32
            assert np.array_equal(a, b)


def test_restricted_loads_plain_data() -> None:
    data = {"a": [1, 2.5, "x", None, True, b"raw"], "b": (np.float64(0.5), np.int16(-3)),
            "big": np.arange(12, dtype=">f8").reshape(3, 4, order="F"), 7: [[np.zeros(0)]]}
    got = restricted_loads(pickle.dumps(data))
    assert got["a"] == [1, 2.5, "x", None, True, b"raw"]
    assert got["b"] == (0.5, -3) and type(got["b"][0]) is float  # numpy scalars -> Python
    assert np.array_equal(got["big"], data["big"])
    assert got["big"].dtype == np.float64 and got["big"].dtype.isnative
    assert got[7][0][0].shape == (0,)


def test_restricted_loads_runs_nothing(tmp_path: Path) -> None:
    """A malicious pickle (as a --stats file could be) is refused and its command never runs."""
    marker = tmp_path / "pwned"
    evil = pickle.dumps((np.zeros(11), _Evil(f"touch {marker}")))
    with pytest.raises(RestrictedPickleError, match=r"refusing to load global") as info:
        restricted_loads(evil)
    assert isinstance(info.value, InputError)
    assert not marker.exists()
    nested = pickle.dumps({"stats": [_Evil(f"touch {marker}")]}, protocol=2)
    with pytest.raises(RestrictedPickleError, match=r"(posix|nt|os)\.system"):
        restricted_loads(nested)
    assert not marker.exists()


@pytest.mark.parametrize("value", [
    {1, 2}, frozenset([1]), bytearray(b"x"), 1j, np.array([1, None], dtype=object),
    np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]), np.array(["ab"]), slice(1, 2),
], ids=["set", "frozenset", "bytearray", "complex", "object array", "structured array",
        "string array", "slice"])
def test_restricted_loads_refuses_everything_else(value) -> None:
    with pytest.raises(RestrictedPickleError):
        restricted_loads(pickle.dumps(value))


def test_restricted_loads_refuses_malformed() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(RestrictedPickleError, match="contains itself"):
        restricted_loads(pickle.dumps(loop))
    data = pickle.dumps((np.zeros(11), np.ones(11)))
    for cut in (1, 20, len(data) - 1):
        with pytest.raises(RestrictedPickleError, match="corrupt or truncated|malformed"):
            restricted_loads(data[:cut])
    with pytest.raises(RestrictedPickleError):
        restricted_loads(b"")
    # an array whose shape claims more data than it carries
    bad = pickle.dumps(np.zeros(4)).replace(b"K\x04\x85", b"K\x05\x85")
    assert bad != pickle.dumps(np.zeros(4))
    with pytest.raises(RestrictedPickleError, match="bytes, expected"):
        restricted_loads(bad)


def test_restricted_loads_allowed_classes() -> None:
    """Allowed classes come back as inert stand-ins holding their state; others are refused."""
    from sklearn.kernel_ridge import KernelRidge

    data = pickle.dumps(KernelRidge(kernel="laplacian").fit([[0.0], [1.0]], [0.0, 1.0]))
    with pytest.raises(RestrictedPickleError, match="sklearn.kernel_ridge.KernelRidge"):
        restricted_loads(data)
    obj = restricted_loads(data, allowed=[KERNEL_RIDGE])
    assert isinstance(obj, PickledObject) and type(obj).__name__ == "KernelRidge"
    assert obj.state["kernel"] == "laplacian"
    assert isinstance(obj.state["X_fit_"], np.ndarray) and obj.state["X_fit_"].shape == (2, 1)
    again = restricted_loads(data, allowed=[KERNEL_RIDGE])
    assert type(again) is not type(obj)  # fresh stand-in classes per load


def test_reading_needs_no_scipy(tmp_path: Path) -> None:
    """utils.calibration imports light: reading stats or calibrators needs neither SciPy nor
    scikit-learn (normalisation uses restricted_loads for the study's globalminmax.pickle)."""
    stats = tmp_path / "globalminmax.pickle"
    stats.write_bytes(pickle.dumps((np.zeros(11, np.float32), np.ones(11, np.float32))))
    cal = save_calibrator(TemperatureCalibrator(2.0), tmp_path / "t.json")
    code = (
        "import sys; sys.modules['scipy'] = None; sys.modules['sklearn'] = None\n"
        "from pathlib import Path\n"
        "from utils.calibration import load_calibrator, restricted_loads\n"
        f"mins, maxs = restricted_loads(Path({str(stats)!r}).read_bytes())\n"
        f"print(mins.shape[0], maxs.sum(), load_calibrator({str(cal)!r}).temperature)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["11", "11.0", "2.0"]
