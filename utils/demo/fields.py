"""Random fields for the demo world: smooth, fractal and texture noise (unit std).

All fields are float64 arrays in pixel units of a square ``n x n`` scene, drawn
from the ``numpy.random.Generator`` passed in (the call order fixes the bytes of
the generated dataset: do not reorder draws).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def unit(a: np.ndarray) -> np.ndarray:
    """``a`` shifted to zero mean and scaled to unit std (unchanged scale if constant)."""
    a = a - a.mean()
    sd = a.std()
    return a / sd if sd > 0 else a


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-filtered (``sigma`` pixels, periodic) white noise, zero mean, unit std."""
    return unit(ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap"))


def fractal_noise(rng: np.random.Generator, n: int, beta: float,
                  min_wavelength: float = 2.0) -> np.ndarray:
    """Periodic power-law (1/f^beta power) noise, zero mean, unit std, (n, n).

    Wavelengths shorter than ``min_wavelength`` pixels are removed.
    """
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    amp[f > 1.0 / min_wavelength] = 0.0
    spec = rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)
    return unit(np.fft.irfft2(spec * amp, s=(n, n)))


def texture(rng: np.random.Generator, count: int, n: int) -> np.ndarray:
    """``count`` independent texture fields (count, n, n), unit std: white noise plus
    Gaussian-smoothed noise at ~1.5 and ~6 pixels (filtered in the Fourier domain)."""
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    f2 = (2 * np.pi) ** 2 * (fy**2 + fx**2)
    gains = []
    for sigma in (1.5, 6.0):
        g = np.exp(-0.5 * sigma**2 * f2)
        gains.append(g / np.sqrt(np.mean(g**2)))  # unit variance for unit white noise
    transfer = np.sqrt(0.2) + np.sqrt(0.45) * gains[0] + np.sqrt(0.35) * gains[1]
    spec = np.fft.rfft2(rng.standard_normal((count, n, n)), axes=(1, 2))
    out = np.fft.irfft2(spec * transfer, s=(n, n), axes=(1, 2))
    out -= out.mean(axis=(1, 2), keepdims=True)
    return out / out.std(axis=(1, 2), keepdims=True)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """Cubic ramp 0..1 over ``x`` in 0..1 (clipped outside), same shape as ``x``."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
