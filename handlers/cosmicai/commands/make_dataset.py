"""`cosmicai make-dataset`: synthetic SDSS-like galaxies (shards plus a truth catalog)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the make-dataset parser."""
    p = subparsers.add_parser(
        "make-dataset",
        help="generate synthetic SDSS-like galaxies with physically real redshift signal",
        description=(
            "Draw galaxies like an SDSS spectroscopic sample, redshift CWW SED templates through "
            "the SDSS ugriz filter curves, render PSF-convolved Sersic cutouts with sky noise and "
            "write shards plus catalog.parquet (all true parameters). Deterministic per seed. "
            "With --fits: the same objects as FITS cutouts (--size pixels) in OUT/cutouts/ plus an "
            "object table OUT/objects.fits|csv|parquet (ids, magnitudes, redshift, ra, dec, file) "
            "for `cosmicai partition --from-fits`."
        ),
    )
    p.add_argument("--n", type=int, required=True, metavar="N", help="number of objects")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--size", type=int, default=64, metavar="PIX", help="rendered cutout size (default 64)")
    p.add_argument("--shard-size", type=int, default=5000, metavar="N", help="objects per shard (default 5000)")
    p.add_argument(
        "--raw",
        action="store_true",
        help="write uncropped raw cutouts (raw-NNNNN.npz, --size pixels) for `cosmicai prepare` "
        "instead of pipeline-ready 32x32 safetensors shards",
    )
    p.add_argument("--fits", action="store_true", help="write FITS cutouts + an object table instead of shards")
    p.add_argument(
        "--fits-layout",
        choices=("mef", "cube", "bands"),
        default="mef",
        help="with --fits: one file per object with 5 image HDUs (mef, default), one (5,H,W) cube "
        "per object (cube), or one file per band <id>_<band>.fits (bands)",
    )
    p.add_argument(
        "--table-format",
        choices=("fits", "csv", "parquet"),
        default="fits",
        help="with --fits: format of the object table (default fits)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generate; print a JSON summary; exit 2 on a bad argument."""
    from cosmicai.data.generate import DatasetArgumentError, make_dataset
    from cosmicai.data.sed import TemplateDataError

    try:
        if args.fits:
            from cosmicai.data.fits_write import make_fits_dataset

            summary = make_fits_dataset(
                args.n,
                args.seed,
                args.out,
                size=args.size,
                layout=args.fits_layout,
                table_format=args.table_format,
                progress=not args.quiet,
            )
        else:
            summary = make_dataset(
                args.n,
                args.seed,
                args.out,
                size=args.size,
                shard_size=args.shard_size,
                progress=not args.quiet,
                raw=args.raw,
            )
    except (DatasetArgumentError, TemplateDataError) as exc:
        print(f"make-dataset: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0
