"""`cosmicai bench`: engine throughput vs a plain eager loop, accuracy per mode, init, RSS, cost."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ACCURACY_LIMIT = 2e-3  # max |dz| vs fp32 for a mode to count as accurate (issue 2)
OBJECTS_PER_INVOCATION = 5113  # the reference's 100 MB partition

# Runs in a fresh interpreter: import + weights load + first prediction, then one full batch.
_INIT_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from cosmicai.engine import Engine, peak_rss_mb
path, precision, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine = Engine.from_weights(path, precision=precision, threads=1, batch_size=batch)
rng = np.random.default_rng(0)
images = rng.normal(0.0, 0.05, (batch, 5, 32, 32)).astype(np.float32)
mags = rng.normal(18.0, 1.0, (batch, 5)).astype(np.float32)
engine.predict(images[:1], mags[:1])
init_s = time.perf_counter() - t0
engine.predict(images, mags)
print(json.dumps({"init_s": init_s, "peak_rss_mb": peak_rss_mb()}))
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the bench parser."""
    p = subparsers.add_parser(
        "bench",
        help="benchmark the engine against plain eager PyTorch (throughput, accuracy, init, RSS, cost)",
        description="Full-size AstroMAE on synthetic inputs. Engine modes and a plain eager loop run "
        "interleaved, several rounds, in one process, so a shared machine slows all alike.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    p.add_argument("--batch-size", type=int, default=512, metavar="N")
    p.add_argument("--objects", type=int, default=1024, metavar="N", help="objects per timed run (default 1024)")
    p.add_argument("--threads", default="1,2", metavar="LIST", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--precisions", default="fp32,bf16,int8", metavar="LIST", help="engine modes (default fp32,bf16,int8)")
    p.add_argument("--rounds", type=int, default=3, metavar="R", help="interleaved rounds; the best of each is kept (default 3)")
    p.add_argument("--weights", default=None, metavar="W", help="safetensors weights (default: random weights, seed 0)")
    p.add_argument("--no-init", action="store_true", help="skip the fresh-process init/RSS probe")
    p.set_defaults(run=run)


def _int_list(text: str, what: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"bench: --{what} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise SystemExit(f"bench: --{what} needs integers >= 1, got {text!r}")
    return vals


def _init_probe(weights: Path, precision: str, batch: int) -> dict[str, float]:
    """init_s and peak RSS of a fresh interpreter that loads the weights and predicts."""
    t0 = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(
        [sys.executable, "-c", _INIT_PROBE, str(weights), precision, str(batch)],
        capture_output=True, text=True, env=env, check=False,
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"init probe ({precision}) failed: {res.stderr.strip()[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {"init_s": round(out["init_s"], 3), "process_wall_s": round(wall, 3), "peak_rss_mb": round(out["peak_rss_mb"], 1)}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; return the JSON-ready result."""
    import numpy as np
    import torch

    from cosmicai.costs import CostInputs, cost_per_million, recommend_memory
    from cosmicai.engine import Engine, available_cpus, plain_eager_predict
    from cosmicai.model import AstroMAE
    from cosmicai.weights import load_model, save_weights

    threads_list = _int_list(args.threads, "threads")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")  # the accuracy reference
    if args.objects < 1 or args.batch_size < 1 or args.rounds < 1:
        raise SystemExit("bench: --objects, --batch-size and --rounds must be >= 1")

    if args.weights:
        model = load_model(args.weights)
    else:
        torch.manual_seed(0)
        model = AstroMAE().eval()
    rng = np.random.default_rng(1)
    images = rng.normal(0.0, 0.05, (args.objects, 5, 32, 32)).astype(np.float32)
    mags = rng.normal(18.0, 1.0, (args.objects, 5)).astype(np.float32)

    per_threads: dict[str, Any] = {}
    for threads in threads_list:
        engines = {p: Engine(model, precision=p, threads=threads, batch_size=args.batch_size) for p in precisions}
        runners: dict[str, Any] = {"plain_eager": lambda: plain_eager_predict(model, images, mags, args.batch_size)}
        for p, eng in engines.items():
            runners[p] = lambda eng=eng: eng.predict(images, mags)
        torch.set_num_threads(threads)
        warm = images[: args.batch_size], mags[: args.batch_size]
        plain_eager_predict(model, *warm, batch_size=args.batch_size)
        for eng in engines.values():
            eng.predict(*warm)
        best: dict[str, float] = {k: 0.0 for k in runners}
        outputs: dict[str, np.ndarray] = {}
        names = list(runners)
        for r in range(args.rounds):
            # Rotate the order each round so no runner always follows the same neighbour.
            for name in names[r % len(names):] + names[: r % len(names)]:
                torch.set_num_threads(threads)
                t0 = time.perf_counter()
                outputs[name] = runners[name]()
                rate = args.objects / (time.perf_counter() - t0)
                best[name] = max(best[name], rate)
        eager = best["plain_eager"]
        modes = {}
        for p in precisions:
            modes[p] = {
                "objects_per_s": round(best[p], 1),
                "ratio_vs_plain_eager": round(best[p] / eager, 3),
                "max_abs_dz_vs_fp32": float(np.abs(outputs[p] - outputs["fp32"]).max()),
                "max_abs_dz_vs_plain_eager": float(np.abs(outputs[p] - outputs["plain_eager"]).max()),
            }
        per_threads[str(threads)] = {"plain_eager": {"objects_per_s": round(eager, 1)}, "modes": modes}

    first = per_threads[str(threads_list[0])]
    accurate = [p for p, m in first["modes"].items() if m["max_abs_dz_vs_fp32"] < ACCURACY_LIMIT]
    fastest = max(accurate, key=lambda p: first["modes"][p]["objects_per_s"])

    init: dict[str, Any] = {}
    if not args.no_init:
        with tempfile.TemporaryDirectory() as tmp:
            wpath = Path(args.weights) if args.weights else Path(tmp) / "bench.safetensors"
            if not args.weights:
                save_weights(model, wpath)
            for p in dict.fromkeys(["fp32", fastest]):
                init[p] = _init_probe(wpath, p, args.batch_size)

    rates = {t: per_threads[str(t)]["modes"][fastest]["objects_per_s"] for t in threads_list}
    rss = init.get(fastest, {}).get("peak_rss_mb", 0.0)
    rec_threads, memory_mb = recommend_memory(rates, min_memory_mb=max(128.0, 1.25 * rss))
    quote = cost_per_million(
        CostInputs(
            memory_mb=memory_mb,
            objects_per_s=rates[rec_threads],
            objects_per_invocation=OBJECTS_PER_INVOCATION,
            init_s=init.get(fastest, {}).get("init_s", 0.0),
        )
    )
    one = first["modes"]
    return {
        "machine": {
            "cpus_available": available_cpus(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "config": {
            "batch_size": args.batch_size,
            "objects": args.objects,
            "rounds": args.rounds,
            "weights": args.weights or "random (seed 0)",
            "method": "best objects/s of interleaved rounds, same process, same inputs",
        },
        "threads": per_threads,
        "init": init,
        "targets": {
            "threads": threads_list[0],
            "fp32_ratio": one["fp32"]["ratio_vs_plain_eager"],
            "fp32_ok": one["fp32"]["ratio_vs_plain_eager"] >= 1.3,
            "accuracy_limit": ACCURACY_LIMIT,
            "fastest_accurate_mode": fastest,
            "fastest_accurate_ratio": one[fastest]["ratio_vs_plain_eager"],
            "fastest_accurate_ok": one[fastest]["ratio_vs_plain_eager"] >= 2.0,
        },
        "lambda": {
            "mode": fastest,
            "recommended_threads": rec_threads,
            "recommended_memory_mb": memory_mb,
            "assumes": "one Lambda vCPU per thread runs as fast as one core here; x86_64; "
            f"{OBJECTS_PER_INVOCATION} objects (100 MB) per invocation",
            "usd_per_million_objects": round(quote["usd_per_million_objects"], 4),
            "cost": quote,
        },
    }


def _table(res: dict[str, Any]) -> str:
    lines = [f"{'threads':>7} {'mode':<12} {'obj/s':>8} {'x eager':>8} {'max|dz| vs fp32':>16}"]
    for t, block in res["threads"].items():
        lines.append(f"{t:>7} {'plain_eager':<12} {block['plain_eager']['objects_per_s']:>8.1f} {1.0:>8.2f} {'-':>16}")
        for p, m in block["modes"].items():
            lines.append(f"{t:>7} {p:<12} {m['objects_per_s']:>8.1f} {m['ratio_vs_plain_eager']:>8.2f} {m['max_abs_dz_vs_fp32']:>16.2e}")
    for p, i in res["init"].items():
        lines.append(f"init {p}: {i['init_s']:.2f} s to first prediction, peak RSS {i['peak_rss_mb']:.0f} MiB")
    lam = res["lambda"]
    lines.append(
        f"Lambda ({lam['mode']}): {lam['recommended_memory_mb']} MB, {lam['recommended_threads']} thread(s): "
        f"${lam['usd_per_million_objects']:.4f} per million objects"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the benchmark as one JSON object (--json) or a table."""
    res = measure(args)
    print(json.dumps(res, indent=None if args.json else 2) if args.json else _table(res))
    return 0
