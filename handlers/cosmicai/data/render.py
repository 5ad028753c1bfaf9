"""Render 5-band galaxy cutouts: PSF-convolved Sersic profiles in nanomaggies plus sky noise.

Units follow SDSS frames: pixel values in nanomaggies (m = 22.5 - 2.5 log10 f), 0.396
arcsec pixels. Magnitudes are SDSS asinh magnitudes, finite even for negative flux.
"""

from __future__ import annotations

import numpy as np
from scipy import fft
from scipy.special import gammaincinv

PIXEL_ARCSEC = 0.396
SEEING_FWHM = np.array([1.55, 1.45, 1.35, 1.30, 1.30])  # arcsec, u g r i z (SDSS median ~1.4)
LIMITING_MAG = np.array([22.0, 22.2, 22.2, 21.3, 20.5])  # 5-sigma point-source depth per band
ASINH_SOFTENING = np.array([1.4e-10, 0.9e-10, 1.2e-10, 1.8e-10, 7.4e-10])  # SDSS b, in maggies
CALIBRATION_SCATTER = 0.02  # relative flux error of the catalogue photometry


def psf_sigma_pix() -> np.ndarray:
    """Gaussian PSF sigma in pixels per band."""
    return SEEING_FWHM / 2.3548 / PIXEL_ARCSEC


def sky_sigma_nmgy() -> np.ndarray:
    """Per-pixel sky noise (nanomaggies) giving each band's 5-sigma point-source depth."""
    area = 4 * np.pi * psf_sigma_pix() ** 2  # effective noise area of a Gaussian PSF
    return 10 ** (-0.4 * (LIMITING_MAG - 22.5)) / 5.0 / np.sqrt(area)


def mag_to_nmgy(mag: np.ndarray) -> np.ndarray:
    """AB magnitude to nanomaggies."""
    return 10 ** (-0.4 * (np.asarray(mag) - 22.5))


def asinh_mag(nmgy: np.ndarray) -> np.ndarray:
    """SDSS asinh magnitudes of (N, 5) fluxes in nanomaggies."""
    b = ASINH_SOFTENING
    return -2.5 / np.log(10) * (np.arcsinh(np.asarray(nmgy) * 1e-9 / (2 * b)) + np.log(b))


def asinh_mag_to_nmgy(mag: np.ndarray) -> np.ndarray:
    """Inverse of asinh_mag: (N, 5) asinh magnitudes to nanomaggies."""
    b = ASINH_SOFTENING
    return 2 * b * np.sinh(-np.asarray(mag) * np.log(10) / 2.5 - np.log(b)) * 1e9


def sersic_profiles(size: int, r_e_pix: np.ndarray, n: np.ndarray, q: np.ndarray, pa: np.ndarray) -> np.ndarray:
    """(N, size, size) unit-sum Sersic profiles centred on the cutout (sampled at 2x2 sub-pixels)."""
    sub = (np.arange(2 * size) + 0.5) / 2 - size / 2
    y, x = np.meshgrid(sub, sub, indexing="ij")
    c, s = np.cos(pa)[:, None, None], np.sin(pa)[:, None, None]
    xr = x * c + y * s
    yr = (-x * s + y * c) / q[:, None, None]
    r = np.sqrt(xr * xr + yr * yr) / r_e_pix[:, None, None]
    bn = gammaincinv(2 * n, 0.5)[:, None, None]
    img = np.exp(-bn * (np.power(r, 1.0 / n[:, None, None]) - 1.0))
    img = img.reshape(-1, size, 2, size, 2).sum(axis=(2, 4))
    return img / img.sum(axis=(1, 2), keepdims=True)


def gaussian_otf(size: int, sigma: np.ndarray) -> np.ndarray:
    """(B, size, size//2+1) Fourier transforms of unit Gaussian PSFs, one per band."""
    ky = fft.fftfreq(size)[:, None]
    kx = fft.rfftfreq(size)[None, :]
    k2 = (ky**2 + kx**2)[None]
    return np.exp(-2 * np.pi**2 * sigma[:, None, None] ** 2 * k2)


def render(
    rng: np.random.Generator,
    size: int,
    flux_nmgy: np.ndarray,
    r_e_arcsec: np.ndarray,
    n: np.ndarray,
    q: np.ndarray,
    pa: np.ndarray,
) -> np.ndarray:
    """(N, 5, size, size) float32 noisy images whose noiseless band sums equal flux_nmgy (before truncation)."""
    profile = sersic_profiles(size, np.maximum(r_e_arcsec / PIXEL_ARCSEC, 0.25), n, q, pa)
    spec = fft.rfft2(profile, workers=1)[:, None] * gaussian_otf(size, psf_sigma_pix())[None]
    # Profiles are centred at size/2; the PSF kernel is centred at the origin, so no shift is needed.
    img = fft.irfft2(spec, s=(size, size), workers=1) * flux_nmgy[:, :, None, None]
    noise = rng.standard_normal(img.shape, dtype=np.float32) * sky_sigma_nmgy().astype(np.float32)[None, :, None, None]
    return (img.astype(np.float32) + noise).astype(np.float32)


def measured_flux(rng: np.random.Generator, flux_nmgy: np.ndarray, r_e_arcsec: np.ndarray) -> np.ndarray:
    """Catalogue photometry: true flux plus calibration scatter and sky noise in an aperture of the galaxy's size."""
    r_pix = np.sqrt((r_e_arcsec / PIXEL_ARCSEC) ** 2 + psf_sigma_pix()[None, :] ** 2 * 2.0)
    area = np.pi * (2.0 * r_pix) ** 2
    sigma = np.sqrt((CALIBRATION_SCATTER * flux_nmgy) ** 2 + sky_sigma_nmgy()[None, :] ** 2 * area)
    return flux_nmgy + rng.standard_normal(flux_nmgy.shape) * sigma
