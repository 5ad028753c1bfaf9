"""`cosmicai partition`: re-shard inputs (or FITS cutouts) into ~M MiB shards with a manifest, locally or to S3."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# Rejections printed to stderr; the manifest and the JSON summary list them all.
SHOW_REJECTED = 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the partition parser."""
    p = subparsers.add_parser(
        "partition",
        help="re-shard shards/.pt/npz into ~M MiB shards + manifest.json (folder or s3://)",
        description=(
            "Read every SRC (shard files or folders: our safetensors shards, reference .pt "
            "partitions, npz; 64x64 cutouts are centre-cropped), cut them into shards of about "
            "--target-mb MiB (100 MiB = 5,112 objects) named part-NNNNN.safetensors, and write "
            "them with manifest.json to a folder or s3://bucket/prefix (parallel multipart "
            "uploads; AWS_ENDPOINT_URL selects LocalStack). Re-running skips shards whose sha256 "
            "matches and removes part-* shards the new partitioning no longer has. "
            "With --from-fits, the objects are 5-band FITS cutouts (one file per object with five "
            "image HDUs or a (5,H,W) cube, or <id>_<band>.fits) described by --table (FITS, CSV or "
            "Parquet: object_id, mag_u..mag_z or u..z, optional redshift, ra, dec, file); a bad "
            "cutout or row is listed under 'rejected' (manifest and output) and the rest partitioned; "
            "exit 2 only if nothing was usable. See docs/data.md, 'FITS in and out'."
        ),
    )
    p.add_argument("sources", nargs="*", metavar="SRC", help="input files or folders (shards, npz, .pt)")
    p.add_argument("--from-fits", nargs="+", metavar="DIR|FILE", help="FITS cutout folders or files instead of SRC")
    p.add_argument(
        "--table",
        metavar="FILE",
        help="object table for --from-fits (.fits, .csv or .parquet; detected from the bytes)",
    )
    p.add_argument(
        "--mag-columns", metavar="U,G,R,I,Z", help="the table's five magnitude columns, if not mag_u..mag_z or u..z"
    )
    p.add_argument(
        "--target-mb",
        type=float,
        default=100.0,
        metavar="M",
        help="shard size in MiB (default 100; the reference used 10/25/50/75/100)",
    )
    p.add_argument("--out", required=True, metavar="DIR|s3://bucket/prefix", help="output folder or S3 prefix")
    p.add_argument(
        "--renumber",
        action="store_true",
        help="assign object ids 0..N-1 in input order (needed for several reference .pt files)",
    )
    p.add_argument("--jobs", type=int, default=4, metavar="N", help="parallel shard uploads (default 4)")
    p.add_argument(
        "--keep-stale", action="store_true", help="do not delete old part-* shards absent from the new manifest"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _source(args: argparse.Namespace) -> Any:
    """The objects to partition: FITS cutouts with their table, or shard-like files."""
    from cosmicai.data.fits import FitsSource
    from cosmicai.data.partition import FileSource, PartitionError, expand_sources

    if args.from_fits:
        if args.sources:
            raise PartitionError("give either SRC shard files or --from-fits cutouts, not both")
        if not args.table:
            raise PartitionError("--from-fits needs --table (the object table: ids, magnitudes, ...)")
        if args.renumber:
            raise PartitionError("--renumber is for SRC files; FITS objects keep the table's object_id")
        mags = [c.strip() for c in args.mag_columns.split(",")] if args.mag_columns else None
        return FitsSource(args.from_fits, args.table, mag_columns=mags)
    if args.table or args.mag_columns:
        raise PartitionError("--table and --mag-columns go with --from-fits")
    if not args.sources:
        raise PartitionError("nothing to partition: give SRC files/folders or --from-fits")
    return FileSource(expand_sources(args.sources), args.renumber)


def _print_rejected(rejected: list[dict[str, Any]] | None) -> None:
    if not rejected:
        return
    print(f"partition: {len(rejected)} object(s) rejected (listed in manifest.json under 'rejected'):", file=sys.stderr)
    for r in rejected[:SHOW_REJECTED]:
        print(f"  id {r['id']} [{r['code']}] {r['reason']}", file=sys.stderr)
    if len(rejected) > SHOW_REJECTED:
        print(f"  ... and {len(rejected) - SHOW_REJECTED} more", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Partition; print a JSON summary; exit 2 with the named problem on bad input (or when
    every object was rejected)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from cosmicai.data.partition import PartitionError, write_partition
    from cosmicai.shards import ShardError

    try:
        result = write_partition(
            _source(args),
            args.out,
            args.target_mb,
            jobs=args.jobs,
            prune=not args.keep_stale,
            progress=not args.quiet,
        )
    except PartitionError as exc:
        _print_rejected(exc.rejected)
        print(f"partition: {exc}", file=sys.stderr)
        return 2
    except ShardError as exc:
        print(f"partition: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"partition: S3 error writing {args.out}: {exc}", file=sys.stderr)
        return 1
    _print_rejected(result.rejected)
    print(json.dumps(result.as_dict()))
    return 0
