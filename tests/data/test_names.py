"""Tests of utils.data.names: patch file names, folds and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from utils import errors
from utils.data.names import PatchError, check_folds, parse_patch_name
from utils.study import CLASS_INDEX, N_FOLDS


@pytest.mark.parametrize(
    ("name", "fold", "glacier", "date", "ident", "cls"),
    [
        ("0_aletsch_2019-08-22_ice.tif", 0, "aletsch", "2019-08-22", "", "ice"),
        ("5_hef_20200801_p12_snow.tif", 5, "hef", "20200801", "p12", "snow"),
        (
            "3_hef_20200801_pt_12_b_refrozen-like.tif",
            3,
            "hef",
            "20200801",
            "pt_12_b",
            "refrozen-like",
        ),
        ("/some/dir/2_x_d_1_cloud.TIFF", 2, "x", "d", "1", "cloud"),
    ],
)
def test_parse_good_names(name, fold, glacier, date, ident, cls):
    p = parse_patch_name(name)
    assert (p.fold, p.glacier, p.date, p.id) == (fold, glacier, date, ident)
    assert p.label == CLASS_INDEX[cls] and p.class_name == cls
    assert p.file == Path(name).name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("0_aletsch_2019_ice.png", "not a .tif"),
        ("0_aletsch_ice.tif", "3 '_'-separated fields"),
        ("6_aletsch_2019_ice.tif", "fold '6'"),
        ("x_aletsch_2019_ice.tif", "fold 'x'"),
        ("-1_aletsch_2019_ice.tif", "fold '-1'"),
        ("0_aletsch_2019_rock.tif", "unknown class 'rock'"),
        ("0_aletsch_2019_Ice.tif", "unknown class 'Ice'"),
        ("0__2019_ice.tif", "empty glacier"),
        ("0_aletsch__ice.tif", "empty date"),
        ("0_aletsch_2019__ice.tif", "empty id"),
    ],
)
def test_parse_bad_names(name, problem):
    with pytest.raises(PatchError) as err:
        parse_patch_name(name)
    assert name in str(err.value) and problem in str(err.value)


def test_patch_error_is_the_shared_input_error():
    """Every CLI exits 2 on InputError: a bad patch must be one (issue 11, item 7)."""
    with pytest.raises(errors.PatchError) as err:
        parse_patch_name("0_aletsch_2019_rock.tif")
    assert isinstance(err.value, errors.InputError) and isinstance(err.value, PatchError)
    assert err.value.file == "0_aletsch_2019_rock.tif" and "rock" in err.value.problem


def test_check_folds():
    assert check_folds(None) == list(range(N_FOLDS)) == [0, 1, 2, 3, 4, 5]
    assert check_folds(3) == [3] and check_folds([4, 1, 4]) == [1, 4]
    for bad in ([6], [-1], []):
        with pytest.raises(errors.InputError, match="folds must be integers 0..5") as err:
            check_folds(bad)
        assert isinstance(err.value, ValueError) and err.value.options == ("folds",)
