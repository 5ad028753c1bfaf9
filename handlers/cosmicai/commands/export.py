"""`cosmicai export`: write a run's catalog as FITS, Parquet or CSV (ECSV) with units and descriptions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# FITS header keywords of the provenance fields (summary.json `provenance`, catalog metadata).
FITS_PROVENANCE = {
    "cosmicai_version": ("CAIVERS", "cosmicai version that predicted z_pred"),
    "weights_name": ("WGTNAME", "weights file"),
    "weights_sha256": ("WGTSHA", ""),  # 64 hex digits: no room left for a comment
    "model_card": ("MODLCARD", "model card describing these weights"),
    "backend": ("BACKEND", "inference backend"),
    "precision": ("PRECISN", "inference precision actually run"),
    "uncertainty": ("UNCERT", "per-object uncertainty mode"),
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the export parser."""
    p = subparsers.add_parser(
        "export",
        help="write a run's catalog as an astropy-readable FITS/Parquet/CSV table",
        description=(
            "Read RUN_DIR/catalog.parquet (the merged catalog `cosmicai invoke` downloads into "
            "runs/<run_id>/; or give the catalog file) and write object_id, z_pred, z_true (when "
            "labelled) and ra/dec in degrees (when the shards carried them) with units and column "
            "descriptions: FITS BINTABLE (TUNIT/TCOMM), Parquet (field metadata + astropy's "
            "table_meta_yaml) or CSV as ECSV (read with astropy Table.read(f, format='ascii.ecsv')). "
            "FITS and Parquet also carry the run's provenance (weights sha256 and model card, "
            "cosmicai version, backend, precision, uncertainty mode): FITS header keywords "
            "CAIVERS, WGTNAME, WGTSHA, MODLCARD, BACKEND, PRECISN, UNCERT; Parquet `cosmicai.*` metadata."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder (runs/<run_id>) or a catalog file")
    p.add_argument("--format", choices=("fits", "parquet", "csv"), default="fits", help="output format (default fits)")
    p.add_argument("--out", metavar="FILE", help="output file (default RUN_DIR/catalog.fits|.csv|.export.parquet)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export; print a JSON summary; exit 2 when the catalog is missing or the output exists."""
    from cosmicai.export import ExportError, export_catalog

    try:
        summary = export_catalog(args.run_dir, args.format, args.out, force=args.force)
    except ExportError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 2
    prov = run_provenance(Path(args.run_dir))
    if prov and args.format in ("fits", "parquet"):
        (_stamp_fits if args.format == "fits" else _stamp_parquet)(Path(summary["out"]), prov)
        summary["provenance"] = prov
    print(json.dumps(summary))
    return 0


def run_provenance(run: Path) -> dict[str, Any]:
    """The run's provenance: summary.json's `provenance` beside the catalog, else the catalog's own
    Parquet metadata ({} when neither has any). Fields the workers disagree on are null."""
    from cosmicai.catalog import CatalogError, catalog_provenance
    from cosmicai.export import ExportError, find_catalog

    folder = run if run.is_dir() else run.parent
    try:
        doc = json.loads((folder / "summary.json").read_text()).get("provenance")
    except (OSError, ValueError, AttributeError):
        doc = None
    if isinstance(doc, dict) and doc.get("combinations"):
        return {k: doc.get(k) for k in FITS_PROVENANCE} | {"consistent": bool(doc.get("consistent"))}
    try:
        return catalog_provenance(find_catalog(run))
    except (ExportError, CatalogError, OSError):
        return {}


def _stamp_fits(path: Path, prov: dict[str, Any]) -> None:
    """Provenance keywords in the CATALOG HDU's header (a null field, workers disagreeing, is left out)."""
    from astropy.io import fits

    with fits.open(path, mode="update") as hdul:
        header = hdul[1].header
        for field, (keyword, comment) in FITS_PROVENANCE.items():
            if prov.get(field) is not None:
                header[keyword] = (str(prov[field]), comment)
        if prov.get("consistent") is False:
            header["PROVMIX"] = (True, "workers differ: see summary.json provenance")


def _stamp_parquet(path: Path, prov: dict[str, Any]) -> None:
    """Provenance as `cosmicai.*` key-value metadata beside astropy's table_meta_yaml."""
    import pyarrow.parquet as pq

    from cosmicai.catalog import provenance_metadata

    table = pq.read_table(path)
    meta = dict(table.schema.metadata or {}) | {k.encode(): v.encode() for k, v in provenance_metadata(prov).items()}
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table.replace_schema_metadata(meta), tmp, compression="zstd")
    tmp.replace(path)
