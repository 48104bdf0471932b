"""The class legend of a facies map: names and colours that GDAL and QGIS show.

How the class legend is stored (int16 GeoTIFFs cannot hold a TIFF palette, which
is only allowed for Byte/UInt16):

* ``<file>.aux.xml`` (GDAL PAM sidecar): ``ColorInterp`` Palette, the
  ``ColorTable`` of :data:`utils.study.CLASS_COLORS` and ``CategoryNames``.
  GDAL (so QGIS and rasterio's ``colormap(1)``) reads it when opening the file.
* Inside the TIFF (GDAL_METADATA tag, survives without sidecars): dataset tags
  ``CLASS_NAMES=ice,snow,...`` and ``CLASS_COLORS=#2e75d6,...`` and the band
  description.
* ``<file-without-extension>.qml``: a QGIS style (paletted renderer with class
  names and colours) that QGIS loads automatically with the raster.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from utils.scene.raster import open_raster
from utils.study import CLASS_COLORS, CLASSES

CLASS_BAND_DESCRIPTION = "glacier surface class"
CLASS_NAMES_TAG = "CLASS_NAMES"
CLASS_COLORS_TAG = "CLASS_COLORS"


def read_class_names(path: str | os.PathLike) -> list[str] | None:
    """Class names stored with a class map (the in-TIFF ``CLASS_NAMES`` tag, else the
    ``CategoryNames`` of the ``.aux.xml`` sidecar); None if neither is present."""
    with open_raster(path) as src:
        tag = src.tags().get(CLASS_NAMES_TAG)
    if tag:
        return tag.split(",")
    aux = Path(str(path) + ".aux.xml")
    if aux.is_file():
        band = ET.parse(aux).getroot().find("PAMRasterBand[@band='1']")
        cats = band.find("CategoryNames") if band is not None else None
        if cats is not None:
            return [c.text or "" for c in cats.findall("Category")]
    return None


# ----------------------------------------------------------------------------- sidecars


def aux_xml_path(path: str | os.PathLike) -> Path:
    """GDAL PAM sidecar of a raster: ``<file>.aux.xml``."""
    return Path(str(path) + ".aux.xml")


def qml_path(path: str | os.PathLike) -> Path:
    """QGIS style sidecar that QGIS auto-loads: ``<file-without-extension>.qml``."""
    return Path(path).with_suffix(".qml")


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def write_class_pam(aux: Path) -> None:
    """Add (or replace) band 1 colour table, palette interpretation and category
    names in a PAM ``.aux.xml``, keeping anything GDAL already put there."""
    if aux.exists():
        root = ET.parse(aux).getroot()
    else:
        root = ET.Element("PAMDataset")
    band = root.find("PAMRasterBand[@band='1']")
    if band is None:
        band = ET.SubElement(root, "PAMRasterBand", band="1")
    for tag in ("CategoryNames", "ColorInterp", "ColorTable"):
        for old in band.findall(tag):
            band.remove(old)
    cats = ET.SubElement(band, "CategoryNames")
    for name in CLASSES:
        ET.SubElement(cats, "Category").text = name
    ET.SubElement(band, "ColorInterp").text = "Palette"
    table = ET.SubElement(band, "ColorTable")
    for name in CLASSES:
        r, g, b = CLASS_COLORS[name]
        ET.SubElement(table, "Entry", c1=str(r), c2=str(g), c3=str(b), c4="255")
    ET.indent(root)
    ET.ElementTree(root).write(aux, encoding="unicode")


def write_class_qml(qml: Path) -> None:
    """QGIS style: paletted renderer on band 1 with class colours and names."""
    entries = "\n".join(
        f'        <paletteEntry value="{i}" color="{hex_color(CLASS_COLORS[n])}" alpha="255" '
        f'label="{n}"/>'
        for i, n in enumerate(CLASSES)
    )
    qml.write_text(
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.28.0" styleCategories="AllStyleCategories">\n'
        "  <pipe>\n"
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" '
        'nodataColor="">\n'
        "      <rasterTransparency/>\n"
        "      <colorPalette>\n"
        f"{entries}\n"
        "      </colorPalette>\n"
        "    </rasterrenderer>\n"
        '    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
        '    <huesaturation colorizeOn="0" saturation="0" grayscaleMode="0"/>\n'
        '    <rasterresampler maxOversampling="2"/>\n'
        "  </pipe>\n"
        "  <blendMode>0</blendMode>\n"
        "</qgis>\n",
        encoding="utf-8",
    )
