"""`cosmicai export`: a run's merged catalog as an astropy-readable FITS, Parquet or CSV table.

Reads `runs/<run_id>/catalog.parquet` (what `cosmicai invoke` downloads, see report.py) and
writes the columns with units and descriptions: `object_id`, `z_pred`, `z_true` (only when
some object is labelled; null/NaN where unknown), `ra`, `dec` in degrees (only when the
shards carried positions) and `z_err`, `z_p16`, `z_p84` (only for a run with uncertainty tta8).
Formats:

- `fits`: a BINTABLE HDU `CATALOG` with TUNITn, TCOMMn (descriptions, as TOPCAT reads them)
  and astropy's serialized column metadata, so `Table.read(path)` restores units and
  descriptions; unknown floats are NaN (read back as masked);
- `parquet`: nulls kept; each field carries `unit`/`description` metadata and the schema
  astropy's `table_meta_yaml`;
- `csv`: ECSV 1.0 with commas: a `#` YAML header (types, units, descriptions) above plain
  CSV; `Table.read(path, format="ascii.ecsv")`, or any CSV reader that skips `#` lines.

The whole catalog is held in memory; a run above the download limit has no local catalog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosmicai.report import CATALOG_FILE

EXPORT_FORMATS = ("fits", "parquet", "csv")
DEFAULT_NAMES = {"fits": "catalog.fits", "csv": "catalog.csv", "parquet": "catalog.export.parquet"}
EXTNAME = "CATALOG"


@dataclass(frozen=True)
class ColumnInfo:
    unit: str | None  # astropy unit string; "" is dimensionless
    description: str


COLUMNS: dict[str, ColumnInfo] = {
    "object_id": ColumnInfo(None, "object identifier, as in the input shards"),
    "z_pred": ColumnInfo("", "photometric redshift predicted by AstroMAE (dimensionless)"),
    "z_true": ColumnInfo("", "true redshift from the input shards (dimensionless); NaN/null: unknown"),
    "ra": ColumnInfo("deg", "right ascension of the object, as given in the input table (degrees)"),
    "dec": ColumnInfo("deg", "declination of the object, as given in the input table (degrees)"),
    "z_err": ColumnInfo(
        "",
        "1-sigma error of z_pred (dimensionless): std of the predictions of the 8 "
        "rotations/flips x the scale calibrated in the model card",
    ),
    "z_p16": ColumnInfo("", "16th percentile of z (dimensionless): of the 8 rotations/flips, calibrated like z_err"),
    "z_p84": ColumnInfo("", "84th percentile of z (dimensionless): of the 8 rotations/flips, calibrated like z_err"),
}


class ExportError(ValueError):
    """The catalog cannot be found or the output cannot be written (named path and reason)."""


def find_catalog(run: Path) -> Path:
    """The merged catalog of a run folder (or the catalog file itself)."""
    if run.is_file():
        return run
    path = run / CATALOG_FILE
    if path.is_file():
        return path
    if not run.is_dir():
        raise ExportError(f"{run}: no such run folder")
    raise ExportError(
        f"{path}: no merged catalog. `cosmicai invoke` writes it into runs/<run_id>/ unless the run's "
        "catalogs exceed --catalog-download-limit; then report.md gives their s3:// location"
    )


def default_output(run: Path, fmt: str) -> Path:
    """Where the export goes without --out: beside the run's catalog."""
    folder = run if run.is_dir() else run.parent
    return folder / DEFAULT_NAMES[fmt]


def _run_id(run: Path) -> str | None:
    summary = (run if run.is_dir() else run.parent) / "summary.json"
    try:
        return str(json.loads(summary.read_text()).get("run_id") or "") or None
    except (OSError, ValueError, AttributeError):
        return None


