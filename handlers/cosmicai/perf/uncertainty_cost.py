"""The compute cost of uncertainty tta8 against none: the same engine, batch and threads, measured.

`python -m cosmicai.perf.uncertainty_cost [--weights W] [--shard S] [--objects N] [--batch-size B]
[--threads T] [--rounds R] [--backend] [--precision]` prints one JSON line. Both modes predict the same
objects with one engine; tta8 sends the 8 views of batch_size // 8 objects a call (what the worker does),
none the objects themselves. Rounds alternate the two modes so load from other processes on a shared
machine slows both alike; the best round of each is kept, timed in wall and in CPU seconds of this
process (the factor is the CPU-second ratio: on a shared machine CPU seconds are what other work does
not inflate; with one thread the two agree within a few percent). `cosmicai calibrate-uncertainty`
records the result in the model card; the dry run multiplies the projected compute by it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cosmicai.uncertainty import VIEWS, predict_views


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def measure_cost_factor(engine: Any, images: np.ndarray, magnitudes: np.ndarray, rounds: int = 3) -> dict[str, Any]:
    """Best-of-`rounds` wall and CPU seconds of none and tta8 on the same objects, and their ratios."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    batch = int(engine.batch_size)
    runs: dict[str, Callable[[], Any]] = {
        "none": lambda: engine.predict(images, magnitudes),
        "tta8": lambda: predict_views(engine, images, magnitudes, batch),
    }
    engine.predict(images[:batch], magnitudes[:batch])  # warm-up: first-call allocations and kernel selection
    best = {k: (float("inf"), float("inf")) for k in runs}
    for r in range(rounds):
        for name in ("none", "tta8") if r % 2 == 0 else ("tta8", "none"):
            wall, cpu = _timed(runs[name])
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    n = int(images.shape[0])
    out: dict[str, Any] = {
        "objects": n,
        "batch_size": batch,
        "threads": getattr(engine, "threads", None),
        "backend": getattr(engine, "backend", None),
        "precision": getattr(engine, "precision", None),
        "rounds": rounds,
        "views": VIEWS,
    }
    for name, (wall, cpu) in best.items():
        out[name] = {"wall_s": round(wall, 4), "cpu_s": round(cpu, 4), "objects_per_s": round(n / wall, 2)}
    out["factor_wall"] = round(best["tta8"][0] / best["none"][0], 3)
    out["factor_cpu"] = round(best["tta8"][1] / best["none"][1], 3)
    out["cost_factor"] = out["factor_cpu"]
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure and print one JSON line."""
    from cosmicai.contracts import BACKENDS, PRECISIONS
    from cosmicai.engine import Engine
    from cosmicai.qualify import PACKAGED_VALIDATION
    from cosmicai.shards import read_shard

    p = argparse.ArgumentParser(prog="python -m cosmicai.perf.uncertainty_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="weights (default: $COSMICAI_WEIGHTS or the packaged demo weights)")
    p.add_argument("--shard", default=None, help=f"objects to predict (default: the packaged {PACKAGED_VALIDATION})")
    p.add_argument("--objects", type=int, default=256, help="objects from the shard (default 256)")
    p.add_argument("--batch-size", type=int, default=512, help="engine batch size, images a call (default 512)")
    p.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds, best kept (default 3)")
    p.add_argument("--backend", choices=BACKENDS, default="torch")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    args = p.parse_args(argv)
    shard = read_shard(args.shard or Path(__file__).resolve().parents[1] / "assets" / PACKAGED_VALIDATION)
    engine = Engine.from_weights(
        args.weights, backend=args.backend, precision=args.precision, threads=args.threads, batch_size=args.batch_size
    )
    n = min(args.objects, shard.n)
    print(json.dumps(measure_cost_factor(engine, shard.images[:n], shard.magnitudes[:n], args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
