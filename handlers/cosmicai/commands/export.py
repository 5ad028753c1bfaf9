"""`cosmicai export`: write a run's catalog as FITS, Parquet or CSV (ECSV) with units and descriptions."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the export parser."""
    p = subparsers.add_parser(
        "export",
        help="write a run's catalog as an astropy-readable FITS/Parquet/CSV table",
        description=(
            "Read RUN_DIR/catalog.parquet (the merged catalog `cosmicai invoke` downloads into "
            "runs/<run_id>/; or give the catalog file) and write object_id, z_pred, z_true (when "
            "labelled) and ra/dec in degrees (when the shards carried them) with units and column "
            "descriptions: FITS BINTABLE (TUNIT/TCOMM), Parquet (field metadata + astropy's "
            "table_meta_yaml) or CSV as ECSV (read with astropy Table.read(f, format='ascii.ecsv'))."
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
    print(json.dumps(summary))
    return 0
