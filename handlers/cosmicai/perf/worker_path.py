"""Per-core objects/s of the worker path (S3 read -> engine -> catalog write) vs the reference-style loop.

Both read the same objects from the same S3 endpoint in the same process: the worker path
through `worker.run_item` (safetensors shard, catalog and report written back), the
reference-style loop by downloading a pickled `.pt` partition and running `refloop`. Runners
are interleaved over rounds with a rotating order, so load from other processes on a shared
machine slows all of them alike; the best round of each is kept. Each run is timed twice: wall
seconds, and CPU seconds of this process (all its threads), which is what "per core" means on a
shared machine: objects per CPU-second does not fall when other work takes the cores away.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from cosmicai.catalog import read_catalog
from cosmicai.engine import Engine
from cosmicai.model import AstroMAE
from cosmicai.perf.refloop import partition_bytes, reference_style_predict
from cosmicai.shards import Shard, shard_to_bytes
from cosmicai.worker import PlannedShard, WorkItem, run_item

REFERENCE = "reference_style"


@dataclass(frozen=True)
class WorkerBenchConfig:
    """What to sweep: batch sizes at one thread for `sweep_precisions`, the rest at `scaling_batch`."""

    batch_sizes: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
    sweep_precisions: tuple[str, ...] = ("fp32", "int8")
    # bf16 is emulated on CPUs without AVX-512 BF16 (10x slower), so it is timed once: one thread, scaling_batch.
    other_precisions: tuple[str, ...] = ("bf16",)
    threads: tuple[int, ...] = (1, 2)
    scaling_batch: int = 512
    rounds: int = 2


@dataclass(frozen=True)
class _Runner:
    name: str  # "reference_style" or a precision
    threads: int
    batch: int
    run: Callable[[], tuple[np.ndarray, float, float]]  # (predictions, wall seconds, CPU seconds)


class WorkerPathBench:
    """Uploads one shard twice (safetensors and reference `.pt`) and times the runners on it."""

    def __init__(self, s3: Any, bucket: str, prefix: str, model: AstroMAE, shard: Shard) -> None:
        self.s3, self.bucket, self.prefix, self.model, self.shard = s3, bucket, prefix, model, shard
        body = shard_to_bytes(shard)
        self.shard_key = f"{prefix}input/bench.safetensors"
        self.pt_key = f"{prefix}input/bench.pt"
        s3.put_object(Bucket=bucket, Key=self.shard_key, Body=body)
        s3.put_object(Bucket=bucket, Key=self.pt_key, Body=partition_bytes(shard))
        self.shard_bytes = len(body)
        self._engines: dict[tuple[str, int, int], Engine] = {}

    def _engine(self, precision: str, threads: int, batch: int) -> Engine:
        key = (precision, threads, batch)
        if key not in self._engines:
            eng = Engine(self.model, precision=precision, threads=threads, batch_size=batch)
            eng.predict(self.shard.images[:2], self.shard.magnitudes[:2])  # warm the kernels, untimed
            self._engines[key] = eng
        return self._engines[key]

    def _worker_run(self, precision: str, threads: int, batch: int) -> tuple[np.ndarray, float, float]:
        engine = self._engine(precision, threads, batch)
        item = WorkItem(
            item_id=f"bench-{precision}-t{threads}-b{batch}",
            run_id="bench",
            input_bucket=self.bucket,
            output=f"s3://{self.bucket}/{self.prefix}out/{precision}-t{threads}-b{batch}/",
            batch_size=batch,
            precision=precision,
            objects=self.shard.n,
            shards=[PlannedShard(key=self.shard_key, name="bench", bytes=self.shard_bytes, count=self.shard.n)],
        )
        t0, c0 = time.perf_counter(), time.process_time()
        report = run_item(item, self.s3, lambda: engine, cold_start=False, init_seconds=0.0)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        if report["status"] != "succeeded":
            raise RuntimeError(f"worker path {item.item_id} did not succeed: {report['errors']}")
        return self._read_catalog(report), seconds, cpu  # read back untimed: the accuracy check uses the real catalog

    def _read_catalog(self, report: dict[str, Any]) -> np.ndarray:
        body = self.s3.get_object(Bucket=self.bucket, Key=report["shards"][0]["prediction_key"])["Body"].read()
        return read_catalog(body).column("z_pred").to_numpy()

    def _reference_run(self, threads: int, batch: int) -> tuple[np.ndarray, float, float]:
        torch.set_num_threads(threads)
        t0, c0 = time.perf_counter(), time.process_time()
        data = self.s3.get_object(Bucket=self.bucket, Key=self.pt_key)["Body"].read()
        z = reference_style_predict(self.model, data, batch)
        return z, time.perf_counter() - t0, time.process_time() - c0

    def runners(self, cfg: WorkerBenchConfig) -> list[_Runner]:
        """Every (runner, threads, batch) the config asks for."""
        out: list[_Runner] = []
        for threads in cfg.threads:
            batches = cfg.batch_sizes if threads == cfg.threads[0] else (cfg.scaling_batch,)
            for batch in batches:
                out.append(_Runner(REFERENCE, threads, batch, lambda t=threads, b=batch: self._reference_run(t, b)))
                precisions = list(cfg.sweep_precisions)
                if batch == cfg.scaling_batch and threads == cfg.threads[0]:
                    precisions += list(cfg.other_precisions)
                for p in precisions:
                    out.append(_Runner(p, threads, batch, lambda p=p, t=threads, b=batch: self._worker_run(p, t, b)))
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
                progress(f"round {rnd + 1}/{cfg.rounds}: {r.name:<16} threads={r.threads} batch={r.batch:<5} "
                         f"{rates[key][-1]:8.1f} objects/s wall, {cpu_rates[key][-1]:8.1f} per CPU-second")
        rows = []
        for (name, threads, batch), vals in rates.items():
            fp32 = outputs.get(("fp32", threads, batch))
            ref = outputs[(REFERENCE, threads, batch)]
            out = outputs[(name, threads, batch)]
            cpu = cpu_rates[(name, threads, batch)]
            rows.append({
                "runner": name,
                "threads": threads,
                "batch_size": batch,
                "objects_per_cpu_s": round(max(cpu), 2),
                "objects_per_s": round(max(vals), 2),
                "objects_per_s_per_thread": round(max(vals) / threads, 2),
                "rounds_objects_per_s": [round(v, 2) for v in vals],
                "rounds_objects_per_cpu_s": [round(v, 2) for v in cpu],
                "ratio_vs_reference": round(max(cpu) / max(cpu_rates[(REFERENCE, threads, batch)]), 3),
                "wall_ratio_vs_reference": round(max(vals) / max(rates[(REFERENCE, threads, batch)]), 3),
                "max_abs_dz_vs_fp32": None if fp32 is None else float(np.abs(out - fp32).max()),
                "max_abs_dz_vs_reference": float(np.abs(out - ref).max()),
            })
        return {
            "objects": self.shard.n,
            "shard_bytes": self.shard_bytes,
            "config": asdict(cfg),
            "method": "objects per CPU-second of this process (and per wall second) of run_item "
            "(GET shard, parse, predict, PUT catalog + report) vs the same for (GET .pt, torch.load, DataLoader, profiler + gc.collect() per batch); "
            "best of interleaved rounds, same process, same S3 endpoint, same objects",
            "rows": rows,
        }


def thread_scaling(rows: Sequence[dict[str, Any]], batch: int) -> dict[str, dict[str, float]]:
    """Per runner at `batch`: objects per CPU-second and per wall second by thread count, and the
    per-vCPU efficiency (objects per CPU-second at t threads / at 1 thread)."""
    out: dict[str, dict[str, float]] = {}
    by = {(r["runner"], r["threads"]): r for r in rows if r["batch_size"] == batch}
    for (name, threads), row in sorted(by.items()):
        one = by.get((name, 1))
        entry = out.setdefault(name, {})
        entry[f"objects_per_cpu_s_t{threads}"] = row["objects_per_cpu_s"]
        entry[f"objects_per_s_t{threads}"] = row["objects_per_s"]
        if one:
            entry[f"efficiency_t{threads}"] = round(row["objects_per_cpu_s"] / one["objects_per_cpu_s"], 3)
    return out


__all__ = ["REFERENCE", "WorkerBenchConfig", "WorkerPathBench", "thread_scaling"]
