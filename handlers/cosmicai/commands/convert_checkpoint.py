"""`cosmicai convert-checkpoint SRC DST`: reference checkpoint -> safetensors weights."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the convert-checkpoint parser."""
    p = subparsers.add_parser(
        "convert-checkpoint",
        help="convert a reference AstroMAE checkpoint to safetensors weights",
        description=(
            "Convert a reference AstroMAE checkpoint (a torch.save state dict, with or without "
            "DataParallel's 'module.' prefix, or the published whole-model pickle) to the "
            "safetensors weights cosmicai loads. Pickled models need --trust-pickle."
        ),
    )
    p.add_argument("src", help="reference checkpoint (.pt/.pth) or safetensors file")
    p.add_argument("dst", help="output .safetensors path")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow opening a pickled model (read with a restricted, placeholder-only unpickler)",
    )
    p.add_argument("--fp16", action="store_true", help="store fp16 on disk (loaded back as fp32)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Convert, print a one-line summary; exit 2 with the reason on any refusal or bad input."""
    import torch

    from cosmicai.weights import WeightsError, convert_checkpoint

    try:
        summary = convert_checkpoint(
            args.src,
            args.dst,
            trust_pickle=args.trust_pickle,
            dtype=torch.float16 if args.fp16 else None,
        )
    except WeightsError as exc:
        print(f"convert-checkpoint: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    dtype = "fp16" if args.fp16 else "fp32"
    print(
        f"converted {args.src} ({summary['source_form']}) -> {summary['dst']}: "
        f"{summary['entries']} tensors, {summary['bytes'] / 2**20:.1f} MiB {dtype}"
    )
    return 0
