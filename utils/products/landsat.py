"""Landsat Collection 2 Level-2 as distributed by the USGS: ``*_SR_B*.TIF``, ``*_QA_PIXEL.TIF``
and ``*_MTL.json`` or ``*_MTL.txt`` in one folder.

Bands: Landsat 8/9 (OLI) SR_B2..SR_B7 -> blue, green, red, nir, swir1, swir2; Landsat 4/5
(TM) and 7 (ETM+) SR_B1..SR_B5 and SR_B7. Reflectance = DN x REFLECTANCE_MULT_BAND_n +
REFLECTANCE_ADD_BAND_n from the MTL's LEVEL2_SURFACE_REFLECTANCE_PARAMETERS (2.75e-05 and
-0.2 in every Collection 2 product; the MTL's values are used). DN 0 is fill.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from utils.products.base import Product, ProductError

#: Surface-reflectance band numbers of blue, green, red, nir, swir1, swir2 by spacecraft.
LANDSAT_BANDS: dict[str, tuple[int, ...]] = {
    "LANDSAT_4": (1, 2, 3, 4, 5, 7),
    "LANDSAT_5": (1, 2, 3, 4, 5, 7),
    "LANDSAT_7": (1, 2, 3, 4, 5, 7),
    "LANDSAT_8": (2, 3, 4, 5, 6, 7),
    "LANDSAT_9": (2, 3, 4, 5, 6, 7),
}
OPTICAL_ORDER = ("blue", "green", "red", "nir", "swir1", "swir2")
MTL_SUFFIXES = ("_MTL.json", "_MTL.txt")


def parse_mtl_text(text: str, path: Path) -> dict:
    """The ODL text MTL (``GROUP = ... END_GROUP``) as nested dicts of strings."""
    root: dict = {}
    stack = [root]
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line == "END":
            continue
        m = re.fullmatch(r"(\w+)\s*=\s*(.*)", line)
        if not m:
            raise ProductError(f"{path}: line {n} is not KEY = VALUE: {line[:60]!r}")
        key, value = m.group(1), m.group(2).strip().strip('"')
        if key == "GROUP":
            stack[-1][value] = {}
            stack.append(stack[-1][value])
        elif key == "END_GROUP":
            if len(stack) == 1:
                raise ProductError(f"{path}: line {n}: END_GROUP without GROUP")
            stack.pop()
        else:
            stack[-1][key] = value
    return root


def read_mtl(path: Path) -> dict:
    """``LANDSAT_METADATA_FILE`` of an MTL in JSON or text form."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ProductError(f"{path}: cannot read the MTL file ({e.strerror})") from None
    if path.suffix.lower() == ".json":
        try:
            mtl = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProductError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    else:
        mtl = parse_mtl_text(text, path)
    if "LANDSAT_METADATA_FILE" not in mtl:
        raise ProductError(f"{path}: not a Landsat Collection 2 MTL (no LANDSAT_METADATA_FILE)")
    return mtl["LANDSAT_METADATA_FILE"]


def find_mtl(p: Path) -> Path:
    """The MTL file given, or the one MTL in the folder given."""
    if p.is_file():
        return p
    if not p.is_dir():
        raise ProductError(f"{p}: no such Landsat product (an *_MTL.json or *_MTL.txt file or "
                           "its folder)")
    found = sorted(f for f in p.iterdir() if f.name.endswith(MTL_SUFFIXES))
    stems = {f.name[: -len("_MTL.json") if f.suffix == ".json" else -len("_MTL.txt")]
             for f in found}
    if len(stems) != 1:
        what = "no *_MTL.json or *_MTL.txt" if not found else (
            f"MTL files of {len(stems)} products ({', '.join(sorted(stems))})")
        raise ProductError(f"{p}: {what}")
    return next(f for f in found if f.suffix == ".json") if len(found) > 1 else found[0]


def read_landsat(path: str | Path) -> Product:
    """A Landsat Collection 2 Level-2 product from its MTL (file or folder)."""
    mtl_path = find_mtl(Path(path))
    mtl = read_mtl(mtl_path)
    contents = mtl.get("PRODUCT_CONTENTS", {})
    attrs = mtl.get("IMAGE_ATTRIBUTES", {})
    sr = mtl.get("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
    level = contents.get("PROCESSING_LEVEL", "")
    if sr is None or not level.startswith("L2"):
        raise ProductError(f"{mtl_path}: processing level {level or 'unknown'} has no surface "
                           "reflectance; the classifier needs a Collection 2 Level-2 product")
    craft = attrs.get("SPACECRAFT_ID", "")
    if craft not in LANDSAT_BANDS:
        raise ProductError(f"{mtl_path}: unknown SPACECRAFT_ID {craft!r} (expected one of "
                           f"{', '.join(LANDSAT_BANDS)})")
    folder = mtl_path.parent
    bands, scale, offset = {}, {}, {}
    for name, n in zip(OPTICAL_ORDER, LANDSAT_BANDS[craft], strict=True):
        file = contents.get(f"FILE_NAME_BAND_{n}")
        if file is None:
            raise ProductError(f"{mtl_path}: no FILE_NAME_BAND_{n} ({name}) in PRODUCT_CONTENTS")
        if not (folder / file).is_file():
            raise ProductError(f"{folder / file}: missing band SR_B{n} ({name}) of {mtl_path.name}")
        bands[name] = str(folder / file)
        scale[name] = float(sr.get(f"REFLECTANCE_MULT_BAND_{n}", 2.75e-5))
        offset[name] = float(sr.get(f"REFLECTANCE_ADD_BAND_{n}", -0.2))
    qa = contents.get("FILE_NAME_QUALITY_L1_PIXEL")
    if qa is None or not (folder / qa).is_file():
        raise ProductError(f"{folder / (qa or '*_QA_PIXEL.TIF')}: missing QA_PIXEL band of "
                           f"{mtl_path.name}")
    date = attrs.get("DATE_ACQUIRED", "")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise ProductError(f"{mtl_path}: DATE_ACQUIRED {date!r} is not YYYY-MM-DD")
    sun = [attrs.get(k) for k in ("SUN_AZIMUTH", "SUN_ELEVATION")]
    return Product(
        source=str(mtl_path), sensor=craft.lower().replace("_", "-"), date=date,
        bands=bands, scale=scale, offset=offset, quality=str(folder / qa),
        quality_kind="qa_pixel", nodata_dn=0,
        sun_azimuth=None if sun[0] is None else float(sun[0]),
        sun_elevation=None if sun[1] is None else float(sun[1]),
        extra={"PRODUCT_ID": contents.get("LANDSAT_PRODUCT_ID", mtl_path.stem)},
    )


def looks_like_landsat(p: Path) -> bool:
    """An MTL file or a folder holding one."""
    if p.is_file():
        return p.name.endswith(MTL_SUFFIXES)
    return p.is_dir() and any(f.name.endswith(MTL_SUFFIXES) for f in p.iterdir())
