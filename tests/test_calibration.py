"""Tests of utils.calibration.core: confidences, reliability/ECE, calibrators, persistence."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from utils.calibration.core import (
    KINDS,
    CalibrationError,
    IsotonicCalibrator,
    KernelRidgeCalibrator,
    Reliability,
    TemperatureCalibrator,
    bin_index,
    classwise_ece,
    classwise_reliability,
    correctness,
    ece,
    fit_calibrator,
    fit_isotonic,
    fit_kernel_ridge,
    fit_kernel_ridge_points,
    fit_temperature,
    kernel_matrix,
    kernel_ridge_points,
    load_calibrator,
    max_confidence,
    pool_reliability,
    reliability,
    save_calibrator,
    shannon_confidence,
)
from utils.study import N_CLASSES

ROOT = Path(__file__).resolve().parents[1]
FOLDS = range(6)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def synthetic(n: int, sharpness: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); reported probs softmax(sharpness * z).

    sharpness > 1 gives over-confident, < 1 under-confident predictions, with
    the true accuracy a known function of the logits (temperature = sharpness).
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, N_CLASSES)) * 2.0
    q = _softmax(z)
    labels = np.minimum((q.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1), N_CLASSES - 1)
    return _softmax(sharpness * z), labels


# --------------------------------------------------------------------------- confidences


def test_max_and_shannon_confidence() -> None:
    one_hot = np.eye(N_CLASSES)[[0, 3, 7]]
    uniform = np.full((2, N_CLASSES), 1.0 / N_CLASSES)
    assert np.allclose(shannon_confidence(one_hot), 1.0, atol=1e-4)
    assert np.all(shannon_confidence(one_hot) < 1.0)  # clipping at 1e-6
    assert np.allclose(shannon_confidence(uniform), 0.0, atol=1e-12)
    probs = np.array([[0.5, 0.3, 0.2, 0, 0, 0, 0, 0]])
    assert max_confidence(probs)[0] == 0.5
    s = shannon_confidence(probs)[0]
    q = np.clip(probs[0], 1e-6, 1 - 1e-6)
    assert s == pytest.approx(1 + np.sum(q * np.log(q)) / np.log(8), abs=1e-12)
    # works on maps (H, W, C)
    assert shannon_confidence(np.broadcast_to(uniform[0], (3, 4, N_CLASSES))).shape == (3, 4)
    with pytest.raises(ValueError, match="classes"):
        shannon_confidence(np.full((1, 4), 0.25))


# --------------------------------------------------------------------------- reliability

HAND_CONF = np.array([0.1, 0.2, 0.3, 0.55, 0.6, 0.9, 1.0, 0.25])
HAND_OK = np.array([0, 1, 0, 1, 1, 1, 1, 0], dtype=bool)


def test_reliability_hand_example() -> None:
    rel = reliability(HAND_CONF, HAND_OK, n_bins=4)
    # bins [0,.25) [.25,.5) [.5,.75) [.75,1]; 0.25 is on an edge -> second bin
    assert rel.count.tolist() == [2, 2, 2, 2]
    assert np.allclose(rel.conf, [0.15, 0.275, 0.575, 0.95])
    assert np.allclose(rel.acc, [0.5, 0.0, 1.0, 1.0])
    assert np.allclose(rel.edges, [0, 0.25, 0.5, 0.75, 1.0])
    expected = (2 * 0.35 + 2 * 0.275 + 2 * 0.425 + 2 * 0.05) / 8
    assert ece(rel) == pytest.approx(expected, abs=1e-12)
    assert ece(HAND_CONF, HAND_OK, n_bins=4) == pytest.approx(expected, abs=1e-12)


def test_reliability_empty_bins_and_edges() -> None:
    rel = reliability(HAND_CONF, HAND_OK, n_bins=10)
    assert rel.count.sum() == len(HAND_CONF)
    assert rel.count[4] == 0 and np.isnan(rel.conf[4]) and np.isnan(rel.acc[4])
    assert rel.count[9] == 2  # 0.9 and 1.0
    # ECE by hand over the 7 non-empty bins (each holds its own points)
    per_bin = {1: ([0.1], [0]), 2: ([0.2, 0.25], [1, 0]), 3: ([0.3], [0]), 5: ([0.55], [1]),
               6: ([0.6], [1]), 9: ([0.9, 1.0], [1, 1])}
    total = sum(len(c) * abs(np.mean(c) - np.mean(a)) for c, a in per_bin.values())
    assert ece(rel) == pytest.approx(total / 8, abs=1e-12)
    assert np.isnan(ece(reliability(np.array([]), np.array([], dtype=bool))))


def test_bin_index_edges() -> None:
    assert bin_index([1.0], 100)[0] == 99
    assert bin_index([1.0], 25)[0] == 24
    assert bin_index([0.0], 10)[0] == 0
    assert bin_index(np.arange(11) / 10, 10).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    assert bin_index([29 / 100], 100)[0] == 29  # exact edges go to the upper bin
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bin_index([1.2], 10)
    with pytest.raises(ValueError):
        bin_index([np.nan], 10)


def test_pooled_equals_concatenated() -> None:
    rng = np.random.default_rng(0)
    conf = rng.random(3000) ** 0.3
    ok = rng.random(3000) < conf
    parts = np.split(np.arange(3000), [500, 1700])
    pooled = pool_reliability(reliability(conf[i], ok[i], 25) for i in parts)
    whole = reliability(conf, ok, 25)
    assert isinstance(pooled, Reliability)
    assert np.array_equal(pooled.count, whole.count)
    m = whole.count > 0
    assert np.allclose(pooled.conf[m], whole.conf[m], rtol=0, atol=1e-12)
    assert np.allclose(pooled.acc[m], whole.acc[m], rtol=0, atol=1e-12)
    assert np.all(np.isnan(pooled.conf[~m]))
    assert ece(pooled) == pytest.approx(ece(whole), abs=1e-12)
    with pytest.raises(ValueError, match="different bins"):
        pool_reliability([reliability(conf, ok, 10), reliability(conf, ok, 20)])


def test_classwise_selection() -> None:
    probs = np.full((6, N_CLASSES), 0.02)
    pred = np.array([2, 2, 5, 2, 5, 0])
    probs[np.arange(6), pred] = [0.9, 0.5, 0.7, 0.95, 0.3, 0.8]
    labels = np.array([2, 1, 5, 2, 4, 0])
    rel = classwise_reliability(probs, labels, 2, n_bins=10)
    assert rel.count.sum() == 3
    assert rel.count[9] == 2 and rel.acc[9] == 1.0  # 0.9 and 0.95, both right
    assert rel.count[5] == 1 and rel.acc[5] == 0.0  # 0.5, wrong
    per_class = classwise_ece(probs, labels, n_bins=10)
    assert per_class.shape == (N_CLASSES,)
    assert per_class[2] == pytest.approx((0.5 + 2 * abs(0.925 - 1)) / 3)
    assert per_class[5] == pytest.approx((0.3 + 0.3) / 2)  # 0.7 right, 0.3 wrong
    assert np.isnan(per_class[1])  # never predicted
    # a replacement confidence is used when given
    rel2 = classwise_reliability(probs, labels, 2, n_bins=10, conf=np.full(6, 0.05))
    assert rel2.count[0] == 3
    assert correctness(probs, labels).tolist() == [True, False, True, True, False, True]


# --------------------------------------------------------------------------- calibrators


@pytest.mark.parametrize("sharpness", [2.5, 0.4], ids=["overconfident", "underconfident"])
@pytest.mark.parametrize("kind", KINDS)
def test_calibrators_reduce_ece(kind: str, sharpness: float) -> None:
    probs, labels = synthetic(40000, sharpness, seed=1)
    val, test = slice(0, 20000), slice(20000, None)
    ok = correctness(probs[test], labels[test])
    before = ece(max_confidence(probs[test]), ok)
    cal = fit_calibrator(kind, probs[val], labels[val])
    after = ece(cal.calibrate(probs[test]), ok)
    assert before > 0.15
    assert after <= 0.5 * before, (kind, before, after)


def test_temperature_recovers_sharpness() -> None:
    for sharpness in (2.5, 0.4):
        probs, labels = synthetic(20000, sharpness, seed=2)
        cal = fit_temperature(probs, labels)
        assert cal.temperature == pytest.approx(sharpness, rel=0.05)
        calibrated = cal.calibrated_probs(probs)
        assert np.allclose(calibrated.sum(axis=1), 1.0)
        assert np.array_equal(calibrated.argmax(1), probs.argmax(1))


def test_kernel_ridge_matches_sklearn() -> None:
    from sklearn.kernel_ridge import KernelRidge

    probs, labels = synthetic(5000, 2.5, seed=3)
    conf, ok = max_confidence(probs), correctness(probs, labels)
    x, y, alpha = kernel_ridge_points(conf, ok, 25)
    assert x[0] == 0 and y[0] == 0 and x[-1] == 1 and y[-1] == 1
    assert alpha[0] == 0 and alpha[-1] == 0 and np.all(alpha >= 0) and np.any(alpha > 0)
    ours = fit_kernel_ridge(conf, ok)
    ref = KernelRidge(kernel="laplacian", alpha=alpha).fit(x[:, None], y)
    assert np.allclose(ours.dual_coef, ref.dual_coef_, rtol=0, atol=1e-9)
    grid = np.linspace(0, 1, 101)
    assert np.allclose(ours.predict(grid, clip=False), ref.predict(grid[:, None]), atol=1e-9)
    # scikit-learn uses an unequal alpha array per *target*: only alpha[0] counts
    ref0 = KernelRidge(kernel="laplacian", alpha=alpha[0]).fit(x[:, None], y)
    assert np.allclose(ref.dual_coef_, ref0.dual_coef_, atol=1e-12)
    # per-sample ridge: (K + diag(alpha)) c = y, via a precomputed kernel
    per = fit_kernel_ridge(conf, ok, alpha_mode="per_sample")
    k = kernel_matrix(x[:, None], x[:, None])
    ref_ps = KernelRidge(kernel="precomputed", alpha=0.0).fit(k + np.diag(alpha), y)
    assert np.allclose(per.dual_coef, ref_ps.dual_coef_, atol=1e-9)
    assert np.max(np.abs(per.dual_coef - ours.dual_coef)) > 1e-6


def test_isotonic_matches_sklearn() -> None:
    from sklearn.isotonic import IsotonicRegression

    probs, labels = synthetic(4000, 2.5, seed=4)
    conf = np.round(max_confidence(probs), 3)  # ties exercise the tie handling
    ok = correctness(probs, labels)
    ours = fit_isotonic(conf, ok)
    ref = IsotonicRegression(out_of_bounds="clip").fit(conf, ok.astype(float))
    grid = np.linspace(0, 1, 1001)
    assert np.allclose(ours.predict(grid), ref.predict(grid), atol=1e-12)
    assert np.all(np.diff(ours.predict(grid)) >= 0)
    assert len(ours.x) < len(np.unique(conf))  # constant runs are compressed


def test_predict_clip() -> None:
    cal = KernelRidgeCalibrator([[0.5]], [2.0])
    assert cal.predict([0.5], clip=False)[0] == pytest.approx(2.0)
    assert cal.predict([0.5])[0] == 1.0
    neg = KernelRidgeCalibrator([[0.5]], [-1.0])
    assert neg.predict([0.5])[0] == 0.0
    probs = np.full((2, N_CLASSES), 0.0)
    probs[:, 0] = [0.5, 1.0]
    assert np.allclose(cal.calibrate(probs), [1.0, 1.0])
    assert cal.predict(np.full((2, 3), 0.5)).shape == (2, 3)


# --------------------------------------------------------------------------- persistence


def _fitted(kind: str):
    probs, labels = synthetic(4000, 2.5, seed=5)
    return fit_calibrator(kind, probs, labels), probs


@pytest.mark.parametrize("kind", KINDS)
def test_json_round_trip(kind: str, tmp_path: Path) -> None:
    cal, probs = _fitted(kind)
    path = save_calibrator(cal, tmp_path / f"{kind}.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{kind}.json"]  # no temp files left
    doc = json.loads(path.read_text())
    assert doc["type"] == kind and doc["format_version"] == 1
    back = load_calibrator(path)
    assert type(back) is type(cal)
    assert np.array_equal(back.calibrate(probs), cal.calibrate(probs))


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


def _expect_error(path: Path, match: str) -> CalibrationError:
    with pytest.raises(CalibrationError, match=match) as info:
        load_calibrator(path)
    assert path.name in str(info.value)
    return info.value


def test_bad_files(tmp_path: Path) -> None:
    from sklearn.kernel_ridge import KernelRidge

    good = pickle.dumps(KernelRidge(kernel="laplacian").fit([[0.0], [1.0]], [0.0, 1.0]))
    (tmp_path / "trunc.pickle").write_bytes(good[: len(good) // 2])
    _expect_error(tmp_path / "trunc.pickle", "corrupt or truncated|malformed")

    rng = np.random.default_rng(7)
    (tmp_path / "random.bin").write_bytes(b"\x80\x04" + rng.bytes(300))
    _expect_error(tmp_path / "random.bin", "KernelRidge")

    marker = tmp_path / "pwned"
    (tmp_path / "evil.pickle").write_bytes(pickle.dumps(_Evil(f"touch {marker}")))
    _expect_error(tmp_path / "evil.pickle", r"refusing to load global (posix|nt|os)\.system")
    assert not marker.exists()

    (tmp_path / "dict.pickle").write_bytes(pickle.dumps({"X_fit_": [1.0]}))
    _expect_error(tmp_path / "dict.pickle", "holds a dict, not a KernelRidge")

    (tmp_path / "objarr.pickle").write_bytes(pickle.dumps(np.array([1, None], dtype=object)))
    _expect_error(tmp_path / "objarr.pickle", "non-numeric dtype")

    # BUILD on the allowed globals themselves (set attributes on the class / function):
    # refused or confined to that load; a good file still loads afterwards
    for i, glob in enumerate((b"sklearn.kernel_ridge\nKernelRidge", b"numpy\nndarray",
                              b"numpy.core.multiarray\n_reconstruct")):
        tamper = (b"\x80\x02c" + glob + b"\nN}X\x0c\x00\x00\x00__setstate__K\x01s\x86b.")
        (tmp_path / f"tamper{i}.pickle").write_bytes(tamper)
        _expect_error(tmp_path / f"tamper{i}.pickle", "KernelRidge")
    (tmp_path / "good.pickle").write_bytes(good)
    assert isinstance(load_calibrator(tmp_path / "good.pickle"), KernelRidgeCalibrator)

    (tmp_path / "empty.pickle").write_bytes(b"")
    _expect_error(tmp_path / "empty.pickle", "empty")
    _expect_error(tmp_path / "missing.json", "cannot read")


def test_bad_json(tmp_path: Path) -> None:
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
        _expect_error(tmp_path / name, "JSON")


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
        "from utils.calibration.core import load_calibrator\n"
        f"cal = load_calibrator({str(_study_pickle(reference_dir, 0))!r})\n"
        "print(cal.X_fit.shape[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 2


def test_truncated_study_pickle(reference_dir: Path, tmp_path: Path) -> None:
    data = _study_pickle(reference_dir, 0).read_bytes()
    for cut in (10, 200, len(data) - 1):
        path = tmp_path / f"cut{cut}.pickle"
        path.write_bytes(data[:cut])
        _expect_error(path, "expected a calibrator JSON file or a scikit-learn KernelRidge")


def test_temperature_and_isotonic_validation() -> None:
    with pytest.raises(ValueError):
        TemperatureCalibrator(0.0)
    with pytest.raises(ValueError):
        IsotonicCalibrator([0.2, 0.1], [0.0, 1.0])
    with pytest.raises(ValueError, match="unknown calibrator kind"):
        fit_calibrator("platt", np.full((2, N_CLASSES), 1 / 8), [0, 1])


def test_kernel_ridge_repeated_points() -> None:
    """A bin whose mean confidence is exactly 1 repeats the (1, 1) anchor: least squares."""
    conf = np.array([0.5] * 10 + [1.0] * 20)
    ok = np.array([1, 0] * 5 + [1] * 19 + [0], dtype=bool)
    with pytest.warns(UserWarning, match="singular"):
        cal = fit_kernel_ridge(conf, ok)
    out = cal.predict([0.0, 0.5, 1.0], clip=False)
    assert np.allclose(out, [0.0, 0.5, (0.95 + 1.0) / 2], atol=1e-9)


def test_kernel_ridge_predict_in_chunks() -> None:
    import utils.calibration.core as cal_mod

    cal = KernelRidgeCalibrator([[0.0], [0.4], [1.0]], [0.1, -0.3, 0.9])
    conf = np.random.default_rng(8).random(cal_mod._PREDICT_CHUNK + 3)
    out = cal.predict(conf, clip=False)
    direct = kernel_matrix(conf[-5:, None], cal.X_fit) @ cal.dual_coef
    assert np.allclose(out[-5:], direct, atol=1e-15)
    assert np.allclose(out[:3], np.exp(-np.abs(conf[:3, None] - cal.X_fit[:, 0])) @ cal.dual_coef)
