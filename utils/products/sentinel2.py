"""Sentinel-2 Level-2A as distributed: a ``.SAFE`` folder, or a folder of single-band COGs.

SAFE: ``S2x_MSIL2A_<sensing>_N<baseline>_R<orbit>_T<tile>_<discriminator>.SAFE/`` with
``MTD_MSIL2A.xml`` (product metadata) and ``GRANULE/<granule>/IMG_DATA/R10m`` (B02, B03,
B04, B08), ``R20m`` (B11, B12, SCL) as ``T<tile>_<sensing>_<band>_<res>.jp2``, plus
``GRANULE/<granule>/MTD_TL.xml`` (tile metadata with the mean sun angles).
COG folder (as STAC APIs serve them): ``B02.tif`` ... ``B12.tif`` and ``SCL.tif`` (any
name containing the band code, e.g. ``T32TMS_20230815T102031_B02_10m.tif``), next to the
product metadata (``MTD_MSIL2A.xml`` or ``product_metadata.xml``) and optionally the tile
metadata (``MTD_TL.xml`` or ``granule_metadata.xml``).

Reflectance = (DN + BOA_ADD_OFFSET[band]) / BOA_QUANTIFICATION_VALUE, both read from the
product metadata; for processing baseline >= 04.00 the offset must be there (it is -1000
in every product so far, but it is read, not assumed); before 04.00 it is 0.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from utils.products.base import Product, ProductError

#: Band code, file resolution (m) and BOA_ADD_OFFSET band_id of each optical band.
S2_BANDS: dict[str, tuple[str, int, int]] = {
    "blue": ("B02", 10, 1),
    "green": ("B03", 10, 2),
    "red": ("B04", 10, 3),
    "nir": ("B08", 10, 7),
    "swir1": ("B11", 20, 11),
    "swir2": ("B12", 20, 12),
}
SCL = ("SCL", 20)
PRODUCT_METADATA = ("MTD_MSIL2A.xml", "product_metadata.xml")
TILE_METADATA = ("MTD_TL.xml", "granule_metadata.xml")
RASTER_SUFFIXES = (".jp2", ".tif", ".tiff")
#: First processing baseline whose DNs carry BOA_ADD_OFFSET.
OFFSET_BASELINE = 4.0


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise ProductError(f"{path}: not a readable XML metadata file ({e})") from None


def _find(root: ET.Element, name: str) -> list[ET.Element]:
    return [el for el in root.iter() if _local(el.tag) == name]


def _text(root: ET.Element, name: str, path: Path) -> str:
    found = _find(root, name)
    if not found or not (found[0].text or "").strip():
        raise ProductError(f"{path}: the metadata has no {name}")
    return found[0].text.strip()


def read_product_metadata(path: Path) -> dict:
    """Parse ``MTD_MSIL2A.xml``: sensor, date, baseline, and per band scale and offset.

    Returns ``{"sensor", "date", "baseline", "scale": {band: 1/Q}, "offset": {band: off/Q}}``
    for the optical bands (reflectance = DN * scale + offset).
    """
    root = _parse_xml(path)
    kind = _local(root.tag)
    if "Level-1C" in kind:
        raise ProductError(f"{path}: a Level-1C product (top-of-atmosphere); the classifier "
                           "needs Level-2A surface reflectance")
    if "Level-2A" not in kind:
        raise ProductError(f"{path}: not Sentinel-2 Level-2A product metadata (root {kind})")
    baseline_text = _text(root, "PROCESSING_BASELINE", path)
    if not re.fullmatch(r"\d{2}\.\d{2}", baseline_text):
        raise ProductError(f"{path}: unknown processing baseline {baseline_text!r} "
                           "(expected NN.NN, e.g. 05.10)")
    baseline = float(baseline_text)
    quant = float(_text(root, "BOA_QUANTIFICATION_VALUE", path))
    offsets = {int(el.get("band_id", -1)): float(el.text) for el in _find(root, "BOA_ADD_OFFSET")}
    scale, offset = {}, {}
    for band, (code, _, band_id) in S2_BANDS.items():
        if baseline >= OFFSET_BASELINE and band_id not in offsets:
            raise ProductError(f"{path}: processing baseline {baseline_text} (>= 04.00) but no "
                               f"BOA_ADD_OFFSET for {code} (band_id {band_id}) in the metadata")
        scale[band] = 1.0 / quant
        offset[band] = offsets.get(band_id, 0.0) / quant
    start = _text(root, "PRODUCT_START_TIME", path)
    craft = _find(root, "SPACECRAFT_NAME")
    sensor = (craft[0].text or "sentinel-2").strip().lower() if craft else "sentinel-2"
    return {"sensor": sensor, "date": start[:10], "baseline": baseline_text,
            "scale": scale, "offset": offset}


def read_sun(path: Path) -> tuple[float, float]:
    """(azimuth, elevation) in degrees from the tile metadata's Mean_Sun_Angle."""
    root = _parse_xml(path)
    mean = _find(root, "Mean_Sun_Angle")
    if not mean:
        raise ProductError(f"{path}: the tile metadata has no Mean_Sun_Angle")
    zenith = float(_text(mean[0], "ZENITH_ANGLE", path))
    return float(_text(mean[0], "AZIMUTH_ANGLE", path)), 90.0 - zenith


