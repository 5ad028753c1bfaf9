"""Per-core objects/s of the worker path (S3 read -> engine -> catalog write) vs the reference-style loop.

Both read the same objects from the same S3 endpoint in the same process: the worker path
through `worker.run_item` (safetensors shard, catalog and report written back), the
reference-style loop by downloading a pickled `.pt` partition and running `refloop`. Runners
are interleaved over rounds with a rotating order, so load from other processes on a shared
machine slows all of them alike; the best round of each is kept. Each run is timed twice: wall
seconds, and CPU seconds of this process (all its threads), which is what "per core" means on a
shared machine: objects per CPU-second does not fall when other work takes the cores away.

Both backends run side by side in the same rounds: the torch engine's runners are named by
precision (`fp32`, `int8`, `bf16`), OpenVINO's `openvino-<precision>` (given an IR, read as a
worker reads it). Every row carries `backend`, `precision` and `cpu_class` (`host`, or `avx2` when
bench-system runs this bench in a child process with the libraries capped to AVX2).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cosmicai.catalog import read_catalog
from cosmicai.engine import Engine
from cosmicai.model import AstroMAE
from cosmicai.perf.refloop import partition_bytes, reference_style_predict
from cosmicai.shards import Shard, shard_to_bytes
from cosmicai.worker import PlannedShard, WorkItem, run_item

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_s3 import S3Client

REFERENCE = "reference_style"
OPENVINO_PREFIX = "openvino-"


def runner_name(backend: str, precision: str) -> str:
    """`fp32` for torch fp32 (the names of earlier runs), `openvino-int8` for OpenVINO int8."""
    return precision if backend == "torch" else f"{OPENVINO_PREFIX}{precision}"


def split_runner(name: str) -> tuple[str, str]:
    """(backend, precision) of a runner name (`reference_style`: torch eager fp32)."""
    if name == REFERENCE:
        return "torch", "fp32"
    if name.startswith(OPENVINO_PREFIX):
        return "openvino", name[len(OPENVINO_PREFIX) :]
    return "torch", name


@dataclass(frozen=True)
class WorkerBenchConfig:
    """What to sweep: batch sizes at one thread for `sweep_precisions`, the rest at `scaling_batch`."""

    batch_sizes: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
    sweep_precisions: tuple[str, ...] = ("fp32", "int8")
    # bf16 is emulated on CPUs without AVX-512 BF16 (10x slower), so it is timed once: one thread, scaling_batch.
    other_precisions: tuple[str, ...] = ("bf16",)
    # The OpenVINO modes (when an IR is given): swept like the torch ones, the others at scaling_batch.
    openvino_sweep: tuple[str, ...] = ("fp32", "int8")
    openvino_other: tuple[str, ...] = ("bf16",)
    threads: tuple[int, ...] = (1, 2)
    scaling_batch: int = 512
    rounds: int = 2
    cpu_class: str = "host"


@dataclass(frozen=True)
class _Runner:
    name: str  # "reference_style" or a precision
    threads: int
    batch: int
    run: Callable[[], tuple[np.ndarray, float, float]]  # (predictions, wall seconds, CPU seconds)


class WorkerPathBench:
    """Uploads one shard twice (safetensors and reference `.pt`) and times the runners on it."""

    def __init__(
        self, s3: S3Client, bucket: str, prefix: str, model: AstroMAE, shard: Shard, openvino_model: Any = None
    ) -> None:
        self.s3, self.bucket, self.prefix, self.model, self.shard = s3, bucket, prefix, model, shard
        self.openvino_model = openvino_model  # an engine_openvino.OpenVINOModel, or None: no OpenVINO rows
        body = shard_to_bytes(shard)
        self.shard_key = f"{prefix}input/bench.safetensors"
        self.pt_key = f"{prefix}input/bench.pt"
        s3.put_object(Bucket=bucket, Key=self.shard_key, Body=body)
        s3.put_object(Bucket=bucket, Key=self.pt_key, Body=partition_bytes(shard))
        self.shard_bytes = len(body)
        self._engines: dict[tuple[str, int, int], Engine] = {}

    def _engine(self, name: str, threads: int, batch: int) -> Engine:
        key = (name, threads, batch)
        if key not in self._engines:
            backend, precision = split_runner(name)
            model = self.openvino_model if backend == "openvino" else self.model
            eng = Engine(model, precision=precision, threads=threads, batch_size=batch, backend=backend)
            eng.predict(self.shard.images[:2], self.shard.magnitudes[:2])  # warm the kernels, untimed
            self._engines[key] = eng
        return self._engines[key]

    def _worker_run(self, name: str, threads: int, batch: int) -> tuple[np.ndarray, float, float]:
        engine = self._engine(name, threads, batch)
        backend, precision = split_runner(name)
        # validated as the worker parses a planned item: split_runner's strings become the Literals
        item = WorkItem.model_validate(
            {
                "item_id": f"bench-{name}-t{threads}-b{batch}",
                "run_id": "bench",
                "input_bucket": self.bucket,
                "output": f"s3://{self.bucket}/{self.prefix}out/{name}-t{threads}-b{batch}/",
                "batch_size": batch,
                "precision": precision,
                "backend": backend,
                "objects": self.shard.n,
                "shards": [PlannedShard(key=self.shard_key, name="bench", bytes=self.shard_bytes, count=self.shard.n)],
            }
        )
        t0, c0 = time.perf_counter(), time.process_time()
        report = run_item(item, self.s3, lambda: engine, cold_start=False, init_seconds=0.0)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        if report.status != "succeeded":
            raise RuntimeError(f"worker path {item.item_id} did not succeed: {report.errors}")
        key = report.shards[0].prediction_key
        return self._read_catalog(str(key)), seconds, cpu  # read back untimed: the accuracy check uses the real catalog

    def _read_catalog(self, key: str) -> np.ndarray:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return np.asarray(read_catalog(body).column("z_pred").to_numpy(), dtype=np.float32)

    def _reference_run(self, threads: int, batch: int) -> tuple[np.ndarray, float, float]:
        torch.set_num_threads(threads)
        t0, c0 = time.perf_counter(), time.process_time()
        data = self.s3.get_object(Bucket=self.bucket, Key=self.pt_key)["Body"].read()
        z = reference_style_predict(self.model, data, batch)
        return z, time.perf_counter() - t0, time.process_time() - c0

    def runners(self, cfg: WorkerBenchConfig) -> list[_Runner]:
        """Every (runner, threads, batch) the config asks for (OpenVINO's only with an IR)."""
        out: list[_Runner] = []
        ov = self.openvino_model is not None
        ov_available = set(self.openvino_model.precisions) if ov else set()
        for threads in cfg.threads:
            batches = cfg.batch_sizes if threads == cfg.threads[0] else (cfg.scaling_batch,)
            for batch in batches:
                out.append(_Runner(REFERENCE, threads, batch, functools.partial(self._reference_run, threads, batch)))
                names = list(cfg.sweep_precisions)
                names += [runner_name("openvino", p) for p in cfg.openvino_sweep if p in ov_available]
                if batch == cfg.scaling_batch and threads == cfg.threads[0]:
                    names += list(cfg.other_precisions)
                    names += [runner_name("openvino", p) for p in cfg.openvino_other if p in ov_available]
                for n in names:
                    out.append(_Runner(n, threads, batch, functools.partial(self._worker_run, n, threads, batch)))
        return out

    def measure(self, cfg: WorkerBenchConfig, progress: Callable[[str], None] = print) -> dict[str, Any]:
        """Rows of (runner, threads, batch) with best and all rates, and accuracy vs fp32 and the reference loop."""
        runners = self.runners(cfg)
        for r in runners:  # build engines before any timing
            if r.name != REFERENCE:
                self._engine(r.name, r.threads, r.batch)
        rates: dict[tuple[str, int, int], list[float]] = {(r.name, r.threads, r.batch): [] for r in runners}
        cpu_rates: dict[tuple[str, int, int], list[float]] = {k: [] for k in rates}
        outputs: dict[tuple[str, int, int], np.ndarray] = {}
        for rnd in range(cfg.rounds):
            k = rnd % len(runners)
            for r in runners[k:] + runners[:k]:
                key = (r.name, r.threads, r.batch)
                outputs[key], seconds, cpu = r.run()
                rates[key].append(self.shard.n / seconds)
                cpu_rates[key].append(self.shard.n / max(cpu, 1e-9))
                progress(
                    f"round {rnd + 1}/{cfg.rounds}: {r.name:<16} threads={r.threads} batch={r.batch:<5} "
                    f"{rates[key][-1]:8.1f} objects/s wall, {cpu_rates[key][-1]:8.1f} per CPU-second"
                )
        rows = []
        for (name, threads, batch), vals in rates.items():
            fp32 = outputs.get(("fp32", threads, batch))
            ref = outputs[(REFERENCE, threads, batch)]
            out = outputs[(name, threads, batch)]
            cpu_vals = cpu_rates[(name, threads, batch)]
            backend, precision = split_runner(name)
            row: dict[str, Any] = {
                "runner": name,
                "backend": backend,
                "precision": precision,
                "cpu_class": cfg.cpu_class,
                "threads": threads,
                "batch_size": batch,
                "objects_per_cpu_s": round(max(cpu_vals), 2),
                "objects_per_s": round(max(vals), 2),
                "objects_per_s_per_thread": round(max(vals) / threads, 2),
                "rounds_objects_per_s": [round(v, 2) for v in vals],
                "rounds_objects_per_cpu_s": [round(v, 2) for v in cpu_vals],
                "ratio_vs_reference": round(max(cpu_vals) / max(cpu_rates[(REFERENCE, threads, batch)]), 3),
                "wall_ratio_vs_reference": round(max(vals) / max(rates[(REFERENCE, threads, batch)]), 3),
                "max_abs_dz_vs_fp32": None if fp32 is None else float(np.abs(out - fp32).max()),
                # the reference-style loop is the unmodified model, eager, fp32: "vs fp32 eager"
                "max_abs_dz_vs_reference": float(np.abs(out - ref).max()),
            }
            if name != REFERENCE and (name, threads, batch) in self._engines:
                made = getattr(self.openvino_model, "made", {}) if backend == "openvino" else {}
                if made:
                    row["openvino_parts"] = sorted(set(made.values()))
            rows.append(row)
        return {
            "objects": self.shard.n,
            "shard_bytes": self.shard_bytes,
            "config": asdict(cfg),
            "method": "objects per CPU-second of this process (and per wall second) of run_item "
            "(GET shard, parse, predict, PUT catalog + report) vs the same for (GET .pt, torch.load, DataLoader, "
            "profiler + gc.collect() per batch); best of interleaved rounds, same process, same S3 endpoint, same "
            "objects",
            "cpu_class": cfg.cpu_class,
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "rows": rows,
        }


def thread_scaling(rows: Sequence[dict[str, Any]], batch: int) -> dict[str, dict[str, float]]:
    """Per runner at `batch`: objects per CPU-second and per wall second by thread count, and the
    per-vCPU efficiency (objects per CPU-second at t threads / at 1 thread)."""
    out: dict[str, dict[str, float]] = {}
    by = {
        (r["runner"], r["threads"]): r
        for r in rows
        if r["batch_size"] == batch and r.get("cpu_class", "host") == "host"
    }
    for (name, threads), row in sorted(by.items()):
        one = by.get((name, 1))
        entry = out.setdefault(name, {})
        entry[f"objects_per_cpu_s_t{threads}"] = row["objects_per_cpu_s"]
        entry[f"objects_per_s_t{threads}"] = row["objects_per_s"]
        if one:
            entry[f"efficiency_t{threads}"] = round(row["objects_per_cpu_s"] / one["objects_per_cpu_s"], 3)
    return out


def openvino_isa_profile(
    model: Any, precision: str, images: np.ndarray, magnitudes: np.ndarray, threads: int = 1
) -> dict[str, Any]:
    """Which kernels OpenVINO ran for `precision` on this CPU as capped now, and the share of time in
    each: the parts compiled with performance counters, one batch run, the counters summed by
    implementation type. `uncapped_share`: the time in kernels that ignore oneDNN's ISA cap
    (implementation names with avx512 or amx, and MLAS, whose own CPU dispatch no cap reaches)."""
    from cosmicai.engine_openvino import BLOCKS_FOR, compile_config, core

    blocks_part, blocks_precision = BLOCKS_FOR[precision]
    parts = (("embed", "f32"), (blocks_part, blocks_precision), ("rest", "f32"))
    reqs = [
        core()
        .compile_model(model.parts[part], "CPU", compile_config(threads, prec) | {"PERF_COUNT": True})
        .create_infer_request()
        for part, prec in parts
    ]
    for _ in range(2):  # the second run is the one profiled (dynamic shapes pick kernels on the first)
        tokens = reqs[0].infer([images])[0]
        tokens = reqs[1].infer([tokens])[0]
        reqs[2].infer([tokens, images, magnitudes])
    by_type: dict[str, float] = {}
    for req in reqs:
        for info in req.get_profiling_info():
            us = info.real_time.total_seconds() * 1e6
            if us > 0:
                by_type[info.exec_type] = by_type.get(info.exec_type, 0.0) + us
    total = sum(by_type.values()) or 1.0

    def uncapped(kind: str) -> bool:
        k = kind.lower()
        return "avx512" in k or "amx" in k or "mlas" in k

    return {
        "precision": precision,
        "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "objects": int(images.shape[0]),
        "us_by_kernel": {k: round(v, 1) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])},
        "uncapped_share": round(sum(v for k, v in by_type.items() if uncapped(k)) / total, 4),
    }


__all__ = [
    "OPENVINO_PREFIX",
    "REFERENCE",
    "WorkerBenchConfig",
    "WorkerPathBench",
    "openvino_isa_profile",
    "runner_name",
    "split_runner",
    "thread_scaling",
]
