"""Small products in the exact published layouts: Sentinel-2 L2A SAFE / COG folder,
Landsat Collection 2 Level-2, static STAC items with local hrefs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from affine import Affine

CRS = "EPSG:32632"
WEST, NORTH = 600000.0, 5100000.0
H10, W10 = 12, 10  # Sentinel-2 10 m grid (20 m: 6 x 5)
TILE, SENSING = "T32TMS", "20230815T102031"
SUN_AZ, SUN_ZEN = 152.5, 38.0
S2_CODES = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir1": "B11",
            "swir2": "B12"}
BAND_IDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]


def write_band(path: Path, data: np.ndarray, res: float, west: float = WEST,
               north: float = NORTH, crs: str = CRS) -> Path:
    """One band as the products ship it: JP2 (lossless) or GeoTIFF by the suffix."""
    driver = "JP2OpenJPEG" if path.suffix == ".jp2" else "GTiff"
    opts = {"QUALITY": 100, "REVERSIBLE": "YES"} if driver == "JP2OpenJPEG" else {}
    with rasterio.open(path, "w", driver=driver, width=data.shape[1], height=data.shape[0],
                       count=1, dtype=data.dtype, crs=crs,
                       transform=Affine(res, 0, west, 0, -res, north), **opts) as dst:
        dst.write(data, 1)
    return path


def mtd_msil2a(baseline: str = "05.09", offset: int | None = -1000,
               level: str = "Level-2A") -> str:
    """MTD_MSIL2A.xml (PSD 14.9 structure, the parts the reader uses)."""
    offsets = "" if offset is None else (
        "<BOA_ADD_OFFSET_VALUES_LIST>" + "".join(
            f'<BOA_ADD_OFFSET band_id="{i}">{offset}</BOA_ADD_OFFSET>' for i in range(13))
        + "</BOA_ADD_OFFSET_VALUES_LIST>")
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:{level}_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2023-08-15T10:20:31.024Z</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>2023-08-15T10:20:31.024Z</PRODUCT_STOP_TIME>
      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Datatake datatakeIdentifier="GS2A_20230815T102031_042417_N05.09">
        <SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
      </Datatake>
    </Product_Info>
    <Product_Image_Characteristics>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
      {offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:{level}_User_Product>
"""


def mtd_tl() -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd">
  <n1:Geometric_Info>
    <Tile_Geocoding><HORIZONTAL_CS_CODE>{CRS}</HORIZONTAL_CS_CODE></Tile_Geocoding>
    <Tile_Angles>
      <Mean_Sun_Angle>
        <ZENITH_ANGLE unit="deg">{SUN_ZEN}</ZENITH_ANGLE>
        <AZIMUTH_ANGLE unit="deg">{SUN_AZ}</AZIMUTH_ANGLE>
      </Mean_Sun_Angle>
    </Tile_Angles>
  </n1:Geometric_Info>
