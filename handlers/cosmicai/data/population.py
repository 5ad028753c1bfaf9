"""Draw the physical properties of SDSS-spectroscopic-like galaxies (redshift, type, luminosity, size).

Redshifts follow a main sample (peak near 0.1) plus a luminous-red tail to about 0.8;
absolute magnitudes come from a Schechter luminosity function cut at the SDSS
spectroscopic limit r < 17.77 (LRGs: r < 19.5); apparent magnitudes from the distance
modulus plus the template k-correction; half-light radii from a size-luminosity
relation, converted to arcsec with the angular-diameter distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cosmicai.data.sed import R_BAND, KGrid

Z_MIN, Z_MAX = 0.01, 0.8
MAIN_Z_SCALE = 0.085  # p(z) ~ z^2 exp(-(z/scale)^1.5): median about 0.12, like the SDSS main sample
LRG_FRACTION = 0.12
MAIN_R_LIMIT, LRG_R_LIMIT = 17.77, 19.5
M_STAR, ALPHA = -21.2, -1.1  # r-band Schechter parameters (H0 = 70)
M_BRIGHT = -24.0
TYPE_PROBS = (0.30, 0.35, 0.25, 0.10)  # E, Sbc, Scd, Im in the main sample


@dataclass
class Population:
    """Per-object physical parameters (arrays of length N)."""

    redshift: np.ndarray
    template_type: np.ndarray  # continuous, 0=E .. 3=Im
    abs_mag_r: np.ndarray
    true_mags: np.ndarray  # (N, 5) AB, noiseless
    r_e_kpc: np.ndarray
    r_e_arcsec: np.ndarray
    sersic_n: np.ndarray
    axis_ratio: np.ndarray
    position_angle: np.ndarray
    is_lrg: np.ndarray


@lru_cache(maxsize=1)
def _distance_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z grid, distance modulus and angular-diameter distance (kpc) from astropy's Planck18."""
    from astropy.cosmology import Planck18

    z = np.linspace(0.005, 1.25, 2500)
    dm = np.asarray(Planck18.distmod(z).value)
    da_kpc = np.asarray(Planck18.angular_diameter_distance(z).to("kpc").value)
    return z, dm, da_kpc


def distance_modulus(z: np.ndarray) -> np.ndarray:
    """Distance modulus m - M (mag) at redshift z."""
    grid, dm, _ = _distance_tables()
    return np.interp(z, grid, dm)


def angular_diameter_kpc(z: np.ndarray) -> np.ndarray:
    """Angular-diameter distance in kpc at redshift z."""
    grid, _, da = _distance_tables()
    return np.interp(z, grid, da)


def _draw_main_z(rng: np.random.Generator, n: int) -> np.ndarray:
    grid = np.linspace(Z_MIN, Z_MAX, 4000)
    pdf = grid**2 * np.exp(-((grid / MAIN_Z_SCALE) ** 1.5))
    cdf = np.cumsum(pdf)
    cdf /= cdf[-1]
    return np.interp(rng.random(n), cdf, grid)


def _draw_schechter(rng: np.random.Generator, m_faint: np.ndarray) -> np.ndarray:
    """Absolute magnitudes from the Schechter function between M_BRIGHT and each object's faint limit."""
    grid = np.linspace(M_BRIGHT, -12.0, 3000)
    x = 10 ** (-0.4 * (grid - M_STAR))
    cdf = np.cumsum(x ** (ALPHA + 1) * np.exp(-x))
    cdf /= cdf[-1]
    # Keep at least a sliver of range so objects beyond the limit still get a bright draw.
    lim = np.interp(np.maximum(m_faint, M_BRIGHT + 0.5), grid, cdf)
    return np.interp(rng.random(m_faint.size) * lim, cdf, grid)


def draw_population(rng: np.random.Generator, n: int, kgrid: KGrid) -> Population:
    """Draw n galaxies with one generator (the caller seeds it per fixed-size block)."""
    is_lrg = rng.random(n) < LRG_FRACTION
    z = np.where(is_lrg, np.clip(rng.normal(0.38, 0.12, n), 0.15, Z_MAX), _draw_main_z(rng, n))
    base = rng.choice(len(TYPE_PROBS), size=n, p=TYPE_PROBS)
    t = np.where(is_lrg, rng.uniform(0.0, 0.3, n), np.clip(base + rng.uniform(-0.5, 0.5, n), 0.0, 3.0))
    kcorr = kgrid.k_correction(z, t)
    dm = distance_modulus(z)
    limit = np.where(is_lrg, LRG_R_LIMIT, MAIN_R_LIMIT)
    m_abs = _draw_schechter(rng, limit - dm - kcorr[:, R_BAND])
    m_abs = np.where(is_lrg, np.minimum(m_abs, rng.normal(-22.3, 0.4, n)), m_abs)
    true_mags = m_abs[:, None] + dm[:, None] + kcorr

    early = t < 1.0
    # Shen et al. (2003)-like size-luminosity relations, 0.15 dex scatter.
    log_re = np.where(early, np.log10(4.0) - 0.26 * (m_abs + 21.5), np.log10(5.0) - 0.15 * (m_abs + 21.5))
    r_e_kpc = np.clip(10 ** (log_re + rng.normal(0.0, 0.15, n)), 0.3, 40.0)
    r_e_arcsec = r_e_kpc / angular_diameter_kpc(z) * 206264.806
    sersic_n = np.where(early, rng.uniform(3.0, 4.5, n), rng.uniform(0.8, 1.5, n))
    axis_ratio = np.where(early, rng.uniform(0.6, 1.0, n), rng.uniform(0.25, 1.0, n))
    pa = rng.uniform(0.0, np.pi, n)
    return Population(z, t, m_abs, true_mags, r_e_kpc, r_e_arcsec, sersic_n, axis_ratio, pa, is_lrg)
