"""Invalid patches: one clear error naming the file, or skipped and reported (CLI exit 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from patch_samples import make_patch

from utils.data.__main__ import main
from utils.data.files import write_patch
from utils.data.loading import load_patches
from utils.data.names import PatchError
from utils.data.skipped import skip_report_path


def _bad_nan() -> np.ndarray:
    x = make_patch(99)
    x[4, 5, 3] = np.nan
    return x


def _bad_inf() -> np.ndarray:
    x = make_patch(99)
    x[0, 0, 10] = -np.inf
    return x


BAD_CASES = {
    "name": ("0_aletsch_ice.tif", lambda: make_patch(99), "fields"),
    "class": ("0_aletsch_2019_p1_rock.tif", lambda: make_patch(99), "unknown class 'rock'"),
    "bands": ("0_aletsch_2019_p1_ice.tif", lambda: make_patch(99, (33, 33, 10)), "has 10 bands"),
    "size": ("0_aletsch_2019_p1_ice.tif", lambda: make_patch(99, (32, 33, 11)), "is 32 x 33"),
    "nan": ("0_aletsch_2019_p1_ice.tif", _bad_nan, "1 NaN/inf values (bands: nir)"),
    "inf": ("0_aletsch_2019_p1_ice.tif", _bad_inf, "1 NaN/inf values (bands: proximity)"),
    "unreadable": ("0_aletsch_2019_p1_ice.tif", None, "unreadable"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input(case, tmp_path, capsys):
    name, make, problem = BAD_CASES[case]
    folder = tmp_path / "data"
    folder.mkdir()
    good = ["0_aletsch_2019_p0_ice.tif", "1_hef_2020_p2_snow.tif"]
    for i, g in enumerate(good):
        write_patch(folder / g, make_patch(i))
    if make is None:
        (folder / name).write_bytes(b"this is not a GeoTIFF")
    else:
        write_patch(folder / name, make())

    with pytest.raises(PatchError) as err:
        load_patches(folder)
    assert name in str(err.value) and problem in str(err.value)

    report = tmp_path / "skipped.csv"
    ps = load_patches(folder, skip_invalid=True, report=report)
    assert ps.meta["file"].tolist() == good
    assert ps.skipped["file"].tolist() == [name]
    assert problem in ps.skipped["problem"].iloc[0]
    df = pd.read_csv(report)
    assert df["file"].tolist() == [name] and problem in df["problem"].iloc[0]

    out = tmp_path / "p.h5"
    with pytest.raises(SystemExit) as ex:  # an invalid patch is an input error: exit 2
        main(["pack", str(folder), str(out)])
    assert ex.value.code == 2
    err_text = capsys.readouterr().err
    assert name in err_text and "Traceback" not in err_text
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "data",
        "skipped.csv",
    ]
    assert main(["pack", str(folder), str(out), "--skip-invalid"]) == 0
    assert load_patches(out).meta["file"].tolist() == good
    cli_report = pd.read_csv(skip_report_path(out))
    assert skip_report_path(out).name == "p.skipped.csv"
    assert cli_report["file"].tolist() == [name]
