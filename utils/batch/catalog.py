"""The scenes of a batch run, from a CSV, a folder of products or a STAC ItemCollection.

CSV columns: ``path`` (a product or a 6-band GeoTIFF; relative to the CSV's folder),
optional ``date`` (YYYY-MM-DD), ``sensor``, ``id``, ``sun_azimuth``/``sun_elevation``
(degrees; products carry their own), and ``outlines``/``dem`` to override the run's
(e.g. one DEM tile per region). A folder lists every product in it (SAFE folders,
COG folders, MTL files, STAC item JSONs). A STAC ItemCollection (GeoJSON
FeatureCollection of items) is split into one item file per scene under the run's
``items/`` folder, hrefs made absolute. Date and sensor of products come from their
metadata when the catalogue does not give them.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from utils.errors import InputError


class CatalogError(InputError):
    """A catalogue that cannot be read (names the file, the row and the problem)."""


@dataclass(frozen=True)
class Scene:
    """One scene to map: ``id`` names its output folder; paths are absolute strings."""

    id: str
    path: str
    date: str = ""
    sensor: str = ""
    sun_azimuth: float | None = None
    sun_elevation: float | None = None
    outlines: str | None = None
    dem: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:120] or "scene"


def _float(value, where: str, column: str) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise CatalogError(f"{where}: {column} {value!r} is not a number (degrees)") from None


def _from_product(path: Path, **given) -> Scene:
    """A scene for a product path; date and sensor from its metadata unless given."""
    from utils.products import is_product, open_product

    date, sensor = given.pop("date", ""), given.pop("sensor", "")
    if is_product(path) and not (date and sensor):
        try:
            product = open_product(path)
            date, sensor = date or product.date, sensor or product.sensor
        except InputError:
            pass  # reported when the scene is mapped; the run goes on
    sid = given.pop("id", "") or _safe_id(f"{date}_{sensor}_{path.stem}" if date else path.stem)
    return Scene(id=sid, path=str(path), date=date, sensor=sensor, **given)


def _read_csv(path: Path) -> list[Scene]:
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise CatalogError(f"{path}: not a readable CSV catalogue ({e})") from None
    if "path" not in df.columns:
        raise CatalogError(f"{path}: no 'path' column (columns: {', '.join(df.columns)})")
    scenes = []
    for i, row in enumerate(df.to_dict("records"), start=2):
        where = f"{path}, line {i}"
        if not row["path"]:
            raise CatalogError(f"{where}: empty path")
        opt = {k: str((path.parent / row[k]).absolute()) for k in ("outlines", "dem")
               if row.get(k)}
        date = row.get("date", "")
        if date and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            raise CatalogError(f"{where}: date {date!r} is not YYYY-MM-DD")
        scenes.append(_from_product(
            (path.parent / row["path"]).absolute(), date=date, sensor=row.get("sensor", ""),
            id=_safe_id(row["id"]) if row.get("id") else "",
            sun_azimuth=_float(row.get("sun_azimuth"), where, "sun_azimuth"),
            sun_elevation=_float(row.get("sun_elevation"), where, "sun_elevation"), **opt))
    return scenes


def _split_item_collection(path: Path, doc: dict, items_dir: Path) -> list[Scene]:
    """Write each item of the collection as its own JSON (absolute hrefs) and list them."""
    import pystac

    collection = pystac.ItemCollection.from_dict(doc, preserve_dict=False)
    items_dir.mkdir(parents=True, exist_ok=True)
    scenes = []
    for item in collection.items:
        for asset in item.assets.values():
            if "://" not in asset.href and not Path(asset.href).is_absolute():
                asset.href = str((path.parent / asset.href).absolute())
        file = items_dir / f"{_safe_id(item.id)}.json"
        file.write_text(json.dumps(item.to_dict(include_self_link=False)))
        scenes.append(_from_product(file, id=_safe_id(item.id)))
    return scenes


def read_catalog(path: str | os.PathLike, items_dir: str | os.PathLike) -> list[Scene]:
    """The scenes of a catalogue (CSV, folder of products or STAC ItemCollection JSON).

    ``items_dir`` receives the item files of an ItemCollection. Raises CatalogError for
    an unreadable catalogue, an empty one or repeated scene ids.
    """
    from utils.products import is_product

    p = Path(path).absolute()
    if not p.exists():
        raise CatalogError(f"{p}: no such catalogue (a CSV, a folder of products or a STAC "
                           "ItemCollection JSON)")
    if p.is_dir():
        scenes = [_from_product(f) for f in sorted(p.iterdir()) if is_product(f)]
    elif p.suffix.lower() == ".csv":
        scenes = _read_csv(p)
    else:
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise CatalogError(f"{p}: not a CSV, a folder or a JSON catalogue ({e})") from None
        if doc.get("type") != "FeatureCollection":
            raise CatalogError(f"{p}: a JSON catalogue must be a STAC ItemCollection "
                               "(type FeatureCollection)")
        scenes = _split_item_collection(p, doc, Path(items_dir))
    if not scenes:
        raise CatalogError(f"{p}: the catalogue lists no scenes")
    seen: dict[str, str] = {}
    for s in scenes:
        if s.id in seen:
            raise CatalogError(f"{p}: scenes {seen[s.id]} and {s.path} have the same id {s.id}"
                               " (give an id column)")
        seen[s.id] = s.path
    return scenes
