"""`cosmicai partition`: re-shard inputs into ~M MiB shards with a manifest, locally or to S3."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
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
            "matches and removes part-* shards the new partitioning no longer has."
        ),
    )
    p.add_argument("sources", nargs="+", metavar="SRC", help="input files or folders")
    p.add_argument("--target-mb", type=float, default=100.0, metavar="M", help="shard size in MiB (default 100; the reference used 10/25/50/75/100)")
    p.add_argument("--out", required=True, metavar="DIR|s3://bucket/prefix", help="output folder or S3 prefix")
    p.add_argument("--renumber", action="store_true", help="assign object ids 0..N-1 in input order (needed for several reference .pt files)")
    p.add_argument("--jobs", type=int, default=4, metavar="N", help="parallel shard uploads (default 4)")
    p.add_argument("--keep-stale", action="store_true", help="do not delete old part-* shards absent from the new manifest")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Partition; print a JSON summary; exit 2 with the named problem on bad input."""
    from botocore.exceptions import BotoCoreError, ClientError

    from cosmicai.data.partition import PartitionError, partition
    from cosmicai.shards import ShardError

    try:
        result = partition(
            args.sources, args.out, args.target_mb, renumber=args.renumber, jobs=args.jobs,
            prune=not args.keep_stale, progress=not args.quiet,
        )
    except (PartitionError, ShardError) as exc:
        print(f"partition: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"partition: S3 error writing {args.out}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.as_dict()))
    return 0
