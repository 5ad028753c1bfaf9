"""Summarize's running aggregates of the worker reports: performance, provenance, cost inputs.

Each report is added once and dropped: what summary.json needs from 40,000 reports is a few
counts and sums, the per-worker seconds and rates for exact percentiles (8 bytes each in a
compact array, not ~1.5 KB of report), and the per-worker rows, which go to
`summary/workers.jsonl` as they come (runstore.JsonLinesSpool), not into summary.json.
"""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from cosmicai.contracts import Provenance, WorkerReport
from cosmicai.runstore import SUMMARY_WORKERS_FILE, JsonLinesSpool

# What a worker report's `provenance` records (contracts.Provenance), in summary.json's order.
PROVENANCE_FIELDS = tuple(Provenance.model_fields)


def percentile(values: array[float], q: float) -> float | None:
    """The q-th percentile (linear), None for no values."""
    return float(np.percentile(np.frombuffer(values, dtype=np.float64), q)) if len(values) else None


def worker_row(report: WorkerReport) -> dict[str, Any]:
    """One row of `summary/workers.jsonl`: what a live worker's report says about its time and size."""
    r = report
    return {
        "item_id": r.item_id,
        "objects": r.objects,
        "seconds": r.wall_seconds,
        "objects_per_second": r.objects_per_second,
        "compute_objects_per_second": r.compute_objects_per_second,
        "cold_start": r.cold_start,
        "init_seconds": r.init_seconds,
        "download_seconds": r.download_seconds,
        "compute_seconds": r.compute_seconds,
        "upload_seconds": r.upload_seconds,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "peak_rss_mb": r.peak_rss_mb,
        "cpus": r.cpus,
        "memory_mb": r.function.memory_mb,
    }


@dataclass
class WorkerTotals:
    """Sums over the live workers that a run's cost needs (summary._cost), one report at a time.

    Billed seconds are init + wall (container images bill the INIT phase). A worker without a
    Lambda memory size (not run on Lambda) is billed at the largest size reported, known only at
    the end: its seconds are kept apart (`billed_seconds_unsized`).
    """

    workers: int = 0
    memory_mb: int | None = None  # the largest reported
    billed_seconds: float = 0.0
    billed_mb_seconds: float = 0.0  # sum of memory_mb x billed seconds of workers that report memory
    billed_seconds_unsized: float = 0.0
    cold_starts: int = 0

    def add(self, row: dict[str, Any]) -> None:
        """Count one live worker's row (worker_row)."""
        billed = float(row.get("init_seconds") or 0) + float(row.get("seconds") or 0)
        self.workers += 1
        self.billed_seconds += billed
        memory = row.get("memory_mb")
        if memory:
            self.memory_mb = max(self.memory_mb or 0, memory)
            self.billed_mb_seconds += memory * billed
        else:
            self.billed_seconds_unsized += billed
        if row.get("cold_start"):
            self.cold_starts += 1


class PerformanceTally:
    """summary.json's `performance` and the cost inputs, from the reports added one by one.

    Crashed items' reports (the Map's Catch wrote them) are no worker's timing: they are skipped,
    as summary.json has always done.
    """

    def __init__(self, rows: JsonLinesSpool) -> None:
        self.rows = rows
        self.totals = WorkerTotals()
        self.seconds: array[float] = array("d")
        self.rates: array[float] = array("d")

    def add(self, report: WorkerReport) -> None:
        if report.crashed:
            return
        row = worker_row(report)
        self.rows.write(row)
        self.totals.add(row)
        self.seconds.append(float(row["seconds"] or 0.0))
        if row["objects_per_second"]:
            self.rates.append(float(row["objects_per_second"]))

    def result(self, wall: float | None, predicted: int) -> dict[str, Any]:
        return {
            "wall_seconds": round(wall, 3) if wall is not None else None,
            "objects_per_second": round(predicted / wall, 2) if wall else None,
            "workers": self.totals.workers,
            "worker_seconds_p50": percentile(self.seconds, 50),
            "worker_seconds_p95": percentile(self.seconds, 95),
            "worker_seconds_total": round(float(np.frombuffer(self.seconds, dtype=np.float64).sum()), 3),
            "worker_objects_per_second_p50": percentile(self.rates, 50),
            "cold_starts": self.totals.cold_starts,
            "per_worker_file": SUMMARY_WORKERS_FILE,
        }


def _provenance_key(prov: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((k, json.dumps(prov.get(k), sort_keys=True)) for k in PROVENANCE_FIELDS)


class ProvenanceTally:
    """summary.json's `provenance`: what the workers report they ran with.

    Each field (PROVENANCE_FIELDS) is the value every reporting worker agrees on, null where they
    differ; `combinations` lists each distinct combination with its item count (most items first,
    then in the order first seen; one entry when all agree); `items_unrecorded` counts reports
    without provenance (crashed items, older workers). Holds one entry per distinct combination.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[tuple[str, str], ...], int] = {}
        self.first: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        self.unrecorded = 0

    def add(self, report: WorkerReport) -> None:
        if report.provenance is None:
            self.unrecorded += 1
            return
        prov = report.provenance.model_dump()
        key = _provenance_key(prov)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.first.setdefault(key, {k: prov.get(k) for k in PROVENANCE_FIELDS})

    def result(self) -> dict[str, Any]:
        combos = [self.first[k] | {"items": n} for k, n in sorted(self.counts.items(), key=lambda kv: -kv[1])]
        agreed = {
            k: (combos[0][k] if combos and all(c[k] == combos[0][k] for c in combos) else None)
            for k in PROVENANCE_FIELDS
        }
        return agreed | {"consistent": len(combos) == 1, "combinations": combos, "items_unrecorded": self.unrecorded}
