"""Tests of utils.calibration.fitting: each calibrator reduces ECE; agreement with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from utils.calibration import (
    KINDS,
    correctness,
    ece,
    fit_calibrator,
    fit_isotonic,
    fit_kernel_ridge,
    fit_kernel_ridge_points,
    fit_temperature,
    kernel_matrix,
    kernel_ridge_points,
    max_confidence,
)


@pytest.mark.parametrize("sharpness", [2.5, 0.4], ids=["overconfident", "underconfident"])
@pytest.mark.parametrize("kind", KINDS)
def test_calibrators_reduce_ece(kind: str, sharpness: float, synthetic) -> None:
    probs, labels = synthetic(40000, sharpness, seed=1)
    val, test = slice(0, 20000), slice(20000, None)
    ok = correctness(probs[test], labels[test])
    before = ece(max_confidence(probs[test]), ok)
    cal = fit_calibrator(kind, probs[val], labels[val])
    after = ece(cal.calibrate(probs[test]), ok)
    assert before > 0.15
    assert after <= 0.5 * before, (kind, before, after)


def test_temperature_recovers_sharpness(synthetic) -> None:
    for sharpness in (2.5, 0.4):
        probs, labels = synthetic(20000, sharpness, seed=2)
        cal = fit_temperature(probs, labels)
        assert cal.temperature == pytest.approx(sharpness, rel=0.05)
        calibrated = cal.calibrated_probs(probs)
        assert np.allclose(calibrated.sum(axis=1), 1.0)
        assert np.array_equal(calibrated.argmax(1), probs.argmax(1))


def test_kernel_ridge_matches_sklearn(synthetic) -> None:
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


def test_isotonic_matches_sklearn(synthetic) -> None:
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


def test_kernel_ridge_repeated_points() -> None:
    """A bin at confidence 1 repeats the (1, 1) anchor: least squares (the study's rule
    ``conf < upper`` leaves exact 1.0 out of the bins, so the points are given directly)."""
    x = np.array([0.0, 0.5, 1.0, 1.0])
    y = np.array([0.0, 0.5, 0.95, 1.0])
    with pytest.warns(UserWarning, match="singular"):
        cal = fit_kernel_ridge_points(x, y, 0.0)
    out = cal.predict([0.0, 0.5, 1.0], clip=False)
    assert np.allclose(out, [0.0, 0.5, (0.95 + 1.0) / 2], atol=1e-9)
