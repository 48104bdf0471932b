"""What every product reader returns: a :class:`Product` (band files, DN -> reflectance, mask).

A product names one file per optical band (blue, green, red, nir, swir1, swir2, the
study's order), the linear transform from its digital numbers to surface reflectance
(``reflectance = DN * scale + offset``, per band, as the product's metadata gives it),
the quality band whose codes become nodata, and the acquisition (date, sensor, sun).
Readers check names and metadata only; pixels are read by :mod:`utils.products.stack`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from utils.errors import InputError
from utils.study import OPTICAL

#: Sentinel-2 SCL classes that become nodata by default: 0 no data, 1 saturated or
#: defective, 3 cloud shadow, 8 cloud medium probability, 9 cloud high probability,
#: 10 thin cirrus. Class 11 (snow and ice) is never masked.
SCL_MASKED: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
SCL_SNOW = 11
#: Landsat Collection 2 QA_PIXEL bits that become nodata by default: 0 fill,
#: 2 cirrus (Landsat 8/9 only; 0 on Landsat 4-7), 3 cloud, 4 cloud shadow.
#: Bit 5 (snow) is never masked.
QA_MASKED_BITS: tuple[int, ...] = (0, 2, 3, 4)
QA_SNOW_BIT = 5


class ProductError(InputError):
    """A satellite product that cannot be read as published (names the file and the problem)."""


@dataclass
class Product:
    """One acquisition: band files, DN -> reflectance, quality band and metadata.

    ``bands`` maps each of :data:`utils.study.OPTICAL` to a file path or URL;
    ``scale``/``offset`` the same names to the reflectance transform;
    ``nodata_dn`` is the digital number of missing pixels (0 in both product
    families); ``quality`` the SCL or QA_PIXEL file and ``quality_kind`` which
    (``"scl"`` or ``"qa_pixel"``); ``sun_azimuth`` (degrees clockwise from north) and
    ``sun_elevation`` (degrees above the horizon) the scene-centre sun position.
    """

    source: str
    sensor: str
    date: str
    bands: dict[str, str]
    scale: dict[str, float]
    offset: dict[str, float]
    quality: str | None = None
    quality_kind: str | None = None
    nodata_dn: int = 0
    sun_azimuth: float | None = None
    sun_elevation: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [b for b in OPTICAL if b not in self.bands]
        if missing:
            raise ProductError(f"{self.source}: no file for band(s) {', '.join(missing)}")

    def tags(self) -> dict[str, str]:
        """Metadata written into the stack GeoTIFF (strings)."""
        tags = {"SENSOR": self.sensor, "ACQUISITION_DATE": self.date, "SOURCE": self.source}
        if self.sun_azimuth is not None and self.sun_elevation is not None:
            tags |= {"SUN_AZIMUTH": f"{self.sun_azimuth:.6g}",
                     "SUN_ELEVATION": f"{self.sun_elevation:.6g}"}
        return tags | self.extra

    def invalid(self, quality: np.ndarray, masked: tuple[int, ...] | None = None) -> np.ndarray:
        """Boolean (H, W): pixels the quality band marks as nodata.

        ``masked`` overrides the default SCL classes (:data:`SCL_MASKED`) or QA_PIXEL
        bits (:data:`QA_MASKED_BITS`); snow and ice can never be masked.
        """
        return quality_mask(self.quality_kind, quality, masked)


def quality_mask(kind: str | None, quality: np.ndarray,
                 masked: tuple[int, ...] | None = None) -> np.ndarray:
    """Boolean mask of nodata pixels from an SCL (class codes) or QA_PIXEL (bit flags) array."""
    if kind == "scl":
        codes = SCL_MASKED if masked is None else tuple(masked)
        if SCL_SNOW in codes:
            raise ProductError(f"SCL class {SCL_SNOW} (snow and ice) cannot be masked: "
                               "it is what the classifier maps").about("masked")
        return np.isin(quality, codes)
    if kind == "qa_pixel":
        bits = QA_MASKED_BITS if masked is None else tuple(masked)
        if QA_SNOW_BIT in bits:
            raise ProductError(f"QA_PIXEL bit {QA_SNOW_BIT} (snow) cannot be masked: it is "
                               "what the classifier maps").about("masked")
        flags = sum(1 << b for b in bits)
        return (quality.astype(np.uint32) & flags) != 0
    return np.zeros(quality.shape, dtype=bool)


Reader = Callable[[str], Product]
