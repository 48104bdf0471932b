"""``python -m utils.products stack``: crop, exit status 2 with one line for input errors."""

from __future__ import annotations

import numpy as np
import rasterio
from conftest import NORTH, WEST

from utils.products.__main__ import main


def test_stack_cli_crops_to_bounds(s2, tmp_path, capsys):
    out = tmp_path / "crop.tif"
    code = main(["stack", str(s2.safe), str(out), "--quiet",
                 "--bounds", str(WEST + 15), str(NORTH - 75), str(WEST + 41), str(NORTH - 21)])
    assert code == 0 and "sentinel-2a 2023-08-15" in capsys.readouterr().err
    with rasterio.open(out) as src:  # snapped outwards to whole 10 m pixels
        assert (src.width, src.height) == (4, 6)
        assert (src.transform.c, src.transform.f) == (WEST + 10, NORTH - 20)
        assert np.isfinite(src.read(1)).any()


def test_stack_cli_errors(s2, tmp_path, capsys):
    out = tmp_path / "s.tif"
    assert main(["stack", str(s2.safe), str(out), "--quiet", "--mask", "9", "11"]) == 2
    assert "--mask" in capsys.readouterr().err and not out.exists()
    assert main(["stack", str(tmp_path / "nothing.SAFE"), str(out)]) == 2
    assert "nothing.SAFE: no such file or folder" in capsys.readouterr().err
    assert main(["stack", str(s2.safe), str(out), "--quiet"]) == 0
    assert main(["stack", str(s2.safe), str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    bounds = ["--bounds", "0", "0", "1", "1"]
    assert main(["stack", str(s2.safe), str(tmp_path / "b.tif"), *bounds]) == 2
    assert "do not overlap" in capsys.readouterr().err
