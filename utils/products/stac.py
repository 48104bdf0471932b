"""A STAC item (Sentinel-2 L2A or Landsat C2 L2) as a :class:`Product`, with pystac.

Optical assets are found by their ``eo:bands`` common names (blue, green, red, nir, swir16,
swir22; ``nir08`` where no ``nir`` is given, as in Landsat items) or by those keys; the
quality asset by key (``scl``/``SCL``, ``qa_pixel``). DN -> reflectance comes from each
asset's ``raster:bands`` scale and offset, else from the product metadata asset the item
links (``MTD_MSIL2A.xml`` or ``*_MTL.json``/``.txt``); the sun from ``view:sun_azimuth``
and ``view:sun_elevation``, else from that metadata. Hrefs may be local paths or URLs
(GDAL reads ``https://`` through ``/vsicurl/``).
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from pathlib import Path

from utils.products.base import Product, ProductError

COMMON_NAMES: dict[str, tuple[str, ...]] = {
    "blue": ("blue",), "green": ("green",), "red": ("red",), "nir": ("nir", "nir08"),
    "swir1": ("swir16",), "swir2": ("swir22",),
}
QUALITY_KEYS: dict[str, tuple[str, ...]] = {"scl": ("scl", "SCL"), "qa_pixel": ("qa_pixel",)}


def _common_names(asset) -> list[str]:
    bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    return [b.get("common_name") or b.get("eo:common_name") for b in bands]


def _scale_offset(asset) -> tuple[float, float] | None:
    bands = asset.extra_fields.get("raster:bands") or asset.extra_fields.get("bands") or []
    if bands and ("scale" in bands[0] or "offset" in bands[0]):
        return float(bands[0].get("scale", 1.0)), float(bands[0].get("offset", 0.0))
    return None


def _href(asset) -> str:
    href = asset.get_absolute_href() or asset.href
    return f"/vsicurl/{href}" if href.startswith(("http://", "https://")) else href


def _local_copy(href: str, folder: Path) -> Path:
    """A metadata file the item links, as a local path (downloaded when it is a URL)."""
    if href.startswith("/vsicurl/"):
        url = href[len("/vsicurl/"):]
        target = folder / Path(url.split("?")[0]).name
        with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 (the item's own link)
            target.write_bytes(r.read())
        return target
    return Path(href)


def read_stac_item(path: str | Path) -> Product:
    """A Sentinel-2 L2A or Landsat C2 L2 STAC item (JSON file) as a Product."""
    import pystac

    p = Path(path)
    try:
        item = pystac.Item.from_file(str(p))
    except (OSError, json.JSONDecodeError, pystac.STACError, KeyError, TypeError) as e:
        raise ProductError(f"{p}: not a readable STAC item ({e})") from None
    platform = str(item.properties.get("platform", "")).lower()
    family = ("sentinel-2" if "sentinel-2" in platform else
              "landsat" if "landsat" in platform else None)
    if family is None:
        raise ProductError(f"{p}: platform {platform or 'unknown'!r} is neither Sentinel-2 nor "
                           "Landsat")
    by_name = {}
    for key, asset in item.assets.items():
        for name in [key, *_common_names(asset)]:
            by_name.setdefault(name, asset)
    bands, scale, offset = {}, {}, {}
    from_meta = []
    for band, names in COMMON_NAMES.items():
        asset = next((by_name[n] for n in names if n in by_name), None)
        if asset is None:
            raise ProductError(f"{p}: no asset with common name {' or '.join(names)} ({band})")
        bands[band] = _href(asset)
        so = _scale_offset(asset)
        if so is None:
            from_meta.append(band)
        else:
            scale[band], offset[band] = so
    kind = "scl" if family == "sentinel-2" else "qa_pixel"
    quality = next((item.assets[k] for k in QUALITY_KEYS[kind] if k in item.assets), None)
    if quality is None:
        raise ProductError(f"{p}: no quality asset ({' or '.join(QUALITY_KEYS[kind])})")
    props = item.properties
    sun = (props.get("view:sun_azimuth"), props.get("view:sun_elevation"))
    if from_meta or None in sun:
        meta = _from_metadata(item, family, p)
        for band in from_meta:
            scale[band], offset[band] = meta.scale[band], meta.offset[band]
        if None in sun:
            sun = (meta.sun_azimuth, meta.sun_elevation)
    date = item.datetime or item.common_metadata.start_datetime
    return Product(
        source=str(p), sensor=platform, date=date.date().isoformat() if date else "",
        bands=bands, scale=scale, offset=offset, quality=_href(quality), quality_kind=kind,
        nodata_dn=0, sun_azimuth=None if sun[0] is None else float(sun[0]),
        sun_elevation=None if sun[1] is None else float(sun[1]),
        extra={"STAC_ID": item.id},
    )


def _from_metadata(item, family: str, p: Path) -> Product:
    """Scale, offset and sun from the product metadata the item links."""
    from utils.products.landsat import MTL_SUFFIXES, read_landsat
    from utils.products.sentinel2 import read_product_metadata, read_sun

    hrefs = {k: _href(a) for k, a in item.assets.items()}
    with tempfile.TemporaryDirectory(prefix="stac-meta-") as tmp:
        if family == "landsat":
            mtl = next((h for h in hrefs.values() if h.endswith(MTL_SUFFIXES)), None)
            if mtl is None:
                raise ProductError(f"{p}: assets without raster:bands scale/offset and no "
                                   "*_MTL.json or *_MTL.txt asset to read them from")
            return read_landsat(_local_copy(mtl, Path(tmp)))
        mtd = next((h for h in hrefs.values() if h.endswith("MTD_MSIL2A.xml")),
                   hrefs.get("product_metadata"))
        if mtd is None:
            raise ProductError(f"{p}: assets without raster:bands scale/offset and no "
                               "product_metadata (MTD_MSIL2A.xml) asset to read them from")
        meta = read_product_metadata(_local_copy(mtd, Path(tmp)))
        tile = hrefs.get("granule_metadata") or next(
            (h for h in hrefs.values() if h.endswith("MTD_TL.xml")), None)
        sun = read_sun(_local_copy(tile, Path(tmp))) if tile else (None, None)
    return Product(source=str(p), sensor=meta["sensor"], date=meta["date"],
                   bands=dict.fromkeys(COMMON_NAMES, ""), scale=meta["scale"],
                   offset=meta["offset"], sun_azimuth=sun[0], sun_elevation=sun[1])


def looks_like_stac_item(p: Path) -> bool:
    """A JSON file whose top level is a STAC Feature."""
    if not (p.is_file() and p.suffix.lower() == ".json") or p.name.endswith("_MTL.json"):
        return False
    try:
        head = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(head, dict) and head.get("type") == "Feature" and "stac_version" in head
