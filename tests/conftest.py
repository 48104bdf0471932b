"""Shared fixtures.

Tests that need the study's reference material use ``shared_dir``. On a user's
clone ``../shared`` is absent and those tests skip with a reason; CI sets
GLACIER_REQUIRE_SHARED=1 so a missing ``../shared`` fails instead of silently
skipping the golden checks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# test helper modules beside this file (mapscene) are importable from every test folder
sys.path.insert(0, str(Path(__file__).resolve().parent))
from mapscene import scene, weights  # noqa: E402, F401 (fixtures of the scene, mapping, apply tests)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _need(path: Path) -> Path:
    if path.exists():
        return path
    reason = f"{path} is absent (the study's reference material lives in ../shared)"
    if os.environ.get("GLACIER_REQUIRE_SHARED"):
        pytest.fail(reason + " but GLACIER_REQUIRE_SHARED is set")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (skips when absent, fails in CI)."""
    return _need(SHARED)


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    """``../shared/reference``: published weights, logs, calibrators, golden.npz."""
    return _need(shared_dir / "reference")


@pytest.fixture(scope="session")
def golden(reference_dir: Path):
    """The arrays of ``golden.npz`` (loaded once per session)."""
    import numpy as np

    with np.load(reference_dir / "golden.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """A generated ``tiny`` demo dataset (seed 0) with its pack, shared by all tests."""
    from utils.data.pack import pack_patches
    from utils.demo.generate import generate

    out = tmp_path_factory.mktemp("tiny_demo")
    generate(out, size="tiny", seed=0)
    pack_patches(out / "patches", out / "patches.h5", progress=False)
    return out


def _labels_agree(probs, ref, atol: float) -> None:
    """Labels (argmax) equal wherever ``ref``'s top two classes are more than ``2 * atol``
    apart; closer ones may swap with float32 rounding, which differs between CPUs (oneDNN
    picks kernels by CPU and tensor shape). Such near-ties must stay rare (< 0.5 %)."""
    import numpy as np

    probs, ref = np.asarray(probs), np.asarray(ref)
    top2 = np.sort(ref, axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 2 * atol
    assert clear.mean() > 0.995, f"{(~clear).sum()} near-ties of {clear.size}"
    np.testing.assert_array_equal(probs.argmax(-1)[clear], ref.argmax(-1)[clear])


@pytest.fixture(scope="session")
def labels_agree():
    """``labels_agree(probs, ref, atol)``: argmax equal except near-ties (see above)."""
    return _labels_agree
