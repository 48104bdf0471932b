"""Tests for utils.mapping.smoothing: the vectorised 3x3 mode filter equals the study's."""

from __future__ import annotations

import numpy as np
import pytest

from utils.mapping.smoothing import NODATA, mode_filter_3x3, reference_mode_filter

ND = NODATA


def _both(a: np.ndarray, **kw) -> np.ndarray:
    """Fast result, after asserting it equals the reference."""
    fast = mode_filter_3x3(a, **kw)
    ref = reference_mode_filter(a)
    assert fast.dtype == np.int16 and fast.shape == a.shape
    np.testing.assert_array_equal(fast, ref)
    return fast


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (2, 2), (17, 23), (64, 41)])
@pytest.mark.parametrize("nodata_frac", [0.0, 0.3, 0.8])
def test_equals_reference_on_random_maps(shape, nodata_frac):
    rng = np.random.default_rng(hash((shape, nodata_frac)) % 2**32)
    a = rng.integers(0, 8, shape).astype(np.int16)
    a[rng.random(shape) < nodata_frac] = ND
    _both(a)


@pytest.mark.parametrize("n_values", [2, 3])
def test_equals_reference_with_few_classes_many_ties(n_values):
    # Few distinct values make ties frequent.
    rng = np.random.default_rng(n_values)
    a = rng.integers(0, n_values, (40, 50)).astype(np.int16) * 3  # classes 0,3(,6)
    a[rng.random(a.shape) < 0.25] = ND
    _both(a)


@pytest.mark.parametrize("block_pixels", [1, 10, 37, 200, 10**7])
def test_row_blocks_do_not_change_result(block_pixels):
    rng = np.random.default_rng(7)
    a = rng.integers(0, 8, (29, 13)).astype(np.int16)
    a[rng.random(a.shape) < 0.2] = ND
    np.testing.assert_array_equal(
        mode_filter_3x3(a, block_pixels=block_pixels), reference_mode_filter(a)
    )


def test_three_way_tie_goes_to_smallest_class():
    # Window of the centre pixel: three 6s, three 2s, three 4s -> 2 wins.
    a = np.array([[6, 6, 6], [4, 4, 4], [2, 2, 2]], dtype=np.int16)
    out = _both(a)
    assert out[1, 1] == 2
    # Same multiset in another arrangement, centre is 6.
    b = np.array([[2, 4, 6], [4, 6, 2], [6, 2, 4]], dtype=np.int16)
    assert _both(b)[1, 1] == 2


def test_two_way_tie_with_nodata_goes_to_smallest_class():
    # Centre window: 5 appears 3x, 1 appears 3x, three nodata -> 1 wins.
    a = np.array([[5, 5, ND], [1, 5, ND], [1, 1, ND]], dtype=np.int16)
    out = _both(a)
    assert out[1, 1] == 1


def test_majority_beats_smaller_class():
    a = np.array([[7, 7, 0], [7, 7, 0], [0, 7, 1]], dtype=np.int16)
    assert _both(a)[1, 1] == 7


def test_nodata_majority_does_not_win():
    # Centre valid with 8 nodata neighbours but one valid: keeps its class.
    a = np.full((3, 3), ND, dtype=np.int16)
    a[1, 1] = 3
    out = _both(a)
    assert out[1, 1] == 3
    assert (out[a == ND] == ND).all()


def test_nodata_pixels_stay_nodata_even_with_valid_neighbours():
    a = np.full((5, 5), 2, dtype=np.int16)
    a[2, 2] = ND
    a[0, 4] = ND
    out = _both(a)
    assert out[2, 2] == ND and out[0, 4] == ND
    assert (out[a != ND] == 2).all()


def test_all_nodata_stays_nodata():
    a = np.full((4, 6), ND, dtype=np.int16)
    out = _both(a)
    assert (out == ND).all()


def test_border_counts_as_nodata_not_as_a_class():
    # Corner pixel: window has 4 in-map pixels; 5 outside are nodata, not class 0.
    a = np.array([[3, 3, 0], [0, 3, 0], [0, 0, 0]], dtype=np.int16)
    out = _both(a)
    assert out[0, 0] == 3  # 3 appears 3x, 0 once (outside would add 5 zeros if cval=0)
    # Edge pixel (0, 1): in-map window 3,3,0 / 0,3,0 -> 3 three times, 0 three times -> tie -> 0.
    assert out[0, 1] == 0


def test_isolated_noise_pixel_removed():
    a = np.ones((5, 5), dtype=np.int16)
    a[2, 2] = 4
    out = _both(a)
    assert (out == 1).all()


def test_custom_nodata_and_int32_input():
    a = np.array([[0, 1, -1], [1, -1, 1], [1, 0, 0]], dtype=np.int32)
    fast = mode_filter_3x3(a, nodata=-1)
    ref = reference_mode_filter(a, nodata=-1)
    np.testing.assert_array_equal(fast, ref)
    assert fast.dtype == np.int16
    assert fast[1, 1] == -1 and fast[0, 2] == -1


def test_input_not_modified():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 8, (10, 10)).astype(np.int16)
    a[0] = ND
    before = a.copy()
    mode_filter_3x3(a)
    np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize("bad", [8, -5, 70000])
def test_out_of_range_values_rejected(bad):
    a = np.zeros((4, 4), dtype=np.int32)
    a[2, 1] = bad
    with pytest.raises(ValueError, match="row 2, col 1"):
        mode_filter_3x3(a)


def test_wrong_shape_and_dtype_rejected():
    with pytest.raises(ValueError, match="2-D"):
        mode_filter_3x3(np.zeros((2, 3, 4), dtype=np.int16))
    with pytest.raises(TypeError, match="integer"):
        mode_filter_3x3(np.zeros((3, 3), dtype=np.float32))
