"""Image-equivalent cold start: a fresh interpreter imports the infer handler, loads the weights
and makes its first prediction, as a new Lambda execution environment does.

Each probe names its backend (`COSMICAI_BACKEND`, what the function's INIT loads: torch's model, or
OpenVINO's IR and compiled blobs), runs with one vCPU's share (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`
1769: one engine thread) and says whether torch was imported and how the OpenVINO parts were made
(imported from compiled blobs, or compiled from the IR). `probe_series` interleaves the probes over
several rounds (a shared machine slows all alike) and keeps each one's median.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Runs in a fresh interpreter with COSMICAI_WEIGHTS and COSMICAI_BACKEND set, like the inference image.
_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import cosmicai.handlers.infer as infer
t_import = time.perf_counter() - t0
cpu_import = time.process_time()
import numpy as np
precision, batch, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3]
engine = infer._engine(precision, batch, backend)
t_engine = time.perf_counter() - t0
rng = np.random.default_rng(0)
images = rng.normal(0.0, 0.05, (1, 5, 32, 32)).astype(np.float32)
mags = rng.normal(18.0, 1.0, (1, 5)).astype(np.float32)
engine.predict(images, mags)
t_first = time.perf_counter() - t0
cpu_first = time.process_time()
from cosmicai.engine import peak_rss_mb
model = infer._MODELS.get(backend)
made = sorted(set(getattr(model, "made", {}).values()))
print(json.dumps({"import_s": t_import, "engine_s": t_engine - t_import, "first_prediction_s": t_first,
                  "import_cpu_s": cpu_import, "first_prediction_cpu_s": cpu_first,
                  "engine_precision": engine.precision, "threads": engine.threads,
                  "torch_imported": "torch" in sys.modules, "openvino_parts": made,
                  "peak_rss_mb": peak_rss_mb()}))
"""

# One vCPU's share of a Lambda function (its engine runs one thread), as the worker path's first column.
ONE_VCPU_MB = "1769"


class ColdStartError(RuntimeError):
    """The cold-start probe process failed (message carries its stderr tail)."""


def probe_cold_start(
    weights: Path,
    precision: str,
    batch_size: int,
    threads: int = 1,
    *,
    backend: str = "torch",
    env: dict[str, str] | None = None,
    cpu_class: str = "host",
    name: str | None = None,
) -> dict[str, Any]:
    """Seconds from interpreter start to import, engine built and first prediction, plus peak RSS.

    `name` (default: the worker-path runner name, `int8` or `openvino-int8`) is the row's
    `precision`, which the projection matches against the worker path's best runner.
    """
    from cosmicai.perf.worker_path import runner_name

    full_env = dict(
        os.environ,
        COSMICAI_WEIGHTS=str(weights),
        COSMICAI_BACKEND=backend,
        OMP_NUM_THREADS=str(threads),
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(int(ONE_VCPU_MB) * threads),
    )
    full_env |= env or {}
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, precision, str(batch_size), backend],
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
    )
    process_s = time.perf_counter() - t0
    if res.returncode != 0:
        raise ColdStartError(
            f"cold-start probe ({backend} {precision}, batch {batch_size}) failed: {res.stderr.strip()[-2000:]}"
        )
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {
        "precision": name or runner_name(backend, precision),
        "backend": backend,
        "requested_precision": precision,
        "engine_precision": out["engine_precision"],
        "cpu_class": cpu_class,
        "threads": out["threads"],
        "import_s": round(out["import_s"], 3),
        "engine_s": round(out["engine_s"], 3),
        "first_prediction_s": round(out["first_prediction_s"], 3),
        "import_cpu_s": round(out["import_cpu_s"], 3),
        "first_prediction_cpu_s": round(out["first_prediction_cpu_s"], 3),
        "process_wall_s": round(process_s, 3),  # includes interpreter start-up
        "torch_imported": out["torch_imported"],
        "openvino_parts": out["openvino_parts"],
        "peak_rss_mb": round(out["peak_rss_mb"], 1),
    }


@dataclass(frozen=True)
class Probe:
    """One cold-start configuration: what the function runs and what it is called in the results."""

    backend: str
    precision: str
    name: str | None = None
    weights: Path | None = None  # default: probe_series' weights
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


_SECONDS = ("import_s", "engine_s", "first_prediction_s", "import_cpu_s", "first_prediction_cpu_s", "process_wall_s")


def probe_series(
    weights: Path,
    probes: Sequence[Probe],
    batch_size: int,
    rounds: int = 3,
    *,
    cpu_class: str = "host",
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Every probe `rounds` times, interleaved; one row per probe with the median of each figure,
    every round's time to first prediction, and the load average around them."""
    runs: list[list[dict[str, Any]]] = [[] for _ in probes]
    for r in range(rounds):
        for i, p in enumerate(probes):
            row = probe_cold_start(
                p.weights or weights,
                p.precision,
                batch_size,
                backend=p.backend,
                env=p.env,
                cpu_class=cpu_class,
                name=p.name,
            )
            runs[i].append(row)
            progress(
                f"cold start {row['precision']} ({p.note or p.backend}) round {r + 1}/{rounds}: "
                f"first prediction {row['first_prediction_s']:.2f} s (import {row['import_s']:.2f} s, engine "
                f"{row['engine_s']:.2f} s)"
            )
    out = []
    for p, rows in zip(probes, runs, strict=True):
        med = dict(rows[-1])
        for k in _SECONDS:
            med[k] = round(statistics.median(r[k] for r in rows), 3)
        med["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rows)
        med["rounds_first_prediction_s"] = [r["first_prediction_s"] for r in rows]
        med["statistic"] = f"median of {len(rows)} interleaved fresh processes"
        if p.note:
            med["note"] = p.note
        out.append(med)
    return out


__all__ = ["ONE_VCPU_MB", "ColdStartError", "Probe", "probe_cold_start", "probe_series"]
