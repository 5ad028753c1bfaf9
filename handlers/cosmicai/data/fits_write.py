"""`make-dataset --fits`: synthetic galaxies as per-object FITS cutouts plus an object table.

The objects are exactly those `make-dataset` draws for the same seed (same generator, same
ids, images, magnitudes and redshifts); sky positions are added, drawn uniformly on the
sphere from their own seeded stream so the galaxies themselves do not change. Layouts:
`mef` (one file per object: empty primary HDU, five image HDUs with EXTNAME/FILTER u..z),
`cube` (one file per object: a (5, H, W) primary HDU) and `bands` (`<id>_<band>.fits`).
The table (`objects.fits|csv|parquet`) has object_id, mag_u..mag_z, redshift, ra, dec and,
for the per-object layouts, the file name (the `bands` layout relies on the naming rule).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cosmicai.data.fits import BANDS
from cosmicai.data.generate import Block, DatasetArgumentError, iter_objects

LAYOUTS = ("mef", "cube", "bands")
TABLE_FORMATS = ("fits", "csv", "parquet")
CUTOUT_DIR = "cutouts"
TABLE_STEM = "objects"
# A distinct stream for positions (the generator's blocks use [seed, block]).
_POSITION_STREAM = 0x5EC


def positions(seed: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (ra, dec) in degrees per id, uniform on the sphere."""
    ra = np.empty(ids.shape, dtype=np.float64)
    dec = np.empty(ids.shape, dtype=np.float64)
    for k, oid in enumerate(ids):
        rng = np.random.default_rng([seed, _POSITION_STREAM, int(oid)])
        ra[k] = rng.uniform(0.0, 360.0)
        dec[k] = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0)))
    return ra, dec


def _image_hdu(data: np.ndarray, band: str, primary: bool = False) -> Any:
    from astropy.io import fits

    hdu = fits.PrimaryHDU(data) if primary else fits.ImageHDU(data, name=band.upper())
    hdu.header["FILTER"] = (band, "SDSS band")
    hdu.header["BUNIT"] = ("nanomaggy", "flux density per pixel")
    return hdu


def _object_header(hdu: Any, oid: int, ra: float, dec: float) -> None:
    hdu.header["OBJID"] = (oid, "object_id in the object table")
    hdu.header["RA"] = (ra, "[deg] right ascension of the cutout centre")
    hdu.header["DEC"] = (dec, "[deg] declination of the cutout centre")


def write_object(folder: Path, layout: str, oid: int, images: np.ndarray, ra: float, dec: float) -> list[str]:
    """Write one object's cutout file(s) in `layout`; return their names."""
    from astropy.io import fits

    if layout == "mef":
        primary = fits.PrimaryHDU()
        _object_header(primary, oid, ra, dec)
        hdul = fits.HDUList([primary, *(_image_hdu(images[k], b) for k, b in enumerate(BANDS))])
        names = [f"{oid}.fits"]
        hdul.writeto(folder / names[0], overwrite=True)
    elif layout == "cube":
        primary = fits.PrimaryHDU(images)
        _object_header(primary, oid, ra, dec)
        primary.header["BANDS"] = (",".join(BANDS), "planes of the cube, in order")
        primary.header["BUNIT"] = ("nanomaggy", "flux density per pixel")
        names = [f"{oid}.fits"]
        primary.writeto(folder / names[0], overwrite=True)
    else:
        names = []
        for k, b in enumerate(BANDS):
            hdu = _image_hdu(images[k], b, primary=True)
            _object_header(hdu, oid, ra, dec)
            names.append(f"{oid}_{b}.fits")
            hdu.writeto(folder / names[-1], overwrite=True)
    return names


def _table_columns(block: Block, ra: np.ndarray, dec: np.ndarray, files: list[str] | None) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {"object_id": block.object_ids}
    for k, b in enumerate(BANDS):
        cols[f"mag_{b}"] = block.magnitudes[:, k]
    cols |= {"redshift": block.redshift, "ra": ra, "dec": dec}
    if files is not None:
        cols["file"] = np.array(files)
    return cols


def write_table(columns: dict[str, np.ndarray], path: Path, fmt: str) -> None:
    """The object table in FITS (with units), CSV or Parquet."""
    if fmt == "fits":
        import astropy.units as u
        from astropy.table import Table

        table = Table(columns)
        for c in ("ra", "dec"):
            table[c].unit = u.deg
        for b in BANDS:
            table[f"mag_{b}"].unit = u.mag
        table.write(path, format="fits", overwrite=True)
        return
    import pyarrow as pa

    table = pa.table(columns)
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, path)


def make_fits_dataset(
    n: int,
    seed: int,
    out: Path | str,
    *,
    size: int = 64,
    layout: str = "mef",
    table_format: str = "fits",
    progress: bool = True,
) -> dict[str, Any]:
    """Write `<out>/cutouts/` and `<out>/objects.<fmt>`; return a summary."""
    from rich.progress import Progress

    if n <= 0:
        raise DatasetArgumentError(f"make-dataset: --n must be positive, got {n}")
    if size < 32:
        raise DatasetArgumentError(f"make-dataset: --size must be >= 32, got {size}")
    if layout not in LAYOUTS:
        raise DatasetArgumentError(f"make-dataset: --fits-layout must be one of {LAYOUTS}, got {layout!r}")
    if table_format not in TABLE_FORMATS:
        raise DatasetArgumentError(f"make-dataset: --table-format must be one of {TABLE_FORMATS}, got {table_format!r}")
    out = Path(out)
    folder = out / CUTOUT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[np.ndarray]] = {}
    n_files = 0
    with Progress(disable=not progress) as bar:
        task = bar.add_task("make-dataset --fits", total=n)
        for block in iter_objects(n, seed, size):
            ra, dec = positions(seed, block.object_ids)
            files = []
            for k, oid in enumerate(block.object_ids):
                names = write_object(folder, layout, int(oid), block.images[k], float(ra[k]), float(dec[k]))
                files.append(f"{CUTOUT_DIR}/{names[0]}")
                n_files += len(names)
            cols = _table_columns(block, ra, dec, files if layout != "bands" else None)
            for key, values in cols.items():
                parts.setdefault(key, []).append(values)
            bar.advance(task, block.object_ids.size)
    table_path = out / f"{TABLE_STEM}.{table_format}"
    write_table({k: np.concatenate(v) for k, v in parts.items()}, table_path, table_format)
    (out / "dataset.json").write_text(
        json.dumps({"generator": "cosmicai make-dataset --fits", "n": n, "seed": seed, "size": size, "layout": layout})
        + "\n"
    )
    return {
        "objects": n,
        "files": n_files,
        "layout": layout,
        "cutouts": str(folder),
        "table": str(table_path),
        "out": str(out),
    }
