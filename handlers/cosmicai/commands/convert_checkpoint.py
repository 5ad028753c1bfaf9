"""`cosmicai convert-checkpoint SRC [DST] [--openvino] [--qualify]`: reference checkpoint ->
safetensors weights, and the engine's files written next to the weights."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the convert-checkpoint parser."""
    p = subparsers.add_parser(
        "convert-checkpoint",
        help=(
            "convert a reference AstroMAE checkpoint to safetensors weights "
            "(and the engine's OpenVINO IR / qualification)"
        ),
        description=(
            "Convert a reference AstroMAE checkpoint (a torch.save state dict, with or without "
            "DataParallel's 'module.' prefix, or the published whole-model pickle) to the "
            "safetensors weights cosmicai loads. Pickled models need --trust-pickle. Without DST, "
            "SRC must already be cosmicai weights: only the engine's files are (re)written next to it. "
            "--openvino writes the OpenVINO IR (<weights>.openvino/) so no worker converts at run time; "
            "--qualify measures every backend and precision against fp32 on a validation set and records "
            "which may serve `--precision fast` (<weights>.qualification.json)."
        ),
    )
    p.add_argument("src", help="reference checkpoint (.pt/.pth) or safetensors file")
    p.add_argument(
        "dst",
        nargs="?",
        default=None,
        help="output .safetensors path (omit to keep SRC, which must be cosmicai weights)",
    )
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow opening a pickled model (read with a restricted, placeholder-only unpickler)",
    )
    p.add_argument("--fp16", action="store_true", help="store fp16 on disk (loaded back as fp32)")
    p.add_argument("--openvino", action="store_true", help="also write the OpenVINO IR next to the weights")
    p.add_argument(
        "--qualify",
        action="store_true",
        help="also measure and record which precisions qualify for --precision fast on this CPU",
    )
    p.add_argument(
        "--validation",
        metavar="SHARD",
        default=None,
        help="validation shard for --qualify and the int8 calibration (default: the packaged "
        "256-object set made by `cosmicai make-dataset --n 256 --seed 21`); copied next to the weights",
    )
    p.add_argument(
        "--threads", type=int, default=1, metavar="N", help="threads the qualification measures with (default 1)"
    )
    p.add_argument(
        "--rounds", type=int, default=3, metavar="R", help="interleaved timing rounds of the qualification (default 3)"
    )
    p.add_argument("--json", action="store_true", help="print the engine files' summary as JSON")
    p.set_defaults(run=run)


def _engine_files(args: argparse.Namespace, weights: Path) -> int:
    from cosmicai.engine import EngineError
    from cosmicai.qualify import prepare_engine_files

    try:
        summary = prepare_engine_files(
            weights,
            openvino=args.openvino,
            qualify=args.qualify,
            validation=args.validation,
            threads=args.threads,
            rounds=args.rounds,
        )
    except (EngineError, OSError, ValueError) as exc:
        print(f"convert-checkpoint: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
        return 0
    if "openvino" in summary:
        ov = summary["openvino"]
        print(
            f"openvino IR: {ov['folder']} (parts {', '.join(ov['parts'])}; converted in {ov.get('convert_s', 0):.1f} s)"
        )
    if "entry" in summary:
        entry = summary["entry"]
        print(
            f"qualification: {summary['qualification']} ({entry['cpu_model']}; {' '.join(entry['features'])}; "
            f"{entry['threads']} thread(s), {entry['objects']} validation objects, load {entry['load_average']})"
        )
        for m in entry["modes"]:
            mark = "ok " if m["qualified"] else "OVER"
            print(
                f"  {m['backend']:<9} {m['precision']:<5} {m['objects_per_s']:>8.1f} obj/s  max|dz| "
                f"{m['max_abs_dz_vs_fp32']:.2e}  {mark}"
            )
        for backend, reason in entry["reasons"].items():
            print(f"  fast ({backend}): {reason}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Convert, print a one-line summary; exit 2 with the reason on any refusal or bad input."""
    import torch

    from cosmicai.weights import WeightsError, convert_checkpoint, load_model

    if args.threads < 1 or args.rounds < 1:
        print("convert-checkpoint: --threads and --rounds must be >= 1", file=sys.stderr)
        return 2
    if args.dst is None:
        if not (args.openvino or args.qualify):
            print(
                "convert-checkpoint: give DST, or --openvino / --qualify to write the engine's files next to SRC",
                file=sys.stderr,
            )
            return 2
        try:
            load_model(args.src)  # SRC must already be cosmicai weights
        except WeightsError as exc:
            print(f"convert-checkpoint: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        return _engine_files(args, Path(args.src))
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
    if args.openvino or args.qualify:
        return _engine_files(args, Path(args.dst))
    return 0