</n1:Level-2A_Tile_ID>
"""


def s2_arrays(seed: int = 0) -> SimpleNamespace:
    """DNs of the six bands (10 m: H10 x W10; 20 m: half) and SCL codes (20 m)."""
    rng = np.random.default_rng(seed)
    dn = {b: rng.integers(1001, 11000, (H10, W10) if S2_CODES[b] in ("B02", "B03", "B04", "B08")
                          else (H10 // 2, W10 // 2)).astype(np.uint16) for b in S2_CODES}
    dn["blue"][0, 0] = 0  # no data
    scl = np.full((H10 // 2, W10 // 2), 11, dtype=np.uint8)  # snow and ice
    scl[1, 1], scl[2, 2], scl[3, 3], scl[4, 4], scl[5, 0], scl[0, 4] = 9, 3, 10, 0, 5, 8
    return SimpleNamespace(dn=dn, scl=scl)


def make_safe(root: Path, arrays: SimpleNamespace, fmt: str = ".jp2", baseline: str = "05.09",
              offset: int | None = -1000, level: str = "Level-2A") -> Path:
    """``S2A_MSIL2A_..._N0509_R065_T32TMS_....SAFE`` with MTD XMLs, R10m and R20m JP2s."""
    safe = root / f"S2A_MSIL2A_{SENSING}_N0509_R065_{TILE}_20230815T150000.SAFE"
    granule = safe / "GRANULE" / f"L2A_{TILE}_A042417_20230815T102444"
    for res in ("R10m", "R20m", "R60m"):
        (granule / "IMG_DATA" / res).mkdir(parents=True)
    (safe / "MTD_MSIL2A.xml").write_text(mtd_msil2a(baseline, offset, level))
    (granule / "MTD_TL.xml").write_text(mtd_tl())
    for band, code in S2_CODES.items():
        res = 10 if code in ("B02", "B03", "B04", "B08") else 20
        write_band(granule / "IMG_DATA" / f"R{res}m" / f"{TILE}_{SENSING}_{code}_{res}m{fmt}",
                   arrays.dn[band], res)
    write_band(granule / "IMG_DATA" / "R20m" / f"{TILE}_{SENSING}_SCL_20m{fmt}", arrays.scl, 20)
    return safe


def make_cog_folder(root: Path, arrays: SimpleNamespace) -> Path:
    """The same product as single-band COGs (B02.tif ... SCL.tif) plus the metadata XMLs."""
    folder = root / "s2cogs"
    folder.mkdir()
    for band, code in S2_CODES.items():
        res = 10 if code in ("B02", "B03", "B04", "B08") else 20
        write_band(folder / f"{code}.tif", arrays.dn[band], res)
    write_band(folder / "SCL.tif", arrays.scl, 20)
    (folder / "product_metadata.xml").write_text(mtd_msil2a())
    (folder / "granule_metadata.xml").write_text(mtd_tl())
    return folder


def expected_s2(arrays: SimpleNamespace, offset: int = -1000) -> np.ndarray:
    """(6, H10, W10) reflectance the stack must hold (20 m pixels as 2 x 2 blocks)."""
    up = lambda a: np.repeat(np.repeat(a, 2, 0), 2, 1)  # noqa: E731
    out = []
    for band in S2_CODES:
        dn = arrays.dn[band] if arrays.dn[band].shape == (H10, W10) else up(arrays.dn[band])
        r = (dn.astype(np.float64) + offset) / 10000
        r[dn == 0] = np.nan
        out.append(r)
    bad = up(np.isin(arrays.scl, (0, 1, 3, 8, 9, 10)))
    out = np.array(out, dtype=np.float32)
    out[:, bad] = np.nan
    return out


# ----------------------------------------------------------------------------- Landsat

L_H, L_W = 4, 5  # 30 m pixels
LANDSAT_ID = "LC08_L2SP_195028_20230815_20230822_02_T1"


def landsat_arrays(seed: int = 1) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    dn = rng.integers(7300, 43000, (6, L_H, L_W)).astype(np.uint16)
    qa = np.full((L_H, L_W), 1 << 6, dtype=np.uint16)  # clear
    qa[0, 0] = 1  # fill
    qa[0, 1] = 1 << 3  # cloud
    qa[1, 1] = 1 << 4  # cloud shadow
    qa[2, 2] = 1 << 2  # cirrus
    qa[3, 3] = 1 << 5 | 1 << 6  # snow: kept
    qa[3, 4] = 1 << 1 | 1 << 6  # dilated cloud: kept by default
    dn[:, 0, 0] = 0
    return SimpleNamespace(dn=dn, qa=qa)


def make_landsat(root: Path, arrays: SimpleNamespace, craft: str = "LANDSAT_8",
                 mtl: str = "json", level: str = "L2SP") -> Path:
    """``LC08_L2SP_...`` folder: SR_B*.TIF, QA_PIXEL.TIF and the MTL (json or txt)."""
    pid = LANDSAT_ID if craft in ("LANDSAT_8", "LANDSAT_9") else LANDSAT_ID.replace("LC08", "LT05")
    folder = root / pid
    folder.mkdir()
    numbers = (2, 3, 4, 5, 6, 7) if craft in ("LANDSAT_8", "LANDSAT_9") else (1, 2, 3, 4, 5, 7)
    contents = {"LANDSAT_PRODUCT_ID": pid, "PROCESSING_LEVEL": level}
    sr = {}
    for i, n in enumerate(numbers):
        name = f"{pid}_SR_B{n}.TIF"
        write_band(folder / name, arrays.dn[i], 30.0)
        contents[f"FILE_NAME_BAND_{n}"] = name
        sr[f"REFLECTANCE_MULT_BAND_{n}"] = "2.75E-05"
        sr[f"REFLECTANCE_ADD_BAND_{n}"] = "-0.200000"
    write_band(folder / f"{pid}_QA_PIXEL.TIF", arrays.qa, 30.0)
    contents["FILE_NAME_QUALITY_L1_PIXEL"] = f"{pid}_QA_PIXEL.TIF"
    doc = {"PRODUCT_CONTENTS": contents,
           "IMAGE_ATTRIBUTES": {"SPACECRAFT_ID": craft, "SENSOR_ID": "OLI_TIRS",
                                "DATE_ACQUIRED": "2023-08-15", "SUN_AZIMUTH": "145.25",
                                "SUN_ELEVATION": "52.75"}}
    if level.startswith("L2"):
        doc["LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"] = sr
    if mtl == "json":
        (folder / f"{pid}_MTL.json").write_text(json.dumps({"LANDSAT_METADATA_FILE": doc}))
    else:
        lines = ["GROUP = LANDSAT_METADATA_FILE"]
        for group, values in doc.items():
            lines.append(f"  GROUP = {group}")
            lines += [f'    {k} = "{v}"' if not v[0].isdigit() and v[0] != "-" else f"    {k} = {v}"
                      for k, v in values.items()]
            lines.append(f"  END_GROUP = {group}")
        lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END"]
        (folder / f"{pid}_MTL.txt").write_text("\n".join(lines) + "\n")
    return folder


def expected_landsat(arrays: SimpleNamespace) -> np.ndarray:
    up = lambda a: np.repeat(np.repeat(a, 3, -2), 3, -1)  # noqa: E731
    r = arrays.dn.astype(np.float64) * 2.75e-5 - 0.2
    r[:, arrays.dn[0] == 0] = np.nan
    bad = (arrays.qa & 0b11101) != 0
    r[:, bad] = np.nan
    return up(r.astype(np.float32))


# ----------------------------------------------------------------------------- STAC


def stac_item(folder: Path, name: str = "item.json", raster_bands: bool = True,
              sun: bool = True) -> Path:
    """A static STAC item over the COG folder, hrefs relative to the item."""
    assets = {}
    for band, code in S2_CODES.items():
        common = {"swir1": "swir16", "swir2": "swir22"}.get(band, band)
        a = {"href": f"./{code}.tif", "type": "image/tiff; application=geotiff",
             "eo:bands": [{"name": code, "common_name": common}], "roles": ["data"]}
        if raster_bands:
            a["raster:bands"] = [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]
        assets[common] = a
    assets["scl"] = {"href": "./SCL.tif", "type": "image/tiff", "roles": ["data"]}
    assets["product_metadata"] = {"href": "./product_metadata.xml", "roles": ["metadata"]}
    assets["granule_metadata"] = {"href": "./granule_metadata.xml", "roles": ["metadata"]}
    props = {"datetime": "2023-08-15T10:20:31Z", "platform": "sentinel-2a",
             "constellation": "sentinel-2"}
    if sun:
        props |= {"view:sun_azimuth": SUN_AZ, "view:sun_elevation": 90 - SUN_ZEN}
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "S2A_32TMS_20230815_0_L2A",
            "stac_extensions": [], "geometry": None, "properties": props, "links": [],
            "assets": assets}
    path = folder / name
    path.write_text(json.dumps(item))
    return path


@pytest.fixture
def s2(tmp_path: Path) -> SimpleNamespace:
    arrays = s2_arrays()
    return SimpleNamespace(arrays=arrays, safe=make_safe(tmp_path, arrays), dir=tmp_path)
