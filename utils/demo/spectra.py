"""Per-class surface-reflectance spectra for the demo data (6 optical bands, 0..~1).

Bands are :data:`utils.study.OPTICAL` (blue, green, red, nir, swir1, swir2 =
Sentinel-2 B2, B3, B4, B8, B11, B12). Each class has a mean (6,) and a
covariance (6, 6) of surface reflectance (dimensionless).

Measured classes (snow, ice, debris, water and shadowed snow) come from
``utils/demo/spectra_s2.json``, written by ``scripts/derive_spectra.py`` from the
Sentinel-2 training points of glacier-snow-cover-mapping (R. Aberle, E. Enderlin
et al., MIT licence; see the attribution in the JSON). Firn, refrozen-like and
cloud are not in that data; their means and standard deviations below are set
from the literature (see each entry's ``source``), their band correlations are
borrowed from a measured analogue class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.study import OPTICAL

MEASURED_FILE = Path(__file__).with_name("spectra_s2.json")


@dataclass(frozen=True)
class Spectrum:
    """Mean (6,) and covariance (6, 6) of surface reflectance, bands in OPTICAL order."""

    name: str
    mean: np.ndarray
    cov: np.ndarray
    source: str

    @property
    def std(self) -> np.ndarray:
        """Standard deviation per band, (6,)."""
        return np.sqrt(np.diag(self.cov))

    @property
    def corr(self) -> np.ndarray:
        """Band correlation matrix, (6, 6)."""
        sd = self.std
        return self.cov / np.outer(sd, sd)


def _from_std(name: str, mean, std, corr: np.ndarray, source: str) -> Spectrum:
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    return Spectrum(name, mean, corr * np.outer(std, std), source)


def _load_measured(path: Path = MEASURED_FILE) -> tuple[dict[str, Spectrum], str]:
    data = json.loads(path.read_text())
    if list(data["bands"]) != list(OPTICAL):
        raise ValueError(f"{path}: bands {list(data['bands'])} differ from {list(OPTICAL)}")
    out = {}
    for name, c in data["classes"].items():
        src = f"measured: {c['n_used']} Sentinel-2 points, {data['source_file']} class {c['code']}"
        out[name] = Spectrum(name, np.asarray(c["mean"]), np.asarray(c["cov"]), src)
    return out, data["attribution"]


MEASURED, ATTRIBUTION = _load_measured()

_LITERATURE = {
    "firn": (
        # Old, coarse-grained, partly dirty snow: broadband albedo ~0.5-0.65, between old
        # snow (~0.7-0.85) and clean ice (~0.35-0.5) (albedo ranges tabulated in Cuffey &
        # Paterson 2010, The Physics of Glaciers, ch. 5); larger grains lower the NIR and
        # SWIR reflectance more than the visible (Wiscombe & Warren 1980; Warren 1982).
        [0.60, 0.62, 0.60, 0.46, 0.016, 0.014],
        [0.08, 0.08, 0.08, 0.07, 0.010, 0.009],
        "snow",
        "literature: between snow and ice, darker than snow in NIR/SWIR (coarse grains); "
        "Cuffey & Paterson 2010 albedo ranges; Wiscombe & Warren 1980 grain-size effect",
    ),
    "refrozen-like": (
        # Refrozen melt / superimposed ice: bubble-rich ice that is bright in the visible
        # (albedo ~0.6 for superimposed ice, Cuffey & Paterson 2010) but, being ice, drops
        # steeply into the NIR and is near zero in the SWIR (ice absorption; cf. field
        # spectra of glacier facies in Pope & Rees 2014, Remote Sens. Environ.).
        [0.54, 0.53, 0.48, 0.30, 0.011, 0.010],
        [0.07, 0.07, 0.07, 0.06, 0.006, 0.006],
        "ice",
        "literature: superimposed/refrozen ice, visible close to firn, NIR close to ice, "
        "very low SWIR; Cuffey & Paterson 2010; Pope & Rees 2014",
    ),
    "cloud": (
        # Thick water/ice cloud: bright and spectrally flat in VIS/NIR, but much brighter
        # than snow in the SWIR (droplet scattering), the basis of NDSI snow/cloud
        # discrimination (Dozier 1989) and of Fmask cloud tests (Zhu & Woodcock 2012).
        [0.72, 0.70, 0.69, 0.70, 0.46, 0.33],
        [0.12, 0.12, 0.12, 0.12, 0.09, 0.07],
        None,
        "literature: bright flat VIS/NIR, SWIR1 ~0.4-0.5 (>> snow); Dozier 1989; "
        "Zhu & Woodcock 2012",
    ),
}


def _cloud_corr() -> np.ndarray:
    """Cloud optical thickness scales all bands together: strong positive correlations."""
    corr = np.full((6, 6), 0.7)
    corr[:4, :4] = 0.95
    corr[4:, 4:] = 0.95
    np.fill_diagonal(corr, 1.0)
    return corr


def _build() -> dict[str, Spectrum]:
    spectra = {k: MEASURED[k] for k in ("ice", "snow", "debris", "water")}
    for name, (mean, std, analogue, source) in _LITERATURE.items():
        corr = MEASURED[analogue].corr if analogue else _cloud_corr()
        spectra[name] = _from_std(name, mean, std, corr, source)
    shadow = MEASURED["shadowed-snow"]
    spectra["shadow"] = Spectrum("shadow", shadow.mean, shadow.cov, shadow.source)
    return spectra


#: Spectra of the 8 classes (keys are utils.study.CLASSES names).
SPECTRA: dict[str, Spectrum] = _build()


def _shadow_factor() -> np.ndarray:
    """Diffuse (skylight) fraction of the illumination per band, (6,), 0..1.

    Blue..NIR: ratio of measured shadowed-snow to sunlit-snow mean reflectance
    (skylight is blue-rich). SWIR: snow is at the noise floor there, so the ratio
    is not measurable; the decreasing trend is extrapolated (0.30, 0.28).
    """
    ratio = MEASURED["shadowed-snow"].mean / MEASURED["snow"].mean
    factor = np.clip(ratio, 0.05, 1.0)
    factor[4:] = (0.30, 0.28)
    return factor


#: Multiply a sunlit flat-surface reflectance by this to get it in shadow, (6,).
SHADOW_FACTOR: np.ndarray = _shadow_factor()
