"""`cosmicai inspect SHARD...`: what each shard holds and whether it is valid."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the inspect parser."""
    p = subparsers.add_parser(
        "inspect",
        help="describe shard files (format, count, shapes, ranges, validity)",
        description="Read each shard (safetensors, npz or reference .pt) and describe it.",
    )
    p.add_argument("shards", nargs="+", metavar="SHARD", help="shard files")
    p.add_argument("--json", action="store_true", help="one JSON object per shard, one per line")
    p.set_defaults(run=run)


def describe(path: str) -> dict[str, Any]:
    """Summary of one shard; invalid shards get `valid: False` with the error code and message."""
    from cosmicai.shards import ShardError, detect_format, read_shard

    info: dict[str, Any] = {"path": path}
    try:
        data = Path(path).read_bytes()
        info["bytes"] = len(data)
        info["format"] = detect_format(data, path)
        shard = read_shard(data, name=path)
    except OSError as exc:
        return info | {"valid": False, "error": "unreadable", "message": f"{path}: {exc}"}
    except ShardError as exc:
        return info | {"valid": False, "error": exc.code, "message": str(exc)}
    info |= {
        "valid": True,
        "count": shard.n,
        "has_redshift": shard.has_redshift,
        "object_id": {"dtype": "int64", "min": int(shard.object_ids.min()), "max": int(shard.object_ids.max())},
        "images": {"dtype": str(shard.images.dtype), "shape": list(shard.images.shape)},
        "magnitudes": {
            "dtype": str(shard.magnitudes.dtype),
            "shape": list(shard.magnitudes.shape),
            "min": float(shard.magnitudes.min()),
            "max": float(shard.magnitudes.max()),
        },
    }
    if shard.redshift is not None:
        info["redshift"] = {"min": float(shard.redshift.min()), "max": float(shard.redshift.max())}
    return info


def _text(info: dict[str, Any]) -> str:
    head = f"{info['path']}: {info.get('format', '?')}"
    if not info["valid"]:
        return f"{head} INVALID [{info['error']}] {info['message']}"
    lines = [
        f"{head}, {info['count']} objects, {info['bytes']:,} bytes, valid",
        f"  object_id  int64 {info['object_id']['min']}..{info['object_id']['max']}",
        f"  images     {info['images']['dtype']} {tuple(info['images']['shape'])}",
        f"  magnitudes {info['magnitudes']['dtype']} {tuple(info['magnitudes']['shape'])} "
        f"range {info['magnitudes']['min']:.3f}..{info['magnitudes']['max']:.3f}",
    ]
    if info["has_redshift"]:
        z = info["redshift"]
        lines.append(f"  redshift   float32 range {z['min']:.4f}..{z['max']:.4f}")
    else:
        lines.append("  redshift   none (unlabelled)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print each shard's summary; exit 1 if any shard is invalid."""
    infos = [describe(p) for p in args.shards]
    for info in infos:
        print(json.dumps(info) if args.json else _text(info))
    bad = sum(not i["valid"] for i in infos)
    if bad:
        print(f"{bad} of {len(infos)} shard(s) invalid", file=sys.stderr)
    return 1 if bad else 0
