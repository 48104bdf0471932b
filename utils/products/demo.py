"""Demo scenes (``python -m utils.demo.generate``) as Sentinel-2 L2A products, for the batch.

:func:`as_sentinel2` writes a demo scene's ``optical.tif`` as a folder of single-band
GeoTIFFs in the published encoding: DN = reflectance x 10000 + 1000 (processing baseline
05.09, BOA_ADD_OFFSET -1000), B02/B03/B04/B08 at 10 m, B11/B12 at 20 m (every other
pixel), SCL at 20 m (all snow and ice: nothing masked), with ``MTD_MSIL2A.xml`` and an
``MTD_TL.xml`` holding the scene's sun position.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

_MTD = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
 <n1:General_Info><Product_Info>
  <PRODUCT_START_TIME>{date}T10:20:31.024Z</PRODUCT_START_TIME>
  <PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>
  <Datatake><SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME></Datatake>
 </Product_Info><Product_Image_Characteristics>
  <QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE>10000</BOA_QUANTIFICATION_VALUE>
  </QUANTIFICATION_VALUES_LIST><BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
 </Product_Image_Characteristics></n1:General_Info>
</n1:Level-2A_User_Product>
"""
_MTD_TL = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd">
 <n1:Geometric_Info><Tile_Angles><Mean_Sun_Angle>
  <ZENITH_ANGLE unit="deg">{zen}</ZENITH_ANGLE><AZIMUTH_ANGLE unit="deg">{az}</AZIMUTH_ANGLE>
 </Mean_Sun_Angle></Tile_Angles></n1:Geometric_Info>
</n1:Level-2A_Tile_ID>
"""
_CODES = ("B02", "B03", "B04", "B08", "B11", "B12")


def as_sentinel2(scene: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Write demo scene folder ``scene`` as a Sentinel-2 L2A COG folder ``folder`` (new)."""
    scene, folder = Path(scene), Path(folder)
    meta = json.loads((scene / "scene.json").read_text())
    folder.mkdir()
    with rasterio.open(scene / "optical.tif") as src:
        refl, crs, t = src.read(), src.crs, src.transform
    dn = np.where(np.isfinite(refl), np.clip(np.round(refl * 10000) + 1000, 1, 65535), 0)
    dn = dn.astype(np.uint16)
    scl = np.full((dn.shape[1] // 2, dn.shape[2] // 2), 11, np.uint8)
    layers = [(c, dn[i] if i < 4 else dn[i, ::2, ::2]) for i, c in enumerate(_CODES)]
    for code, data in [*layers, ("SCL", scl)]:
        k = dn.shape[1] // data.shape[0]
        with rasterio.open(folder / f"{code}.tif", "w", driver="GTiff", width=data.shape[1],
                           height=data.shape[0], count=1, dtype=data.dtype, crs=crs,
                           transform=Affine(t.a * k, 0, t.c, 0, t.e * k, t.f)) as dst:
            dst.write(data, 1)
    d = meta["date"]
    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{b}">-1000</BOA_ADD_OFFSET>' for b in range(13))
    (folder / "MTD_MSIL2A.xml").write_text(_MTD.format(date=f"{d[:4]}-{d[4:6]}-{d[6:]}",
                                                       offsets=offsets))
    (folder / "MTD_TL.xml").write_text(_MTD_TL.format(zen=90 - meta["sun_elevation_deg"],
                                                      az=meta["sun_azimuth_deg"]))
    return folder
