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

from cosmicai.contracts import BACKENDS

ACCURACY_LIMIT = 2e-3  # max |dz| vs fp32 for a mode to count as accurate (issue 2)
OBJECTS_PER_INVOCATION = 5113  # the reference's 100 MB partition

# Runs in a fresh interpreter, as a new Lambda execution environment: the infer handler's import
# (its INIT: imports and the backend's model), the engine, the first prediction, then one full batch.
_INIT_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import cosmicai.handlers.infer as infer
t_init = time.perf_counter() - t0
cpu_init = time.process_time()
import numpy as np
precision, batch, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3]
engine = infer._engine(precision, batch, backend)
t_engine = time.perf_counter() - t0
rng = np.random.default_rng(0)
images = rng.normal(0.0, 0.05, (batch, 5, 32, 32)).astype(np.float32)
mags = rng.normal(18.0, 1.0, (batch, 5)).astype(np.float32)
engine.predict(images[:1], mags[:1])
init_s = time.perf_counter() - t0
cpu_first = time.process_time()
torch_loaded = "torch" in sys.modules
engine.predict(images, mags)
from cosmicai.engine import peak_rss_mb
print(json.dumps({"handler_import_s": t_init, "engine_s": t_engine - t_init, "init_s": init_s,
                  "handler_import_cpu_s": cpu_init, "init_cpu_s": cpu_first,
                  "precision": engine.precision, "torch_imported": torch_loaded, "peak_rss_mb": peak_rss_mb()}))
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the bench parser."""
    p = subparsers.add_parser(
        "bench",
        help="benchmark the engine against plain eager PyTorch (throughput, accuracy, init, RSS, cost)",
        description="Full-size AstroMAE on synthetic inputs. Engine modes and a plain eager loop run "
        "interleaved, several rounds, in one process, so a shared machine slows all alike. "
        "--backend openvino adds the OpenVINO modes beside the torch ones.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    p.add_argument("--batch-size", type=int, default=512, metavar="N")
    p.add_argument("--objects", type=int, default=1024, metavar="N", help="objects per timed run (default 1024)")
    p.add_argument("--threads", default="1,2", metavar="LIST", help="comma-separated thread counts (default 1,2)")
    p.add_argument(
        "--precisions", default="fp32,bf16,int8", metavar="LIST", help="engine modes (default fp32,bf16,int8)"
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="torch: the torch modes; openvino: the OpenVINO modes too, side by side (default torch)",
    )
    p.add_argument(
        "--rounds", type=int, default=3, metavar="R", help="interleaved rounds; the best of each is kept (default 3)"
    )
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


def _init_probe(weights: Path, precision: str, batch: int, backend: str = "torch") -> dict[str, Any]:
    """A fresh interpreter as a new worker: handler import (INIT), engine, first prediction, peak RSS."""
    t0 = time.perf_counter()
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        COSMICAI_WEIGHTS=str(weights),
        COSMICAI_BACKEND=backend,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1769",
    )  # one vCPU's share: one thread, as the bench's first column
    res = subprocess.run(
        [sys.executable, "-c", _INIT_PROBE, precision, str(batch), backend],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"init probe ({backend} {precision}) failed: {res.stderr.strip()[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {
        "backend": backend,
        "precision": out["precision"],
        "handler_import_s": round(out["handler_import_s"], 3),
        "engine_s": round(out["engine_s"], 3),
        "init_s": round(out["init_s"], 3),
        # CPU seconds of the process (interpreter start included): less sensitive to a busy machine than wall time.
        "handler_import_cpu_s": round(out["handler_import_cpu_s"], 3),
        "init_cpu_s": round(out["init_cpu_s"], 3),
        "process_wall_s": round(wall, 3),
        "torch_imported": out["torch_imported"],
        "peak_rss_mb": round(out["peak_rss_mb"], 1),
    }


def _openvino_model(model: Any, weights: str | None) -> tuple[Any, str]:
    """The IR next to `weights` when there is one (what workers run), else `model` converted now."""
    from cosmicai import engine_openvino
    from cosmicai.openvino_convert import convert
    from cosmicai.qualify import calibration_images, packaged_validation, read_validation

    if weights and (engine_openvino.ir_dir(weights) / engine_openvino.MANIFEST).is_file():
        return engine_openvino.load(
            engine_openvino.ir_dir(weights), weights
        ), f"IR at {engine_openvino.ir_dir(weights)}"
    images, mags = read_validation(packaged_validation())
    parts, facts = convert(model, calibration=(calibration_images(images), mags))
    return engine_openvino.OpenVINOModel(
        parts, facts
    ), f"converted in memory ({facts['convert_s']:.1f} s, int8 calibrated on the packaged validation set)"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; return the JSON-ready result."""
    import numpy as np
    import torch

    from cosmicai.costs import CostInputs, cost_per_million, recommend_memory
    from cosmicai.engine import Engine, available_cpus, plain_eager_predict
    from cosmicai.model import AstroMAE
    from cosmicai.procstats import cpu_info
    from cosmicai.weights import load_model, save_weights

    threads_list = _int_list(args.threads, "threads")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")  # the accuracy reference
    if args.objects < 1 or args.batch_size < 1 or args.rounds < 1:
        raise SystemExit("bench: --objects, --batch-size and --rounds must be >= 1")
    load_start = [round(x, 2) for x in os.getloadavg()]

    if args.weights:
        model = load_model(args.weights)
    else:
        torch.manual_seed(0)
        model = AstroMAE().eval()
    rng = np.random.default_rng(1)
    images = rng.normal(0.0, 0.05, (args.objects, 5, 32, 32)).astype(np.float32)
    mags = rng.normal(18.0, 1.0, (args.objects, 5)).astype(np.float32)
    ov_model, ov_source = (None, "")
    if args.backend == "openvino":
        ov_model, ov_source = _openvino_model(model, args.weights)

    # Runner names: the torch modes keep their plain names; OpenVINO's are "openvino-<precision>".
    def modes_of() -> list[tuple[str, str, str]]:
        out = [(p, "torch", p) for p in precisions]
        if ov_model is not None:
            out += [(f"openvino-{p}", "openvino", p) for p in precisions if p in ov_model.precisions]
        return out

    per_threads: dict[str, Any] = {}
    for threads in threads_list:
        engines = {
            name: Engine(
                ov_model if backend == "openvino" else model,
                precision=p,
                threads=threads,
                batch_size=args.batch_size,
                backend=backend,
            )
            for name, backend, p in modes_of()
        }
        runners: dict[str, Any] = {"plain_eager": lambda: plain_eager_predict(model, images, mags, args.batch_size)}
        for name, eng in engines.items():
            runners[name] = lambda eng=eng: eng.predict(images, mags)
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
            for name in names[r % len(names) :] + names[: r % len(names)]:
                torch.set_num_threads(threads)
                t0 = time.perf_counter()
                outputs[name] = runners[name]()
                rate = args.objects / (time.perf_counter() - t0)
                best[name] = max(best[name], rate)
        eager = best["plain_eager"]
        modes = {}
        for name, backend, p in modes_of():
            modes[name] = {
                "backend": backend,
                "precision": p,
                "objects_per_s": round(best[name], 1),
                "ratio_vs_plain_eager": round(best[name] / eager, 3),
                "max_abs_dz_vs_fp32": float(np.abs(outputs[name] - outputs["fp32"]).max()),
                "max_abs_dz_vs_plain_eager": float(np.abs(outputs[name] - outputs["plain_eager"]).max()),
            }
        per_threads[str(threads)] = {"plain_eager": {"objects_per_s": round(eager, 1)}, "modes": modes}

    first = per_threads[str(threads_list[0])]
    accurate = [p for p, m in first["modes"].items() if m["max_abs_dz_vs_plain_eager"] < ACCURACY_LIMIT]
    fastest = max(accurate, key=lambda p: first["modes"][p]["objects_per_s"])

    init: dict[str, Any] = {}
    if not args.no_init:
        with tempfile.TemporaryDirectory() as tmp:
            wpath = Path(tmp) / "bench.safetensors"
            if args.weights:
                os.symlink(Path(args.weights).resolve(), wpath)
            else:
                save_weights(model, wpath)
            if ov_model is not None:
                from cosmicai import engine_openvino

                if ov_model.folder is not None:
                    os.symlink(ov_model.folder.resolve(), engine_openvino.ir_dir(wpath))
                else:
                    engine_openvino.save(ov_model, engine_openvino.ir_dir(wpath), wpath, weights_fp16=False)
            probes = [("torch", "fp32")]
            fast = first["modes"][fastest]
            probes.append((fast["backend"], fast["precision"]))
            if ov_model is not None:
                probes.append(("openvino", "fp32"))
            for backend, p in dict.fromkeys(probes):
                init[p if backend == "torch" else f"openvino-{p}"] = _init_probe(wpath, p, args.batch_size, backend)

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
    versions: dict[str, str] = {"torch": str(torch.__version__)}
    if ov_model is not None:
        from cosmicai.engine_openvino import openvino_version

        versions["openvino"] = openvino_version()
    return {
        "machine": {
            "cpus_available": available_cpus(),
            "platform": platform.platform(),
            "cpu_model": cpu_info()[0],
            "load_average_start": load_start,
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            **versions,
        },
        "config": {
            "batch_size": args.batch_size,
            "objects": args.objects,
            "rounds": args.rounds,
            "weights": args.weights or "random (seed 0)",
            "backend": args.backend,
            "openvino_model": ov_source or None,
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
    lines = [f"{'threads':>7} {'mode':<15} {'obj/s':>8} {'x eager':>8} {'max|dz| vs fp32 eager':>22}"]
    for t, block in res["threads"].items():
        lines.append(f"{t:>7} {'plain_eager':<15} {block['plain_eager']['objects_per_s']:>8.1f} {1.0:>8.2f} {'-':>22}")
        for p, m in block["modes"].items():
            lines.append(
                f"{t:>7} {p:<15} {m['objects_per_s']:>8.1f} {m['ratio_vs_plain_eager']:>8.2f} "
                f"{m['max_abs_dz_vs_plain_eager']:>22.2e}"
            )
    for p, i in res["init"].items():
        lines.append(
            f"init {p}: handler import (INIT) {i['handler_import_s']:.2f} s, engine {i['engine_s']:.2f} s, "
            f"{i['init_s']:.2f} s to first prediction (CPU {i['handler_import_cpu_s']:.2f} / {i['init_cpu_s']:.2f} s), "
            f"torch imported: {'yes' if i['torch_imported'] else 'no'}, "
            f"peak RSS {i['peak_rss_mb']:.0f} MiB"
        )
    lam = res["lambda"]
    m = res["machine"]
    lines.append(
        f"Lambda ({lam['mode']}): {lam['recommended_memory_mb']} MB, {lam['recommended_threads']} thread(s): "
        f"${lam['usd_per_million_objects']:.4f} per million objects"
    )
    lines.append(
        f"load average {m['load_average_start']} -> {m['load_average_end']} on {m['cpus_available']} CPU(s), "
        f"{m['cpu_model']}"
    )
    if res["config"].get("openvino_model"):
        lines.append(f"openvino model: {res['config']['openvino_model']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the benchmark as one JSON object (--json) or a table."""
    res = measure(args)
    print(json.dumps(res, indent=None if args.json else 2) if args.json else _table(res))
    return 0
