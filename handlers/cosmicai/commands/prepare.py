"""`cosmicai prepare`: clean raw cutouts, crop to 32x32, split 70/15/15, report removals."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the prepare parser."""
    p = subparsers.add_parser(
        "prepare",
        help="clean, crop 64->32 and split (70/15/15) cutouts for training; report removals",
        description=(
            "Read shard-like files (safetensors, npz, reference .pt; any square size >= 32), drop "
            "objects with invalid magnitudes, images or redshifts and duplicate ids, flag redshift "
            "outliers, centre-crop to 32x32 and write OUT/{train,val,test}/part-*.safetensors, "
            "OUT/objects.parquet (status and split of every input row) and OUT/report.json."
        ),
    )
    p.add_argument("sources", nargs="+", metavar="SRC", help="input files or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--z-min", type=float, default=0.0, help="flag redshifts below this (default 0)")
    p.add_argument("--z-max", type=float, default=1.0, help="flag redshifts above this (default 1.0)")
    p.add_argument("--keep-outliers", action="store_true", help="keep flagged redshift outliers in the splits")
    p.add_argument("--shard-size", type=int, default=5000, help="objects per output shard (default 5000)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Prepare; print the report as a table (stderr) and JSON (stdout); 2 on unusable input."""
    from rich.console import Console
    from rich.table import Table

    from cosmicai.data.partition import PartitionError
    from cosmicai.data.prepare import FLAG, PrepareError, prepare
    from cosmicai.shards import ShardError

    try:
        rep = prepare(
            args.sources,
            args.out,
            seed=args.seed,
            z_min=args.z_min,
            z_max=args.z_max,
            keep_outliers=args.keep_outliers,
            shard_size=args.shard_size,
        )
    except (PrepareError, PartitionError, ShardError) as exc:
        print(f"prepare: {exc}", file=sys.stderr)
        return 2
    t = Table(title=f"prepare: {rep.objects_in} objects in")
    t.add_column("step")
    t.add_column("objects", justify="right")
    for rule, n in rep.removed.items():
        t.add_row(f"removed: {rule}", str(n))
    t.add_row(f"flagged: {FLAG}" + (" (kept)" if rep.flagged_kept else " (left out)"), str(rep.flagged))
    for name, n in rep.splits.items():
        t.add_row(f"split: {name}", str(n))
    Console(stderr=True).print(t)
    print(json.dumps(rep.as_dict()))
    return 0