def export_columns(table: Any) -> list[str]:
    """The columns worth exporting: z_true only if something is labelled, ra/dec only if known, the
    uncertainty columns when the catalog has them."""
    from cosmicai.catalog import UNCERTAINTY_COLUMNS

    cols = ["object_id", "z_pred"]
    if table.column("z_true").null_count < table.num_rows:
        cols.append("z_true")
    if table.column("ra").null_count < table.num_rows:
        cols += ["ra", "dec"]
    return cols + [c for c in UNCERTAINTY_COLUMNS if c in table.column_names]


def astropy_table(table: Any, columns: list[str], run_id: str | None) -> Any:
    """An astropy Table of the catalog's columns with units, descriptions; nulls masked."""
    import astropy.units as u
    from astropy.table import Column, MaskedColumn, Table

    out = Table()
    for name in columns:
        col = table.column(name)
        info = COLUMNS[name]
        unit = None if info.unit is None else u.Unit(info.unit)
        if col.null_count:
            values = col.fill_null(0).to_numpy()
            mask = col.is_null().to_numpy(zero_copy_only=False)
            out[name] = MaskedColumn(values, mask=mask, unit=unit, description=info.description)
        else:
            out[name] = Column(col.to_numpy(), unit=unit, description=info.description)
    out.meta["EXTNAME"] = EXTNAME
    if run_id:
        out.meta["RUN_ID"] = run_id
    return out


def _fits_bytes(t: Any) -> bytes:
    import io

    from astropy.io import fits

    first = io.BytesIO()
    t.write(first, format="fits")  # astropy's writer adds its serialized column metadata
    first.seek(0)
    with fits.open(first) as hdul:
        for k, name in enumerate(t.colnames, start=1):
            # TCOMMn: the column description keyword TOPCAT and other FITS tools show
            hdul[1].header[f"TCOMM{k}"] = COLUMNS[name].description
        buf = io.BytesIO()
        hdul.writeto(buf)
    return buf.getvalue()


def _csv_bytes(t: Any) -> bytes:
    import io

    buf = io.StringIO()
    t.write(buf, format="ascii.ecsv", delimiter=",")
    return buf.getvalue().encode()


def _parquet_bytes(table: Any, t: Any) -> bytes:
    """pyarrow keeps nulls as nulls (astropy's own writer adds `<name>.mask` columns)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.table import meta

    fields = []
    for name in t.colnames:
        info = COLUMNS[name]
        md = {"description": info.description} | ({"unit": info.unit} if info.unit is not None else {})
        fields.append(table.schema.field(name).with_metadata(md))
    yaml = "\n".join(meta.get_yaml_from_table(t.filled(np.nan) if t.has_masked_columns else t))
    schema = pa.schema(fields, metadata={"table_meta_yaml": yaml})
    buf = io.BytesIO()
    pq.write_table(table.select(t.colnames).cast(schema), buf, compression="zstd")
    return buf.getvalue()


def export_catalog(run: Path | str, fmt: str, out: Path | str | None = None, *, force: bool = False) -> dict[str, Any]:
    """Write the run's catalog as `fmt`; return {out, format, rows, columns}."""
    from cosmicai.catalog import CatalogError, read_catalog

    run = Path(run)
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {EXPORT_FORMATS}")
    src = find_catalog(run)
    dst = Path(out) if out is not None else default_output(run, fmt)
    if dst.resolve() == src.resolve():
        raise ExportError(f"{dst}: is the run's catalog itself; choose another --out")
    if dst.exists() and not force:
        raise ExportError(f"{dst}: exists; pass --force to overwrite it")
    try:
        table = read_catalog(src)
    except CatalogError as exc:
        raise ExportError(str(exc)) from exc
    columns = export_columns(table)
    t = astropy_table(table, columns, _run_id(run))
    data = {"fits": _fits_bytes, "csv": _csv_bytes}[fmt](t) if fmt != "parquet" else _parquet_bytes(table, t)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(dst)  # atomic: a half-written export never sits at the output path
    except OSError as exc:
        raise ExportError(f"{dst}: cannot write ({exc.strerror or exc})") from exc
    return {"out": str(dst), "format": fmt, "rows": table.num_rows, "columns": columns, "bytes": len(data)}