def _one(files: list[Path], what: str, where: Path) -> Path:
    if not files:
        raise ProductError(f"{where}: missing {what}")
    if len(files) > 1:
        names = ", ".join(sorted(f.name for f in files))
        raise ProductError(f"{where}: {len(files)} files for {what} ({names}): mixed products "
                           "in one folder?")
    return files[0]


def _band_file(folder: Path, code: str, res: int | None, where: Path) -> Path:
    """The raster in ``folder`` for ``code`` (``*_B02_10m.jp2``, ``B02.tif`` ...)."""
    pat = re.compile(rf"(^|_){code}(_{res}m)?$" if res else rf"(^|_){code}$")
    files = [f for f in folder.iterdir()
             if f.suffix.lower() in RASTER_SUFFIXES and pat.search(f.stem)]
    return _one(files, f"band {code} ({folder / f'*{code}*'})", where)


def _same_acquisition(files: list[Path], where: Path) -> None:
    """SAFE band names start with T<tile>_<sensing time>: all must share it."""
    keys = {re.match(r"(T\d{2}[A-Z]{3}_\d{8}T\d{6})_", f.name) for f in files}
    stamps = {m.group(1) for m in keys if m}
    if len(stamps) > 1:
        raise ProductError(f"{where}: band files of different acquisitions "
                           f"({', '.join(sorted(stamps))}): mixed products")


def read_sentinel2(path: str | Path) -> Product:
    """A Sentinel-2 L2A product: a ``.SAFE`` folder, its ``MTD_MSIL2A.xml``, or a COG folder."""
    p = Path(path)
    folder = p.parent if p.is_file() else p
    if not folder.is_dir():
        raise ProductError(f"{p}: no such Sentinel-2 product folder")
    if (folder / "MTD_MSIL1C.xml").is_file():
        raise ProductError(f"{folder}: a Level-1C product (top-of-atmosphere); the classifier "
                           "needs Level-2A surface reflectance")
    meta_file = _one([folder / n for n in PRODUCT_METADATA if (folder / n).is_file()],
                     f"product metadata ({' or '.join(PRODUCT_METADATA)})", folder)
    meta = read_product_metadata(meta_file)
    granules = sorted(g for g in (folder / "GRANULE").glob("*") if g.is_dir())
    if granules:  # SAFE layout
        granule = _one(granules, "a single granule under GRANULE/", folder)
        img = granule / "IMG_DATA"
        bands = {b: _band_file(img / f"R{res}m", code, res, folder)
                 for b, (code, res, _) in S2_BANDS.items() if (img / f"R{res}m").is_dir()}
        missing_dirs = [f"R{res}m" for _, res, _ in S2_BANDS.values()
                        if not (img / f"R{res}m").is_dir()]
        if missing_dirs:
            raise ProductError(f"{folder}: missing {img / missing_dirs[0]}")
        scl = _band_file(img / "R20m", *SCL, folder)
        tile = [granule / n for n in TILE_METADATA if (granule / n).is_file()]
    else:  # a folder of single-band COGs
        bands = {b: _band_file(folder, code, None, folder) for b, (code, _, _) in S2_BANDS.items()}
        scl = _band_file(folder, SCL[0], None, folder)
        tile = [folder / n for n in TILE_METADATA if (folder / n).is_file()]
    _same_acquisition([*bands.values(), scl], folder)
    sun = read_sun(tile[0]) if tile else (None, None)
    return Product(
        source=str(folder), sensor=meta["sensor"], date=meta["date"],
        bands={b: str(f) for b, f in bands.items()}, scale=meta["scale"], offset=meta["offset"],
        quality=str(scl), quality_kind="scl", nodata_dn=0,
        sun_azimuth=sun[0], sun_elevation=sun[1],
        extra={"PROCESSING_BASELINE": meta["baseline"]},
    )


def looks_like_sentinel2(p: Path) -> bool:
    """A SAFE folder, a product metadata file or a folder holding one."""
    if p.is_file():
        return p.name in PRODUCT_METADATA or p.name == "MTD_MSIL1C.xml"
    return p.is_dir() and (p.suffix == ".SAFE" or any(
        (p / n).is_file() for n in (*PRODUCT_METADATA, "MTD_MSIL1C.xml")))
