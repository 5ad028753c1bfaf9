"""Galaxy SED templates redshifted through the SDSS ugriz filter curves (k-correction grid).

Templates are the Coleman, Wu & Weedman (1980) SEDs extended by Bolzonella et al.
(2000), shipped by GalSim; filter curves are speclite's `sdss2010-*`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

BANDS = ("u", "g", "r", "i", "z")
TEMPLATES = ("E", "Sbc", "Scd", "Im")  # red -> blue; a continuous type t in [0, 3] mixes neighbours
R_BAND = BANDS.index("r")
Z_GRID_MAX = 1.2
Z_GRID_STEP = 0.002


class TemplateDataError(RuntimeError):
    """The SED template files or filter curves cannot be found or read."""


def template_dir() -> Path:
    """The folder of CWW SED files inside the installed GalSim package."""
    spec = importlib.util.find_spec("galsim")
    if spec is None or not spec.submodule_search_locations:
        raise TemplateDataError("galsim is not installed: it ships the CWW SED templates (pip install galsim)")
    path = Path(spec.submodule_search_locations[0]) / "share" / "SEDs"
    if not path.is_dir():
        raise TemplateDataError(f"no SED folder at {path} (galsim installation incomplete?)")
    return path


def load_template(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (Angstrom) and f_lambda (arbitrary units) of one CWW template."""
    path = template_dir() / f"CWW_{name}_ext.sed"
    try:
        data = np.loadtxt(path, comments="#")
    except (OSError, ValueError) as exc:
        raise TemplateDataError(f"cannot read SED template {path}: {exc}") from exc
    if data.ndim != 2 or data.shape[1] != 2:
        raise TemplateDataError(f"{path}: expected two columns (Angstrom, flux), got shape {data.shape}")
    return data[:, 0], data[:, 1]


@dataclass(frozen=True)
class KGrid:
    """flux[t, iz, band]: maggies of a template at redshift z per unit rest-frame r-band flux."""

    z: np.ndarray
    flux: np.ndarray

    def band_flux(self, z: np.ndarray, t: np.ndarray) -> np.ndarray:
        """(N, 5) flux ratios for redshifts z and continuous template types t in [0, 3]."""
        pos = np.clip(np.asarray(z, dtype=np.float64), self.z[0], self.z[-1]) / Z_GRID_STEP
        i0 = np.minimum(pos.astype(np.int64), self.z.size - 2)
        wz = (pos - i0)[:, None]
        t = np.clip(np.asarray(t, dtype=np.float64), 0.0, len(TEMPLATES) - 1)
        k0 = np.minimum(t.astype(np.int64), len(TEMPLATES) - 2)
        wt = (t - k0)[:, None]

        def at(k: np.ndarray) -> np.ndarray:
            return self.flux[k, i0] * (1 - wz) + self.flux[k, i0 + 1] * wz

        # Mixing in flux space is exact: each template is normalised to unit rest-frame r flux.
        return at(k0) * (1 - wt) + at(k0 + 1) * wt

    def k_correction(self, z: np.ndarray, t: np.ndarray) -> np.ndarray:
        """(N, 5) K_X,r = m_X(observed) - M_r - DM(z) for each band X."""
        return -2.5 * np.log10(self.band_flux(z, t))


@lru_cache(maxsize=1)
def k_grid() -> KGrid:
    """Redshift every template on a z grid through the SDSS filters (about 1 s, cached)."""
    import astropy.units as u
    import speclite.filters

    filters = speclite.filters.load_filters(*(f"sdss2010-{b}" for b in BANDS))
    obs = np.arange(2900.0, 11200.0, 2.0)
    zs = np.arange(0.0, Z_GRID_MAX + Z_GRID_STEP / 2, Z_GRID_STEP)
    unit = u.erg / u.s / u.cm**2 / u.AA
    out = np.empty((len(TEMPLATES), zs.size, len(BANDS)))
    for k, name in enumerate(TEMPLATES):
        wave, flam = load_template(name)
        rest = filters.get_ab_maggies(np.interp(obs, wave, flam) * unit, obs * u.AA)
        norm = float(rest["sdss2010-r"][0])
        # Observed f_lambda(l) = L_lambda(l / (1+z)) / (1+z) (up to the 4 pi D_L^2 in the distance modulus).
        spectra = np.stack([np.interp(obs / (1 + z), wave, flam) / (1 + z) for z in zs])
        table = filters.get_ab_maggies(spectra * unit, obs * u.AA)
        out[k] = np.stack([np.asarray(table[f"sdss2010-{b}"], dtype=np.float64) for b in BANDS], axis=1) / norm
    return KGrid(z=zs, flux=out)
